"""The steps every entry point shares: resolve the data, load, clean, engineer, fit, register.

The CLI, the dashboard and the API all call these functions, so a model trained
from any of them is the same model.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import profiles
from .cleaning import CleaningReport, clean
from .features import DEFAULT_REFERENCE_YEAR, add_features
from .loading import DataFileError, LoadInfo, load_customers, read_source
from .model import DEFAULT_SEED, SegmentationModel
from .registry import Registry
from .schema import DEFAULT_FEATURES, MODEL_FEATURES
from .selection import calinski_harabasz, davies_bouldin, silhouette_samples

__all__ = [
    "PROJECT_ROOT", "SAMPLE_PATH", "REAL_DATA_PATH", "Prepared", "resolve_data_path", "fingerprint",
    "prepare", "parse_features", "fit_model", "model_metadata", "train", "Streamed", "streaming_source",
    "fit_streamed", "summarise_streamed", "streamed_metadata", "version_artifacts", "memory_artifacts",
    "score_chunks",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PATH = PROJECT_ROOT / "data" / "synthetic_customers.tsv"
REAL_DATA_PATH = PROJECT_ROOT / "data" / "marketing_campaign.csv"

Progress = Callable[[str], None]


def resolve_data_path(explicit: str | os.PathLike | None = None) -> Path:
    """The customer file to use: ``explicit``, else ``SEGMENTLENS_DATA``, else data/marketing_campaign.csv, else the sample.

    Parameters
    ----------
    explicit : path-like, optional

    Returns
    -------
    pathlib.Path
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("SEGMENTLENS_DATA")
    if env:
        return Path(env)
    return REAL_DATA_PATH if REAL_DATA_PATH.exists() else SAMPLE_PATH


def fingerprint(data: bytes) -> str:
    """Short SHA-256 of a file's bytes: the same file always gives the same fingerprint.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    str
        16 hex digits.
    """
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass
class Prepared:
    """A customer file loaded, cleaned and with features.

    Parameters
    ----------
    frame : pandas.DataFrame
        Cleaned customers with engineered features (index = position in the file).
    info : LoadInfo
        What the loader detected.
    report : CleaningReport
    fingerprint : str
    source : str
        Display name of the file.
    """

    frame: pd.DataFrame
    info: LoadInfo
    report: CleaningReport
    fingerprint: str
    source: str


def prepare(source, *, name: str | None = None, reference_year: int = DEFAULT_REFERENCE_YEAR,
            progress: Progress | None = None) -> Prepared:
    """Load, clean and engineer features of a customer file.

    Parameters
    ----------
    source : path-like or bytes
        A file path or an upload's bytes.
    name : str, optional
        Display name (required to be safe for uploads: never used as a path).
    reference_year : int, default 2026
    progress : callable, optional
        Called with the name of each step.

    Returns
    -------
    Prepared

    Raises
    ------
    core.loading.DataFileError
        The file cannot be used; the message says why.
    """
    step = progress or (lambda _msg: None)
    step("load")
    if isinstance(source, (str, os.PathLike)) and Path(source).exists():
        from .sources import DataSource, is_parquet

        if is_parquet(source):
            parquet = DataSource(source, name=name, reference_year=reference_year)
            loaded = parquet.load()
            data_print = parquet.fingerprint()
            return _clean_and_engineer(loaded, data_print, reference_year, step)
    data, name = read_source(source, name)
    loaded = load_customers(data, name=name)
    return _clean_and_engineer(loaded, fingerprint(data), reference_year, step)


def _clean_and_engineer(loaded, data_print: str, reference_year: int, step) -> Prepared:
    step("clean")
    cleaned, report = clean(loaded.frame, unreadable=loaded.info.unreadable, reference_year=reference_year)
    if report.rows_used == 0:
        raise DataFileError(f"{loaded.info.source}: no customer rows left after cleaning "
                            f"(dropped: {', '.join(f'{k} {v}' for k, v in report.dropped.items() if v)})")
    step("features")
    frame = add_features(cleaned, reference_year=reference_year)
    return Prepared(frame, loaded.info, report, data_print, loaded.info.source)


def parse_features(text: str | None) -> list[str]:
    """Parse a comma-separated feature list and check every name.

    Parameters
    ----------
    text : str or None
        ``"Age,Income"``; None or empty gives the default seven.

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        Unknown or repeated feature, naming it and listing the valid ones.
    """
    if not text:
        return list(DEFAULT_FEATURES)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in MODEL_FEATURES]
    if unknown:
        raise ValueError(f"unknown feature(s) {', '.join(unknown)}; choose from {', '.join(MODEL_FEATURES)}")
    if len(set(names)) != len(names):
        raise ValueError("a feature is listed twice")
    if not names:
        raise ValueError("no features given")
    return names


def fit_model(prepared: Prepared, *, k: int = 6, features=None, seed: int = DEFAULT_SEED,
              n_init: int = 10, engine: str = "numpy") -> SegmentationModel:
    """Fit a SegmentationModel on prepared customers, through an engine (:mod:`core.engines`).

    Parameters
    ----------
    prepared : Prepared
    k : int, default 6
    features : list of str, optional
    seed : int, default 42
    n_init : int, default 10
    engine : str, default "numpy"

    Returns
    -------
    SegmentationModel
        With ``labels_`` of every customer.
    """
    from .engines import get_engine

    n = len(prepared.frame)
    if not 2 <= k <= min(50, n - 1):
        raise ValueError(f"k must be between 2 and {min(50, n - 1)} for {n} customers, got {k}")
    features = list(features or DEFAULT_FEATURES)
    missing = [f for f in features if f not in prepared.frame]
    if missing:
        raise KeyError(f"missing feature column(s): {', '.join(missing)}")
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
    }


def train(source=None, *, k: int = 6, features=None, seed: int = DEFAULT_SEED, n_init: int = 10,
          registry: Registry | None = None, activate: bool = True, name: str | None = None,
          progress: Progress | None = None, engine: str = "numpy", chunk_rows: int | None = None,
          sample_size: int | None = None, stream: bool | None = None) -> tuple[str, SegmentationModel, dict]:
    """Train and register a model: prepare, fit, measure, save.

    Parameters
    ----------
    source : path-like or bytes, optional
        Defaults to :func:`resolve_data_path`.
    k, features, seed, n_init
        As :func:`fit_model`.
    registry : Registry, optional
        Defaults to ``Registry()`` (``SEGMENTLENS_MODELS`` or models/).
    activate : bool, default True
    name : str, optional
        Display name for byte sources.
    progress : callable, optional
        Called with each step name: load, clean, features, fit, profiles, save.
    engine, chunk_rows, sample_size, stream
        Beyond memory: see :func:`streaming_source` and :func:`summarise_streamed`. Every
        version stores the ``aggregates`` and ``sample`` artifacts.

    Returns
    -------
    version : str
    model : SegmentationModel
    meta : dict
    """
    step = progress or (lambda _msg: None)
    data_path = None
    if source is None or not isinstance(source, (bytes, bytearray)):
        source = resolve_data_path(source)
        data_path = str(Path(source).resolve())
    src = streaming_source(source, engine=engine, chunk_rows=chunk_rows, stream=stream)
    if src is not None:
        streamed = fit_streamed(src, k=k, features=features, seed=seed, n_init=n_init, engine=engine,
                                chunk_rows=chunk_rows, progress=step)
        model = streamed.model
        aggregates, sample, segments = summarise_streamed(streamed, sample_size=sample_size, progress=step)
        artifacts = version_artifacts(aggregates, sample, segments, of_rows=streamed.prepared.report.rows_used,
                                      seed=seed, size=sample_size)
        meta = streamed_metadata(streamed, aggregates, data_path=data_path)
    else:
        prepared = prepare(source, name=name, progress=step)
        step("fit")
        model = fit_model(prepared, k=k, features=features, seed=seed, n_init=n_init, engine=engine)
        step("profiles")
        meta = model_metadata(model, prepared, data_path=data_path)
        artifacts = memory_artifacts(model, prepared, sample_size=sample_size)
    step("save")
    registry = registry or Registry()
    version = registry.save(model, meta, activate=activate, artifacts=artifacts)
    return version, model, meta


# ---------------------------------------------------------------------------- beyond memory
@dataclass
class Streamed:
    """A model fitted on a source streamed in chunks (nothing holds the whole table).

    Parameters
    ----------
    source : core.sources.DataSource
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
    """The :class:`core.sources.DataSource` to stream, or None when the file is trained in memory.

    A file streams when asked to (``stream=True`` or a ``chunk_rows``), with an engine other
    than numpy, or when it holds more than :data:`core.sources.STREAM_ROWS` customers
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
    from .sources import STREAM_ROWS, open_source

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
    src : core.sources.DataSource
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
    from .engines import get_engine
    from .sources import DEFAULT_CHUNK_ROWS

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
        if not 2 <= k <= min(50, n - 1):
            raise ValueError(f"k must be between 2 and {min(50, n - 1)} for {n} customers, got {k}")
    step("fit")
    fit = runner.fit(src, features=features, k=k, seed=seed, n_init=n_init, max_iter=300)
    if engine != "numpy":
        # The engine cleaned the table itself; it reports what its rules did when it can.
        done = runner.prepare(src) if hasattr(runner, "prepare") else None
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
        Default :data:`core.sampling.DEFAULT_SAMPLE_SIZE`.
    seed : int, optional
        Default: the model's seed.
    progress : callable, optional

    Returns
    -------
    aggregates : dict
    sample : pandas.DataFrame
    segments : ndarray
    """
    from .aggregates import ProfileAggregator
    from .sampling import DEFAULT_SAMPLE_SIZE, StratifiedSampler

    step = progress or (lambda _msg: None)
    model, src = streamed.model, streamed.source
    size = int(sample_size or DEFAULT_SAMPLE_SIZE)
    seed = model.seed if seed is None else int(seed)
    step("profiles")
    runner = streamed.runner
    if runner is not None and hasattr(runner, "summarise"):
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

    from .sampling import DEFAULT_SAMPLE_SIZE, sample_to_arrays

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
    from .aggregates import aggregate_frame
    from .sampling import DEFAULT_SAMPLE_SIZE, stratified_sample

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
    from .aggregates import calinski_harabasz_from_aggregates
    from .engines.numpy_engine import one_blas_thread

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
    src : core.sources.DataSource
    chunk_rows : int, optional

    Yields
    ------
    pandas.DataFrame
        ``ID``, ``segment``, ``segment_name``, ``confidence``, ``typicality`` (4 decimals).
    """
    from .sources import DEFAULT_CHUNK_ROWS

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
        yield out
