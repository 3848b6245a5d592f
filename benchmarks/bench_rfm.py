"""Benchmark bringing your own data: CDNOW end to end, and a 10M-row transaction log's aggregation.

Run: ``python benchmarks/bench_rfm.py [--rows 10000000] [--repeats 3] [--skip-large]``. Prints medians
over repeats (shared, noisy machines: compare figures within one run).

1. CDNOW (../shared/data/cdnow_transactions.txt, 69,659 rows, 23,570 customers; skipped when absent):
   load + aggregate to customers, train (fit + metrics + personas + save with the mapping artifact),
   and the first page (the Overview, requested through the Flask test client).
2. A synthetic transaction log of ``--rows`` rows (default 10M; 1M customers, order IDs, categories):
   aggregation time and peak memory (ru_maxrss of a fresh process, and what the imports alone take),
   at two chunk sizes; the file is written once into a temporary folder and removed afterwards.
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CDNOW = ROOT.parent / "shared" / "data" / "cdnow_transactions.txt"


def timed(fn, repeats: int):
    """Median seconds of ``repeats`` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def cdnow(repeats: int) -> None:
    from core.reading.mapping import prepare_input
    from core.versions.pipeline import train as train_input
    from core.versions.registry import Registry

    if not CDNOW.is_file():
        print(f"CDNOW: skipped ({CDNOW} not present)")
        return
    t_load, (prepared, mapping) = timed(lambda: prepare_input(CDNOW), repeats)
    print(f"CDNOW load + aggregate: {t_load:.3f} s ({prepared.report.rows_read:,} rows -> "
          f"{len(prepared.frame):,} customers; features {', '.join(mapping.features)})")
    with tempfile.TemporaryDirectory() as folder:
        counter = iter(range(10 ** 6))

        def train():
            return train_input(CDNOW, k=6, registry=Registry(Path(folder) / f"models{next(counter)}"))
        t_train, (version, model, meta) = timed(train, repeats)
        print(f"CDNOW load + aggregate + train k=6 + save: {t_train:.3f} s (silhouette "
              f"{meta['metrics']['silhouette']:.3f}; names {', '.join(meta['segment_names'])})")
        os.environ["SEGMENTLENS_MODELS"] = str(Path(folder) / "models0")
        os.environ["SEGMENTLENS_CACHE_DIR"] = str(Path(folder) / "cache")
        os.environ["SEGMENTLENS_DATA"] = str(CDNOW)
        try:
            from dashboard.factory import create_app

            start = time.perf_counter()
            app = create_app()
            client = app.server.test_client()
            response = client.get("/")
            layout = client.get("/_dash-layout")
            first = time.perf_counter() - start
            print(f"CDNOW first page (app start + GET / + layout): {first:.3f} s (status {response.status_code}, "
                  f"{layout.status_code})")
        except Exception as exc:  # the pages may not adapt to this data yet: say so, keep the other figures
            print(f"CDNOW first page: not measured ({type(exc).__name__}: {str(exc)[:160]})")


# Peak resident memory from /proc/self/status (VmHWM): ru_maxrss keeps the parent's peak across exec.
_WORKER = """
import json, sys, time
sys.path.insert(0, {root!r})
from core.reading.transactions import TransactionColumns, aggregate

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
start = time.perf_counter()
agg = aggregate({path!r}, TransactionColumns("customer_id", "date", "amount", quantity="quantity",
                order_id="order_id", category="category"), sep=",", chunk_rows={chunk})
seconds = time.perf_counter() - start
peak = hwm()
print(json.dumps({{"seconds": seconds, "peak_mb": peak / 1024, "imports_mb": base / 1024,
                  "customers": len(agg.customers), "rows": agg.rows_read}}))
"""


def write_log(path: Path, rows: int, customers: int, seed: int = 7) -> None:
    """A synthetic log: skewed customer activity, order IDs (1-3 rows each), 8 categories, some returns."""
    rng = np.random.default_rng(seed)
    block = 1_000_000
    start = np.datetime64("2022-01-01")
    with open(path, "w") as fh:
        fh.write("order_id,customer_id,date,quantity,amount,category\n")
        for first in range(0, rows, block):
            n = min(block, rows - first)
            cust = np.minimum((rng.pareto(1.2, n) * customers / 20).astype(np.int64), customers - 1) + 1
            order = (first + np.arange(n)) // 2
            day = start + rng.integers(0, 730, n).astype("timedelta64[D]")
            amount = np.round(rng.gamma(2.0, 15.0, n), 2)
            amount[rng.random(n) < 0.01] *= -1
            frame = pd.DataFrame({"order_id": order, "customer_id": cust,
                                  "date": pd.Series(day).dt.strftime("%Y%m%d"),
                                  "quantity": rng.integers(1, 4, n), "amount": amount,
                                  "category": rng.choice(list("ABCDEFGH"), n)})
            frame.to_csv(fh, header=False, index=False)


def large(rows: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.csv"
        start = time.perf_counter()
        write_log(path, rows, customers=max(rows // 10, 10))
        print(f"synthetic log: {rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB written in "
              f"{time.perf_counter() - start:.1f} s")
        for chunk in (250_000, 1_000_000):
            results = []
            for _ in range(repeats):
                out = subprocess.run([sys.executable, "-c", _WORKER.format(root=str(ROOT), path=str(path), chunk=chunk)],
                                     capture_output=True, text=True, check=True)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(f"aggregate {r['rows']:,} rows -> {r['customers']:,} customers, chunks of {chunk:,}: "
                  f"{statistics.median(x['seconds'] for x in results):.1f} s "
                  f"({rows / statistics.median(x['seconds'] for x in results) / 1e6:.2f} M rows/s), peak RSS "
                  f"{max(x['peak_mb'] for x in results):,.0f} MB (imports alone {r['imports_mb']:,.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    cdnow(args.repeats)
    if not args.skip_large:
        large(args.rows, max(1, min(args.repeats, 2)))


if __name__ == "__main__":
    main()
