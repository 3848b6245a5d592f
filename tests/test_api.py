"""The /api/v1 endpoints against real gunicorn servers started with the Procfile's command.

Two servers: one with a high rate limit (and a 4 MB body limit, so the schema's batch limit is
reachable) and an admin API key, for the endpoints, errors and the schemathesis run (every call
sends the key; tests/test_api_keys.py tests what happens without one); one with 5 requests/minute
and no keys for 429 and for a model activation that must reach both workers. Limits that need no server
(default body size, configuration parsing, the shared counter) run on a bare Flask app.
"""
from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import flask
import pytest

from core.access.accounts import AccountStore
from core.versions.pipeline import train
from core.versions.registry import Registry
from dashboard.api import RateLimiter, parse_rate_limit, parse_size, register_api
from dashboard.services import Services
from tests.conftest import SAMPLE, start_server

CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}
SPEND = {"MntWines": 300, "MntFruits": 40, "MntMeatProducts": 200, "MntFishProducts": 50, "MntSweetProducts": 20,
         "MntGoldProds": 30}


@pytest.fixture(scope="module")
def api(tmp_path_factory, warm_models):
    """Gunicorn (Procfile) with a rate limit high enough for every test here, and an admin API key."""
    tmp = tmp_path_factory.mktemp("api")
    key = AccountStore(tmp / "models").create_key("schema-admin", "admin")
    server = start_server(tmp, gunicorn=True, models_from=warm_models,
                          env={"SEGMENTLENS_RATE_LIMIT": "100000/minute", "SEGMENTLENS_MAX_BODY": "4M"})
    server.key = key
    yield server
    server.stop()


@pytest.fixture(scope="module")
def limited(tmp_path_factory, warm_models):
    """Gunicorn (Procfile) allowing 5 requests per minute per client."""
    server = start_server(tmp_path_factory.mktemp("limited"), gunicorn=True, env={"SEGMENTLENS_RATE_LIMIT": "5/minute"},
                          models_from=warm_models)
    yield server
    server.stop()


def call(server, method: str, path: str, body=None, content_type: str | None = "application/json",
         headers: dict | None = None):
    """One request on a fresh connection: (status, headers, decoded JSON body)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    hdrs = dict(headers or {})
    if getattr(server, "key", None) and "Authorization" not in hdrs:
        hdrs["Authorization"] = f"Bearer {server.key}"
    if content_type and body is not None:
        hdrs["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, (json.loads(data) if data else None)
    finally:
        conn.close()


def model_of(server):
    """The server's active model, loaded from its registry (the reference for expected answers)."""
    model, meta = Registry(server.models_dir).load()
    return model, meta


# ---------------------------------------------------------------- 200
def test_predict_one_customer(api):
    status, headers, body = call(api, "POST", "/api/v1/predict", {**CUSTOMER, "ID": 7})
    assert status == 200 and headers["content-type"] == "application/json"
    model, meta = model_of(api)
    assert body["model_version"] == meta["version"]
    (p,) = body["predictions"]
    seg, conf, typ, dists = model.score_one([CUSTOMER[f] for f in model.features])
    assert p["ID"] == 7 and p["segment"] == seg and p["segment_name"] == meta["segment_names"][seg]
    assert p["confidence"] == pytest.approx(conf, abs=1e-5) and p["typicality"] == pytest.approx(typ, abs=1e-5)
    assert p["distances"] == pytest.approx(dists, rel=1e-5)
    assert float(headers["x-server-time-ms"]) > 0


def test_batch_answers_in_request_order(api):
    model, _ = model_of(api)
    customers = [{**CUSTOMER, "Age": 20 + (7 * i) % 60, "Income": 5_000 + 4_000 * i, "Total_Spending": 50 * i,
                  "ID": f"c{i}"} for i in range(40)]
    status, _, body = call(api, "POST", "/api/v1/predict", {"customers": customers})
    assert status == 200
    assert [p["ID"] for p in body["predictions"]] == [c["ID"] for c in customers]
    expected = model.score(__import__("numpy").array([[c[f] for f in model.features] for c in customers], float))
    assert [p["segment"] for p in body["predictions"]] == expected["segment"].tolist()
    assert len(set(expected["segment"])) > 1  # the order is actually tested
    # A small batch (scored one by one) gives the same answers as the big one (scored as an array).
    status, _, small = call(api, "POST", "/api/v1/predict", {"customers": customers[:5]})
    assert status == 200 and small["predictions"] == body["predictions"][:5]


def test_raw_columns_give_the_same_prediction_as_features(api):
    raw = {k: v for k, v in CUSTOMER.items() if k not in ("Age", "Total_Spending")}
    raw.update(Year_Birth=2026 - CUSTOMER["Age"], **SPEND)
    assert sum(SPEND.values()) == CUSTOMER["Total_Spending"]
    s1, _, explicit = call(api, "POST", "/api/v1/predict", CUSTOMER)
    s2, _, derived = call(api, "POST", "/api/v1/predict", raw)
    assert s1 == s2 == 200 and derived == explicit
    # An explicit feature wins over the raw columns it would derive from.
    s3, _, both = call(api, "POST", "/api/v1/predict", {**CUSTOMER, "Year_Birth": 1930, "MntWines": 99_999,
                                                         **{k: 0 for k in SPEND if k != "MntWines"}})
    assert s3 == 200 and both == explicit


def test_health_model_segments(api):
    model, meta = model_of(api)
    status, _, health = call(api, "GET", "/api/v1/health")
    assert status == 200 and health["status"] == "ok" and health["model_version"] == meta["version"]
    status, _, info = call(api, "GET", "/api/v1/model")
    assert status == 200
    assert info["features"] == model.features and info["k"] == model.k == len(info["segment_names"])
    assert info["version"] == meta["version"] and info["created"] == meta["created"]
    assert set(info["metrics"]) >= {"silhouette", "inertia"}
    status, _, segs = call(api, "GET", "/api/v1/segments")
    assert status == 200 and len(segs["segments"]) == model.k
    assert sum(s["size"] for s in segs["segments"]) == meta["n_customers"]
    assert sum(s["share"] for s in segs["segments"]) == pytest.approx(1.0)
    first = segs["segments"][0]
    assert set(first["means"]) == set(model.features) and first["name"] == meta["segment_names"][0]
    assert 0 <= first["response_rate"] <= 1 and first["description"]


def test_openapi_document_describes_every_endpoint_and_error(api):
    status, _, doc = call(api, "GET", "/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {f"/api/v1/{p}" for p in ("predict", "health", "model", "segments", "openapi.json",
                                                          "models/{version}/activate", "models/rollback",
                                                          "monitoring", "audiences", "migration", "value",
                                                          "value/customers/{id}")}
    predict = doc["paths"]["/api/v1/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "429"} <= set(predict["responses"])
    assert "Retry-After" in predict["responses"]["429"]["headers"]
    customer = doc["components"]["schemas"]["Customer"]
    assert set(model_of(api)[0].features) <= set(customer["properties"])


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("raw", ["{bad", "", "[" * 100_000, '{"Age": 52,}', "\xff\xfe"])
def test_malformed_json_is_400(api, raw):
    status, headers, body = call(api, "POST", "/api/v1/predict", raw.encode("latin-1"))
    assert status == 400 and headers["content-type"] == "application/json"
    assert body["error"] == "bad_request" and "JSON" in body["message"]


@pytest.mark.parametrize("method, path", [("GET", "/api/v1/nope"), ("POST", "/api/v1/predictions"),
                                          ("GET", "/api/v2/predict"), ("GET", "/api"), ("GET", "/api/v1/health/x")])
def test_unknown_api_route_is_404_json(api, method, path):
    status, _, body = call(api, method, path, {} if method == "POST" else None)
    assert status == 404 and body["error"] == "not_found" and path in body["message"]


@pytest.mark.parametrize("method, path, allow", [("GET", "/api/v1/predict", "POST"), ("PUT", "/api/v1/predict", "POST"),
                                                 ("POST", "/api/v1/health", "GET"), ("DELETE", "/api/v1/model", "GET")])
def test_wrong_method_is_405_json_with_allow(api, method, path, allow):
    status, headers, body = call(api, method, path, {} if method in ("POST", "PUT") else None)
    assert status == 405 and headers["allow"] == allow and body["error"] == "method_not_allowed"


def test_body_over_the_limit_is_413(api):
    big = json.dumps({"customers": [CUSTOMER] * 50_000}).encode()  # ~6 MB, over this server's 4 MB
    parts = urlsplit(api.url)
    # The server answers and closes without reading all 6 MB (as it should), so send tolerantly.
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(big))
        try:
            sock.sendall(big)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = b""
        while b"}" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    body = json.loads(payload)
    assert body["error"] == "payload_too_large" and "4,194,304" in body["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(api, content_type):
    status, _, body = call(api, "POST", "/api/v1/predict", json.dumps(CUSTOMER), content_type=content_type)
    assert status == 415 and body["error"] == "unsupported_media_type"


@pytest.mark.parametrize("raw, field, fragment", [
    ('{"Age": NaN}', "Age", "finite"), ('{"Age": Infinity}', "Age", "finite"), ('{"Age": -Infinity}', "Age", "finite"),
    ('{"Age": 1e400}', "Age", "finite"), ('{"Age": 1' + "0" * 5000 + "}", "Age", "finite"),
    ('{"Income": 1e12}', "Income", "between"), ('{"Age": "52"}', "Age", "text"),
    ('{"Age": {"v": 52}}', "Age", "object"),
    ('{"Age": [52]}', "Age", "list"), ('{"Age": true}', "Age", "true/false"), ('{"Age": null}', "Age", "null"),
    ('{"Age": 5}', "Age", "between 16 and 110"), ('{"ID": 1.5}', "ID", "integer"), ("[1, 2]", "body", "object"),
    ('"text"', "body", "object"), ('{"customers": 3}', "customers", "list"), ("{}", "Income", "required"),
])
def test_invalid_values_are_422_naming_the_field(api, raw, field, fragment):
    status, _, body = call(api, "POST", "/api/v1/predict", raw)
    assert status == 422 and body["error"] == "invalid_input"
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert field in messages and fragment in messages[field]


def test_422_lists_every_bad_customer_with_its_index(api):
    customers = [CUSTOMER, {**CUSTOMER, "Age": 300}, CUSTOMER, {**CUSTOMER, "Recency": "x", "Income": -5}]
    status, _, body = call(api, "POST", "/api/v1/predict", {"customers": customers})
    assert status == 422
    assert sorted((e["index"], e["field"]) for e in body["errors"]) == [(1, "Age"), (3, "Income"), (3, "Recency")]


def test_batch_over_the_documented_limit_is_422(api):
    status, _, body = call(api, "POST", "/api/v1/predict", {"customers": [{"Age": 1}] * 10_001})
    assert status == 422 and body["errors"][0]["field"] == "customers" and "10,000" in body["errors"][0]["message"]


def test_schemathesis_finds_no_server_error_or_schema_violation(api, tmp_path):
    """Property-based run of every operation in the OpenAPI document (positive and negative data)."""
    # Negative fuzzing can build junk bodies bigger than the body limit; 413 is a correct refusal too.
    config = tmp_path / "schemathesis.toml"
    config.write_text('[checks.negative_data_rejection]\nexpected-statuses = ["400", "401", "403", "404", "405", '
                      '"406", "409", "413", "415", "422", "428", "429"]\n')
    # With the admin key: every operation, the admin ones included, is reachable (ignored_auth checks
    # that requests without it are refused).
    config.write_text(config.read_text() + '[checks.positive_data_acceptance]\nexpected-statuses = ["2xx", "401", '
                      '"403", "404", "409"]\n')
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
           f"{api.url}/api/v1/openapi.json", "--checks", "all", "--max-examples", "30", "--seed", "20261123",
           "--workers", "1", "--header", f"Authorization: Bearer {api.key}"]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    output = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, output
    # Every operation schemathesis found was exercised: reads, predict, audiences and the two admin ones.
    selected, total = map(int, re.search(r"(\d+) selected / (\d+) total", output).groups())
    assert selected == total >= 8, output
    assert time.monotonic() - started < 120


# ---------------------------------------------------------------- 429 and activation (rate-limited server)
def test_rate_limit_is_shared_by_the_workers_and_answers_429_with_retry_after(limited):
    # New connections spread over both workers; the counter lives in one file, so exactly 5 pass.
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: call(limited, "POST", "/api/v1/predict", CUSTOMER), range(9)))
    statuses = sorted(r[0] for r in results)
    assert statuses == [200] * 5 + [429] * 4, statuses
    for status, headers, body in results:
        if status == 429:
            assert 1 <= int(headers["retry-after"]) <= 60
            assert body["error"] == "rate_limited" and body["retry_after"] == int(headers["retry-after"])
    # Health checks are never throttled.
    assert {call(limited, "GET", "/api/v1/health")[0] for _ in range(6)} == {200}


def _health_from_every_worker(server, want: int = 2, rounds: int = 3, timeout: float = 90.0) -> dict:
    """Health answers keyed by worker (an opaque name per process), from concurrent fresh connections.

    Keeps asking until ``want`` workers have answered (a worker still booting on a busy
    machine answers late), then ``rounds`` more batches so every worker is asked several times.
    """
    seen: dict[int, set] = {}
    deadline = time.monotonic() + timeout
    extra = 0
    with ThreadPoolExecutor(8) as pool:
        while extra < rounds and time.monotonic() < deadline:
            for status, _, body in pool.map(lambda _: call(server, "GET", "/api/v1/health"), range(24)):
                assert status == 200
                seen.setdefault(body["worker"], set()).add(body["model_version"])
            if len(seen) >= want:
                extra += 1
            else:
                time.sleep(0.2)
    return seen


def test_activation_reaches_every_worker_without_restart(limited):
    registry = Registry(limited.models_dir)
    old = registry.active_version()
    before = _health_from_every_worker(limited)
    assert len(before) == 2 and all(v == {old} for v in before.values())  # both workers hold the old model
    new, _, _ = train(SAMPLE, k=4, registry=registry, activate=False)
    assert registry.active_version() == old
    registry.activate(new)
    after = _health_from_every_worker(limited)
    assert len(after) == 2 and all(v == {new} for v in after.values()), after
    assert set(after) == set(before)  # the same processes: no restart


# ---------------------------------------------------------------- limits without a server
@pytest.fixture()
def bare(trained, tmp_path, monkeypatch):
    """A bare Flask app with only the API (no Dash), on the trained registry; env read at registration."""
    def make(**env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        app = flask.Flask("api_test")
        app.extensions["segmentlens"] = Services(trained[0], None, SAMPLE)
        register_api(app, tmp_path / "cache")
        return app.test_client()
    monkeypatch.delenv("SEGMENTLENS_MAX_BODY", raising=False)
    monkeypatch.delenv("SEGMENTLENS_RATE_LIMIT", raising=False)
    return make


def test_default_body_limit_is_one_megabyte(bare):
    client = bare()
    pad = " " * (1024 * 1024 - len(json.dumps(CUSTOMER)))
    ok = client.post("/api/v1/predict", data=json.dumps(CUSTOMER) + pad, content_type="application/json")
    assert ok.status_code == 200
    over = client.post("/api/v1/predict", data=json.dumps(CUSTOMER) + pad + " ", content_type="application/json")
    assert over.status_code == 413 and over.get_json()["error"] == "payload_too_large"


def test_body_limit_is_configurable(bare):
    client = bare(SEGMENTLENS_MAX_BODY="1K")
    assert client.post("/api/v1/predict", data=json.dumps(CUSTOMER), content_type="application/json").status_code == 200
    big = json.dumps({"customers": [CUSTOMER] * 20})
    assert client.post("/api/v1/predict", data=big, content_type="application/json").status_code == 413


def test_default_rate_limit_is_120_per_minute(bare):
    client = bare()
    statuses = [client.get("/api/v1/model").status_code for _ in range(121)]
    assert statuses[:120] == [200] * 120 and statuses[120] == 429


def test_no_model_is_503_json(bare, tmp_path):
    client = bare()
    client.application.extensions["segmentlens"] = Services(Registry(tmp_path / "empty"), None, SAMPLE)
    resp = client.post("/api/v1/predict", json=CUSTOMER)
    assert resp.status_code == 503 and resp.get_json()["error"] == "no_model"


@pytest.mark.parametrize("text, expected", [("120/minute", (120, 60.0)), ("5 per second", (5, 1.0)),
                                            ("1000/10min", (1000, 600.0)), ("2/hours", (2, 3600.0)),
                                            (None, (120, 60.0)), ("off", None)])
def test_parse_rate_limit(text, expected):
    assert parse_rate_limit(text) == expected


@pytest.mark.parametrize("text", ["fast", "0/minute", "10/fortnight"])
def test_parse_rate_limit_refuses_nonsense(text):
    with pytest.raises(ValueError, match="SEGMENTLENS_RATE_LIMIT"):
        parse_rate_limit(text)


def test_parse_size():
    assert (parse_size(None), parse_size("2M"), parse_size("512k"), parse_size("1000")) == (
        1024 * 1024, 2 * 1024 * 1024, 512 * 1024, 1000)
    with pytest.raises(ValueError, match="SEGMENTLENS_MAX_BODY"):
        parse_size("lots")


def test_rate_limiter_window_is_shared_between_instances(tmp_path):
    """Two limiters on one file stand for two worker processes: they share the count, per client."""
    a, b = RateLimiter(tmp_path / "rl.sqlite3", 2, 0.5), RateLimiter(tmp_path / "rl.sqlite3", 2, 0.5)
    assert a.hit("x") == (True, 0) and b.hit("x") == (True, 0)
    allowed, retry = a.hit("x")
    assert not allowed and retry == 1
    assert b.hit("y") == (True, 0)  # another client has its own window
    time.sleep(0.6)
    assert b.hit("x") == (True, 0)  # the window reopened
