"""Prediction API and what-if page benchmarks (a script, not a test): prints measured figures.

Starts the Procfile's gunicorn (2 workers x 4 threads) on a free loopback port with its own
registry and cache in a temporary folder, then measures:

1. the rate limiter's own cost (one SQLite UPSERT per request), in process;
2. single prediction over HTTP: p50/p99 of N sequential requests on one keep-alive
   connection (http.client), plus the server-side time from the X-Server-Time-ms header;
3. a batch of 1,000 customers: server time (X-Server-Time-ms) and round trip;
4. load: a second process sends paced requests at 200/s for 60 s (10 s with --quick) on
   keep-alive connections and reports errors and latency;
5. the what-if callback: POST /_dash-update-component with the page's callback payload;
6. (--vs-bare, issue 29) one prediction with an API key and monitoring on against its peer, a bare Flask JSON
   endpoint (benchmarks/bare_app.py) served by the same Procfile gunicorn command and gunicorn.conf.py, in the
   same run: blocks of sequential keep-alive requests alternate between the two servers so both see the same
   machine; p50, p99 and the p50 ratio.

7. (--profile --models-from DIR, alone) where one prediction's time goes: cProfile of 1,000 keyed predictions in
   process (Flask test client), as shares of the app's WSGI call: key check, rate limiter, validation,
   scoring, monitoring. A keyed prediction is answered by dashboard/api_fast.py beneath Flask's hooks (the
   same answer, header for header); what is left of the server's time is gunicorn's own per-request work,
   which the bare peer pays too.

Usage: python benchmarks/bench_api.py [--quick] [--requests 2000] [--data FILE] [--vs-bare [--only-vs-bare]
       [--repetitions 5]]
       python benchmarks/bench_api.py --profile --models-from DIR
The server runs with SEGMENTLENS_RATE_LIMIT set high enough for the load, so the limiter
is active (and its cost included) but never refuses a benchmark request.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}

_LOAD_SCRIPT = r"""
import http.client, json, sys, time
host, port, rate, seconds, body = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
headers = {"Content-Type": "application/json"}
conn = http.client.HTTPConnection(host, port, timeout=10)
total = int(rate * seconds)
lat, errors, statuses = [], 0, {}
start = time.perf_counter()
deadline = start + seconds + 10  # bounded in time even when the server falls behind
for i in range(total):
    due = start + i / rate
    now = time.perf_counter()
    if now > deadline:
        break
    if due > now:
        time.sleep(due - now)
    t0 = time.perf_counter()
    try:
        conn.request("POST", "/api/v1/predict", body, headers)
        resp = conn.getresponse()
        resp.read()
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        if resp.status != 200:
            errors += 1
    except Exception as exc:
        errors += 1
        statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
        conn.close()
        conn = http.client.HTTPConnection(host, port, timeout=10)
    lat.append(time.perf_counter() - t0)
elapsed = time.perf_counter() - start
lat.sort()
print(json.dumps({"sent": len(lat), "planned": total, "errors": errors, "statuses": statuses, "elapsed": elapsed,
                  "p50_ms": lat[len(lat) // 2] * 1000, "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
                  "max_ms": lat[-1] * 1000}))
"""


def pct(values, q: float) -> float:
    """The q-quantile (0-1) of values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def post(conn, path: str, payload, headers=None) -> tuple[int, bytes, dict, float]:
    """One POST on a keep-alive connection: status, body, headers, seconds."""
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    t0 = time.perf_counter()
    conn.request("POST", path, body, {"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data, dict(resp.getheaders()), time.perf_counter() - t0


def bench_limiter(tmp: Path, n: int = 5000) -> None:
    """In-process cost of one rate-limit check (SQLite UPSERT in WAL mode)."""
    from dashboard.api import RateLimiter

    limiter = RateLimiter(tmp / "limiter.sqlite3", 10 ** 9, 60)
    limiter.hit("warm")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        limiter.hit(f"10.0.0.{i % 50}")
        times.append(time.perf_counter() - t0)
    print(f"rate limiter: median {statistics.median(times) * 1e6:.1f} us, p99 {pct(times, 0.99) * 1e6:.1f} us "
          f"per check ({n} checks, 50 client keys, in process)")


def bench_single(host: str, port: int, n: int) -> None:
    """Sequential single predictions on one keep-alive connection."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    body = json.dumps(CUSTOMER)
    for _ in range(100):
        post(conn, "/api/v1/predict", body)
    rtt, server = [], []
    for _ in range(n):
        status, _data, headers, seconds = post(conn, "/api/v1/predict", body)
        assert status == 200, status
        rtt.append(seconds)
        server.append(float(headers["X-Server-Time-ms"]))
    conn.close()
    print(f"single predict, {n} sequential requests, one keep-alive connection (http.client):")
    print(f"  round trip p50 {pct(rtt, 0.5) * 1000:.3f} ms, p99 {pct(rtt, 0.99) * 1000:.3f} ms; "
          f"server time p50 {pct(server, 0.5):.3f} ms, p99 {pct(server, 0.99):.3f} ms")


def bench_batch(host: str, port: int, size: int = 1000, runs: int = 30) -> None:
    """A batch of ``size`` customers: server time and round trip."""
    import random

    rng = random.Random(0)
    customers = [{**CUSTOMER, "Age": rng.randint(20, 80), "Income": rng.randint(5_000, 150_000), "ID": i}
                 for i in range(size)]
    body = json.dumps({"customers": customers})
    conn = http.client.HTTPConnection(host, port, timeout=30)
    for _ in range(3):
        post(conn, "/api/v1/predict", body)
    rtt, server = [], []
    for _ in range(runs):
        status, data, headers, seconds = post(conn, "/api/v1/predict", body)
        assert status == 200 and len(json.loads(data)["predictions"]) == size
        rtt.append(seconds)
        server.append(float(headers["X-Server-Time-ms"]))
    conn.close()
    print(f"batch of {size:,} customers ({len(body) / 1024:.0f} KiB body), {runs} runs:")
    print(f"  server time (X-Server-Time-ms: parse, validate, score, serialise) "
          f"median {statistics.median(server):.2f} ms, max {max(server):.2f} ms; "
          f"round trip median {statistics.median(rtt) * 1000:.2f} ms")


def bench_load(host: str, port: int, rate: float, seconds: float) -> None:
    """Paced load from a second process."""
    proc = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, host, str(port), str(rate), str(seconds),
                           json.dumps(CUSTOMER)], capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode:
        print("load generator failed:", proc.stderr[-2000:])
        return
    r = json.loads(proc.stdout)
    print(f"load: {r['sent']:,} of {r['planned']:,} requests paced at {rate:.0f}/s from a second process in "
          f"{r['elapsed']:.1f} s (achieved {r['sent'] / r['elapsed']:.0f}/s): {r['errors']} errors, "
          f"statuses {r['statuses']}")
    print(f"  latency p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms")


def whatif_payload(host: str, port: int, values: dict) -> dict:
    """The what-if callback's request body, built from /_dash-dependencies as the browser builds it."""
    from dashboard import ids

    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/predict")  # the page's layout must have been served once (Dash registers pages lazily)
    conn.getresponse().read()
    conn.request("GET", "/_dash-dependencies")
    deps = json.loads(conn.getresponse().read())
    conn.close()
    cb = next(d for d in deps if f"{ids.PREDICT_RESULT}.children" in d["output"])
    features = list(values)
    outputs = []
    specs = cb["output"][2:-2].split("...") if cb["output"].startswith("..") else [cb["output"]]
    for spec in specs:
        cid, prop = spec.rsplit(".", 1)
        if cid.startswith("{"):
            pattern = json.loads(cid)
            outputs.append([{"id": {**pattern, "field": f}, "property": prop} for f in features])
        else:
            outputs.append({"id": cid, "property": prop})
    inputs = [[{"id": {"type": ids.PREDICT_FIELD, "field": f}, "property": "value", "value": str(v)}
               for f, v in values.items()]]
    changed = json.dumps({"field": features[0], "type": ids.PREDICT_FIELD}, separators=(",", ":")) + ".value"
    return {"output": cb["output"], "outputs": outputs, "inputs": inputs, "changedPropIds": [changed], "state": []}


def bench_whatif(host: str, port: int, runs: int = 60) -> None:
    """Round trip of the what-if callback (validation, scoring, flip points, two figures)."""
    payload = whatif_payload(host, port, CUSTOMER)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    for i in range(5):
        status, data, _h, _s = post(conn, "/_dash-update-component", payload)
        assert status == 200, (status, data[:500])
    times, size = [], 0
    for i in range(runs):
        payload["inputs"][0][0]["value"] = str(30 + i % 40)  # a different age each time
        status, data, _h, seconds = post(conn, "/_dash-update-component", payload)
        assert status == 200
        times.append(seconds)
        size = len(data)
    conn.close()
    print(f"what-if callback (POST /_dash-update-component, {runs} runs, response {size / 1024:.0f} KiB): "
          f"median {statistics.median(times) * 1000:.1f} ms, p99 {pct(times, 0.99) * 1000:.1f} ms")


def _latencies(host: str, port: int, path: str, body: str, headers: dict, n: int) -> list[float]:
    """``n`` sequential POSTs on one keep-alive connection: seconds each (every answer must be 200)."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    out = []
    try:
        for _ in range(n):
            status, data, _h, seconds = post(conn, path, body, headers)
            assert status == 200, (path, status, data[:200])
            out.append(seconds)
    finally:
        conn.close()
    return out


def start_bare(tmp: Path):
    """benchmarks/bare_app.py under the Procfile's gunicorn command (same config file, workers, worker class)."""
    from tests.conftest import LiveServer, free_port, procfile_command

    port = free_port()
    command = procfile_command(host="127.0.0.1").replace("app:server", "benchmarks.bare_app:app")
    command = command.replace("$PORT", str(port))
    log = open(tmp / "bare.log", "w")
    env = dict(os.environ, SEGMENTLENS_CACHE_DIR=str(tmp / "bare-cache"), PORT=str(port))
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    server = LiveServer(f"http://127.0.0.1:{port}", proc, tmp, tmp)
    deadline = time.monotonic() + 60
    while True:  # the bare app has no GET route: wait for any HTTP answer
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                server.stop()
                raise RuntimeError((tmp / "bare.log").read_text()[-2000:]) from None
            time.sleep(0.3)
    return server


def _workers_cpu(master: int) -> float:
    """CPU seconds (user + system) used so far by the worker processes of a gunicorn master."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:  # fields[1] is the parent pid; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / tick


def bench_vs_bare(server, tmp: Path, n: int, blocks: int = 10) -> dict:
    """One prediction (API key, monitoring on) against a bare Flask JSON endpoint, same gunicorn config, same run."""
    from core.access.accounts import AccountStore

    key = AccountStore(server.models_dir).create_key(f"bench-vs-bare-{os.urandom(3).hex()}", "viewer")  # one per run
    bare = start_bare(tmp)
    try:
        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        bare_port = int(bare.url.rsplit(":", 1)[1])
        body = json.dumps(CUSTOMER)
        keyed = {"Authorization": f"Bearer {key}"}
        for _ in range(2):  # warm both workers of both servers
            _latencies(host, port, "/api/v1/predict", body, keyed, 200)
            _latencies(host, bare_port, "/bare", body, {}, 200)
        predict, peer = [], []
        cpu = {"predict": 0.0, "bare": 0.0}  # the servers' own CPU time: robust to a busy machine
        per_block = max(n // blocks, 1)
        for _ in range(blocks):  # alternate, so a busy moment of the machine hits both
            c0 = _workers_cpu(server.proc.pid)
            predict += _latencies(host, port, "/api/v1/predict", body, keyed, per_block)
            cpu["predict"] += _workers_cpu(server.proc.pid) - c0
            c0 = _workers_cpu(bare.proc.pid)
            peer += _latencies(host, bare_port, "/bare", body, {}, per_block)
            cpu["bare"] += _workers_cpu(bare.proc.pid) - c0
    finally:
        bare.stop()
    monitoring = os.environ.get("SEGMENTLENS_MONITORING", "on")
    p50, q50 = pct(predict, 0.5) * 1000, pct(peer, 0.5) * 1000
    print(f"predict vs bare Flask endpoint (same gunicorn config, {len(predict)} sequential keep-alive requests "
          f"each, {blocks} alternating blocks; API key sent and checked, monitoring {monitoring}):")
    print(f"  POST /api/v1/predict  p50 {p50:.3f} ms, p99 {pct(predict, 0.99) * 1000:.3f} ms")
    print(f"  POST /bare (peer)     p50 {q50:.3f} ms, p99 {pct(peer, 0.99) * 1000:.3f} ms")
    print(f"  ratio p50 {p50 / q50:.2f}, p99 {pct(predict, 0.99) / pct(peer, 0.99):.2f}")
    per_predict, per_bare = cpu["predict"] / len(predict) * 1000, cpu["bare"] / len(peer) * 1000
    print(f"  server CPU per request (gunicorn workers' user+system time): predict {per_predict:.3f} ms, "
          f"bare {per_bare:.3f} ms, ratio {per_predict / per_bare if per_bare else float('nan'):.2f}")
    print(f"  load average during the run: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    return {"p50": p50, "p99": pct(predict, 0.99) * 1000, "bare_p50": q50, "bare_p99": pct(peer, 0.99) * 1000,
            "ratio": p50 / q50, "cpu_ratio": per_predict / per_bare if per_bare else float("nan")}


def report_repetitions(runs: list[dict]) -> None:
    """Medians over repeated --vs-bare runs (each its own same-run comparison)."""
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(f"median of {len(runs)} repetitions: predict p50 {med['p50']:.3f} ms, p99 {med['p99']:.3f} ms; "
          f"bare p50 {med['bare_p50']:.3f} ms, p99 {med['bare_p99']:.3f} ms; p50 ratio {med['ratio']:.2f} "
          f"(each run's: {', '.join(format(r['ratio'], '.2f') for r in runs)}); server CPU ratio {med['cpu_ratio']:.2f}")


# Where one prediction's time goes (--profile): cProfile's cumulative time of these, per request.
_PHASES = (("keyed prediction layer (dashboard/api_fast.py)", "dashboard/api_fast.py", "__call__"),
           ("  key check", "core/access/accounts.py", "verify_key"),
           ("  rate limiter (lease in process)", "dashboard/limits.py", "hit"),
           ("  prediction (dashboard.api.predicted)", "dashboard/api.py", "predicted"),
           ("    served model (live_model)", "dashboard/services/__init__.py", "live_model"),
           ("    validation (parse_request)", "core/versions/scoring.py", "parse_request"),
           ("    scoring (score_one)", "core/fitting/model.py", "score_one"),
           ("    response body (JSON text)", "dashboard/api.py", "_encode_predictions"),
           ("  monitoring counters (in memory)", "dashboard/monitoring.py", "record"),
           ("  latency histogram (Prometheus)", "prometheus_client/metrics.py", "observe"),
           ("Flask (requests the layer leaves to it)", "flask/app.py", "wsgi_app"))


def profile_predict(models_from: Path, n: int = 1000) -> None:
    """cProfile of ``n`` keyed predictions in process (Flask test client, monitoring on): where the time goes."""
    import cProfile
    import pstats
    import shutil

    with tempfile.TemporaryDirectory(prefix="bench_profile_") as tmp_name:
        tmp = Path(tmp_name)
        shutil.copytree(models_from, tmp / "models")
        from tests.conftest import SAMPLE

        os.environ.update(SEGMENTLENS_MODELS=str(tmp / "models"), SEGMENTLENS_CACHE_DIR=str(tmp / "cache"),
                          SEGMENTLENS_RATE_LIMIT="1000000/minute", SEGMENTLENS_DATA=str(SAMPLE))
        from core.access.accounts import AccountStore
        from dashboard.factory import create_app

        server = create_app().server
        key = AccountStore(tmp / "models").create_key("profile", "viewer")
        time.sleep(1.1)  # a key file changed this instant is re-read on every check: let it settle
        client = server.test_client()
        body = json.dumps(CUSTOMER)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for _ in range(200):
            assert client.post("/api/v1/predict", data=body, headers=headers).status_code == 200
        t0 = time.perf_counter()
        for _ in range(n):
            client.post("/api/v1/predict", data=body, headers=headers)
        plain = (time.perf_counter() - t0) / n
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            client.post("/api/v1/predict", data=body, headers=headers)
        prof.disable()
        stats = pstats.Stats(prof).stats
        total = next((v[3] for (f, _l, name), v in stats.items() if f.endswith("dashboard/security.py")
                      and name == "__call__" and _l == type(server.wsgi_app).__call__.__code__.co_firstlineno), None)
        print(f"profile of one prediction (in process, {n} requests through the Flask test client, API key, monitoring "
              f"on): {plain * 1e6:.0f} us without the profiler; under it, share of the app's WSGI call:")
        for label, file, func in _PHASES:
            cum = sum(v[3] for (f, _at, name), v in stats.items() if f.endswith(file) and name == func)
            print(f"  {label:40s} {cum / n * 1e6:8.1f} us  {cum / total * 100 if total else 0:5.1f} %")


def main(argv=None) -> int:
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s load instead of 60 s, fewer requests")
    parser.add_argument("--requests", type=int, default=2000, help="sequential single predictions (default 2000)")
    parser.add_argument("--rate", type=float, default=200.0, help="load rate, requests/s (default 200)")
    parser.add_argument("--data", type=Path, help="customer file (default: the committed sample)")
    parser.add_argument("--models-from", type=Path, help="start from a copy of this registry (skips the first "
                        "start's training, which a busy machine may not finish within the start-up wait)")
    parser.add_argument("--vs-bare", action="store_true", help="also: predict against a bare Flask endpoint")
    parser.add_argument("--only-vs-bare", action="store_true", help="only the predict vs bare Flask comparison")
    parser.add_argument("--repetitions", type=int, default=1, help="--vs-bare runs (default 1); medians reported")
    parser.add_argument("--profile", action="store_true", help="only: cProfile of 1,000 predictions in process "
                        "(needs --models-from)")
    args = parser.parse_args(argv)
    if args.profile:
        if args.models_from is None:
            parser.error("--profile needs --models-from DIR")
        profile_predict(args.models_from)
        return 0
    from tests.conftest import SAMPLE, start_server

    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp_name:
        tmp = Path(tmp_name)
        data = args.data or SAMPLE
        if not data.exists():
            from core.reading.synth import write_sample

            data = tmp / "sample.tsv"
            write_sample(data)
        bench_limiter(tmp)
        server = start_server(tmp, gunicorn=True, data=data, models_from=args.models_from,
                              env={"SEGMENTLENS_RATE_LIMIT": "1000000/minute", "SEGMENTLENS_MAX_BODY": "4M"})
        try:
            host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
            print(f"server: {(ROOT / 'Procfile').read_text().strip()} on {server.url} (data {data.name})")
            if args.vs_bare or args.only_vs_bare:
                runs = [bench_vs_bare(server, tmp, args.requests) for _ in range(args.repetitions)]
                if len(runs) > 1:
                    report_repetitions(runs)
            if args.only_vs_bare:
                return 0
            bench_single(host, port, args.requests if not args.quick else min(args.requests, 1000))
            bench_batch(host, port, runs=10 if args.quick else 30)
            bench_whatif(host, port, runs=30 if args.quick else 60)
            bench_load(host, port, args.rate, 10.0 if args.quick else 60.0)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
