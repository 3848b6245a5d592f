"""Cost of monitoring live predictions (a script, not a test): prints measured figures.

Starts two Procfile gunicorn servers (two gevent workers each) on the sample, one with
``SEGMENTLENS_MONITORING=off``, and in the same run measures, alternating rounds between them so
machine noise falls on both alike:

1. single prediction over HTTP: p50/p99 round trip on one keep-alive connection, and the
   server's own time (X-Server-Time-ms), monitoring on vs off;
2. a batch of 1,000 customers: server time, on vs off;
3. in process: Monitor.record for one customer and for 1,000 (the SQLite transaction included).

Usage: python benchmarks/bench_monitoring.py [--quick] [--requests 2000]
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}


def _pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _round(conn, body: str, n: int, rtt: list, server: list) -> None:
    headers = {"Content-Type": "application/json"}
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/predict", body, headers)
        resp = conn.getresponse()
        resp.read()
        rtt.append((time.perf_counter() - t0) * 1000)
        server.append(float(resp.getheader("X-Server-Time-ms")))
        assert resp.status == 200, resp.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="single predictions per server")
    parser.add_argument("--quick", action="store_true", help="500 requests per server")
    args = parser.parse_args()
    n = 500 if args.quick else args.requests
    from tests.conftest import start_server

    tmp = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    servers = {}
    try:
        for mode in ("on", "off"):
            (tmp / mode).mkdir()
            servers[mode] = start_server(tmp / mode, gunicorn=True, env={
                "SEGMENTLENS_RATE_LIMIT": "off", "SEGMENTLENS_MONITORING": mode})
        conns = {}
        for mode, srv in servers.items():
            parts = urlsplit(srv.url)
            conns[mode] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        single = json.dumps(CUSTOMER)
        batch = json.dumps({"customers": [dict(CUSTOMER, Age=20 + i % 60, Income=20_000 + 50 * i) for i in range(1000)]})
        for mode in conns:  # warm up: first requests load the model and compute the training reference
            _round(conns[mode], single, 50, [], [])
            _round(conns[mode], batch, 3, [], [])
        rtt = {m: [] for m in conns}
        srv_ms = {m: [] for m in conns}
        batch_ms = {m: [] for m in conns}
        rounds = 20
        for _ in range(rounds):
            for mode in conns:
                _round(conns[mode], single, n // rounds, rtt[mode], srv_ms[mode])
                _round(conns[mode], batch, 1, [], batch_ms[mode])
        print(f"Single prediction over HTTP, {n} requests per server, gunicorn 2 gevent workers (ms):")
        print(f"{'monitoring':<12}{'p50 rtt':>10}{'p99 rtt':>10}{'p50 server':>12}{'p99 server':>12}{'batch 1000 p50':>16}")
        for mode in conns:
            print(f"{mode:<12}{_pct(rtt[mode], .5):>10.3f}{_pct(rtt[mode], .99):>10.3f}{_pct(srv_ms[mode], .5):>12.3f}"
                  f"{_pct(srv_ms[mode], .99):>12.3f}{statistics.median(batch_ms[mode]):>16.2f}")
        print(f"p50 rtt ratio on/off: {_pct(rtt['on'], .5) / _pct(rtt['off'], .5):.2f}; "
              f"server p50 difference: {(_pct(srv_ms['on'], .5) - _pct(srv_ms['off'], .5)) * 1000:.0f} us")
        for conn in conns.values():
            conn.close()
    finally:
        for srv in servers.values():
            srv.stop()

    # In process: the counting itself.
    from core.insight import monitoring as cm
    from dashboard.monitoring import MonitoringStore
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 7))
    profile = cm.reference_profile(X, [f"f{i}" for i in range(7)], rng.integers(0, 6, 5000), rng.uniform(size=5000),
                                   rng.uniform(size=5000), 6)
    store = MonitoringStore(tmp / "inproc.sqlite3")
    row = X[0].tolist()
    times = []
    for _ in range(2000):
        t0 = time.perf_counter()
        store.add("v1", 1, cm.prediction_counts(profile, [row], [1], [0.5], [0.5]))
        times.append((time.perf_counter() - t0) * 1e6)
    rows = X[:1000]
    big = []
    for _ in range(50):
        t0 = time.perf_counter()
        store.add("v1", 1, cm.prediction_counts(profile, rows, rng.integers(0, 6, 1000), rng.uniform(size=1000),
                                                rng.uniform(size=1000)))
        big.append((time.perf_counter() - t0) * 1e3)
    print(f"In process: count one prediction p50 {statistics.median(times):.0f} us (p99 {_pct(times, .99):.0f} us); "
          f"a batch of 1,000 p50 {statistics.median(big):.2f} ms")


if __name__ == "__main__":
    main()
