"""Density clusters by scikit-learn's HDBSCAN, with noise as Unassigned and a placement rule.

HDBSCAN finds as many clusters as the density shows: the ``k`` of the contract is ignored
(kept in ``info["k_requested"]``) because a density model has no number of segments to ask for;
a forced k would mean cutting its tree elsewhere than where the clusters are most stable.

Scale. scikit-learn builds the minimum spanning tree with Prim's algorithm over the data matrix,
quadratic in the rows (measured here: 10K rows 0.8 s, 30K rows 8 s), so the clusters are found
on a seeded uniform sample of at most ``sample_size`` customers (default 100,000) and every other
customer is placed by :func:`predict`; ``info`` records ``fitted_on`` and ``assigned``.

Placement of a customer x (the rest of a large table, or a new customer):

- *Core points* are the clustered (non-noise) customers of the fitted sample, each with its
  HDBSCAN core distance c(p) (distance to its ``min_samples``-th nearest neighbour, itself
  included, as HDBSCAN defines it) and its membership strength s(p) (HDBSCAN's probability).
  Above ``max_core_points`` (default 20,000) a seeded subset is kept, drawn in each cluster in
  proportion to its size (every cluster keeps at least one): it keeps the model file near 2 MB
  and placing 1M customers a matter of seconds, and a uniform subset still covers each
  cluster's whole extent.
- x goes to the cluster of its nearest core point p, at distance d, if d is within that
  cluster's *reach*: the largest core distance of its members, the widest neighbourhood the
  cluster itself accepted. Farther away, x is ``UNASSIGNED`` (an outlier to every cluster).
- Its confidence is ``s(p) * min(1, c(p) / d)``: the nearest core point's own membership
  strength when x lies inside that point's core neighbourhood, falling as 1/d beyond it; 0 when
  Unassigned. A fitted core point placed again gets back its label and its own strength, which
  is the confidence ``fit`` reports for it.

Default ``min_cluster_size``: 1% of the fitted customers, at least 5 (scikit-learn's default):
a group under 1% of the customers is too small to address as a segment, and a fixed 5 on 100K
customers yields hundreds of micro-clusters. Default ``min_samples``: ``min(min_cluster_size, 10)``:
HDBSCAN's own default (= min_cluster_size) makes 1% of 100K, i.e. 1,000-neighbour core distances,
which calls much of the data noise, the peers' main complaint.
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.spatial import cKDTree

from core.algorithms.base import UNASSIGNED, Partition, Placement

__all__ = ["fit", "predict", "default_min_cluster_size", "default_min_samples", "SAMPLE_SIZE",
           "MAX_CORE_POINTS"]

SAMPLE_SIZE = 100_000
MAX_CORE_POINTS = 20_000
_PLACE_CHUNK = 65_536


def default_min_cluster_size(n: int) -> int:
    """1% of the fitted customers, at least 5."""
    return max(5, math.ceil(0.01 * n))


def default_min_samples(min_cluster_size: int) -> int:
    """``min(min_cluster_size, 10)``."""
    return min(int(min_cluster_size), 10)


def _check_X(X) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"HDBSCAN needs a 2-D matrix of numeric features, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("HDBSCAN needs finite numeric features: the matrix has a missing or infinite value")
    return X


def _core_subset(labels: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the kept core points: all members, or a per-cluster proportional seeded subset."""
    members = np.flatnonzero(labels != UNASSIGNED)
    if len(members) <= cap:
        return members
    keep = []
    for cluster in np.unique(labels[members]):
        idx = members[labels[members] == cluster]
        quota = max(1, math.floor(cap * len(idx) / len(members)))
        keep.append(rng.choice(idx, size=min(quota, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


def fit(X, *, k: int | None = None, seed: int, categorical=None, min_cluster_size: int | None = None,
        min_samples: int | None = None, cluster_selection_method: str = "eom",
        cluster_selection_epsilon: float = 0.0, sample_size: int = SAMPLE_SIZE,
        max_core_points: int = MAX_CORE_POINTS) -> Partition:
    """Find density clusters with HDBSCAN on a seeded sample; place the other customers.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Standardised numeric features.
    k : int, optional
        Ignored: HDBSCAN finds the number of clusters (recorded as ``info["k_requested"]``).
    seed : int
        Chooses the sample and the kept core points; same data and seed give the same result.
    categorical : None
        Euclidean density has no categorical features; passing any raises ``ValueError``.
    min_cluster_size : int, optional
        Smallest group HDBSCAN calls a cluster; default :func:`default_min_cluster_size` of the
        fitted rows.
    min_samples : int, optional
        Neighbours (itself included) that make a customer a core point; default
        :func:`default_min_samples`.
    cluster_selection_method : {"eom", "leaf"}, default "eom"
    cluster_selection_epsilon : float, default 0.0
        As scikit-learn's HDBSCAN.
    sample_size : int, default 100000
        HDBSCAN runs on a seeded uniform sample of at most this many customers.
    max_core_points : int, default 20000
        Core points kept for placement (see the module notes).

    Returns
    -------
    Partition
        labels (``UNASSIGNED`` = noise), confidence (module notes), centers = mean of each
        cluster's customers, proba None, params for :func:`predict`; info: n_clusters,
        noise_share (all rows), noise_share_fitted, fitted_on, assigned, min_cluster_size,
        min_samples, core_points, k_requested, seconds.

    Raises
    ------
    ValueError
        Bad input, or every fitted customer is noise.
    """
    began = time.perf_counter()
    if categorical is not None and np.asarray(categorical).size:
        raise ValueError("HDBSCAN here uses numeric features only; for categorical features use the "
                         "kprototypes algorithm")
    X = _check_X(X)
    n = len(X)
    if sample_size < 2 or max_core_points < 1:
        raise ValueError("HDBSCAN sample_size must be at least 2 and max_core_points at least 1")
    rng = np.random.default_rng(seed)
    sampled = n > sample_size
    fit_idx = np.sort(rng.choice(n, sample_size, replace=False)) if sampled else np.arange(n)
    Xf = X[fit_idx]
    m = len(Xf)
    mcs = default_min_cluster_size(m) if min_cluster_size is None else int(min_cluster_size)
    ms = default_min_samples(mcs) if min_samples is None else int(min_samples)
    if mcs < 2:
        raise ValueError(f"HDBSCAN min_cluster_size must be at least 2, got {mcs}")
    if not 1 <= ms <= m:
        raise ValueError(f"HDBSCAN min_samples must be between 1 and the number of customers ({m}), got {ms}")
    if cluster_selection_method not in ("eom", "leaf"):
        raise ValueError(f"HDBSCAN cluster_selection_method must be eom or leaf, got {cluster_selection_method!r}")

    # Imported here: scikit-learn costs about a second to import, which predict does not need.
    from sklearn.cluster import HDBSCAN

    model = HDBSCAN(min_cluster_size=mcs, min_samples=ms, cluster_selection_method=cluster_selection_method,
                    cluster_selection_epsilon=float(cluster_selection_epsilon), copy=False).fit(Xf)
    fit_labels = model.labels_.astype(np.intp)
    strength = model.probabilities_.astype(float)
    n_clusters = int(fit_labels.max()) + 1
    if n_clusters <= 0:
        raise ValueError(f"HDBSCAN found no cluster: every customer is noise at min_cluster_size={mcs}; "
                         f"try a smaller min_cluster_size or k-means")

    members = np.flatnonzero(fit_labels != UNASSIGNED)
    core_dist = np.zeros(m)
    core_dist[members] = cKDTree(Xf).query(Xf[members], k=ms)[0].reshape(len(members), -1)[:, -1]
    reach = np.array([core_dist[members][fit_labels[members] == c].max() for c in range(n_clusters)])
    kept = _core_subset(fit_labels, max_core_points, rng)
    params = {"core_points": Xf[kept], "core_labels": fit_labels[kept], "core_distances": core_dist[kept],
              "core_strength": strength[kept], "cluster_reach": reach, "n_clusters": n_clusters,
              "min_cluster_size": mcs, "min_samples": ms}

    labels = np.empty(n, dtype=np.intp)
    confidence = np.empty(n)
    labels[fit_idx] = fit_labels
    confidence[fit_idx] = np.where(fit_labels == UNASSIGNED, 0.0, strength)
    if sampled:
        rest = np.ones(n, dtype=bool)
        rest[fit_idx] = False
        placed = predict(params, X[rest])
        labels[rest], confidence[rest] = placed.labels, placed.confidence
    clustered = labels != UNASSIGNED
    counts = np.bincount(labels[clustered], minlength=n_clusters)
    sums = np.stack([np.bincount(labels[clustered], weights=X[clustered, j], minlength=n_clusters)
                     for j in range(X.shape[1])], axis=1)
    centers = sums / np.maximum(counts, 1)[:, None]
    info = {
        "algorithm": "hdbscan", "n_clusters": n_clusters, "k_requested": None if k is None else int(k),
        "noise_share": float(np.mean(~clustered)), "noise_share_fitted": float(np.mean(fit_labels == UNASSIGNED)),
        "fitted_on": int(m), "assigned": int(n - m), "sampled": bool(sampled), "min_cluster_size": mcs,
        "min_samples": ms, "cluster_selection_method": cluster_selection_method, "core_points": int(len(kept)),
        "sizes": counts.tolist(), "seconds": time.perf_counter() - began,
    }
    return Partition(labels=labels, confidence=confidence, centers=centers, params=params, proba=None, info=info)


def predict(params, X, categorical=None) -> Placement:
    """Place customers by their nearest stored core point (rule in the module notes).

    Parameters
    ----------
    params : dict
        ``Partition.params`` of :func:`fit` (also as read back from an npz file).
    X : ndarray of shape (n, d)
        Standardised features in the fitted order.
    categorical : None
        Must be None.

    Returns
    -------
    Placement
        labels (a cluster, or ``UNASSIGNED`` beyond the nearest cluster's reach), confidence in
        [0, 1] (0 when Unassigned), proba None.
    """
    if categorical is not None and np.asarray(categorical).size:
        raise ValueError("HDBSCAN here uses numeric features only; for categorical features use the "
                         "kprototypes algorithm")
    points = np.asarray(params["core_points"], dtype=float)
    core_labels = np.asarray(params["core_labels"]).astype(np.intp)
    core_dist = np.asarray(params["core_distances"], dtype=float)
    core_strength = np.asarray(params["core_strength"], dtype=float)
    reach = np.asarray(params["cluster_reach"], dtype=float)
    X = _check_X(X)
    if X.shape[1] != points.shape[1]:
        raise ValueError(f"HDBSCAN was fitted on {points.shape[1]} features, got {X.shape[1]}")
    tree = cKDTree(points)
    labels = np.empty(len(X), dtype=np.intp)
    confidence = np.empty(len(X))
    for start in range(0, len(X), _PLACE_CHUNK):
        dist, nearest = tree.query(X[start:start + _PLACE_CHUNK], k=1)
        lab = core_labels[nearest]
        c = core_dist[nearest]
        ratio = np.where(dist > c, c / np.where(dist > 0, dist, 1.0), 1.0)
        conf = core_strength[nearest] * ratio
        outside = dist > reach[lab]
        labels[start:start + len(lab)] = np.where(outside, UNASSIGNED, lab)
        confidence[start:start + len(lab)] = np.where(outside, 0.0, conf)
    return Placement(labels=labels, confidence=confidence, proba=None)
