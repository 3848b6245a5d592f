"""The Spark engine against the numpy engine and pandas: same rules, same segments, same artifacts.

One local[2] Spark session (tests/conftest.py ``spark``: one per worker, shared with the other Spark modules,
which run on the same worker; starting a JVM costs seconds); the 200K-row
synthetic Parquet file is written once. A Spark Connect server (from the pip package, started by
scripts/spark_connect_local.sh) serves the `sc://` round trip: train and score by the CLI on the sample.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark")

from core.cli import commands as cli  # noqa: E402
from core.versions.aggregates import aggregate_frame  # noqa: E402
from core.engines import get_engine  # noqa: E402
from core.fitting.model import SegmentationModel  # noqa: E402
from core.versions.pipeline import SAMPLE_PATH, prepare  # noqa: E402
from core.versions.registry import Registry  # noqa: E402
from core.reading.sampling import stratified_sample  # noqa: E402
from core.reading.schema import DEFAULT_FEATURES  # noqa: E402
from core.fitting.stability import adjusted_rand  # noqa: E402
from tests.conftest import ROOT, free_port  # noqa: E402

pytestmark = pytest.mark.spark

N_ROWS = 200_000


@pytest.fixture(scope="module")
def engine(spark):
    from core.engines.spark_engine import SparkEngine

    return SparkEngine(session=spark)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """200K synthetic customers as Parquet (`python -m core synth --out X.parquet`), and pandas' reading of it."""
    path = tmp_path_factory.mktemp("spark") / "customers.parquet"
    assert cli.main(["synth", "--n", str(N_ROWS), "--seed", "7", "--out", str(path)]) == 0
    return path, prepare(path)


@pytest.fixture(scope="module")
def fits(engine, big):
    """The Spark and numpy engines fitted on the same 200K customers."""
    path, prepared = big
    spark_fit = engine.fit(path, features=DEFAULT_FEATURES, k=6, seed=42, n_init=1)
    numpy_fit = get_engine("numpy").fit(prepared.frame, features=DEFAULT_FEATURES, k=6, seed=42, n_init=10,
                                        max_iter=300)
    return spark_fit, numpy_fit


def _nearest(X, fit):
    Z = (X - fit.mean) / fit.scale
    d = ((Z[:, None, :] - fit.centroids[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1), float(d.min(axis=1).sum())


def _same_frames(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    assert list(ours.columns) == list(theirs.columns)
    assert np.array_equal(ours.index.to_numpy(), theirs.index.to_numpy())
    for column in theirs.columns:
        a, b = theirs[column], ours[column]
        if pd.api.types.is_numeric_dtype(a):
            assert np.array_equal(a.to_numpy(float), b.to_numpy(float), equal_nan=True), column
        elif pd.api.types.is_datetime64_any_dtype(a):
            assert (a.to_numpy() == pd.to_datetime(b).to_numpy()).all(), column
        else:
            assert (a.fillna("<NA>").astype(str).to_numpy() == b.fillna("<NA>").astype(str).to_numpy()).all(), column


def test_spark_cleaning_and_features_equal_pandas_on_the_sample(spark):
    from core.reading import spark_cleaning as spark_rules

    ours = spark_rules.prepare(spark, str(SAMPLE_PATH))
    theirs = prepare(SAMPLE_PATH)
    assert ours.report.to_dict() == theirs.report.to_dict()
    assert ours.report.rows_used < ours.report.rows_read  # the sample's planted quirks were dropped
    _same_frames(spark_rules.to_pandas(ours.frame), theirs.frame)


def test_spark_fit_agrees_with_the_numpy_engine_on_200k_parquet(engine, big, fits):
    path, prepared = big
    spark_fit, numpy_fit = fits
    # Same cleaning on the Parquet file (Spark read it itself).
    assert engine.prepare(path).report.to_dict() == prepared.report.to_dict()
    assert spark_fit.rows == numpy_fit.rows == len(prepared.frame)
    # Spark's sample standard deviation was converted to the population one the numpy engine uses.
    np.testing.assert_allclose(spark_fit.mean, numpy_fit.mean, rtol=1e-9)
    np.testing.assert_allclose(spark_fit.scale, numpy_fit.scale, rtol=1e-9)
    X = prepared.frame[DEFAULT_FEATURES].to_numpy(dtype=float)
    spark_labels, spark_inertia = _nearest(X, spark_fit)
    numpy_labels, numpy_inertia = _nearest(X, numpy_fit)
    assert adjusted_rand(spark_labels, numpy_labels) >= 0.95
    assert abs(spark_fit.inertia / numpy_fit.inertia - 1) <= 0.01
    # The inertia the engine reports is the one of its centroids in the numpy engine's units.
    assert spark_fit.inertia == pytest.approx(spark_inertia, rel=1e-6)
    assert np.array_equal(np.bincount(spark_labels, minlength=6), spark_fit.sizes)
    assert spark_fit.info["engine"] == "spark" and spark_fit.info["master"].startswith("local")
    # Spark's own assignment (in Spark SQL) is numpy's argmin over the same centroids.
    assert np.array_equal(engine.labels(path, spark_fit), spark_labels)


def test_spark_aggregates_and_sample_equal_pandas(engine, big, fits):
    path, prepared = big
    model = SegmentationModel.from_fit(fits[0], seed=42)
    aggregates, sample, segments = engine.summarise(path, model, sample_size=5_000, seed=42)
    labels = model.predict(prepared.frame)
    expected = aggregate_frame(prepared.frame, labels, model.k)
    assert aggregates["columns"] == expected["columns"]
    assert aggregates["rows"] == expected["rows"] == len(prepared.frame)
    pairs = [(aggregates["overall"], expected["overall"])] + list(zip(aggregates["segments"], expected["segments"]))
    for ours, theirs in pairs:
        assert ours["count"] == theirs["count"] and ours["non_missing"] == theirs["non_missing"]
        for stat in ("mean", "std", "min", "max", "sum"):
            for column in expected["columns"]:
                a, b = ours[stat][column], theirs[stat][column]
                assert (a is None) == (b is None), (stat, column)
                if b is not None:
                    assert a == pytest.approx(b, rel=1e-6, abs=1e-6), (stat, column)
    drawn, drawn_labels = stratified_sample(prepared.frame, labels, 5_000, 42, k=model.k)
    assert np.array_equal(sample.index.to_numpy(), drawn.index.to_numpy())
    assert np.array_equal(segments, drawn_labels)
    assert np.array_equal(sample["Income"].to_numpy(), drawn["Income"].to_numpy())


@pytest.fixture(scope="module")
def trained(spark_trained_sample):
    """`python -m core train --engine spark` on the committed sample, in this process (same session; made once
    for the Spark modules: tests/conftest.py ``spark_trained_sample``)."""
    code, models, _ = spark_trained_sample
    return code, models


def test_cli_train_spark_registers_a_normal_version(trained, capsys):
    code, models = trained
    assert code == 0
    registry = Registry(models)
    version = registry.active_version()
    assert version is not None
    model, meta = registry.load(version)
    assert meta["engine"]["engine"] == "spark" and meta["engine"]["master"] == "local[2]"
    assert meta["engine"]["rows"] == meta["n_customers"] == prepare(SAMPLE_PATH).report.rows_used
    assert meta["engine"]["seconds"] > 0
    assert meta["cleaning"]["dropped"] == prepare(SAMPLE_PATH).report.to_dict()["dropped"]
    aggregates = registry.artifact_json(version, "aggregates")
    assert [s["count"] for s in aggregates["segments"]] == meta["segment_sizes"]
    assert registry.artifact(version, "sample") is not None
    # The API scores it with numpy, as any version.
    frame = prepare(SAMPLE_PATH).frame
    assert np.array_equal(np.bincount(model.predict(frame), minlength=model.k), meta["segment_sizes"])


def test_cli_score_spark_writes_parquet_like_the_numpy_scores(trained, tmp_path):
    code, models = trained
    assert code == 0
    out = tmp_path / "scores"
    assert cli.main(["score", "--engine", "spark", "--data", str(SAMPLE_PATH), "--models", str(models),
                     "--out", str(out), "--quiet"]) == 0
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["ID", "segment", "segment_name", "confidence"]
    model, meta = Registry(models).load()
    frame = prepare(SAMPLE_PATH).frame
    expected = model.score(frame)
    assert scores["ID"].tolist() == frame["ID"].tolist()
    assert np.array_equal(scores["segment"].to_numpy(), expected["segment"].to_numpy())
    np.testing.assert_allclose(scores["confidence"].to_numpy(), expected["confidence"].round(4).to_numpy(), atol=1e-4)
    assert scores["segment_name"].tolist() == [meta["segment_names"][s] for s in expected["segment"]]


def test_bad_input_one_line_exit_2_nothing_registered(engine, tmp_path, capsys, monkeypatch):
    from core.reading.loading import DataFileError

    good = pd.read_csv(SAMPLE_PATH, sep="\t")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1" + b"\x00not really parquet\x00" * 50 + b"PAR1")
    no_income = tmp_path / "no_income.parquet"
    good.drop(columns=["Income"]).to_parquet(no_income, index=False)
    # What Spark itself says (the CLI may refuse such a file even before Spark starts).
    with pytest.raises(DataFileError, match="corrupt.parquet"):
        engine.prepare(corrupt)
    with pytest.raises(DataFileError, match=r"no_income.parquet: missing required column\(s\) Income"):
        engine.prepare(no_income)
    cases = [
        ("spark://127.0.0.1:1", SAMPLE_PATH, "spark://127.0.0.1:1 is not reachable"),
        ("local[2]", corrupt, "corrupt.parquet"),
        ("local[2]", no_income, "no_income.parquet"),
    ]
    models = tmp_path / "models"
    for master, data, expected in cases:
        monkeypatch.setenv("SEGMENTLENS_SPARK_MASTER", master)
        started = time.perf_counter()
        code = cli.main(["train", "--engine", "spark", "--data", str(data), "--models", str(models), "--quiet"])
        seconds = time.perf_counter() - started
        err = capsys.readouterr().err.strip()
        assert code == 2, (master, data)
        assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
        assert expected in err, err
        assert not Registry(models).versions()
        if master.startswith("spark://"):
            assert seconds < 10, seconds  # fails fast, not after Spark's minute of retries


def test_without_pyspark_the_cli_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark -> ImportError
    monkeypatch.delitem(sys.modules, "core.engines.spark_engine", raising=False)
    code = cli.main(["train", "--engine", "spark", "--data", str(SAMPLE_PATH), "--models", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "pip install -r requirements-spark.txt" in err and "\n" not in err
    assert not Registry(tmp_path).versions()


def test_master_from_the_environment(monkeypatch):
    from core.engines.base import EngineError
    from core.engines.spark_engine import resolve_master

    monkeypatch.delenv("SEGMENTLENS_SPARK_MASTER", raising=False)
    assert resolve_master() == "local[*]"
    monkeypatch.setenv("SEGMENTLENS_SPARK_MASTER", "sc://spark.example:15002")
    assert resolve_master() == "sc://spark.example:15002"
    assert resolve_master("spark://a:7077,b:7077") == "spark://a:7077,b:7077"
    with pytest.raises(EngineError, match="not a Spark master"):
        resolve_master("http://example")


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    """A Spark Connect server on a free loopback port, started from the pip package as the README says
    (scripts/spark_connect_local.sh); stopped after the module."""
    import grpc  # noqa: F401  # the Connect client is in requirements-spark.txt: missing it is a failure

    tmp = tmp_path_factory.mktemp("connect")
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHON=sys.executable, WAIT="180")
    started = subprocess.run(["bash", str(ROOT / "scripts" / "spark_connect_local.sh"), str(port)], env=env,
                             capture_output=True, text=True, timeout=240)
    pid_file, log = tmp / "segmentlens-connect.pid", tmp / "segmentlens-connect.log"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    try:
        assert started.returncode == 0, started.stderr + (log.read_text()[-3000:] if log.exists() else "")
        yield f"sc://localhost:{port}"
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)  # ProcessLookupError once it has gone
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_train_and_score_through_spark_connect(connect_url, tmp_path):
    """`python -m core train/score --engine spark` with SEGMENTLENS_SPARK_MASTER=sc://localhost:PORT: the version
    records the Connect master, and its segments and scores are the numpy model's on the same customers."""
    models, out = tmp_path / "models", tmp_path / "scores"
    env = dict(os.environ, SEGMENTLENS_SPARK_MASTER=connect_url)

    def cli_run(*args):
        done = subprocess.run([sys.executable, "-m", "core", *args, "--engine", "spark", "--data", str(SAMPLE_PATH),
                               "--models", str(models), "--quiet"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    cli_run("train", "--k", "4", "--n-init", "1")  # one k-means|| start: the local tests cover several
    model, meta = Registry(models).load()
    frame = prepare(SAMPLE_PATH).frame
    assert meta["engine"]["engine"] == "spark" and meta["engine"]["master"] == connect_url
    assert model.k == 4 and meta["n_customers"] == meta["engine"]["rows"] == len(frame)
    assert np.array_equal(np.bincount(model.predict(frame), minlength=4), meta["segment_sizes"])
    aggregates = Registry(models).artifact_json(Registry(models).active_version(), "aggregates")
    assert [s["count"] for s in aggregates["segments"]] == meta["segment_sizes"]

    cli_run("score", "--out", str(out))
    scores = pd.read_parquet(out)
    expected = model.score(frame)
    assert scores["ID"].tolist() == frame["ID"].tolist()
    assert np.array_equal(scores["segment"].to_numpy(), expected["segment"].to_numpy())
    np.testing.assert_allclose(scores["confidence"].to_numpy(), expected["confidence"].round(4).to_numpy(), atol=1e-4)
