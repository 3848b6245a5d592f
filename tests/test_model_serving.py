"""The served model is the active version, verified, or nothing; audit of state changes; bounded uploads.

Services-level tests run on a registry in tmp_path; the HTTP tests run gunicorn with the Procfile's
command: a server that verified the active model before its file was damaged keeps serving that
copy (health ok, with a warning); a server that never had it answers 503 and never serves another version.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import time
from urllib.parse import urlsplit

import pandas as pd
import pytest

from core.versions import training
from core.access.audit import AuditLog
from core.reading.loading import DataFileError
from core.versions.pipeline import prepare, train
from core.versions.registry import Registry, RegistryError
from dashboard.services import ModelUnavailable, Services
from tests.conftest import SAMPLE, copy_registry, start_server

CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}
from core.access.accounts import Caller  # noqa: E402

ANN, ROOT = Caller("ann", "analyst"), Caller("root", "admin")


def _damage(registry: Registry, version: str) -> bytes:
    """Overwrite the end of a version's model file (same size, new content, new mtime); returns the old bytes."""
    path = registry.file_path(version)
    data = path.read_bytes()
    path.write_bytes(data[:-10] + bytes(10))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000))
    return data


def _data_url(data: bytes) -> str:
    return "data:text/csv;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def two_versions_made(tmp_path_factory):
    """v0001 (k=6) and the active v0002 (k=4), trained once for the module; each test gets its own copy."""
    tmp = tmp_path_factory.mktemp("two-versions")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGMENTLENS_CACHE_DIR", str(tmp / "cache"))
        registry = Registry(tmp / "models")
        train(SAMPLE, registry=registry)
        train(SAMPLE, registry=registry, k=4)
    return registry.root


@pytest.fixture()
def two_versions(two_versions_made, tmp_path, monkeypatch):
    """A copy of ``two_versions_made`` in tmp_path (the test may damage or change it), with its own cache."""
    monkeypatch.setenv("SEGMENTLENS_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("SEGMENTLENS_MAX_UPLOADS", "SEGMENTLENS_MAX_UPLOAD_TOTAL_MB", "SEGMENTLENS_UPLOAD_TTL_HOURS",
                 "SEGMENTLENS_MAX_UPLOAD_MB"):
        monkeypatch.delenv(name, raising=False)
    return Registry(copy_registry(two_versions_made, tmp_path / "models"))


# ---------------------------------------------------------------- the serving rule (services)
def test_a_damaged_active_file_is_never_replaced_by_another_version(two_versions):
    registry = two_versions
    _damage(registry, "v0002")
    services = Services(Registry(registry.root), None, SAMPLE)  # a process that never verified v0002
    with pytest.raises(ModelUnavailable, match="v0002") as caught:
        services.model()
    assert "fails its checksum" in caught.value.reason
    for call in (services.analysis, services.live_model, services.segment_names):
        with pytest.raises(ModelUnavailable):
            call()
    status = services.status()
    assert status["status"] == "degraded" and status["active"] == "v0002" and status["serving"] is None
    assert "v0002" in status["reason"] and "v0001" not in status["reason"]
    assert services.model_warning() == status["reason"]
    # The /data page's services still work: the versions, and activating a good version.
    rows = {r["version"]: r for r in services.versions_table()}
    assert rows["v0002"]["active"] and rows["v0002"]["broken"] and not rows["v0001"]["broken"]
    assert services.model("v0001")[1]["version"] == "v0001"  # an explicit, good version loads
    with pytest.raises(RegistryError, match="fails its checksum"):
        services.model("v0002")
    services.activate_version("v0001", caller=Caller("alice", "admin"))
    assert services.status() == {"status": "ok", "reason": None, "active": "v0001", "serving": "v0001",
                                 "warning": None}
    assert services.analysis().version == "v0001" and services.live_model().model.k == 6


def test_a_missing_active_file_gives_a_reason_and_nothing_else(two_versions):
    registry = two_versions
    registry.file_path("v0002").unlink()
    services = Services(Registry(registry.root), None, SAMPLE)
    status = services.status()
    assert status["status"] == "degraded" and status["serving"] is None and "v0002" in status["reason"]
    with pytest.raises(ModelUnavailable):
        services.model()


def test_the_verified_copy_of_the_active_version_keeps_being_served(two_versions):
    registry = two_versions
    services = Services(Registry(registry.root), None, SAMPLE)
    assert services.model()[1]["version"] == "v0002" and services.status()["warning"] is None
    good = _damage(registry, "v0002")
    model, meta = services.model()
    assert meta["version"] == "v0002" and model.k == 4  # the same version, from memory
    status = services.status()
    assert status["status"] == "ok" and status["serving"] == "v0002"
    assert "v0002" in status["warning"] and "copy" in status["warning"]
    assert services.model_warning() == status["warning"]
    rows = {r["version"]: r for r in services.versions_table()}
    assert rows["v0002"]["serving"] and rows["v0002"]["broken"]
    with pytest.raises(RegistryError):
        services.activate_version("v0002")  # activation always verifies the file itself
    registry.file_path("v0002").write_bytes(good)  # repaired
    assert services.status()["warning"] is None and services.model()[1]["version"] == "v0002"


def test_rollback_onto_a_damaged_version_is_refused(two_versions):
    registry = two_versions
    services = Services(Registry(registry.root), None, SAMPLE)
    services.activate_version("v0001")
    _damage(registry, "v0002")
    with pytest.raises(RegistryError, match="checksum"):
        services.rollback_version(caller=Caller("bob", "admin"))
    assert registry.active_version() == "v0001"


# ---------------------------------------------------------------- audit (services)
def test_every_state_change_is_audited_with_its_actor(two_versions, tmp_path):
    registry = two_versions
    services = Services(Registry(registry.root), None, SAMPLE)
    services.rename_segment(1, "Big spenders", caller=ANN)
    with pytest.raises(ValueError):
        services.rename_segment(0, "   ", caller=ANN)
    report = services.accept_upload(_data_url(SAMPLE.read_bytes()), "later.tsv", caller=ANN)
    with pytest.raises(DataFileError):
        services.accept_upload(_data_url(b"{}"), "x.json", caller=ANN)
    result = services.retrain_upload(report["token"], "later.tsv", 3, ["Age", "Income"], caller=ANN)
    with pytest.raises(ValueError):
        services.retrain_upload(report["token"], "later.tsv", "many", None, caller=ANN)
    services.activate_version(result["version"], caller=ROOT)
    services.rollback_version(caller=ROOT)
    services.delete_version(result["version"], caller=ROOT)
    with pytest.raises(RegistryError):
        services.delete_version("v0002", caller=ROOT)  # the active one
    entries = [(e["user"], e["action"], e["target"], e["outcome"]) for e in AuditLog(registry.root).entries()]
    v = result["version"]
    assert entries == [
        ("ann", "rename", "v0002 segment 1", "ok"), ("ann", "rename", "segment 0", "failed"),
        ("ann", "upload", "later.tsv", "ok"), ("ann", "upload", "x.json", "failed"),
        ("ann", "retrain", "later.tsv", "started"), ("ann", "retrain", v, "ok"),
        ("ann", "retrain", "later.tsv", "started"), ("ann", "retrain", "later.tsv", "failed"),
        ("root", "activate", v, "ok"), ("root", "rollback", "v0002", "ok"), ("root", "delete", v, "ok"),
        ("root", "delete", "v0002", "failed"),
    ]
    details = {(e["action"], e["outcome"]): e["detail"] for e in AuditLog(registry.root).entries()}
    assert details[("rename", "ok")] == "Big spenders" and "is a .json file" in details[("upload", "failed")]
    assert details[("activate", "ok")] == "was v0002"


# ---------------------------------------------------------------- bounded uploads
def test_uploads_are_bounded_in_number_oldest_first(two_versions, tmp_path, monkeypatch):
    services = Services(two_versions, None, SAMPLE)
    monkeypatch.setenv("SEGMENTLENS_MAX_UPLOADS", "2")
    tokens = []
    for i in range(3):
        tokens.append(services.accept_upload(_data_url(SAMPLE.read_bytes()), f"f{i}.tsv")["token"])
        folder = tmp_path / "cache" / "uploads"
        os.utime(folder / f"{tokens[-1]}.upload", (time.time() - 100 + i, time.time() - 100 + i))
    kept = sorted(p.stem for p in (tmp_path / "cache" / "uploads").glob("*.upload"))
    assert kept == sorted(tokens[1:])
    with pytest.raises(ValueError, match="no longer on the server"):
        services.upload_sweep(tokens[0], ["Age", "Income"])


def test_uploads_are_bounded_in_total_size_and_expire(two_versions, tmp_path, monkeypatch):
    services = Services(two_versions, None, SAMPLE)
    size = SAMPLE.stat().st_size
    monkeypatch.setenv("SEGMENTLENS_MAX_UPLOAD_TOTAL_MB", str(2.5 * size / 1024 / 1024))  # room for two
    first = services.accept_upload(_data_url(SAMPLE.read_bytes()), "a.tsv")["token"]
    folder = tmp_path / "cache" / "uploads"
    os.utime(folder / f"{first}.upload", (time.time() - 50, time.time() - 50))
    second = services.accept_upload(_data_url(SAMPLE.read_bytes()), "b.tsv")["token"]
    third = services.accept_upload(_data_url(SAMPLE.read_bytes()), "c.tsv")
    assert third["removed"] == 1
    assert sorted(p.stem for p in folder.glob("*.upload")) == sorted([second, third["token"]])
    # One file bigger than the whole allowance is refused with the reason, and nothing is removed.
    monkeypatch.setenv("SEGMENTLENS_MAX_UPLOAD_TOTAL_MB", str(0.5 * size / 1024 / 1024))
    with pytest.raises(DataFileError, match="SEGMENTLENS_MAX_UPLOAD_TOTAL_MB"):
        services.accept_upload(_data_url(SAMPLE.read_bytes()), "d.tsv")
    assert len(list(folder.glob("*.upload"))) == 2
    # Expired uploads cannot be used and are removed by the next upload.
    monkeypatch.delenv("SEGMENTLENS_MAX_UPLOAD_TOTAL_MB")
    monkeypatch.setenv("SEGMENTLENS_UPLOAD_TTL_HOURS", "0.01")  # 36 s
    old = time.time() - 60
    os.utime(folder / f"{second}.upload", (old, old))
    with pytest.raises(ValueError, match="no longer on the server"):
        services.retrain_upload(second, "b.tsv", 6, None)
    fresh = services.accept_upload(_data_url(SAMPLE.read_bytes()), "e.tsv")["token"]
    assert sorted(p.stem for p in folder.glob("*.upload")) == sorted([third["token"], fresh])


# ---------------------------------------------------------------- agreement on common customers
def test_common_customers_are_matched_by_id_and_stable_attributes(two_versions):
    """An unrelated file reusing IDs: only rows whose birth year and enrolment date agree are one customer."""
    registry = two_versions
    services = Services(Registry(registry.root), None, SAMPLE)
    frame = pd.read_csv(SAMPLE, sep="\t", dtype=str, keep_default_na=False).iloc[:1200].copy()
    frame.loc[frame.index[:500], "Year_Birth"] = (frame["Year_Birth"].iloc[:500].astype(int) + 1).astype(str)
    later = prepare(frame.to_csv(sep="\t", index=False).encode(), name="later.tsv").frame
    model, meta = services.model()
    reference = training.Reference(model, meta["version"], services.segment_names(), services.analysis().frame)
    comp = training.compare_candidate(model, later, services.segment_names(), reference, drift_resamples=0)
    same = later[later["ID"].isin(reference.frame["ID"])]
    assert comp["common_keys"] == ["ID", "Year_Birth", "Dt_Customer"]
    shifted = set(frame["ID"].iloc[:500].astype(int))
    expected = int((~same["ID"].isin(shifted)).sum())
    assert comp["n_common"] == expected and 600 < expected < 700
    assert comp["ari_common"] == pytest.approx(1.0)  # the same model on the same customers
    from dashboard.services import common_note

    assert common_note(comp) == (f"Agreement on the {expected:,} customers present in both files, matched by ID "
                                 "and birth year/enrolment date.")
    assert common_note({"n_common": 0, "common_keys": ["ID"]}).startswith("No customer is present in both files")


# ---------------------------------------------------------------- over HTTP (gunicorn, Procfile)
def call(server, method: str, path: str, body=None, headers: dict | None = None):
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    hdrs = dict(headers or {})
    if body is not None:
        body = json.dumps(body)
        hdrs["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, (json.loads(data) if data else None)
    finally:
        conn.close()


def _every_worker(server, want: int = 2, timeout: float = 60.0) -> dict:
    """Health answers by worker, asked until ``want`` workers answered (fresh connections spread over them)."""
    seen: dict = {}
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        status, _, body = call(server, "GET", "/api/v1/health")
        if "worker" not in body:
            # Known, reported: on a worker's first request Dash builds every page's layout (validation
            # layout), and the pages raise ModelUnavailable while degraded; that request gets the API's
            # 503 error body instead of health's. Still a 503 naming the active version, never another one.
            assert status == 503 and body["error"] == "no_model" and "v0002" in body["message"], body
            continue
        seen[body["worker"]] = (status, body)
    assert len(seen) >= want, seen
    return seen


def test_over_http_damaged_and_missing_active_file(tmp_path, warm_models):
    server = start_server(tmp_path, gunicorn=True, env={"SEGMENTLENS_RATE_LIMIT": "off"}, models_from=warm_models)
    registry = Registry(server.models_dir)
    try:
        train(SAMPLE, registry=registry, k=4)  # v0002, active; v0001 (k=6) stays a good older version
        answers = _every_worker(server)
        assert all(s == 200 and b["model_version"] == "v0002" for s, b in answers.values()), answers
        good = _damage(registry, "v0002")
        time.sleep(1.2)  # the live model re-checks its file each second
        # Both workers verified v0002 before the damage: they keep serving that copy and say so.
        for status, body in _every_worker(server).values():
            assert status == 200 and body["status"] == "ok" and body["serving"] == "v0002", body
            assert "v0002" in body["warning"]
        status, _, pred = call(server, "POST", "/api/v1/predict", CUSTOMER)
        assert status == 200 and pred["model_version"] == "v0002" and len(pred["predictions"][0]["distances"]) == 4
    finally:
        server.stop()

    # A new server on the same registry never verified v0002: degraded, and nothing else is served.
    server = start_server(tmp_path, gunicorn=True, env={"SEGMENTLENS_RATE_LIMIT": "off"})
    try:
        for status, body in _every_worker(server).values():
            assert status == 503 and body["status"] == "degraded" and body["serving"] is None
            assert body["active"] == "v0002" and "checksum" in body["reason"] and body["model_version"] is None
        for method, path, payload in (("POST", "/api/v1/predict", CUSTOMER), ("GET", "/api/v1/model", None),
                                      ("GET", "/api/v1/segments", None)):
            status, _, body = call(server, method, path, payload)
            assert status == 503 and body["error"] == "no_model" and "v0002" in body["message"], (path, body)
        registry.file_path("v0002").unlink()  # now missing altogether
        for status, body in _every_worker(server).values():
            assert status == 503 and body["serving"] is None and "v0002" in body["reason"]
        # Open mode (loopback, no accounts, no keys): the admin endpoint repairs it, and both workers follow.
        status, _, body = call(server, "POST", "/api/v1/models/v0001/activate", {})
        assert status == 200 and body == {"active": "v0001", "previous": "v0002"}
        time.sleep(0.3)
        for status, body in _every_worker(server).values():
            assert status == 200 and body["serving"] == "v0001" and body["reason"] is None
        entries = AuditLog(server.models_dir).entries()
        assert (entries[-1]["user"], entries[-1]["action"], entries[-1]["target"]) == ("local", "activate", "v0001")
        registry.file_path("v0001")  # still there
        assert good  # the damaged bytes were not needed again
    finally:
        server.stop()
