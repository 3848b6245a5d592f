"""What the pages show about a model on its data: the Analysis bundle, how it is built, and its service."""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core.insight import profiles
from core.insight.analysis import (
    Analysis, Basis, analysis_from_views, basis_of, build_analysis, customers, profile_tables,
    scaled,
)
from core.versions.exports import to_safe_csv
from core.fitting.model import SegmentationModel
from core.versions.pipeline import Prepared, resolve_data_path, train
from core.versions.registry import Registry, RegistryError
from core.reading.schema import to_units, unit_field
from core.fitting.selection import SweepResult, sweep
from core.versions.views import projection_from_json, score_frame, sweep_from_json

from .audit import Auditor
from .results import ResultCache
from .store import ModelStore, padded_names

__all__ = ["Analysis", "AnalysisService", "build_analysis", "analysis_from_views", "scaled", "profile_tables"]
# Analysis and its builders live in core.insight.analysis; this module caches and serves them.

_SWEEP_STABILITY_RESAMPLES = 10
_FIRST_TRAINING_WAIT = 3600.0  # seconds another worker waits for the first start's training
_MAX_NAME = 60


class AnalysisService:
    """The active model on its data: the analysis, segment names and renames, sweeps, profile exports."""

    def __init__(self, registry: Registry, store: ModelStore, results: ResultCache, auditor: Auditor,
                 data_path: str | os.PathLike | None = None):
        self.registry, self.store, self.results, self.auditor = registry, store, results, auditor
        self.data_path = data_path

    # ------------------------------------------------------------ model & data
    def ensure_model(self) -> str:
        """Train a model on the configured data when the registry has none; return the active version."""
        active = self.registry.active_version()
        if active:
            return active
        # One trainer at a time across gunicorn workers; the others find its model when they get the lock.
        # The configured data may be any input kind the CLI trains (a customer table, a transaction log).
        with self.registry.training_lock(wait=_FIRST_TRAINING_WAIT):
            active = self.registry.active_version()
            if not active:
                active = train(self.configured_data(), registry=self.registry, lock_wait=None).version
        return active

    def configured_data(self) -> Path:
        """The data file given by configuration (flag, SEGMENTLENS_DATA, data/, sample)."""
        return resolve_data_path(self.data_path)

    def model(self, version: str | None = None) -> tuple[SegmentationModel, dict]:
        """The served model and its metadata (see ModelStore), or an explicit version's (never another one)."""
        if version is None:
            return self.store.served()
        return self.store.load(version), self.registry.metadata(version)

    def data_path_for(self, meta: dict) -> Path:
        """The file the model's analysis is shown on: its training file when still there, else the configured one."""
        trained_on = meta.get("data_path")
        if trained_on and Path(trained_on).exists():
            return Path(trained_on)
        return self.configured_data()

    def basis(self, version: str, meta: dict | None = None) -> Basis:
        """What a version is shown on (core.insight.analysis.basis_of), its sample read once per process."""
        meta = meta if meta is not None else self.registry.metadata(version)
        return basis_of(self.registry, version, meta, data_path=self.data_path,
                        sample=self.sample_basis(version, meta) or False)

    # ------------------------------------------------------------ analyses
    def analysis(self) -> Analysis:
        """The analysis of the served model on its basis (cached by version + basis).

        Served from the version's stored views when they were computed on that basis (no
        computation: the customers are read only when a page needs them); else computed.
        """
        self.registry.active_version() or self.ensure_model()
        model, meta = self.model()  # raises ModelUnavailable when the active model cannot be served
        version = meta["version"]
        basis = self.basis(version, meta)
        key = ("analysis", version, *basis.key)
        found = self.results.get(key)
        if found is not None:
            return found
        views = self.stored_views(version)
        if basis.matches(views):
            projection = projection_from_json(views["views"]["analysis"]["projection"])

            def load():
                return self.results.cached(("customers", *key[1:]), lambda: customers(
                    model, basis.prepared(self.registry).frame, projection))
            return self.results.local(key, lambda: analysis_from_views(views, meta, load))
        # A sample is in memory already: keep its analysis in this process rather than in the shared cache.
        keep = self.results.local if basis.sample is not None else self.results.cached
        return keep(key, lambda: build_analysis(model, meta, basis.prepared(self.registry), basis.sample))

    def sample_basis(self, version: str, meta: dict | None = None):
        """The version's sample when its table is larger than it (core.versions.sample_basis), else None.

        Read and verified once per process; an unreadable sample means the data file is read instead.
        """
        from core.versions.sample_basis import sampled_customers

        def read():
            try:
                return sampled_customers(self.registry, version, meta) or False
            except (RegistryError, KeyError, ValueError, TypeError, OSError) as exc:
                print(f"SegmentLens: sample of {version} not used: {exc}", file=sys.stderr, flush=True)
                return False
        return self._once_per_artifact(version, "sample", read)

    def stored_views(self, version: str) -> dict | None:
        """A version's ``views`` artifact, parsed once per process (None when it has none or it cannot be read)."""
        def read():
            try:
                return self.registry.artifact_json(version, "views") or {}
            except RegistryError as exc:  # a damaged artifact: pages compute instead, the warm-up rewrites it
                print(f"SegmentLens: views of {version} not used: {exc}", file=sys.stderr, flush=True)
                return {}
        return self._once_per_artifact(version, "views", read)

    def _once_per_artifact(self, version: str, kind: str, read):
        """``read()`` kept in this process per artifact file (its checksum); None without the artifact or
        when ``read`` gives a false value (it cannot be used)."""
        try:
            record = (self.registry.metadata_entry(version).get("artifacts") or {}).get(kind)
        except RegistryError:
            return None
        if not record:
            return None
        return self.results.local((kind, version, record["sha256"]), read) or None

    def ensure_views(self) -> str | None:
        """Compute and store the active version's views when it lacks them (or they describe another basis).

        Run once when the server starts (a warm-up, never on a visitor's request); one process
        computes while the other workers wait for its result. Returns the version warmed, or None.
        """
        from core.versions.views import store_views

        version = self.registry.active_version()
        if not version:
            return None
        try:
            model, meta = self.model()
            basis = self.basis(version, meta)
            if basis.matches(self.stored_views(version)):
                return None
            with open(self.registry.root / ".views.lock", "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                if basis.matches(self.stored_views(version)):
                    return None
                prepared = basis.prepared(self.registry)
                frame = score_frame(model, prepared.frame)
                views = store_views(self.registry, version, model, prepared, data_path=basis.path, meta=meta,
                                    frame=frame, basis=basis.sample)
        except (RegistryError, OSError, ValueError, KeyError, TypeError) as exc:  # pages compute as before
            print(f"SegmentLens: views of {version} not computed: {exc}", file=sys.stderr, flush=True)
            return None
        if basis.sample is None:  # the customers were just read: the first page that needs them does not again
            self.results.put(("customers", version, *basis.key),
                             customers(model, frame, projection_from_json(views["views"]["analysis"]["projection"])))
        return version

    def customers_of(self, version: str, meta: dict | None = None) -> Prepared:
        """A version's customers as the pages use them: its sample beyond the sample's size, else its data file."""
        return self.basis(version, meta).prepared(self.registry)

    def view(self, name: str, build, *parts):
        """A page's rendered content, kept per process for the served version, data and segment names.

        Building figures costs tens of milliseconds; the same view for the same model, data,
        names and ``parts`` (e.g. the selected segment) is the same, so it is built once.
        """
        a = self.analysis()
        return self.results.local(("view", name, a.version, a.fingerprint, tuple(self.segment_names()), *parts),
                                  build)

    def segment_names(self) -> list[str]:
        """Current names of the served model's segments (renames included)."""
        _, meta = self.model()
        return padded_names(meta, int(meta.get("k", 0)))

    def rename_segment(self, segment: int, name: str, *, actor: str = "local") -> str:
        """Rename a segment of the served model; returns the saved name or raises ValueError (both audited)."""
        typed = str(name or "")
        try:
            saved, version = self._rename(segment, typed)
        except ValueError as exc:
            self.auditor.record(actor, "rename", f"segment {segment}", "failed", f"{exc}; typed {typed[:80]!r}")
            raise
        self.auditor.record(actor, "rename", f"{version} segment {segment}", "ok", saved)
        return saved

    def _rename(self, segment, typed: str) -> tuple[str, str]:
        name = " ".join(typed.split())
        if not name:
            raise ValueError("enter a name")
        if len(name) > _MAX_NAME:
            raise ValueError(f"a name has at most {_MAX_NAME} characters")
        _, meta = self.model()
        names = self.segment_names()
        try:
            segment = int(segment)
        except (TypeError, ValueError):
            raise ValueError(f"no segment {segment!r}") from None
        if not 0 <= segment < len(names):
            raise ValueError(f"no segment {segment}")
        if any(n.lower() == name.lower() for i, n in enumerate(names) if i != segment):
            raise ValueError(f"another segment is already called {name!r}")
        names[segment] = name
        self.registry.update_meta(meta["version"], segment_names=names)
        return name, meta["version"]

    def sweep(self, k_min: int, k_max: int, progress=None) -> SweepResult:
        """Metrics per k on the served model's features and data (cached)."""
        analysis = self.analysis()
        key = ("sweep", analysis.version, analysis.fingerprint, k_min, k_max, _SWEEP_STABILITY_RESAMPLES)
        stored = (self.stored_views(analysis.version) or {}).get("views", {}).get("sweep") if analysis.from_views else None
        if stored and (stored["k_min"], stored["k_max"], stored["stability_resamples"]) == (
                k_min, k_max, _SWEEP_STABILITY_RESAMPLES):
            return self.results.local(key, lambda: sweep_from_json(stored["result"]))

        def compute():
            Z = scaled(analysis)
            # Stability per k is one of the criteria of the recommended k (10 refits per k, ~2 s on 2K rows).
            return sweep(Z, k_min, k_max, seed=int(analysis.meta.get("seed", 42)), current_k=analysis.k,
                         stability_resamples=_SWEEP_STABILITY_RESAMPLES, progress=progress)
        return self.results.cached(key, compute)

    def rules(self):
        """Rules per segment (core.insight.explanation: IMM threshold tree) of the served model on its customers (cached)."""
        from core.insight.explanation import explain_model

        a = self.analysis()
        model, _ = self.model(a.version)
        return self.results.local(("rules", a.version, a.fingerprint),
                                  lambda: explain_model(model, a.frame, a.labels))

    def rule_texts(self) -> list[str]:
        """Each segment's rule in words (from the version's stored views when they hold them)."""
        a = self.analysis()
        views = self.stored_views(a.version) or {}
        stored = (views.get("views") or {}).get("rules")
        if stored and len(stored.get("segments", [])) == a.k:
            return [str(r["rule"]) for r in sorted(stored["segments"], key=lambda r: r["segment"])]
        return [r.text for r in sorted(self.rules().segments, key=lambda r: r.segment)]

    def ktree(self) -> dict:
        """The k-transition tree (core.insight.ktree, k=2..8) of the served model's customers (cached, JSON-like)."""
        from core.insight.ktree import k_transition_tree

        a = self.analysis()
        model, meta = self.model(a.version)
        top = min(8, len(a.frame) - 1)
        # Profiles in the data's own units: a feature clustered on a log scale by its column (issue 30).
        units = np.column_stack([a.frame[unit_field(f)].to_numpy(dtype=float) if unit_field(f) in a.frame
                                 else to_units(f, a.frame[f].to_numpy(dtype=float)) for f in a.features])
        return self.results.cached(("ktree-units", a.version, a.fingerprint, top), lambda: k_transition_tree(
            scaled(a), list(a.features), X=units, k_values=range(2, top + 1),
            seed=int(meta.get("seed", 42)), reference_labels=a.labels))

    def selection_csv(self, positions) -> str:
        """Spreadsheet-safe CSV of some customers (row positions): ID, segment, segment name, confidence.

        No other customer field leaves the app: the ID is the user's own handle on a customer.
        """
        a = self.analysis()
        names = self.segment_names()
        pos = np.unique(np.asarray(positions, dtype=np.int64))
        rows = a.frame.iloc[pos[(pos >= 0) & (pos < len(a.frame))]]  # positions come from the browser
        labels = rows["segment"].to_numpy()
        out = pd.DataFrame({"ID": rows["ID"].to_numpy(), "segment": labels,
                            "segment_name": [names[s] for s in labels],
                            "confidence": rows["confidence"].round(4).to_numpy()})
        return to_safe_csv(out)

    def membership_csv(self) -> str:
        """Spreadsheet-safe CSV: ID, segment, segment name, confidence for every customer."""
        a = self.analysis()
        names = self.segment_names()
        out = pd.DataFrame({
            "ID": a.frame["ID"].to_numpy(),
            "segment": a.labels,
            "segment_name": [names[s] for s in a.labels],
            "confidence": a.frame["confidence"].round(4).to_numpy(),
        })
        return to_safe_csv(out)

    def seed_export_zip(self) -> tuple[str, bytes]:
        """The served model as the seed project's scikit-learn files, zipped: (file name, bytes).

        ``kmeans_model.pkl`` and ``scaler.pkl`` (joblib pickles for other programs: the registry never
        loads them) plus ``features.json`` naming the column order; see core.versions.seed_export.
        """
        import io
        import tempfile
        import zipfile
        from pathlib import Path

        from core.versions.seed_export import export_sklearn

        model, meta = self.model()
        buffer = io.BytesIO()
        with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in export_sklearn(model, folder, meta=meta):
                archive.write(path, Path(path).name)
        return f"segmentlens_{meta['version']}_sklearn.zip", buffer.getvalue()

    def compare_segments(self, a: int, b: int) -> pd.DataFrame:
        """Means, difference and Cohen's d of every profile column between segments a and b (cached)."""
        analysis = self.analysis()
        key = ("compare", analysis.version, analysis.fingerprint, int(a), int(b))
        return self.results.cached(key, lambda: profiles.compare_segments(
            analysis.frame, analysis.labels, int(a), int(b), profiles.PROFILE_COLUMNS))

    def profiles_csv(self) -> str:
        """Spreadsheet-safe CSV of every profile table: one row per measure, one column per segment."""
        analysis = self.analysis()
        table = profile_tables(analysis, self.segment_names())
        # A customer table's columns keep the user's names (issue 30): not their canonical hidden copies.
        own = profiles.own_names(analysis.meta)
        table["measure"] = table["measure"].map(lambda m: own.get(m, m))
        return to_safe_csv(table)
