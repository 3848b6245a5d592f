"""A customer file read, cleaned and with features: the first stage of every recipe (:mod:`core.versions.pipeline`).

Lower than the recipe so that the readers of other inputs (:mod:`core.reading.mapping`), the sample basis and
the views can build a :class:`Prepared` without importing the recipe that calls them.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.reading.cleaning import CleaningReport, clean
from core.reading.features import DEFAULT_REFERENCE_YEAR, add_features
from core.reading.loading import DataFileError, LoadInfo, load_customers, read_source
from core.reading.schema import DEFAULT_FEATURES, MODEL_FEATURES

__all__ = ["PROJECT_ROOT", "SAMPLE_PATH", "REAL_DATA_PATH", "Prepared", "resolve_data_path", "fingerprint", "prepare",
           "parse_features"]

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
    core.reading.loading.DataFileError
        The file cannot be used; the message says why.
    """
    step = progress or (lambda _msg: None)
    step("load")
    if isinstance(source, (str, os.PathLike)) and Path(source).exists():
        from core.reading.sources import DataSource, is_parquet

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
