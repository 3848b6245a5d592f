"""The analysis of a version: what every page shows about it, built in core (notebooks and the CLI use it too).

A version is shown on one :class:`Basis`: its data file (read the way it was trained, through its
``mapping`` artifact) or, when its table is larger than its stored sample, that sample with the
version's aggregates (:mod:`core.versions.sample_basis`). The basis has the one validity check for stored
views (:meth:`Basis.matches`). :func:`analysis_of` gives the :class:`Analysis` of any version::

    from core.insight.analysis import analysis_of
    from core.versions.registry import Registry
    a = analysis_of(Registry("models"), "v0003")
    a.sizes, a.zscores, a.frame.head()

The dashboard's services only cache and serve it (dashboard/services/analysis.py).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.fitting.model import SegmentationModel
from core.reading.prepared import Prepared, prepare, resolve_data_path
from core.versions.sample_basis import SampleBasis, sampled_customers
from core.versions.views import (
    analysis_parts, frame_from_json, matches_basis, matches_data, personas_from_json, projection_from_json,
    score_frame, segment_numbers,
)

__all__ = ["Analysis", "Basis", "basis_of", "analysis_of", "build_analysis", "analysis_from_views", "customers",
           "scaled", "profile_tables", "prepare_model_data"]


@dataclass
class Basis:
    """What a version is shown on: its data file, or its sample of a larger table and the aggregates.

    Parameters
    ----------
    version : str
    path : pathlib.Path or None
        The data file (None when the sample is the basis).
    shown : str or None
        The name the file is shown by (a kept upload's original name).
    sample : SampleBasis or None
    """

    version: str
    path: Path | None
    shown: str | None = None
    sample: SampleBasis | None = None

    @property
    def key(self) -> tuple:
        """Identifies the customers (file state, or the sample's draw), for caches."""
        if self.sample is not None:
            return ("sample", self.sample.rows, self.sample.of_rows, self.sample.seed)
        st = self.path.stat()
        return (str(self.path), st.st_mtime_ns, st.st_size)

    def matches(self, views: dict | None) -> bool:
        """The one check of stored views: computed on this basis as it is now."""
        return matches_basis(views, self.sample) if self.sample is not None else matches_data(views, self.path)

    def prepared(self, registry) -> Prepared:
        """The customers, as the version reads them."""
        if self.sample is not None:
            return self.sample.prepared
        return prepare_model_data(registry, self.version, self.path, self.shown)


def basis_of(registry, version: str, meta: dict | None = None, *, data_path=None, sample=None) -> Basis:
    """The basis a version is shown on.

    Parameters
    ----------
    registry : core.versions.registry.Registry
    version : str
    meta : dict, optional
    data_path : path-like, optional
        The configured data, used when the version's own file is gone (default :func:`resolve_data_path`).
    sample : SampleBasis or False, optional
        The version's sample already read (False: it has none); read when None.

    Returns
    -------
    Basis
    """
    meta = meta if meta is not None else registry.metadata(version)
    if sample is None:
        sample = sampled_customers(registry, version, meta)
    if sample:
        return Basis(version, None, sample=sample)
    trained_on = meta.get("data_path")
    path = Path(trained_on) if trained_on and Path(trained_on).exists() else resolve_data_path(data_path)
    # A kept upload's file name is made by the server; show the name the user knows it by.
    shown = meta.get("data_source") if trained_on and str(path) == trained_on else None
    return Basis(version, path, shown)


def analysis_of(registry, version: str | None = None, *, data_path=None) -> "Analysis":
    """The analysis of a version (default the active one), from its stored views when they still hold.

    Parameters
    ----------
    registry : core.versions.registry.Registry
    version : str, optional
    data_path : path-like, optional
        See :func:`basis_of`.

    Returns
    -------
    Analysis
    """
    version = version or registry.active_version()
    model, meta = registry.load(version)
    basis = basis_of(registry, version, meta, data_path=data_path)
    views = registry.artifact_json(version, "views")
    if basis.matches(views):
        projection = projection_from_json(views["views"]["analysis"]["projection"])
        return analysis_from_views(views, meta, lambda: customers(model, basis.prepared(registry).frame, projection))
    return build_analysis(model, meta, basis.prepared(registry), basis.sample)


class Analysis:
    """Everything the pages show about the active model on its data.

    The customers (``frame``) and their PCA coordinates (``coords``) may be loaded lazily: an
    analysis built from a version's stored views has every summary at once and reads the
    customers only when a page needs them (``loader`` returns ``(frame, coords)``).
    """

    _FIELDS = ("version", "fingerprint", "source", "k", "features", "meta", "sizes", "zscores", "stats",
               "product_mix", "channel_mix", "campaigns", "economics", "lift", "projection", "centroid_coords",
               "silhouette", "silhouette_rows", "scaler_mean", "scaler_scale", "personas")

    def __init__(self, *, frame: pd.DataFrame | None = None, coords: np.ndarray | None = None, loader=None,
                 load_info: dict | None = None, cleaning: dict | None = None, numbers: pd.DataFrame | None = None,
                 income_mean: float | None = None, response_mean: float | None = None,
                 n_customers: int | None = None, from_views: bool = False, basis: dict | None = None, **fields):
        missing = [name for name in self._FIELDS if name not in fields]
        if missing or set(fields) - set(self._FIELDS):
            raise TypeError(f"Analysis fields missing {missing} or unknown {sorted(set(fields) - set(self._FIELDS))}")
        if frame is None and loader is None:
            raise TypeError("Analysis needs its customers (frame) or a loader for them")
        self.__dict__.update(fields)
        self.load_info, self.cleaning = dict(load_info or {}), dict(cleaning or {})
        self.from_views = from_views
        # Set when ``frame`` is a stratified sample of a larger table (core.versions.sample_basis): rows, of_rows, seed.
        self.basis = dict(basis) if basis else None
        self._frame, self._coords, self._loader = frame, coords, loader
        self._numbers, self._income_mean, self._response_mean = numbers, income_mean, response_mean
        self._n_customers = n_customers
        self._lock = threading.Lock()

    def __getstate__(self):
        # Pickled into the shared result cache only when complete (built from the customers).
        state = {key: value for key, value in self.__dict__.items() if key not in ("_lock", "_loader")}
        state["_frame"], state["_coords"] = self.frame, self.coords
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._loader, self._lock = None, threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._frame is None:
                self._frame, self._coords = self._loader()

    @property
    def frame(self) -> pd.DataFrame:
        """The scored customers (read on first use when the analysis came from stored views)."""
        if self._frame is None:
            self._load()
        return self._frame

    @property
    def coords(self) -> np.ndarray:
        """Every customer's PCA coordinates (3 components)."""
        if self._coords is None:
            self._load()
        return self._coords

    @property
    def sampled(self) -> bool:
        """Whether ``frame`` is a sample of the version's customers (the counts still cover every customer)."""
        return self.basis is not None

    @property
    def frame_loaded(self) -> bool:
        """Whether the customers are in memory (False until a page needed them, for views-built analyses)."""
        return self._frame is not None

    @property
    def n_customers(self) -> int:
        """Number of customers."""
        return int(self._n_customers) if self._n_customers is not None else len(self.frame)

    @property
    def numbers(self) -> pd.DataFrame:
        """Per segment: customers, share, average spend and income, response rate, share of spend."""
        if self._numbers is None:
            self._numbers = segment_numbers(self.frame, self.k)
        return self._numbers

    @property
    def income_mean(self) -> float:
        """Average income of all customers."""
        if self._income_mean is None:
            self._income_mean = float(self.frame["Income"].mean())
        return self._income_mean

    @property
    def response_mean(self) -> float:
        """Share of all customers who accepted the last campaign (NaN without a Response column)."""
        if self._response_mean is None:
            self._response_mean = float(self.frame["Response"].mean()) if "Response" in self.frame else math.nan
        return self._response_mean

    @property
    def labels(self) -> np.ndarray:
        """Segment of every customer."""
        return self.frame["segment"].to_numpy()


def profile_tables(analysis: Analysis, names: list[str]) -> pd.DataFrame:
    """Sizes, means/medians, z-scores, product and channel mix, campaign rates and economics in one frame.

    Rows are (table, measure); columns are the segments ("i · name"), so the file reads like the page.
    """
    k = analysis.k
    parts = [("size", analysis.sizes)]
    stats = analysis.stats
    for stat in ("mean", "median"):
        cols = [c for c in stats.columns if c[1] == stat]
        parts.append((stat, stats[cols].set_axis([c[0] for c in cols], axis=1)))
    parts += [("z-score", analysis.zscores), ("product mix (share of spend)", analysis.product_mix),
              ("channel mix (share of purchases)", analysis.channel_mix)]
    camp = analysis.campaigns
    if len(camp):
        wide = {f"{c} {m}": camp[camp["campaign"] == c].set_index("segment")[col]
                for c in camp["campaign"].unique()
                for m, col in (("rate", "rate"), ("95% low", "low"), ("95% high", "high"))}
        parts.append(("campaign acceptance", pd.DataFrame(wide)))
    parts.append(("campaign economics (like the last campaign)", analysis.economics))
    rows = []
    for table, frame in parts:
        frame = frame.reindex(range(k))
        for measure in frame.columns:
            rows.append({"table": table, "measure": str(measure),
                         **{f"{i} · {names[i]}": frame.loc[i, measure] for i in range(k)}})
    out = pd.DataFrame(rows)
    value_cols = out.columns[2:]
    out[value_cols] = out[value_cols].astype(float).round(6)
    return out


def customers(model: SegmentationModel, frame: pd.DataFrame, projection) -> tuple[pd.DataFrame, np.ndarray]:
    """The scored customers of a views-built analysis and their coordinates on its stored PCA."""
    frame = score_frame(model, frame) if "segment" not in frame else frame
    return frame, projection.transform(model.transform(frame))


def scaled(analysis: Analysis) -> np.ndarray:
    """The analysis' customers in the model's scaled feature space."""
    X = analysis.frame[analysis.features].to_numpy(dtype=float)
    return (X - analysis.scaler_mean) / analysis.scaler_scale


def build_analysis(model: SegmentationModel, meta: dict, prepared: Prepared, basis=None) -> Analysis:
    """Score the data with the model and compute every profile, the PCA and the silhouettes.

    With ``basis`` (core.versions.sample_basis.SampleBasis: ``prepared`` is the version's sample of a larger
    table) the customer count, sizes and per-segment numbers cover every customer (its aggregates).
    """
    frame = score_frame(model, prepared.frame)
    parts = analysis_parts(model, frame)
    counts = {}
    if basis is not None:
        whole = basis.whole_table(model.k)
        parts["sizes"] = whole.pop("sizes")
        counts = dict(whole, basis=basis.to_dict(), n_customers=basis.of_rows)
    return Analysis(
        version=meta["version"], fingerprint=prepared.fingerprint, source=prepared.source, k=model.k,
        features=list(model.features), frame=frame, meta=meta,
        scaler_mean=model.mean_.copy(), scaler_scale=model.scale_.copy(),
        load_info=prepared.info.to_dict(), cleaning=prepared.report.to_dict(), **parts, **counts,
    )


def analysis_from_views(views: dict, meta: dict, loader) -> Analysis:
    """The analysis of a version from its stored views; the customers are read by ``loader`` when a page needs them."""
    a = views["views"]["analysis"]
    overview = views["views"]["overview"]
    return Analysis(
        version=meta["version"], fingerprint=a["data"]["fingerprint"], source=a["data"]["source"], k=int(a["k"]),
        features=list(a["features"]), meta=meta, loader=loader, from_views=True,
        **{name: frame_from_json(a[name]) for name in
           ("sizes", "zscores", "stats", "product_mix", "channel_mix", "campaigns", "economics", "lift")},
        projection=projection_from_json(a["projection"]),
        centroid_coords=np.asarray(a["centroid_coords"], dtype=float),
        silhouette=np.asarray(a["silhouette"], dtype=float), silhouette_rows=np.asarray(a["silhouette_rows"], dtype=np.int64),
        scaler_mean=np.asarray(a["scaler_mean"], dtype=float), scaler_scale=np.asarray(a["scaler_scale"], dtype=float),
        personas=personas_from_json(a["personas"]), load_info=a["load_info"], cleaning=a["cleaning"],
        numbers=frame_from_json(overview["numbers"]), n_customers=int(a["n_customers"]), basis=a.get("basis"),
        income_mean=math.nan if overview["income_mean"] is None else float(overview["income_mean"]),
        response_mean=math.nan if overview["response_mean"] is None else float(overview["response_mean"]),
    )


def prepare_model_data(registry, version: str, path, name: str | None = None) -> Prepared:
    """A version's customers read the way it was trained: through its ``mapping`` artifact when it has one.

    A version trained on a customer table or a transaction log keeps how the file's columns became
    its features (and which are clustered on a log scale); without that artifact, or for the canonical
    file, this is core.versions.pipeline.prepare.
    """
    from core.reading.mapping import Mapping, prepare_input
    from core.versions.registry import RegistryError

    try:
        saved = registry.artifact_json(version, "mapping")
    except (RegistryError, KeyError, ValueError):
        saved = None
    if not saved or saved.get("input") in (None, "canonical"):
        return prepare(path, name=name)
    mapping = Mapping.from_dict(saved, where=f"{version} mapping")
    features, ranges = mapping.features, mapping.ranges
    prepared, used = prepare_input(path, name=name, mapping=mapping)
    used.features, used.ranges = features, ranges
    return prepared
