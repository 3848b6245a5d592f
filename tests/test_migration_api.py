"""GET /api/v1/migration on a real server serving a version trained on the CDNOW order log."""
from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from core.versions.pipeline import train
from core.versions.registry import Registry
from tests.conftest import SAMPLE, start_server

CDNOW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cdnow_transactions.txt"


@pytest.fixture(scope="module")
def server(tmp_path_factory, cdnow_trained_models):
    """The app on a copy of the registry trained once on the CDNOW log (tests/conftest.py)."""
    tmp = tmp_path_factory.mktemp("migration-api")
    srv = start_server(tmp, data=CDNOW.resolve(), models_from=cdnow_trained_models)
    version = Registry(srv.models_dir).active_version()
    model, meta = Registry(srv.models_dir).load(version)
    srv.model, srv.meta, srv.version = model, meta, version
    yield srv
    srv.stop()


def get(server, path: str):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _json_schema(node):
    """An OpenAPI 3.0 schema as JSON Schema (``nullable`` -> a null type)."""
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def test_migration_matches_its_schema_and_the_versions_segments(server):
    started = time.monotonic()
    status, body = get(server, "/api/v1/migration?every=quarter")
    first = time.monotonic() - started
    assert status == 200, body
    _, doc = get(server, "/api/v1/openapi.json")
    schema = _json_schema(doc["components"]["schemas"]["Migration"])
    jsonschema.validate(body, schema)
    params = {p["name"] for p in doc["paths"]["/api/v1/migration"]["get"]["parameters"]}
    assert params == {"every", "from", "to"}
    assert body["model_version"] == server.version
    assert body["dates"] == ["1997-03-31", "1997-06-30", "1997-09-30", "1997-12-31", "1998-03-31", "1998-06-30"]
    last = body["snapshots"][-1]["sizes"]
    counts = [int((server.model.labels_ == i).sum()) for i in range(server.model.k)]
    assert [last[str(i)] for i in range(server.model.k)] == counts
    assert [s["name"] for s in body["segments"]] == server.meta["segment_names"]
    # Stored with the version: the next answer reads it (and another worker or a restart would too).
    stored = Registry(server.models_dir).artifact_json(server.version, "migration")
    assert stored["runs"]["quarter"]["transitions"] == body["transitions"]
    started = time.monotonic()
    status, again = get(server, "/api/v1/migration?every=quarter")
    assert status == 200 and again == body and time.monotonic() - started < first
    status, monthly = get(server, "/api/v1/migration?from=1998-01-31")
    assert status == 200 and monthly["dates"] == ["1998-01-31", "1998-02-28", "1998-03-31", "1998-04-30",
                                                  "1998-05-31", "1998-06-30"]
    jsonschema.validate(monthly, schema)


@pytest.mark.parametrize("query, field, text", [
    ("every=week", "every", "expected month or quarter"),
    ("to=1999-01-01", "to", "after the log's latest date"),
    ("from=1998-13-40", "from", "expected a date such as"),
    ("from=1998-06-01&to=1998-01-01", "from", "must be before to"),
])
def test_bad_values_are_422_naming_the_field(server, query, field, text):
    status, body = get(server, f"/api/v1/migration?{query}")
    assert status == 422 and body["error"] == "invalid_input"
    assert body["errors"][0]["field"] == field and text in body["message"]


def test_a_customer_table_version_is_409(server):
    # Run last in this module: it activates a version trained on a customer table.
    train(str(SAMPLE), registry=Registry(server.models_dir), k=3, n_init=1)
    deadline = time.monotonic() + 30
    while True:
        status, body = get(server, "/api/v1/migration")
        if status == 409 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 409 and "no purchase dates" in body["message"]
