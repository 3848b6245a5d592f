"""The engine interface: what every k-means engine (numpy, Spark, later GMM or GPU) provides.

An engine fits on a data source (:mod:`core.reading.sources`) and returns a :class:`FitResult`
(scaler parameters, centroids, sizes, inertia); it assigns labels chunk by chunk. A
registered version is the same whichever engine fitted it: the model is built from the
FitResult (:meth:`core.fitting.model.SegmentationModel.from_fit`) and scored with numpy.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["FitResult", "Engine", "InMemoryClustering", "Summarising", "Preparing", "FileScoring", "EngineUnavailable", "EngineError", "K_MIN", "K_MAX", "check_k"]

K_MIN, K_MAX = 2, 50


def check_k(k, n: int) -> int:
    """The one check of a number of segments, for every recipe and engine.

    Parameters
    ----------
    k : int
        Segments asked for.
    n : int
        Customers fitted on.

    Returns
    -------
    int
        ``k`` as an int.

    Raises
    ------
    ValueError
        Not a whole number, or outside ``K_MIN`` to ``min(K_MAX, n - 1)``; the message says the range.
    """
    try:
        whole = int(k)
    except (TypeError, ValueError):
        raise ValueError(f"k must be a whole number of segments such as 6, got {k!r}") from None
    if whole != k and not isinstance(k, str):
        raise ValueError(f"k must be a whole number of segments such as 6, got {k!r}")
    high = min(K_MAX, int(n) - 1)
    if not K_MIN <= whole <= high:
        raise ValueError(f"k must be between {K_MIN} and {high} for {n} customers, got {whole}")
    return whole


class EngineUnavailable(RuntimeError):
    """Raised when an engine's optional dependency (e.g. pyspark) is not installed or reachable.

    The message is one line for people and says how to install or fix it.
    """


class EngineError(RuntimeError):
    """Raised by an engine for a failure a person can act on (bad source, unreachable master).

    The message is one line; the CLI prints it and exits 2.
    """


@dataclass(frozen=True)
class FitResult:
    """What an engine's fit returns.

    Parameters
    ----------
    features : list of str
        Feature columns, in the order of the columns of ``mean``, ``scale`` and ``centroids``.
    mean, scale : ndarray of shape (d,)
        StandardScaler parameters: mean and population standard deviation (1.0 where it is 0).
    centroids : ndarray of shape (k, d)
        Centroids in scaled units. Engines return them in their own order;
        :meth:`core.fitting.model.SegmentationModel.from_fit` renumbers them.
    sizes : ndarray of shape (k,)
        Customers nearest to each centroid (same order as ``centroids``).
    inertia : float
        Sum of squared scaled distances of every customer to its centroid.
    n_iter : int
        Lloyd iterations (of the kept start).
    rows : int
        Customers fitted on.
    seconds : float
        Wall time of the fit.
    info : dict
        Engine name, master, streaming/in-memory, chunk size, ... for version metadata (JSON-able).
    """

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    centroids: np.ndarray
    sizes: np.ndarray
    inertia: float
    n_iter: int
    rows: int
    seconds: float
    info: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of centroids."""
        return int(self.centroids.shape[0])


@runtime_checkable
class Engine(Protocol):
    """A k-means engine.

    ``source`` is a :class:`core.reading.sources.DataSource` (a delimited or Parquet file read in
    chunks), a prepared pandas DataFrame, or (numpy engine only) an ndarray of feature values.
    """

    name: str

    def fit(self, source: Any, *, features, k: int, seed: int, n_init: int, max_iter: int) -> FitResult:
        """Fit the scaler and k-means on every customer of ``source``."""
        ...

    def assign(self, source: Any, fit: FitResult, *, chunk_rows: int = 100_000) -> Iterator[np.ndarray]:
        """Yield the nearest centroid (index into ``fit.centroids``) of each customer, chunk by chunk,
        in the source's row order."""
        ...


@runtime_checkable
class InMemoryClustering(Protocol):
    """Optional capability: k-means on an already scaled matrix in memory.

    Selection sweeps, prediction strength and bootstrap stability fit through the engine they are
    given (:func:`core.fitting.measures.fit_kmeans`); the numpy engine's is the default.
    """

    def cluster(self, Z: np.ndarray, k: int, *, seed: int, n_init: int, max_iter: int = 300) -> Any:
        """A ``core.fitting.model.KMeansResult`` (``centers``, ``labels``, ``inertia``) of ``Z``."""
        ...


@runtime_checkable
class Summarising(Protocol):
    """Optional capability: the version's ``aggregates`` and stratified ``sample``, made where the data lives.

    Without it, :func:`core.versions.pipeline.summarise_streamed` makes one pass over
    ``source.iter_chunks()`` (Spark has its own).
    """

    def summarise(self, source: Any, model: Any, *, sample_size: int, seed: int) -> tuple[dict, Any, np.ndarray]:
        """``(aggregates, sample DataFrame, segments of the sample)`` in ``model``'s numbering."""
        ...


@runtime_checkable
class Preparing(Protocol):
    """Optional capability: the engine's own cleaning of a source, reported in the version's metadata."""

    def prepare(self, source: Any) -> Any:
        """An object with ``report`` (a ``core.reading.cleaning.CleaningReport``)."""
        ...


@runtime_checkable
class FileScoring(Protocol):
    """Optional capability: score every customer of a source where the data lives (``score --engine``)."""

    def score_file(self, source: Any, model: Any, meta: dict, out: str, *, progress: Any = None) -> str:
        """Write the scores to ``out``; return a one-line summary."""
        ...
