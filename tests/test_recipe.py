"""One recipe (core.versions.pipeline.make_version): every way to make a version gives the same kind of version.

Each entry point makes a first version, a user renames one of its segments, and the same entry point
makes a second version with another k: the second keeps the renamed segment's number (so its colour)
and name, and every version has the same artifacts (mapping when mapped, aggregates, sample, views).
"""
from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from core.cli import commands as cli
from core.versions import views as views_mod
from core.versions.pipeline import retrain
from core.versions.registry import Registry
from core.reading.synth import write_sample
from tests.helpers import transaction_log

RENAMED = "Our best customers"


@pytest.fixture(scope="module")
def customers(tmp_path_factory):
    """A small canonical customer file (fast to fit and to compute views on)."""
    path = tmp_path_factory.mktemp("recipe-data") / "customers.tsv"
    write_sample(path, n=1500, seed=5)
    return path


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    """A customer table with none of the canonical names (read through a suggested mapping)."""
    rng = np.random.default_rng(3)
    n = 400
    table = pd.DataFrame({
        "client_ref": np.arange(5000, 5000 + n), "age_years": rng.integers(20, 80, n),
        "yearly_salary": rng.lognormal(10.8, 0.4, n).round(2), "wine_spend": rng.gamma(1.0, 200, n).round(2),
        "web_orders": rng.integers(0, 12, n), "store_orders": rng.integers(0, 15, n),
        "days_since_last_order": rng.integers(0, 100, n),
        "joined": (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")).strftime("%Y-%m-%d"),
    })
    path = tmp_path_factory.mktemp("recipe-crm") / "crm.csv"
    table.to_csv(path, index=False)
    return path


@pytest.fixture(autouse=True)
def views_on_small_data(monkeypatch, tmp_path):
    monkeypatch.setattr(views_mod, "TRAINING_MIN_ROWS", 0)  # stored from 5,000 customers on; these files are smaller
    monkeypatch.setenv("SEGMENTLENS_CACHE_DIR", str(tmp_path / "cache"))


def _cli_train(data, models, k, *extra):
    assert cli.main(["train", "--data", str(data), "--models", str(models), "--k", str(k), "--quiet", "--json",
                     *extra]) == 0


def _retrain_upload(data, models, k):
    """The dashboard's retrain of an upload (the /data page's path), then activated as a person would."""
    from dashboard.services import Services

    registry = Registry(models)
    services = Services(registry, None, data)
    if registry.active_version() is None:  # the first start trains the configured data
        services.ensure_model()
        return
    report = services.accept_upload("data:text/csv;base64," + base64.b64encode(data.read_bytes()).decode(),
                                    data.name)
    result = services.retrain_upload(report["token"], data.name, k, None)
    registry.activate(result["version"])


def _first_start(data, models, k):
    """The first start's training (`python app.py` with SEGMENTLENS_DATA), then the CLI for the second version."""
    from dashboard.services import Services

    registry = Registry(models)
    if registry.active_version() is None:
        assert Services(registry, None, data).ensure_model() == registry.active_version()
        return
    _cli_train(data, models, k)


def _spark(data, models, k):
    pytest.importorskip("pyspark")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEGMENTLENS_SPARK_MASTER", "local[2]")
    try:
        _cli_train(data, models, k, "--engine", "spark")
    finally:
        mp.undo()


WAYS = {
    "cli canonical": ("customers", lambda d, m, k: _cli_train(d, m, k)),
    "cli streamed": ("customers", lambda d, m, k: _cli_train(d, m, k, "--chunk-rows", "1000",
                                                                  "--sample-size", "500")),
    "cli customer table": ("crm", lambda d, m, k: _cli_train(d, m, k, "--input", "customers")),
    "cli transaction log": ("log", lambda d, m, k: _cli_train(d, m, k)),
    "dashboard retrain": ("customers", _retrain_upload),
    "first start": ("customers", _first_start),
    "first start on a log": ("log", _first_start),
    "spark": ("customers", _spark),
}


@pytest.mark.parametrize("way", [pytest.param(w, marks=pytest.mark.spark) if w == "spark" else w for w in WAYS])
def test_every_way_makes_the_same_kind_of_version(way, customers, crm, tmp_path):
    data_kind, make = WAYS[way]
    data = {"customers": customers, "crm": crm, "log": transaction_log(tmp_path) if data_kind == "log" else None}[
        data_kind]
    models = tmp_path / "models"
    registry = Registry(models)
    make(data, models, 3)
    first = registry.active_version()
    assert first is not None
    first_meta = registry.metadata(first)
    mapped = data_kind != "customers"
    expected = {"aggregates", "sample", "views"} | ({"mapping"} if mapped else set())
    assert set(registry.metadata_entry(first).get("artifacts") or {}) >= expected
    assert first_meta["identity"]["reference_version"] is None

    names = list(first_meta["segment_names"])
    names[0] = RENAMED
    registry.update_meta(first, segment_names=names)
    k_first = int(first_meta["k"])  # 3, or the first start's default 6
    make(data, models, k_first + 1)
    second = registry.active_version()
    assert second != first
    meta = registry.metadata(second)
    assert set(registry.metadata_entry(second).get("artifacts") or {}) >= expected
    identity = meta["identity"]
    assert identity["reference_version"] == first and identity["method"] != "none"
    # Every segment of the first version is matched; the renamed one keeps its number (its colour) and name.
    assert sorted(int(r) for r in identity["matched"]) == list(range(k_first))
    assert identity["matched"]["0"] == 0 and meta["segment_names"][0] == RENAMED
    assert meta["k"] == k_first + 1 and len(set(meta["segment_names"])) == k_first + 1
    views = registry.artifact_json(second, "views")
    assert views["version"] == second and {"analysis", "overview"} <= set(views["views"])
    # The sample's segments are the version's own numbering: its model gives every sampled customer the same.
    from core.versions.sample_basis import sampled_customers

    basis = sampled_customers(registry, second, meta) if data_kind == "customers" else None
    if basis is not None:
        model, _ = registry.load(second)
        assert (model.predict(basis.prepared.frame) == basis.labels).all()
        assert way != "cli streamed" or basis.rows == 500


def test_k_is_checked_in_one_place(customers, tmp_path, capsys):
    """The same bound and message for every input kind and entry point."""
    from core.engines import K_MAX, check_k

    with pytest.raises(ValueError, match=r"k must be between 2 and 9 for 10 customers, got 12"):
        check_k(12, 10)
    assert check_k(K_MAX, 10_000) == K_MAX
    assert cli.main(["train", "--data", str(customers), "--models", str(tmp_path / "m"), "--k", "51", "--quiet"]) == 2
    assert "k must be between 2 and 50" in capsys.readouterr().err
    with pytest.raises(ValueError, match="k must be between 2 and 50"):
        retrain(customers, registry=Registry(tmp_path / "m2"), k=60)
    assert not (tmp_path / "m2" / "manifest.json").exists()


def test_cli_train_payload_names_the_input(customers, crm, tmp_path, capsys):
    """`train --json` reports the same fields for every input kind."""
    _cli_train(customers, tmp_path / "a", 3)
    canonical = json.loads(capsys.readouterr().out)
    _cli_train(crm, tmp_path / "b", 3, "--input", "customers")
    mapped = json.loads(capsys.readouterr().out)
    assert canonical["input"] == "canonical" and mapped["input"] == "customers"
    assert set(canonical) == set(mapped)


# ------------------------------------------------------------------------------------------ one identity
def _numbers_agree(data, tmp_path, capsys):
    """`train --k 3` then `train --k 6`; then every command's segment of each customer is the version's."""
    models = str(tmp_path / "models")
    for k in (3, 6):
        _cli_train(data, models, k)
    capsys.readouterr()
    scores = tmp_path / "scores.csv"
    assert cli.main(["score", "--data", str(data), "--models", models, "--out", str(scores), "--quiet"]) == 0
    scored = pd.read_csv(scores)
    counts = scored["segment"].value_counts().reindex(range(6), fill_value=0).tolist()
    names = Registry(models).metadata(Registry(models).active_version())["segment_names"]
    assert scored.groupby("segment")["segment_name"].first().tolist() == names

    assert cli.main(["stability", "--data", str(data), "--models", models, "--k", "6", "--resamples", "2",
                     "--quiet", "--json"]) == 0
    stability = json.loads(capsys.readouterr().out)
    assert [s["size"] for s in stability["segments"]] == counts
    assert [s["name"] for s in stability["segments"]] == names

    assert cli.main(["rules", "--data", str(data), "--models", models, "--quiet", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    assert [s["n_segment"] for s in rules["segments"]] == counts
    assert [s["name"] for s in rules["segments"]] == names

    audience = tmp_path / "audience.csv"
    assert cli.main(["campaign", "plan", "--data", str(data), "--models", models, "--cost", "1", "--revenue", "20",
                     "--top-n", "300", "--out", str(audience), "--json"]) == 0
    planned = pd.read_csv(audience).merge(scored, on="ID", suffixes=("", "_scored"))
    assert len(planned) == 300 and (planned["segment"] == planned["segment_scored"]).all()


def test_segment_numbers_agree_between_commands(sample_path, tmp_path, capsys):
    _numbers_agree(sample_path, tmp_path, capsys)


def test_segment_numbers_agree_between_commands_on_the_real_file(real_data_path, tmp_path, capsys):
    _numbers_agree(real_data_path, tmp_path, capsys)


# ------------------------------------------------------------------------------------------ core analysis
def test_analysis_of_a_version_in_core_without_the_dashboard(customers, tmp_path):
    """`analysis_of(registry, version)` works in a notebook: from the stored views while they hold, else computed."""
    import shutil

    from core.insight.analysis import analysis_of, basis_of

    data = tmp_path / "customers.tsv"
    shutil.copy(customers, data)
    _cli_train(data, tmp_path / "m", 3)
    registry = Registry(tmp_path / "m")
    version = registry.active_version()
    views = registry.artifact_json(version, "views")
    basis = basis_of(registry, version)
    assert basis.sample is None and basis.path == data.resolve() and basis.matches(views)
    stored = analysis_of(registry, version)
    assert stored.from_views and not stored.frame_loaded and stored.version == version
    assert int(stored.sizes["n"].sum()) == registry.metadata(version)["n_customers"]
    with data.open("a") as fh:  # the file changed: its views no longer hold, the analysis is computed
        fh.write("")
    import os

    os.utime(data, ns=(1, 1))
    assert not basis_of(registry, version).matches(views)
    computed = analysis_of(registry, version)
    assert not computed.from_views and computed.sizes.equals(stored.sizes)
    assert (computed.labels == registry.load(version)[0].predict(computed.frame)).all()
