"""Consensus clustering (Monti et al. 2003): how often two customers end up together across many runs.

For every k in a range, ``resamples`` runs of one or several base algorithms cluster a random
``fraction`` of the customers each. The consensus matrix ``M[i, j]`` is the share of the runs
that drew both customers in which they landed in the same segment. A stable k gives values near
0 or 1; PAC (proportion of ambiguous clustering) is the share of customer pairs whose consensus
lies strictly inside ``(pac_low, pac_high)`` — lower is better — and the k with the lowest PAC
is preferred (ties: the smaller k). The segments are then cut from average-linkage hierarchical
clustering of ``1 - M`` at the chosen k, and each customer's *agreement* — its mean consensus
with the other members of its segment (0 for a segment of one) — is its confidence.

Decisions
---------
- Scale: ``M`` has n x n entries, so the matrix is built on a seeded sample of at most
  ``sample_rows`` customers (5,000 by default: three float32 matrices of 100 MB at most). The
  other customers are placed on the nearest segment centre (squared Euclidean; with categories,
  the k-prototypes cost), with k-means' placement confidence ``1 - d1/d2``; ``info`` records
  ``fitted_on`` and ``assigned``.
- The same resamples serve every k (Monti draws them per k): PAC differences between k then
  come from the clustering, not the draw.
- Base algorithms are pluggable: ``"kmeans"`` (the numpy engine's ``cluster``, one start per run
  as in Monti's and ConsensusClusterPlus' k-means: the resampling supplies the variety), the name
  of any algorithm module of this package that follows :mod:`.base` (``"kprototypes"``, ``"gmm"``,
  ...; run with its own defaults: k-prototypes with one start lands in a poor optimum often
  enough on mixed data to blur the matrix, measured PAC 0.44 against 0.01 with its 10 starts at
  the planted k), or a callable
  ``(X, categorical, k, seed) -> labels`` (a label below 0 counts as "clustered with nobody").
  Several bases share the runs in turn (run h uses base h mod len(bases)).
- With ``k`` given, the partition is cut at that k, PAC is reported for it and ``preferred_k``
  says which k PAC prefers; with ``k=None`` the preferred k is used.
- No stable k: if every k's PAC is above ``max_pac`` (0.3 by default: over 30% of pairs are
  ambiguous), fit raises ValueError with one line saying so.
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from core.engines import get_engine
from core.engines.numpy_engine import one_blas_thread
from core.algorithms import kprototypes
from core.algorithms.base import Partition, Placement

__all__ = ["fit", "predict", "pac", "kmeans_base", "resolve_base", "SAMPLE_ROWS", "MAX_PAC"]

SAMPLE_ROWS = 5_000
MAX_PAC = 0.3
AGREEMENT_RULE = "mean consensus with the other members of the segment (0 for a segment of one)"
PLACEMENT_RULE = "nearest segment centre; confidence 1 - d1/d2 (k-means' rule)"

BaseRun = Callable[[np.ndarray, "np.ndarray | None", int, int], np.ndarray]


def kmeans_base(X: np.ndarray, categorical, k: int, seed: int) -> np.ndarray:
    """One k-means run (one k-means++ start) with the numpy engine.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    categorical : None
        k-means has no use for categories; pass ``"kprototypes"`` as base for them.
    k, seed : int

    Returns
    -------
    ndarray of int, shape (n,)

    Raises
    ------
    ValueError
        Categorical columns were given.
    """
    if categorical is not None and np.asarray(categorical).size:
        raise ValueError("k-means uses numeric features only; for categorical features use the base 'kprototypes'")
    return get_engine("numpy").cluster(X, k, seed=seed, n_init=1, max_iter=100).labels


def _module_base(name: str) -> BaseRun:
    try:
        module = importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        raise ValueError(f"unknown base algorithm {name!r}; use 'kmeans', an algorithm module name or a callable") \
            from None
    if not hasattr(module, "fit"):
        raise ValueError(f"{name!r} is not a clustering algorithm (it has no fit)")

    def run(X, categorical, k, seed):
        return module.fit(X, k=k, seed=seed, categorical=categorical).labels

    run.__name__ = name
    return run


def resolve_base(base) -> list[tuple[str, BaseRun]]:
    """Base algorithms as (name, callable) pairs.

    Parameters
    ----------
    base : str, callable, or list of them
        ``"kmeans"``, an algorithm module name of this package, or ``(X, categorical, k, seed) -> labels``.

    Returns
    -------
    list of (str, callable)

    Raises
    ------
    ValueError
        An unknown name, or an empty list.
    """
    items = base if isinstance(base, (list, tuple)) else [base]
    out = []
    for item in items:
        if callable(item):
            out.append((getattr(item, "__name__", "custom"), item))
        elif item == "kmeans":
            out.append(("kmeans", kmeans_base))
        elif isinstance(item, str) and item.isidentifier() and item not in ("consensus", "base", "categorical"):
            out.append((item, _module_base(item)))
        else:
            raise ValueError(f"unknown base algorithm {item!r}; use 'kmeans', an algorithm module name or a callable")
    if not out:
        raise ValueError("consensus needs at least one base algorithm")
    return out


def pac(consensus: np.ndarray, cosampled: np.ndarray, low: float = 0.1, high: float = 0.9) -> float:
    """Proportion of ambiguous clustering: share of distinct pairs drawn together at least once whose
    consensus is strictly between ``low`` and ``high``.

    Parameters
    ----------
    consensus : ndarray of shape (n, n)
        Symmetric consensus matrix.
    cosampled : ndarray of shape (n, n)
        Times each pair was drawn together (pairs never drawn are left out).
    low, high : float

    Returns
    -------
    float
        In [0, 1]; ``nan`` when no pair was drawn together.
    """
    drawn = cosampled > 0
    np.fill_diagonal(drawn, False)
    # The matrix is symmetric: counting both halves gives the same share as one half.
    ambiguous = int(np.count_nonzero((consensus > low) & (consensus < high) & drawn))
    pairs = int(np.count_nonzero(drawn))
    return ambiguous / pairs if pairs else float("nan")


def _consensus(labels_runs: list, draws: list, n: int, cosampled: np.ndarray) -> np.ndarray:
    """Co-clustered counts over co-sampled counts, as one matrix product of the runs' one-hot labels."""
    width = sum(int(lab.max()) + 1 for lab in labels_runs if len(lab) and lab.max() >= 0)
    onehot = np.zeros((n, max(width, 1)), dtype=np.float32)
    offset = 0
    for lab, rows in zip(labels_runs, draws):
        if not len(lab) or lab.max() < 0:
            continue
        kept = lab >= 0
        onehot[rows[kept], offset + lab[kept]] = 1.0
        offset += int(lab.max()) + 1
    together = onehot @ onehot.T  # float32 counts are exact up to 2**24 runs
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(together, cosampled, out=together, where=cosampled > 0)
    together[cosampled == 0] = 0.0
    return together


def _check(X, categorical):
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D matrix of numeric features, got {X.ndim} dimension(s)")
    if not np.isfinite(X).all():
        raise ValueError("numeric feature values must be finite numbers (clean the data first)")
    if categorical is not None:
        categorical = np.asarray(categorical)
        if categorical.ndim == 1:
            categorical = categorical[:, None]
        if len(categorical) != len(X):
            raise ValueError(f"categorical must have {len(X)} rows, got {len(categorical)}")
        if categorical.shape[1] == 0:
            categorical = None
    return X, categorical


def _ks(k, k_min, k_max, n):
    high = min(int(k_max), n - 1)
    ks = list(range(max(2, int(k_min)), high + 1))
    if k is not None:
        k = int(k)
        if not 2 <= k <= n - 1:
            raise ValueError(f"k must be between 2 and {n - 1} for {n} customers in the consensus sample, got {k}")
        if k not in ks:
            ks = sorted(set(ks) | {k})
    if not ks:
        raise ValueError(f"no k to try: k_min {k_min}, k_max {k_max}, {n} customers")
    return ks


def _segments(consensus: np.ndarray, k: int):
    """Average-linkage segments of ``1 - consensus`` cut at k, numbered by first member; agreement of each."""
    distance = 1.0 - consensus
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False).astype(np.float64), method="average")
    del distance
    raw = fcluster(tree, t=k, criterion="maxclust")
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    labels = order[inverse].astype(np.intp)
    found = int(labels.max()) + 1
    onehot = np.zeros((len(labels), found), dtype=np.float32)
    onehot[np.arange(len(labels)), labels] = 1.0
    with_members = (consensus @ onehot)[np.arange(len(labels)), labels] - np.diag(consensus)
    sizes = np.bincount(labels, minlength=found)[labels]
    agreement = np.where(sizes > 1, with_members / np.maximum(sizes - 1, 1), 0.0)
    return labels, np.clip(agreement, 0.0, 1.0).astype(np.float64)


def fit(X, *, k=None, seed, categorical=None, resamples: int = 50, fraction: float = 0.8, k_min: int = 2,
        k_max: int = 8, base="kmeans", sample_rows: int = SAMPLE_ROWS, pac_low: float = 0.1, pac_high: float = 0.9,
        max_pac: float = MAX_PAC) -> Partition:
    """Consensus clustering with k chosen by PAC.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Standardised numeric features.
    k : int or None
        Segments to cut; None: the k with the lowest PAC.
    seed : int
        Same data and seed give the same result.
    categorical : ndarray of shape (n, c), optional
        Category codes (-1 missing), for bases that use them (``"kprototypes"``).
    resamples : int, default 50
        Runs per k.
    fraction : float, default 0.8
        Share of the (sampled) customers each run draws.
    k_min, k_max : int, default 2 and 8
        Range of k tried (``k`` itself is always tried).
    base : str, callable or list, default "kmeans"
        Base algorithm(s), see :func:`resolve_base`.
    sample_rows : int, default 5000
        Customers the consensus matrix is built on (a seeded sample above it; the rest placed).
    pac_low, pac_high : float, default 0.1 and 0.9
        Consensus values strictly between them are ambiguous.
    max_pac : float, default 0.3
        A k is stable when its PAC is at most this.

    Returns
    -------
    Partition
        ``confidence``: agreement on the matrix sample, placement confidence for the rest.
        ``params``: ``centroids``, ``modes``, ``gamma``, ``n_categories`` (placement as k-prototypes;
        no categorical columns means plain nearest centre). ``info``: ``pac``, ``pac_by_k``,
        ``chosen_k``, ``preferred_k``, ``resamples``, ``fraction``, ``fitted_on``, ``assigned``, ...

    Raises
    ------
    ValueError
        Bad options, or no stable k (one line).
    """
    started = time.perf_counter()
    X, categorical = _check(X, categorical)
    n = len(X)
    resamples, fraction = int(resamples), float(fraction)
    if resamples < 2:
        raise ValueError(f"resamples must be 2 or more, got {resamples}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be above 0 and at most 1, got {fraction}")
    if not 0.0 <= pac_low < pac_high <= 1.0:
        raise ValueError(f"need 0 <= pac_low < pac_high <= 1, got {pac_low} and {pac_high}")
    bases = resolve_base(base)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, int(sample_rows), replace=False)) if n > sample_rows else np.arange(n)
    m = len(rows)
    Xs = X[rows]
    cats = categorical[rows] if categorical is not None else None
    ks = _ks(k, k_min, k_max, m)
    drawn = max(2, int(round(fraction * m)))
    draws = [np.sort(rng.choice(m, drawn, replace=False)) for _ in range(resamples)]
    run_seeds = rng.integers(0, 2**31 - 1, size=(len(ks), resamples))
    with one_blas_thread():
        indicator = np.zeros((m, resamples), dtype=np.float32)
        for h, picked in enumerate(draws):
            indicator[picked, h] = 1.0
        cosampled = indicator @ indicator.T
        del indicator
        pac_by_k, best = {}, None
        for i, kk in enumerate(ks):
            runs = []
            for h, picked in enumerate(draws):
                _, run = bases[h % len(bases)]
                sub_cat = cats[picked] if cats is not None else None
                runs.append(np.asarray(run(Xs[picked], sub_cat, kk, int(run_seeds[i, h])), dtype=np.intp))
            consensus = _consensus(runs, draws, m, cosampled)
            pac_by_k[kk] = pac(consensus, cosampled, pac_low, pac_high)
            keep = kk == k if k is not None else (best is None or pac_by_k[kk] < pac_by_k[best[0]])
            if keep:
                best = (kk, consensus)
            del consensus
        del cosampled
        preferred = min(ks, key=lambda kk: (pac_by_k[kk], kk))
        if pac_by_k[preferred] > max_pac:
            raise ValueError(f"no stable number of segments: every k from {ks[0]} to {ks[-1]} leaves more than "
                             f"{max_pac:.0%} of customer pairs ambiguous (lowest PAC {pac_by_k[preferred]:.2f} "
                             f"at k={preferred}); try other features or another algorithm")
        chosen, consensus = best
        sample_labels, agreement = _segments(consensus, chosen)
        del consensus
    found = int(sample_labels.max()) + 1
    counts = np.bincount(sample_labels, minlength=found)
    centers = np.vstack([Xs[sample_labels == s].mean(axis=0) for s in range(found)]) if X.shape[1] else \
        np.zeros((found, 0))
    params = _placement_params(Xs, centers, sample_labels, cats, found)
    labels = np.empty(n, dtype=np.intp)
    confidence = np.empty(n)
    labels[rows], confidence[rows] = sample_labels, agreement
    rest = np.ones(n, dtype=bool)
    rest[rows] = False
    if rest.any():
        placed = predict(params, X[rest], categorical[rest] if categorical is not None else None)
        labels[rest], confidence[rest] = placed.labels, placed.confidence
    info = {
        "algorithm": "consensus", "pac": float(pac_by_k[chosen]),
        "pac_by_k": {str(kk): float(v) for kk, v in pac_by_k.items()},
        "chosen_k": int(chosen), "preferred_k": int(preferred), "segments_found": found,
        "stable": bool(pac_by_k[chosen] <= max_pac), "max_pac": float(max_pac),
        "pac_interval": [float(pac_low), float(pac_high)], "resamples": resamples, "fraction": fraction,
        "base": [name for name, _ in bases], "fitted_on": int(m), "assigned": int(n - m),
        "sample_rows": int(sample_rows), "linkage": "average on 1 - consensus",
        "confidence_rule": f"sample: {AGREEMENT_RULE}; others: {PLACEMENT_RULE}",
        "sizes_on_sample": counts.tolist(), "seconds": time.perf_counter() - started,
    }
    return Partition(labels=labels, confidence=confidence, centers=centers, params=params, info=info)


def _placement_params(Xs, centers, labels, cats, k) -> dict:
    """What predict needs: centres, and with categories each segment's modes and the balanced gamma."""
    if cats is None:
        modes, n_cats, gamma = np.zeros((k, 0), dtype=np.int64), np.zeros(0, dtype=np.int64), 0.0
    else:
        cats = np.asarray(cats, dtype=np.int64)
        n_cats = (cats.max(axis=0) + 1).clip(min=0)
        modes = np.full((k, cats.shape[1]), -1, dtype=np.int64)
        for s in range(k):
            for j in range(cats.shape[1]):
                col = cats[labels == s, j]
                col = col[col >= 0]
                if len(col):
                    modes[s, j] = int(np.bincount(col).argmax())
        gamma = kprototypes.balanced_gamma(Xs, cats)
    return {"centroids": np.ascontiguousarray(centers, dtype=np.float64), "modes": modes, "gamma": float(gamma),
            "n_categories": np.asarray(n_cats, dtype=np.int64)}


def predict(params, X, categorical=None) -> Placement:
    """Place customers on the nearest segment centre (the k-prototypes cost when there are categories).

    Parameters
    ----------
    params : mapping
        ``centroids``, ``modes``, ``gamma``, ``n_categories`` from :func:`fit`.
    X : ndarray of shape (n, d)
    categorical : ndarray of shape (n, c), optional

    Returns
    -------
    Placement
        Confidence ``1 - d1/d2``.
    """
    return kprototypes.predict(params, X, categorical)
