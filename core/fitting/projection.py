"""PCA projection of scaled features to 2 or 3 dimensions, with loadings."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Projection", "pca", "downsample_per_segment"]


@dataclass
class Projection:
    """A fitted PCA.

    Parameters
    ----------
    mean : ndarray of shape (d,)
        Mean removed before projecting.
    components : ndarray of shape (c, d)
        Principal axes (unit vectors), strongest first.
    explained_variance : ndarray of shape (c,)
        Variance along each axis.
    explained_variance_ratio : ndarray of shape (c,)
        Share of total variance along each axis.
    features : list of str
        Names of the d input features.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    features: list

    def transform(self, Z: np.ndarray) -> np.ndarray:
        """Project scaled rows onto the principal axes.

        Parameters
        ----------
        Z : ndarray of shape (n, d)

        Returns
        -------
        ndarray of shape (n, c)
        """
        return (np.asarray(Z, float) - self.mean) @ self.components.T

    @property
    def loadings(self) -> np.ndarray:
        """Loadings, shape (d, c): axis weights times the axis' standard deviation.

        On standardised features this is the correlation of each feature with each axis.
        """
        return self.components.T * np.sqrt(self.explained_variance)[None, :]


def pca(Z: np.ndarray, n_components: int = 3, features=None, max_rows: int = 200_000,
        seed: int = 0) -> Projection:
    """Fit a PCA by singular value decomposition.

    Signs are fixed (largest absolute weight of each axis positive) so the same
    data always gives the same picture.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        Scaled features.
    n_components : int, default 3
    features : list of str, optional
    max_rows : int, default 200000
        Axes are estimated on a seeded uniform sample beyond this many rows
        (the axes of 7 features settle long before that).
    seed : int, default 0

    Returns
    -------
    Projection
    """
    Z = np.asarray(Z, dtype=np.float64)
    n, d = Z.shape
    c = min(n_components, d, n)
    fit = Z if n <= max_rows else Z[np.random.default_rng(seed).choice(n, max_rows, replace=False)]
    mean = fit.mean(axis=0)
    _, s, vt = np.linalg.svd(fit - mean, full_matrices=False)
    var = s ** 2 / max(len(fit) - 1, 1)
    ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    comps = vt[:c]
    signs = np.sign(comps[np.arange(c), np.abs(comps).argmax(axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    return Projection(mean, comps, var[:c], ratio[:c], list(features) if features is not None else [f"x{i}" for i in range(d)])


def _segment_quotas(counts: np.ndarray, floors: np.ndarray, total: int) -> np.ndarray:
    """Integer quotas summing to ``total``: proportional to ``counts``, at least ``floors``, at most ``counts``."""
    def filled(t: float) -> np.ndarray:
        return np.clip(t * counts, floors, counts)
    # filled(t).sum() grows with t from floors.sum() (<= total) at t=0 to counts.sum() (> total) at t=1.
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if filled(mid).sum() < total else (lo, mid)
    real = filled(hi)
    quotas = np.floor(real).astype(np.int64)
    short = total - int(quotas.sum())
    if short > 0:
        room = quotas < counts
        order = np.argsort(-(real - quotas) - room, kind="stable")  # largest remainders with room first
        quotas[order[:short]] += 1
    elif short < 0:
        spare = quotas > floors
        order = np.argsort(-(quotas - real) - spare, kind="stable")
        quotas[order[:-short]] -= 1
    return quotas


def downsample_per_segment(labels, max_points: int, seed: int = 0, *, min_per_segment: int = 200) -> np.ndarray:
    """Row positions of a stratified sample that keeps every segment visible.

    Plots of many customers draw a sample; a plain uniform sample can make a small
    segment vanish. Here each segment keeps a share proportional to its size, but
    never fewer than ``min_per_segment`` rows (or the whole segment when smaller).

    Parameters
    ----------
    labels : array-like of shape (n,)
        Segment of each row (any hashable, sortable values).
    max_points : int
        Largest number of rows returned; every row is returned when ``n <= max_points``.
    seed : int, default 0
        Same seed and labels, same sample (a view is reproducible).
    min_per_segment : int, default 200
        Rows every segment keeps at least (capped at its size, and at
        ``max_points // number of segments`` so the bound holds).

    Returns
    -------
    ndarray of int
        Sorted row positions into ``labels``; ``min(n, max_points)`` of them.

    Raises
    ------
    ValueError
        ``max_points`` or ``min_per_segment`` below 1, or fewer points than segments.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if max_points < 1 or min_per_segment < 1:
        raise ValueError(f"max_points and min_per_segment must be at least 1, got {max_points}, {min_per_segment}")
    if n <= max_points:
        return np.arange(n)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(counts) > max_points:
        raise ValueError(f"{max_points} points cannot show each of {len(counts)} segments")
    floors = np.minimum(counts, min(min_per_segment, max_points // len(counts)))
    quotas = _segment_quotas(counts, floors, max_points)
    rng = np.random.default_rng(seed)
    by_segment = np.argsort(inverse.ravel(), kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    picks = [by_segment[s:s + c][rng.choice(c, q, replace=False)] for s, c, q in zip(starts, counts, quotas)]
    return np.sort(np.concatenate(picks))
