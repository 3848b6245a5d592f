"""k-means engines behind one interface (:mod:`core.engines.base`).

``get_engine("numpy")`` always works; ``get_engine("spark")`` imports pyspark lazily and
raises :class:`EngineUnavailable` with how to install it when pyspark is missing. Adding an
engine is one module plus one line in ``ENGINES``.
"""
from __future__ import annotations

import importlib

from core.engines.base import (K_MAX, K_MIN, Engine, EngineError, EngineUnavailable, FileScoring, FitResult,
                               InMemoryClustering, Preparing, Summarising, check_k)

__all__ = ["Engine", "InMemoryClustering", "Summarising", "Preparing", "FileScoring", "EngineError", "EngineUnavailable", "FitResult", "ENGINES", "get_engine", "check_k", "K_MIN", "K_MAX"]

# name -> (module, class); modules are imported only when their engine is asked for.
ENGINES = {
    "numpy": ("core.engines.numpy_engine", "NumpyEngine"),
    "spark": ("core.engines.spark_engine", "SparkEngine"),
}


def get_engine(name: str, **options) -> Engine:
    """The engine called ``name``, constructed with ``options``.

    Parameters
    ----------
    name : {"numpy", "spark"}
    **options
        Passed to the engine's constructor (e.g. ``chunk_rows`` for numpy, ``master`` for Spark).

    Returns
    -------
    Engine

    Raises
    ------
    ValueError
        Unknown engine name.
    EngineUnavailable
        The engine's optional dependency is not installed.
    """
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")
    module_name, cls_name = ENGINES[name]
    try:
        if name == "spark":
            import pyspark  # noqa: F401  (the engine module may import it lazily; say so now, not mid-run)
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if name == "spark":
            raise EngineUnavailable(
                f"the Spark engine needs {exc.name or 'pyspark'}, which is not installed; "
                "install it with: pip install -r requirements-spark.txt") from None
        raise
    return getattr(module, cls_name)(**options)
