"""What the pages stand on when a version's table is larger than its stored sample.

A version trained on more customers than its ``sample`` artifact holds (5M customers, a 50,000-row
stratified sample; docs/model-versions.md) is shown from that sample and its ``aggregates``: nothing
that serves pages reads the training file again. Counts, shares and averages per segment come from
the aggregates (exact, over every customer); whatever needs rows (profiles' medians, the PCA map,
silhouettes, rules, stability, what-if neighbours) comes from the sample, and the pages say so.

A version whose sample holds every customer (up to 50,000 by default) keeps being shown from its
data file, as before: nothing is lost by reading it.

The sampled rows are read when a page first needs them: a page served from the version's stored
views (the Overview: core/versions/views.py) needs only the sample's parameters and the aggregates,
so the first visit after an activation does not wait for the rows (issue 29).
"""
from __future__ import annotations

import io
import json
import math
import threading
from dataclasses import fields

import numpy as np
import pandas as pd

from core.reading.cleaning import CleaningReport
from core.reading.loading import LoadInfo
from core.reading.prepared import Prepared
from core.reading.sampling import sample_from_arrays
from core.versions.registry import RegistryError

__all__ = ["SampleBasis", "sample_params", "sampled_customers", "numbers_from_aggregates", "overall_mean",
           "sizes_from_aggregates"]


class SampleBasis:
    """A version's stratified sample, standing for a table larger than it.

    The sampled rows are read when first asked for (:attr:`prepared`, :attr:`labels`): what
    identifies the basis (``rows``, ``of_rows``, ``seed``) and the aggregates are known without
    them, so a page served from the version's stored views (the Overview) never reads them.

    Parameters
    ----------
    aggregates : dict
        The version's ``aggregates`` artifact (every customer).
    rows : int
        Customers in the sample.
    of_rows : int
        Customers in the table.
    seed : int
        Seed the sample was drawn with.
    prepared : core.versions.pipeline.Prepared, optional
        The sampled customers as prepared rows (index = position in the file); load information,
        cleaning report, fingerprint and source are the whole file's (from the version's metadata).
    labels : ndarray of int, optional
        Each sampled customer's segment, as assigned when the sample was drawn.
    read : callable, optional
        Returns ``(prepared, labels)`` when they were not given; called once.
    """

    def __init__(self, *, aggregates: dict, rows: int, of_rows: int, seed: int, prepared: Prepared | None = None,
                 labels: np.ndarray | None = None, read=None):
        if (prepared is None or labels is None) and read is None:
            raise TypeError("a SampleBasis needs its prepared rows and labels, or a way to read them")
        self.aggregates, self.rows, self.of_rows, self.seed = aggregates, int(rows), int(of_rows), int(seed)
        self._rows = (prepared, labels) if prepared is not None and labels is not None else None
        self._read = read
        self._lock = threading.Lock()  # threads of a server share one basis: the rows are read once

    def _read_rows(self) -> tuple[Prepared, np.ndarray]:
        if self._rows is None:
            with self._lock:
                if self._rows is None:
                    self._rows = self._read()
        return self._rows

    @property
    def prepared(self) -> Prepared:
        """The sampled customers (read on first use)."""
        return self._read_rows()[0]

    @property
    def labels(self) -> np.ndarray:
        """Each sampled customer's segment as assigned when the sample was drawn (read on first use)."""
        return self._read_rows()[1]

    @property
    def rows_read(self) -> bool:
        """Whether the sampled rows are in memory."""
        return self._rows is not None

    def to_dict(self) -> dict:
        """What the pages record about the basis (JSON): ``kind``, ``rows``, ``of_rows``, ``seed``, ``strata``."""
        return {"kind": "sample", "rows": int(self.rows), "of_rows": int(self.of_rows), "seed": int(self.seed),
                "strata": "segment"}

    def whole_table(self, k: int) -> dict:
        """What the aggregates give over every customer, in place of the sample's figures.

        Parameters
        ----------
        k : int

        Returns
        -------
        dict
            ``sizes`` (:func:`sizes_from_aggregates`), ``numbers`` (:func:`numbers_from_aggregates`),
            ``income_mean`` and ``response_mean`` (NaN when the column is not aggregated).
        """
        agg = self.aggregates
        return {"sizes": sizes_from_aggregates(agg, k), "numbers": numbers_from_aggregates(agg, k),
                "income_mean": overall_mean(agg, "Income"), "response_mean": overall_mean(agg, "Response")}


def sample_params(blob: bytes) -> dict:
    """The parameters of a ``sample`` artifact without building its frame.

    Parameters
    ----------
    blob : bytes
        The artifact's bytes (``.npz``).

    Returns
    -------
    dict
        ``size``, ``drawn``, ``of_rows``, ``seed``, ``strata``.
    """
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        return json.loads(str(np.asarray(arrays["params"])))


def sampled_customers(registry, version: str, meta: dict | None = None) -> SampleBasis | None:
    """A version's sample as the pages' basis, when its table is larger than the sample.

    Parameters
    ----------
    registry : core.versions.registry.Registry
    version : str
    meta : dict, optional
        The version's metadata (default: read from the registry).

    Returns
    -------
    SampleBasis or None
        None when the version has no sample or aggregates artifact, or its sample holds every
        customer (then the data file is the basis).

    Raises
    ------
    core.versions.registry.RegistryError
        An artifact cannot be read or fails its checksum.
    """
    blob = registry.artifact(version, "sample")
    if blob is None:
        return None
    params = sample_params(blob)
    if int(params["drawn"]) >= int(params["of_rows"]):
        return None
    aggregates = registry.artifact_json(version, "aggregates")
    if not aggregates:
        return None
    meta = meta if meta is not None else registry.metadata(version)
    known = {f.name for f in fields(LoadInfo)}  # metadata written by another engine may say more
    load = {key: value for key, value in (meta.get("load") or {}).items() if key in known}
    load.setdefault("source", meta.get("data_source") or version)
    info, report = LoadInfo(**load), CleaningReport.from_dict(meta["cleaning"])

    def read() -> tuple[Prepared, np.ndarray]:
        # The checksummed bytes read above: the rows are those the parameters describe.
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
                frame, labels, _ = sample_from_arrays(arrays)
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise RegistryError(f"model {version}: its sample cannot be read ({exc})") from None
        return Prepared(frame=frame, info=info, report=report, fingerprint=str(meta.get("data_fingerprint") or ""),
                        source=str(meta.get("data_source") or load.get("source") or version)), labels
    return SampleBasis(aggregates=aggregates, rows=int(params["drawn"]), of_rows=int(params["of_rows"]),
                       seed=int(params["seed"]), read=read)


def _segment_values(aggregates: dict, stat: str, column: str | None, k: int) -> pd.Series:
    values = [math.nan] * k
    if column is not None:
        for block in aggregates["segments"][:k]:
            value = (block.get(stat) or {}).get(column)
            values[int(block["segment"])] = math.nan if value is None else float(value)
    return pd.Series(values, index=range(k), dtype=float)


def sizes_from_aggregates(aggregates: dict, k: int) -> pd.DataFrame:
    """Size and share of each segment over every customer (as :func:`core.insight.profiles.sizes`).

    Parameters
    ----------
    aggregates : dict
    k : int

    Returns
    -------
    pandas.DataFrame
        Index ``segment``; columns ``n`` and ``share``.
    """
    counts = np.zeros(k, dtype=np.int64)
    for block in aggregates["segments"][:k]:
        counts[int(block["segment"])] = int(block["count"])
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"n": counts, "share": counts / total}, index=pd.RangeIndex(k, name="segment"))


def overall_mean(aggregates: dict, column: str) -> float:
    """The mean of a column over every customer (NaN when the column is not aggregated).

    Parameters
    ----------
    aggregates : dict
    column : str

    Returns
    -------
    float
    """
    value = (aggregates.get("overall", {}).get("mean") or {}).get(column)
    return math.nan if value is None else float(value)


def numbers_from_aggregates(aggregates: dict, k: int) -> pd.DataFrame:
    """Per segment over every customer: the table :func:`core.versions.views.segment_numbers` computes from rows.

    Parameters
    ----------
    aggregates : dict
        A version's ``aggregates`` artifact.
    k : int

    Returns
    -------
    pandas.DataFrame
        Indexed by segment 0..k-1: ``customers``, ``share``, ``avg_spend``, ``avg_income``,
        ``response_rate`` (NaN without a Response column), ``spend_share``.
    """
    columns = set(aggregates.get("columns") or [])
    money = next((c for c in ("Total_Spending", "Monetary") if c in columns), None)
    size = sizes_from_aggregates(aggregates, k)
    spend = _segment_values(aggregates, "sum", money, k).fillna(0.0) if money else pd.Series(0.0, index=range(k))
    out = pd.DataFrame({
        "customers": size["n"].to_numpy().astype(int),
        "share": size["share"].to_numpy(),
        "avg_spend": _segment_values(aggregates, "mean", money, k).to_numpy(),
        "avg_income": _segment_values(aggregates, "mean", "Income" if "Income" in columns else None, k).to_numpy(),
        "response_rate": _segment_values(aggregates, "mean", "Response" if "Response" in columns else None,
                                         k).to_numpy(),
        "spend_share": (spend / spend.sum()).to_numpy() if spend.sum() > 0 else np.zeros(k),
    }, index=pd.RangeIndex(k))
    out.index.name = "segment"
    return out
