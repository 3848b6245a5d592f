"""The contract every clustering algorithm besides the k-means engines follows.

An algorithm is a module with two functions:

``fit(X, *, k, seed, categorical=None, **options) -> Partition``
    ``X`` is the (n, d) float64 matrix of numeric features already standardised; ``categorical``
    is an (n, c) int matrix of category codes (0..m-1; -1 for missing) or None.
``predict(params, X, categorical=None) -> Placement``
    Places customers with the stored ``params`` alone (no training data), chunk by chunk.

Both are pure: no files, no registry, no global state. A version stores ``params`` in its
model file next to the scaler (arrays and scalars only: never pickle).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Partition", "Placement", "UNASSIGNED"]

UNASSIGNED = -1
"""Label of a customer no segment claims (HDBSCAN noise); shown as the "Unassigned" group."""


@dataclass(frozen=True)
class Placement:
    """Where customers fall under a fitted algorithm.

    Parameters
    ----------
    labels : ndarray of shape (n,)
        Segment index 0..k-1, or ``UNASSIGNED``.
    confidence : ndarray of shape (n,)
        In [0, 1]: the largest membership probability (soft models), the customer's consensus
        agreement, or the placement confidence (HDBSCAN's nearest core point).
    proba : ndarray of shape (n, k) or None
        Membership probabilities (rows sum to 1) for soft models, else None.
    """

    labels: np.ndarray
    confidence: np.ndarray
    proba: np.ndarray | None = None


@dataclass(frozen=True)
class Partition:
    """What an algorithm's fit returns.

    Parameters
    ----------
    labels, confidence, proba
        As in :class:`Placement`, for the customers fitted on.
    centers : ndarray of shape (k, d)
        Mean of each segment's members in the units of ``X`` (profiles and charts use them).
    params : dict of str to ndarray or scalar
        Everything ``predict`` needs; stored in the version's model file.
    info : dict
        JSON-able facts for the version's metadata and the comparison: ``log_likelihood``,
        ``bic``, ``aic`` (GMM), ``gamma`` and its rule (k-prototypes), ``noise_share``
        (HDBSCAN), ``pac`` and ``pac_by_k`` (consensus), ``n_iter``, ``seconds``, ...
    """

    labels: np.ndarray
    confidence: np.ndarray
    centers: np.ndarray
    params: dict
    proba: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of segments (the Unassigned group not counted)."""
        return int(self.centers.shape[0])
