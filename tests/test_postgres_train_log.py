"""``python -m core train --data postgresql://...`` on a transaction log groups it on the server (core.reading.pg_aggregate)
and trains the model the file trains; a log the server cannot group exactly is copied out and gives the file's result.

The CDNOW log is read once and loaded once into one table (``cdnow_table``: the tests only read it), and its
training from that table is made once (``trained_from_table``): the order-table test compares it with the file's,
the fingerprint test trains the same table again and a changed copy (training the log costs seconds)."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from core.reading import pg_aggregate, postgres
from core.reading.mapping import prepare_input
from core.cli.commands import main
from core.versions.registry import Registry
from tests.test_postgres import CDNOW, DB, PASSWORD, USER, conn, run_cli, server, url  # noqa: F401  (fixtures)

psycopg = pytest.importorskip("psycopg")
pytestmark = pytest.mark.skipif(not CDNOW.exists(), reason="../shared/data/cdnow_transactions.txt is not here")
TYPES = {"customer_id": "integer", "date": "date", "number_of_cds": "integer", "dollar_value": "numeric(10,2)"}


def load(conn, table, frame):  # noqa: F811
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} (" + ", ".join(f'"{c}" {TYPES[c]}' for c in frame.columns) + ")")
    with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        for row in frame.itertuples(index=False):
            copy.write_row([None if isinstance(v, float) and np.isnan(v) else v for v in row])


@pytest.fixture(scope="module")
def cdnow_log() -> pd.DataFrame:
    """The CDNOW log as typed columns (read once; a test that changes it changes a copy)."""
    log = pd.read_csv(CDNOW, sep=r"\s+", dtype=str)
    log["customer_id"] = log["customer_id"].astype(int)
    log["date"] = pd.to_datetime(log["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d")
    log["number_of_cds"] = log["number_of_cds"].astype(int)
    log["dollar_value"] = log["dollar_value"].astype(float)
    return log


@pytest.fixture
def cdnow(cdnow_log) -> pd.DataFrame:
    """A copy of the CDNOW log for one test."""
    return cdnow_log.copy()


@pytest.fixture(scope="module")
def cdnow_table(server, cdnow_log) -> str:  # noqa: F811
    """``public.cdnow_log`` holding the CDNOW log, loaded once for the module; tests only read it."""
    host, port = server
    with psycopg.connect(host=host, port=port, user=USER, password=PASSWORD, dbname=DB, autocommit=True) as c:
        load(c, "public.cdnow_log", cdnow_log)
    return "public.cdnow_log"


def _train_cli(data, models):
    """`train --input transactions --seed 3 --json` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in ("train", "--data", data, "--models", models, "--input", "transactions",
                                      "--seed", 3, "--json")])
    return code, out.getvalue(), err.getvalue()


def _trained(code, out, err, models):
    assert code == 0, err
    payload = json.loads(out)
    return payload, Registry(models).metadata(payload["model_version"]), err


def train(capsys, data, models):
    code, out, err = run_cli(capsys, "train", "--data", data, "--models", models, "--input", "transactions",
                             "--seed", 3, "--json")
    return _trained(code, out, err, models)


@pytest.fixture(scope="module")
def trained_from_table(server, cdnow_table, tmp_path_factory):  # noqa: F811
    """The log trained from ``cdnow_table`` once: (payload, metadata, stderr). PGPASSWORD as ``url`` sets it."""
    host, port = server
    models = tmp_path_factory.mktemp("cdnow-db") / "models"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", PASSWORD)
        return _trained(*_train_cli(f"postgresql://{USER}@{host}:{port}/{DB}?table={cdnow_table}", models), models)


def assert_same_training(by_db, by_file):
    for key in ("n_customers", "k", "features", "transforms", "segments", "rfm"):
        assert by_db[key] == by_file[key], key
    assert by_db["silhouette"] == pytest.approx(by_file["silhouette"], abs=1e-9)
    drop = ("engine", "engine_note")
    assert ({k: v for k, v in by_db["transactions"].items() if k not in drop}
            == {k: v for k, v in by_file["transactions"].items() if k not in drop})


def test_an_order_table_trains_through_the_server_group_by(trained_from_table, cdnow_table, cdnow, tmp_path,
                                                           capsys):
    log = cdnow
    path = tmp_path / "cdnow.tsv"
    log.to_csv(path, sep="\t", index=False)
    by_file, _, _ = train(capsys, path, tmp_path / "file")
    by_db, meta, err = trained_from_table
    assert "aggregated on the server" in err
    # The version records which path grouped the log, and the database (not the head copy) as its source.
    assert meta["transactions"]["engine"] == "postgresql" and "engine_note" not in meta["transactions"]
    assert by_file["transactions"]["engine"] in ("pandas", "duckdb")
    assert meta["data_source"].endswith(f"?table={cdnow_table}") and meta["data_path"] is None
    assert by_db["n_customers"] == 23570 and by_db["transactions"]["transactions"] == len(log)
    assert_same_training(by_db, by_file)


def test_the_head_copy_gives_the_files_customers_row_for_row(url, cdnow_table, cdnow, tmp_path):  # noqa: F811
    log = cdnow
    path = tmp_path / "cdnow.tsv"
    log.to_csv(path, sep="\t", index=False)
    head = tmp_path / "head.tsv"
    source = postgres.parse(f"{url}?table={cdnow_table}")
    assert postgres.export(source, head, limit=pg_aggregate.HEAD_ROWS) == pg_aggregate.HEAD_ROWS
    copied = head.read_bytes()
    pushed, _ = prepare_input(head, kind="transactions", database=source)
    ref, _ = prepare_input(path, kind="transactions")
    assert pushed.frame.attrs["summary"]["engine"] == "postgresql"
    # The source came as an argument: no file beside the head, which stays the head.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdnow.tsv", "head.tsv"] and head.read_bytes() == copied
    pd.testing.assert_frame_equal(pushed.frame, ref.frame, check_exact=True)
    assert pushed.report.rows_read == ref.report.rows_read == len(log)


def test_a_dirty_log_is_copied_out_and_trains_as_its_file(url, conn, cdnow, tmp_path, capsys):  # noqa: F811
    log = cdnow
    log.loc[log.index % 997 == 5, "dollar_value"] = np.nan  # rows pandas drops (and counts): not the server's
    load(conn, "public.cdnow_dirty", log)
    path = tmp_path / "dirty.tsv"
    log.to_csv(path, sep="\t", index=False)
    by_file, _, _ = train(capsys, path, tmp_path / "file")
    by_db, meta, err = train(capsys, f"{url}?table=public.cdnow_dirty", tmp_path / "db")
    assert meta["transactions"]["engine"] in ("pandas", "duckdb")
    assert "copying every row out" in meta["transactions"]["engine_note"]
    assert "empty ID, date, amount" in meta["transactions"]["engine_note"]
    assert by_db["cleaning"] == by_file["cleaning"] and by_db["cleaning"]["dropped"]["unreadable_values"] == 70
    assert_same_training(by_db, by_file)


def test_a_customer_table_longer_than_the_head_is_read_whole(url, conn, tmp_path, capsys):  # noqa: F811
    from tests.test_postgres import SAMPLE

    frame = pd.read_csv(SAMPLE, sep="\t", dtype=str, keep_default_na=False)
    copies = [frame.assign(ID=(frame["ID"].astype(int) + 100_000 * i).astype(str)) for i in range(3)]
    frame = pd.concat(copies, ignore_index=True)
    assert len(frame) > pg_aggregate.HEAD_ROWS
    path = tmp_path / "customers.tsv"
    frame.to_csv(path, sep="\t", index=False)
    types = {c: "integer" for c in frame.columns}
    types.update(Education="text", Marital_Status="text", Income="numeric(12,2)", Dt_Customer="text")
    conn.execute("DROP TABLE IF EXISTS public.customers_long")
    conn.execute("CREATE TABLE public.customers_long (" + ", ".join(f'"{c}" {types[c]}' for c in frame.columns) + ")")
    with conn.cursor().copy("COPY public.customers_long FROM STDIN") as copy:
        for row in frame.itertuples(index=False):
            copy.write_row([v if v != "" else None for v in row])
    runs = {}
    for name, data in (("file", path), ("db", f"{url}?table=public.customers_long")):
        code, out, err = run_cli(capsys, "train", "--data", data, "--models", tmp_path / name, "--json", "--quiet")
        assert code == 0, err
        runs[name] = json.loads(out)
    assert runs["db"]["cleaning"] == runs["file"]["cleaning"] and runs["db"]["cleaning"]["rows_read"] == len(frame)
    assert runs["db"]["n_customers"] == runs["file"]["n_customers"]


def test_the_fingerprint_is_the_whole_logs_not_its_heads(url, conn, cdnow, cdnow_table, trained_from_table,  # noqa: F811
                                                          tmp_path, capsys):
    # Two logs that share their first rows (all the head copy holds) but differ after them must not share a
    # data fingerprint; the same log trained twice must (the module's training of it, then this one).
    changed = cdnow
    changed.loc[len(changed) - 1, "dollar_value"] += 10.0
    load(conn, "public.cdnow_fp_b", changed)
    _, first, _ = trained_from_table
    _, again, _ = train(capsys, f"{url}?table={cdnow_table}", tmp_path / "a2")
    _, other, _ = train(capsys, f"{url}?table=public.cdnow_fp_b", tmp_path / "b")
    assert first["transactions"]["engine"] == other["transactions"]["engine"] == "postgresql"
    assert first["data_fingerprint"] == again["data_fingerprint"]
    assert first["data_fingerprint"] != other["data_fingerprint"]


def test_customers_and_score_of_an_order_table_group_it_on_the_server(url, cdnow_table, cdnow, tmp_path,  # noqa: F811
                                                                       capsys):
    log = cdnow
    path = tmp_path / "cdnow.tsv"
    log.to_csv(path, sep="\t", index=False)
    db = f"{url}?table={cdnow_table}"
    models = tmp_path / "models"
    train(capsys, path, models)
    out = {}
    for name, data in (("file", path), ("db", db)):
        code, text, err = run_cli(capsys, "customers", "--data", data, "--input", "transactions", "--json",
                                  "--out", tmp_path / f"customers_{name}.csv")
        assert code == 0, err
        out[name] = json.loads(text)
        code, _, err = run_cli(capsys, "score", "--data", data, "--models", models, "--out", tmp_path / f"{name}.csv")
        assert code == 0, err
        if name == "db":  # only the head was copied out: the version's log mapping sent the rest to the server
            assert "aggregated on the server" in err
    assert out["db"]["engine"] == "postgresql" and out["file"]["engine"] in ("pandas", "duckdb")
    assert out["db"]["customers"] == 23570 and out["db"]["rows_read"] == len(log)
    for stem in ("customers_{}.csv", "{}.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / stem.format("db")),
                                      pd.read_csv(tmp_path / stem.format("file")), check_exact=True)


def test_no_marker_or_other_file_beside_the_head_and_no_password_kept(url, cdnow_table, tmp_path, capsys,  # noqa: F811
                                                                       monkeypatch):
    import tempfile

    from tests.test_postgres import PASSWORD, USER

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen = []
    from core.reading import mapping

    stage = mapping.prepare_input

    def prepare_input(source, **kw):  # the real input stage; records what the run's temporary folder holds then
        seen.append(sorted(p.name for p in scratch.rglob("*") if p.is_file()))
        assert isinstance(kw["database"], postgres.PgSource) and PASSWORD not in repr(kw["database"])
        return stage(source, **kw)

    monkeypatch.setattr(mapping, "prepare_input", prepare_input)
    with_pw = url.replace(f"{USER}@", f"{USER}:{PASSWORD}@") + f"?table={cdnow_table}"
    _, meta, _ = train(capsys, with_pw, tmp_path / "models")
    assert seen == [[f"{cdnow_table}.tsv"]]  # the head copy alone: no .pgsource.json or any other side file
    assert meta["transactions"]["engine"] == "postgresql" and list(scratch.iterdir()) == []
    assert meta["data_url"] == f"{url}?table={cdnow_table}" and meta["data_path"] is None
    stored = [p for p in (tmp_path / "models").rglob("*") if p.is_file()]
    assert stored and not any(PASSWORD.encode() in p.read_bytes() for p in stored)
    assert not hasattr(pg_aggregate, "mark") and not hasattr(pg_aggregate, "MARK_SUFFIX")
