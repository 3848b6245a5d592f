"""PostgreSQL in and out (core.reading.postgres, core.cli.postgres) against a real server the tests start themselves.

The server is Debian's PostgreSQL (``/usr/lib/postgresql/*/bin``; scripts/test.sh installs it):
``initdb`` into a temporary folder (as the ``postgres`` user when the tests run as root), ``pg_ctl
start`` on a free port with its unix socket in that folder, password authentication over TCP;
stopped and removed afterwards (tests/conftest.py ``postgres_server``: one a worker process, shared by the
PostgreSQL modules, each on tables of its own). Skipped only when the binaries are not installed.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli.commands import main
from core.versions.registry import Registry
from tests.conftest import PG_DB, PG_PASSWORD, PG_USER

psycopg = pytest.importorskip("psycopg")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "synthetic_customers.tsv"
CDNOW = ROOT.parent / "shared" / "data" / "cdnow_transactions.txt"
USER, PASSWORD, DB = PG_USER, PG_PASSWORD, PG_DB


@pytest.fixture(scope="module")
def server(postgres_server):
    """A running PostgreSQL server: (host, port); database ``crm``, user ``slens`` with a password. The worker's one
    server (tests/conftest.py ``postgres_server``), shared by the PostgreSQL modules: each uses tables of its own."""
    return postgres_server


@pytest.fixture
def url(server, monkeypatch):
    """The database's URL (no password in it: PGPASSWORD gives it, as in production)."""
    host, port = server
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return f"postgresql://{USER}@{host}:{port}/{DB}"


@pytest.fixture
def conn(url):
    with psycopg.connect(url, autocommit=True) as c:
        yield c


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def load_sample(conn, table: str = "public.customers") -> None:
    """The committed sample as a typed table: integer, NUMERIC (with NULLs), a date column."""
    frame = pd.read_csv(SAMPLE, sep="\t", dtype=str, keep_default_na=False)
    types = {c: "integer" for c in frame.columns}
    types.update(Education="text", Marital_Status="text", Income="numeric(12,2)", Dt_Customer="date")
    conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    conn.execute(f"CREATE TABLE {table} (" + ", ".join(f'"{c}" {types[c]}' for c in frame.columns) + ")")
    conn.execute("SET DateStyle = 'ISO, DMY'")  # the file's dates are day-month-year
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    with conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in frame.itertuples(index=False):
            copy.write_row([v if v != "" else None for v in row])


# ------------------------------------------------------------------------------------ reading
def test_canonical_table_trains_the_same_model_as_its_file(url, conn, tmp_path, capsys):
    load_sample(conn)
    by_file, by_db = tmp_path / "file", tmp_path / "db"
    code, out, err = run_cli(capsys, "train", "--data", SAMPLE, "--models", by_file, "--json", "--quiet")
    assert code == 0, err
    file_run = json.loads(out)
    # A password in the URL is used for the run and never stored with the version.
    with_pw = url.replace(f"{USER}@", f"{USER}:{PASSWORD}@") + "?table=public.customers"
    code, out, err = run_cli(capsys, "train", "--data", with_pw, "--models", by_db, "--json", "--quiet")
    assert code == 0, err
    db_run = json.loads(out)
    for key in ("k", "n_customers", "silhouette", "features", "metrics", "segments", "cleaning"):
        assert db_run[key] == file_run[key], key
    m_file, _ = Registry(by_file).load()
    m_db, meta = Registry(by_db).load()
    np.testing.assert_array_equal(m_db.centroids_, m_file.centroids_)
    assert meta["data_source"] == f"{url}?table=public.customers"
    assert PASSWORD not in json.dumps(meta) and meta["data_path"] is None
    stored = [p for p in by_db.rglob("*") if p.is_file()]
    assert stored and not any(PASSWORD.encode() in p.read_bytes() for p in stored)


def test_types_nulls_text_ids_view_and_query_read_as_the_file(url, conn, tmp_path, capsys):
    conn.execute("CREATE SCHEMA IF NOT EXISTS crm")
    conn.execute("DROP TABLE IF EXISTS crm.people CASCADE")
    conn.execute("CREATE TABLE crm.people (customer_code text, income numeric(10,2), spend_total numeric, "
                 "web_visits integer, joined timestamptz, vip boolean)")
    rng = np.random.default_rng(3)
    rows = []
    for i in range(300):
        income = None if i % 37 == 0 else round(float(rng.uniform(10_000, 90_000)), 2)
        # 23:30 at -05:00 is the next day in UTC: dates are taken in UTC.
        joined = f"2024-{1 + i % 12:02d}-{1 + i % 27:02d} 23:30:00-05"
        rows.append((f"C-{i:04d}", income, round(float(rng.gamma(2, 300)), 3), int(rng.integers(0, 20)), joined,
                     bool(i % 2)))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO crm.people VALUES (%s, %s, %s, %s, %s, %s)", rows)
    conn.execute("CREATE OR REPLACE VIEW crm.people_view AS SELECT * FROM crm.people WHERE web_visits >= 0")
    # The same rows as a file, written as the export writes them (UTC dates, empty for NULL).
    frame = pd.DataFrame(rows, columns=["customer_code", "income", "spend_total", "web_visits", "joined", "vip"])
    frame["joined"] = pd.to_datetime(frame["joined"], utc=True).dt.strftime("%Y-%m-%d")
    frame["vip"] = frame["vip"].astype(int)
    file = tmp_path / "people.tsv"
    frame.to_csv(file, sep="\t", index=False)
    from core.reading.mapping import prepare_input
    from core.reading.postgres import local_copy

    expected, mapping = prepare_input(file, kind="customers")
    # The NULL incomes (every 37th row) are empty cells, dropped by the cleaning as in a file.
    assert expected.report.rows_read == 300 and len(expected.frame) == 300 - len(range(0, 300, 37))
    assert expected.frame["ID"].iloc[0] == "C-0001"
    sources = {"table": (f"{url}?table=crm.people", None), "view": (f"{url}?table=crm.people_view", None),
               "query": (url, "SELECT * FROM crm.people ORDER BY customer_code")}
    for name, (address, query) in sources.items():
        with local_copy(address, query) as copy:
            assert copy.rows == 300 and PASSWORD not in copy.display
            got, got_mapping = prepare_input(copy.path, name=copy.display, kind="customers")
        assert got_mapping.columns == mapping.columns and got_mapping.features == mapping.features, name
        pd.testing.assert_frame_equal(got.frame, expected.frame, check_exact=True, obj=name)
        assert got.report.to_dict() == expected.report.to_dict()


@pytest.mark.skipif(not CDNOW.exists(), reason="../shared/data/cdnow_transactions.txt is not here")
def test_cdnow_order_table_gives_the_same_customers_as_the_file(url, conn, tmp_path, capsys):
    log = pd.read_csv(CDNOW, sep=r"\s+", dtype=str)
    conn.execute("DROP TABLE IF EXISTS public.cdnow")
    conn.execute("CREATE TABLE public.cdnow (customer_id text, date date, number_of_cds integer, "
                 "dollar_value numeric(10,2))")
    with conn.cursor().copy("COPY public.cdnow FROM STDIN") as copy:
        for row in log.itertuples(index=False):
            copy.write_row(row)
    outputs = {}
    for name, data in (("file", CDNOW), ("db", f"{url}?table=public.cdnow")):
        out = tmp_path / f"{name}.csv"
        code, _, err = run_cli(capsys, "customers", "--data", data, "--input", "transactions", "--out", out,
                               "--quiet")
        assert code == 0, err
        outputs[name] = pd.read_csv(out)
    assert len(outputs["file"]) == 23570
    pd.testing.assert_frame_equal(outputs["db"], outputs["file"], check_exact=True)


# ------------------------------------------------------------------------------------ writing
def _scores(n: int, version: str = "x", offset: int = 0) -> pd.DataFrame:
    ids = np.arange(offset, offset + n)
    return pd.DataFrame({"ID": ids.astype(str), "segment": ids % 4, "segment_name": [f"Seg {i % 4}" for i in ids],
                         "confidence": np.round((ids % 100) / 100.0, 4)})


def test_score_writes_back_replace_then_upsert(url, conn, tmp_path, capsys):
    from core.reading.postgres import write_scores

    models = tmp_path / "models"
    code, _, err = run_cli(capsys, "train", "--data", SAMPLE, "--models", models, "--quiet")
    assert code == 0, err
    version = Registry(models).active_version()
    conn.execute("CREATE SCHEMA IF NOT EXISTS marketing")
    conn.execute("DROP TABLE IF EXISTS marketing.segments")
    csv = tmp_path / "scores.csv"
    assert run_cli(capsys, "score", "--data", SAMPLE, "--models", models, "--out", csv, "--quiet")[0] == 0
    expected = pd.read_csv(csv).sort_values("ID").reset_index(drop=True)
    target = f"{url}?table=marketing.segments"
    code, _, err = run_cli(capsys, "score", "--data", SAMPLE, "--models", models, "--out", target, "--quiet")
    assert code == 0, err
    got = pd.DataFrame(conn.execute("SELECT id, segment, segment_name, confidence, model_version, scored_at "
                                    "FROM marketing.segments ORDER BY id").fetchall(),
                       columns=["id", "segment", "segment_name", "confidence", "model_version", "scored_at"])
    assert got["id"].tolist() == expected["ID"].tolist()
    assert got["segment"].tolist() == expected["segment"].tolist()
    assert got["segment_name"].tolist() == expected["segment_name"].tolist()
    assert got["confidence"].tolist() == expected["confidence"].tolist()
    assert set(got["model_version"]) == {version} and got["scored_at"].nunique() == 1
    types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                              "WHERE table_schema = 'marketing' AND table_name = 'segments'").fetchall())
    assert types["id"] == "bigint" and types["scored_at"] == "timestamp with time zone"
    # Upsert: known IDs are updated, new ones added, the rest kept.
    first_id = int(expected["ID"].iloc[0])
    upd = pd.DataFrame({"ID": [str(first_id), "99999999"], "segment": [5, 1], "segment_name": ["Moved", "New"],
                        "confidence": [0.5, 0.25]})
    assert write_scores(target, [upd], model_version="v-up", mode="upsert") == 2
    assert conn.execute("SELECT count(*) FROM marketing.segments").fetchone()[0] == len(expected) + 1
    assert conn.execute("SELECT segment, segment_name, model_version FROM marketing.segments WHERE id = %s",
                        (first_id,)).fetchone() == (5, "Moved", "v-up")
    second = int(expected["ID"].iloc[1])
    assert conn.execute("SELECT model_version FROM marketing.segments WHERE id = %s", (second,)).fetchone()[0] \
        == version
    # Replace makes the table exactly the new rows again.
    assert write_scores(target, [_scores(10)], model_version="v-r") == 10
    assert conn.execute("SELECT count(*), min(model_version) FROM marketing.segments").fetchone() == (10, "v-r")


def test_readers_see_the_old_or_the_new_table_never_half(url, conn):
    from core.reading.postgres import write_scores

    target = f"{url}?table=public.swap"
    write_scores(target, [_scores(20_000)], model_version="old")
    seen, stop, errors = [], threading.Event(), []

    def read():
        try:
            with psycopg.connect(url, autocommit=True) as reader:
                while not stop.is_set():
                    seen.append(reader.execute("SELECT count(*), min(model_version), max(model_version) "
                                               "FROM public.swap").fetchone())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(3):
            chunks = [_scores(10_000, offset=j * 10_000) for j in range(3)]
            write_scores(target, chunks, model_version=f"new{i}")
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert len(seen) > 3
    allowed = {(20_000, "old", "old")} | {(30_000, f"new{i}", f"new{i}") for i in range(3)}
    assert set(seen) <= allowed, set(seen) - allowed
    assert conn.execute("SELECT count(*), min(model_version) FROM public.swap").fetchone() == (30_000, "new2")


def test_connection_killed_mid_write_leaves_the_previous_table(url, conn):
    from core.reading.postgres import PostgresError, write_scores

    target = f"{url}?table=public.killed"
    write_scores(target, [_scores(1_000)], model_version="before")

    def chunks():
        yield _scores(5_000)
        # Another session ends the writer's connection while its COPY is under way.
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = 'segmentlens-write' AND pid <> pg_backend_pid()")
        time.sleep(0.2)
        for j in range(1, 20):
            yield _scores(5_000, offset=j * 5_000)

    with pytest.raises(PostgresError) as err:
        write_scores(target, chunks(), model_version="after")
    assert "unchanged" in str(err.value) and "\n" not in str(err.value)
    assert conn.execute("SELECT count(*), min(model_version), max(model_version) FROM public.killed"
                        ).fetchone() == (1_000, "before", "before")
    left = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'killed__staging%'").fetchone()[0]
    assert left == 0


# ------------------------------------------------------------------------------------ bad input
def _bad(capsys, models, *argv) -> str:
    code, out, err = run_cli(capsys, *argv, "--models", models, "--quiet")
    assert code == 2, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert Registry(models).versions() == []  # nothing registered
    return lines[0]


def test_help_imports_neither_pandas_numpy_nor_psycopg():
    import sys

    from core.cli.commands import build_parser
    from core.reading.postgres import MODES

    for argv in (["--help"], ["score", "--help"]):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "core", *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "usage: python -m core" in proc.stdout, proc.stderr[-500:]
        loaded = {ln.rsplit("|", 1)[-1].strip().split(".")[0] for ln in proc.stderr.splitlines() if "|" in ln}
        assert "core" in loaded and not loaded & {"pandas", "numpy", "psycopg"}, argv
    # score --mode lists the writer's modes without importing them.
    score = next(a for a in build_parser()._actions if a.dest == "command").choices["score"]
    assert tuple(next(a for a in score._actions if a.dest == "mode").choices) == MODES


def test_unreachable_host_answers_within_five_seconds(tmp_path, capsys, monkeypatch):
    import socket

    monkeypatch.setenv("PGPASSWORD", "x")
    # A host that takes the connection and never answers (as a firewall that drops packets would).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        start = time.monotonic()
        line = _bad(capsys, tmp_path / "m", "train", "--data", f"postgresql://u@127.0.0.1:{port}/db?table=t")
        assert time.monotonic() - start <= 5.0
    assert line == f"error: cannot connect to postgresql://u@127.0.0.1:{port}/db: the server did not answer (timeout)"


def test_bad_inputs_one_line_each_exit_2_nothing_registered(url, conn, tmp_path, capsys, monkeypatch):
    load_sample(conn, "public.customers2")
    models = tmp_path / "m"
    monkeypatch.setenv("PGPASSWORD", "wrong")
    line = _bad(capsys, models, "train", "--data", f"{url}?table=public.customers2")
    assert "password authentication failed" in line and "wrong" not in line
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    line = _bad(capsys, models, "train", "--data", f"{url}?table=crm.nothing_here")
    assert "table crm.nothing_here" in line and "does not exist" in line
    line = _bad(capsys, models, "train", "--data", url, "--query", "SELECT \"ID\", no_such_column FROM customers2")
    assert "no_such_column" in line
    line = _bad(capsys, models, "train", "--data", url, "--query", "SELECT * FROM customers2 WHERE false")
    assert "returned no rows" in line
    # Income as text that is not a number: the loader names the column.
    line = _bad(capsys, models, "train", "--data", url, "--query",
                "SELECT \"ID\", \"Year_Birth\", \"Education\", \"Marital_Status\", 'about ' || \"Income\" AS "
                "\"Income\", \"Kidhome\", \"Teenhome\", \"Dt_Customer\", \"Recency\", \"MntWines\", \"MntFruits\", "
                "\"MntMeatProducts\", \"MntFishProducts\", \"MntSweetProducts\", \"MntGoldProds\", "
                "\"NumDealsPurchases\", \"NumWebPurchases\", \"NumCatalogPurchases\", \"NumStorePurchases\", "
                "\"NumWebVisitsMonth\" FROM customers2")
    assert "Income" in line and "numbers" in line
    line = _bad(capsys, models, "train", "--data", f"{url}?table=drop table x")
    assert "is not a name" in line
    line = _bad(capsys, models, "train", "--data", SAMPLE, "--query", "SELECT 1")
    assert "--query needs --data postgresql://" in line
    # A query cannot change the database: sources are read in read-only transactions.
    line = _bad(capsys, models, "train", "--data", url, "--query", "DELETE FROM customers2 RETURNING *")
    assert conn.execute("SELECT count(*) FROM customers2").fetchone()[0] == 2240


# ------------------------------------------------------------------------------------ sync on activation
def test_activate_and_rollback_rewrite_the_sync_table_with_an_audit_entry(url, conn, tmp_path, capsys,
                                                                          monkeypatch):
    from core.access.audit import AuditLog
    from core.cli.postgres import last_sync

    load_sample(conn, "public.sync_source")
    models = tmp_path / "models"
    # v1 from the database (its source is re-read through the URL), v2 from the file.
    assert run_cli(capsys, "train", "--data", f"{url}?table=public.sync_source", "--models", models, "--k", 3,
                   "--quiet")[0] == 0
    assert run_cli(capsys, "train", "--data", SAMPLE, "--models", models, "--k", 4, "--quiet")[0] == 0
    v1, v2 = sorted(v["version"] for v in Registry(models).versions())
    target = f"{url}?table=public.synced"
    monkeypatch.setenv("SEGMENTLENS_SYNC_URL", target)
    code, _, err = run_cli(capsys, "models", "activate", v1, "--models", models)
    assert code == 0, err
    rows = conn.execute("SELECT count(*), min(model_version), max(model_version), max(segment) "
                        "FROM public.synced").fetchone()
    n = Registry(models).metadata(v1)["n_customers"]
    assert rows == (n, v1, v1, 2)
    code, _, err = run_cli(capsys, "models", "rollback", "--models", models)
    assert code == 0, err
    assert conn.execute("SELECT min(model_version), max(segment) FROM public.synced").fetchone() == (v2, 3)
    entries = [e for e in AuditLog(models).entries() if e["action"] == "db-sync"]
    assert [e["outcome"] for e in entries] == ["ok", "ok"]
    assert entries[0]["target"] == target and f"{v1} after activate: {n} rows" == entries[0]["detail"]
    assert last_sync(models)["detail"].startswith(f"{v2} after rollback")
