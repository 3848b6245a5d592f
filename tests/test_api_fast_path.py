"""The keyed prediction path after issue 29's cuts: what each cut must keep (in process, the app's own hooks)."""
from __future__ import annotations

import math
import shutil
from bisect import bisect_left, bisect_right

import pytest

CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}


@pytest.fixture()
def keyed_app(tmp_path, monkeypatch, warm_models):
    from core.access.accounts import AccountStore
    from dashboard.factory import create_app
    from tests.conftest import SAMPLE

    shutil.copytree(warm_models, tmp_path / "models")
    for name, value in (("SEGMENTLENS_RATE_LIMIT", "off"), ("SEGMENTLENS_MODELS", str(tmp_path / "models")),
                        ("SEGMENTLENS_CACHE_DIR", str(tmp_path / "cache")), ("SEGMENTLENS_DATA", str(SAMPLE))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    app = create_app()
    key = AccountStore(tmp_path / "models").create_key("fast-path", "viewer")
    return app.server, key


def test_api_answers_carry_every_security_header_with_the_stricter_api_policy(keyed_app):
    server, key = keyed_app
    client = server.test_client()
    answer = client.post("/api/v1/predict", json=CUSTOMER, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    headers = answer.headers
    csp = headers["Content-Security-Policy"]
    assert {d.strip() for d in csp.split(";")} == {"default-src 'self'", "object-src 'none'", "base-uri 'self'",
                                                   "form-action 'self'", "frame-ancestors 'none'"}
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin" and headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Permissions-Policy"].startswith("camera=()")
    assert headers["Cache-Control"] == "no-store" and float(headers["X-Server-Time-ms"]) > 0
    assert headers["Vary"] == "Accept-Encoding"
    assert len(headers.getlist("Cache-Control")) == 1 and len(headers.getlist("Content-Security-Policy")) == 1
    # An error answer of the API gets them too; a page keeps its own policy (scripts by hash).
    refused = client.post("/api/v1/predict", json=CUSTOMER, headers={"Authorization": "Bearer sl_wrong"})
    assert refused.status_code == 401 and refused.headers["Content-Security-Policy"] == csp
    page = client.get("/login")
    assert "script-src 'self' 'sha256-" in page.headers["Content-Security-Policy"]


def test_a_keyed_call_never_sets_a_cookie_and_a_revoked_key_is_refused_at_once(keyed_app):
    from core.access.accounts import AccountStore

    server, key = keyed_app
    client = server.test_client()
    client.set_cookie("segmentlens_session", "not-a-valid-session", domain="localhost")
    client.set_cookie("remember_token", "x", domain="localhost")
    answer = client.post("/api/v1/predict", json=CUSTOMER, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200 and "Set-Cookie" not in answer.headers
    AccountStore(server.extensions["segmentlens"].registry.root).revoke_key("fast-path")
    answer = client.post("/api/v1/predict", json=CUSTOMER, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorized"


def _score_one_before(model, values):
    """score_one as written before issue 29's map/operator form (generators), for comparison bit for bit."""
    mean, scale = model.mean_.tolist(), model.scale_.tolist()
    cents, members = model.centroids_.tolist(), [m.tolist() for m in model.member_distances_]
    z = [(v - m) / s for v, m, s in zip(values, mean, scale)]
    dists = [math.sqrt(sum((a - b) * (a - b) for a, b in zip(z, c))) for c in cents]
    seg = min(range(len(dists)), key=dists.__getitem__)
    d1 = dists[seg]
    d2 = min(d for i, d in enumerate(dists) if i != seg)
    conf = 1.0 - d1 / d2 if d2 > 0 else 0.0
    ref = members[seg]
    m, left, right = len(ref), bisect_left(ref, d1), bisect_right(ref, d1)
    others = m - 1 if right > left else m
    return seg, conf, (m - right) / others if others > 0 else 1.0, dists


def test_score_one_is_bit_identical_to_its_former_form_on_every_training_customer(keyed_app):
    server, _key = keyed_app
    services = server.extensions["segmentlens"]
    model = services.live_model().model
    frame = services.analysis().frame
    rows = frame[list(model.features)].to_numpy(dtype=float).tolist()
    assert len(rows) > 2000
    for values in rows:
        assert model.score_one(values) == _score_one_before(model, values)
    ties = [0.0] * len(model.features)  # the first nearest segment wins a tie, as before
    assert model.score_one(ties) == _score_one_before(model, ties)


def test_pending_counters_grouped_by_version_and_bucket_survive_a_failed_write(tmp_path):
    from tests.test_monitoring import _buffered_monitor, _stored

    monitor = _buffered_monitor(tmp_path, flush_seconds=60)
    monitor.store.save_reference("v2", monitor.store.reference("v1"))
    monitor.record(None, "v1", [[40.0, 1.0]], [0], [0.5], [0.7])
    monitor.record(None, "v1", [[40.0, 1.0]], [0], [0.5], [0.7])  # the same bins: no new counter
    one = monitor.pending()
    monitor.record(None, "v2", [[40.0, 1.0]], [1], [0.5], [0.7])
    assert one == 6 and monitor.pending() == 12  # n, seg, conf, typ and two features, per version
    real, calls = monitor.store.add_rows, []

    def locked_once(rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        real(rows)

    monitor.store.add_rows = locked_once
    monitor.flush()  # refused: every counter kept, none doubled
    assert monitor.pending() == 12 and monitor.store.rows("v1") == []
    monitor.record(None, "v1", [[40.0, 1.0]], [1], [0.5], [0.7])
    monitor.flush()
    assert monitor.pending() == 0 and calls == [12, 13]
    assert _stored(monitor.store) == {("n", 0): 3, ("seg", 0): 2, ("seg", 1): 1}
    assert _stored(monitor.store, "v2") == {("n", 0): 1, ("seg", 1): 1}
