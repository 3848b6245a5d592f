"""Benchmark k-prototypes against the kmodes package, and consensus clustering at its sample size.

Run: ``python benchmarks/bench_kprototypes.py [--repeats N] [--kmodes-timeout S] [--skip-1m]``.

Same run, same data (8 standardised numeric columns + 2 categorical, six overlapping groups,
seeded), same k=6, one start each (``n_init=1``) and the same gamma (ours, balanced rule) so
both minimise the same cost:

- ours (core.algorithms.kprototypes) against ``kmodes.kprototypes.KPrototypes`` (its default
  Cao initialisation) at 10K and 100K customers: fit time (median of ``--repeats`` where
  affordable) and peak memory above the data, final cost; kmodes runs under a timeout
  (``--kmodes-timeout``, default 240 s) and is reported as "timed out" past it;
- ours at 1M customers with its defaults (10 starts on a 100K sample, refined on everyone);
- consensus (k from 2 to 8 by PAC, 50 resamples of k-means) on 100K customers: the matrix on its
  5,000-customer sample, the rest placed.

Each fit runs in a fresh process: peak memory is the process's high-water mark during the fit
minus its resident size before it (Linux ``/proc/self/clear_refs``), so one fit's garbage does
not inflate the next. The machine is shared: compare figures within one run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

K = 6


def mixed_data(n: int, seed: int = 0):
    """Six overlapping groups: 8 numeric columns (standardised) and 2 categorical columns."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, K, n)
    offsets = rng.normal(scale=0.8, size=(K, 8))
    X = rng.normal(size=(n, 8)) + offsets[g]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    region = np.where(rng.random(n) < 0.2, rng.integers(0, 5, n), g % 5)
    channel = np.where(rng.random(n) < 0.4, rng.integers(0, 3, n), g % 3)
    return X, np.stack([region, channel], axis=1).astype(np.int64)


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def _reset_peak() -> bool:
    try:
        # Hand freed heap pages back first (glibc): otherwise the fit reuses pages the data generation
        # left resident and its peak is under-counted.
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(which: str, n: int) -> dict:
    """One fit in this process; returns seconds, peak MB above the data, cost."""
    from core.algorithms import consensus, kprototypes

    X, cat = mixed_data(n)
    gamma = kprototypes.balanced_gamma(X, cat)
    if which == "consensus":
        from sklearn.datasets import make_blobs

        X, _ = make_blobs(n, centers=K, n_features=8, cluster_std=1.5, random_state=0)
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    reset = _reset_peak()
    before = _status("VmRSS")
    start = time.perf_counter()
    if which == "ours":
        part = kprototypes.fit(X, k=K, seed=0, categorical=cat, gamma=gamma, n_init=1)
        cost = part.info["cost"]
    elif which == "ours-default":
        part = kprototypes.fit(X, k=K, seed=0, categorical=cat)
        cost = part.info["cost"]
    elif which == "kmodes":
        from kmodes.kprototypes import KPrototypes

        model = KPrototypes(n_clusters=K, n_init=1, gamma=gamma, random_state=0, max_iter=100)
        model.fit(np.hstack([X, cat.astype(np.float64)]), categorical=[8, 9])
        cost = float(model.cost_)
    else:
        part = consensus.fit(X, k=None, seed=0)
        cost = part.info["pac"]
        extra = {"chosen_k": part.info["chosen_k"], "fitted_on": part.info["fitted_on"],
                 "assigned": part.info["assigned"]}
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "peak_mb": (_status("VmHWM") - before) if reset else float("nan"), "cost": cost}
    if which == "consensus":
        out.update(extra)
    return out


def run(which: str, n: int, timeout: float | None = None) -> dict | None:
    """The child in a fresh interpreter; None when it ran past ``timeout`` seconds."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", which, "--n", str(n)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(which: str, n: int, repeats: int, timeout: float | None = None) -> dict | None:
    results = []
    for _ in range(repeats):
        result = run(which, n, timeout)
        if result is None:
            return None
        results.append(result)
    return {"seconds": statistics.median(r["seconds"] for r in results),
            "peak_mb": statistics.median(r["peak_mb"] for r in results),
            "cost": results[-1]["cost"], "repeats": repeats, **{k: v for k, v in results[-1].items()
                                                               if k not in ("seconds", "peak_mb", "cost")}}


def line(label: str, result: dict | None, timeout: float | None = None) -> str:
    if result is None:
        return f"{label:<44} timed out after {timeout:.0f} s"
    return (f"{label:<44} {result['seconds']:8.2f} s  peak {result['peak_mb']:7.1f} MB  "
            f"cost/pac {result['cost']:.6g}  (median of {result['repeats']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kmodes-timeout", type=float, default=240.0)
    parser.add_argument("--skip-1m", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n)))
        return
    print(f"k-prototypes, k={K}, 8 numeric + 2 categorical columns, n_init=1, same gamma")
    for n in (10_000, 100_000):
        ours = measure("ours", n, args.repeats)
        theirs = measure("kmodes", n, args.repeats if n <= 10_000 else 1, args.kmodes_timeout)
        print(line(f"ours    n={n:,}", ours))
        print(line(f"kmodes  n={n:,}", theirs, args.kmodes_timeout))
        if theirs is not None:
            print(f"{'':<44} kmodes / ours: {theirs['seconds'] / ours['seconds']:.1f}x time, "
                  f"cost ratio {theirs['cost'] / ours['cost']:.4f}")
        else:
            print(f"{'':<44} kmodes / ours: more than {args.kmodes_timeout / ours['seconds']:.0f}x time")
    if not args.skip_1m:
        print(line("ours    n=1,000,000 (defaults: 10 starts)", measure("ours-default", 1_000_000, 1)))
    result = measure("consensus", 100_000, 1)
    print(line("consensus n=100,000 (k 2-8, 50 resamples)", result))
    print(f"{'':<44} chosen k={result['chosen_k']} (planted {K}), matrix on {result['fitted_on']:,}, "
          f"{result['assigned']:,} placed")


if __name__ == "__main__":
    main()
