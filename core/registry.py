"""Model versions on disk: manifest, checksums, activate, rollback, atomic writes.

Layout of the registry folder (``models/`` by default, ``SEGMENTLENS_MODELS``)::

    manifest.json          {"active": "v0003", "history": [...], "versions": {...}}
    v0003.joblib           the pickled model (checked against its SHA-256 before loading)
    .lock                  an advisory lock serialising writers (processes and threads)

Every write goes to a temporary file in the same folder, is flushed to disk and
then renamed over its target, so a crash mid-save leaves either the old or the
new file, never half of one. The model file is written before the manifest
names it; the active pointer only ever moves to a version whose file is complete.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import fcntl
import hashlib
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path

__all__ = ["Registry", "RegistryError", "DEFAULT_MODELS_DIR", "models_dir"]

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
_MANIFEST = "manifest.json"
_VERSION_RE = re.compile(r"^v\d{4,}$")
_FORMAT = 1
_SETTLE_NS = 200_000_000


class RegistryError(Exception):
    """A registry operation that cannot be done; the message says why in one line."""


def models_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Resolve the registry folder: ``explicit``, else ``SEGMENTLENS_MODELS``, else ``models/``.

    Parameters
    ----------
    explicit : path-like, optional

    Returns
    -------
    pathlib.Path
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("SEGMENTLENS_MODELS")
    return Path(env) if env else DEFAULT_MODELS_DIR


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class Registry:
    """Versioned models in one folder.

    Parameters
    ----------
    root : path-like, optional
        The folder; see :func:`models_dir`.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = models_dir(root)
        self._seen: tuple | None = None  # (file identity, parsed manifest) of the last read

    # ------------------------------------------------------------------ internals
    @contextlib.contextmanager
    def _locked(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_manifest(self) -> dict:
        path = self.root / _MANIFEST
        if not path.exists():
            return {"format": _FORMAT, "active": None, "history": [], "versions": {}}
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path} is not a readable registry manifest ({exc})") from exc
        if not isinstance(manifest, dict) or "versions" not in manifest:
            raise RegistryError(f"{path} is not a registry manifest (no 'versions')")
        return manifest

    def _manifest_for_reading(self) -> dict:
        """The manifest for read-only use, parsed again only when the file changed.

        Every dashboard callback asks for the active version and its metadata several
        times; the manifest is replaced by rename on every write, so its inode, mtime and
        size identify a version of it. Callers must not modify the returned dict.
        """
        try:
            st = (self.root / _MANIFEST).stat()
        except FileNotFoundError:
            return self._read_manifest()
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        # File timestamps tick coarsely (a few ms) and inodes are reused, so two writes in quick
        # succession could look alike: a manifest changed in the last moment is always re-read.
        settled = time.time_ns() - st.st_mtime_ns > _SETTLE_NS
        if self._seen is None or self._seen[0] != identity or not settled:
            self._seen = (identity, self._read_manifest())
        return self._seen[1]

    def _write_manifest(self, manifest: dict) -> None:
        _atomic_write(self.root / _MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())

    def _entry(self, manifest: dict, version: str) -> dict:
        entry = manifest["versions"].get(version)
        if entry is None:
            known = ", ".join(sorted(manifest["versions"])) or "none"
            raise RegistryError(f"no model version {version!r} (versions: {known})")
        return entry

    # ------------------------------------------------------------------ reading
    def token(self) -> str:
        """A string that changes whenever the manifest changes (for cache keys across processes).

        Returns
        -------
        str
        """
        try:
            st = (self.root / _MANIFEST).stat()
        except FileNotFoundError:
            return "empty"
        return f"{st.st_mtime_ns}-{st.st_size}"

    def active_version(self) -> str | None:
        """Return the active version, or None when no model has been saved.

        Returns
        -------
        str or None
        """
        return self._manifest_for_reading().get("active")

    def versions(self) -> list[dict]:
        """Every version's metadata, oldest first, with ``version`` and ``active`` keys.

        Returns
        -------
        list of dict
        """
        manifest = self._manifest_for_reading()
        out = []
        for version in sorted(manifest["versions"]):
            meta = copy.deepcopy(manifest["versions"][version].get("meta", {}))
            meta.update(version=version, active=version == manifest.get("active"),
                        created=manifest["versions"][version].get("created"))
            out.append(meta)
        return out

    def metadata(self, version: str | None = None) -> dict:
        """Metadata of one version (the active one by default).

        Parameters
        ----------
        version : str, optional

        Returns
        -------
        dict
        """
        manifest = self._manifest_for_reading()
        version = version or manifest.get("active")
        if version is None:
            raise RegistryError(f"no active model in {self.root}; train one with `python -m core train`")
        entry = self._entry(manifest, version)
        meta = copy.deepcopy(entry.get("meta", {}))
        meta.update(version=version, active=version == manifest.get("active"), created=entry.get("created"))
        return meta

    def load(self, version: str | None = None):
        """Load a model after checking its file against the manifest's SHA-256.

        Parameters
        ----------
        version : str, optional
            Defaults to the active version.

        Returns
        -------
        model : SegmentationModel
        meta : dict

        Raises
        ------
        RegistryError
            No such version, missing file, or checksum mismatch (tampered or truncated).
        """
        import joblib  # deferred: only loading and saving need it

        meta = self.metadata(version)
        version = meta["version"]
        entry = self._manifest_for_reading()["versions"][version]
        path = self.root / entry["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RegistryError(f"model {version}: file {entry['file']} cannot be read ({exc.strerror})") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise RegistryError(
                f"model {version}: file {entry['file']} fails its checksum (changed or truncated); refusing to load it")
        try:
            payload = joblib.load(io.BytesIO(data))
        except Exception as exc:  # a file that matches its checksum but does not unpickle
            raise RegistryError(f"model {version}: file cannot be loaded ({type(exc).__name__})") from exc
        return payload["model"], meta

    # ------------------------------------------------------------------ writing
    def save(self, model, meta: dict, *, activate: bool = True) -> str:
        """Write a new version: model file first, then the manifest that names it.

        Parameters
        ----------
        model : SegmentationModel
        meta : dict
            JSON-serialisable metadata (fingerprint, features, k, seed, metrics, ...).
        activate : bool, default True

        Returns
        -------
        str
            The new version, e.g. ``"v0004"``.
        """
        import joblib

        buffer = io.BytesIO()
        joblib.dump({"format": _FORMAT, "model": model}, buffer, compress=3)
        data = buffer.getvalue()
        json.dumps(meta)  # fail before touching the disk if meta is not serialisable
        with self._locked():
            manifest = self._read_manifest()
            numbers = [int(v[1:]) for v in manifest["versions"] if _VERSION_RE.match(v)]
            version = f"v{(max(numbers) + 1) if numbers else 1:04d}"
            filename = f"{version}.joblib"
            _atomic_write(self.root / filename, data)
            manifest["versions"][version] = {
                "file": filename, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "meta": meta,
            }
            if activate or manifest.get("active") is None:
                self._set_active(manifest, version)
            self._write_manifest(manifest)
        return version

    @staticmethod
    def _set_active(manifest: dict, version: str) -> None:
        if manifest.get("active") and manifest["active"] != version:
            manifest.setdefault("history", []).append(manifest["active"])
        manifest["active"] = version

    def activate(self, version: str) -> None:
        """Make ``version`` the active model (after checking it loads).

        Parameters
        ----------
        version : str
        """
        self.load(version)  # never point at a file that fails its checksum
        with self._locked():
            manifest = self._read_manifest()
            self._entry(manifest, version)
            self._set_active(manifest, version)
            self._write_manifest(manifest)

    def rollback(self) -> str:
        """Re-activate the previously active version.

        Returns
        -------
        str
            The version now active.
        """
        with self._locked():
            manifest = self._read_manifest()
            history = [v for v in manifest.get("history", []) if v in manifest["versions"]]
            while history and history[-1] == manifest.get("active"):
                history.pop()
            if not history:
                raise RegistryError("nothing to roll back to: no earlier active version")
            previous = history.pop()
            manifest["history"] = history
            manifest["active"] = previous
            self._write_manifest(manifest)
        return previous

    def delete(self, version: str) -> None:
        """Delete an inactive version.

        Parameters
        ----------
        version : str
        """
        with self._locked():
            manifest = self._read_manifest()
            entry = self._entry(manifest, version)
            if manifest.get("active") == version:
                raise RegistryError(f"{version} is the active model; activate another version before deleting it")
            del manifest["versions"][version]
            manifest["history"] = [v for v in manifest.get("history", []) if v != version]
            self._write_manifest(manifest)
            with contextlib.suppress(FileNotFoundError):
                (self.root / entry["file"]).unlink()

    def update_meta(self, version: str, **changes) -> dict:
        """Change metadata of a version (e.g. ``segment_names``); the model file is untouched.

        Parameters
        ----------
        version : str
        **changes
            Keys to set.

        Returns
        -------
        dict
            The version's new metadata.
        """
        json.dumps(changes)
        with self._locked():
            manifest = self._read_manifest()
            entry = self._entry(manifest, version)
            entry.setdefault("meta", {}).update(changes)
            self._write_manifest(manifest)
            return dict(entry["meta"])

    # ------------------------------------------------------------------ training runs
    @contextlib.contextmanager
    def training_lock(self, *, wait: float = 0.0):
        """Hold the registry's training lock: one training run at a time, across processes and threads.

        The lock is an fcntl lock on ``.train.lock`` in the registry folder (the file the first
        training at start-up uses too); the operating system releases it when a killed run's
        process ends, so a cancelled retrain never leaves it held.

        Parameters
        ----------
        wait : float, default 0
            Seconds to wait for a running training to finish before giving up.

        Raises
        ------
        RegistryError
            Another training run still holds the lock after ``wait`` seconds.
        """
        import time

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".train.lock", "a+") as fh:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise RegistryError("another model is being trained on this registry right now; "
                                            "try again when it has finished") from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def keep_data(self, data: bytes) -> Path:
        """Keep a training file in the registry's ``data/`` folder under a name made from its content.

        The name is the file's SHA-256 (never a name a user chose), so keeping the same file
        twice writes it once; the write is atomic like every other registry write.

        Parameters
        ----------
        data : bytes

        Returns
        -------
        pathlib.Path
            Where the file is kept.
        """
        folder = self.root / "data"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.txt"
        if not path.exists() or path.stat().st_size != len(data):
            _atomic_write(path, data)
        return path
