"""Access and hardening benchmarks (a script, not a test): prints measured figures for issue 9.

Starts the Procfile's command (gunicorn, gevent workers) on a free loopback port with its own
registry and cache, then measures in one run:

1. single predict latency, p50/p99 over N sequential requests on one keep-alive connection,
   with no API key configured and then with keys configured (Authorization: Bearer checked);
2. /api/v1/health p50/p95 while 64 slow clients hold half-sent requests open;
3. each worker's resident memory before and after a rejected 300 MB body (declared and sent).

Usage: python benchmarks/bench_http.py [--requests 2000]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.slow_clients import health_latencies, hold_slow_clients  # noqa: E402

CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def predict_latencies(url: str, n: int, key: str | None) -> list[float]:
    host, port = url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = json.dumps(CUSTOMER)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/predict", body, headers)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
        out.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return out


def worker_rss(master_pid: int) -> dict[int, float]:
    import psutil

    return {c.pid: c.memory_info().rss / 2**20 for c in psutil.Process(master_pid).children()
            if "gunicorn" in " ".join(c.cmdline())}


def send_big_body(url: str, megabytes: int) -> str:
    """Declare and really send a large body; return the status line the server answered."""
    host, port = url.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    total = megabytes * 2**20
    s.sendall(f"POST /_dash-update-component HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {total}\r\n\r\n".encode())
    chunk = b"a" * 2**20
    try:
        for _ in range(megabytes):
            s.sendall(chunk)
    except OSError:
        pass  # the server closed the connection after refusing: what we want
    try:
        line = s.recv(200).split(b"\r\n")[0].decode()
    except OSError as exc:
        line = f"(connection closed: {exc})"
    s.close()
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    from tests.conftest import start_server
    from core.access.accounts import AccountStore

    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    server = start_server(tmp, gunicorn=True, env={"SEGMENTLENS_RATE_LIMIT": "off"})
    try:
        predict_latencies(server.url, 200, None)  # warm both workers
        plain = predict_latencies(server.url, args.requests, None)
        key = AccountStore(server.models_dir).create_key("bench", "viewer")
        time.sleep(0.3)
        predict_latencies(server.url, 200, key)
        keyed = predict_latencies(server.url, args.requests, key)
        print(f"predict, no keys:   p50 {statistics.median(plain):.2f} ms  p99 {pct(plain, 0.99):.2f} ms "
              f"({args.requests} sequential, keep-alive)")
        print(f"predict, key check: p50 {statistics.median(keyed):.2f} ms  p99 {pct(keyed, 0.99):.2f} ms "
              f"(ratio p50 {statistics.median(keyed) / statistics.median(plain):.2f})")

        baseline = sorted(health_latencies(server.url, 40))
        socks = hold_slow_clients(server.url, 64)
        time.sleep(0.5)
        try:
            stalled = sorted(health_latencies(server.url, 40))
        finally:
            for s in socks:
                s.close()
        print(f"/health, idle:            p50 {statistics.median(baseline):.1f} ms  p95 {pct(baseline, 0.95):.1f} ms")
        print(f"/health, 64 slow clients: p50 {statistics.median(stalled):.1f} ms  p95 {pct(stalled, 0.95):.1f} ms")

        before = worker_rss(server.proc.pid)
        line = send_big_body(server.url, 300)
        time.sleep(1.0)
        after = worker_rss(server.proc.pid)
        print(f"300 MB body to /_dash-update-component: {line!r}")
        for pid in sorted(before):
            print(f"  worker RSS {before[pid]:.0f} MB -> {after.get(pid, float('nan')):.0f} MB")
    finally:
        server.stop()
    os.environ.pop("SEGMENTLENS_RATE_LIMIT", None)


if __name__ == "__main__":
    main()
