"""Campaign planner: time to fit the out-of-fold propensity model and to build the plan.

    python -m benchmarks.bench_campaign [--n 1000000] [--repeats 3]

On the real file (../shared/data/marketing_campaign.csv, skipped when absent), the committed sample and
``--n`` synthetic customers (core.reading.synth). Segments come from a k=6 model fitted on each frame. Prints the
median of ``--repeats`` runs (one run for frames above 100K customers).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from core.campaigns.campaign import Economics, build_plan, fit_propensity
from core.fitting.model import SegmentationModel
from core.versions.pipeline import prepare

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "marketing_campaign.csv"
SAMPLE = ROOT / "data" / "synthetic_customers.tsv"


def _timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench(name: str, path: Path, repeats: int) -> None:
    t0 = time.perf_counter()
    frame = prepare(path).frame
    model = SegmentationModel(k=6, seed=42, n_init=3).fit(frame)
    labels = model.predict(frame)
    setup = time.perf_counter() - t0
    reps = 1 if len(frame) > 100_000 else repeats
    fit_s, fitted = _timed(lambda: fit_propensity(frame, labels, seed=42, k=6), reps)
    econ = Economics.checked(3, 11, holdout=0.1)
    plan_s, plan = _timed(lambda: build_plan(frame["ID"].to_numpy(), labels, fitted.propensity, econ, k=6), reps)
    print(f"{name:<28} {len(frame):>9,} customers  load+segment {setup:7.2f} s  propensity fit (5-fold OOF) "
          f"{fit_s:7.2f} s  plan {plan_s * 1000:8.1f} ms  AUC {fitted.auc:.3f}  best n {plan.best_n:,}  "
          f"expected profit {plan.totals['expected_profit']:,.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic customers (default 1,000,000; 0 skips)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if REAL.exists():
        bench("real file", REAL, args.repeats)
    else:
        print(f"real file: skipped ({REAL} absent)")
    bench("committed sample", SAMPLE, args.repeats)
    if args.n:
        from core.reading.synth import generate_customers

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "synthetic.tsv"
            generate_customers(args.n, seed=7).to_csv(path, sep="\t", index=False)
            bench(f"synthetic ({args.n:,})", path, args.repeats)


if __name__ == "__main__":
    main()
