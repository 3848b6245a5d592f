"""The one bridge between the dashboard and core, composed of small parts.

A :class:`Services` object lives on the Flask server (``server.extensions``), not in a
module global. It is a thin facade over:

- :class:`~.store.ModelStore`: loads and verifies model files and decides what is served
  (the active version, verified, or its verified in-memory copy, or nothing:
  :class:`~.store.ModelUnavailable`); it owns the degraded state and its lock;
- :class:`~.results.ResultCache`: flask-caching's FileSystemCache shared by every gunicorn
  worker, keyed by model version and data fingerprint, behind a small per-process LRU;
- feature services that receive those parts: :class:`~.analysis.AnalysisService`,
  :class:`~.predict.PredictService`, :class:`~.stability.StabilityService`,
  :class:`~.uploads.UploadService`, :class:`~.versions.VersionService` and
  :class:`~.campaigns.CampaignService` (used directly as ``services.campaigns``);
- :class:`~.audit.Auditor`: every state change appended to the audit log beside the registry;
- :class:`~.access.Access`: the caller's role, checked by every state-changing method here (and by
  ``services.campaigns``) whatever page, callback or route called it. The caller comes from
  ``identify`` (the web layer's session or API key); a background job passes ``caller=``.

The pages and the API call the facade's methods; their signatures are the public contract.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from core.access.accounts import NOBODY, Caller
from core.fitting.model import SegmentationModel
from core.versions.registry import Registry, RegistryError
from core.fitting.selection import SweepResult

from .access import Access
from .analysis import Analysis, AnalysisService, build_analysis, profile_tables, scaled
from .audit import Auditor
from .cache import CACHE_DIR
from .campaigns import CampaignService
from .predict import PredictService
from .results import ResultCache
from .stability import StabilityService
from .store import LiveModel, ModelStore, ModelUnavailable
from .uploads import UPLOAD_SWEEP_MAX, UploadLimits, UploadService
from .value import ValueService
from .versions import VersionService, common_note

__all__ = ["Analysis", "Services", "get_services", "CACHE_DIR", "Access", "build_analysis", "profile_tables", "scaled",
           "ModelStore", "ModelUnavailable", "LiveModel", "ResultCache", "UploadLimits", "UPLOAD_SWEEP_MAX",
           "common_note"]


class Services:
    """Cached access to the registry, the data and the analyses of the served (active) model."""

    def __init__(self, registry: Registry, cache, data_path: str | os.PathLike | None = None, *, identify=None):
        self.registry = registry
        self.cache = cache
        self.data_path = data_path
        self.store = ModelStore(registry)
        self.results = ResultCache(cache, registry=registry)
        self.auditor = Auditor(registry)
        self.access = Access(self.auditor, identify)
        self.analyses = AnalysisService(registry, self.store, self.results, self.auditor, data_path)
        self.predictions = PredictService(self.analyses, self.store, self.results)
        self.stabilities = StabilityService(self.analyses, self.results)
        self.uploads = UploadService(registry, self.results, self.auditor)
        self.versions = VersionService(registry, self.store, self.analyses, self.results, self.auditor)
        self.campaigns = CampaignService(registry, self.analyses, self.results, self.auditor, access=self.access)
        self.values = ValueService(registry, self.store, self.auditor, access=self.access)

    @classmethod
    def from_env(cls) -> "Services":
        """Services built from the environment alone, for code without a Flask request (background callbacks).

        Same registry (SEGMENTLENS_MODELS), data (SEGMENTLENS_DATA) and on-disk result cache
        (SEGMENTLENS_CACHE_DIR/results) as the app's, so results computed here are the app's too.
        Nobody is signed in here: a state change needs the ``caller=`` the job was started for.
        """
        from cachelib import FileSystemCache

        cache_dir = Path(os.environ.get("SEGMENTLENS_CACHE_DIR", CACHE_DIR))
        # Same settings as factory.create_app's flask-caching FileSystemCache, which writes the same files.
        cache = FileSystemCache(str(cache_dir / "results"), threshold=200, default_timeout=0)
        return cls(Registry(), cache, None, identify=lambda: NOBODY)

    # ------------------------------------------------------------ serving (ModelStore)
    def ensure_model(self) -> str:
        """Train a model on the configured data when the registry has none; return the active version."""
        return self.analyses.ensure_model()

    def configured_data(self) -> Path:
        """The data file given by configuration (flag, SEGMENTLENS_DATA, data/, sample)."""
        return self.analyses.configured_data()

    def data_path_for(self, meta: dict) -> Path:
        """The file a model's analysis is shown on: its training file when still there, else the configured one."""
        return self.analyses.data_path_for(meta)

    def model(self, version: str | None = None) -> tuple[SegmentationModel, dict]:
        """The served model and its metadata (ModelUnavailable when none can be); an explicit version never falls back."""
        return self.analyses.model(version)

    def status(self) -> dict:
        """``{"status": "ok"|"degraded", "reason", "active", "serving", "warning"}`` (for /health and the banner).

        A manifest read from its backup (``manifest.json`` damaged) is a warning: the server works, an
        admin should look (the next registry change rewrites the manifest)."""
        status = dict(self.store.status())
        if self.registry.recovered:
            note = "; ".join(self.registry.warnings) or "manifest.json is damaged; the registry was read from its backup"
            status["warning"] = f"{status['warning']}; {note}" if status.get("warning") else note
            status["manifest_recovered"] = True
        return status

    def model_warning(self) -> str | None:
        """What is wrong with serving the active model, for a banner (None while all is well); never raises."""
        status = self.status()
        return status["reason"] if status["status"] != "ok" else status.get("warning")

    def live_model(self) -> LiveModel:
        """The served model with its metadata and names, as scoring sees it (cheap: one stat() when unchanged)."""
        return self.store.live()

    # ------------------------------------------------------------ analyses (AnalysisService)
    def analysis(self) -> Analysis:
        """The full analysis of the served model on its data (cached by version + data file state)."""
        return self.analyses.analysis()

    def view(self, name: str, build, *parts):
        """A page's rendered content, kept per process for the served version, data, names and ``parts``."""
        return self.analyses.view(name, build, *parts)

    def segment_names(self) -> list[str]:
        """Current names of the served model's segments (renames included)."""
        return self.analyses.segment_names()

    def rename_segment(self, segment: int, name: str, *, caller: Caller | None = None) -> str:
        """Rename a segment of the served model (analysts); returns the saved name or raises ValueError (audited)."""
        who = self.access.require("rename", f"segment {segment}", caller)
        return self.analyses.rename_segment(segment, name, actor=who.name)

    def adopt_suggested_name(self, version: str, segment: int, *, caller: Caller | None = None) -> str:
        """Give a version's segment the persona name its data suggests (a rename: analysts); returns it (audited)."""
        from core.versions.training import adopt_suggested_names

        who = self.access.require("rename", f"{version} segment {segment}", caller)
        try:
            changes = adopt_suggested_names(self.registry.metadata(version), [segment])
            self.registry.update_meta(version, **changes)
        except (RegistryError, ValueError) as exc:
            self.auditor.record(who.name, "rename", f"{version} segment {segment}", "failed", str(exc))
            raise
        name = changes["segment_names"][segment]
        self.auditor.record(who.name, "rename", f"{version} segment {segment}", "ok", name)
        return name

    def sweep(self, k_min: int, k_max: int, progress=None) -> SweepResult:
        """Metrics per k on the served model's features and data (cached)."""
        return self.analyses.sweep(k_min, k_max, progress=progress)

    def selection_csv(self, positions, *, caller: Caller | None = None) -> str:
        """Spreadsheet-safe CSV of some customers (row positions): ID, segment, segment name, confidence.

        One row per customer, so analysts and admins only (viewers export aggregates)."""
        self.access.require("export_customers", "selection", caller)
        return self.analyses.selection_csv(positions)

    def membership_csv(self, *, caller: Caller | None = None) -> str:
        """Spreadsheet-safe CSV: ID, segment, segment name, confidence for every customer (analysts and admins)."""
        self.access.require("export_customers", "membership", caller)
        return self.analyses.membership_csv()

    def seed_export_zip(self, *, caller: Caller | None = None) -> tuple[str, bytes]:
        """The served model as the seed's kmeans_model.pkl + scaler.pkl + features.json, zipped (analysts; audited)."""
        who = self.access.require("export_model", "seed export", caller)
        filename, content = self.analyses.seed_export_zip()
        self.auditor.record(who.name, "export_model", filename, "ok", f"{len(content):,} bytes (pickles)")
        return filename, content

    def compare_segments(self, a: int, b: int) -> pd.DataFrame:
        """Means, difference and Cohen's d of every profile column between segments a and b (cached)."""
        return self.analyses.compare_segments(a, b)

    def profiles_csv(self) -> str:
        """Spreadsheet-safe CSV of every profile table: one row per measure, one column per segment."""
        return self.analyses.profiles_csv()

    # ------------------------------------------------------------ prediction (PredictService)
    def predict_form(self) -> dict:
        """Form spec of the what-if page."""
        return self.predictions.predict_form()

    def map_background(self, max_points: int = 2500) -> dict:
        """A seeded, downsampled sample of the customers' 2D PCA coordinates with their segments."""
        return self.predictions.map_background(max_points)

    def segment_cards(self) -> list[dict]:
        """Per segment: description, last-campaign response and recommended products."""
        return self.predictions.segment_cards()

    def what_if(self, texts: dict) -> dict:
        """Score a hypothetical customer typed into the form: errors per field, or the full explanation."""
        return self.predictions.what_if(texts)

    def derive_features(self, texts: dict) -> tuple[dict, dict]:
        """Features computed from raw fields typed into the form: ({feature: value}, {field: error})."""
        return self.predictions.derive_features(texts)

    def typical_member(self, segment: int) -> dict:
        """Fields of the member closest to a segment's centre."""
        return self.predictions.typical_member(segment)

    def customer_fields(self, customer_id) -> dict:
        """Fields of an existing customer by ID; ValueError naming the ID when there is none."""
        return self.predictions.customer_fields(customer_id)

    def scenarios_csv(self, scenarios: list[dict]) -> str:
        """Spreadsheet-safe CSV of saved what-if scenarios."""
        return self.predictions.scenarios_csv(scenarios)

    def segments_summary(self) -> list[dict]:
        """Per segment (API): size, share, name, description, feature means, last-campaign response rate."""
        return self.predictions.segments_summary()

    # ------------------------------------------------------------ stability (StabilityService)
    def stability(self, resamples: int = 30, window: str = "quarter", progress=None) -> dict:
        """Bootstrap and enrolment-time stability of the served model on its data (each part cached)."""
        return self.stabilities.stability(resamples, window, progress=progress)

    def drift_data_path(self) -> Path | None:
        """The configured later extract to compare with (SEGMENTLENS_DRIFT_DATA), when set and present."""
        return self.stabilities.drift_data_path()

    def drift(self, source=None, name: str | None = None, progress=None) -> dict:
        """Compare new data (upload bytes, a path, or the configured file) with the served model's data."""
        return self.stabilities.drift(source, name=name, progress=progress)

    # ------------------------------------------------------------ uploads and retrains (UploadService)
    def upload_limit(self) -> int:
        """Largest accepted upload in bytes (SEGMENTLENS_MAX_UPLOAD_MB)."""
        return self.uploads.upload_limit()

    def accept_upload(self, contents: str | None, filename: str | None, *, caller: Caller | None = None) -> dict:
        """Check an upload and keep it (bounded folder; analysts); returns its report or raises DataFileError (audited)."""
        who = self.access.require("upload", str(filename or "upload")[:120], caller)
        return self.uploads.accept_upload(contents, filename, actor=who.name)

    def upload_sweep(self, token, features, mapping: dict | None = None) -> dict:
        """Recommended k for the uploaded data on the chosen features (cached)."""
        return self.uploads.upload_sweep(token, features, mapping=mapping)

    def remap_upload(self, token, name, mapping: dict, *, caller: Caller | None = None) -> dict:
        """The upload's report again, read through a column mapping the user confirmed or changed (analysts)."""
        self.access.require("upload", str(name or "upload")[:120], caller)
        return self.uploads.remap_upload(token, name, mapping)

    def retrain_upload(self, token, name, k, features, progress=None, *, caller: Caller | None = None,
                       mapping: dict | None = None) -> dict:
        """Train a candidate on a kept upload (never activated; analysts); returns its version (audited).

        A background job passes ``caller``: the signed-in user of the request that started it."""
        who = self.access.require("retrain", str(name or "upload")[:120], caller)
        return self.uploads.retrain_upload(token, name, k, features, progress, reference=self._reference,
                                           actor=who.name, mapping=mapping)

    def _reference(self):
        """The served model, its names and customers, as core.versions.training.Reference (None without one), and its meta."""
        from core.versions import training
        from core.reading.loading import DataFileError

        try:
            model, meta = self.model()
        except RegistryError:
            return None, {}
        try:
            frame = self.analysis().frame
        except (DataFileError, OSError):  # its data is gone: names still carry over, only the comparison is lost
            frame = None
        return training.Reference(model, meta["version"], self.segment_names(), frame,
                                  generated=meta.get("generated_names")), meta

    # ------------------------------------------------------------ versions (VersionService)
    def versions_table(self) -> list[dict]:
        """Every model version, newest first (needs no served model)."""
        return self.versions.versions_table()

    def activate_version(self, version: str, *, caller: Caller | None = None) -> str:
        """Make a version active (admins; refused when its file fails verification); audited."""
        who = self.access.require("activate", str(version)[:40], caller)
        return self.versions.activate_version(version, actor=who.name)

    def rollback_version(self, *, caller: Caller | None = None) -> str:
        """Re-activate the previously active version (admins); returns it; audited."""
        who = self.access.require("rollback", "-", caller)
        return self.versions.rollback_version(actor=who.name)

    def delete_version(self, version: str, *, caller: Caller | None = None) -> str:
        """Delete an inactive version and then its unused data copy (admins); audited."""
        who = self.access.require("delete", str(version)[:40], caller)
        return self.versions.delete_version(version, actor=who.name)

    def reset_monitoring(self, monitor, *, caller: Caller | None = None) -> str:
        """Forget every counted prediction and start a new window (admins; audited); returns who reset it."""
        who = self.access.require("reset_monitoring", "monitoring", caller)
        monitor.reset_window(self, who.name)
        return who.name

    def comparison(self, version: str) -> dict:
        """A version compared with the served one, with ``common_note`` saying how customers were matched."""
        return self.versions.comparison(version)

    def report_html(self) -> str:
        """The self-contained HTML report of the segments."""
        return self.versions.report_html()


def get_services() -> Services:
    """The Services of the running app (from the Flask server handling this request)."""
    import flask

    return flask.current_app.extensions["segmentlens"]
