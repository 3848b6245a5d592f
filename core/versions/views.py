"""Precomputed views: what the dashboard's pages show for a model version, computed once and stored.

The training job (from :data:`TRAINING_MIN_ROWS` customers on) or, for a version that lacks them,
a warm-up when the server starts computes the analysis of the model on its data, the overview's
numbers, the default bootstrap and enrolment-time stability and (on small data) the default k
sweep, and stores them with the version as its ``views`` artifact
(:meth:`core.versions.registry.Registry.put_artifact`). The dashboard serves a page's first request from
them, so no visitor waits for a cold computation. See docs/model-versions.md.

Everything here is plain JSON (no pickle): DataFrames as ``{"columns", "index", "data", "dtypes"}``,
arrays as lists, NaN as ``null``; floats round-trip exactly. The views are valid for the data
file they were computed on: ``views["analysis"]["data"]`` records its path, size, modification
time and fingerprint, and a reader checks them before using the views.

Names (``views["views"]``):

``analysis``
    Profiles, z-scores, mixes, campaign rates, economics, product lift, personas, the PCA
    projection and centroids, the (sampled) silhouettes, scaler, cleaning and load summary.
``overview``
    Per segment: customers, share, average spend and income, last-campaign response rate,
    share of spend; and the overall average income and response rate.
``stability``
    Bootstrap stability (:data:`DEFAULT_RESAMPLES` resamples, the model's seed and starts) and
    enrolment-time stability (:data:`DEFAULT_WINDOW`), both lossless.
``sweep``
    The default k sweep (:data:`SWEEP_RANGE`) with its stability criterion; only up to
    :data:`SWEEP_MAX_ROWS` customers (larger data is swept by a background job on request).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from core.insight import profiles
from core.fitting.model import SegmentationModel
from core.fitting.projection import Projection, pca
from core.fitting.selection import KResult, SweepResult, silhouette_samples, sweep
from core.fitting.stability import BootstrapResult, Snapshot, TemporalResult, bootstrap_stability, temporal_stability

__all__ = [
    "SCHEMA", "DEFAULT_RESAMPLES", "DEFAULT_WINDOW", "SWEEP_RANGE", "SWEEP_STABILITY_RESAMPLES", "SWEEP_MAX_ROWS",
    "TRAINING_MIN_ROWS", "score_frame", "with_enrolment", "analysis_parts", "segment_numbers", "data_state", "compute_views", "views_bytes",
    "store_views", "views_after_save", "frame_to_json", "frame_from_json", "projection_from_json", "personas_from_json",
    "bootstrap_from_json", "temporal_from_json", "sweep_from_json", "matches_data", "matches_basis",
]

SCHEMA = 1
DEFAULT_RESAMPLES = 30  # the /stability page's default
DEFAULT_WINDOW = "quarter"
SWEEP_RANGE = (2, 10)  # the /diagnostics page's default
SWEEP_STABILITY_RESAMPLES = 10
SWEEP_MAX_ROWS = 5_000  # beyond this the diagnostics page sweeps in a background job, not while it is built
# A training job stores views from this many customers on: below it they cost a second or two and the
# server's start-up warm-up computes them (training on small files, tests included, stays fast).
TRAINING_MIN_ROWS = 5_000


# ---------------------------------------------------------------------------- computation
def score_frame(model: SegmentationModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The customers with their segment, confidence and typicality under the model.

    Parameters
    ----------
    model : SegmentationModel
    frame : pandas.DataFrame
        Prepared customers (features engineered).

    Returns
    -------
    pandas.DataFrame
        ``frame`` with ``segment``, ``confidence`` and ``typicality`` added.
    """
    scores = model.score(frame)
    return frame.assign(segment=scores["segment"].to_numpy(), confidence=scores["confidence"].to_numpy(),
                        typicality=scores["typicality"].to_numpy())


def spend_column(frame: pd.DataFrame) -> str | None:
    """The column that holds what a customer spent: ``Total_Spending`` (customer files), else
    ``Monetary`` (customers derived from a transaction log); None when there is neither."""
    return next((c for c in ("Total_Spending", "Monetary") if c in frame), None)


def with_enrolment(frame: pd.DataFrame) -> pd.DataFrame:
    """The customers with an enrolment date: a transaction log's customers enrol at their first purchase.

    Parameters
    ----------
    frame : pandas.DataFrame
        Customers; ``Dt_Customer`` is added from ``First_purchase`` when only that exists.

    Returns
    -------
    pandas.DataFrame
        ``frame`` itself when it has ``Dt_Customer`` or no ``First_purchase``.
    """
    if "Dt_Customer" in frame or "First_purchase" not in frame:
        return frame
    return frame.assign(Dt_Customer=pd.to_datetime(frame["First_purchase"], errors="coerce"))


def segment_numbers(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per segment: customers, share, average spend and income, response rate and share of spend.

    Parameters
    ----------
    frame : pandas.DataFrame
        Scored customers (with ``segment``, ``Total_Spending``, ``Income`` and optionally ``Response``).
    k : int

    Returns
    -------
    pandas.DataFrame
        Indexed by segment 0..k-1; ``response_rate`` is NaN when the file has no Response column.
    """
    groups = frame.groupby("segment")
    counts = groups.size().reindex(range(k), fill_value=0)

    def mean_of(column: str) -> pd.Series:
        # Data of another layout (a transaction log's customers, a CRM table) may lack the column.
        return groups[column].mean().reindex(range(k)) if column in frame else pd.Series(math.nan, index=range(k))

    money = spend_column(frame)
    spend = (groups[money].sum().reindex(range(k), fill_value=0.0) if money
             else pd.Series(0.0, index=range(k)))
    out = pd.DataFrame({
        "customers": counts.astype(int),
        "share": counts / max(int(counts.sum()), 1),
        "avg_spend": mean_of(money) if money else pd.Series(math.nan, index=range(k)),
        "avg_income": mean_of("Income"),
        "response_rate": mean_of("Response"),
        "spend_share": spend / spend.sum() if spend.sum() > 0 else spend * 0.0,
    })
    out.index.name = "segment"
    return out


def analysis_parts(model: SegmentationModel, frame: pd.DataFrame) -> dict:
    """Every profile, the PCA and the silhouettes of a model on its scored customers.

    Parameters
    ----------
    model : SegmentationModel
    frame : pandas.DataFrame
        Scored customers (:func:`score_frame`).

    Returns
    -------
    dict
        ``sizes``, ``zscores``, ``stats``, ``product_mix``, ``channel_mix``, ``campaigns``,
        ``economics``, ``lift`` (DataFrames), ``projection``, ``coords``, ``centroid_coords``,
        ``silhouette``, ``silhouette_rows``, ``personas``.
    """
    labels = frame["segment"].to_numpy()
    k = model.k
    Z = model.transform(frame)
    projection = pca(Z, 3, features=model.features, seed=model.seed)
    sil, rows = silhouette_samples(Z, labels, seed=model.seed)
    return {
        "sizes": profiles.sizes(labels, k),
        "zscores": profiles.zscores(frame, labels).reindex(range(k)).fillna(0.0),
        "stats": profiles.summary_stats(frame, labels, profiles.PROFILE_COLUMNS),
        "product_mix": profiles.product_mix(frame, labels).reindex(range(k)).fillna(0.0),
        "channel_mix": profiles.channel_mix(frame, labels).reindex(range(k)).fillna(0.0),
        "campaigns": profiles.campaign_rates(frame, labels),
        "economics": profiles.economics(frame, labels).reindex(range(k)),
        "lift": profiles.product_lift(frame, labels).reindex(range(k)).fillna(0.0),
        "projection": projection, "coords": projection.transform(Z),
        "centroid_coords": projection.transform(model.centroids_),
        "silhouette": sil, "silhouette_rows": rows,
        "personas": profiles.personas(frame, labels, k),
    }


def data_state(path) -> dict | None:
    """Where a data file is and its size and modification time (None for bytes or a missing file).

    Parameters
    ----------
    path : path-like or None

    Returns
    -------
    dict or None
        ``{"path", "size", "mtime_ns"}``.
    """
    if path is None or isinstance(path, (bytes, bytearray)):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"path": str(Path(path).resolve()), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def matches_basis(views: dict | None, basis) -> bool:
    """Whether stored views were computed on a version's sample (:class:`core.versions.sample_basis.SampleBasis`).

    Parameters
    ----------
    views : dict or None
        The parsed ``views`` artifact.
    basis : core.versions.sample_basis.SampleBasis

    Returns
    -------
    bool
    """
    if not views or views.get("schema") != SCHEMA:
        return False
    return ((views.get("views") or {}).get("analysis") or {}).get("basis") == basis.to_dict()


def matches_data(views: dict | None, path) -> bool:
    """Whether stored views were computed on the data file at ``path`` as it is now.

    Parameters
    ----------
    views : dict or None
        The parsed ``views`` artifact.
    path : path-like

    Returns
    -------
    bool
    """
    if not views or views.get("schema") != SCHEMA:
        return False
    stored = ((views.get("views") or {}).get("analysis") or {}).get("data") or {}
    now = data_state(path)
    return bool(now) and all(stored.get(key) == now[key] for key in ("path", "size", "mtime_ns"))


def compute_views(model: SegmentationModel, prepared, *, version: str, data_path=None, meta: dict | None = None,
                  resamples: int = DEFAULT_RESAMPLES, window: str = DEFAULT_WINDOW, frame: pd.DataFrame | None = None,
                  progress=None, basis=None) -> dict:
    """Compute every view of a version on its data.

    Parameters
    ----------
    model : SegmentationModel
    prepared : core.versions.pipeline.Prepared
        The data the dashboard shows the model on.
    version : str
    data_path : path-like, optional
        The file ``prepared`` was read from; without it (bytes) the views match no file.
    meta : dict, optional
        The version's metadata (``seed``, ``n_init`` of the stability refits; default the model's).
    resamples : int, default 30
    window : {"quarter", "month"}, default "quarter"
    frame : pandas.DataFrame, optional
        ``prepared.frame`` already scored (:func:`score_frame`), to avoid scoring twice.
    progress : callable, optional
        Called with the name of each part.
    basis : core.versions.sample_basis.SampleBasis, optional
        When ``prepared`` is a version's sample standing for a larger table: the customer count,
        segment sizes and the overview's numbers come from its aggregates (every customer), the
        rest from the sample; ``views["analysis"]["basis"]`` records it.

    Returns
    -------
    dict
        ``{"schema", "version", "computed", "views": {name: ...}}`` (JSON-serialisable).
    """
    step = progress or (lambda _name: None)
    meta = meta or {}
    seed = int(meta.get("seed", model.seed))
    n_init = int(meta.get("n_init", model.n_init))
    step("analysis")
    frame = score_frame(model, prepared.frame) if frame is None else frame
    parts = analysis_parts(model, frame)
    labels = frame["segment"].to_numpy()
    state = data_state(data_path)
    analysis = {
        "data": {**(state or {}), "fingerprint": prepared.fingerprint, "source": prepared.source},
        "k": int(model.k), "features": list(model.features), "n_customers": int(len(frame)),
        "scaler_mean": _floats(model.mean_), "scaler_scale": _floats(model.scale_),
        "load_info": prepared.info.to_dict(), "cleaning": prepared.report.to_dict(),
        **{name: frame_to_json(parts[name]) for name in
           ("sizes", "zscores", "stats", "product_mix", "channel_mix", "campaigns", "economics", "lift")},
        "projection": {"mean": _floats(parts["projection"].mean), "components": _floats(parts["projection"].components),
                       "explained_variance": _floats(parts["projection"].explained_variance),
                       "explained_variance_ratio": _floats(parts["projection"].explained_variance_ratio),
                       "features": list(parts["projection"].features)},
        "centroid_coords": _floats(parts["centroid_coords"]),
        "silhouette": _floats(parts["silhouette"]), "silhouette_rows": np.asarray(parts["silhouette_rows"]).tolist(),
        "silhouette_labels": labels[parts["silhouette_rows"]].tolist(),
        "personas": [asdict(p) for p in parts["personas"]],
    }
    overview = {"numbers": frame_to_json(segment_numbers(frame, model.k)),
                "income_mean": _float(frame["Income"].mean()) if "Income" in frame else None,
                "response_mean": _float(frame["Response"].mean()) if "Response" in frame else None}
    if basis is not None:  # counts and averages over every customer, not the sample's
        whole = basis.whole_table(model.k)
        analysis.update(basis=basis.to_dict(), n_customers=int(basis.of_rows), sizes=frame_to_json(whole["sizes"]))
        overview = {"numbers": frame_to_json(whole["numbers"]), "income_mean": _float(whole["income_mean"]),
                    "response_mean": _float(whole["response_mean"])}
    views = {"analysis": analysis, "overview": overview}
    step("rules")
    from core.insight.explanation import explain_model  # a threshold rule per segment (persona cards, Profiles)

    views["rules"] = _clean(explain_model(model, frame, labels).to_dict())
    step("stability")
    Z = model.transform(frame)
    if model.k < len(frame):
        boot = bootstrap_stability(Z, labels, resamples=resamples, seed=seed, n_init=n_init)
        try:
            temporal = temporal_stability(with_enrolment(frame), model, window=window)
        except (KeyError, ValueError):  # e.g. no enrolment date: the page says so, the bootstrap still shows
            temporal = None
        views["stability"] = {"resamples": resamples, "window": window, "seed": seed, "n_init": n_init,
                              "bootstrap": _bootstrap_json(boot),
                              "temporal": _temporal_json(temporal) if temporal is not None else None}
    lo, hi = SWEEP_RANGE[0], min(SWEEP_RANGE[1], len(frame) - 1)
    if len(frame) <= SWEEP_MAX_ROWS and hi >= lo:
        step("sweep")
        result = sweep(Z, lo, hi, seed=seed, current_k=model.k, stability_resamples=SWEEP_STABILITY_RESAMPLES)
        views["sweep"] = {"k_min": lo, "k_max": hi, "stability_resamples": SWEEP_STABILITY_RESAMPLES,
                          "result": _clean(result.to_dict())}
    return {"schema": SCHEMA, "version": version,
            "computed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "views": views}


def views_bytes(views: dict) -> bytes:
    """Encode views as strict JSON (NaN already ``null``).

    Parameters
    ----------
    views : dict

    Returns
    -------
    bytes
    """
    return json.dumps(views, allow_nan=False, separators=(",", ":")).encode()


def store_views(registry, version: str, model: SegmentationModel, prepared, *, data_path=None, meta=None,
                frame: pd.DataFrame | None = None, basis=None) -> dict:
    """Compute a version's views and store them as its ``views`` artifact.

    Parameters
    ----------
    registry : core.versions.registry.Registry
    version : str
    model : SegmentationModel
    prepared : core.versions.pipeline.Prepared
    data_path : path-like, optional
        The file ``prepared`` was read from.
    meta : dict, optional
        The version's metadata (default: read from the registry).
    frame : pandas.DataFrame, optional
        ``prepared.frame`` already scored.
    basis : core.versions.sample_basis.SampleBasis, optional
        See :func:`compute_views`.

    Returns
    -------
    dict
        The views stored.
    """
    meta = meta if meta is not None else registry.metadata(version)
    views = compute_views(model, prepared, version=version, data_path=data_path, meta=meta, frame=frame,
                          basis=basis)
    registry.put_artifact(version, "views", views_bytes(views))
    return views


def views_after_save(registry, version: str, model: SegmentationModel, prepared, *, data_path=None,
                     meta: dict | None = None) -> bool:
    """Store a just-saved version's views (from :data:`TRAINING_MIN_ROWS` customers on); never fails training.

    The dashboard then computes what it needs when the server starts (a warm-up) or on request.

    Parameters
    ----------
    registry : core.versions.registry.Registry
    version : str
    model : SegmentationModel
    prepared : core.versions.pipeline.Prepared
    data_path : path-like, optional
    meta : dict, optional

    Returns
    -------
    bool
        Whether the views were stored (False below :data:`TRAINING_MIN_ROWS` customers).
    """
    from core.versions.registry import RegistryError
    from core.versions.sample_basis import sampled_customers

    if len(prepared.frame) < TRAINING_MIN_ROWS and prepared.report.rows_used < TRAINING_MIN_ROWS:
        return False
    try:
        # A table larger than the version's sample is shown from the sample (and its aggregates).
        basis = sampled_customers(registry, version, meta)
        if basis is not None:
            prepared, data_path = basis.prepared, None
        store_views(registry, version, model, prepared, data_path=data_path, meta=meta, basis=basis)
    except (KeyError, ValueError, TypeError, RegistryError) as exc:  # data the pages cannot profile (e.g. other columns)
        import sys

        print(f"views of {version} not computed: {exc}", file=sys.stderr)
        return False
    return True


# ---------------------------------------------------------------------------- decoding
def frame_to_json(frame: pd.DataFrame) -> dict:
    """A DataFrame as plain JSON: columns (tuples as lists), index, rows, dtypes; NaN as null.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    dict
    """
    multi = isinstance(frame.columns, pd.MultiIndex)
    return {
        "columns": [list(c) if multi else c for c in frame.columns.tolist()],
        "multi": multi, "column_names": list(frame.columns.names),
        "index": [_plain(v) for v in frame.index.tolist()], "index_name": frame.index.name,
        "index_dtype": str(frame.index.dtype),
        "dtypes": [str(t) for t in frame.dtypes],
        "data": [[_plain(v) for v in row] for row in frame.itertuples(index=False, name=None)],
    }


def frame_from_json(data: dict) -> pd.DataFrame:
    """The DataFrame of :func:`frame_to_json` (same columns, index, dtypes and values).

    Parameters
    ----------
    data : dict

    Returns
    -------
    pandas.DataFrame
    """
    columns = (pd.MultiIndex.from_tuples([tuple(c) for c in data["columns"]], names=data.get("column_names"))
               if data.get("multi") else pd.Index(data["columns"], name=(data.get("column_names") or [None])[0]))
    index = pd.Index(data["index"], name=data.get("index_name"))
    if data.get("index_dtype") and len(index):
        index = index.astype(data["index_dtype"])
    frame = pd.DataFrame(data["data"] or None, index=index, columns=columns)
    if not len(frame.columns) == len(columns):  # an empty frame keeps its columns
        frame = pd.DataFrame(index=index, columns=columns)
    for position, dtype in enumerate(data["dtypes"]):
        column = frame.iloc[:, position]
        if dtype == "object":
            continue
        frame.isetitem(position, column.astype(float if column.isna().any() and "int" in dtype else dtype))
    return frame


def projection_from_json(data: dict) -> Projection:
    """The :class:`~core.fitting.projection.Projection` stored in the ``analysis`` view.

    Parameters
    ----------
    data : dict

    Returns
    -------
    Projection
    """
    return Projection(mean=np.asarray(data["mean"], dtype=float), components=np.asarray(data["components"], dtype=float),
                      explained_variance=np.asarray(data["explained_variance"], dtype=float),
                      explained_variance_ratio=np.asarray(data["explained_variance_ratio"], dtype=float),
                      features=list(data["features"]))


def personas_from_json(data: list) -> list:
    """The personas stored in the ``analysis`` view.

    Parameters
    ----------
    data : list of dict

    Returns
    -------
    list of core.insight.profiles.Persona
    """
    return [profiles.Persona(**p) for p in data]


def bootstrap_from_json(data: dict) -> BootstrapResult:
    """The :class:`~core.fitting.stability.BootstrapResult` stored in the ``stability`` view.

    Parameters
    ----------
    data : dict

    Returns
    -------
    BootstrapResult
    """
    return BootstrapResult(k=int(data["k"]), resamples=int(data["resamples"]), seed=int(data["seed"]),
                           n_init=int(data["n_init"]), n_customers=int(data["n_customers"]),
                           jaccard=np.asarray(data["jaccard"], dtype=float).reshape(-1, int(data["k"])),
                           ari=np.asarray(data["ari"], dtype=float))


def temporal_from_json(data: dict) -> TemporalResult:
    """The :class:`~core.fitting.stability.TemporalResult` stored in the ``stability`` view.

    Parameters
    ----------
    data : dict

    Returns
    -------
    TemporalResult
    """
    snapshots = [Snapshot(period=s["period"], end=s["end"], n_customers=int(s["n_customers"]), ari=_nan(s["ari"]),
                          shares=[_nan(v) for v in s["shares"]], drift=[_nan(v) for v in s["drift"]],
                          centroids=np.asarray(s["centroids"], dtype=float)) for s in data["snapshots"]]
    return TemporalResult(window=data["window"], k=int(data["k"]), features=list(data["features"]), snapshots=snapshots,
                          skipped=data["skipped"], transitions=data["transitions"], flows=data["flows"],
                          cohorts=data["cohorts"], note=data["note"], thresholds=data["thresholds"])


def sweep_from_json(data: dict) -> SweepResult:
    """The :class:`~core.fitting.selection.SweepResult` stored in the ``sweep`` view (``views["sweep"]["result"]``).

    Parameters
    ----------
    data : dict

    Returns
    -------
    SweepResult
    """
    results = [KResult(**{**r, **{m: _nan(r[m]) for m in ("inertia", "silhouette", "calinski_harabasz",
                                                            "davies_bouldin")}}) for r in data["results"]]
    votes = {key: value for key, value in data["votes"].items()}
    return SweepResult(results=results, recommended_k=int(data["recommended_k"]), reason=data["reason"], votes=votes,
                       silhouette_method=data["silhouette_method"], n_customers=int(data["n_customers"]),
                       fit_sample=data.get("fit_sample"))


# ---------------------------------------------------------------------------- JSON helpers
def _bootstrap_json(result: BootstrapResult) -> dict:
    return {"k": int(result.k), "resamples": int(result.resamples), "seed": int(result.seed),
            "n_init": int(result.n_init), "n_customers": int(result.n_customers),
            "jaccard": _floats(result.jaccard), "ari": _floats(result.ari)}


def _temporal_json(result: TemporalResult) -> dict:
    return _clean({"window": result.window, "k": int(result.k), "features": list(result.features),
                   "snapshots": [{"period": s.period, "end": s.end, "n_customers": int(s.n_customers),
                                  "ari": s.ari, "shares": list(s.shares), "drift": list(s.drift),
                                  "centroids": np.asarray(s.centroids, dtype=float).tolist()}
                                 for s in result.snapshots],
                   "skipped": result.skipped, "transitions": result.transitions, "flows": result.flows,
                   "cohorts": result.cohorts, "note": result.note, "thresholds": result.thresholds})


def _plain(value):
    """A JSON value for one cell: numpy scalars as Python numbers, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _clean(value):
    """Nested dicts/lists with numpy values made plain and NaN replaced by None."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    return _plain(value)


def _float(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _floats(array):
    """An array as nested lists of floats, NaN as None."""
    return _clean(np.asarray(array, dtype=float).tolist())


def _nan(value) -> float:
    return math.nan if value is None else float(value)
