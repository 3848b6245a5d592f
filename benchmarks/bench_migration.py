"""Benchmark segments over time (core.insight.migration): one pass with running state against one pass per snapshot.

Run: ``python benchmarks/bench_migration.py [--rows 10000000] [--repeats 3] [--naive-snapshots 24] [--skip-large]
[--skip-cdnow] [--keep-log PATH]``.
Prints medians over repeats (shared, noisy machines: compare figures within one run).

1. CDNOW (../shared/data/cdnow_transactions.txt; skipped when absent): a version trained on it, then
   monthly snapshots end to end (read the log once, 18 as-of snapshots scored with the version's model,
   transitions, flows, headlines), against the naive peer in the same run.
2. A synthetic log of ``--rows`` rows (default 10M; 1M customers, order IDs, two years: 24 month ends),
   written once by ``benchmarks.bench_rfm.write_log`` into a temporary folder: time and peak memory
   (VmHWM of a fresh process; what the imports alone take is printed too) of 24 monthly snapshots
   in one pass, against the naive computation. The model is a version trained on a 200K-row log of the
   same generator (training on 10M rows is bench_rfm's business, not this one's).

The naive peer computes each snapshot on its own: one pass over the log per snapshot date, by the
same code (``migration`` with the dates [first purchase, date]), so the ratio measures the passes,
not two implementations. Its snapshot sizes are checked against the one-pass result's.
``--naive-snapshots N`` runs the peer on the last N dates only and says so (its time per snapshot
times 24 is then an extrapolation, printed as such).
"""
from __future__ import annotations

import argparse
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

from benchmarks.bench_rfm import write_log  # noqa: E402

CDNOW = ROOT.parent / "shared" / "data" / "cdnow_transactions.txt"

# One measurement in a fresh process: peak resident memory (VmHWM) is then this computation's own.
_WORKER = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from core.reading.mapping import Mapping
from core.insight.migration import migration, snapshot_dates
from core.versions.registry import Registry

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
reg = Registry({models!r})
model, meta = reg.load(None)
mapping = Mapping.from_dict(reg.artifact_json(None, "mapping"))
names = meta["segment_names"]
first, latest = {first!r}, {latest!r}
base = hwm()
use0 = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = use0.ru_utime + use0.ru_stime
start = time.perf_counter()
sizes = {{}}
if {method!r} == "one-pass":
    r = migration({path!r}, mapping, model, names, every="month", first_date=first, latest_date=latest)
    sizes = {{s["date"]: s["sizes"] for s in r.snapshots}}
    n = len(r.dates)
else:
    dates = snapshot_dates(first, latest, every="month")[-{naive}:]
    for d in dates:
        r = migration({path!r}, mapping, model, names, dates=[first, d], first_date=first, latest_date=latest)
        sizes[d] = r.snapshots[-1]["sizes"]
    n = len(dates)
seconds = time.perf_counter() - start
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"seconds": seconds, "cpu": use.ru_utime + use.ru_stime - cpu0, "peak_mb": hwm() / 1024, "imports_mb": base / 1024, "snapshots": n,
                  "rows": r.rows, "sizes": sizes}}))
"""


def measure(method: str, path: Path, models: Path, first: str, latest: str, naive: int, repeats: int) -> dict:
    """Median seconds and the largest peak memory of ``repeats`` fresh processes running ``method``."""
    runs = []
    for _ in range(repeats):
        code = _WORKER.format(root=str(ROOT), models=str(models), first=first, latest=latest, method=method,
                              path=str(path), naive=naive)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = dict(runs[-1])
    result["seconds"] = statistics.median(r["seconds"] for r in runs)
    result["peak_mb"] = max(r["peak_mb"] for r in runs)
    result["cpu"] = statistics.median(r["cpu"] for r in runs)
    return result


def compare(label: str, path: Path, models: Path, first: str, latest: str, naive: int, repeats: int) -> None:
    one = measure("one-pass", path, models, first, latest, naive, repeats)
    print(f"{label}: one pass {one['seconds']:.2f} s (CPU {one['cpu']:.1f} s), peak RSS {one['peak_mb']:,.0f} MB (load average "
          f"{os.getloadavg()[0]:.1f})", flush=True)
    peer = measure("naive", path, models, first, latest, naive, repeats)
    same = all(one["sizes"][d] == peer["sizes"][d] for d in peer["sizes"])
    per = peer["seconds"] / peer["snapshots"]
    full = one["snapshots"]
    naive_all = peer["seconds"] if peer["snapshots"] == full else per * full
    print(f"{label}: {one['rows']:,} rows, {full} monthly snapshots", flush=True)
    print(f"  one pass, running state: {one['seconds']:.2f} s (CPU {one['cpu']:.1f} s), peak RSS {one['peak_mb']:,.0f} MB "
          f"(imports alone {one['imports_mb']:,.0f} MB)")
    print(f"  naive, a pass per snapshot: {peer['seconds']:.2f} s (CPU {peer['cpu']:.1f} s) for {peer['snapshots']} "
          f"snapshots "
          f"({per:.2f} s each{'' if peer['snapshots'] == full else f'; x{full} = {naive_all:.1f} s extrapolated'}), "
          f"peak RSS {peer['peak_mb']:,.0f} MB")
    print(f"  naive / one pass: {naive_all / one['seconds']:.1f}x the time"
          f"{'' if peer['snapshots'] == full else ' (extrapolated)'}; same segment sizes at every snapshot "
          f"compared: {same}", flush=True)


def cdnow(repeats: int) -> None:
    from core.reading.mapping import train_input
    from core.versions.registry import Registry

    if not CDNOW.is_file():
        print(f"CDNOW: skipped ({CDNOW} not present)")
        return
    with tempfile.TemporaryDirectory() as folder:
        models = Path(folder) / "models"
        _, _, meta = train_input(str(CDNOW), registry=Registry(models))
        t = meta["transactions"]
        compare("CDNOW", CDNOW, models, t["first_date"], t["latest_date"], 18, repeats)


def large(rows: int, repeats: int, naive: int, keep: str | None = None) -> None:
    from core.reading.mapping import Mapping, train_input
    from core.versions.registry import Registry

    with tempfile.TemporaryDirectory() as folder:
        path, small = Path(keep) if keep else Path(folder) / "log.csv", Path(folder) / "small.csv"
        start = time.perf_counter()
        if not path.is_file():
            write_log(path, rows, customers=max(rows // 10, 10))
            print(f"synthetic log: {rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB written in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        else:
            print(f"synthetic log: {path} ({path.stat().st_size / 1e6:,.0f} MB) kept from an earlier run", flush=True)
        write_log(small, 200_000, customers=20_000, seed=8)
        mapping = Mapping("transactions", {"order_id": "order_id", "customer_id": "customer_id", "date": "date",
                                           "quantity": "quantity", "amount": "amount", "category": "ignore"})
        models = Path(folder) / "models"
        train_input(str(small), mapping=mapping, registry=Registry(models), n_init=3)
        # The generator draws dates uniformly over 2022-01-01 .. 2023-12-31: 24 month ends.
        compare(f"synthetic {rows:,}-row log", path, models, "2022-01-01", "2023-12-31", naive, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-snapshots", type=int, default=24,
                        help="run the naive peer on the last N snapshot dates of the large log (default all 24)")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-cdnow", action="store_true")
    parser.add_argument("--keep-log", metavar="PATH", help="write the large log here once and reuse it in later runs")
    args = parser.parse_args()
    if not args.skip_cdnow:
        cdnow(args.repeats)
    if not args.skip_large:
        large(args.rows, max(1, min(args.repeats, 2)), max(1, min(args.naive_snapshots, 24)), args.keep_log)


if __name__ == "__main__":
    main()
