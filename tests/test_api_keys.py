"""API keys and the admin endpoints, against gunicorn started with the Procfile's command.

Keys are made with core.access.accounts.AccountStore in the server's registry folder before it starts
(and one while it runs: the store re-reads its file). Once a key exists, every endpoint but
health and openapi.json needs one; activate and rollback need an admin key.
"""
from __future__ import annotations

import http.client
import json
import statistics
from urllib.parse import urlsplit

import pytest

from core.access.accounts import AccountStore
from core.access.audit import AuditLog
from core.versions.pipeline import train
from core.versions.registry import Registry
from tests.conftest import SAMPLE, start_server

CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}
ROLES = ("viewer", "analyst", "admin")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, warm_models):
    """Gunicorn with a viewer, an analyst and an admin key; the registry holds v0001 (active) and v0002."""
    tmp = tmp_path_factory.mktemp("keys")
    store = AccountStore(tmp / "models")
    keys = {role: store.create_key(f"{role}-key", role) for role in ROLES}
    server = start_server(tmp, gunicorn=True, env={"SEGMENTLENS_RATE_LIMIT": "off"}, models_from=warm_models)
    train(SAMPLE, registry=Registry(server.models_dir), k=4, activate=False)
    server.keys = keys
    yield server
    server.stop()


def call(server, method: str, path: str, body=None, key: str | None = None, headers: dict | None = None,
         conn: http.client.HTTPConnection | None = None):
    """One request: (status, lower-case headers, JSON body); ``key`` is sent as a Bearer token."""
    parts = urlsplit(server.url)
    own = conn is None
    conn = conn or http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    hdrs = dict(headers or {})
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    if body is not None:
        body = json.dumps(body)
        hdrs["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, (json.loads(data) if data else None)
    finally:
        if own:
            conn.close()


def _who(server, who: str) -> str | None:
    return {"none": None, "wrong": "slk_" + "x" * 43}.get(who, server.keys.get(who))


@pytest.mark.parametrize("who, expected", [("none", 401), ("wrong", 401), ("viewer", 200), ("analyst", 200),
                                           ("admin", 200)])
@pytest.mark.parametrize("method, path", [("POST", "/api/v1/predict"), ("GET", "/api/v1/model"),
                                          ("GET", "/api/v1/segments")])
def test_every_endpoint_needs_a_key_once_keys_exist(keyed, who, expected, method, path):
    status, headers, body = call(keyed, method, path, CUSTOMER if method == "POST" else None, key=_who(keyed, who))
    assert status == expected, body
    if expected == 401:
        assert headers["www-authenticate"].startswith("Bearer") and body["error"] == "unauthorized"
        assert headers["content-type"] == "application/json"
    elif path.endswith("predict"):
        assert body["model_version"] == "v0001"


def test_health_and_openapi_need_no_key(keyed):
    status, _, health = call(keyed, "GET", "/api/v1/health")
    assert status == 200 and health["status"] == "ok" and health["serving"] == "v0001"
    status, _, doc = call(keyed, "GET", "/api/v1/openapi.json")
    assert status == 200 and doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"][
            "description"]}
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/api/v1/health"]["get"]["security"] == []
    assert doc["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    for path in ("/api/v1/models/{version}/activate", "/api/v1/models/rollback"):
        responses = doc["paths"][path]["post"]["responses"]
        assert {"200", "401", "403", "409"} <= set(responses) and "security" not in doc["paths"][path]["post"]


@pytest.mark.parametrize("who, expected", [("none", 401), ("wrong", 401), ("viewer", 403), ("analyst", 403)])
def test_admin_endpoints_refuse_lower_roles(keyed, who, expected):
    for path in ("/api/v1/models/v0002/activate", "/api/v1/models/rollback"):
        status, headers, body = call(keyed, "POST", path, key=_who(keyed, who))
        assert status == expected and body["error"] == ("unauthorized" if expected == 401 else "forbidden"), body
        assert ("www-authenticate" in headers) == (expected == 401)
    assert Registry(keyed.models_dir).active_version() == "v0001"


def test_admin_activates_and_rolls_back_and_it_is_audited(keyed):
    admin = keyed.keys["admin"]
    registry = Registry(keyed.models_dir)
    status, _, body = call(keyed, "POST", "/api/v1/models/v0042/activate", key=admin)
    assert status == 404 and "v0042" in body["message"]
    status, _, body = call(keyed, "POST", "/api/v1/models/v0002/activate", key=admin)
    assert status == 200 and body == {"active": "v0002", "previous": "v0001"}
    assert registry.active_version() == "v0002"
    status, _, pred = call(keyed, "POST", "/api/v1/predict", CUSTOMER, key=keyed.keys["viewer"])
    assert status == 200 and pred["model_version"] == "v0002" and len(pred["predictions"][0]["distances"]) == 4
    status, _, body = call(keyed, "POST", "/api/v1/models/rollback", key=admin)
    assert status == 200 and body == {"active": "v0001", "previous": "v0002"}
    status, _, body = call(keyed, "POST", "/api/v1/models/rollback", key=admin)
    assert status == 409 and body["error"] == "conflict" and "roll back" in body["message"]
    assert registry.active_version() == "v0001"
    entries = [(e["user"], e["action"], e["target"], e["outcome"]) for e in AuditLog(keyed.models_dir).entries()]
    assert ("apikey:admin-key", "activate", "v0002", "ok") in entries
    assert ("apikey:admin-key", "rollback", "v0001", "ok") in entries
    assert ("apikey:viewer-key", "activate", "v0002", "denied") in entries
    assert ("anonymous", "rollback", "-", "denied") in entries


def test_a_version_that_fails_verification_is_not_activated(keyed):
    registry = Registry(keyed.models_dir)
    v3, _, _ = train(SAMPLE, registry=registry, k=3, activate=False)
    path = registry.file_path(v3)
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    status, _, body = call(keyed, "POST", f"/api/v1/models/{v3}/activate", key=keyed.keys["admin"])
    assert status == 409 and body["error"] == "conflict" and "checksum" in body["message"]
    assert registry.active_version() == "v0001"
    status, _, health = call(keyed, "GET", "/api/v1/health")
    assert status == 200 and health["serving"] == "v0001"


def test_keys_created_or_revoked_while_running(keyed):
    store = AccountStore(keyed.models_dir)
    late = store.create_key("late-admin", "admin")
    assert call(keyed, "POST", "/api/v1/predict", CUSTOMER, key=late)[0] == 200
    status, _, body = call(keyed, "POST", "/api/v1/models/v0001/activate", key=late)
    assert status == 200 and body["active"] == "v0001"
    store.revoke_key("late-admin")
    assert call(keyed, "POST", "/api/v1/predict", CUSTOMER, key=late)[0] == 401


def test_malformed_authorization_headers_are_401(keyed):
    for value in ("Bearer", "Basic dXNlcjpwYXNz", "Bearer  ", f"Token {keyed.keys['admin']}", "x" * 300):
        status, headers, _ = call(keyed, "GET", "/api/v1/model", headers={"Authorization": value})
        assert status == 401 and headers["www-authenticate"].startswith("Bearer"), value


def test_predict_latency_with_key_checking_stays_within_budget(keyed):
    """p50 of the server's own time per single-customer predict, keys on (budget 2 ms)."""
    parts = urlsplit(keyed.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    times = []
    try:
        for _ in range(300):
            status, headers, _ = call(keyed, "POST", "/api/v1/predict", CUSTOMER, key=keyed.keys["viewer"], conn=conn)
            assert status == 200
            times.append(float(headers["x-server-time-ms"]))
    finally:
        conn.close()
    p50 = statistics.median(times[50:])
    print(f"predict with key check: p50 {p50:.3f} ms, p99 {sorted(times[50:])[int(0.99 * 250)]:.3f} ms (server time)")
    assert p50 <= 2.0, p50
