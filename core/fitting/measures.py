"""What the choice of k measures: silhouettes, Calinski-Harabasz, Davies-Bouldin, prediction strength, the elbow.

Pure functions on a scaled matrix and labels, below both the criteria registry (:mod:`core.fitting.criteria`)
and the sweep that runs it (:mod:`core.fitting.selection`), so neither imports the other.
"""
from __future__ import annotations

import numpy as np

from core.fitting.model import DEFAULT_SEED

__all__ = ["silhouette_samples", "calinski_harabasz", "davies_bouldin", "fit_kmeans", "prediction_strength",
           "elbow_k", "EXACT_SILHOUETTE_MAX", "SILHOUETTE_SAMPLE", "PREDICTION_STRENGTH_REPEATS"]

EXACT_SILHOUETTE_MAX = 8_000
SILHOUETTE_SAMPLE = 8_000
# Random half-splits per k of the prediction strength (each used in both directions).
PREDICTION_STRENGTH_REPEATS = 2
# Rows of the distance matrix held at once: 2,048 x 100,000 float64 is ~1.6 GB, so blocks
# shrink as n grows to keep a block near 200 MB.
BLOCK_BYTES = 200_000_000


def _onehot_sums(Z: np.ndarray, rows: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum of distances from each of ``rows`` to the members of each cluster, blockwise."""
    n = len(Z)
    z_sq = np.einsum("ij,ij->i", Z, Z)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    block = max(1, min(len(rows), BLOCK_BYTES // (8 * max(n, 1))))
    out = np.empty((len(rows), k))
    for start in range(0, len(rows), block):
        idx = rows[start:start + block]
        d2 = z_sq[idx, None] - 2.0 * (Z[idx] @ Z.T) + z_sq[None, :]
        np.maximum(d2, 0.0, out=d2)
        out[start:start + block] = np.sqrt(d2) @ onehot
    return out


def silhouette_samples(Z: np.ndarray, labels: np.ndarray, *, exact_max: int = EXACT_SILHOUETTE_MAX,
                       sample_size: int = SILHOUETTE_SAMPLE, seed: int = DEFAULT_SEED,
                       _dist_sums: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Silhouette of each customer (on a uniform sample above ``exact_max`` rows).

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        Scaled features.
    labels : ndarray of shape (n,)
    exact_max : int
        Largest n computed exactly.
    sample_size : int
        Sample drawn beyond ``exact_max``.
    seed : int

    Returns
    -------
    values : ndarray
        Silhouette per customer of ``rows``; 0 for members of one-customer segments.
    rows : ndarray
        Positions in ``Z`` the values belong to (all rows when exact).
    """
    labels = np.asarray(labels)
    n = len(Z)
    if n > exact_max:
        rows = np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False))
        Z, labels = Z[rows], labels[rows]
    else:
        rows = np.arange(n)
    k = int(labels.max()) + 1 if len(labels) else 0
    counts = np.bincount(labels, minlength=k).astype(float)
    sums = _dist_sums if _dist_sums is not None else _onehot_sums(Z, np.arange(len(Z)), labels, k)
    own = counts[labels]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = sums[np.arange(len(Z)), labels] / np.maximum(own - 1, 1)
        means = sums / counts[None, :]
        means[np.arange(len(Z)), labels] = np.inf
        b = means.min(axis=1)
        s = (b - a) / np.maximum(a, b)
    s[(own <= 1) | ~np.isfinite(s)] = 0.0
    return s, rows


def _label_means(Z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each label's members and the label counts (labels 0..k-1; empty labels dropped)."""
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), Z.shape[1]))
    np.add.at(sums, inverse, Z)
    return sums / counts[:, None], inverse, counts


def calinski_harabasz(Z: np.ndarray, labels: np.ndarray, centers=None, inertia=None) -> float:
    """Calinski-Harabasz index from the label means, as scikit-learn computes it.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
    labels : ndarray of shape (n,)
    centers, inertia : optional
        Ignored (kept for callers of the earlier signature): the index uses the
        means of the labelled customers, not the centres of the last Lloyd step,
        which differ slightly when k-means stopped on its tolerance.

    Returns
    -------
    float
    """
    Z = np.asarray(Z, dtype=np.float64)
    means, inverse, counts = _label_means(Z, labels)
    n, k = len(Z), len(counts)
    if k < 2:
        return float("nan")
    within = float(((Z - means[inverse]) ** 2).sum())
    between = float((counts * ((means - Z.mean(axis=0)) ** 2).sum(axis=1)).sum())
    if within == 0:
        return 1.0  # scikit-learn's value for zero within-dispersion
    return between * (n - k) / (within * (k - 1))


def davies_bouldin(Z: np.ndarray, labels: np.ndarray, centers=None) -> float:
    """Davies-Bouldin index from the label means, as scikit-learn computes it.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
    labels : ndarray of shape (n,)
    centers : optional
        Ignored (kept for callers of the earlier signature); see :func:`calinski_harabasz`.

    Returns
    -------
    float
    """
    Z = np.asarray(Z, dtype=np.float64)
    means, inverse, counts = _label_means(Z, labels)
    k = len(counts)
    if k < 2:
        return float("nan")
    dist = np.sqrt(((Z - means[inverse]) ** 2).sum(axis=1))
    scatter = np.bincount(inverse, weights=dist, minlength=k) / counts
    sep = np.sqrt(((means[:, None, :] - means[None, :, :]) ** 2).sum(axis=2))
    if np.allclose(scatter, 0) or np.allclose(sep, 0):
        return 0.0
    sep[sep == 0] = np.inf  # the diagonal (and coinciding means) contribute 0, as in scikit-learn
    ratio = (scatter[:, None] + scatter[None, :]) / sep
    return float(ratio.max(axis=1).mean())


def fit_kmeans(Z: np.ndarray, k: int, *, n_init: int, seed: int, engine=None):
    """One k-means fit for the choice of k: the one place this module (and its criteria) fit k-means.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
    k, n_init, seed : int
    engine : InMemoryClustering, optional
        The engine to fit through (:class:`core.engines.InMemoryClustering`); the numpy engine by default.

    Returns
    -------
    KMeansResult
        ``centers``, ``labels``, ``inertia``.
    """
    from core.engines import get_engine  # the engine interface: another engine is one module

    return (engine or get_engine("numpy")).cluster(Z, k, n_init=n_init, seed=seed)


def _nearest(Z: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d2 = (Z ** 2).sum(axis=1)[:, None] - 2.0 * Z @ centers.T + (centers ** 2).sum(axis=1)[None, :]
    return d2.argmin(axis=1)


def _strength(test_labels: np.ndarray, predicted: np.ndarray) -> float:
    """Smallest share, over test clusters of two or more, of their pairs that ``predicted`` also co-assigns."""
    table = np.zeros((int(test_labels.max()) + 1, int(predicted.max()) + 1))
    np.add.at(table, (test_labels, predicted), 1.0)
    sizes = table.sum(axis=1)
    keep = sizes >= 2
    if not keep.any():
        return float("nan")
    same = (table * (table - 1)).sum(axis=1)
    return float((same[keep] / (sizes[keep] * (sizes[keep] - 1))).min())


def prediction_strength(Z: np.ndarray, k: int, *, repeats: int = PREDICTION_STRENGTH_REPEATS, n_init: int = 3,
                        seed: int = DEFAULT_SEED, engine=None) -> float:
    """Prediction strength of k clusters (Tibshirani & Walther 2005).

    The customers are split at random into two halves and each half is
    clustered. Taking one half as test and the other as training, for each test
    cluster the share of its pairs of customers that the training centroids
    also put in one cluster is computed; the strength is the smallest share over
    the test clusters (clusters of one customer have no pairs and are skipped).
    Both directions of every split are averaged, over ``repeats`` splits.
    Their rule: choose the largest k whose strength is at least 0.8.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        Scaled customers.
    k : int
    repeats : int, default 2
        Random half-splits.
    n_init : int, default 3
        k-means starts per half.
    seed : int
    engine : InMemoryClustering, optional
        The engine the halves are fitted through; numpy by default.

    Returns
    -------
    float
        0..1; 1 for k=1.
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    n = len(Z)
    if k <= 1:
        return 1.0
    if 2 * k > n:
        raise ValueError(f"prediction strength of k={k} needs at least {2 * k} customers, got {n}")
    rng = np.random.default_rng([seed, k])
    values = []
    for r in range(max(1, repeats)):
        order = rng.permutation(n)
        halves = [Z[np.sort(order[: n // 2])], Z[np.sort(order[n // 2:])]]
        fits = [fit_kmeans(h, k, n_init=n_init, seed=seed + 2 * r + i, engine=engine) for i, h in enumerate(halves)]
        for test, train in ((0, 1), (1, 0)):
            values.append(_strength(fits[test].labels, _nearest(halves[test], fits[train].centers)))
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def elbow_k(ks: list[int], inertias: list[float], total_ss: float | None = None) -> int:
    """The elbow of the inertia curve: the point farthest from the chord (Kneedle).

    Parameters
    ----------
    ks : list of int
    inertias : list of float
    total_ss : float, optional
        Inertia at k=1 (total sum of squares); anchors the curve when given.

    Returns
    -------
    int
    """
    xs = list(ks)
    ys = list(inertias)
    if total_ss is not None and 1 not in xs:
        xs, ys = [1] + xs, [total_ss] + ys
    x = np.asarray(xs, float)
    y = np.asarray(ys, float)
    if len(x) < 3 or y.max() == y.min():
        return int(ks[0])
    xn = (x - x.min()) / (x.max() - x.min())
    yn = (y - y.min()) / (y.max() - y.min())
    # Decreasing convex curve: distance below the straight line from first to last point.
    gap = (1.0 - xn) - yn
    candidates = [i for i, k in enumerate(xs) if k in ks]
    return int(x[max(candidates, key=lambda i: gap[i])])


