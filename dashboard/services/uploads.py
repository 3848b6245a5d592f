"""Services for data and model management: uploads, retrains, versions, exports (the /data page)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from core.pipeline import prepare
from core.registry import RegistryError
from core.selection import sweep

from .cache import CACHE_DIR

__all__ = ["DataServices", "UPLOAD_SWEEP_MAX"]

_UPLOAD_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_UPLOAD_MAX_AGE_S = 24 * 3600
# Up to this many customers the upload's k sweep runs when the file is checked (about a second).
UPLOAD_SWEEP_MAX = 5_000


class DataServices:
    """Upload, retrain and version methods of Services."""

    def upload_limit(self) -> int:
        """Largest accepted upload in bytes (SEGMENTLENS_MAX_UPLOAD_MB; 50 MB by default or when it is not a number)."""
        import sys

        from core.training import parse_upload_limit

        try:
            return parse_upload_limit(os.environ.get("SEGMENTLENS_MAX_UPLOAD_MB"))
        except ValueError as exc:  # a configuration slip must not take the page down
            print(f"segmentlens: {exc}; using the default", file=sys.stderr, flush=True)
            return parse_upload_limit(None)

    def _upload_dir(self) -> Path:
        """Where accepted uploads wait for a retrain (under the cache folder)."""
        return Path(os.environ.get("SEGMENTLENS_CACHE_DIR", CACHE_DIR)) / "uploads"

    def _upload_path(self, token) -> Path:
        """The kept upload named by a token from the browser (checked: only server-made names resolve)."""
        if not isinstance(token, str) or not _UPLOAD_TOKEN.match(token):
            raise ValueError("this upload is unknown to the server; upload the file again")
        path = self._upload_dir() / f"{token}.upload"
        if not path.is_file():
            raise ValueError("the uploaded file is no longer on the server (uploads are kept for a day); "
                             "upload it again")
        return path

    def accept_upload(self, contents: str | None, filename: str | None) -> dict:
        """Check an upload (type, size, content) and keep it under a server-made name; returns its report.

        Raises core.loading.DataFileError with a message for people when the file cannot be used; then
        nothing is kept. The report holds only aggregate facts and non-personal preview columns.
        """
        import base64
        import binascii
        import json
        import uuid

        from core import training
        from core.loading import DataFileError

        limit = self.upload_limit()
        if not contents or "," not in contents:
            raise DataFileError("nothing was received; choose the file again")
        encoded = contents.split(",", 1)[1]
        training.check_upload(filename, len(encoded) * 3 // 4 - 2, limit)  # refuse before decoding a huge body
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise DataFileError("the upload arrived incomplete; choose the file again") from None
        shown = training.check_upload(filename, len(data), limit)
        prepared = prepare(data, name=shown)  # the loader's checks: binary content, headers, dates, rows
        folder = self._upload_dir()
        folder.mkdir(parents=True, exist_ok=True)
        _prune_uploads(folder)
        token = uuid.uuid4().hex
        tmp = folder / f".{token}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / f"{token}.upload")
        load = prepared.info.to_dict()
        load["unreadable"] = {column: len(rows) for column, rows in load["unreadable"].items()}
        return {"token": token, "name": shown, "bytes": len(data), "fingerprint": prepared.fingerprint,
                "rows_used": int(len(prepared.frame)), "load": load, "cleaning": prepared.report.to_dict(),
                "preview": json.loads(training.preview(prepared.frame).to_json(orient="records"))}

    def upload_sweep(self, token, features) -> dict:
        """Recommended k for the uploaded data on the chosen features (k=2..10, cached by file and features).

        Returns core.training.sweep_summary, or {"skipped": n} beyond UPLOAD_SWEEP_MAX customers (the
        retrain's own sweep step measures it then).
        """
        from core import training
        from core.model import standardise
        from core.pipeline import fingerprint, parse_features

        data = self._upload_path(token).read_bytes()
        chosen = parse_features(",".join(features or []))
        key = ("upload-sweep", fingerprint(data), ",".join(chosen))

        def compute():
            frame = prepare(data, name="upload").frame
            n = len(frame)
            if n > UPLOAD_SWEEP_MAX or n < 4:
                return {"skipped": n}
            Z, _, _ = standardise(frame[chosen].to_numpy(dtype=float))
            return training.sweep_summary(sweep(Z, 2, min(10, n - 1), seed=42))
        return self._cached(key, compute)

    def _reference(self):
        """The active (served) model, its names and customers, as core.training.Reference (None without one)."""
        from core import training
        from core.loading import DataFileError

        try:
            model, meta = self.model()
        except RegistryError:
            return None, {}
        try:
            frame = self.analysis().frame
        except (DataFileError, OSError):  # its data is gone: names still carry over, only the comparison is lost
            frame = None
        return training.Reference(model, meta["version"], self.segment_names(), frame), meta

    def retrain_upload(self, token, name, k, features, progress=None) -> dict:
        """Train a candidate on a kept upload (never activated); returns its version and the comparison.

        Raises ValueError / DataFileError / RegistryError (e.g. another training running) with a message.
        """
        from core import training
        from core.pipeline import parse_features

        data = self._upload_path(token).read_bytes()
        chosen = parse_features(",".join(features or []))
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise ValueError("k must be a whole number of segments, such as 6") from None
        # The name came back from the browser: it is only a label, cut to its base name and a sane length.
        shown = (re.split(r"[\\/]", str(name or "upload"))[-1] or "upload")[:120]
        reference, active_meta = self._reference()
        kept = self.registry.keep_data(data)  # the data the new version is shown on once activated
        result = training.retrain(kept, registry=self.registry, name=shown, data_path=str(kept.resolve()), k=k,
                                  features=chosen, seed=int(active_meta.get("seed", 42)),
                                  n_init=int(active_meta.get("n_init", 10)), reference=reference, progress=progress)
        return {"version": result.version, "k": result.model.k, "name": shown,
                "rows_used": int(len(result.prepared.frame)), "reference_version": reference.version if reference
                else None, "segment_names": list(result.meta["segment_names"])}

    def versions_table(self) -> list[dict]:
        """Every model version, newest first: provenance, size, k, features, quality, stability, active."""
        served = self.__dict__.get("_degraded")
        rows = []
        for meta in reversed(self.registry.versions()):
            stability = meta.get("stability") or {}
            rows.append({
                "version": meta["version"], "created": meta.get("created") or "—",
                "source": meta.get("data_source") or "—", "fingerprint": meta.get("data_fingerprint") or "—",
                "rows": meta.get("n_customers"), "k": meta.get("k"), "features": list(meta.get("features") or []),
                "silhouette": (meta.get("metrics") or {}).get("silhouette"),
                "stability": stability.get("mean_jaccard"), "active": bool(meta.get("active")),
                "serving": bool(served and served.get("serving") == meta["version"]),
                "broken": bool(served and served.get("bad") == meta["version"]),
            })
        return rows

    def activate_version(self, version: str) -> str:
        """Make a version active (the registry refuses one whose file fails its checksum)."""
        self.registry.activate(version)
        return version

    def rollback_version(self) -> str:
        """Re-activate the previously active version; returns it."""
        return self.registry.rollback()

    def delete_version(self, version: str) -> str:
        """Delete an inactive version (the registry refuses the active one)."""
        self.registry.delete(version)
        return version

    def comparison(self, version: str) -> dict:
        """A version compared with the active one: as stored at training when the active model is unchanged,
        else computed now on the version's kept training data (cached)."""
        from core import training

        candidate_meta = self.registry.metadata(version)
        model, meta = self.model()
        active = meta["version"]
        if version == active:
            return {"same": True, "reference_version": active}
        stored = candidate_meta.get("comparison")
        if stored and stored.get("reference_version") == active:
            return stored
        path = candidate_meta.get("data_path")
        if not path or not Path(path).exists():
            if stored:
                return dict(stored, stale=True)
            raise ValueError(f"the data {version} was trained on is not available, so it cannot be compared "
                             f"with {active}")
        a = self.analysis()
        key = ("comparison", version, active, a.fingerprint, candidate_meta.get("data_fingerprint"))

        def compute():
            candidate = self._checked_model(version)
            frame = prepare(path, name=candidate_meta.get("data_source")).frame
            reference = training.Reference(model, active, self.segment_names(), a.frame)
            k = int(candidate.k)
            names = list(candidate_meta.get("segment_names") or [])[:k]
            names += [f"Segment {i}" for i in range(len(names), k)]
            generated = candidate_meta.get("generated_names")
            return training.compare_candidate(candidate, frame, names, reference,
                                              generated=generated if generated and len(generated) == k else None,
                                              seed=int(meta.get("seed", 42)))
        return self._cached(key, compute)

    def report_html(self) -> str:
        """The self-contained HTML report of the segments (personas, key charts, campaign economics)."""
        from core.report import segment_report

        from dashboard.theme import segment_colour

        a = self.analysis()
        names = self.segment_names()
        segments = [{"segment": i, "name": names[i], "description": a.personas[i].description,
                     "traits": list(a.personas[i].traits), "n": int(a.sizes.loc[i, "n"]),
                     "share": float(a.sizes.loc[i, "share"]), "colour": segment_colour(i)} for i in range(a.k)]
        summary = {"version": a.version, "k": a.k, "features": a.features, "data_source": a.source,
                   "data_fingerprint": a.fingerprint, "n_customers": len(a.frame),
                   "silhouette": (a.meta.get("metrics") or {}).get("silhouette"), "created": a.meta.get("created")}
        return segment_report(title="SegmentLens · customer segments", summary=summary, segments=segments,
                              economics=a.economics, campaigns=a.campaigns, product_mix=a.product_mix,
                              zscores=a.zscores)


def _prune_uploads(folder: Path) -> None:
    """Remove uploads older than a day (they were never retrained, or were long ago)."""
    import time

    cutoff = time.time() - _UPLOAD_MAX_AGE_S
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass

