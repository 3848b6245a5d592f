"""Fit time and peak memory of the algorithms beyond k-means, against scikit-learn in the same run.

    python benchmarks/bench_algorithms.py [--sizes 100000,1000000] [--algorithms gmm,sklearn_gmm,...]
                                          [--repeats 3] [--k 6] [--json]

Data: synthetic customers from core.reading.synth (cleaned, features added), the 7 default features plus
Total_Children (8 dimensions), standardised; generated once per size and saved to a temporary
.npy file. Each (algorithm, size) runs in a fresh process that loads that file, so its peak RSS
is its own: reported as the process's peak (VmHWM: getrusage's ru_maxrss would carry over the
parent's peak from generating the data, across fork and exec) and as the growth over the RSS
before fitting.
Times are medians over ``--repeats`` runs at sizes up to 100K and over one run above (a run of
1M customers costs minutes on this shared machine).

Extend: add a runner to :data:`RUNNERS` (a function ``(X, k, seed) -> dict of facts``) and, if
it has a peer, name the peer in :data:`PEERS`; another file may import this module and do the
same before calling :func:`main`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FEATURES_EXTRA = ["Total_Children"]
REPEATS_UP_TO = 100_000


def run_gmm(X, k, seed, covariance="full"):
    from core.algorithms import gmm
    info = gmm.fit(X, k=k, seed=seed, covariance=covariance).info
    return {"log_likelihood_per_sample": info["log_likelihood_per_sample"], "n_iter": info["n_iter"],
            "best_start_kind": info["best_start_kind"], "start_rows": info["start_rows"]}


def run_gmm_diag(X, k, seed):
    return run_gmm(X, k, seed, covariance="diag")


def run_sklearn_gmm(X, k, seed, covariance="full"):
    # scikit-learn's defaults (one k-means start, EM on all rows), the usual way it is called.
    from sklearn.mixture import GaussianMixture
    model = GaussianMixture(k, covariance_type=covariance, random_state=seed).fit(X)
    return {"log_likelihood_per_sample": float(model.score(X)), "n_iter": int(model.n_iter_)}


def run_sklearn_gmm_diag(X, k, seed):
    return run_sklearn_gmm(X, k, seed, covariance="diag")


def run_hdbscan(X, k, seed):
    from core.algorithms import hdbscan
    info = hdbscan.fit(X, k=k, seed=seed).info
    return {key: info[key] for key in ("n_clusters", "noise_share", "noise_share_fitted", "fitted_on", "assigned",
                                       "min_cluster_size", "min_samples")}


def run_kmeans(X, k, seed):
    from core.engines import get_engine
    fit = get_engine("numpy").cluster(X, k, seed=seed, n_init=10)
    return {"inertia_per_sample": float(fit.inertia) / len(X)}


def run_kprototypes(X, k, seed):
    # Two categorical columns of 4 and 5 levels beside the numeric ones (seeded; only the time matters here).
    import numpy as np

    from core.algorithms import kprototypes
    codes = np.random.default_rng(seed).integers(0, [4, 5], size=(len(X), 2))
    info = kprototypes.fit(X, k=k, seed=seed, categorical=codes).info
    return {"gamma": round(float(info["gamma"]), 4), "n_iter": info.get("n_iter")}


def run_consensus(X, k, seed):
    from core.algorithms import consensus
    info = consensus.fit(X, k=k, seed=seed).info
    return {key: info.get(key) for key in ("preferred_k", "fitted_on", "assigned")}


RUNNERS = {
    "kmeans": run_kmeans,
    "kprototypes": run_kprototypes,
    "consensus": run_consensus,
    "gmm": run_gmm,
    "sklearn_gmm": run_sklearn_gmm,
    "gmm_diag": run_gmm_diag,
    "sklearn_gmm_diag": run_sklearn_gmm_diag,
    "hdbscan": run_hdbscan,
}
"""Algorithm name -> runner ``(X, k, seed) -> dict`` of facts to print beside time and memory."""
SINGLE_RUN = {"hdbscan", "consensus"}
"""Runners timed once at every size: HDBSCAN on its 100K sample takes minutes here."""
PEERS = {"gmm": "sklearn_gmm", "gmm_diag": "sklearn_gmm_diag"}
"""Algorithm -> its named peer in RUNNERS (the ratio printed is ours / peer)."""


def canonical_matrix(n: int, seed: int = 1):
    """Standardised (rows, 8) matrix of synthetic customers' canonical features."""
    import numpy as np
    import pandas as pd

    from core.reading.cleaning import clean
    from core.reading.features import add_features
    from core.reading.schema import DEFAULT_FEATURES
    from core.reading.synth import generate_customers
    raw = generate_customers(n, seed=seed)
    raw["Dt_Customer"] = pd.to_datetime(raw["Dt_Customer"], format="%d-%m-%Y")
    X = add_features(clean(raw)[0])[DEFAULT_FEATURES + FEATURES_EXTRA].to_numpy(dtype=np.float64)
    return (X - X.mean(axis=0)) / X.std(axis=0)


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak of this process image) from /proc/self/status, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(name: str, path: str, k: int, seed: int, repeats: int) -> dict:
    """One algorithm on one saved matrix, in this (fresh) process."""
    import numpy as np
    X = np.load(path)
    RUNNERS[name](X[:2000], k, seed)  # warm-up: imports and first-call costs out of the timing
    before = _status_mb("VmRSS")
    times, facts = [], {}
    for _ in range(repeats):
        began = time.perf_counter()
        facts = RUNNERS[name](X, k, seed)
        times.append(time.perf_counter() - began)
    peak = _status_mb("VmHWM")
    return {"algorithm": name, "n": len(X), "seconds": statistics.median(times), "runs": times,
            "peak_rss_mb": peak, "peak_growth_mb": max(0.0, peak - before), **facts}


def measure(name, path, k, seed, repeats) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", name, path, str(k), str(seed), str(repeats)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        return {"algorithm": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--algorithms", default=",".join(RUNNERS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=5, metavar=("NAME", "PATH", "K", "SEED", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, path, k, seed, repeats = args.child
        print(json.dumps(child(name, path, int(k), int(seed), int(repeats))))
        return
    import numpy as np
    names = [a for a in args.algorithms.split(",") if a]
    unknown = [a for a in names if a not in RUNNERS]
    if unknown:
        sys.exit(f"unknown algorithm {unknown[0]!r}; known: {', '.join(RUNNERS)}")
    results = []
    with open("/proc/loadavg") as load:
        print(f"load average at start: {load.read().split()[0]} (2 cores, shared)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = str(Path(tmp) / f"X{size}.npy")
            np.save(path, canonical_matrix(size, args.seed))
            repeats = args.repeats if size <= REPEATS_UP_TO else 1
            by_name = {}
            for name in names:
                r = measure(name, path, args.k, args.seed, 1 if name in SINGLE_RUN else repeats)
                r["size_requested"] = size
                by_name[name] = r
                results.append(r)
                if not args.json:
                    print(_line(r), flush=True)
            for name, peer in PEERS.items():
                ours, theirs = by_name.get(name), by_name.get(peer)
                if ours and theirs and "error" not in ours and "error" not in theirs:
                    ratio = ours["seconds"] / theirs["seconds"]
                    ours["ratio_to_peer"] = ratio
                    if not args.json:
                        print(f"  {name} / {peer} at {ours['n']:,} rows: time {ratio:.2f}x, peak growth "
                              f"{ours['peak_growth_mb']:.0f} vs {theirs['peak_growth_mb']:.0f} MB", flush=True)
    if args.json:
        print(json.dumps(results, indent=1))


def _line(r: dict) -> str:
    if "error" in r:
        return f"[{r['algorithm']}] failed: {r['error']}"
    facts = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
             if k not in ("algorithm", "n", "seconds", "runs", "peak_rss_mb", "peak_growth_mb", "size_requested")}
    return (f"[{r['algorithm']}] {r['n']:,} rows: fit {r['seconds']:.1f} s (median of {len(r['runs'])}), "
            f"peak RSS {r['peak_rss_mb']:.0f} MB (+{r['peak_growth_mb']:.0f} MB over loaded data) {facts}")


if __name__ == "__main__":
    main()
