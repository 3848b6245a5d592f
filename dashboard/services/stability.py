"""Services for stability and drift (the /stability page)."""
from __future__ import annotations

import os
from pathlib import Path

from core.versions.pipeline import prepare
from core.versions.views import bootstrap_from_json, temporal_from_json, with_enrolment

from .analysis import AnalysisService, scaled
from .results import ResultCache

__all__ = ["StabilityService"]


class StabilityService:
    """Stability of the served model's segments and drift of new data (the /stability page)."""

    def __init__(self, analyses: AnalysisService, results: ResultCache):
        self.analyses, self.results = analyses, results

    def stability(self, resamples: int = 30, window: str = "quarter", progress=None) -> dict:
        """Bootstrap and enrolment-time stability of the active model on its data (each part cached).

        Returns {"bootstrap": BootstrapResult, "temporal": TemporalResult, "version", "source"};
        ``progress(done, total, message)`` runs 0-100 over both parts when they are computed.
        """
        from core.fitting.stability import bootstrap_stability, temporal_stability

        resamples = int(resamples)
        if not 1 <= resamples <= 1000:
            raise ValueError(f"resamples must be between 1 and 1000, got {resamples}")
        a = self.analyses.analysis()
        model, _ = self.analyses.model(a.version)
        seed = int(a.meta.get("seed", 42))
        n_init = int(a.meta.get("n_init", 10))  # refits fitted like the model, or stability is understated
        report = progress or (lambda *_args: None)
        stored = self._stored(a, resamples, window, seed, n_init)
        if stored is not None:
            report(100, 100, "done")
            return {**stored, "version": a.version, "source": a.source}
        boot = self.results.cached(
            ("stability-boot", a.version, a.fingerprint, resamples, seed, n_init),
            lambda: bootstrap_stability(scaled(a), a.labels, resamples=resamples, seed=seed, n_init=n_init,
                                        progress=lambda d, t, m: report(int(80 * d / t), 100, m)))
        def over_time():
            frame = with_enrolment(a.frame)  # a transaction log's customers enrol at their first purchase
            if "Dt_Customer" not in frame:
                return None  # no enrolment date: the page says so; the bootstrap still shows
            return temporal_stability(frame, model, window=window,
                                      progress=lambda d, t, m: report(80 + int(20 * d / t), 100, m))

        temporal = self.results.cached(("stability-time", a.version, a.fingerprint, window), over_time)
        report(100, 100, "done")
        return {"bootstrap": boot, "temporal": temporal, "version": a.version, "source": a.source}

    def _stored(self, a, resamples: int, window: str, seed: int, n_init: int) -> dict | None:
        """The stored views' stability when they hold these settings for the data shown (else None)."""
        if not a.from_views:
            return None
        stored = (self.analyses.stored_views(a.version) or {}).get("views", {}).get("stability")
        if not stored or (stored["resamples"], stored["window"], stored["seed"], stored["n_init"]) != (
                resamples, window, seed, n_init):
            return None
        return self.results.local(("stability-views", a.version, a.fingerprint, resamples, window, seed, n_init),
                                  lambda: {"bootstrap": bootstrap_from_json(stored["bootstrap"]),
                                           "temporal": temporal_from_json(stored["temporal"])
                                           if stored.get("temporal") else None})

    def drift_data_path(self) -> Path | None:
        """The configured later extract to compare with (SEGMENTLENS_DRIFT_DATA), when set and present."""
        path = os.environ.get("SEGMENTLENS_DRIFT_DATA")
        return Path(path) if path and Path(path).is_file() else None

    def drift(self, source=None, name: str | None = None, progress=None) -> dict:
        """Compare new data (upload bytes, a path, or the configured file) with the active model's data (cached).

        Returns {"report": DriftReport, "reference_source", "new_source", "version", "note"}; raises
        core.reading.loading.DataFileError / ValueError with a message for people when the file cannot be used.
        """
        from core.insight.drift import compare_new_data
        from core.versions.pipeline import fingerprint

        if source is None:
            source = self.drift_data_path()
            if source is None:
                raise ValueError("no file to compare: upload one, or set SEGMENTLENS_DRIFT_DATA")
        if isinstance(source, (bytes, bytearray)):
            data, name = bytes(source), name or "upload"
        else:
            data, name = Path(source).read_bytes(), name or Path(source).name
        a = self.analyses.analysis()
        model, meta = self.analyses.model(a.version)
        key = ("drift", a.version, a.fingerprint, fingerprint(data))

        def compute():
            new = prepare(data, name=name)
            report = compare_new_data(model, a.frame, new.frame, progress=progress)
            return {"report": report, "new_source": new.source, "new_rows": new.report.rows_used}
        result = dict(self.results.cached(key, compute))
        note = None
        if meta.get("data_fingerprint") and meta["data_fingerprint"] != a.fingerprint:
            note = (f"The model's training file is no longer available; the comparison uses {a.source}, "
                    "the data the dashboard shows.")
        result.update(reference_source=a.source, version=a.version, note=note, new_source=name)
        return result

