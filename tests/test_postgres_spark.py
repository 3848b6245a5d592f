"""The Spark engine reads a PostgreSQL table through JDBC (Debian's libpostgresql-jdbc-java driver jar).

``python -m core train --engine spark --data postgresql://...?table=...`` on the committed sample
loaded into a table trains the same segments as the Spark engine on the file; the password is not
kept with the version. Marked ``spark`` (a local[2] JVM).
"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("pyspark")

from core.cli import commands as cli  # noqa: E402
from core.versions.registry import Registry  # noqa: E402
from tests.test_postgres import PASSWORD, SAMPLE, USER, conn, load_sample, server, url  # noqa: E402,F401

# The in-process CLI joins the worker's shared Spark session (tests/conftest.py) instead of starting its own.
pytestmark = [pytest.mark.spark, pytest.mark.usefixtures("spark")]


@pytest.fixture(scope="module")
def jar():
    from core.engines.spark_engine import jdbc_jar

    found = jdbc_jar()
    if found is None:
        pytest.skip("the PostgreSQL JDBC driver is not installed (apt-get install libpostgresql-jdbc-java)")
    return found


def train(capsys, data, models, *extra) -> dict:
    """`train --engine spark --quiet --json` as tests/conftest.py's ``spark_trained_sample`` trains the file."""
    code = cli.main(["train", "--engine", "spark", "--data", str(data), "--models", str(models), "--quiet", "--json",
                     *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_spark_reads_a_table_through_jdbc_like_the_file(jar, url, conn, spark_trained_sample, tmp_path, capsys,  # noqa: F811
                                                        monkeypatch):
    monkeypatch.setenv("SEGMENTLENS_SPARK_MASTER", "local[2]")
    load_sample(conn, "public.spark_customers")
    code, _, printed = spark_trained_sample  # the same training of the file (SAMPLE), made once for the Spark tests
    assert code == 0
    by_file = json.loads(printed)
    with_pw = url.replace(f"{USER}@", f"{USER}:{PASSWORD}@") + "?table=public.spark_customers"
    by_db = train(capsys, with_pw, tmp_path / "db")
    meta = Registry(tmp_path / "db").metadata(by_db["model_version"])
    assert meta["engine"]["engine"] == "spark"
    assert meta["n_customers"] == by_file["n_customers"] and by_db["cleaning"] == by_file["cleaning"]
    assert [s["size"] for s in by_db["segments"]] == [s["size"] for s in by_file["segments"]]
    assert by_db["silhouette"] == pytest.approx(by_file["silhouette"], abs=1e-9)
    assert meta["data_url"] == f"{url}?table=public.spark_customers"
    assert PASSWORD not in (tmp_path / "db").joinpath("manifest.json").read_text()
    assert not any(PASSWORD in p.read_text(errors="ignore") for p in (tmp_path / "db").rglob("*.json"))


def test_spark_bad_sources_say_one_line(jar, url, conn, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SEGMENTLENS_SPARK_MASTER", "local[2]")
    for argv, expected in (
        (["--data", f"{url}?table=public.nothing_here"], 'relation "public.nothing_here" does not exist'),
        (["--data", url, "--query", "SELECT 1 AS x"], "reads a table through JDBC"),
    ):
        code = cli.main(["train", "--engine", "spark", "--models", str(tmp_path / "m"), "--quiet", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and expected in err[0], err
    assert Registry(tmp_path / "m").versions() == []
