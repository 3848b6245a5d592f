"""PCA projection of scaled features to 2 or 3 dimensions, with loadings."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Projection", "pca"]


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
