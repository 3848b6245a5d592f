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
    "prepare", "parse_features", "fit_model", "model_metadata", "train",
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
    data, name = read_source(source, name)
    loaded = load_customers(data, name=name)
    step("clean")
    cleaned, report = clean(loaded.frame, unreadable=loaded.info.unreadable, reference_year=reference_year)
    if report.rows_used == 0:
        raise DataFileError(f"{loaded.info.source}: no customer rows left after cleaning "
                            f"(dropped: {', '.join(f'{k} {v}' for k, v in report.dropped.items() if v)})")
    step("features")
    frame = add_features(cleaned, reference_year=reference_year)
    return Prepared(frame, loaded.info, report, fingerprint(data), loaded.info.source)


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
              n_init: int = 10) -> SegmentationModel:
    """Fit a SegmentationModel on prepared customers.

    Parameters
    ----------
    prepared : Prepared
    k : int, default 6
    features : list of str, optional
    seed : int, default 42
    n_init : int, default 10

    Returns
    -------
    SegmentationModel
    """
    n = len(prepared.frame)
    if not 2 <= k <= min(50, n - 1):
        raise ValueError(f"k must be between 2 and {min(50, n - 1)} for {n} customers, got {k}")
    return SegmentationModel(k=k, features=features or DEFAULT_FEATURES, seed=seed, n_init=n_init).fit(prepared.frame)


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
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def train(source=None, *, k: int = 6, features=None, seed: int = DEFAULT_SEED, n_init: int = 10,
          registry: Registry | None = None, activate: bool = True, name: str | None = None,
          progress: Progress | None = None) -> tuple[str, SegmentationModel, dict]:
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
    prepared = prepare(source, name=name, progress=step)
    step("fit")
    model = fit_model(prepared, k=k, features=features, seed=seed, n_init=n_init)
    step("profiles")
    meta = model_metadata(model, prepared, data_path=data_path)
    step("save")
    registry = registry or Registry()
    version = registry.save(model, meta, activate=activate)
    return version, model, meta
