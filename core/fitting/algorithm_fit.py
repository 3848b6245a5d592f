"""The recipe's fit stage for every algorithm besides k-means: prepared customers -> a SegmentationModel.

K-means goes through the engines (:func:`core.versions.pipeline.fit_model`); the other algorithms
(:mod:`core.algorithms`) fit in memory on the standardised numeric features and, for
k-prototypes, the categorical features as codes. Sampling of large inputs (HDBSCAN, consensus)
is the algorithm module's own rule; its ``info`` says how many customers it fitted on and how
many it assigned afterwards, and the version's metadata keeps it for the pages.
"""
from __future__ import annotations

import inspect
import time

import numpy as np
import pandas as pd

from core.algorithms import get_algorithm
from core.algorithms.categorical import encode_categories
from core.fitting.model import SegmentationModel, standardise

__all__ = ["fit_algorithm", "split_categorical", "encode", "categorical_refusal", "check_options", "jsonable"]


def categorical_refusal(algorithm: str, names) -> str:
    """The one-line refusal of categorical features by an algorithm that clusters numbers only."""
    return (f"{', '.join(names)} {'is a categorical feature' if len(names) == 1 else 'are categorical features'}: "
            f"{algorithm} clusters numeric features only; use --algorithm kprototypes for mixed data")


def split_categorical(requested, frame: pd.DataFrame) -> tuple[object, list[str]]:
    """Separate the requested features that are text columns of ``frame`` (categorical) from the rest.

    Parameters
    ----------
    requested : str, list of str or None
        The recipe's ``features`` (comma-separated or a list).
    frame : pandas.DataFrame
        The prepared customers.

    Returns
    -------
    numeric : str, list or None
        The requested features without the categorical ones (None when none remain requested).
    categorical : list of str
    """
    if requested is None:
        return None, []
    names = [t.strip() for t in requested.split(",") if t.strip()] if isinstance(requested, str) else list(requested)
    categorical = [n for n in names if n in frame and n != "ID" and not pd.api.types.is_numeric_dtype(frame[n])]
    numeric = [n for n in names if n not in categorical]
    if not categorical:
        return requested, []
    return (numeric or None), categorical


def encode(frame: pd.DataFrame, categorical: list[str]) -> tuple[np.ndarray | None, dict]:
    """Category codes of the categorical columns (0..m-1 in sorted order; -1 for missing).

    Returns
    -------
    codes : ndarray of shape (n, c) or None
    categories : dict of str to list of str
    """
    if not categorical:
        return None, {}
    codes, labels = encode_categories(frame, categorical)
    return codes, dict(zip(categorical, labels))


def check_options(algorithm: str, fit, options: dict) -> dict:
    """The options an algorithm's ``fit`` accepts, or a one-line ValueError naming the one it does not."""
    params = inspect.signature(fit).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    known = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
             and n not in ("k", "seed", "categorical")]
    unknown = [n for n in options if n not in known]
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {algorithm}; "
                         f"it takes {', '.join(known) or 'none'}")
    return dict(options)


def jsonable(value):
    """``value`` with numpy scalars and arrays turned into plain JSON types (for metadata)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def fit_algorithm(frame: pd.DataFrame, *, algorithm: str, k: int, features: list[str], categorical=(),
                  seed: int, n_init: int = 10, options: dict | None = None) -> SegmentationModel:
    """Fit one of :data:`core.algorithms.ALGORITHMS` (not k-means) on prepared customers.

    Parameters
    ----------
    frame : pandas.DataFrame
        Prepared customers with the feature columns.
    algorithm : str
    k : int or None
        Checked by the caller (:func:`core.engines.check_k`); None only for consensus, which then cuts at
        the k with the lowest PAC.
    features : list of str
        Numeric features.
    categorical : sequence of str
        Categorical features (k-prototypes only).
    seed, n_init : int
    options : dict, optional
        The algorithm's own options (e.g. ``covariance`` for GMM).

    Returns
    -------
    SegmentationModel
        ``labels_`` of every customer; ``algorithm_info_`` the partition's info.

    Raises
    ------
    ValueError
        A categorical feature asked of an algorithm without them, an unknown option, or a
        partition that leaves every customer unassigned (one line each).
    """
    spec = get_algorithm(algorithm)
    categorical = list(categorical)
    if categorical and not spec.categorical:
        raise ValueError(categorical_refusal(spec.name, categorical))
    module = spec.load()
    options = check_options(spec.name, module.fit, options or {})
    X = frame[features].to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        raise ValueError("feature values must be finite numbers (clean the data first)")
    Z, mean, scale = standardise(X)
    codes, categories = encode(frame, categorical)
    started = time.perf_counter()
    partition = module.fit(Z, k=k, seed=seed, categorical=codes, **options)
    seconds = time.perf_counter() - started
    model = SegmentationModel.from_partition(partition, Z, mean, scale, features=features, algorithm=spec.name,
                                             seed=seed, n_init=n_init, options=options, categorical=categorical,
                                             categories=categories)
    model.engine_info_ = {"engine": "numpy", "mode": "in-memory", "algorithm": spec.name, "rows": int(len(Z)),
                          "seconds": round(seconds, 3)}
    model.algorithm_info_ = jsonable(dict(partition.info))
    return model
