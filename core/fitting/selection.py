"""Choosing k: every criterion of :mod:`core.fitting.criteria` per k, and the recommended k.

Silhouette is exact up to ``exact_max`` customers. The pairwise distances are
computed once per sweep and shared by every k (the expensive part of an exact
silhouette does not depend on the labels), in row blocks so memory stays
bounded. Beyond ``exact_max`` it is computed on a seeded uniform sample, as
scikit-learn's ``silhouette_score(sample_size=...)`` does, and the result says so.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from core.fitting.criteria import CRITERIA, STABLE_ARI, FitContext, describe, vote
from core.fitting.measures import (BLOCK_BYTES, EXACT_SILHOUETTE_MAX, PREDICTION_STRENGTH_REPEATS, SILHOUETTE_SAMPLE, calinski_harabasz,
                       davies_bouldin, elbow_k, fit_kmeans, prediction_strength, silhouette_samples)
from core.fitting.model import DEFAULT_SEED

__all__ = [
    "KResult", "SweepResult", "sweep", "silhouette_samples", "calinski_harabasz",
    "davies_bouldin", "prediction_strength", "elbow_k", "recommend_k", "fit_kmeans", "STABLE_ARI",
]

# Above this many customers the sweep fits and measures on a uniform sample: the metrics of a
# 50,000-row sample are as informative as the full data's, at a fraction of 9 k-means fits' cost.
SWEEP_FIT_MAX = 50_000
SWEEP_STABILITY_MAX = 5_000


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
    prediction_strength : float or None
        Tibshirani & Walther's prediction strength (None when not measured).
    extra : dict
        Values of criteria registered in :mod:`core.fitting.criteria` without a field here.
    """

    k: int
    inertia: float
    silhouette: float
    calinski_harabasz: float
    davies_bouldin: float
    sizes: list
    stability: float | None = None
    prediction_strength: float | None = None
    extra: dict = field(default_factory=dict)

    def value(self, name: str):
        """The value of criterion ``name`` (None when not measured).

        Parameters
        ----------
        name : str

        Returns
        -------
        float or None
        """
        return getattr(self, name) if name in _KRESULT_FIELDS else self.extra.get(name)

    def set_value(self, name: str, value) -> None:
        """Store the value of criterion ``name``.

        Parameters
        ----------
        name : str
        value : float or None
        """
        if name in _KRESULT_FIELDS:
            setattr(self, name, value)
        else:
            self.extra[name] = value

    def to_dict(self) -> dict:
        """Return a flat JSON-serialisable form (criteria as keys).

        Returns
        -------
        dict
        """
        out = asdict(self)
        out.update(out.pop("extra"))
        return out

    @classmethod
    def from_dict(cls, row: dict) -> "KResult":
        """The inverse of :meth:`to_dict`: keys without a field go to ``extra``.

        Parameters
        ----------
        row : dict

        Returns
        -------
        KResult
        """
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{key: v for key, v in row.items() if key in known},
                   extra={key: v for key, v in row.items() if key not in known})


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
            The fields, ``results`` flat (one key per criterion) and ``criteria``
            (the registry: name, label, better direction, hint, vote).
        """
        out = asdict(self)
        out["results"] = [r.to_dict() for r in self.results]
        out["criteria"] = describe()
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




_KRESULT_FIELDS = {f.name for f in fields(KResult)} - {"extra", "k", "sizes"}


def recommend_k(results: list[KResult], total_ss: float | None = None,
                current_k: int | None = None) -> tuple[int, str, dict]:
    """Recommend a k from the criteria of :data:`core.fitting.criteria.CRITERIA`, with the reasons in plain words.

    Each measured criterion votes for its best k (silhouette: highest; elbow of
    inertia; Calinski-Harabasz: highest; Davies-Bouldin: lowest; prediction
    strength: the largest k at or above 0.8; and, when measured, stability:
    highest bootstrap ARI). The k with most votes wins; ties go to the higher
    silhouette, the most widely trusted of them. A criterion with a floor
    (stability: ARI 0.75) makes a k below it recommendable only if no k reaches it.

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
    votes, measured = {}, {}
    for c in CRITERIA:
        values = {k: by_k[k].value(c.name) for k in ks}
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            continue
        measured[c.name] = values
        chosen = vote(c, values, total_ss)
        if chosen is not None:
            votes[c.vote] = chosen
    tally: dict[int, int] = {}
    for k in votes.values():
        tally[k] = tally.get(k, 0) + 1
    eligible = list(tally) or list(ks)
    for c in CRITERIA:
        if c.eligible_min is not None and c.name in measured:
            floor = [k for k in eligible if measured[c.name].get(k, 1.0) >= c.eligible_min]
            eligible = floor or eligible
    best = max(eligible, key=lambda k: (tally.get(k, 0), sil[k]))
    names = {c.vote: c.reason for c in CRITERIA}
    stab = measured.get("stability", {})
    ps = measured.get("prediction_strength", {})
    agree = [names[c] for c, k in votes.items() if k == best]
    differ = [f"{names[c]} at k={k}" for c, k in votes.items() if k != best]
    reason = f"k={best}: {', '.join(agree) or 'the most stable of the preferred values'} (silhouette {sil[best]:.3f}"
    if best in ps:
        reason += f", prediction strength {ps[best]:.2f}"
    reason += f", bootstrap ARI {stab[best]:.2f})" if best in stab else ")"
    if differ:
        reason += f"; {'; '.join(differ)}"
    if ps and "prediction_strength" not in votes:
        reason += f"; no k reaches prediction strength {CRITERIA_BY_VOTE['prediction_strength'].threshold}"
    reason += "."
    if current_k is not None and current_k != best and current_k in sil:
        reason += f" The current k={current_k} has silhouette {sil[current_k]:.3f}"
        if current_k in stab:
            verdict = "stable" if stab[current_k] >= STABLE_ARI else "not stable"
            reason += f" and bootstrap ARI {stab[current_k]:.2f} ({verdict})"
        reason += "; it can still be the right business choice when its segments are stable and actionable."
    return best, reason, votes


CRITERIA_BY_VOTE = {c.vote: c for c in CRITERIA}


def sweep(Z: np.ndarray, k_min: int = 2, k_max: int = 10, *, n_init: int = 3, seed: int = DEFAULT_SEED,
          exact_max: int = EXACT_SILHOUETTE_MAX, sample_size: int = SILHOUETTE_SAMPLE,
          fit_max: int = SWEEP_FIT_MAX, current_k: int | None = None, stability_resamples: int = 0,
          stability_n_init: int = 5, prediction_strength_repeats: int = PREDICTION_STRENGTH_REPEATS,
          progress: Callable[[int, int, str], None] | None = None, engine=None) -> SweepResult:
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
    prediction_strength_repeats : int, default 2
        Half-splits per k of the prediction strength (0: not measured).
    progress : callable, optional
        Called as ``progress(done, total, message)`` after each k (every criterion of it measured).
    engine : InMemoryClustering, optional
        The engine every fit and refit of the sweep goes through (:class:`core.engines.InMemoryClustering`);
        the numpy engine by default.

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
    block = max(1, BLOCK_BYTES // (8 * len(Zs)))
    for start in range(0, len(Zs), block):
        d2 = zs_sq[start:start + block, None] - 2.0 * (Zs[start:start + block] @ Zs.T) + zs_sq[None, :]
        np.maximum(d2, 0.0, out=d2)
        dist_blocks.append(np.sqrt(d2).astype(np.float32))
    # Refit-based criteria (prediction strength, stability) scale with n; the partition's properties do
    # not, so they are measured on <= 5,000 rows.
    Zst = Z if n <= SWEEP_STABILITY_MAX else Z[np.sort(rng.choice(n, SWEEP_STABILITY_MAX, replace=False))]
    shared = {"dist_blocks": dist_blocks, "silhouette_rows": rows, "refit_sample": Zst}
    options = {"stability_resamples": stability_resamples, "stability_n_init": stability_n_init,
               "prediction_strength_repeats": prediction_strength_repeats, "engine": engine}
    total = k_max - k_min + 1
    results = []
    for i, k in enumerate(range(k_min, k_max + 1)):
        fit = fit_kmeans(Z, k, n_init=n_init, seed=seed, engine=engine)
        ctx = FitContext(Z=Z, k=k, labels=fit.labels, centers=fit.centers, inertia=fit.inertia, seed=seed,
                         n_init=n_init, options=options, shared=shared)
        values = {c.name: c.compute(ctx) for c in CRITERIA}
        result = KResult(k=k, inertia=0.0, silhouette=0.0, calinski_harabasz=0.0, davies_bouldin=0.0,
                         sizes=np.bincount(fit.labels, minlength=k).tolist())
        for name, value in values.items():
            result.set_value(name, None if value is None else float(value))
        results.append(result)
        if progress:
            progress(i + 1, total, f"k={k}")
    total_ss = float(((Z - Z.mean(axis=0)) ** 2).sum())
    best, reason, votes = recommend_k(results, total_ss, current_k)
    method = f"sampled (n={sample_size:,})" if sampled else "exact"
    return SweepResult(results, best, reason, votes, method, n_all, fit_sample)
