"""First visit, repeat visit and cold/warm time to the last chart, measured in headless Chromium.

    python benchmarks/bench_dashboard.py [--sizes sample,1000000] [--pages /,/stability,...] [--callbacks]

For each data size (``sample`` = the committed synthetic sample, a number = that many synthetic
customers from ``core.reading.synth``, as Parquet, or with ``--text`` as a tab-separated text file), in one run:

1. Trains two versions with the CLI (``python -m core train``; the second ``--no-activate``, another
   seed) into a fresh registry: the training job stores the pages' views (core/versions/views.py) from
   5,000 customers on. Training time is reported.
2. Starts ``python app.py`` on a free loopback port with its own registry and an empty cache. Above
   50,000 customers (a version's sample) the data file is moved away first: the pages must stand on
   the version's sample and aggregates alone. After every page, the server's resident memory is read.
3. **Transfer**: opens ``/`` in a fresh browser profile (empty HTTP cache) and sums the bytes on the
   wire of every response (CDP ``Network.loadingFinished.encodedDataLength``: headers + compressed
   body); then opens ``/`` again in the same browser (repeat visit: cached assets, revalidated page).
4. **Cold**: activates the second version (``python -m core models activate``): nothing for it is in
   the server's result cache. The same browser (scripts cached, as for someone who used the
   dashboard before the retrain) opens each page (in the order given) twice: the time
   from navigation to the last chart drawn (every ``dcc.Graph`` has its SVG, no loading spinner)
   of the first visit is the cold time, of the second the warm time ("n/a": not drawn within
   ``--timeout``, e.g. /diagnostics on big data, whose default sweep runs as a background job).
5. ``--callbacks`` also replays each page's callback requests ``--repeats`` times (p50/p95 ms).

``--compare-roots OLD,NEW [--models-from REG[,REG]] [--data FILE] [--rounds 3]`` instead compares the first and
the cold visit to / of two checkouts (e.g. before and after a change), alternating. Without ``--models-from``
each checkout first trains its own two versions with its own CLI (so each is measured on its own model
file format) on ``--data`` or on the first of ``--sizes`` (``--text``: a text file), e.g. the issue-29 check::

    python benchmarks/bench_dashboard.py --compare-roots /work/main,. --sizes 1000000 --text --rounds 3

Medians: each number is one measurement except the callback replay; the machine is shared, so
compare within a run. Needs Debian's chromium + chromedriver (as the browser tests).
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAGES = ["/", "/stability", "/profiles", "/compare", "/explorer", "/predict", "/data", "/diagnostics"]


def browser():
    """A headless Chromium with a fresh profile (empty HTTP cache) and the network log on."""
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


def _network(driver) -> list[dict]:
    return [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]


def visit(driver, url: str, timeout: float = 180.0) -> dict:
    """Open a page; return seconds to the last chart drawn, bytes on the wire, resources and callback bodies."""
    driver.get_log("performance")  # drop earlier entries
    start = time.perf_counter()
    driver.get(url)
    deadline, drawn, settled = start + timeout, None, None
    while time.perf_counter() < deadline:
        state = driver.execute_script(
            "const g=[...document.querySelectorAll('.dash-graph')];"
            "const pending=document.querySelectorAll('._dash-loading, ._dash-loading-callback, .dash-graph--pending,"
            " .dash-graph-spinner').length;"
            "const page=document.getElementById('_pages_content');"
            "return {graphs:g.length, drawn:g.filter(x=>x.querySelector('.main-svg')).length, pending:pending,"
            "content: page ? page.children.length : 0};")
        ready = state["content"] and not state["pending"] and state["drawn"] == state["graphs"]
        if ready and settled is None:
            settled = time.perf_counter()
        if not ready:
            settled = None
        # Done when every chart is drawn and nothing is loading, and it stays so for 0.3 s.
        if settled is not None and time.perf_counter() - settled >= 0.3:
            drawn = settled - start
            break
        time.sleep(0.02)
    time.sleep(0.5)  # let late responses finish so their bytes are counted
    # Where the time went: the callbacks' requests (server time + transfer) against the whole visit.
    calls = driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/_dash-update-component'))"
        ".map(e => [e.startTime, e.responseEnd]);") or []
    sizes, urls, bodies = {}, {}, []
    for msg in _network(driver):
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
            req = params["request"]
            if urlparse(req["url"]).path == "/_dash-update-component":
                body = req.get("postData")
                if body is None and req.get("postDataEntries"):
                    body = b"".join(base64.b64decode(e.get("bytes", "")) for e in req["postDataEntries"]).decode()
                if body:
                    bodies.append(body)
        elif method == "Network.loadingFinished":
            sizes[params["requestId"]] = sizes.get(params["requestId"], 0) + int(params.get("encodedDataLength", 0))
    resources = sorted(((n, urls.get(r, "?")) for r, n in sizes.items()), reverse=True)
    return {"seconds": drawn, "bytes": sum(sizes.values()), "resources": resources, "bodies": bodies,
            "callbacks_s": max((end - start for start, end in calls), default=0.0) / 1000,
            "callbacks_done_s": max((end for _start, end in calls), default=0.0) / 1000}


def replay(base: str, body: str, repeats: int):
    parsed = urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    times, status = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        conn.request("POST", "/_dash-update-component", body=body,
                     headers={"Content-Type": "application/json", "Accept-Encoding": "br, gzip"})
        resp = conn.getresponse()
        payload = resp.read()
        times.append(time.perf_counter() - t)
        status = resp.status
        if status == 202 or b'"cacheKey"' in payload[:400]:
            return times, "job"  # a background callback: replaying would start more jobs
    conn.close()
    return times, status


def p95(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


def cli(*args, models: Path, root: Path = ROOT) -> float:
    """Run ``python -m core ...`` of the checkout at ``root`` against ``models``; return its wall time."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", *args, "--models", str(models)], cwd=root, check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(root)))
    return time.perf_counter() - t


def serve(tmp: Path, data: Path):
    """``python app.py`` on its own registry (tmp/models) and cache, waiting up to 10 minutes for it."""
    from tests.conftest import LiveServer, free_port, wait_http

    port = free_port()
    env = dict(os.environ, SEGMENTLENS_MODELS=str(tmp / "models"), SEGMENTLENS_CACHE_DIR=str(tmp / "cache"),
               SEGMENTLENS_DATA=str(data), HOST="127.0.0.1", PORT=str(port), PYTHONUNBUFFERED="1")
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    server = LiveServer(f"http://127.0.0.1:{port}", proc, tmp / "models", tmp / "cache")
    t = time.perf_counter()
    try:
        wait_http(server.url + "/api/v1/health", timeout=600, proc=proc)
    except Exception:
        server.stop()
        raise RuntimeError((tmp / "server.log").read_text()[-3000:]) from None
    return server, time.perf_counter() - t


def _ms(seconds) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _kb(n: int) -> str:
    return f"{n / 1024:,.0f} KB"


def run(size: str, pages: list[str], callbacks: bool, repeats: int, timeout: float, text: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="sl-bench-"))
    data = make_data(size, tmp, text)
    models = tmp / "models"
    train1, train2 = train_two(ROOT, data, models)
    # Larger than a version's 50,000-customer sample: the pages stand on the sample and the aggregates,
    # so the file is moved away while the server runs (a page that read it would fail).
    hidden = None
    if size != "sample" and int(size) > 50_000:
        hidden = data.with_name(data.name + ".away")
        data.rename(hidden)
    server, started = serve(tmp, data)
    out = {"size": size, "train_s": (train1, train2), "start_s": started, "file_away": hidden is not None}
    driver = browser()
    try:
        first = visit(driver, server.url + "/")
        repeat = visit(driver, server.url + "/")
        out.update(first=first, repeat=repeat)
        # The same browser (scripts cached, as for someone who used the dashboard before the retrain):
        # the cold time is the server's, not the download of the scripts.
        out["activate_s"] = cli("models", "activate", "v0002", models=models)
        rows, cold, warm = [], {}, {}
        for page in pages:  # /diagnostics last by default: on big data it starts a background sweep
            cold[page] = visit(driver, server.url + page, timeout)
            warm[page] = visit(driver, server.url + page, timeout)
        if callbacks:
            for page in pages:
                for body in warm[page]["bodies"]:
                    name = json.loads(body).get("output", "?")
                    times, status = replay(server.url, body, repeats)
                    rows.append((page, name[:60], status, statistics.median(times) * 1000, p95(times) * 1000))
        out.update(cold=cold, warm=warm, callbacks=rows, rss=server_memory(server.proc.pid))
    finally:
        driver.quit()
        server.stop()
        if hidden is not None:
            hidden.rename(data)
    return out


def serve_from(root: Path, tmp: Path, models: Path, data: Path):
    """``python app.py`` of the checkout at ``root`` on a copy of ``models`` (empty cache): a cold server."""
    import shutil

    from tests.conftest import LiveServer, free_port, wait_http

    shutil.copytree(models, tmp / "models")
    port = free_port()
    env = dict(os.environ, SEGMENTLENS_MODELS=str(tmp / "models"), SEGMENTLENS_CACHE_DIR=str(tmp / "cache"),
               SEGMENTLENS_DATA=str(data), HOST="127.0.0.1", PORT=str(port), PYTHONUNBUFFERED="1")
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    server = LiveServer(f"http://127.0.0.1:{port}", proc, tmp / "models", tmp / "cache")
    wait_http(server.url + "/api/v1/health", timeout=600, proc=proc)
    return server


def make_data(size: str, tmp: Path, text: bool) -> Path:
    """The data file of a run: the committed sample, or ``size`` synthetic customers (Parquet, or text)."""
    from tests.conftest import SAMPLE

    if size == "sample":
        return SAMPLE
    if text:  # a tab-separated text file, as a user's export (issue 29: "a 1M-customer text file")
        from core.reading.synth import write_sample

        data = tmp / f"synthetic_{int(size)}.tsv"
        write_sample(data, n=int(size), seed=11)
        return data
    from core.reading.synth import write_parquet

    data = tmp / f"synthetic_{int(size)}.parquet"
    write_parquet(data, n=int(size), seed=11)
    return data


def train_two(root: Path, data: Path, models: Path) -> tuple[float, float]:
    """Two versions trained by the checkout at ``root`` (its CLI, its file formats): the second not active."""
    return (cli("train", "--data", str(data), "--quiet", models=models, root=root),
            cli("train", "--data", str(data), "--seed", "7", "--no-activate", "--quiet", models=models, root=root))


def compare_roots(roots: list[Path], models: list[Path], data: Path, rounds: int, timeout: float) -> None:
    """First and cold visits to / of several checkouts (e.g. before/after a change), alternating, same run.

    ``models`` holds one registry per checkout (or one for all). Each round and checkout: a cold server
    (its own copy of the registry, empty cache) and a fresh browser; the first visit (empty browser
    cache), then another version activated with the CLI and / opened again in the same browser (the
    cold time: scripts cached, nothing of that version computed). Medians, and the load average.
    """
    import shutil

    registries = dict(zip(map(str, roots), models if len(models) == len(roots) else models * len(roots)))
    results = {str(r): {"first": [], "cold": [], "callback": [], "load": []} for r in roots}
    for i in range(rounds):
        for root in roots:
            source = registries[str(root)]
            versions = sorted(json.loads((source / "manifest.json").read_text())["versions"])
            tmp = Path(tempfile.mkdtemp(prefix="sl-bench-cmp-"))
            server = serve_from(root, tmp, source, data)
            driver = browser()
            try:
                first = visit(driver, server.url + "/", timeout)
                active = json.loads((tmp / "models" / "manifest.json").read_text())["active"]
                other = next(v for v in versions if v != active)
                cli("models", "activate", other, models=tmp / "models", root=root)
                cold = visit(driver, server.url + "/", timeout)
            finally:
                driver.quit()
                server.stop()
                shutil.rmtree(tmp, ignore_errors=True)
            load = os.getloadavg()[0]
            results[str(root)]["first"].append(first["seconds"])
            results[str(root)]["cold"].append(cold["seconds"])
            results[str(root)]["callback"].append(cold["callbacks_s"])
            results[str(root)]["load"].append(load)
            print(f"round {i + 1} {root}: first visit {_ms(first['seconds'])} ({_kb(first['bytes'])}), "
                  f"cold after activation {_ms(cold['seconds'])}, of which its slowest callback "
                  f"{_ms(cold['callbacks_s'])} (all answered at {_ms(cold['callbacks_done_s'])}) "
                  f"(load {load:.1f})", flush=True)
    for root, r in results.items():
        def med(xs):
            xs = [x for x in xs if x is not None]
            return statistics.median(xs) if xs else None
        print(f"{root}: median first visit to / {_ms(med(r['first']))}, cold after activation {_ms(med(r['cold']))}, "
              f"its slowest callback {_ms(med(r['callback']))} ({rounds} rounds, median load {med(r['load']):.1f})")


def server_memory(pid: int) -> dict:
    """Resident memory of the server and its child processes now, and the main process' peak (VmHWM), in MB."""
    import psutil

    main = psutil.Process(pid)
    procs = [main, *main.children(recursive=True)]
    now = sum(p.memory_info().rss for p in procs if p.is_running()) / 2 ** 20
    peak = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return {"rss_mb": now, "main_peak_mb": peak, "processes": len(procs)}


def report(result: dict, pages: list[str]) -> None:
    size = result["size"]
    print(f"\n== {size} customers ==" if size != "sample" else "\n== sample (2,240 customers) ==")
    t1, t2 = result["train_s"]
    print(f"training (CLI, views included from 5,000 customers): {t1:.1f} s and {t2:.1f} s; "
          f"server ready in {result['start_s']:.1f} s; activation {result['activate_s']:.1f} s")
    first, repeat = result["first"], result["repeat"]
    mem = result.get("rss") or {}
    if mem:
        print(f"server memory after every page: {mem['rss_mb']:,.0f} MB resident in {mem['processes']} process(es); "
              f"main process peak {mem['main_peak_mb']:,.0f} MB"
              + ("; the data file was moved away while serving" if result.get("file_away") else ""))
    print(f"first visit to /: {_kb(first['bytes'])} transferred ({len(first['resources'])} responses), "
          f"last chart {_ms(first['seconds'])}")
    print(f"repeat visit to /: {_kb(repeat['bytes'])} transferred, last chart {_ms(repeat['seconds'])}")
    print("  largest responses of the first visit: " + "; ".join(
        f"{urlparse(u).path.rsplit('/', 1)[-1][:40]} {_kb(n)}" for n, u in first["resources"][:5]))
    print(f"{'page':<13} {'cold (after activation)':>24} {'its slowest callback':>21} {'warm':>10} {'warm transfer':>14}"
          "   (time to the last chart drawn)")
    for page in pages:
        print(f"{page:<13} {_ms(result['cold'][page]['seconds']):>24} {_ms(result['cold'][page]['callbacks_s']):>21} "
              f"{_ms(result['warm'][page]['seconds']):>10} {_kb(result['warm'][page]['bytes']):>14}")
    if result["callbacks"]:
        print(f"{'page':<13} {'callback outputs':<60} {'status':>6} {'p50 ms':>8} {'p95 ms':>8}")
        for page, name, status, p50, p95_ in result["callbacks"]:
            print(f"{page:<13} {name:<60} {status!s:>6} {p50:>8.1f} {p95_:>8.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="sample,1000000", help="comma-separated: sample and/or N customers")
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument("--callbacks", action="store_true", help="also replay each page's callbacks (p50/p95)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a page's last chart")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--text", action="store_true", help="N customers as a tab-separated text file, not Parquet")
    parser.add_argument("--compare-roots", metavar="DIR,DIR", help="only: first and cold visits to / of these "
                        "checkouts, alternating (needs --models-from and --data)")
    parser.add_argument("--models-from", help="registries with two trained versions, one or one per checkout "
                        "(--compare-roots; default: each checkout trains its own on the first --sizes)")
    parser.add_argument("--data", type=Path, help="the configured data file (--compare-roots; may be absent)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare-roots (default 3)")
    args = parser.parse_args()
    if args.compare_roots:
        roots = [Path(r).resolve() for r in args.compare_roots.split(",")]
        if args.models_from:
            if args.data is None:
                parser.error("--compare-roots with --models-from needs --data")
            models, data = [Path(m) for m in args.models_from.split(",")], args.data
        else:  # each checkout trains its own registry (its own model file format) on the first --sizes
            size = args.sizes.split(",")[0].strip()
            tmp = Path(tempfile.mkdtemp(prefix="sl-bench-cmp-data-"))
            data = args.data or make_data(size, tmp, args.text)
            models = []
            for n, root in enumerate(roots):
                models.append(tmp / f"models-{n}")
                t1, t2 = train_two(root, data, models[-1])
                print(f"{root}: trained two versions on {data.name} in {t1:.1f} s and {t2:.1f} s", flush=True)
        if len(models) not in (1, len(roots)):
            parser.error("--models-from: one registry, or one per checkout")
        compare_roots(roots, models, data, args.rounds, args.timeout)
        return
    pages = [p for p in args.pages.split(",") if p]
    results = []
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        result = run(size, pages, args.callbacks, args.repeats, args.timeout, text=args.text)
        report(result, pages)
        results.append(result)
    if args.json:
        for r in results:
            for visit_ in [r["first"], r["repeat"], *r["cold"].values(), *r["warm"].values()]:
                visit_.pop("bodies", None)
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
