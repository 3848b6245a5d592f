"""Uploads and retrains (the /data page): bounded upload storage, the k advice, candidates.

Uploads wait under ``<cache>/uploads`` for a retrain. The folder is bounded: at most
``SEGMENTLENS_MAX_UPLOADS`` files (20), ``SEGMENTLENS_MAX_UPLOAD_TOTAL_MB`` in all (500) and
each kept ``SEGMENTLENS_UPLOAD_TTL_HOURS`` (24); the oldest go first to make room.
"""
from __future__ import annotations

import fcntl
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from core.versions.pipeline import prepare
from core.versions.registry import Registry
from core.fitting.selection import sweep

from .audit import Auditor
from .cache import CACHE_DIR
from .results import ResultCache

__all__ = ["UploadService", "UploadLimits", "UPLOAD_SWEEP_MAX"]

_UPLOAD_TOKEN = re.compile(r"^[0-9a-f]{32}$")
# Up to this many customers the upload's k sweep runs when the file is checked (about a second).
UPLOAD_SWEEP_MAX = 5_000
_DEFAULTS = {"SEGMENTLENS_MAX_UPLOADS": 20, "SEGMENTLENS_MAX_UPLOAD_TOTAL_MB": 500.0,
             "SEGMENTLENS_UPLOAD_TTL_HOURS": 24.0}


def _setting(name: str, kind=float):
    """A positive number from the environment; a bad value is reported and the default used."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return _DEFAULTS[name]
    try:
        value = kind(float(text.strip()))
        if not value > 0 or value != value:
            raise ValueError
    except (ValueError, OverflowError):
        print(f"segmentlens: {name}={text!r} is not a positive number; using {_DEFAULTS[name]}",
              file=sys.stderr, flush=True)
        return _DEFAULTS[name]
    return value


class UploadLimits:
    """How many uploads, how many bytes in all, and for how long they are kept (read from the environment)."""

    def __init__(self, max_files: int, max_bytes: int, ttl_seconds: float):
        self.max_files, self.max_bytes, self.ttl_seconds = int(max_files), int(max_bytes), float(ttl_seconds)

    @classmethod
    def from_env(cls) -> "UploadLimits":
        """SEGMENTLENS_MAX_UPLOADS, SEGMENTLENS_MAX_UPLOAD_TOTAL_MB, SEGMENTLENS_UPLOAD_TTL_HOURS (or defaults)."""
        return cls(_setting("SEGMENTLENS_MAX_UPLOADS", int),
                   int(_setting("SEGMENTLENS_MAX_UPLOAD_TOTAL_MB") * 1024 * 1024),
                   _setting("SEGMENTLENS_UPLOAD_TTL_HOURS") * 3600)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


class UploadService:
    """Accepts uploads into a bounded folder and trains candidates on them (never activated)."""

    def __init__(self, registry: Registry, results: ResultCache, auditor: Auditor):
        self.registry, self.results, self.auditor = registry, results, auditor

    # ------------------------------------------------------------ limits and storage
    def upload_limit(self) -> int:
        """Largest accepted upload in bytes (SEGMENTLENS_MAX_UPLOAD_MB; 50 MB by default or when it is not a number)."""
        from core.versions.training import parse_upload_limit

        try:
            return parse_upload_limit(os.environ.get("SEGMENTLENS_MAX_UPLOAD_MB"))
        except ValueError as exc:  # a configuration slip must not take the page down
            print(f"segmentlens: {exc}; using the default", file=sys.stderr, flush=True)
            return parse_upload_limit(None)

    def upload_dir(self) -> Path:
        """Where accepted uploads wait for a retrain (under the cache folder)."""
        return Path(os.environ.get("SEGMENTLENS_CACHE_DIR", CACHE_DIR)) / "uploads"

    def upload_path(self, token) -> Path:
        """The kept upload named by a token from the browser (checked: only server-made names resolve)."""
        if not isinstance(token, str) or not _UPLOAD_TOKEN.match(token):
            raise ValueError("this upload is unknown to the server; upload the file again")
        path = self.upload_dir() / f"{token}.upload"
        if not path.is_file() or self._expired(path):
            raise ValueError("the uploaded file is no longer on the server (uploads are kept for "
                             f"{UploadLimits.from_env().ttl_seconds / 3600:g} hours and the oldest make room for "
                             "new ones); upload it again")
        return path

    @staticmethod
    def _expired(path: Path) -> bool:
        try:
            return path.stat().st_mtime < time.time() - UploadLimits.from_env().ttl_seconds
        except OSError:
            return True

    def _store(self, data: bytes, token: str, shown: str) -> list[str]:
        """Keep ``data`` as ``token``, making room by removing expired then oldest uploads; returns what was removed.

        One process at a time (a lock file beside the folder), so two workers never both think there is room.
        """
        from core.reading.loading import DataFileError

        limits = UploadLimits.from_env()
        if len(data) > limits.max_bytes:
            raise DataFileError(f"{shown} is {_mb(len(data))}, more than the {_mb(limits.max_bytes)} kept for all "
                                "uploads together (SEGMENTLENS_MAX_UPLOAD_TOTAL_MB); upload a smaller file")
        folder = self.upload_dir()
        folder.mkdir(parents=True, exist_ok=True)
        removed = []
        with open(folder.parent / ".uploads.lock", "a+") as lock:  # beside the folder: it holds only uploads
            fcntl.flock(lock, fcntl.LOCK_EX)
            kept = []
            cutoff = time.time() - limits.ttl_seconds
            for path in folder.glob("*.upload"):
                try:
                    st = path.stat()
                except OSError:
                    continue
                if st.st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed.append(path.stem)
                else:
                    kept.append((st.st_mtime, path, st.st_size))
            for stale in folder.glob(".*.tmp"):  # a crash mid-write
                try:
                    if stale.stat().st_mtime < time.time() - 3600:
                        stale.unlink(missing_ok=True)
                except OSError:
                    pass
            kept.sort()
            total = sum(size for _, _, size in kept)
            while kept and (len(kept) + 1 > limits.max_files or total + len(data) > limits.max_bytes):
                _, oldest, size = kept.pop(0)
                oldest.unlink(missing_ok=True)
                removed.append(oldest.stem)
                total -= size
            tmp = folder / f".{token}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / f"{token}.upload")
        return removed

    # ------------------------------------------------------------ uploads
    def accept_upload(self, contents: str | None, filename: str | None, *, actor: str = "local") -> dict:
        """Check an upload (type, size, content) and keep it under a server-made name; returns its report.

        Raises core.reading.loading.DataFileError with a message for people when the file cannot be used; then
        nothing is kept. The report holds only aggregate facts and non-personal preview columns.
        Accepted and refused uploads are both audited.
        """
        from core.reading.loading import DataFileError

        label = (re.split(r"[\\/]", str(filename or "upload"))[-1] or "upload")[:120]
        try:
            report = self._accept(contents, filename)
        except DataFileError as exc:
            self.auditor.record(actor, "upload", label, "failed", str(exc))
            raise
        detail = f"{report['bytes']:,} bytes, {report['rows_used']:,} customers used, token {report['token']}"
        if report["removed"]:
            detail += f"; made room by removing {report['removed']} older upload(s)"
        self.auditor.record(actor, "upload", report["name"], "ok", detail)
        return report

    def _accept(self, contents, filename) -> dict:
        import base64
        import binascii
        import uuid

        from core.versions import training
        from core.reading.loading import DataFileError

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
        report = upload_report(data, shown)  # the loader's checks: binary content, headers, dates, rows, mapping
        token = uuid.uuid4().hex
        removed = self._store(data, token, shown)
        return dict(report, token=token, removed=len(removed))

    def remap_upload(self, token, name, mapping: dict) -> dict:
        """The report of a kept upload read through the mapping the user confirmed or changed.

        Raises ValueError / DataFileError naming the column and what was expected when it cannot be used.
        """
        shown = (re.split(r"[\\/]", str(name or "upload"))[-1] or "upload")[:120]
        data = self.upload_path(token).read_bytes()
        return dict(upload_report(data, shown, mapping), token=token, removed=0)

    def upload_sweep(self, token, features, mapping: dict | None = None) -> dict:
        """Recommended k for the uploaded data on the chosen features (k=2..10, cached by file and features).

        Returns core.versions.training.sweep_summary, or {"skipped": n} beyond UPLOAD_SWEEP_MAX customers (the
        retrain's own sweep step measures it then).
        """
        from core.versions import training
        from core.fitting.model import standardise
        from core.versions.pipeline import fingerprint, parse_features

        data = self.upload_path(token).read_bytes()
        if mapping and mapping.get("input") not in (None, "canonical"):
            import json

            from core.reading.mapping import Mapping, parse_features as mapped_features, prepare_input

            used = Mapping.from_dict(mapping)
            used.features = None
            prepared, used = prepare_input(data, name="upload", mapping=used)
            chosen = mapped_features(list(features or []), prepared, used)
            key = ("upload-sweep", fingerprint(data), json.dumps(mapping.get("columns"), sort_keys=True),
                   ",".join(chosen))
            frames = {"frame": prepared.frame}
        else:
            chosen = parse_features(",".join(features or []))
            key = ("upload-sweep", fingerprint(data), ",".join(chosen))
            frames = {}

        def compute():
            frame = frames["frame"] if frames else prepare(data, name="upload").frame
            n = len(frame)
            if n > UPLOAD_SWEEP_MAX or n < 4:
                return {"skipped": n}
            Z, _, _ = standardise(frame[chosen].to_numpy(dtype=float))
            return training.sweep_summary(sweep(Z, 2, min(10, n - 1), seed=42))
        return self.results.cached(key, compute)

    # ------------------------------------------------------------ retrain
    def retrain_upload(self, token, name, k, features, progress=None, *, reference: Callable | None = None,
                       actor: str = "local", mapping: dict | None = None) -> dict:
        """Train a candidate on a kept upload (never activated); returns its version and the comparison.

        ``reference()`` gives the served model as (core.versions.training.Reference or None, its metadata).
        Raises ValueError / DataFileError / RegistryError (e.g. another training running) with a message.
        Started, finished and failed runs are audited.
        """
        from core.versions import training
        from core.versions.pipeline import parse_features, retrain

        # The name came back from the browser: it is only a label, cut to its base name and a sane length.
        shown = (re.split(r"[\\/]", str(name or "upload"))[-1] or "upload")[:120]
        self.auditor.record(actor, "retrain", shown, "started", f"k={k}, features={','.join(features or []) or 'model'}")
        try:
            data = self.upload_path(token).read_bytes()
            used = None
            if mapping and mapping.get("input") not in (None, "canonical"):
                from core.reading.mapping import Mapping

                used = Mapping.from_dict(mapping)
                used.features, used.ranges = None, {}
                chosen = list(features or []) or None  # checked against the mapped customers by retrain
            else:
                chosen = parse_features(",".join(features or []))
            ref, active_meta = reference() if reference is not None else (None, {})
            kept = self.registry.keep_data(data)  # the data the new version is shown on once activated
            result = retrain(kept, registry=self.registry, name=shown, data_path=str(kept.resolve()), k=k,
                             features=chosen, seed=int(active_meta.get("seed", 42)),
                             n_init=int(active_meta.get("n_init", 10)), reference=ref, progress=progress,
                             mapping=used)
        except Exception as exc:
            outcome = "cancelled" if isinstance(exc, training.RetrainCancelled) else "failed"
            self.auditor.record(actor, "retrain", shown, outcome, f"{type(exc).__name__}: {exc}")
            raise
        self.auditor.record(actor, "retrain", result.version, "ok", f"candidate of {shown}, k={result.model.k}")
        return {"version": result.version, "k": result.model.k, "name": shown,
                "rows_used": int(len(result.prepared.frame)), "reference_version": ref.version if ref else None,
                "segment_names": list(result.meta["segment_names"]), "input": result.meta.get("input", "canonical"),
                "features": list(result.model.features), "transforms": result.meta.get("transforms") or {},
                "rfm": result.meta.get("rfm")}


# Columns of a mapped upload's preview: how customers buy, never who they are.
_MAPPED_PREVIEW = ("ID", "Recency", "Frequency", "Monetary", "Tenure", "RFM_group", "Total_Spending",
                   "Total_Purchases", "NumWebVisitsMonth", "Customer_since")


def upload_report(data: bytes, shown: str, mapping: dict | None = None) -> dict:
    """What the /data page shows about a file: detection, cleaning, preview and (non-canonical files) the mapping.

    ``mapping`` (the JSON form of core.reading.mapping.Mapping) overrides the suggested one. Raises DataFileError or
    ValueError with a message naming the column and what was expected.
    """
    import json

    from core.versions import training
    from core.reading.mapping import Mapping, prepare_input, roles_for, user_columns

    given = Mapping.from_dict(mapping, where="mapping") if mapping and mapping.get("columns") else None
    if given is not None:
        given.features, given.ranges, given.transforms = None, {}, {}
    kind = (mapping or {}).get("input")
    prepared, used = prepare_input(data, name=shown, mapping=given,
                                   kind=kind if given is None and kind in ("customers", "transactions") else None)
    load = prepared.info.to_dict()
    load["unreadable"] = {column: len(rows) for column, rows in load["unreadable"].items()}
    out = {"name": shown, "bytes": len(data), "fingerprint": prepared.fingerprint,
           "rows_used": int(len(prepared.frame)), "load": load, "cleaning": prepared.report.to_dict(),
           "input": used.kind}
    if used.kind == "canonical":
        out["preview"] = json.loads(training.preview(prepared.frame).to_json(orient="records"))
        return out
    frame = prepared.frame
    # A customer table's columns under the user's names, never their canonical hidden copies (issue 30).
    own = user_columns(frame)
    preview = frame[[c for c in _MAPPED_PREVIEW if c in frame]].head(5).rename(columns=own)
    preview = preview.loc[:, ~preview.columns.duplicated()]
    numeric = [c for c in frame.columns if c != "ID" and c not in own and str(frame[c].dtype) not in ("object", "str", "string")
               and frame[c].notna().all() and frame[c].dtype.kind in "iuf"]
    out.update(
        preview=json.loads(preview.to_json(orient="records")),
        mapping={"input": used.kind, "columns": dict(used.columns), "notes": list(used.notes)},
        roles=roles_for(used.kind), features=list(used.features or []), feature_choices=numeric,
        transforms=dict(used.transforms), summary=dict(frame.attrs.get("summary") or {}))
    return out
