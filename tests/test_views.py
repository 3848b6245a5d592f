"""Precomputed views (core/versions/views.py): stored by training, served without computation, equal to computing."""
import json

import numpy as np
import pandas as pd
import pytest

from core.versions import views as views_mod
from core.versions.pipeline import prepare
from core.versions.registry import Registry
from core.versions.pipeline import train
from dashboard.services import Services, build_analysis


def _no_computation(monkeypatch):
    """Make every computation a page's first request could start raise instead."""
    def refuse(name):
        def computed(*_a, **_k):
            raise AssertionError(f"{name} computed on the request path")
        return computed

    import core.insight.analysis
    import core.fitting.stability
    import dashboard.services.analysis as analysis

    for module, name in ((analysis, "build_analysis"), (analysis, "sweep"), (core.insight.analysis, "prepare_model_data"),
                         (analysis, "score_frame"), (core.insight.analysis, "build_analysis"), (core.insight.analysis, "score_frame"),
                         (core.fitting.stability, "bootstrap_stability"), (core.fitting.stability, "temporal_stability")):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, refuse(name))


@pytest.fixture(scope="module")
def customers(tmp_path_factory):
    """A small customer file (fast views; the sample would do, slower)."""
    from core.reading.synth import write_sample

    path = tmp_path_factory.mktemp("views-data") / "customers.tsv"
    write_sample(path, n=600, seed=3)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, customers):
    """A version trained by the training job (CLI path), with its stored views."""
    registry = Registry(tmp_path_factory.mktemp("views") / "models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(views_mod, "TRAINING_MIN_ROWS", 0)  # stored from 5,000 customers on; this file is smaller
        version, model, meta = train(customers, registry=registry)
    return registry, version, model, customers


def test_training_stores_views_equal_to_computing_them(trained):
    registry, version, model, SAMPLE = trained
    stored = registry.artifact_json(version, "views")
    assert stored["schema"] == views_mod.SCHEMA and stored["version"] == version
    assert set(stored["views"]) == {"analysis", "overview", "rules", "stability", "sweep"}
    assert stored["views"]["analysis"]["data"]["path"] == str(SAMPLE.resolve())
    assert views_mod.matches_data(stored, SAMPLE)
    meta = registry.metadata(version)
    full = build_analysis(model, meta, prepare(SAMPLE))
    from dashboard.services.analysis import analysis_from_views

    lazy = analysis_from_views(stored, meta, lambda: (full.frame, full.coords))
    for name in ("sizes", "zscores", "stats", "product_mix", "channel_mix", "campaigns", "economics", "lift"):
        pd.testing.assert_frame_equal(getattr(lazy, name), getattr(full, name), check_exact=True)
    for name in ("centroid_coords", "silhouette", "silhouette_rows", "scaler_mean", "scaler_scale"):
        assert np.array_equal(getattr(lazy, name), getattr(full, name))
    assert lazy.personas == full.personas and lazy.cleaning == full.cleaning and lazy.fingerprint == full.fingerprint
    pd.testing.assert_frame_equal(lazy.numbers, full.numbers, check_exact=True)
    assert (lazy.n_customers, lazy.income_mean) == (len(full.frame), full.frame["Income"].mean())
    assert not lazy.frame_loaded  # nothing above read the customers
    from core.insight.explanation import explain_model

    assert stored["views"]["rules"]["segments"] == explain_model(model, full.frame, full.labels).to_dict()["segments"]
    # Stability and the sweep round-trip exactly (the page shows to_dict() and summary()).
    from core.fitting.stability import bootstrap_stability, temporal_stability

    Z = model.transform(full.frame)
    boot = bootstrap_stability(Z, full.labels, resamples=views_mod.DEFAULT_RESAMPLES, seed=meta["seed"],
                               n_init=meta["n_init"])
    stab = stored["views"]["stability"]
    assert views_mod.bootstrap_from_json(stab["bootstrap"]).to_dict() == boot.to_dict()
    assert views_mod.temporal_from_json(stab["temporal"]).to_dict() == \
        temporal_stability(full.frame, model, window="quarter").to_dict()
    # Strict JSON: no NaN tokens.
    json.loads(registry.artifact(version, "views"), parse_constant=lambda c: pytest.fail(f"{c} in views"))


def test_first_request_is_served_from_stored_views(trained, monkeypatch):
    registry, version, _, SAMPLE = trained
    _no_computation(monkeypatch)
    services = Services(registry, None, SAMPLE)
    a = services.analysis()
    assert a.version == version and a.from_views and not a.frame_loaded
    assert int(a.numbers["customers"].sum()) == a.n_customers > 0
    result = services.stability(views_mod.DEFAULT_RESAMPLES, "quarter")
    assert result["bootstrap"].resamples == views_mod.DEFAULT_RESAMPLES and result["temporal"].snapshots
    assert services.sweep(*views_mod.SWEEP_RANGE).recommended_k >= 2
    assert services.view("stability-test", lambda: "built") == "built"
    assert not a.frame_loaded  # overview, stability and diagnostics' defaults came from the views
    with pytest.raises(AssertionError, match="computed on the request path"):
        services.stability(100, "quarter")  # other settings are computed (in a background job), as before


def test_version_without_views_is_warmed_at_start_then_served(customers, tmp_path, monkeypatch):
    SAMPLE = customers
    registry = Registry(tmp_path / "models")
    version, _, _ = train(SAMPLE, registry=registry)  # small data: the training job leaves it
    assert registry.artifact(version, "views") is None
    services = Services(registry, None, SAMPLE)
    assert services.analyses.ensure_views() == version  # what create_app does before taking visitors
    assert services.analyses.ensure_views() is None  # present and matching: nothing to do
    assert views_mod.matches_data(registry.artifact_json(version, "views"), SAMPLE)
    _no_computation(monkeypatch)
    fresh = Services(registry, None, SAMPLE)  # another worker: an empty cache
    assert fresh.analysis().from_views
    assert fresh.stability(views_mod.DEFAULT_RESAMPLES, "quarter")["version"] == version


def test_views_of_other_data_are_not_used(trained, tmp_path):
    registry, version, _, SAMPLE = trained
    stored = registry.artifact_json(version, "views")
    copy = tmp_path / "customers.tsv"
    copy.write_bytes(SAMPLE.read_bytes())
    assert not views_mod.matches_data(stored, copy)  # another file, though the same bytes
    assert not views_mod.matches_data({**stored, "schema": 99}, SAMPLE)
    assert not views_mod.matches_data(None, SAMPLE)
