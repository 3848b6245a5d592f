"""The recipe: the one way a model version is made, whoever asks for it.

:func:`make_version` turns a :class:`Recipe` (input and mapping, features, k, seed, starts,
engine, chunking, sample size, the version to carry segment identity from, the measurements
wanted, activate or not) into a registered version through fixed stages:

open
    The input: the canonical customer file (:func:`core.reading.prepared.prepare`), a mapped customer
    table or a transaction log (:func:`core.reading.mapping.prepare_input`), or a source streamed in
    chunks (:func:`streaming_source`), for any engine.
fit
    Through the engine (:func:`fit_model`, :func:`fit_streamed`); k is checked by
    :func:`core.engines.check_k` only.
identity
    Segment numbers, names (renames included) and so colours follow the reference (by default
    the active version): :func:`core.versions.training.identity`.
measure
    Optional: the k sweep, bootstrap stability and the comparison with the reference.
artifacts, save, views
    Every version stores the same artifacts: ``mapping`` (mapped inputs), ``aggregates`` and
    ``sample``, then ``views`` (:func:`core.versions.views.views_after_save`).

``python -m core train`` (every input kind and engine), the dashboard's retrain, the first
start's training and the Spark engine all call it (see docs/architecture.md).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.insight import profiles
from core.reading.cleaning import CleaningReport
from core.engines import Preparing, Summarising, check_k
from core.reading.loading import DataFileError, LoadInfo
from core.fitting.model import DEFAULT_SEED, SegmentationModel
from core.reading.prepared import (PROJECT_ROOT, REAL_DATA_PATH, SAMPLE_PATH, Prepared, fingerprint, parse_features, prepare,
                       resolve_data_path)
from core.versions.registry import Registry
from core.reading.schema import DEFAULT_FEATURES
from core.fitting.selection import calinski_harabasz, davies_bouldin, silhouette_samples

__all__ = [
    "PROJECT_ROOT", "SAMPLE_PATH", "REAL_DATA_PATH", "Prepared", "resolve_data_path", "fingerprint",
    "prepare", "parse_features", "fit_model", "model_metadata", "Streamed", "streaming_source",
    "fit_streamed", "summarise_streamed", "streamed_metadata", "version_artifacts", "memory_artifacts",
    "score_chunks", "Recipe", "Made", "ACTIVE", "MEASUREMENTS", "input_kind", "make_version", "train", "retrain",
    "RetrainResult",
]

Progress = Callable[[str], None]


def fit_model(prepared: Prepared, *, k: int = 6, features=None, seed: int = DEFAULT_SEED,
              n_init: int = 10, engine: str = "numpy", algorithm: str = "kmeans", options: dict | None = None,
              categorical=()) -> SegmentationModel:
    """Fit a SegmentationModel on prepared customers: k-means through an engine (:mod:`core.engines`),
    any other algorithm through its module (:func:`core.fitting.algorithm_fit.fit_algorithm`).

    Parameters
    ----------
    prepared : Prepared
    k : int, default 6
    features : list of str, optional
    seed : int, default 42
    n_init : int, default 10
    engine : str, default "numpy"
    algorithm : str, default "kmeans"
        A name of :data:`core.algorithms.ALGORITHMS`.
    options : dict, optional
        The algorithm's options.
    categorical : sequence of str
        Categorical feature columns (k-prototypes).

    Returns
    -------
    SegmentationModel
        With ``labels_`` of every customer.
    """
    from core.fitting.algorithm_fit import categorical_refusal, fit_algorithm
    from core.algorithms import get_algorithm
    from core.engines import get_engine

    spec = get_algorithm(algorithm)
    # Consensus clustering chooses k itself when none is asked for: the k with the lowest PAC.
    k = None if k is None and spec.name == "consensus" else check_k(k, len(prepared.frame))
    features = list(features or DEFAULT_FEATURES)
    missing = [f for f in list(features) + list(categorical) if f not in prepared.frame]
    if missing:
        raise KeyError(f"missing feature column(s): {', '.join(missing)}")
    if spec.name != "kmeans":
        if engine != "numpy":
            raise ValueError(f"--algorithm {spec.name} fits in memory; it does not run on --engine {engine}")
        return fit_algorithm(prepared.frame, algorithm=spec.name, k=k, features=features, categorical=categorical,
                             seed=seed, n_init=n_init, options=options)
    if categorical:
        raise ValueError(categorical_refusal("kmeans", list(categorical)))
    fit = get_engine(engine).fit(prepared.frame, features=features, k=k, seed=seed, n_init=n_init, max_iter=300)
    X = prepared.frame[features].to_numpy(dtype=np.float64)
    model = SegmentationModel.from_fit(fit, (X - fit.mean) / fit.scale, seed=seed, n_init=n_init)
    model.engine_info_ = dict(fit.info, rows=fit.rows, seconds=round(fit.seconds, 3))
    return model


def model_metadata(model: SegmentationModel, prepared: Prepared, *, data_path: str | None = None) -> dict:
    """Metrics, personas and provenance of a fitted model, ready for the registry.

    Parameters
    ----------
    model : SegmentationModel
    prepared : Prepared
    data_path : str, optional
        Where the training file lives (to reload it later); not stored for uploads.

    Returns
    -------
    dict
    """
    Z = model.transform(prepared.frame)
    labels = model.labels_
    sil, _ = silhouette_samples(Z, labels, seed=model.seed)
    personas = profiles.personas(prepared.frame, labels, model.k)
    return {
        "k": model.k,
        "features": list(model.features),
        "seed": model.seed,
        "n_init": model.n_init,
        "n_customers": int(len(prepared.frame)),
        "data_fingerprint": prepared.fingerprint,
        "data_source": prepared.source,
        "data_path": data_path,
        "metrics": {
            "silhouette": round(float(sil.mean()), 6),
            "inertia": round(float(model.inertia_), 6),
            "calinski_harabasz": round(float(calinski_harabasz(Z, labels, model.centroids_, model.inertia_)), 6),
            "davies_bouldin": round(float(davies_bouldin(Z, labels, model.centroids_)), 6),
        },
        "segment_sizes": np.bincount(labels, minlength=model.k).tolist(),
        "segment_names": [p.name for p in personas],
        "segment_descriptions": [p.description for p in personas],
        "cleaning": prepared.report.to_dict(),
        "load": prepared.info.to_dict(),
        "engine": dict(getattr(model, "engine_info_", None) or {"engine": "numpy", "mode": "in-memory"}),
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **algorithm_metadata(model, labels),
    }


def algorithm_metadata(model: SegmentationModel, labels: np.ndarray) -> dict:
    """The ``algorithm`` entry of a version's metadata: name, options, categorical features, the fit's info.

    Parameters
    ----------
    model : SegmentationModel
    labels : ndarray
        Its customers' segments (the Unassigned group's share is counted on them).

    Returns
    -------
    dict
        ``{"algorithm": {...}}``; k-means versions say ``{"name": "kmeans"}`` only.
    """
    from core.algorithms import get_algorithm

    spec = get_algorithm(getattr(model, "algorithm", "kmeans"))
    entry = {"name": spec.name, "title": spec.title, "soft": spec.soft}
    if spec.name != "kmeans":
        unassigned = bool(getattr(model, "unassigned_", False))
        info = dict(getattr(model, "algorithm_info_", None) or {})
        if unassigned:
            info.setdefault("noise_share", round(float(np.mean(labels == model.k - 1)), 6))
        entry.update(options=dict(model.options), categorical=list(model.categorical),
                     categories={c: list(v) for c, v in model.categories_.items()}, unassigned=unassigned,
                     clusters=model.k - int(unassigned), info=info)
    return {"algorithm": entry}


# ---------------------------------------------------------------------------- beyond memory
@dataclass
class Streamed:
    """A model fitted on a source streamed in chunks (nothing holds the whole table).

    Parameters
    ----------
    source : core.reading.sources.DataSource
    fit : core.engines.FitResult
    model : SegmentationModel
        Built from the fit; ``labels_`` is None.
    prepared : Prepared
        Cleaning report, load info and fingerprint of the whole file; its ``frame`` is the
        stratified sample once :func:`summarise_streamed` ran (empty before).
    engine : str
    runner : object
        The engine instance that fitted (a Spark engine keeps its session and prepared table).
    """

    source: object
    fit: object
    model: SegmentationModel
    prepared: Prepared
    engine: str = "numpy"
    runner: object = None


def streaming_source(source, *, engine: str = "numpy", chunk_rows: int | None = None, stream: bool | None = None):
    """The :class:`core.reading.sources.DataSource` to stream, or None when the file is trained in memory.

    A file streams when asked to (``stream=True`` or a ``chunk_rows``), with an engine other
    than numpy, or when it holds more than :data:`core.reading.sources.STREAM_ROWS` customers
    (exact for Parquet, estimated from the first lines of a text file).

    Parameters
    ----------
    source : path-like or bytes
    engine : str, default "numpy"
    chunk_rows : int, optional
    stream : bool, optional
        Force (True) or forbid (False) streaming.

    Returns
    -------
    DataSource or None
    """
    if isinstance(source, (bytes, bytearray)) or stream is False:
        return None
    from core.reading.sources import STREAM_ROWS, open_source

    if engine != "numpy" and not Path(source).exists() and "://" in str(source):
        return str(source)  # a URI only the distributed engine can read (s3a://, hdfs://, ...)
    src = open_source(source)
    if stream or chunk_rows is not None or engine != "numpy" or src.estimated_rows() > STREAM_ROWS:
        return src
    return None


def fit_streamed(src, *, k: int = 6, features=None, seed: int = DEFAULT_SEED, n_init: int = 10,
                 engine: str = "numpy", chunk_rows: int | None = None, progress: Progress | None = None) -> Streamed:
    """Fit on a source chunk by chunk: the engine's fit, then a SegmentationModel from its centroids.

    Parameters
    ----------
    src : core.reading.sources.DataSource
    k, features, seed, n_init
        As :func:`fit_model`.
    engine : str, default "numpy"
    chunk_rows : int, optional
        Rows per chunk (default: the source's).
    progress : callable, optional

    Returns
    -------
    Streamed
    """
    from core.engines import get_engine
    from core.reading.sources import DEFAULT_CHUNK_ROWS

    step = progress or (lambda _msg: None)
    features = list(features or DEFAULT_FEATURES)
    chunk_rows = int(chunk_rows or DEFAULT_CHUNK_ROWS)
    options = {"chunk_rows": chunk_rows} if engine == "numpy" else {}
    runner = get_engine(engine, **options)
    step("load")
    name = getattr(src, "name", None) or str(src).rstrip("/").rsplit("/", 1)[-1]
    if engine == "numpy":
        scan = src.scan(chunk_rows, features=features)
        report, info = scan.report, scan.info
        n = report.rows_used
        if n == 0:
            raise DataFileError(f"{name}: no customer rows left after cleaning "
                                f"(dropped: {', '.join(f'{k} {v}' for k, v in report.dropped.items() if v)})")
        check_k(k, n)
    step("fit")
    fit = runner.fit(src, features=features, k=k, seed=seed, n_init=n_init, max_iter=300)
    if engine != "numpy":
        # The engine cleaned the table itself; it reports what its rules did when it can.
        done = runner.prepare(src) if isinstance(runner, Preparing) else None
        report = getattr(done, "report", None) or CleaningReport(fit.rows, fit.rows, [])
        info = LoadInfo(source=name, rows=int(report.rows_read))
    model = SegmentationModel.from_fit(fit, seed=seed, n_init=n_init)
    print_ = src.fingerprint() if hasattr(src, "fingerprint") else fingerprint(str(src).encode("utf-8"))
    prepared = Prepared(pd.DataFrame(), info, report, print_, name)
    return Streamed(source=src, fit=fit, model=model, prepared=prepared, engine=engine, runner=runner)


def summarise_streamed(streamed: Streamed, *, sample_size: int | None = None, seed: int | None = None,
                       progress: Progress | None = None) -> tuple[dict, pd.DataFrame, np.ndarray]:
    """One pass with the final model: profile aggregates and the stratified sample of every customer.

    Also sets the model's typicality reference (the sample's distances) and
    ``streamed.prepared.frame`` to the sample. An engine with a ``summarise`` method (Spark)
    computes both itself.

    Parameters
    ----------
    streamed : Streamed
    sample_size : int, optional
        Default :data:`core.reading.sampling.DEFAULT_SAMPLE_SIZE`.
    seed : int, optional
        Default: the model's seed.
    progress : callable, optional

    Returns
    -------
    aggregates : dict
    sample : pandas.DataFrame
    segments : ndarray
    """
    from core.versions.aggregates import ProfileAggregator
    from core.reading.sampling import DEFAULT_SAMPLE_SIZE, StratifiedSampler

    step = progress or (lambda _msg: None)
    model, src = streamed.model, streamed.source
    size = int(sample_size or DEFAULT_SAMPLE_SIZE)
    seed = model.seed if seed is None else int(seed)
    step("profiles")
    runner = streamed.runner
    if isinstance(runner, Summarising):
        aggregates, sample, segments = runner.summarise(src, model, sample_size=size, seed=seed)
    else:
        sizes = np.zeros(model.k, dtype=np.int64)
        sizes[model._order] = np.asarray(streamed.fit.sizes, dtype=np.int64)
        agg = ProfileAggregator(model.k)
        sampler = StratifiedSampler(sizes, size, seed)
        for chunk in src.iter_chunks():
            segments = model.predict(chunk)
            agg.update(chunk, segments)
            sampler.update(chunk, segments)
        aggregates = agg.result()
        sample, segments = sampler.result()
    if len(sample):
        model.set_typicality_reference(model.transform(sample), segments)
    streamed.prepared.frame = sample
    return aggregates, sample, segments


def version_artifacts(aggregates: dict, sample: pd.DataFrame, segments, *, of_rows: int, seed: int,
                      size: int | None = None) -> dict[str, bytes]:
    """The ``aggregates`` and ``sample`` artifacts of a version, as bytes for :meth:`Registry.save`.

    Parameters
    ----------
    aggregates : dict
    sample : pandas.DataFrame
    segments : array-like of int
    of_rows : int
        Customers in the whole table.
    seed : int
    size : int, optional
        Sample size asked for.

    Returns
    -------
    dict of str to bytes
    """
    import io
    import json

    from core.reading.sampling import DEFAULT_SAMPLE_SIZE, sample_to_arrays

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **sample_to_arrays(sample, segments, of_rows=of_rows, seed=seed,
                                                   size=int(size or DEFAULT_SAMPLE_SIZE)))
    return {"aggregates": json.dumps(aggregates, allow_nan=False).encode("utf-8"), "sample": buffer.getvalue()}


def memory_artifacts(model: SegmentationModel, prepared: Prepared, *, sample_size: int | None = None
                     ) -> dict[str, bytes]:
    """The artifacts of a model fitted in memory: the same aggregates and sample the streaming path stores.

    Parameters
    ----------
    model : SegmentationModel
        With ``labels_``.
    prepared : Prepared
    sample_size : int, optional

    Returns
    -------
    dict of str to bytes
    """
    from core.versions.aggregates import aggregate_frame
    from core.reading.sampling import DEFAULT_SAMPLE_SIZE, stratified_sample

    size = int(sample_size or DEFAULT_SAMPLE_SIZE)
    labels = model.labels_ if model.labels_ is not None else model.predict(prepared.frame)
    sample, segments = stratified_sample(prepared.frame, labels, size, model.seed, k=model.k)
    return version_artifacts(aggregate_frame(prepared.frame, labels, model.k), sample, segments,
                             of_rows=len(prepared.frame), seed=model.seed, size=size)


def streamed_metadata(streamed: Streamed, aggregates: dict, *, data_path: str | None = None) -> dict:
    """Metrics, personas and provenance of a streamed model, like :func:`model_metadata`.

    Sizes, inertia and Calinski-Harabasz cover every customer (from the fit and the
    aggregates); silhouette, Davies-Bouldin and the personas are computed on the stratified
    sample (``metrics_basis`` says which).

    Parameters
    ----------
    streamed : Streamed
        After :func:`summarise_streamed`.
    aggregates : dict
    data_path : str, optional

    Returns
    -------
    dict
    """
    from core.versions.aggregates import calinski_harabasz_from_aggregates
    from core.engines.numpy_engine import one_blas_thread

    model, prepared, fit = streamed.model, streamed.prepared, streamed.fit
    sample = prepared.frame
    Z = model.transform(sample)
    labels = model.predict(sample)
    with one_blas_thread():
        sil, _ = silhouette_samples(Z, labels, seed=model.seed)
    personas = profiles.personas(sample, labels, model.k)
    return {
        "k": model.k,
        "features": list(model.features),
        "seed": model.seed,
        "n_init": model.n_init,
        "n_customers": int(prepared.report.rows_used),
        "data_fingerprint": prepared.fingerprint,
        "data_source": prepared.source,
        "data_path": data_path,
        "metrics": {
            "silhouette": round(float(sil.mean()), 6),
            "inertia": round(float(model.inertia_), 6),
            "calinski_harabasz": round(float(calinski_harabasz_from_aggregates(
                aggregates, list(model.features), model.mean_, model.scale_)), 6),
            "davies_bouldin": round(float(davies_bouldin(Z, labels, model.centroids_)), 6),
        },
        "metrics_basis": {"silhouette": "sample", "davies_bouldin": "sample", "personas": "sample",
                          "inertia": "all customers", "calinski_harabasz": "all customers",
                          "sample_rows": int(len(sample))},
        "segment_sizes": [int(s["count"]) for s in aggregates["segments"]],
        "segment_names": [p.name for p in personas],
        "segment_descriptions": [p.description for p in personas],
        "cleaning": prepared.report.to_dict(),
        "load": prepared.info.to_dict(),
        "engine": dict(fit.info, rows=int(fit.rows), seconds=round(float(fit.seconds), 3)),
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def score_chunks(model: SegmentationModel, names: list, src, *, chunk_rows: int | None = None):
    """Score every customer of a source chunk by chunk (``python -m core score`` on a large file).

    Parameters
    ----------
    model : SegmentationModel
    names : list of str
        Segment names.
    src : core.reading.sources.DataSource
    chunk_rows : int, optional

    Yields
    ------
    pandas.DataFrame
        ``ID``, ``segment``, ``segment_name``, ``confidence``, ``typicality`` (4 decimals).
    """
    from core.reading.sources import DEFAULT_CHUNK_ROWS

    chunk_rows = int(chunk_rows or DEFAULT_CHUNK_ROWS)
    src.scan(chunk_rows)
    for chunk in src.iter_chunks(chunk_rows):
        absent = [f for f in model.features if f not in chunk]
        if absent:
            raise ValueError(f"the file lacks the model's feature(s) {', '.join(absent)}")
        scores = model.score(chunk)
        out = scores.assign(ID=chunk["ID"].to_numpy(), segment_name=[names[s] for s in scores["segment"]])
        out = out[["ID", "segment", "segment_name", "confidence", "typicality"]]
        out["confidence"] = out["confidence"].round(4)
        out["typicality"] = out["typicality"].round(4)
        if model.soft:  # membership probability of each segment (Gaussian mixture), by segment number
            for s, column in enumerate(model.predict_proba(chunk).T):
                out[f"probability_{s}"] = column.round(4)
        yield out


# ---------------------------------------------------------------------------- the recipe
ACTIVE = "active"  # Recipe.reference: carry identity from the registry's active version
MEASUREMENTS = ("sweep", "stability", "compare")
# Bootstrap stability refits k-means once per resample: beyond this many customers it runs on a seeded
# sample of them (about 0.1 s per resample at this size instead of ~1 s at 18,000), which if anything
# understates stability, as fewer customers make any clustering less stable.
STABILITY_MAX_ROWS = 5_000


@dataclass
class Recipe:
    """Everything that decides a model version.

    Parameters
    ----------
    source : path-like or bytes, optional
        Default :func:`resolve_data_path`. A URI (``s3a://``) is read by the Spark engine.
    name : str, optional
        Display name (uploads: never used as a path).
    kind : {"canonical", "customers", "transactions"}, optional
        Recognised from the columns when None (and taken from ``mapping`` when given).
    mapping : core.reading.mapping.Mapping, optional
        How the columns become customers; suggested from the file when None.
    features : str or list of str, optional
        Comma-separated or a list; default the kind's defaults.
    k, seed, n_init : int
    engine : str, default "numpy"
    chunk_rows : int, optional
        Stream in chunks of this many rows (large files stream on their own).
    stream : bool, optional
        Force (True) or forbid (False) streaming.
    sample_size : int, optional
        Rows of the stratified ``sample`` artifact (default 50,000).
    data_path : str, optional
        Where the data is kept for the pages (default: the source file).
    reference : core.versions.training.Reference, ACTIVE or None, default ACTIVE
        The version whose segment numbers, names and colours the new one keeps.
    adopt_suggested : bool, default False
        Segments whose persona changed take the suggested name instead of the carried one.
    measure : tuple of str, default ()
        Any of :data:`MEASUREMENTS` (sweep, bootstrap stability, comparison with the reference).
    sweep_max, stability_resamples, drift_resamples : int
        Sizes of those measurements.
    activate : bool, default True
    algorithm : str, default "kmeans"
        A name of :data:`core.algorithms.ALGORITHMS`; every algorithm but k-means fits in memory.
    options : dict, optional
        The algorithm's options (e.g. ``{"covariance": "diag"}`` for ``gmm``).
    database : core.reading.postgres.PgSource, optional
        The table or query ``source`` holds the first rows of (``prepare_input``'s ``database``).
    """

    source: object = None
    name: str | None = None
    kind: str | None = None
    mapping: object = None
    features: object = None
    k: int = 6
    seed: int = DEFAULT_SEED
    n_init: int = 10
    engine: str = "numpy"
    chunk_rows: int | None = None
    stream: bool | None = None
    sample_size: int | None = None
    data_path: str | None = None
    reference: object = ACTIVE
    adopt_suggested: bool = False
    measure: tuple = ()
    sweep_max: int = 10
    stability_resamples: int = 20
    drift_resamples: int = 10
    activate: bool = True
    algorithm: str = "kmeans"
    options: dict = field(default_factory=dict)
    database: object = None


@dataclass
class Made:
    """A version :func:`make_version` registered; unpacks as ``version, model, meta``."""

    version: str
    model: SegmentationModel
    meta: dict
    prepared: Prepared = field(repr=False)
    comparison: dict | None = None

    def __iter__(self):
        return iter((self.version, self.model, self.meta))


def input_kind(source, kind: str | None = None, mapping=None, name: str | None = None) -> str:
    """Which kind of input a recipe opens: given, the mapping's, or recognised from the columns.

    Parameters
    ----------
    source : path-like or bytes
    kind : str, optional
    mapping : core.reading.mapping.Mapping, optional
    name : str, optional

    Returns
    -------
    str
        ``canonical``, ``customers`` or ``transactions``.
    """
    from core.reading.mapping import KINDS, detect_kind, read_head, sniff
    from core.reading.sources import is_parquet

    if kind is not None and kind not in KINDS:
        raise ValueError(f"--input must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind or mapping is not None:
        return kind or mapping.kind
    is_bytes = isinstance(source, (bytes, bytearray))
    if not is_bytes and (not Path(source).is_file() or is_parquet(source)):
        return "canonical"  # Parquet, URIs and missing files: the canonical readers say what is wrong
    head = read_head(source, sniff(source, name or ("upload" if is_bytes else Path(source).name)))
    return detect_kind(list(head.columns), head)


@dataclass
class _Opened:
    prepared: Prepared | None
    mapping: object
    streamed_from: object
    features: list
    data_path: str | None
    categorical: list = field(default_factory=list)


def _open(recipe: Recipe, step) -> _Opened:
    """Stage 1: the input as prepared customers, or the source to stream."""
    from core.fitting.algorithm_fit import categorical_refusal, split_categorical
    from core.algorithms import get_algorithm

    source, data_path = recipe.source, recipe.data_path
    # A URI only a distributed engine reads (postgresql://, s3a://) stays a string (a Path would make it postgresql:/).
    uri = recipe.engine != "numpy" and isinstance(source, str) and "://" in source
    if not uri and (source is None or not isinstance(source, (bytes, bytearray))):
        source = resolve_data_path(source)
        data_path = data_path or str(Path(source).resolve())
    kind = input_kind(source, recipe.kind, recipe.mapping, recipe.name)
    spec = get_algorithm(recipe.algorithm)
    if kind == "canonical" and recipe.mapping is None:
        requested, categorical = _canonical_categorical(recipe.features, spec)
        text = requested if requested is None or isinstance(requested, str) else ",".join(requested)
        features = parse_features(text)
        # Every algorithm but k-means fits in memory (their modules sample large inputs themselves).
        stream = recipe.stream if spec.name == "kmeans" else False
        src = streaming_source(source, engine=recipe.engine, chunk_rows=recipe.chunk_rows, stream=stream)
        prepared = None if src is not None else prepare(source, name=recipe.name, progress=step)
        return _Opened(prepared, None, src, features, data_path, categorical)
    if recipe.engine != "numpy":
        raise ValueError(f"--engine {recipe.engine} trains canonical customer tables; derive the customers of a "
                         f"{kind} file first (`python -m core customers --data FILE --out CUSTOMERS.csv`)")
    from core.reading.mapping import feature_ranges, parse_features as mapped_features, prepare_input

    prepared, used = prepare_input(source, name=recipe.name, kind=kind, mapping=recipe.mapping, progress=step,
                                   chunk_rows=recipe.chunk_rows, database=recipe.database)
    requested, categorical = split_categorical(recipe.features, prepared.frame)
    if categorical and not spec.categorical:
        raise ValueError(categorical_refusal(spec.name, categorical))
    if used.kind == "canonical":
        features = parse_features(requested if not isinstance(requested, list) else ",".join(requested))
        return _Opened(prepared, None, None, features, data_path, categorical)
    used.features = mapped_features(requested, prepared, used)
    used.ranges = feature_ranges(prepared.frame, used.features)
    return _Opened(prepared, used, None, list(used.features), data_path, categorical)


def _canonical_categorical(requested, spec) -> tuple[object, list]:
    """The canonical file's categorical columns among the requested features, refused unless the algorithm takes them."""
    from core.fitting.algorithm_fit import categorical_refusal
    from core.reading.schema import CATEGORY_COLUMNS

    if requested is None:
        return None, []
    names = [t.strip() for t in requested.split(",") if t.strip()] if isinstance(requested, str) else list(requested)
    categorical = [n for n in names if n in CATEGORY_COLUMNS]
    if categorical and not spec.categorical:
        raise ValueError(categorical_refusal(spec.name, categorical))
    numeric = [n for n in names if n not in categorical]
    return (",".join(numeric) if numeric else None) if categorical else requested, categorical


def _reference(recipe: Recipe, registry: Registry):
    """The reference identity is carried from (None: the first version, or other data altogether)."""
    from core.versions.naming import segment_names
    from core.versions.training import Reference

    reference = recipe.reference
    if reference == ACTIVE:
        active = registry.active_version()
        if active is None:
            return None
        model, meta = registry.load(active)
        reference = Reference(model, active, segment_names(meta, model.k), generated=meta.get("generated_names"))
    return reference


def _comparable(reference, frame: pd.DataFrame):
    """The reference, or None when its features are not columns of the new customers (other data altogether)."""
    model = None if reference is None else reference.model
    if model is None or not all(f in frame for f in list(model.features) + list(getattr(model, "categorical", []))):
        return None
    return reference


def _measure(recipe: Recipe, model, prepared: Prepared, meta: dict, reference, generated: list, step) -> dict | None:
    """Stage 4: the measurements asked for (each step is reported, measured or not)."""
    from core.versions.training import compare_candidate, stability_summary, sweep_summary

    frame, wanted = prepared.frame, set(recipe.measure)
    step("sweep")
    Z = model.transform(frame) if wanted & {"sweep", "stability"} else None
    n = len(frame)
    if "sweep" in wanted and n > 2:
        from core.fitting.selection import sweep

        meta["sweep"] = sweep_summary(sweep(Z, 2, max(2, min(recipe.sweep_max, n - 1)), seed=recipe.seed,
                                            current_k=model.k))
    step("stability")
    if "stability" in wanted and recipe.stability_resamples > 0 and model.k < n:
        from core.fitting.stability import bootstrap_stability

        labels = model.labels_ if model.labels_ is not None else model.predict(frame)
        rows = np.arange(n)
        if n > STABILITY_MAX_ROWS:
            rows = np.sort(np.random.default_rng(recipe.seed).choice(n, STABILITY_MAX_ROWS, replace=False))
        meta["stability"] = dict(stability_summary(bootstrap_stability(
            Z[rows], labels[rows], resamples=recipe.stability_resamples, seed=recipe.seed)), customers=int(len(rows)))
    step("compare")
    if "compare" in wanted and reference is not None and reference.frame is not None:
        meta["comparison"] = compare_candidate(model, frame, meta["segment_names"], reference, generated=generated,
                                               drift_resamples=recipe.drift_resamples, seed=recipe.seed)
        return meta["comparison"]
    return None


def make_version(recipe: Recipe, registry: Registry | None = None, *, progress: Progress | None = None,
                 lock_wait: float | None = 0.0) -> Made:
    """Make and register a model version from a recipe, through the fixed stages (see the module).

    Parameters
    ----------
    recipe : Recipe
    registry : Registry, optional
        Default ``Registry()`` (``SEGMENTLENS_MODELS`` or models/).
    progress : callable, optional
        Called with each stage's name (load, clean, features, fit, sweep, profiles, stability, compare,
        save); it may raise to cancel, and nothing is saved before "save".
    lock_wait : float or None, default 0
        Seconds to wait for another training on the registry (None: the caller holds the lock).

    Returns
    -------
    Made

    Raises
    ------
    core.reading.loading.DataFileError
        The input cannot be used.
    ValueError
        Bad k, features or mapping.
    core.versions.registry.RegistryError
        Another training is running.
    """
    from core.versions.aggregates import reorder_segments
    from core.fitting.matching import carry_names
    from core.versions.training import identity, suggested_names
    from core.versions.views import views_after_save

    step = progress or (lambda _name: None)
    registry = registry or Registry()
    held = contextlib.nullcontext() if lock_wait is None else registry.training_lock(wait=lock_wait)
    with held:
        opened = _open(recipe, step)                                          # 1. open
        options = dict(k=recipe.k, features=opened.features, seed=recipe.seed, n_init=recipe.n_init)
        if recipe.algorithm != "kmeans" or opened.categorical:
            options.update(algorithm=recipe.algorithm, options=recipe.options, categorical=opened.categorical)
        if opened.streamed_from is not None:                                   # 2. fit
            streamed = fit_streamed(opened.streamed_from, engine=recipe.engine, chunk_rows=recipe.chunk_rows,
                                    progress=step, **options)
            model, prepared = streamed.model, streamed.prepared
        else:
            streamed, prepared = None, opened.prepared
            step("fit")
            model = fit_model(prepared, engine=recipe.engine, **options)
        reference = _reference(recipe, registry)
        if streamed is not None:                                               # 3. identity (on the sample)
            aggregates, sample, segments = summarise_streamed(streamed, sample_size=recipe.sample_size, progress=step)
            reference = _comparable(reference, sample)
            before, model.labels_ = model.centroids_.copy(), segments
            new_of_ref, method = identity(model, sample, reference)
            segments, model.labels_ = model.labels_, None
            aggregates = reorder_segments(aggregates, before, model.centroids_)
            artifacts = version_artifacts(aggregates, sample, segments, of_rows=prepared.report.rows_used,
                                          seed=recipe.seed, size=recipe.sample_size)
            meta = streamed_metadata(streamed, aggregates, data_path=opened.data_path)
        else:
            reference = _comparable(reference, prepared.frame)
            new_of_ref, method = identity(model, prepared.frame, reference)
            step("profiles")
            meta = model_metadata(model, prepared, data_path=opened.data_path)
            if getattr(model, "unassigned_", False):  # the one name of the Unassigned group (core.versions.naming)
                from core.versions.naming import UNASSIGNED_DESCRIPTION, UNASSIGNED_NAME

                meta["segment_names"][-1] = UNASSIGNED_NAME
                meta["segment_descriptions"][-1] = UNASSIGNED_DESCRIPTION
            artifacts = memory_artifacts(model, prepared, sample_size=recipe.sample_size)
        if opened.mapping is not None:  # the input's kind and, for transaction logs, RFM groups and names
            from core.reading.mapping import input_summary

            meta.update(input_summary(prepared, model.labels_, opened.mapping))
            artifacts["mapping"] = opened.mapping.to_json()
        generated = list(meta["segment_names"])
        suggestions = []
        if reference is not None:
            meta["segment_names"] = carry_names(list(reference.names), new_of_ref, generated)
            suggestions = suggested_names(meta["segment_names"], generated, reference.generated, new_of_ref)
            if recipe.adopt_suggested and suggestions:
                adopted = {s["segment"]: s["suggested"] for s in suggestions}
                meta["segment_names"] = carry_names([adopted.get(i, n) for i, n in enumerate(meta["segment_names"])],
                                                    {i: i for i in range(model.k)}, generated)
                suggestions = []
        meta.update(generated_names=generated, suggested_names=suggestions, identity={
            "reference_version": reference.version if reference else None, "method": method,
            "matched": {str(r): int(c) for r, c in sorted(new_of_ref.items())}})
        comparison = _measure(recipe, model, prepared, meta, reference, generated, step)    # 4. measure
        step("save")                                                           # 5. artifacts and save
        version = registry.save(model, meta, activate=recipe.activate, artifacts=artifacts)
        views_after_save(registry, version, model, prepared, data_path=opened.data_path, meta=meta)  # 6. views
    return Made(version, model, meta, prepared, comparison)


def train(source=None, *, registry: Registry | None = None, progress: Progress | None = None,
          lock_wait: float | None = 0.0, **spec) -> Made:
    """:func:`make_version` of ``Recipe(source, **spec)``; unpacks as ``version, model, meta``.

    Parameters
    ----------
    source : path-like or bytes, optional
    registry : Registry, optional
    progress : callable, optional
    lock_wait : float or None, default 0
    **spec
        Any field of :class:`Recipe`.

    Returns
    -------
    Made
    """
    return make_version(Recipe(source=source, **spec), registry, progress=progress, lock_wait=lock_wait)


# ---------------------------------------------------------------------------- the dashboard's retrain
RetrainResult = Made


def retrain(source, *, registry: Registry, progress=None, should_stop=None, lock_wait: float = 0.0,
            sweep_max: int = 10, stability_resamples: int = 20, drift_resamples: int = 10, **spec) -> Made:
    """The dashboard's retrain: a candidate measured and compared with the reference, never activated.

    Parameters
    ----------
    source : path-like or bytes
    registry : Registry
    progress : callable, optional
        ``progress(done, total, step)`` when each step of :data:`core.versions.training.STEPS` starts, then
        ``progress(total, total, "done")``.
    should_stop : callable, optional
        Asked before every step; True cancels the run (:class:`core.versions.training.RetrainCancelled`).
    lock_wait : float, default 0
    sweep_max, stability_resamples, drift_resamples : int
    **spec
        Fields of :class:`Recipe` (``reference`` defaults to None here: the caller passes it with its
        customers, for the comparison).

    Returns
    -------
    Made
    """
    from core.versions.training import STEPS, RetrainCancelled

    report = progress or (lambda *_a: None)
    stop = should_stop or (lambda: False)

    def enter(step: str) -> None:
        if step not in STEPS:
            return
        if stop():
            raise RetrainCancelled(step)
        report(STEPS.index(step), len(STEPS), step)

    spec.setdefault("reference", None)
    recipe = Recipe(source=source, activate=False, measure=MEASUREMENTS, sweep_max=sweep_max,
                    stability_resamples=stability_resamples, drift_resamples=drift_resamples, **spec)
    made = make_version(recipe, registry, progress=enter, lock_wait=lock_wait)
    report(len(STEPS), len(STEPS), "done")
    return made
