"""Monitoring of live predictions: core aggregation and alerts, the shared store, figures, the app in-process."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.insight import monitoring as cm
from core.insight.drift import psi
from core.reading.schema import FEATURE_LABELS
from dashboard.figures.monitoring import confidence_figure, drift_figure, segment_mix_figure, traffic_figure
from dashboard.monitoring import MonitoringStore


def _profile(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(50, 10, n), rng.integers(0, 5, n).astype(float)])
    seg = (X[:, 0] > 50).astype(int)
    conf = rng.uniform(0, 1, n)
    typ = rng.uniform(0, 1, n)
    return X, cm.reference_profile(X, ["Age", "Kids"], seg, conf, typ, 2), seg, conf, typ


def _rows(counts: dict, bucket=100):
    return [(bucket, m, b, n) for (m, b), n in counts.items()]


def test_reference_profile_uses_the_drift_deciles_and_shares():
    X, profile, seg, conf, _ = _profile()
    assert profile["features"] == ["Age", "Kids"] and profile["n"] == len(X)
    np.testing.assert_allclose(profile["edges"]["Age"], np.quantile(X[:, 0], np.linspace(0, 1, 11)[1:-1]))
    assert len(profile["edges"]["Kids"]) < 9  # tied deciles merge bins, as in core.insight.drift
    assert sum(profile["feature_shares"]["Age"]) == pytest.approx(1.0)
    assert profile["segment_shares"] == pytest.approx([np.mean(seg == 0), np.mean(seg == 1)])
    assert profile["low_confidence_share"] == pytest.approx(np.mean(conf < cm.LOW_CONFIDENCE))
    json.dumps(profile)  # JSON-ready


def test_counts_single_and_batch_paths_agree_and_keep_only_bins():
    X, profile, seg, conf, typ = _profile()
    rows = X[:10].tolist()
    small = cm.prediction_counts(profile, rows, seg[:10].tolist(), conf[:10].tolist(), typ[:10].tolist())
    total = {}
    for i in range(10):  # per customer (the API's single path)...
        for key, n in cm.prediction_counts(profile, [rows[i]], [seg[i]], [conf[i]], [typ[i]]).items():
            total[key] = total.get(key, 0) + n
    assert small == total
    big = cm.prediction_counts(profile, np.tile(X[:10], (3, 1)), np.tile(seg[:10], 3), np.tile(conf[:10], 3),
                               np.tile(typ[:10], 3))  # ...and the array path
    assert big == {k: 3 * v for k, v in small.items()}
    assert small[("n", 0)] == 10 and sum(v for (m, _), v in small.items() if m == "f:Age") == 10
    assert all(isinstance(b, int) and 0 <= b <= 10 for (_, b) in small)  # bin indices, never values


def test_psi_from_counters_equals_core_drift_psi():
    X, profile, seg, conf, typ = _profile()
    rng = np.random.default_rng(3)
    new = X[rng.choice(len(X), 600)]
    new[:, 0] += 8  # Age shifted, Kids not
    counts = cm.prediction_counts(profile, new, (new[:, 0] > 50).astype(int), rng.uniform(0, 1, 600),
                                  rng.uniform(0, 1, 600))
    report = cm.summarise(profile, _rows(counts), bucket_seconds=300, names=["A", "B"])
    by = {f["feature"]: f for f in report["features"]}
    assert by["Age"]["psi"] == pytest.approx(psi(X[:, 0], new[:, 0]), rel=1e-9)
    assert by["Kids"]["psi"] == pytest.approx(psi(X[:, 1], new[:, 1]), rel=1e-9)
    kinds = {(a["kind"], a.get("feature")) for a in report["alerts"]}
    assert ("feature_drift", "Age") in kinds and ("feature_drift", "Kids") not in kinds
    assert report["recommendation"] == "retrain" and report["predictions"] == 600
    assert report["traffic"] == [{"start": 30000, "predictions": 600,
                                  "low_confidence_share": pytest.approx(report["low_confidence_share"])}]


def test_no_alert_for_customers_like_the_training_ones_or_too_few():
    X, profile, seg, conf, typ = _profile()
    idx = np.random.default_rng(5).choice(len(X), 800)
    counts = cm.prediction_counts(profile, X[idx], seg[idx], conf[idx], typ[idx])
    report = cm.summarise(profile, _rows(counts), bucket_seconds=300)
    assert report["alerts"] == [] and report["recommendation"] == "keep"
    few = cm.prediction_counts(profile, X[:10] + 100, seg[:10], np.zeros(10), typ[:10])
    report = cm.summarise(profile, _rows(few), bucket_seconds=300)
    assert report["alerts"] == [] and "only 10 prediction" in report["reasons"][0]


def test_low_confidence_doubled_and_segment_mix_alerts():
    X, profile, seg, conf, typ = _profile()
    n = 200
    counts = cm.prediction_counts(profile, X[:n], np.ones(n, int), np.full(n, 0.05), typ[:n])
    report = cm.summarise(profile, _rows(counts), bucket_seconds=300, names=["A", "B"])
    kinds = {a["kind"]: a for a in report["alerts"]}
    assert kinds["low_confidence"]["value"] == 1.0
    assert kinds["segment_mix"]["segment"] in (0, 1) and "segment mix PSI" in kinds["segment_mix"]["message"]
    assert report["segments"][1]["incoming_share"] == 1.0
    assert report["segments"][1]["training_share"] == pytest.approx(profile["segment_shares"][1])


def test_store_counts_buckets_windows_and_jobs(tmp_path):
    store = MonitoringStore(tmp_path / "m.sqlite3")
    store.add("v1", 10, {("n", 0): 2, ("conf", 0): 1, ("conf", 5): 1, ("seg", 1): 2})
    store.add("v1", 10, {("n", 0): 1, ("conf", 0): 1, ("seg", 0): 1})
    store.add("v1", 11, {("n", 0): 4, ("seg", 0): 4})
    store.add("v2", 11, {("n", 0): 9})
    rows = sorted(store.rows("v1"))
    assert (10, "n", 0, 3) in rows and (11, "n", 0, 4) in rows and (-1, "seg", 0, 5) in rows
    assert (-1, "seg", 1, 2) in rows and (10, "conf", 0, 2) in rows
    assert sorted(store.rows("v1", since_bucket=11)) == [(-1, "seg", 0, 4), (11, "n", 0, 4)]
    # A second handle on the same file (another worker) sees the same counters.
    assert sorted(MonitoringStore(tmp_path / "m.sqlite3").rows("v1")) == rows
    store.save_reference("v1", {"k": 2})
    store.save_reference("v1", {"k": 3})  # the first writer wins
    assert store.reference("v1") == {"k": 2} and store.reference("v9") is None
    store.reset(1234.5, "alice")
    assert store.rows("v1") == [] and store.window() == {"start": 1234.5, "by": "alice"}
    assert store.reference("v1") == {"k": 2}  # the reference outlives a reset
    store.record_job("retrain", 3.0)
    store.record_job("retrain", 0.2)
    jobs = store.jobs()["retrain"]
    assert jobs["n"] == 2 and jobs["seconds"] == pytest.approx(3.2) and jobs["bins"] == {0: 1, 3: 1}


def test_figures_show_values_and_escape_names():
    traffic = [{"start": 1_800_000_000, "predictions": 5, "low_confidence_share": 0.4},
               {"start": 1_800_000_300, "predictions": 7, "low_confidence_share": None}]
    fig = traffic_figure(traffic, 300)
    assert list(fig.data[0].y) == [5, 7] and "per 5 min" in fig.layout.yaxis.title.text
    segments = [{"segment": 0, "name": "<b>VIP</b>", "predictions": 3, "training_share": 0.5, "incoming_share": 0.75},
                {"segment": 1, "name": "B", "predictions": 1, "training_share": 0.5, "incoming_share": 0.25}]
    fig = segment_mix_figure(segments)
    assert [t.name for t in fig.data] == ["Training", "Incoming"] and list(fig.data[1].y) == [0.75, 0.25]
    assert "<b>" not in fig.data[1].customdata[0] and "&lt;b&gt;VIP" in fig.data[1].customdata[0]
    fig = confidence_figure(traffic, 0.1, 0.2, 2.0)
    assert list(fig.data[0].y) == [0.4] and fig.layout.shapes[1].y0 == pytest.approx(0.2)
    fig = drift_figure([{"feature": "Income", "psi": 0.5, "band": "significant shift"},
                        {"feature": "Age", "psi": None, "band": None}], 0.2, 0.1, 0.25)
    assert list(fig.data[0].y) == [FEATURE_LABELS["Income"]] and list(fig.data[0].x) == [0.5]
    assert sorted(s.x0 for s in fig.layout.shapes) == [0.1, 0.2, 0.25]
    assert "No predictions" in traffic_figure([], 300).layout.annotations[0].text


def test_app_counts_api_and_what_if_and_reports(tmp_path, monkeypatch):
    from dashboard.factory import create_app
    from tests.conftest import SAMPLE

    # create_app writes its overrides to the environment (for background jobs): undone after the test.
    for name, value in (("SEGMENTLENS_RATE_LIMIT", "off"), ("SEGMENTLENS_MODELS", str(tmp_path / "models")),
                        ("SEGMENTLENS_CACHE_DIR", str(tmp_path / "cache")), ("SEGMENTLENS_DATA", str(SAMPLE))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    app = create_app()
    client = app.server.test_client()
    services = app.server.extensions["segmentlens"]
    model = services.live_model().model
    customer = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
                "NumWebVisitsMonth": 5, "Recency": 41}
    for _ in range(3):
        assert client.post("/api/v1/predict", json=customer).status_code == 200
    assert client.post("/api/v1/predict", json={"customers": [customer] * 20}).status_code == 200
    with app.server.test_request_context("/"):
        answer = services.what_if({f: str(customer[f]) for f in model.features})
    assert not answer["errors"]
    body = client.get("/api/v1/monitoring").get_json()
    assert body["predictions"] == 24 and body["model_version"] == services.live_model().version
    seg = model.score_one([customer[f] for f in model.features])[0]
    assert body["segments"][seg]["predictions"] == 24
    text = client.get("/metrics").get_data(as_text=True)
    assert f'segmentlens_predictions_total{{model_version="{body["model_version"]}",segment="{seg}",source="api"}} 23.0' in text
    assert 'source="what_if"} 1.0' in text and "segmentlens_model_info{" in text
    assert 'segmentlens_request_duration_seconds_count{endpoint="/api/v1/predict",status="200"} 4.0' in text
    assert client.get("/api/v1/monitoring?hours=abc").status_code == 422
    assert client.get("/api/v1/monitoring?hours=1").get_json()["predictions"] == 24
    assert "/api/v1/monitoring" in client.get("/api/v1/openapi.json").get_json()["paths"]
    # Once an API key exists, /metrics and /api/v1/monitoring need one (any role), like the rest of the API.
    from core.access.accounts import AccountStore

    key = AccountStore(tmp_path / "models").create_key("scraper", "viewer")
    assert client.get("/metrics").status_code == 401
    assert client.get("/api/v1/monitoring").status_code == 401
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/metrics", headers=auth).status_code == 200
    assert client.get("/api/v1/monitoring", headers=auth).get_json()["predictions"] == 24


def _sleepy_job(key, progress_key, args, context):
    import time as _time

    _time.sleep(0.05)


def test_background_jobs_are_timed_into_the_store(tmp_path):
    import os

    import diskcache

    from dashboard.monitoring import TimedDiskcacheManager

    manager = TimedDiskcacheManager(diskcache.Cache(str(tmp_path / "background")), tmp_path)
    pid = manager.call_job_fn("k1", _sleepy_job, [], {"outputs_list": {"id": "data-retrain-store", "property": "data"}})
    os.waitpid(pid, 0)
    jobs = MonitoringStore(tmp_path / "monitoring.sqlite3").jobs()
    assert jobs["data-retrain-store"]["n"] == 1 and 0.04 < jobs["data-retrain-store"]["seconds"] < 5
