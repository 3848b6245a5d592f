"""Beyond memory on one machine: the numpy engine streaming 1M, 5M and 10M synthetic customers.

    python benchmarks/bench_scale.py [--sizes 1,5,10] [--repeats 3] [--workdir DIR] [--chunk-rows N]
                                     [--in-memory-max 1]

For each size (millions of customers) a synthetic Parquet file is written once
(``core.reading.synth.write_parquet``, not timed), then, in a fresh child process each time:

* train: ``core.versions.pipeline.train`` streaming the file (two reading passes, k-means from chunked
  statistics over a temporary feature file, one pass for aggregates + stratified sample, save);
* score: ``python -m core score --chunk-rows`` writing every customer's segment to a CSV;
* for sizes up to ``--in-memory-max`` millions, the in-memory path (``stream=False``) as the peer.

Wall time and the child's peak RSS (``/usr/bin/time -v``, else ``resource`` of the child) are
printed per run and as medians. Not part of CI: the 10M run needs about 1 GB of disk and minutes.
The machine's load average is printed too: these machines are shared, compare within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN = r"""
import json, sys, time
sys.path.insert(0, %(root)r)
from core.versions.pipeline import train
from core.versions.registry import Registry
t = time.perf_counter()
version, model, meta = train(%(data)r, registry=Registry(%(models)r), stream=%(stream)r, chunk_rows=%(chunk)r)
print(json.dumps({"seconds": time.perf_counter() - t, "rows": meta["n_customers"], "engine": meta.get("engine"),
                  "inertia": meta["metrics"]["inertia"], "sizes": meta["segment_sizes"]}))
"""


def _time_child(code: str) -> tuple[float, float, str]:
    """Run ``python -c code``; return (wall seconds, peak RSS in MB, stdout)."""
    cmd = [sys.executable, "-c", code]
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    start = time.perf_counter()
    if gnu_time:
        done = subprocess.run([gnu_time, "-v", *cmd], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        return wall, int(rss.group(1)) / 1024 if rss else float("nan"), done.stdout
    import resource

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    # ru_maxrss of children is the largest child so far: only meaningful for the first, so say so.
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, done.stdout


def _make_file(workdir: Path, millions: float) -> Path:
    from core.reading.synth import write_parquet

    n = int(round(millions * 1_000_000))
    path = workdir / f"customers_{n}.parquet"
    if not path.exists():
        t = time.perf_counter()
        write_parquet(path, n=n, seed=7)
        print(f"wrote {n:,} customers to {path} ({path.stat().st_size / 1e6:,.0f} MB) in "
              f"{time.perf_counter() - t:.1f}s", flush=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,5,10", help="millions of customers (default 1,5,10)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where the Parquet files go (default: a temp folder, kept)")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--in-memory-max", type=float, default=1.0,
                        help="also time the in-memory path up to this many millions (default 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "segmentlens-bench-scale")
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}; cores: {os.cpu_count()}", flush=True)
    results = []
    for millions in [float(s) for s in args.sizes.split(",") if s.strip()]:
        data = _make_file(workdir, millions)
        modes = [("streaming", True)] + ([("in-memory", False)] if millions <= args.in_memory_max else [])
        for label, stream in modes:
            runs = []
            for r in range(args.repeats):
                models = tempfile.mkdtemp(prefix="bench-models-", dir=workdir)
                try:
                    code = TRAIN % {"root": str(ROOT), "data": str(data), "models": models, "stream": stream,
                                    "chunk": args.chunk_rows if stream else None}
                    wall, rss, out = _time_child(code)
                    info = json.loads(out.strip().splitlines()[-1])
                    score_wall = score_rss = float("nan")
                    if stream:
                        out_csv = Path(models) / "scores.csv"
                        code = ("import sys; sys.path.insert(0, %r); from core.cli.commands import main; "
                                "sys.exit(main(['score', '--data', %r, '--models', %r, '--out', %r, "
                                "'--chunk-rows', %r, '--quiet']))") % (str(ROOT), str(data), models, str(out_csv),
                                                                        str(args.chunk_rows))
                        score_wall, score_rss, _ = _time_child(code)
                    runs.append({"train_s": wall, "train_rss_mb": rss, "fit_inside_s": info["seconds"],
                                 "score_s": score_wall, "score_rss_mb": score_rss, "rows": info["rows"],
                                 "full_passes": (info.get("engine") or {}).get("full_passes")})
                    print(f"{millions:g}M {label} run {r + 1}: train {wall:.1f}s, peak RSS {rss:,.0f} MB; "
                          f"score {score_wall:.1f}s, peak RSS {score_rss:,.0f} MB; "
                          f"{info['rows']:,} customers, load {os.getloadavg()[0]:.1f}", flush=True)
                finally:
                    shutil.rmtree(models, ignore_errors=True)
            med = {key: statistics.median(r[key] for r in runs) for key in
                   ("train_s", "train_rss_mb", "score_s", "score_rss_mb")}
            results.append({"millions": millions, "mode": label, "runs": runs, "median": med})
            print(f"== {millions:g}M {label}: median train {med['train_s']:.1f}s, {med['train_rss_mb']:,.0f} MB; "
                  f"score {med['score_s']:.1f}s, {med['score_rss_mb']:,.0f} MB; "
                  f"{runs[0]['rows'] / med['train_s']:,.0f} customers/s trained", flush=True)
    targets = {5.0: (1536, None), 10.0: (2048, 120.0)}
    for r in results:
        if r["mode"] == "streaming" and r["millions"] in targets:
            rss_max, time_max = targets[r["millions"]]
            ok = r["median"]["train_rss_mb"] <= rss_max and (time_max is None or r["median"]["train_s"] <= time_max)
            print(f"target {r['millions']:g}M: RSS <= {rss_max} MB" + (f", <= {time_max:.0f}s" if time_max else "")
                  + f": {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
