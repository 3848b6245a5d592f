"""The keyed prediction path after issue 29's cuts: what each cut must keep (in process, the app's own hooks).

dashboard.api_fast answers a keyed prediction beneath Flask: its answers must be Flask's, byte for byte and
header for header, every other request must reach Flask unchanged, and the rate limiter must count each
request once, whichever of the two answers it.
"""
from __future__ import annotations

import io
import json
import math
import shutil
from bisect import bisect_left, bisect_right

import flask
import pytest

CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}


def _keyed_app(tmp_path, monkeypatch, warm_models, rate="off"):
    from core.access.accounts import AccountStore
    from dashboard.factory import create_app
    from tests.conftest import SAMPLE

    shutil.copytree(warm_models, tmp_path / "models")
    for name, value in (("SEGMENTLENS_RATE_LIMIT", rate), ("SEGMENTLENS_MODELS", str(tmp_path / "models")),
                        ("SEGMENTLENS_CACHE_DIR", str(tmp_path / "cache")), ("SEGMENTLENS_DATA", str(SAMPLE))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    app = create_app()
    key = AccountStore(tmp_path / "models").create_key("fast-path", "viewer")
    return app.server, key


@pytest.fixture()
def keyed_app(tmp_path, monkeypatch, warm_models):
    return _keyed_app(tmp_path, monkeypatch, warm_models)


def _environ(key, body: bytes, content_type="application/json", **extra):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/predict", "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": content_type,
               "CONTENT_LENGTH": str(len(body)), "HTTP_HOST": "localhost", "HTTP_AUTHORIZATION": f"Bearer {key}",
               "wsgi.errors": io.StringIO(), "wsgi.multithread": False, "wsgi.multiprocess": True,
               "wsgi.run_once": False, "wsgi.version": (1, 0), **extra}
    environ["wsgi.input"] = io.BytesIO(body)
    return environ


def _call(app, environ):
    """(status, headers, body) of one WSGI call."""
    seen = []
    chunks = app(environ, lambda status, headers, exc_info=None: seen.append((status, headers)))
    body = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return seen[0][0], seen[0][1], body


def _layer(server):
    from dashboard.api_fast import KeyedPredict

    app = server.wsgi_app
    while not isinstance(app, KeyedPredict):
        app = app.app
    return app


class _FlaskRequests:
    """Counts the requests Flask itself handles (its request_started signal)."""

    def __init__(self, server):
        self.n = 0
        flask.request_started.connect(self._count, server, weak=False)

    def _count(self, _sender, **_extra):
        self.n += 1


def _without_time(headers):
    return [(name, value) for name, value in headers if name != "X-Server-Time-ms"]


def test_fast_answers_equal_flasks_byte_for_byte_and_header_for_header(keyed_app):
    server, key = keyed_app
    layer, flask_requests = _layer(server), _FlaskRequests(server)
    customers = [CUSTOMER, {**CUSTOMER, "ID": 7}, {"customers": [CUSTOMER, {**CUSTOMER, "Income": 21_000}]},
                 {"customers": [{**CUSTOMER, "ID": "c-1"}]}]
    _call(server.wsgi_app, _environ(key, json.dumps(CUSTOMER).encode()))  # the first keyed call opens the key store
    for customer in customers:
        body = json.dumps(customer).encode()
        before = flask_requests.n
        fast = _call(server.wsgi_app, _environ(key, body, "application/json; charset=utf-8"))
        assert flask_requests.n == before, "a plain keyed prediction must not reach Flask"
        slow = _call(layer.app, _environ(key, body, "application/json; charset=utf-8"))
        assert flask_requests.n == before + 1
        assert fast[0] == slow[0] == "200 OK" and fast[2] == slow[2]
        assert _without_time(fast[1]) == _without_time(slow[1])
        assert [n for n, _ in fast[1]].count("X-Server-Time-ms") == 1
        assert json.loads(fast[2])["predictions"][0]["segment"] in range(6)


def test_every_other_request_reaches_flask_with_its_body(keyed_app):
    server, key = keyed_app
    flask_requests = _FlaskRequests(server)
    batch = json.dumps({"customers": [CUSTOMER] * 5}).encode()
    cases = [  # (environ, status): each one Flask's own answer
        (_environ("sl_wrong", json.dumps(CUSTOMER).encode()), "401 UNAUTHORIZED"),
        (_environ(key, b'{"Age": '), "400 BAD REQUEST"),
        (_environ(key, json.dumps({**CUSTOMER, "Age": -3}).encode()), "422 UNPROCESSABLE ENTITY"),
        (_environ(key, json.dumps(CUSTOMER).encode(), "text/plain"), "415 UNSUPPORTED MEDIA TYPE"),
        (_environ(key, batch, HTTP_ACCEPT_ENCODING="gzip"), "200 OK"),  # large enough to compress
        (_environ(key, json.dumps(CUSTOMER).encode(), HTTP_AUTHORIZATION="Basic eDp5"), "401 UNAUTHORIZED"),
        (_environ(key, json.dumps(CUSTOMER).encode(), CONTENT_LENGTH=""), "400 BAD REQUEST"),  # no length: not read
    ]
    for environ, status in cases:
        before = flask_requests.n
        answer = _call(server.wsgi_app, environ)
        assert answer[0] == status and flask_requests.n == before + 1, (environ["CONTENT_TYPE"], answer[:2])
    compressed = dict(_call(server.wsgi_app, _environ(key, batch, HTTP_ACCEPT_ENCODING="gzip"))[1])
    assert compressed["Content-Encoding"] == "gzip"
    error = json.loads(_call(server.wsgi_app, _environ(key, json.dumps({**CUSTOMER, "Age": -3}).encode()))[2])
    assert error["error"] == "invalid_input" and error["errors"][0]["field"] == "Age"


def test_the_rate_limiter_counts_each_request_once_whoever_answers(tmp_path, monkeypatch, warm_models):
    server, key = _keyed_app(tmp_path, monkeypatch, warm_models, rate="4/minute")
    flask_requests = _FlaskRequests(server)
    good, bad = json.dumps(CUSTOMER).encode(), json.dumps({**CUSTOMER, "Age": -3}).encode()
    statuses = [_call(server.wsgi_app, _environ(key, body))[0][:3] for body in (good, bad, good, good, good, bad)]
    # The first call opens the key store in Flask, the 422 is Flask's, then two fast answers use up the
    # four; the fifth is refused (Flask writes the 429 from the fast layer's verdict), as is the sixth.
    assert statuses == ["200", "422", "200", "200", "429", "429"]
    assert flask_requests.n == 4
    refused = _call(server.wsgi_app, _environ(key, good))
    assert refused[0].startswith("429") and dict(refused[1])["Retry-After"].isdigit()


def test_every_request_hook_is_one_the_fast_layer_stands_in_for(keyed_app):
    from dashboard.api_fast import COVERED_HOOKS

    server, _key = keyed_app

    def names(funcs):
        return {getattr(f, "__qualname__", type(f).__name__) for hooks in funcs.values() for f in hooks}

    # A new hook fails here: decide whether a keyed prediction needs it, then list it in COVERED_HOOKS.
    assert names(server.before_request_funcs) == COVERED_HOOKS["before"]
    assert names(server.after_request_funcs) == COVERED_HOOKS["after"]


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


def test_an_unknown_callers_body_is_never_read(keyed_app):
    server, key = keyed_app
    assert _call(server.wsgi_app, _environ(key, json.dumps(CUSTOMER).encode()))[0] == "200 OK"  # the key store open

    class Watched(io.BytesIO):
        reads = 0

        def read(self, *args):
            Watched.reads += 1
            return super().read(*args)

    environ = _environ("slk_not-a-key", json.dumps(CUSTOMER).encode())
    environ["wsgi.input"] = Watched(json.dumps(CUSTOMER).encode())
    status, _headers, body = _call(server.wsgi_app, environ)
    assert status == "401 UNAUTHORIZED" and json.loads(body)["error"] == "unauthorized"
    assert Watched.reads == 0  # neither the fast layer nor Flask read a byte of it
