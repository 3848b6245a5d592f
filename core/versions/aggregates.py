"""Per-segment profile aggregates computed in one pass over chunks.

Count, sum, mean, standard deviation (ddof=1, as pandas), minimum and maximum of every
numeric column, per segment and overall: the ``aggregates`` artifact of a model version
(docs/model-versions.md). Chunks are merged with Chan et al.'s pairwise update of mean and
sum of squared deviations, so ten million rows agree with pandas on the whole frame to
about 1e-9 relative (no sum-of-squares cancellation). Missing values are skipped, as pandas does.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ProfileAggregator", "aggregate_frame", "numeric_columns", "AGGREGATES_SCHEMA",
           "calinski_harabasz_from_aggregates", "reorder_segments"]

AGGREGATES_SCHEMA = 1
_SKIP = ("ID",)  # an identifier, not a measure


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """The columns aggregated: every numeric (or boolean) column but the ID.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    list of str
    """
    return [str(c) for c in frame.columns if c not in _SKIP
            and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]


class ProfileAggregator:
    """Accumulate per-segment statistics chunk by chunk.

    Parameters
    ----------
    k : int
        Number of segments.
    columns : list of str, optional
        Columns to aggregate (default: :func:`numeric_columns` of the first chunk).
    """

    def __init__(self, k: int, columns: list[str] | None = None):
        self.k = int(k)
        self.columns = list(columns) if columns is not None else None
        self.rows = np.zeros(self.k, dtype=np.int64)

    def _init(self, d: int) -> None:
        shape = (self.k, d)
        self.count = np.zeros(shape, dtype=np.int64)
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)
        self.sum = np.zeros(shape)
        self.min = np.full(shape, np.inf)
        self.max = np.full(shape, -np.inf)

    def update(self, frame: pd.DataFrame, labels) -> None:
        """Add one chunk.

        Parameters
        ----------
        frame : pandas.DataFrame
        labels : array-like of int
            Segment of each row, 0 .. k-1.
        """
        if self.columns is None:
            self.columns = numeric_columns(frame)
        if not hasattr(self, "count"):
            self._init(len(self.columns))
        labels = np.asarray(labels, dtype=np.int64)
        self.rows += np.bincount(labels, minlength=self.k)
        if not len(frame):
            return
        X = frame[self.columns].to_numpy(dtype=np.float64, na_value=np.nan)
        for j in range(X.shape[1]):
            x = X[:, j]
            ok = ~np.isnan(x)
            lab, xv = (labels, x) if ok.all() else (labels[ok], x[ok])
            n_b = np.bincount(lab, minlength=self.k)
            if not n_b.any():
                continue
            s_b = np.bincount(lab, weights=xv, minlength=self.k)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_b = np.where(n_b > 0, s_b / np.maximum(n_b, 1), 0.0)
            m2_b = np.bincount(lab, weights=(xv - mean_b[lab]) ** 2, minlength=self.k)
            n_a = self.count[:, j]
            total = n_a + n_b
            delta = mean_b - self.mean[:, j]
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(total > 0, n_b / np.maximum(total, 1), 0.0)
            self.m2[:, j] += m2_b + delta ** 2 * n_a * frac
            self.mean[:, j] += delta * frac
            self.count[:, j] = total
            self.sum[:, j] += s_b
            present = n_b > 0
            if present.any():
                grouped = pd.Series(xv).groupby(lab)
                mins, maxs = grouped.min(), grouped.max()
                idx = mins.index.to_numpy()
                self.min[idx, j] = np.minimum(self.min[idx, j], mins.to_numpy())
                self.max[idx, j] = np.maximum(self.max[idx, j], maxs.to_numpy())

    def _block(self, count, mean, m2, total, low, high, rows) -> dict:
        def col(values, ok):
            return {c: (float(v) if o else None) for c, v, o in zip(self.columns, values, ok)}

        has = count > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.sqrt(np.where(count > 1, m2 / np.maximum(count - 1, 1), np.nan))
        return {"count": int(rows), "mean": col(mean, has), "std": col(std, count > 1), "min": col(low, has),
                "max": col(high, has), "sum": col(total, has), "non_missing": {
                    c: int(v) for c, v in zip(self.columns, count)}}

    def result(self) -> dict:
        """The aggregates as JSON-ready data (the ``aggregates`` artifact).

        Returns
        -------
        dict
            ``schema``, ``rows``, ``columns``, ``overall`` and ``segments`` (one entry per
            segment, in order), each with ``count`` (rows) and per column ``mean``, ``std``
            (ddof=1), ``min``, ``max``, ``sum`` and ``non_missing``; None where undefined.
        """
        if self.columns is None or not hasattr(self, "count"):
            self._init(len(self.columns or []))
            self.columns = self.columns or []
        # Overall: merge the segments with the same update.
        n_o = np.zeros(len(self.columns), dtype=np.int64)
        mean_o = np.zeros(len(self.columns))
        m2_o = np.zeros(len(self.columns))
        for s in range(self.k):
            n_b, mean_b, m2_b = self.count[s], self.mean[s], self.m2[s]
            total = n_o + n_b
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(total > 0, n_b / np.maximum(total, 1), 0.0)
            delta = mean_b - mean_o
            m2_o = m2_o + m2_b + delta ** 2 * n_o * frac
            mean_o = mean_o + delta * frac
            n_o = total
        overall = self._block(n_o, mean_o, m2_o, self.sum.sum(axis=0), self.min.min(axis=0) if self.k else [],
                              self.max.max(axis=0) if self.k else [], int(self.rows.sum()))
        segments = [{"segment": s, **self._block(self.count[s], self.mean[s], self.m2[s], self.sum[s], self.min[s],
                                                 self.max[s], int(self.rows[s]))} for s in range(self.k)]
        return {"schema": AGGREGATES_SCHEMA, "rows": int(self.rows.sum()), "columns": list(self.columns),
                "overall": overall, "segments": segments}


def aggregate_frame(frame: pd.DataFrame, labels, k: int, columns: list[str] | None = None) -> dict:
    """The aggregates of a frame held in memory (one chunk).

    Parameters
    ----------
    frame : pandas.DataFrame
    labels : array-like of int
    k : int
    columns : list of str, optional

    Returns
    -------
    dict
        As :meth:`ProfileAggregator.result`.
    """
    agg = ProfileAggregator(k, columns)
    agg.update(frame, labels)
    return agg.result()


def calinski_harabasz_from_aggregates(aggregates: dict, features: list[str], mean, scale) -> float:
    """Calinski-Harabasz index of the scaled features from the per-segment aggregates alone.

    Within-segment dispersion is the sum of each segment's (population) variances times its
    size, between-segment the size-weighted squared distance of its mean to the overall mean:
    the same figure :func:`core.fitting.selection.calinski_harabasz` computes from every row.

    Parameters
    ----------
    aggregates : dict
        :meth:`ProfileAggregator.result`.
    features : list of str
    mean, scale : ndarray
        The model's scaler.

    Returns
    -------
    float
        NaN below two non-empty segments.
    """
    mean, scale = np.asarray(mean, float), np.asarray(scale, float)
    segs = [s for s in aggregates["segments"] if s["count"] > 0]
    n, k = sum(s["count"] for s in segs), len(segs)
    if k < 2 or n <= k:
        return float("nan")
    means = np.array([[(s["mean"][f] - m) / sc for f, m, sc in zip(features, mean, scale)] for s in segs])
    var = np.array([[((s["std"][f] or 0.0) / sc) ** 2 * (s["count"] - 1) / s["count"] for f, sc in
                     zip(features, scale)] for s in segs])
    counts = np.array([s["count"] for s in segs], dtype=float)
    overall = (counts[:, None] * means).sum(axis=0) / n
    within = float((counts[:, None] * var).sum())
    between = float((counts * ((means - overall) ** 2).sum(axis=1)).sum())
    if within == 0:
        return 1.0
    return between * (n - k) / (within * (k - 1))


def reorder_segments(aggregates: dict, before, after) -> dict:
    """Follow a renumbering of the segments (e.g. to keep the active model's identity).

    Parameters
    ----------
    aggregates : dict
        Computed with the numbering whose centroids are ``before``.
    before, after : ndarray of shape (k, d)
        Centroids before and after the renumbering (the same rows, permuted).

    Returns
    -------
    dict
        A copy whose ``segments[i]`` describes the segment now numbered ``i``.
    """
    before, after = np.asarray(before), np.asarray(after)
    old_of_new = [int(np.argmin(((before - row) ** 2).sum(axis=1))) for row in after]
    out = dict(aggregates)
    out["segments"] = [{**aggregates["segments"][old], "segment": new} for new, old in enumerate(old_of_new)]
    return out
