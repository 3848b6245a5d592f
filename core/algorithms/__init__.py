"""Clustering algorithms beyond k-means (GMM, k-prototypes, HDBSCAN, consensus); contract in :mod:`.base`.

:data:`ALGORITHMS` is the one list of what a version can be fitted with; :func:`get_algorithm`
the one lookup (a one-line error for a name it does not know). ``kmeans`` is fitted by the engines
(:mod:`core.engines`) and has no module here; every other algorithm is a module with ``fit`` and
``predict`` (:mod:`.base`), imported only when asked for (scikit-learn and scipy are slow imports).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["Algorithm", "ALGORITHMS", "DEFAULT_ALGORITHM", "get_algorithm", "algorithm_names", "UnknownAlgorithm"]

DEFAULT_ALGORITHM = "kmeans"


class UnknownAlgorithm(ValueError):
    """An algorithm name that is not in :data:`ALGORITHMS` (the message lists the known ones)."""


@dataclass(frozen=True)
class Algorithm:
    """What the recipe, the model and the pages need to know of one algorithm.

    Parameters
    ----------
    name : str
    module : str or None
        Dotted module implementing :mod:`.base`'s contract; None for ``kmeans`` (the engines fit it).
    soft : bool
        Whether it gives membership probabilities (``Placement.proba``).
    categorical : bool
        Whether it takes categorical features beside the numeric ones.
    noise : bool
        Whether some customers may be left Unassigned.
    title : str
        How the pages name it.
    """

    name: str
    module: str | None
    soft: bool
    categorical: bool
    noise: bool
    title: str

    def load(self):
        """The algorithm's module (``fit``, ``predict``); never called for ``kmeans``."""
        if self.module is None:
            raise ValueError("kmeans is fitted by the engines (core.engines), not by an algorithm module")
        try:
            return importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            if exc.name != self.module:
                raise
            raise UnknownAlgorithm(f"algorithm {self.name!r} is not installed in this build "
                                   f"(no module {self.module})") from None


ALGORITHMS = {a.name: a for a in (
    Algorithm("kmeans", None, soft=False, categorical=False, noise=False, title="k-means"),
    Algorithm("gmm", "core.algorithms.gmm", soft=True, categorical=False, noise=False, title="Gaussian mixture"),
    Algorithm("kprototypes", "core.algorithms.kprototypes", soft=False, categorical=True, noise=False,
              title="k-prototypes"),
    Algorithm("hdbscan", "core.algorithms.hdbscan", soft=False, categorical=False, noise=True, title="HDBSCAN"),
    Algorithm("consensus", "core.algorithms.consensus", soft=False, categorical=False, noise=False,
              title="Consensus clustering"),
)}


def algorithm_names() -> list[str]:
    """The known algorithm names, in the order the pages and CLI list them."""
    return list(ALGORITHMS)


def get_algorithm(name: str | None) -> Algorithm:
    """The algorithm of this name (None: ``kmeans``).

    Parameters
    ----------
    name : str or None

    Returns
    -------
    Algorithm

    Raises
    ------
    UnknownAlgorithm
        One line naming the unknown algorithm and listing the known ones.
    """
    key = DEFAULT_ALGORITHM if name is None else str(name).strip().lower()
    if key not in ALGORITHMS:
        raise UnknownAlgorithm(f"unknown algorithm {str(name)[:40]!r}; choose from {', '.join(ALGORITHMS)}")
    return ALGORITHMS[key]
