"""Monitoring under the Procfile's gunicorn (two gevent workers): every prediction counted once, in
/metrics (summed over workers) and /api/v1/monitoring (the shared SQLite store); drift alerts; nothing
of a customer on disk; counters that outlive a worker."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from prometheus_client.mmap_dict import MmapedDict

from core.versions.pipeline import prepare
from core.reading.schema import MODEL_FEATURES
from tests.conftest import SAMPLE, start_server

N_SINGLE_THREADS, N_SINGLE_EACH, N_BATCHES, BATCH = 8, 25, 4, 50
N = N_SINGLE_THREADS * N_SINGLE_EACH + N_BATCHES * BATCH  # 400


def _customers() -> list[dict]:
    """400 customers drawn from the training file, Income tripled (and made unmistakable on disk)."""
    frame = prepare(SAMPLE).frame
    rows = frame.sample(N, random_state=1, replace=len(frame) < N)
    out = []
    for i, (_, r) in enumerate(rows.iterrows()):
        c = {f: float(r[f]) for f in MODEL_FEATURES}
        c["Income"] = round(float(r["Income"]) * 3 + 0.4321 + i * 1e-3, 4)
        c["ID"] = f"secret-customer-{i:04d}"
        out.append(c)
    return out


class _Client:
    """One keep-alive connection (several of them run in parallel)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def call(self, method: str, path: str, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data

    def close(self):
        self.conn.close()


def _get(server, path: str):
    client = _Client(server.url)
    try:
        return client.call("GET", path)
    finally:
        client.close()


def _predicted_total(metrics_text: str) -> float:
    return sum(float(v) for v in re.findall(r'^segmentlens_predictions_total\{[^}]*\} (\S+)$', metrics_text, re.M))


def _workers(pid: int) -> list[int]:
    """gunicorn's worker processes (children of the master)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory, warm_models):
    """Gunicorn (Procfile), two workers, no rate limit; N predictions sent over several connections."""
    tmp = tmp_path_factory.mktemp("monitoring")
    server = start_server(tmp, gunicorn=True, env={"SEGMENTLENS_RATE_LIMIT": "off"}, models_from=warm_models)
    customers = _customers()
    singles = customers[:N_SINGLE_THREADS * N_SINGLE_EACH]
    batches = customers[len(singles):]

    def send_singles(chunk):
        client = _Client(server.url)
        try:
            return [client.call("POST", "/api/v1/predict", c)[0] for c in chunk]
        finally:
            client.close()

    def send_batch(chunk):
        client = _Client(server.url)
        try:
            return [client.call("POST", "/api/v1/predict", {"customers": chunk})[0]]
        finally:
            client.close()

    # Which worker accepts a connection is up to the kernel (one gevent worker may take them all), so
    # each phase pauses the other worker: the singles are scored by one, the batches by the other,
    # and /metrics must sum two workers' files. A pause of seconds is far below gunicorn's timeout.
    workers = _workers(server.proc.pid)
    assert len(workers) == 2, workers
    statuses = []
    with ThreadPoolExecutor(N_SINGLE_THREADS + N_BATCHES) as pool:
        for paused, submit in (
            (workers[1], lambda: [pool.submit(send_singles, singles[i::N_SINGLE_THREADS])
                                  for i in range(N_SINGLE_THREADS)]),
            (workers[0], lambda: [pool.submit(send_batch, batches[i * BATCH:(i + 1) * BATCH])
                                  for i in range(N_BATCHES)]),
        ):
            os.kill(paused, signal.SIGSTOP)
            try:
                statuses += [s for job in submit() for s in job.result()]
            finally:
                os.kill(paused, signal.SIGCONT)
    assert statuses == [200] * (len(singles) + N_BATCHES)
    server.customers = customers
    yield server
    server.stop()


def test_every_prediction_counted_in_metrics_and_monitoring(served):
    # Both workers scored some of them: each wrote prediction counters to its own file.
    counter_files = list((served.cache_dir / "prometheus").glob("counter_*.db"))
    assert len(counter_files) == 2, counter_files
    scored = [sum(value for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))
                  if json.loads(key)[1] == "segmentlens_predictions_total") for path in counter_files]
    assert sorted(scored) == sorted([len(served.customers) - N_BATCHES * BATCH, N_BATCHES * BATCH]), scored
    for _ in range(6):  # several scrapes, answered by either worker: each sees all N
        status, headers, data = _get(served, "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        text = data.decode()
        assert _predicted_total(text) == N
        assert re.search(r'^segmentlens_model_info\{.*version="v0001"', text, re.M)
        assert 'segmentlens_request_duration_seconds_bucket{endpoint="/api/v1/predict"' in text
        status, _, body = _get(served, "/api/v1/monitoring")
        report = json.loads(body)
        assert status == 200 and report["predictions"] == N
        assert sum(s["predictions"] for s in report["segments"]) == N
        assert sum(t["predictions"] for t in report["traffic"]) == N
    # The segment counts of /metrics and /api/v1/monitoring agree, segment by segment.
    text = _get(served, "/metrics")[2].decode()
    per_segment = {int(s): float(v) for s, v in re.findall(
        r'^segmentlens_predictions_total\{model_version="v0001",segment="(\d+)",source="api"\} (\S+)$', text, re.M)}
    report = json.loads(_get(served, "/api/v1/monitoring")[2])
    assert per_segment == {s["segment"]: float(s["predictions"]) for s in report["segments"] if s["predictions"]}


def test_shifted_feature_alerts_and_unshifted_do_not(served):
    report = json.loads(_get(served, "/api/v1/monitoring")[2])
    drift = {a["feature"]: a for a in report["alerts"] if a["kind"] == "feature_drift"}
    assert "Income" in drift and drift["Income"]["value"] > 0.2 and "Income" in drift["Income"]["message"]
    psi = {f["feature"]: f["psi"] for f in report["features"]}
    for feature in ("Age", "Recency", "NumWebVisitsMonth", "NumStorePurchases"):
        assert feature not in drift and psi[feature] < 0.2, (feature, psi[feature])
    assert report["recommendation"] == "retrain" and any("Income" in r for r in report["reasons"])


def test_no_customer_value_in_any_monitoring_file(served):
    files = [p for p in served.cache_dir.rglob("*") if p.is_file() and (
        p.name.startswith("monitoring.sqlite3") or "prometheus" in p.parts)]
    assert any(p.name == "monitoring.sqlite3" for p in files) and any("prometheus" in p.parts for p in files)
    blob = b"".join(p.read_bytes() for p in files)
    for c in served.customers[:50] + served.customers[-50:]:
        income = c["Income"]
        assert str(income).encode() not in blob and f"{income:.4f}".encode() not in blob
        assert struct.pack("<d", income) not in blob and struct.pack(">d", income) not in blob
        assert c["ID"].encode() not in blob
    assert b"secret-customer" not in blob


def test_counters_survive_a_worker_restart(served):
    workers = _workers(served.proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.time() + 60
    while time.time() < deadline and (workers[0] in _workers(served.proc.pid) or len(_workers(served.proc.pid)) < 2):
        time.sleep(0.2)
    assert len(_workers(served.proc.pid)) == 2 and workers[0] not in _workers(served.proc.pid)
    for _ in range(4):
        status, _, body = _get(served, "/api/v1/monitoring")
        assert status == 200 and json.loads(body)["predictions"] == N
        assert _predicted_total(_get(served, "/metrics")[2].decode()) == N


def test_monitoring_in_openapi_and_unknown_methods(served):
    doc = json.loads(_get(served, "/api/v1/openapi.json")[2])
    assert doc["paths"]["/api/v1/monitoring"]["get"]["operationId"] == "monitoring"
    assert "Monitoring" in doc["components"]["schemas"]
    client = _Client(served.url)
    try:
        status, headers, _ = client.call("POST", "/api/v1/monitoring", {})
    finally:
        client.close()
    assert status == 405 and headers["Allow"] == "GET"
