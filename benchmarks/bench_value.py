"""Customer value benchmarks: BG/NBD fit time against lifetimes, and statistics + fit at 10M customers.

Run: ``python -m benchmarks.bench_value [--big N] [--repeats R]``

1. CDNOW (the shared 23,570-customer log, 39-week calibration): this project's weighted fit on the
   distinct (x, t_x, T) combinations against lifetimes' BetaGeoFitter on one row per customer,
   same statistics, same run; medians over repeats and the ratio.
2. 1M synthetic customers (BG/NBD with the CDNOW parameters): the same comparison.
3. N (default 10M) synthetic customers written to Parquet: statistics streamed from the file + both
   fits, in a fresh process, with its peak memory (ru_maxrss).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CDNOW = ROOT.parent / "shared" / "data" / "cdnow_transactions.txt"


def _median(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _compare(name: str, customers, repeats: int) -> None:
    from core.value import bgnbd, collapse

    x, tx, T = (customers[c].to_numpy() for c in ("frequency", "recency", "T"))

    def ours():
        _, w, combos = collapse(x, tx, T)
        return bgnbd.fit(*combos, w)

    mine_s, mine = _median(ours, repeats)
    line = f"{name}: {len(x):,} customers, {mine.combinations:,} distinct (x, t_x, T); this project {mine_s:.3f} s"
    try:
        from lifetimes import BetaGeoFitter
    except ImportError:
        print(line + "; lifetimes not installed")
        return

    def theirs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return BetaGeoFitter().fit(customers["frequency"], customers["recency"], customers["T"])

    ref_s, ref = _median(theirs, max(1, repeats if len(x) < 100_000 else 1))
    diff = np.max(np.abs(mine.params / ref.params_[["r", "alpha", "a", "b"]].to_numpy() - 1))
    print(f"{line}; lifetimes {ref_s:.3f} s; ratio lifetimes/ours {ref_s / mine_s:.1f}x; "
          f"largest relative parameter difference {diff:.1e}")


def _write_parquet(path: Path, n: int, block: int = 1_000_000) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.value.simulate import simulate_log

    rows = 0
    writer = None
    for i, start in enumerate(range(0, n, block)):
        frame = simulate_log(min(block, n - start), seed=100 + i)
        frame["customer_id"] += start
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=1_000_000)
        rows += len(frame)
    writer.close()
    return rows


def _big_child(path: str) -> None:
    """In a fresh process: statistics from the Parquet file, both fits; times and peak memory as JSON."""
    from core.value import bgnbd, collapse, gammagamma, read_purchase_days, value_statistics

    t0 = time.perf_counter()
    days = read_purchase_days(path)
    data = value_statistics(days, time_unit="week")
    t1 = time.perf_counter()
    c = data.customers
    _, w, combos = collapse(c["frequency"].to_numpy(), c["recency"].to_numpy(), c["T"].to_numpy())
    fit = bgnbd.fit(*combos, w)
    t2 = time.perf_counter()
    ok = (c["frequency"] > 0) & (c["monetary_value"] > 0)
    _, gw, (gx, gm) = collapse(c["frequency"].to_numpy()[ok], c["monetary_value"].to_numpy()[ok])
    spend = gammagamma.fit(gx, gm, gw)
    t3 = time.perf_counter()
    print(json.dumps({"customers": len(c), "purchase_days": len(days.day), "rows": days.rows_read,
                      "statistics_s": t1 - t0, "bgnbd_s": t2 - t1, "combinations": fit.combinations,
                      "gammagamma_s": t3 - t2, "spend_combinations": spend.combinations,
                      "params": fit.as_dict(), "spend_params": spend.as_dict(),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "load_average": os.getloadavg()[0]}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big", type=int, default=10_000_000, help="customers of the scale run (0: skip)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-big", action="store_true", help="only the scale run (no lifetimes comparison)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _big_child(args.child)
        return 0
    from core.value import read_purchase_days, value_statistics
    from core.value.simulate import simulate_log

    if CDNOW.exists() and not args.only_big:
        cd = value_statistics(read_purchase_days(CDNOW), calibration_end="1997-09-30").customers
        _compare("CDNOW", cd, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.only_big:
            path = Path(tmp) / "million.parquet"
            simulate_log(1_000_000, seed=11).to_parquet(path)
            t0 = time.perf_counter()
            million = value_statistics(read_purchase_days(path)).customers
            print(f"1M synthetic: statistics from Parquet {time.perf_counter() - t0:.2f} s")
            _compare("1M synthetic", million, args.repeats)
        if args.big:
            big = Path(tmp) / "big.parquet"
            t0 = time.perf_counter()
            rows = _write_parquet(big, args.big)
            print(f"{args.big:,} synthetic customers: {rows:,} rows written to Parquet "
                  f"({big.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t0:.0f} s")
            proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_value", "--child", str(big)], cwd=ROOT,
                                  capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-2000:])
                return 1
            r = json.loads(proc.stdout)
            total = r["statistics_s"] + r["bgnbd_s"] + r["gammagamma_s"]
            print(f"{r['customers']:,} customers ({r['rows']:,} rows, {r['purchase_days']:,} purchase days): "
                  f"statistics {r['statistics_s']:.1f} s, BG/NBD fit {r['bgnbd_s']:.1f} s on "
                  f"{r['combinations']:,} combinations, Gamma-Gamma fit {r['gammagamma_s']:.1f} s on "
                  f"{r['spend_combinations']:,}; total {total:.1f} s; peak memory {r['peak_mb']:,.0f} MB "
                  f"(load average {r['load_average']:.1f} on {os.cpu_count()} cores: times on a shared machine vary)")
            print(f"  fitted {json.dumps({k: round(v, 4) for k, v in r['params'].items()})} "
                  f"{json.dumps({k: round(v, 3) for k, v in r['spend_params'].items()})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
