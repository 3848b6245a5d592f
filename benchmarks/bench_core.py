"""Core engine benchmarks against the seed-faithful baseline, measured in the same run.

    python benchmarks/bench_core.py [--data PATH] [--repeats N] [--skip-million]

Prints medians over repeats and ratios against the peer. Needs the real file
(../shared/data/marketing_campaign.csv by default) for the comparisons.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
REAL = ROOT.parent / "shared" / "data" / "marketing_campaign.csv"


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def process_time(cmd, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


MILLION = r"""
import json, resource, sys, time
sys.path.insert(0, %r)
from core.reading.synth import generate_customers
from core.reading.cleaning import clean
from core.reading.features import add_features
from core.fitting.model import SegmentationModel
from core.fitting.selection import silhouette_samples
from core.fitting.projection import pca
import pandas as pd
raw = generate_customers(1_000_000, seed=1)
raw["Dt_Customer"] = pd.to_datetime(raw["Dt_Customer"], format="%%d-%%m-%%Y")
frame = add_features(clean(raw)[0])
del raw
t = time.perf_counter()
model = SegmentationModel(k=6).fit(frame)
t_fit = time.perf_counter() - t
scores = model.score(frame)
t_score = time.perf_counter() - t - t_fit
Z = model.transform(frame)
sil, rows = silhouette_samples(Z, scores["segment"].to_numpy())
proj = pca(Z, 3)
t_all = time.perf_counter() - t
print(json.dumps({"n": len(frame), "fit_s": t_fit, "score_s": t_score, "total_s": t_all,
                  "silhouette_sampled": float(sil.mean()), "silhouette_rows": len(rows),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REAL))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-million", action="store_true")
    args = parser.parse_args()
    data = Path(args.data)
    if not data.exists():
        sys.exit(f"no data file at {data}: the comparisons need the real file")

    import numpy as np
    import baseline_seed
    from core.fitting.model import SegmentationModel
    from core.versions.pipeline import prepare
    from core.fitting.selection import sweep

    print(f"data: {data}  repeats: {args.repeats}")
    # 1. k sweep 2..10 in-process: ours (n_init=3, exact silhouette) vs the baseline's elbow + silhouette loop.
    base_df = baseline_seed.prepare(data)
    X_base, _ = baseline_seed.fit(base_df)
    prepared = prepare(data)
    model = SegmentationModel().fit(prepared.frame)
    Z = model.transform(prepared.frame)
    t_base, _ = median_time(lambda: baseline_seed.sweep(X_base), max(3, args.repeats // 2))
    t_ours, _ = median_time(lambda: sweep(Z, 2, 10, n_init=3), args.repeats)
    print(f"[sweep in-process] baseline {t_base * 1000:.0f} ms, ours {t_ours * 1000:.0f} ms, "
          f"speed-up {t_base / t_ours:.1f}x (target >= 3.5x)")

    # 2. Whole process, imports included.
    p_base = process_time([sys.executable, "benchmarks/baseline_seed.py", str(data)], args.repeats)
    p_ours = process_time([sys.executable, "-m", "core", "sweep", "--data", str(data), "--quiet", "--json"],
                          args.repeats)
    print(f"[sweep process] baseline script {p_base:.2f} s, `python -m core sweep` {p_ours:.2f} s, "
          f"ratio {p_ours / p_base:.2f} (target <= 0.6)")

    # 3. Single-customer scoring.
    row = prepared.frame[model.features].iloc[0]
    values = row.tolist()
    n = 20000
    laps = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            model.score_one(values)
        laps.append((time.perf_counter() - t) / n)
    pipe = model.to_sklearn()
    one = prepared.frame[model.features].iloc[[0]]
    pipe_laps = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(300):
            pipe.predict(one)
        pipe_laps.append((time.perf_counter() - t) / 300)
    ours_us, pipe_us = statistics.median(laps) * 1e6, statistics.median(pipe_laps) * 1e6
    assert model.score_one(values)[0] == pipe.predict(one)[0]
    print(f"[score one] ours {ours_us:.1f} us median, sklearn Pipeline.predict {pipe_us:.0f} us, "
          f"{pipe_us / ours_us:.0f}x faster (target <= 25 us)")

    # 4. One million synthetic customers, in a fresh process so peak memory is its own.
    if not args.skip_million:
        proc = subprocess.run([sys.executable, "-c", MILLION % str(ROOT)], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            print(proc.stderr)
            sys.exit(1)
        r = json.loads(proc.stdout)
        print(f"[1M customers] {r['n']:,} rows after cleaning: fit {r['fit_s']:.1f} s, score {r['score_s']:.1f} s, "
              f"fit+score+sampled diagnostics {r['total_s']:.1f} s (target <= 15 s); peak RSS of the whole "
              f"process incl. generation {r['peak_rss_mb']:.0f} MB (target <= 1,500 MB); sampled silhouette "
              f"{r['silhouette_sampled']:.3f} on {r['silhouette_rows']:,} rows")
    del np


if __name__ == "__main__":
    main()
