"""A seeded sample of customers, stratified by segment, drawn in one pass over chunks.

Pages and metrics that need rows (explorer map, silhouette, stability, what-if neighbours)
use this sample when the whole table does not fit in memory. Every row gets a random key
from its position in the file and the seed (SplitMix64), and each segment keeps the rows
with the smallest keys, as many as its share of all customers (largest remainders). The
keys do not depend on how the file was chunked, so the chunked and the one-shot paths draw
the same customers, and a segment's sample is a uniform sample of its members.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_SAMPLE_SIZE", "row_keys", "quotas", "StratifiedSampler", "stratified_sample",
           "sample_to_arrays", "sample_from_arrays"]

DEFAULT_SAMPLE_SIZE = 50_000
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def row_keys(positions, seed: int) -> np.ndarray:
    """Uniform random keys in [0, 1) from row positions and a seed (SplitMix64; same inputs, same keys).

    Parameters
    ----------
    positions : array-like of int
        Rows' positions in the file.
    seed : int

    Returns
    -------
    ndarray of float64
    """
    with np.errstate(over="ignore"):
        z = np.asarray(positions, dtype=np.uint64) * _GOLDEN + np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(
            0xD1B54A32D192ED03)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def quotas(sizes, size: int) -> np.ndarray:
    """Rows to draw from each segment: proportional to its size, summing to ``min(size, total)``.

    Parameters
    ----------
    sizes : array-like of int
        Customers per segment.
    size : int
        Sample size wanted.

    Returns
    -------
    ndarray of int64
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if total <= size:
        return sizes.copy()
    exact = sizes * (size / total)
    out = np.floor(exact).astype(np.int64)
    rest = size - int(out.sum())
    # Largest remainders; ties go to the lower segment number.
    order = np.lexsort((np.arange(len(sizes)), -(exact - out)))
    out[order[:rest]] += 1
    return np.minimum(out, sizes)


class StratifiedSampler:
    """Keep a stratified random sample of the chunks it is given.

    Parameters
    ----------
    sizes : array-like of int
        Customers per segment in the whole table (known from the fit).
    size : int, default 50000
    seed : int, default 42
    """

    def __init__(self, sizes, size: int = DEFAULT_SAMPLE_SIZE, seed: int = 42):
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.size = int(size)
        self.seed = int(seed)
        self.quota = quotas(self.sizes, self.size)
        self._kept: pd.DataFrame | None = None
        self._keys = np.empty(0)
        self._labels = np.empty(0, dtype=np.int64)
        self.rows_seen = 0

    def update(self, frame: pd.DataFrame, labels, extra: dict | None = None) -> None:
        """Offer one chunk.

        Parameters
        ----------
        frame : pandas.DataFrame
            Prepared customers; the index is their position in the file.
        labels : array-like of int
            Their segments.
        extra : dict of str to array, optional
            More per-row values to keep (e.g. distance to the centroid).
        """
        labels = np.asarray(labels, dtype=np.int64)
        self.rows_seen += len(frame)
        keys = row_keys(frame.index.to_numpy(), self.seed)
        if self._kept is not None and len(self._keys):
            # Only rows that could beat the current worst key of their (full) segment.
            worst = np.full(len(self.sizes), np.inf)
            full = np.bincount(self._labels, minlength=len(self.sizes)) >= self.quota
            if full.any():
                order = np.lexsort((self._keys, self._labels))
                ends = np.cumsum(np.bincount(self._labels, minlength=len(self.sizes))) - 1
                for s in np.flatnonzero(full & (self.quota > 0)):
                    worst[s] = self._keys[order[ends[s]]]
                worst[self.quota == 0] = -np.inf
            mask = keys < worst[labels]
            frame, labels, keys = frame.loc[mask], labels[mask], keys[mask]
            extra = {k: np.asarray(v)[mask] for k, v in (extra or {}).items()}
        chunk = frame.copy()
        for name, values in (extra or {}).items():
            chunk[name] = np.asarray(values)
        if self._kept is None:
            kept, all_keys, all_labels = chunk, keys, labels
        else:
            kept = pd.concat([self._kept, chunk]) if len(chunk) else self._kept
            all_keys = np.concatenate([self._keys, keys])
            all_labels = np.concatenate([self._labels, labels])
        order = np.lexsort((all_keys, all_labels))
        starts = np.concatenate([[0], np.cumsum(np.bincount(all_labels, minlength=len(self.sizes)))[:-1]])
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order)) - starts[all_labels[order]]
        keep = rank < self.quota[all_labels]
        self._kept = kept.loc[keep] if not keep.all() else kept
        self._keys, self._labels = all_keys[keep], all_labels[keep]

    def result(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The sample in file order and its segments.

        Returns
        -------
        frame : pandas.DataFrame
            Index = position in the file.
        labels : ndarray of int
        """
        if self._kept is None:
            return pd.DataFrame(), np.empty(0, dtype=np.int64)
        order = np.argsort(self._kept.index.to_numpy(), kind="stable")
        return self._kept.iloc[order], self._labels[order]


def stratified_sample(frame: pd.DataFrame, labels, size: int = DEFAULT_SAMPLE_SIZE, seed: int = 42,
                      k: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The stratified sample of a frame held in memory (the same rows the chunked path draws).

    Parameters
    ----------
    frame : pandas.DataFrame
        Index = position in the file.
    labels : array-like of int
    size : int, default 50000
    seed : int, default 42
    k : int, optional
        Number of segments (default: largest label + 1).

    Returns
    -------
    frame : pandas.DataFrame
    labels : ndarray of int
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = k or (int(labels.max()) + 1 if len(labels) else 0)
    sampler = StratifiedSampler(np.bincount(labels, minlength=k), size, seed)
    sampler.update(frame, labels)
    return sampler.result()


def sample_to_arrays(frame: pd.DataFrame, labels, *, of_rows: int, seed: int, size: int) -> dict[str, np.ndarray]:
    """The ``sample`` artifact (docs/model-versions.md): one plain array per column, no objects.

    Parameters
    ----------
    frame : pandas.DataFrame
        The sample (index = position in the file).
    labels : array-like of int
    of_rows : int
        Customers in the whole table.
    seed, size : int
        As drawn.

    Returns
    -------
    dict of str to ndarray
        Numeric columns as float64, dates as ``yyyy-mm-dd`` text, other text as fixed-width
        unicode, plus ``segment``, ``row`` and ``params`` (JSON text).
    """
    out: dict[str, np.ndarray] = {}
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            out[str(column)] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        elif pd.api.types.is_datetime64_any_dtype(series):
            out[str(column)] = series.dt.strftime("%Y-%m-%d").fillna("").to_numpy(dtype=str)
        else:
            out[str(column)] = series.astype(object).where(series.notna(), "").astype(str).to_numpy(dtype=str)
    out["segment"] = np.asarray(labels, dtype=np.int64)
    out["row"] = frame.index.to_numpy(dtype=np.int64)
    out["params"] = np.array(json.dumps({"size": int(size), "drawn": int(len(frame)), "of_rows": int(of_rows),
                                         "seed": int(seed), "strata": "segment"}))
    return out


def sample_from_arrays(arrays) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Read a ``sample`` artifact back.

    Parameters
    ----------
    arrays : mapping of str to ndarray
        E.g. ``numpy.load(io.BytesIO(blob), allow_pickle=False)``.

    Returns
    -------
    frame : pandas.DataFrame
        Index = position in the file; ``Dt_Customer`` as dates when present.
    labels : ndarray of int
    params : dict
    """
    names = [n for n in arrays.keys() if n not in ("segment", "row", "params")]
    frame = pd.DataFrame({n: np.asarray(arrays[n]) for n in names},
                         index=pd.Index(np.asarray(arrays["row"]), name=None))
    if "Dt_Customer" in frame:
        frame["Dt_Customer"] = pd.to_datetime(frame["Dt_Customer"].replace("", None), format="%Y-%m-%d")
    return frame, np.asarray(arrays["segment"], dtype=np.int64), json.loads(str(np.asarray(arrays["params"])))
