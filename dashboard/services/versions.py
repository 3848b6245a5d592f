"""Model versions (the /data page): the table, activate / roll back / delete, comparison, report.

Nothing here needs a served model except the comparison and the report: the table and the
admin actions keep working while the active model cannot be served, so an admin can repair it.
"""
from __future__ import annotations

import sys
from pathlib import Path

from core.versions.registry import Registry, RegistryError

from .analysis import AnalysisService
from .audit import Auditor
from .results import ResultCache
from .store import ModelStore, padded_names

__all__ = ["VersionService", "common_note"]

_KEY_WORDS = {"Year_Birth": "birth year", "Dt_Customer": "enrolment date", "Education": "education"}


def common_note(comp: dict) -> str | None:
    """How the comparison's "agreement on common customers" was measured, in words (None without one)."""
    if comp.get("same") or "n_common" not in comp:
        return None
    n = int(comp.get("n_common") or 0)
    keys = [k for k in comp.get("common_keys") or ["ID"] if k != "ID"]
    how = "matched by ID" + (" and " + "/".join(_KEY_WORDS.get(k, k) for k in keys) if keys else " only")
    if n == 0:
        return f"No customer is present in both files ({how}), so agreement on common customers cannot be measured."
    return f"Agreement on the {n:,} customer{'s' if n != 1 else ''} present in both files, {how}."


class VersionService:
    """The registry's versions as the /data page shows them, and the admin actions on them (audited)."""

    def __init__(self, registry: Registry, store: ModelStore, analyses: AnalysisService, results: ResultCache,
                 auditor: Auditor):
        self.registry, self.store, self.analyses = registry, store, analyses
        self.results, self.auditor = results, auditor

    def versions_table(self) -> list[dict]:
        """Every version, newest first: provenance, size, k, features, quality, stability, active.

        ``broken`` marks the active version when its file fails verification; ``serving`` marks it when
        this server shows its verified in-memory copy meanwhile. Needs no served model.
        """
        status = self.store.status()
        trouble = status["status"] != "ok" or bool(status.get("warning"))
        rows = []
        for meta in reversed(self.registry.versions()):
            stability = meta.get("stability") or {}
            version = meta["version"]
            rows.append({
                "version": version, "created": meta.get("created") or "—",
                "source": meta.get("data_source") or "—", "fingerprint": meta.get("data_fingerprint") or "—",
                "rows": meta.get("n_customers"), "k": meta.get("k"), "features": list(meta.get("features") or []),
                "silhouette": (meta.get("metrics") or {}).get("silhouette"),
                "stability": stability.get("mean_jaccard"), "active": bool(meta.get("active")),
                "serving": bool(status.get("warning")) and status.get("serving") == version,
                "broken": trouble and status.get("active") == version,
            })
        return rows

    def activate_version(self, version: str, *, actor: str = "local") -> str:
        """Make a version active (the registry refuses one whose file fails its checksum)."""
        before = self._active()
        try:
            self.registry.activate(version)
        except RegistryError as exc:
            self.auditor.record(actor, "activate", version, "failed", str(exc))
            raise
        self.auditor.record(actor, "activate", version, "ok", f"was {before}")
        return version

    def rollback_version(self, *, actor: str = "local") -> str:
        """Re-activate the previously active version (refused when its file fails verification); returns it."""
        before = self._active()
        try:
            target = self._rollback_target()
            if target is not None:
                self.store.load(target)  # never roll back onto a file that fails verification
            version = self.registry.rollback()
        except RegistryError as exc:
            self.auditor.record(actor, "rollback", before or "-", "failed", str(exc))
            raise
        self.auditor.record(actor, "rollback", version, "ok", f"was {before}")
        return version

    def _rollback_target(self) -> str | None:
        """The version Registry.rollback would activate (None when it cannot tell)."""
        try:
            manifest = self.registry._manifest_for_reading()
        except AttributeError:
            return None
        history = [v for v in manifest.get("history") or [] if v in (manifest.get("versions") or {})]
        while history and history[-1] == manifest.get("active"):
            history.pop()
        return history[-1] if history else None

    def delete_version(self, version: str, *, actor: str = "local") -> str:
        """Delete an inactive version (the registry refuses the active one), then what no version needs (gc)."""
        try:
            result = self.registry.delete(version)
        except RegistryError as exc:
            self.auditor.record(actor, "delete", version, "failed", str(exc))
            raise
        removed = [r.get("path") for r in (result or {}).get("removed", [])] if isinstance(result, dict) else []
        gc = getattr(self.registry, "gc", None)
        if gc is not None:
            try:
                cleaned = gc() or {}
                removed += [r.get("path") for r in cleaned.get("removed", [])] if isinstance(cleaned, dict) else []
            except Exception as exc:  # the version is deleted; a clean-up that could not run is said, not raised
                print(f"segmentlens: registry gc after deleting {version}: {exc}", file=sys.stderr, flush=True)
        self.auditor.record(actor, "delete", version, "ok", f"removed {', '.join(map(str, removed))}" if removed
                            else "")
        return version

    def _active(self) -> str | None:
        try:
            return self.registry.active_version()
        except RegistryError:
            return None

    def comparison(self, version: str) -> dict:
        """A version compared with the served one: as stored at training when the active model is unchanged,
        else computed now on the version's kept training data (cached). ``common_note`` says in words how
        customers in both files were matched."""
        comp = self._comparison(version)
        note = common_note(comp)
        return dict(comp, common_note=note) if note else comp

    def _comparison(self, version: str) -> dict:
        from core.versions import training

        candidate_meta = self.registry.metadata(version)
        model, meta = self.analyses.model()
        active = meta["version"]
        if version == active:
            return {"same": True, "reference_version": active}
        stored = candidate_meta.get("comparison")
        if stored and stored.get("reference_version") == active:
            return stored
        path = candidate_meta.get("data_path")
        sampled = self.analyses.sample_basis(version, candidate_meta) is not None  # compared on its sample
        if not sampled and (not path or not Path(path).exists()):
            if stored:
                return dict(stored, stale=True)
            raise ValueError(f"the data {version} was trained on is not available, so it cannot be compared "
                             f"with {active}")
        if candidate_meta.get("input", "canonical") != meta.get("input", "canonical"):
            # Different kinds of data (a transaction log against customer records): no feature or customer in common.
            raise ValueError(f"{version} was trained on {candidate_meta.get('input', 'canonical')} data and {active} "
                             f"on {meta.get('input', 'canonical')} data; they have no features in common to compare")
        a = self.analyses.analysis()
        key = ("comparison", version, active, a.fingerprint, candidate_meta.get("data_fingerprint"),
               training.COMMON_KEYS)

        def compute():
            candidate = self.store.load(version)
            frame = self.analyses.customers_of(version, candidate_meta).frame  # its sample beyond the sample's size
            reference = training.Reference(model, active, self.analyses.segment_names(), a.frame)
            k = int(candidate.k)
            generated = candidate_meta.get("generated_names")
            return training.compare_candidate(candidate, frame, padded_names(candidate_meta, k), reference,
                                              generated=generated if generated and len(generated) == k else None,
                                              seed=int(meta.get("seed", 42)))
        return self.results.cached(key, compute)

    def report_html(self) -> str:
        """The self-contained HTML report of the segments (personas, key charts, campaign economics)."""
        from core.insight.report import segment_report

        from dashboard.theme import segment_colour

        a = self.analyses.analysis()
        names = self.analyses.segment_names()
        segments = [{"segment": i, "name": names[i], "description": a.personas[i].description,
                     "traits": list(a.personas[i].traits), "n": int(a.sizes.loc[i, "n"]),
                     "share": float(a.sizes.loc[i, "share"]), "colour": segment_colour(i)} for i in range(a.k)]
        summary = {"version": a.version, "k": a.k, "features": a.features, "data_source": a.source,
                   "data_fingerprint": a.fingerprint, "n_customers": a.n_customers,
                   "silhouette": (a.meta.get("metrics") or {}).get("silhouette"), "created": a.meta.get("created")}
        return segment_report(title="SegmentLens · customer segments", summary=summary, segments=segments,
                              economics=a.economics, campaigns=a.campaigns, product_mix=a.product_mix,
                              zscores=a.zscores)
