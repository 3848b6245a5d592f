"""Does the model still fit? Compare a later customer extract with the model's training data.

Three measurements, and a plain recommendation from them:

* **Feature drift**: population stability index (PSI) of every model feature,
  with bins cut at the training data's deciles (fewer bins where deciles tie,
  as for counts of children). Usual reading: below 0.1 no significant shift,
  0.1-0.25 a moderate shift, 0.25 or more a significant shift.
* **Segment mix**: the share of each segment when the new customers are
  scored with the model, against the training shares (and their PSI).
* **Structure**: the adjusted Rand index between the model's labels and a
  refit of the same pipeline on the new customers. k-means partitions vary
  between resamples even without any drift (about 0.5-0.9 for k=6 on the real
  file), so the index is judged against a baseline: the same refit on
  bootstrap resamples of the training data. An index below that baseline's
  5th percentile means the new data's structure differs more than resampling
  the training data ever makes it.

Recommendation: *retrain* when a feature or the segment mix shifted
significantly (PSI >= 0.25) or the structure changed; *watch* when something
moved moderately (PSI >= 0.1, or a segment's share moved by 5 points or more);
*keep* otherwise. The reasons say which.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.fitting.model import SegmentationModel
from core.reading.schema import unit_field
from core.fitting.stability import adjusted_rand

__all__ = ["PSI_MODERATE", "PSI_MAJOR", "SHARE_WATCH", "psi", "psi_band", "feature_psi", "DriftReport",
           "compare_new_data"]

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
SHARE_WATCH = 0.05
# Floor for empty bins: PSI's log ratio is infinite for a bin one sample leaves empty.
_EPS = 1e-4

Progress = Callable[[int, int, str], None]


def decile_edges(reference: np.ndarray, n_bins: int) -> np.ndarray:
    return np.unique(np.quantile(reference, np.linspace(0, 1, n_bins + 1)[1:-1]))


def proportions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # side="left": bin i holds edges[i-1] < x <= edges[i], the last bin everything above.
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1)


def psi_from_shares(expected: np.ndarray, actual: np.ndarray, eps: float = _EPS) -> float:
    e = np.maximum(np.asarray(expected, float), eps)
    a = np.maximum(np.asarray(actual, float), eps)
    return float(((a - e) * np.log(a / e)).sum())


def psi(reference, new, *, n_bins: int = 10, eps: float = _EPS) -> float:
    """Population stability index of ``new`` against ``reference``, bins at the reference's quantiles.

    Parameters
    ----------
    reference, new : array-like of float
        Non-finite values are ignored.
    n_bins : int, default 10
        Deciles; tied quantiles merge bins.
    eps : float, default 1e-4
        Floor for a bin's share.

    Returns
    -------
    float
        ``sum((new% - ref%) * ln(new% / ref%))``; 0 for identical distributions.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(new, dtype=np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        raise ValueError("PSI needs values in both samples")
    edges = decile_edges(ref, n_bins)
    return psi_from_shares(proportions(ref, edges), proportions(cur, edges), eps)


def psi_band(value: float) -> str:
    """The usual reading of a PSI value.

    Parameters
    ----------
    value : float

    Returns
    -------
    str
        ``no significant shift``, ``moderate shift`` or ``significant shift``.
    """
    if value >= PSI_MAJOR:
        return "significant shift"
    if value >= PSI_MODERATE:
        return "moderate shift"
    return "no significant shift"


def feature_psi(reference: pd.DataFrame, new: pd.DataFrame, features) -> pd.DataFrame:
    """PSI and summary statistics of each feature, training data vs new data.

    Parameters
    ----------
    reference, new : pandas.DataFrame
    features : list of str

    Returns
    -------
    pandas.DataFrame
        One row per feature: ``feature``, ``psi``, ``band``, ``reference_mean``,
        ``new_mean``, ``reference_median``, ``new_median``; largest PSI first.
    """
    rows = []
    for f in features:
        if f not in new:
            raise ValueError(f"the new data lacks the model's feature {f}")
        r = reference[f].to_numpy(dtype=float)
        c = new[f].to_numpy(dtype=float)
        value = psi(r, c)
        rows.append({"feature": f, "psi": value, "band": psi_band(value),
                     "reference_mean": float(np.nanmean(r)), "new_mean": float(np.nanmean(c)),
                     "reference_median": float(np.nanmedian(r)), "new_median": float(np.nanmedian(c))})
    return pd.DataFrame(rows).sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


@dataclass
class DriftReport:
    """New data against the model's training data.

    Parameters
    ----------
    features : pandas.DataFrame
        :func:`feature_psi` of the model's features.
    segments : pandas.DataFrame
        Per segment: ``reference_share``, ``new_share``, ``change`` (new - reference).
    share_psi : float
        PSI of the segment mix.
    ari_refit : float
        Adjusted Rand index between the model and a refit on the new customers.
    ari_baseline : ndarray
        The same index for refits on bootstrap resamples of the training data.
    n_reference, n_new : int
    recommendation : str
        ``keep``, ``watch`` or ``retrain``.
    reasons : list of str
    """

    features: pd.DataFrame
    segments: pd.DataFrame
    share_psi: float
    ari_refit: float
    ari_baseline: np.ndarray
    n_reference: int
    n_new: int
    recommendation: str
    reasons: list = field(default_factory=list)

    @property
    def reason(self) -> str:
        """The reasons as one sentence."""
        return "; ".join(self.reasons) + "."

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form."""
        base = self.ari_baseline
        return {
            "recommendation": self.recommendation, "reason": self.reason, "reasons": list(self.reasons),
            "n_reference": self.n_reference, "n_new": self.n_new,
            "features": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
                         for row in self.features.to_dict("records")],
            "segments": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
                         for row in self.segments.reset_index().to_dict("records")],
            "share_psi": round(self.share_psi, 6), "ari_refit": round(self.ari_refit, 6),
            "ari_baseline": {"resamples": int(len(base)), "median": round(float(np.median(base)), 6),
                             "p05": round(float(np.quantile(base, 0.05)), 6)} if len(base) else None,
            "thresholds": {"psi_moderate": PSI_MODERATE, "psi_major": PSI_MAJOR, "share_watch": SHARE_WATCH},
        }


def _refit_ari(model: SegmentationModel, frame: pd.DataFrame, n_init: int) -> float:
    refit = SegmentationModel(k=model.k, features=model.features, seed=model.seed, n_init=n_init,
                              max_iter=model.max_iter).fit(frame)
    return adjusted_rand(model.predict(frame), refit.labels_)


def compare_new_data(model: SegmentationModel, reference: pd.DataFrame, new: pd.DataFrame, *,
                     baseline_resamples: int = 20, n_init: int | None = None, seed: int | None = None,
                     progress: Progress | None = None) -> DriftReport:
    """Compare a later extract with the model's training data and recommend keep / watch / retrain.

    Parameters
    ----------
    model : SegmentationModel
        The active model.
    reference : pandas.DataFrame
        Its training customers (prepared: cleaned, with features).
    new : pandas.DataFrame
        The later extract, prepared the same way.
    baseline_resamples : int, default 20
        Bootstrap refits of the training data the structure check is judged against.
    n_init : int, optional
        Starts per refit (default: the model's).
    seed : int, optional
        Seed of the bootstrap draws (default: the model's).
    progress : callable, optional
        ``progress(done, total, message)``.

    Returns
    -------
    DriftReport
    """
    k = model.k
    n_new = len(new)
    if n_new <= k:
        raise ValueError(f"the new data has {n_new} usable customers; at least {k + 1} are needed to refit "
                         f"{k} segments")
    n_init = n_init or model.n_init
    seed = model.seed if seed is None else seed
    total = baseline_resamples + 2
    step = progress or (lambda *_a: None)
    features = feature_psi(reference, new, model.features)
    ref_counts = np.bincount(model.predict(reference), minlength=k)
    new_counts = np.bincount(model.predict(new), minlength=k)
    ref_share = ref_counts / max(ref_counts.sum(), 1)
    new_share = new_counts / max(new_counts.sum(), 1)
    segments = pd.DataFrame({"reference_share": ref_share, "new_share": new_share, "change": new_share - ref_share},
                            index=pd.RangeIndex(k, name="segment"))
    share_psi = psi_from_shares(ref_share, new_share)
    step(1, total, "feature drift")
    ari_new = _refit_ari(model, new, n_init)
    step(2, total, "refit on the new data")
    baseline = []
    for b in range(baseline_resamples):
        rows = np.random.default_rng([seed, b]).integers(0, len(reference), len(reference))
        sample = reference.iloc[np.unique(rows)]
        baseline.append(_refit_ari(model, sample, n_init))
        step(3 + b, total, "baseline refit")
    baseline = np.asarray(baseline)

    retrain, watch = [], []
    major = features[features["psi"] >= PSI_MAJOR]
    moderate = features[(features["psi"] >= PSI_MODERATE) & (features["psi"] < PSI_MAJOR)]
    if len(major):
        retrain.append("significant shift in "
                       + ", ".join(f"{unit_field(r.feature)} (PSI {r.psi:.2f})" for r in major.itertuples()))
    if share_psi >= PSI_MAJOR:
        retrain.append(f"the segment mix shifted significantly (PSI {share_psi:.2f})")
    if len(baseline) and ari_new < np.quantile(baseline, 0.05):
        retrain.append(f"a refit on the new data agrees with the model less (adjusted Rand {ari_new:.2f}) than "
                       f"refits on resampled training data do (5th percentile {np.quantile(baseline, 0.05):.2f})")
    if len(moderate):
        watch.append("moderate shift in " + ", ".join(f"{unit_field(r.feature)} (PSI {r.psi:.2f})" for r in moderate.itertuples()))
    if PSI_MODERATE <= share_psi < PSI_MAJOR:
        watch.append(f"the segment mix moved (PSI {share_psi:.2f})")
    moved = segments[segments["change"].abs() >= SHARE_WATCH]
    if len(moved):
        watch.append("segment share moved: " + ", ".join(
            f"segment {i} {r.reference_share:.0%} -> {r.new_share:.0%}" for i, r in moved.iterrows()))
    if n_new < 10 * k:
        watch.append(f"only {n_new} new customers: too few to judge the structure reliably")
    if retrain:
        recommendation, reasons = "retrain", retrain + watch
    elif watch:
        recommendation, reasons = "watch", watch
    else:
        recommendation = "keep"
        reasons = [f"every feature's PSI is below {PSI_MODERATE}, segment shares moved by less than "
                   f"{SHARE_WATCH * 100:.0f} percentage points, and a refit on the new data agrees with the model "
                   f"(adjusted Rand {ari_new:.2f}) as well as refits on the training data do"
                   + (f" (median {np.median(baseline):.2f})" if len(baseline) else "")]
    return DriftReport(features=features, segments=segments, share_psi=share_psi, ari_refit=ari_new,
                       ari_baseline=baseline, n_reference=len(reference), n_new=n_new,
                       recommendation=recommendation, reasons=reasons)
