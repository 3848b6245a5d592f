"""Criteria for choosing k: one registry that the sweep, the recommendation, figures, CLI and metadata read.

Each :class:`Criterion` says how to compute its value for one k-means fit
(:class:`FitContext`), which direction is better, how it votes for a k, and
how people read it. Adding a criterion is one entry in :data:`CRITERIA`:
:func:`core.fitting.selection.sweep` measures it, :func:`core.fitting.selection.recommend_k`
counts its vote, and the Diagnostics figures, the metrics table, the CLI table
and the version metadata show it.

Criteria
    inertia
        Within-segment sum of squares; votes for the elbow of the curve (Kneedle).
    silhouette
        Mean silhouette (exact up to 8,000 customers, else on a sample); highest.
    calinski_harabasz, davies_bouldin
        From the label means, as scikit-learn computes them; highest / lowest.
    prediction_strength
        Tibshirani & Walther (2005): split the customers in two halves, cluster
        both, and for each cluster of one half the share of its pairs of
        customers that the other half's centroids also put together; the
        smallest share over clusters, averaged over both directions and
        repeated splits. It votes for the largest k whose strength is at least
        0.8, their threshold (no vote when no k reaches it).
    stability
        Mean adjusted Rand index between a full fit and bootstrap refits
        (measured only on request); highest, and a k below 0.75 is only
        recommended when no k reaches it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Criterion", "FitContext", "CRITERIA", "BY_NAME", "PS_THRESHOLD", "STABLE_ARI", "vote", "describe"]

PS_THRESHOLD = 0.8  # Tibshirani & Walther's threshold for prediction strength
STABLE_ARI = 0.75  # Hennig's "stable" threshold, applied to the bootstrap ARI of a whole partition


@dataclass
class FitContext:
    """One k-means fit of the sweep and what a criterion may need to measure it.

    Parameters
    ----------
    Z : ndarray of shape (n, d)
        Scaled customers the fit was made on.
    k : int
    labels : ndarray of shape (n,)
    centers : ndarray of shape (k, d)
    inertia : float
    seed : int
    n_init : int
        Starts per fit in the sweep.
    options : dict
        Sweep options criteria read (``stability_resamples``, ``stability_n_init``,
        ``prediction_strength_repeats``, the ``engine`` refits go through, ...).
    shared : dict
        Data prepared once per sweep (distance blocks for silhouette, the sample
        refit-based criteria use).
    """

    Z: np.ndarray
    k: int
    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    seed: int
    n_init: int = 3
    options: dict = field(default_factory=dict)
    shared: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Criterion:
    """One criterion of the choice of k.

    Parameters
    ----------
    name : str
        Key of its value on each sweep result (``KResult`` attribute, JSON key).
    label : str
        Title for people ("Silhouette").
    better : {"higher", "lower", "elbow", "threshold"}
        How its best k is chosen.
    hint : str
        How to read it, in a few words.
    vote : str
        Key of its vote in ``SweepResult.votes``.
    reason : str
        The vote in plain words ("highest silhouette").
    compute : callable
        ``compute(ctx: FitContext) -> float or None`` (None: not measured).
    digits : int
        Decimals when shown.
    threshold : float, optional
        ``better="threshold"``: the largest k at or above it wins. With ``eligible_min``
        also the floor of a recommendable k.
    eligible_min : float, optional
        A k below this value is recommended only when no k reaches it.
    optional : bool
        Measured only on request (the figures draw it only when every k has it).
    """

    name: str
    label: str
    better: str
    hint: str
    vote: str
    reason: str
    compute: Callable[[FitContext], float | None]
    digits: int = 3
    threshold: float | None = None
    eligible_min: float | None = None
    optional: bool = False


def _inertia(ctx: FitContext) -> float:
    return float(ctx.inertia)


def _silhouette(ctx: FitContext) -> float:
    from core.fitting.measures import silhouette_samples

    blocks, rows = ctx.shared.get("dist_blocks"), ctx.shared.get("silhouette_rows")
    if blocks is None:  # no shared distances (a caller outside the sweep): compute directly
        values, _ = silhouette_samples(ctx.Z, ctx.labels, seed=ctx.seed)
        return float(values.mean())
    lab = ctx.labels[rows] if rows is not None else ctx.labels
    Zs = ctx.Z[rows] if rows is not None else ctx.Z
    onehot = np.zeros((len(Zs), ctx.k), dtype=np.float32)
    onehot[np.arange(len(Zs)), lab] = 1.0
    sums = np.concatenate([b @ onehot for b in blocks]).astype(np.float64)
    values, _ = silhouette_samples(Zs, lab, exact_max=len(Zs), _dist_sums=sums)
    return float(values.mean())


def _calinski_harabasz(ctx: FitContext) -> float:
    from core.fitting.measures import calinski_harabasz

    return calinski_harabasz(ctx.Z, ctx.labels)


def _davies_bouldin(ctx: FitContext) -> float:
    from core.fitting.measures import davies_bouldin

    return davies_bouldin(ctx.Z, ctx.labels)


def _prediction_strength(ctx: FitContext) -> float | None:
    repeats = int(ctx.options.get("prediction_strength_repeats", 0) or 0)
    if repeats < 1:
        return None
    from core.fitting.measures import prediction_strength

    Z = ctx.shared.get("refit_sample", ctx.Z)
    return prediction_strength(Z, ctx.k, repeats=repeats, n_init=ctx.n_init, seed=ctx.seed,
                               engine=ctx.options.get("engine"))


def _stability(ctx: FitContext) -> float | None:
    resamples = int(ctx.options.get("stability_resamples", 0) or 0)
    if resamples < 1:
        return None
    from core.fitting.stability import stability_per_k

    Z = ctx.shared.get("refit_sample", ctx.Z)
    return stability_per_k(Z, [ctx.k], resamples=resamples, seed=ctx.seed,
                           n_init=int(ctx.options.get("stability_n_init", 5)), engine=ctx.options.get("engine"))[ctx.k]


CRITERIA: tuple[Criterion, ...] = (
    Criterion("inertia", "Inertia", "elbow", "look for the bend", "elbow", "elbow of the inertia curve",
              _inertia, digits=0),
    Criterion("silhouette", "Silhouette", "higher", "higher is better", "silhouette", "highest silhouette",
              _silhouette),
    Criterion("calinski_harabasz", "Calinski-Harabasz", "higher", "higher is better", "calinski_harabasz",
              "highest Calinski-Harabasz", _calinski_harabasz, digits=1),
    Criterion("davies_bouldin", "Davies-Bouldin", "lower", "lower is better", "davies_bouldin",
              "lowest Davies-Bouldin", _davies_bouldin),
    Criterion("prediction_strength", "Prediction strength", "threshold",
              f"largest k with >= {PS_THRESHOLD}", "prediction_strength",
              f"largest k with prediction strength >= {PS_THRESHOLD}", _prediction_strength, digits=2,
              threshold=PS_THRESHOLD, optional=True),
    Criterion("stability", "Stability (bootstrap ARI)", "higher", "higher is better", "stability",
              "most stable under resampling", _stability, digits=2, eligible_min=STABLE_ARI, optional=True),
)
BY_NAME = {c.name: c for c in CRITERIA}


def vote(criterion: Criterion, values: dict, total_ss: float | None = None) -> int | None:
    """The k a criterion prefers among measured values.

    Parameters
    ----------
    criterion : Criterion
    values : dict
        ``{k: value}``; None and non-finite values are ignored.
    total_ss : float, optional
        Inertia at k=1, anchoring the elbow.

    Returns
    -------
    int or None
        None when nothing was measured, or no k reaches a threshold criterion's threshold.
    """
    vals = {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}
    if not vals:
        return None
    ks = sorted(vals)
    if criterion.better == "higher":
        return max(ks, key=lambda k: (vals[k], -k))
    if criterion.better == "lower":
        return min(ks, key=lambda k: (vals[k], k))
    if criterion.better == "elbow":
        from core.fitting.measures import elbow_k

        return elbow_k(ks, [vals[k] for k in ks], total_ss)
    if criterion.better == "threshold":
        passing = [k for k in ks if vals[k] >= criterion.threshold]
        return max(passing) if passing else None
    raise ValueError(f"unknown direction {criterion.better!r} of criterion {criterion.name}")


def describe() -> list[dict]:
    """The registry as JSON-serialisable rows (for the sweep's JSON, the API and version metadata).

    Returns
    -------
    list of dict
        ``name``, ``label``, ``better``, ``hint``, ``vote``, ``threshold``, ``optional`` per criterion.
    """
    return [{"name": c.name, "label": c.label, "better": c.better, "hint": c.hint, "vote": c.vote,
             "threshold": c.threshold, "optional": c.optional} for c in CRITERIA]
