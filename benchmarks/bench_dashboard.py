"""Dashboard callback latency and first render, measured through a running server.

    python benchmarks/bench_dashboard.py [--data PATH] [--synthetic N] [--repeats 20] [--gunicorn]

How it measures:
1. Starts the app in a subprocess (``python app.py``, or the Procfile's gunicorn) on a free loopback
   port, with its own registry and cache, on the given data (default: the real file).
2. Opens every page in headless Chromium (Debian's chromium + chromedriver) and records, from the
   browser's network log, every ``/_dash-update-component`` request the page makes (its real payload),
   plus the time until the page's graphs have drawn ("first render").
3. Replays each captured callback request ``--repeats`` times over HTTP (keep-alive, warm cache) and
   prints p50 / p95 per callback, named by its outputs.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "data" / "marketing_campaign.csv"
PAGES = ["/", "/profiles", "/compare", "/explorer", "/diagnostics", "/stability", "/predict", "/data"]


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options

    opts = Options()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1000"):
        opts.add_argument(flag)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "SEVERE"})
    return webdriver.Chrome(options=opts)


def capture(driver, url: str, timeout: float = 30.0):
    """Load a page; return (first render seconds, captured callback request bodies)."""
    driver.get_log("performance")  # drop earlier entries
    start = time.perf_counter()
    driver.get(url)
    deadline = start + timeout
    rendered = None
    while time.perf_counter() < deadline:
        state = driver.execute_script(
            "const g=[...document.querySelectorAll('.js-plotly-plot')];"
            "const pending=document.querySelectorAll('._dash-loading, ._dash-loading-callback').length;"
            "return {graphs:g.length, drawn:g.filter(x=>x.querySelector('.main-svg')).length, pending:pending};")
        if state["graphs"] and state["drawn"] == state["graphs"] and not state["pending"]:
            rendered = time.perf_counter() - start
            break
        if not state["graphs"] and not state["pending"] and time.perf_counter() - start > 1.5:
            rendered = time.perf_counter() - start  # a page without graphs
            break
        time.sleep(0.02)
    time.sleep(0.5)
    bodies = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") != "Network.requestWillBeSent":
            continue
        req = msg["params"]["request"]
        if urlparse(req["url"]).path != "/_dash-update-component":
            continue
        body = req.get("postData")
        if body is None and req.get("postDataEntries"):
            # Newer Chromium sends the body base64-encoded in postDataEntries.
            body = b"".join(base64.b64decode(e.get("bytes", "")) for e in req["postDataEntries"]).decode()
        if body:
            bodies.append(body)
    return rendered, bodies


def replay(base: str, body: str, repeats: int):
    parsed = urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    times, status = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        conn.request("POST", "/_dash-update-component", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
        times.append(time.perf_counter() - t)
        status = resp.status
        if status == 202 or b'"cacheKey"' in payload[:400]:
            # A background callback: its answer is a job ticket; replaying would start more jobs.
            return times, "job"
    conn.close()
    return times, status


def p95(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REAL))
    parser.add_argument("--synthetic", type=int, help="use N synthetic customers instead of --data")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--gunicorn", action="store_true", help="serve with the Procfile's gunicorn")
    args = parser.parse_args()

    from tests.conftest import start_server

    tmp = Path(tempfile.mkdtemp(prefix="sl-bench-"))
    data = Path(args.data)
    if args.synthetic:
        from core.synth import write_sample
        data = tmp / f"synthetic_{args.synthetic}.tsv"
        write_sample(data, n=args.synthetic, seed=11)
    if not data.exists():
        sys.exit(f"no data at {data}")
    print(f"data: {data.name}; server: {'gunicorn (Procfile)' if args.gunicorn else 'python app.py'}; "
          f"repeats per callback: {args.repeats}")
    server = start_server(tmp, gunicorn=args.gunicorn, data=data)
    driver = browser()
    try:
        # Warm the shared cache once (the first analysis of a new model/data is computed, then cached).
        capture(driver, server.url + "/", timeout=120)
        rows = []
        for page in PAGES:
            rendered, bodies = capture(driver, server.url + page, timeout=60)
            # A second load is the warm-cache first render a user sees.
            rendered, bodies = capture(driver, server.url + page, timeout=60)
            print(f"{page:<13} first render (warm) {'n/a' if rendered is None else f'{rendered * 1000:.0f} ms'}; "
                  f"{len(bodies)} callback requests")
            for body in bodies:
                name = json.loads(body).get("output", "?")
                times, status = replay(server.url, body, args.repeats)
                rows.append((page, name[:70], status, statistics.median(times) * 1000, p95(times) * 1000))
        print(f"\n{'page':<13} {'callback outputs':<70} {'status':>6} {'p50 ms':>8} {'p95 ms':>8}")
        for page, name, status, p50, p95_ in rows:
            print(f"{page:<13} {name:<70} {status:>6} {p50:>8.1f} {p95_:>8.1f}")
        rows = [r for r in rows if r[2] != "job"]  # background jobs report progress, not latency
        worst = max(rows, key=lambda r: r[4]) if rows else None
        if worst:
            print(f"\nworst p95: {worst[4]:.1f} ms ({worst[0]} {worst[1]})")
    finally:
        driver.quit()
        server.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
