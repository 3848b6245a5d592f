"""Anonymous large bodies against the Procfile server (gunicorn, gevent, 2 workers): worker memory and time.

``python benchmarks/bench_bodies.py [--clients 8] [--mb 68] [--runs 3]`` starts a server with one user on a
copy of a first-start registry, sends ``clients`` anonymous chunked bodies of ``mb`` MB at once to the Dash
route, and prints per run the workers' peak RSS growth (MB), the bytes each client got to send before the
answer, the answers and the wall time; then the medians. Issue 22 measured +165 MB in one worker (8 x 68 MB)
before the session was checked first.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--mb", type=float, default=68)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import os

    from core.access.accounts import AccountStore
    from tests.conftest import SAMPLE, start_server
    from tests.test_security_attacks import raw_post, worker_rss

    tmp = Path(tempfile.mkdtemp(prefix="bench-bodies-"))
    env = dict(os.environ, SEGMENTLENS_MODELS=str(tmp / "models"), SEGMENTLENS_CACHE_DIR=str(tmp / "cache"),
               SEGMENTLENS_DATA=str(SAMPLE))
    subprocess.run([sys.executable, "-c", "from dashboard.factory import create_app; create_app()"], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=600)
    AccountStore(tmp / "models").add_user("adam", "admin", "admin-pass-12")
    server = start_server(tmp, gunicorn=True, wait_path="/login")
    growth, seconds = [], []
    try:
        for run in range(args.runs):
            start = worker_rss(server)
            peak = [start]
            done = threading.Event()

            def watch():
                while not done.is_set():
                    peak[0] = max(peak[0], worker_rss(server))
                    time.sleep(0.02)

            watcher = threading.Thread(target=watch)
            watcher.start()
            results: list = []
            t0 = time.perf_counter()
            threads = [threading.Thread(target=lambda: results.append(
                raw_post(server, "/_dash-update-component", int(args.mb * 2**20)))) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            done.set()
            watcher.join()
            growth.append((peak[0] - start) / 2**20)
            seconds.append(elapsed)
            print(f"run {run + 1}: workers +{growth[-1]:.1f} MB peak, answers {sorted(s for s, _ in results)}, "
                  f"sent at most {max(b for _, b in results) / 2**20:.2f} MB per client, {elapsed:.2f} s")
    finally:
        server.stop()
    print(f"median: workers +{statistics.median(growth):.1f} MB, {statistics.median(seconds):.2f} s "
          f"({args.clients} x {args.mb:g} MB anonymous chunked bodies)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
