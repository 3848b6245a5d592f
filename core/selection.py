"""Choosing k: inertia, silhouette, Calinski-Harabasz and Davies-Bouldin per k.

Silhouette is exact up to ``exact_max`` customers. The pairwise distances are
computed once per sweep and shared by every k (the expensive part of an exact
silhouette does not depend on the labels), in row blocks so memory stays
bounded. Beyond ``exact_max`` it is computed on a seeded uniform sample, as
scikit-learn's ``silhouette_score(sample_size=...)`` does, and the result says so.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .model import DEFAULT_SEED, kmeans

__all__ = [
    "KResult", "SweepResult", "sweep", "silhouette_samples", "calinski_harabasz",
    "davies_bouldin", "elbow_k", "recommend_k",
]

EXACT_SILHOUETTE_MAX = 8_000
SILHOUETTE_SAMPLE = 8_000
# Above this many customers the sweep fits and measures on a uniform sample: the metrics of a
# 50,000-row sample are as informative as the full data's, at a fraction of 9 k-means fits' cost.
SWEEP_FIT_MAX = 50_000
SWEEP_STABILITY_MAX = 5_000
# Rows of the distance matrix held at once: 2,048 x 100,000 float64 is ~1.6 GB, so blocks
# shrink as n grows to keep a block near 200 MB.
_BLOCK_BYTES = 200_000_000


@dataclass
class KResult:
    """Quality metrics of one k.

    Parameters
    ----------
    k : int
    inertia : float
        Within-segment sum of squares (scaled units).
    silhouette : float
        Mean silhouette, -1..1, higher is better.
    calinski_harabasz : float
        Higher is better.
    davies_bouldin : float
        Lower is better.
    sizes : list of int
        Segment sizes.
    stability : float or None
        Mean adjusted Rand index between the fit and bootstrap refits (None when not measured).
    """

    k: int
    inertia: float
    silhouette: float
    calinski_harabasz: float
    davies_bouldin: float
    sizes: list
    stability: float | None = None


@dataclass
class SweepResult:
    """Metrics for every k and the recommended k with its reasons.

    Parameters
    ----------
    results : list of KResult
    recommended_k : int
    reason : str
        Plain words: which criteria point where, and why this k.
    votes : dict
        Criterion -> the k it prefers.
    silhouette_method : str
        ``"exact"`` or ``"sampled (n=...)"``.
    n_customers : int
    fit_sample : int or None
        Rows the k-means fits and metrics used when the data was larger than
        ``SWEEP_FIT_MAX``; None when all rows were used.
    """

    results: list
    recommended_k: int
    reason: str
    votes: dict
    silhouette_method: str
    n_customers: int
    fit_sample: int | None = None

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form.

        Returns
        -------
        dict
        """
        out = asdict(self)
        out["results"] = [asdict(r) for r in self.results]
        return out

    def for_k(self, k: int) -> KResult | None:
        """Return the metrics of ``k``, or None when it was not swept.

        Parameters
        ----------
        k : int

        Returns
        -------
        KResult or None
        """
        return next((r for r in self.results if r.k == k), None)


def _onehot_sums(Z: np.ndarray, rows: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum of distances from each of ``rows`` to the members of each cluster, blockwise."""
    n = len(Z)
    z_sq = np.einsum("ij,ij->i", Z, Z)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    block = max(1, min(len(rows), _BLOCK_BYTES // (8 * max(n, 1))))
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


def calinski_harabasz(Z: np.ndarray, labels: np.ndarray, centers: np.ndarray, inertia: float) -> float:
    """Calinski-Harabasz index (between / within dispersion, scaled by degrees of freedom).

    Parameters
    ----------
    Z, labels, centers : arrays of one fit
    inertia : float

    Returns
    -------
    float
    """
    n, k = len(Z), len(centers)
    if k < 2 or inertia <= 0:
        return float("nan") if k < 2 else float("inf")
    counts = np.bincount(labels, minlength=k)
    between = float((counts * ((centers - Z.mean(axis=0)) ** 2).sum(axis=1)).sum())
    return between / (k - 1) / (inertia / (n - k))


def davies_bouldin(Z: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> float:
    """Davies-Bouldin index (mean worst-case similarity of each segment to another).

    Parameters
    ----------
    Z, labels, centers : arrays of one fit

    Returns
    -------
    float
    """
    k = len(centers)
    if k < 2:
        return float("nan")
    dist = np.sqrt(((Z - centers[labels]) ** 2).sum(axis=1))
    counts = np.bincount(labels, minlength=k)
    scatter = np.bincount(labels, weights=dist, minlength=k) / np.maximum(counts, 1)
    sep = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (scatter[:, None] + scatter[None, :]) / sep
    np.fill_diagonal(ratio, -np.inf)
    ratio[~np.isfinite(ratio)] = 0.0
    np.fill_diagonal(ratio, 0.0)
    return float(ratio.max(axis=1).mean())


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


STABLE_ARI = 0.75  # Hennig's "stable" threshold, applied to the bootstrap ARI of a whole partition


def recommend_k(results: list[KResult], total_ss: float | None = None,
                current_k: int | None = None) -> tuple[int, str, dict]:
    """Recommend a k from the criteria, with the reasons in plain words.

    Each criterion votes for its best k (silhouette: highest; elbow of inertia;
    Calinski-Harabasz: highest; Davies-Bouldin: lowest; and, when measured,
    stability: highest bootstrap ARI). The k with most votes wins; ties go to
    the higher silhouette, the most widely trusted of them. When stability was
    measured, a k whose refits do not reproduce it (ARI below 0.75) is only
    recommended if no k is stable.

    Parameters
    ----------
    results : list of KResult
    total_ss : float, optional
        Inertia at k=1, for the elbow.
    current_k : int, optional
        The model's k, compared with the recommendation in the reason.

    Returns
    -------
    k : int
    reason : str
    votes : dict
    """
    ks = [r.k for r in results]
    by_k = {r.k: r for r in results}
    sil = {k: by_k[k].silhouette for k in ks}
    votes = {
        "silhouette": max(ks, key=lambda k: sil[k]),
        "elbow": elbow_k(ks, [r.inertia for r in results], total_ss),
        "calinski_harabasz": max(ks, key=lambda k: by_k[k].calinski_harabasz),
        "davies_bouldin": min(ks, key=lambda k: by_k[k].davies_bouldin),
    }
    stab = {k: by_k[k].stability for k in ks if by_k[k].stability is not None}
    if stab:
        votes["stability"] = max(stab, key=lambda k: (stab[k], -k))
    tally: dict[int, int] = {}
    for k in votes.values():
        tally[k] = tally.get(k, 0) + 1
    eligible = [k for k in tally if stab.get(k, 1.0) >= STABLE_ARI] or list(tally)
    best = max(eligible, key=lambda k: (tally[k], sil[k]))
    names = {"silhouette": "highest silhouette", "elbow": "elbow of the inertia curve",
             "calinski_harabasz": "highest Calinski-Harabasz", "davies_bouldin": "lowest Davies-Bouldin",
             "stability": "most stable under resampling"}
    agree = [names[c] for c, k in votes.items() if k == best]
    differ = [f"{names[c]} at k={k}" for c, k in votes.items() if k != best]
    reason = f"k={best}: {', '.join(agree) or 'the most stable of the preferred values'} (silhouette {sil[best]:.3f}"
    reason += f", bootstrap ARI {stab[best]:.2f})" if best in stab else ")"
    if differ:
        reason += f"; {'; '.join(differ)}"
    reason += "."
    if current_k is not None and current_k != best and current_k in sil:
        reason += f" The current k={current_k} has silhouette {sil[current_k]:.3f}"
        if current_k in stab:
            verdict = "stable" if stab[current_k] >= STABLE_ARI else "not stable"
            reason += f" and bootstrap ARI {stab[current_k]:.2f} ({verdict})"
        reason += "; it can still be the right business choice when its segments are stable and actionable."
    return best, reason, votes


def sweep(Z: np.ndarray, k_min: int = 2, k_max: int = 10, *, n_init: int = 3, seed: int = DEFAULT_SEED,
          exact_max: int = EXACT_SILHOUETTE_MAX, sample_size: int = SILHOUETTE_SAMPLE,
          fit_max: int = SWEEP_FIT_MAX, current_k: int | None = None, stability_resamples: int = 0,
          stability_n_init: int = 5,
          progress: Callable[[int, int, str], None] | None = None) -> SweepResult:
    """Fit k-means for every k in [k_min, k_max] and measure each fit.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        Scaled features.
    k_min, k_max : int
        Range of k, inclusive; 2 <= k_min <= k_max < n.
    n_init : int, default 3
        Starts per k.
    seed : int
    exact_max, sample_size : int
        Silhouette is exact up to ``exact_max`` rows, else on ``sample_size`` rows.
    fit_max : int
        Above this many rows, fits and metrics use a seeded uniform sample of this size.
    current_k : int, optional
        The model's k, mentioned in the reason when it differs.
    stability_resamples : int, default 0
        Bootstrap refits per k for the stability criterion (0: not measured).
    stability_n_init : int, default 5
        Starts per bootstrap refit.
    progress : callable, optional
        Called as ``progress(done, total, message)`` after each step.

    Returns
    -------
    SweepResult
    """
    n_all = len(Z)
    rng = np.random.default_rng(seed)
    fit_sample = None
    if n_all > fit_max:
        Z = np.asarray(Z)[np.sort(rng.choice(n_all, fit_max, replace=False))]
        fit_sample = fit_max
    n = len(Z)
    if k_min < 2 or k_max < k_min:
        raise ValueError(f"need 2 <= k-min <= k-max, got k-min={k_min}, k-max={k_max}")
    if k_max >= n:
        raise ValueError(f"k-max={k_max} needs more than {k_max} customers; the data has {n}")
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    sampled = n > exact_max
    rows = np.sort(rng.choice(n, sample_size, replace=False)) if sampled else None
    Zs = Z[rows] if sampled else Z
    zs_sq = np.einsum("ij,ij->i", Zs, Zs)
    # Distances depend only on the data: compute them once, blockwise, for every k. float32
    # halves the memory (8,000 rows: 256 MB) and changes silhouettes by less than 1e-6.
    dist_blocks = []
    block = max(1, _BLOCK_BYTES // (8 * len(Zs)))
    for start in range(0, len(Zs), block):
        d2 = zs_sq[start:start + block, None] - 2.0 * (Zs[start:start + block] @ Zs.T) + zs_sq[None, :]
        np.maximum(d2, 0.0, out=d2)
        dist_blocks.append(np.sqrt(d2).astype(np.float32))
    total = (k_max - k_min + 1) * (2 if stability_resamples else 1)
    results = []
    for i, k in enumerate(range(k_min, k_max + 1)):
        fit = kmeans(Z, k, n_init=n_init, seed=seed)
        lab = fit.labels[rows] if sampled else fit.labels
        onehot = np.zeros((len(Zs), k), dtype=np.float32)
        onehot[np.arange(len(Zs)), lab] = 1.0
        sums = np.concatenate([b @ onehot for b in dist_blocks]).astype(np.float64)
        sil, _ = silhouette_samples(Zs, lab, exact_max=len(Zs), _dist_sums=sums)
        results.append(KResult(
            k=k, inertia=fit.inertia, silhouette=float(sil.mean()),
            calinski_harabasz=calinski_harabasz(Z, fit.labels, fit.centers, fit.inertia),
            davies_bouldin=davies_bouldin(Z, fit.labels, fit.centers),
            sizes=np.bincount(fit.labels, minlength=k).tolist(),
        ))
        if progress:
            progress(i + 1, total, f"k={k}")
    if stability_resamples:
        from .stability import stability_per_k  # deferred: only this option needs it

        done = len(results)
        # Refits scale with n; the stability of a partition does not, so measure it on <= 5,000 rows.
        Zst = Z if n <= SWEEP_STABILITY_MAX else Z[np.sort(rng.choice(n, SWEEP_STABILITY_MAX, replace=False))]
        stab = stability_per_k(
            Zst, [r.k for r in results], resamples=stability_resamples, seed=seed, n_init=stability_n_init,
            progress=(lambda d, t, m: progress(done + d, total, f"stability {m}")) if progress else None)
        for r in results:
            r.stability = stab[r.k]
    total_ss = float(((Z - Z.mean(axis=0)) ** 2).sum())
    best, reason, votes = recommend_k(results, total_ss, current_k)
    method = f"sampled (n={sample_size:,})" if sampled else "exact"
    return SweepResult(results, best, reason, votes, method, n_all, fit_sample)
