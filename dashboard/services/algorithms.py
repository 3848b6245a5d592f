"""The comparison of algorithms for the served version (core.fitting.compare_algorithms), computed on request and cached."""
from __future__ import annotations

from core.fitting.compare_algorithms import compare

from .analysis import AnalysisService
from .results import ResultCache

__all__ = ["AlgorithmService"]


class AlgorithmService:
    """Every algorithm on the served version's customers, features and k.

    Parameters
    ----------
    analyses : AnalysisService
    results : ResultCache
        Shared by the app's workers and its background jobs: a comparison computed by one is shown by all.
    """

    def __init__(self, analyses: AnalysisService, results: ResultCache):
        self.analyses = analyses
        self.results = results

    def _key(self, analysis) -> tuple:
        return ("compare_algorithms", analysis.version, analysis.fingerprint)

    def cached(self) -> dict | None:
        """The served version's comparison when one was computed (None otherwise; nothing is computed)."""
        return self.results.peek(self._key(self.analyses.analysis()))

    def compare(self) -> dict:
        """The served version's comparison (computed once, then cached)."""
        analysis = self.analyses.analysis()
        model, meta = self.analyses.model(analysis.version)
        algorithm = meta.get("algorithm") or {}
        k = int(algorithm.get("clusters") or analysis.k)
        return self.results.cached(self._key(analysis), lambda: dict(
            compare(analysis.frame, list(model.features), k=max(2, k), categorical=list(model.categorical),
                    seed=int(meta.get("seed", 42))), version=analysis.version,
            algorithm=algorithm.get("name", "kmeans")))
