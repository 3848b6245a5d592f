"""Monitoring live predictions: aggregated counters, incoming drift and alerts (pure numpy).

Nothing here keeps a customer. A prediction becomes a handful of counter increments
(:func:`prediction_counts`): its time bucket's count, its segment, its confidence and
typicality bins, and for each model feature the bin its value falls in, on the
*training* data's bin edges (the deciles :mod:`core.insight.drift` uses, fixed per model
version by :func:`reference_profile`). :func:`summarise` turns stored counters back
into what an operator asks: traffic over time, the incoming segment mix against the
training mix, the population stability index (PSI) of every feature of the incoming
customers against the training customers, the share of low-confidence predictions over
time, alerts and the keep / watch / retrain wording of the drift report.

Alerts (each names the feature or segment and the figure):

* ``feature_drift``: a feature's PSI, incoming vs training, above :data:`ALERT_PSI` (0.2);
* ``segment_mix``: the PSI of the incoming segment mix above :data:`ALERT_PSI`;
* ``low_confidence``: the share of predictions with confidence below :data:`LOW_CONFIDENCE`
  at least :data:`LOW_CONFIDENCE_RATIO` (2) times the training customers' share.

No alert is raised before :data:`MIN_PREDICTIONS` predictions: PSI on a few dozen
customers is mostly noise.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np

from core.insight.drift import PSI_MAJOR, PSI_MODERATE, decile_edges, proportions, psi_from_shares, psi_band
from core.versions.naming import segment_names
from core.reading.schema import unit_field

__all__ = ["ALERT_PSI", "LOW_CONFIDENCE", "LOW_CONFIDENCE_RATIO", "MIN_PREDICTIONS", "SCORE_EDGES",
           "reference_profile", "prediction_counts", "summarise"]

ALERT_PSI = 0.2
LOW_CONFIDENCE = 0.2
LOW_CONFIDENCE_RATIO = 2.0
MIN_PREDICTIONS = 50
#: Bin edges of confidence and typicality (both in [0, 1]): ten bins of 0.1, bin i = [i/10, (i+1)/10).
SCORE_EDGES = tuple(round(0.1 * i, 1) for i in range(1, 10))
_LOW_BINS = int(round(LOW_CONFIDENCE * 10))  # bins below LOW_CONFIDENCE


def _score_shares(values: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(SCORE_EDGES, values, side="right"), minlength=len(SCORE_EDGES) + 1)
    return counts / max(counts.sum(), 1)


def reference_profile(X, features, segments, confidence, typicality, k: int, *, n_bins: int = 10) -> dict:
    """What incoming customers are compared with: the training data's bins and shares.

    Parameters
    ----------
    X : array-like of shape (n, d)
        The training customers' model features (columns in ``features`` order).
    features : list of str
    segments : array-like of int, shape (n,)
        The model's segment of each training customer.
    confidence, typicality : array-like of float, shape (n,)
        The model's scores of the training customers.
    k : int
        Number of segments.
    n_bins : int, default 10
        Deciles, as :func:`core.insight.drift.psi` (tied deciles merge bins).

    Returns
    -------
    dict
        JSON-ready: ``features``, ``edges`` (per feature, the inner bin edges), ``feature_shares``
        (per feature, the training share of each bin), ``segment_shares``, ``confidence_shares``,
        ``typicality_shares``, ``low_confidence_share`` and ``n``. Aggregates only.
    """
    X = np.asarray(X, dtype=np.float64)
    edges, shares = {}, {}
    for j, f in enumerate(features):
        col = X[:, j][np.isfinite(X[:, j])]
        e = decile_edges(col, n_bins) if col.size else np.empty(0)
        edges[f] = [float(v) for v in e]
        shares[f] = [float(v) for v in proportions(col, e)]
    seg = np.bincount(np.asarray(segments, dtype=int), minlength=k)[:k]
    conf = np.asarray(confidence, dtype=float)
    conf_shares = _score_shares(conf)
    return {"features": list(features), "k": int(k), "n": int(len(X)), "edges": edges, "feature_shares": shares,
            "segment_shares": [float(v) for v in seg / max(seg.sum(), 1)],
            "confidence_shares": [float(v) for v in conf_shares],
            "typicality_shares": [float(v) for v in _score_shares(np.asarray(typicality, dtype=float))],
            "low_confidence_share": float(conf_shares[:_LOW_BINS].sum())}


def prediction_counts(profile: dict | None, rows, segments, confidence, typicality) -> dict:
    """Counter increments for some predictions: ``{(metric, bin): n}``; no value is kept, only its bin.

    Parameters
    ----------
    profile : dict or None
        :func:`reference_profile` of the model that scored them; None counts no feature bins.
    rows : sequence of sequence of float
        Each customer's feature values, in the profile's feature order.
    segments, confidence, typicality : sequences, one entry per customer

    Returns
    -------
    dict
        Keys ``("n", 0)``, ``("seg", s)``, ``("conf", b)``, ``("typ", b)`` and ``("f:<feature>", b)``.
    """
    n = len(segments)
    out: dict = {}
    if n == 0:
        return out
    if n <= 16:  # the single-customer API path: plain Python beats building arrays
        out[("n", 0)] = n
        for s, c, t in zip(segments, confidence, typicality):
            for key in (("seg", int(s)), ("conf", bisect_right(SCORE_EDGES, c)), ("typ", bisect_right(SCORE_EDGES, t))):
                out[key] = out.get(key, 0) + 1
        if profile is not None:
            edges = profile["edges"]
            for j, f in enumerate(profile["features"]):
                e, name = edges[f], "f:" + f
                for row in rows:
                    v = row[j]
                    if v == v:  # NaN is not binned
                        key = (name, bisect_left(e, v))
                        out[key] = out.get(key, 0) + 1
        return out
    out[("n", 0)] = n

    def add(name, bins):
        counts = np.bincount(bins)
        for b in np.flatnonzero(counts):
            out[(name, int(b))] = int(counts[b])

    add("seg", np.asarray(segments, dtype=int))
    add("conf", np.searchsorted(SCORE_EDGES, np.asarray(confidence, dtype=float), side="right"))
    add("typ", np.searchsorted(SCORE_EDGES, np.asarray(typicality, dtype=float), side="right"))
    if profile is not None:
        X = np.asarray(rows, dtype=np.float64)
        for j, f in enumerate(profile["features"]):
            col = X[:, j]
            add("f:" + f, np.searchsorted(profile["edges"][f], col[np.isfinite(col)], side="left"))
    return out


def _recommendation(n: int, features: list, segment_psi: float | None, low_alert: bool) -> tuple[str, list]:
    if n < MIN_PREDICTIONS:
        return "keep", [f"only {n} prediction(s) in the window; drift is judged from {MIN_PREDICTIONS} on"]
    major = [f for f in features if f["psi"] is not None and f["psi"] >= PSI_MAJOR]
    moderate = [f for f in features if f["psi"] is not None and PSI_MODERATE <= f["psi"] < PSI_MAJOR]
    reasons = [f"{f['feature']} shifted significantly (PSI {f['psi']:.2f})" for f in major]
    if segment_psi is not None and segment_psi >= PSI_MAJOR:
        reasons.append(f"the segment mix shifted significantly (PSI {segment_psi:.2f})")
    if reasons:
        return "retrain", reasons
    reasons = [f"{f['feature']} moved moderately (PSI {f['psi']:.2f})" for f in moderate]
    if segment_psi is not None and segment_psi >= PSI_MODERATE:
        reasons.append(f"the segment mix moved moderately (PSI {segment_psi:.2f})")
    if low_alert:
        reasons.append("low-confidence predictions are at least twice as common as in training")
    if reasons:
        return "watch", reasons
    return "keep", ["incoming customers look like the training customers (every PSI below "
                    f"{PSI_MODERATE})"]


def summarise(profile: dict | None, rows, *, bucket_seconds: float, names=None) -> dict:
    """Stored counters of one model version as the monitoring report.

    Parameters
    ----------
    profile : dict or None
        :func:`reference_profile` of the version (None: no training comparison).
    rows : iterable of (bucket, metric, bin, n)
        Counters as stored: ``bucket`` is ``floor(unix time / bucket_seconds)``.
    bucket_seconds : float
    names : list of str, optional
        Segment names.

    Returns
    -------
    dict
        JSON-ready: ``predictions``, ``traffic`` and ``confidence_over_time`` (per bucket),
        ``segments``, ``segment_psi``, ``features`` (PSI per feature, largest first),
        ``low_confidence_share`` (and the training one), ``alerts``, ``recommendation``,
        ``reasons`` and ``thresholds``.
    """
    per_bucket: dict = {}
    totals: dict = {}
    for bucket, metric, b, n in rows:
        if metric == "n" or metric == "conf":
            slot = per_bucket.setdefault(int(bucket), {"n": 0, "low": 0})
            if metric == "n":
                slot["n"] += int(n)
            elif int(b) < _LOW_BINS:
                slot["low"] += int(n)
        totals[(metric, int(b))] = totals.get((metric, int(b)), 0) + int(n)
    total = sum(v["n"] for v in per_bucket.values())
    over_time = [{"start": int(t * bucket_seconds), "predictions": v["n"],
                  "low_confidence_share": (v["low"] / v["n"]) if v["n"] else None}
                 for t, v in sorted(per_bucket.items())]
    k = profile["k"] if profile else 1 + max([b for (m, b) in totals if m == "seg"], default=-1)
    names = segment_names({"segment_names": names}, k)
    seg_counts = np.array([totals.get(("seg", s), 0) for s in range(k)], dtype=float)
    incoming = seg_counts / max(seg_counts.sum(), 1)
    training = np.asarray(profile["segment_shares"], dtype=float) if profile else np.full(k, np.nan)
    segments = [{"segment": s, "name": names[s], "predictions": int(seg_counts[s]),
                 "training_share": None if np.isnan(training[s]) else float(training[s]),
                 "incoming_share": float(incoming[s]) if total else None} for s in range(k)]
    segment_psi = float(psi_from_shares(training, incoming)) if profile and total else None
    features = []
    if profile:
        for f in profile["features"]:
            edges = profile["edges"][f]
            counts = np.array([totals.get(("f:" + f, b), 0) for b in range(len(edges) + 1)], dtype=float)
            value = float(psi_from_shares(profile["feature_shares"][f], counts / counts.sum())) if counts.sum() else None
            features.append({"feature": f, "psi": value, "band": psi_band(value) if value is not None else None,
                             "predictions": int(counts.sum()),
                             "training_shares": list(profile["feature_shares"][f]),
                             "incoming_shares": [float(v) for v in counts / max(counts.sum(), 1)]})
        features.sort(key=lambda r: -1.0 if r["psi"] is None else r["psi"], reverse=True)
    conf = np.array([totals.get(("conf", b), 0) for b in range(len(SCORE_EDGES) + 1)], dtype=float)
    low_share = float(conf[:_LOW_BINS].sum() / conf.sum()) if conf.sum() else None
    train_low = profile["low_confidence_share"] if profile else None
    alerts = []
    enough = total >= MIN_PREDICTIONS
    if enough:
        for f in features:
            if f["psi"] is not None and f["psi"] > ALERT_PSI:
                alerts.append({"kind": "feature_drift", "feature": f["feature"], "value": f["psi"],
                               "threshold": ALERT_PSI,
                               "message": f"{unit_field(f['feature'])}: PSI {f['psi']:.2f} of incoming vs training customers "
                                          f"is above {ALERT_PSI}"})
        if segment_psi is not None and segment_psi > ALERT_PSI:
            moved = max(segments, key=lambda r: abs((r["incoming_share"] or 0) - (r["training_share"] or 0)))
            alerts.append({"kind": "segment_mix", "segment": moved["segment"], "segment_name": moved["name"],
                           "value": segment_psi, "threshold": ALERT_PSI,
                           "message": f"segment mix PSI {segment_psi:.2f} is above {ALERT_PSI}; segment "
                                      f"{moved['segment']} moved most ({(moved['training_share'] or 0):.0%} in "
                                      f"training, {(moved['incoming_share'] or 0):.0%} incoming)"})
    low_alert = bool(enough and low_share is not None and train_low is not None
                     and low_share >= LOW_CONFIDENCE_RATIO * max(train_low, 0.01))
    if low_alert:
        alerts.append({"kind": "low_confidence", "value": low_share, "threshold": LOW_CONFIDENCE_RATIO * train_low,
                       "message": f"{low_share:.0%} of predictions have confidence below {LOW_CONFIDENCE} "
                                  f"({train_low:.0%} of training customers): at least {LOW_CONFIDENCE_RATIO:g} times "
                                  "as many"})
    recommendation, reasons = _recommendation(total, features, segment_psi, low_alert)
    return {"predictions": int(total), "bucket_seconds": float(bucket_seconds), "traffic": over_time,
            "segments": segments, "segment_psi": segment_psi, "features": features,
            "low_confidence_share": low_share, "training_low_confidence_share": train_low,
            "alerts": alerts, "recommendation": recommendation, "reasons": reasons,
            "thresholds": {"alert_psi": ALERT_PSI, "psi_moderate": PSI_MODERATE, "psi_major": PSI_MAJOR,
                           "low_confidence": LOW_CONFIDENCE, "low_confidence_ratio": LOW_CONFIDENCE_RATIO,
                           "min_predictions": MIN_PREDICTIONS}}
