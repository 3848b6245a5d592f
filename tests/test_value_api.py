"""GET /api/v1/value and /api/v1/value/customers/{id} over HTTP on CDNOW (python app.py), keys and roles."""
from __future__ import annotations

import math
from pathlib import Path

import jsonschema
import pytest

from core.access.accounts import AccountStore
from tests.conftest import ROOT, start_server
from tests.test_api_keys import call

CDNOW = ROOT.parent / "shared" / "data" / "cdnow_transactions.txt"


@pytest.fixture(scope="module")
def cdnow_models(cdnow_cli_models) -> Path:
    """A registry with one version trained on the CDNOW log (python -m core train; tests/conftest.py, made once)."""
    return cdnow_cli_models


@pytest.fixture(scope="module")
def served(tmp_path_factory, cdnow_models):
    tmp = tmp_path_factory.mktemp("value-api")
    server = start_server(tmp, env={"SEGMENTLENS_RATE_LIMIT": "off"}, data=CDNOW, models_from=cdnow_models,
                          wait_path="/api/v1/health")
    yield server
    server.stop()


def _schema(doc: dict, name: str) -> dict:
    return {**doc["components"]["schemas"][name], "components": doc["components"]}


def _refs(schema, components):
    """The schema with local $refs resolved and OpenAPI's nullable turned into JSON Schema."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _refs(components["schemas"][schema["$ref"].rsplit("/", 1)[1]], components)
        out = {k: _refs(v, components) for k, v in schema.items() if k != "nullable"}
        if schema.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(schema, list):
        return [_refs(v, components) for v in schema]
    return schema


def test_value_over_http(served):
    status, headers, body = call(served, "GET", "/api/v1/value")
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    _, _, doc = call(served, "GET", "/api/v1/openapi.json")
    jsonschema.validate(body, _refs(doc["components"]["schemas"]["Value"], doc["components"]))
    assert body["model_version"] == "v0001" and body["time_unit"] == "week" and body["horizon"] == 52
    assert body["customers"] == 23_570
    # fitted on the whole log (no calibration end): the same numbers as core gives
    from core.value import bgnbd, collapse, read_purchase_days, value_statistics

    c = value_statistics(read_purchase_days(CDNOW)).customers
    _, w, combos = collapse(c["frequency"].to_numpy(), c["recency"].to_numpy(), c["T"].to_numpy())
    expected = bgnbd.fit(*combos, w).as_dict()
    assert body["params"] == pytest.approx(expected, rel=1e-9)
    segs = body["segments"]
    assert len(segs) == 6 and sum(s["customers"] for s in segs) == 23_570
    assert [s["rank"] for s in segs] == list(range(1, 7))
    assert all(s["clv_low"] < s["clv_total"] < s["clv_high"] for s in segs)
    hold = body["holdout"]  # the calibration check: a second fit on the first half of the log's dates
    assert hold["predicted"] > 0 and hold["actual"] > 0 and "holdout" in hold["sentence"]
    assert "cov_log" not in body and "slipping" not in body and body["slipping_customers"] > 0
    # the second read is the stored result
    assert call(served, "GET", "/api/v1/value")[2] == body


def test_one_customer(served):
    status, _, one = call(served, "GET", "/api/v1/value/customers/00004")
    assert status == 200, one
    _, _, doc = call(served, "GET", "/api/v1/openapi.json")
    jsonschema.validate(one, _refs(doc["components"]["schemas"]["CustomerValue"], doc["components"]))
    assert one["ID"] == 4 and one["frequency"] >= 1
    assert 0 < one["p_alive"] <= 1 and one["clv_low"] <= one["clv"] <= one["clv_high"]
    assert isinstance(one["segment_name"], str)
    for path in ("/api/v1/value/customers/999999", "/api/v1/value/customers/abc"):
        status, _, body = call(served, "GET", path)
        assert status == 404 and body["error"] == "not_found"
    status, headers, body = call(served, "POST", "/api/v1/value/customers/4")
    assert status == 405 and headers["allow"] == "GET"
    assert set(doc["paths"]) >= {"/api/v1/value", "/api/v1/value/customers/{id}"}
    assert all(math.isfinite(v) for k, v in one.items() if isinstance(v, float))


def test_keys_and_roles(served):
    store = AccountStore(served.models_dir)
    viewer = store.create_key("value-viewer", "viewer")
    try:
        for path in ("/api/v1/value", "/api/v1/value/customers/4"):
            assert call(served, "GET", path)[0] == 401
            assert call(served, "GET", path, key="slk_" + "x" * 43)[0] == 401
            assert call(served, "GET", path, key=viewer)[0] == 200
    finally:
        store.revoke_key("value-viewer")
    assert call(served, "GET", "/api/v1/value")[0] == 200  # open again once no key exists


def test_customer_table_gets_the_message(live_server):
    status, _, body = call(live_server, "GET", "/api/v1/value")
    assert status == 409
    assert body["message"].startswith("value needs a transaction log (customer, date, amount)")
    assert call(live_server, "GET", "/api/v1/value/customers/1")[0] == 409
