"""Model versions on disk: manifest, checksums, activate, rollback, atomic writes, garbage collection.

Layout of the registry folder (``models/`` by default, ``SEGMENTLENS_MODELS``)::

    manifest.json          {"format": 2, "active": "v0003", "history": [...], "versions": {...},
                            "last_version": 4}  (the highest number ever given: numbers are never reused)
    manifest.json.bak      the last good manifest, rewritten (atomically) with every manifest write
    v0003.npz              the model as numeric arrays (SegmentationModel.to_arrays), read with
                           allow_pickle=False after checking the file's SHA-256 against the manifest
    v0003.<kind>.<sha12>.json|npz
                           the version's artifacts (kinds in core.versions.registry_format.ARTIFACTS:
                           column mapping, aggregates, a stratified sample, precomputed views),
                           each checked against the SHA-256 its manifest entry records
    data/<sha256[:16]>.txt training files kept for versions trained on uploads
    .lock                  an advisory lock serialising writers (processes and threads)

Every write goes to a temporary file in the same folder, is flushed to disk and
then renamed over its target, so a crash mid-save leaves either the old or the
new file, never half of one. The model file is written before the manifest
names it; the active pointer only ever moves to a version whose file is complete.

Nothing read back executes code: a model file is a zip of plain arrays whose
scalar parameters travel as a JSON text inside it (so the checksum covers them
too). Versions written by earlier releases as pickles (``vNNNN.joblib``) are
unpickled exactly once, after their SHA-256 matches the manifest, rewritten as
``.npz`` and deleted. What a sound manifest, entry and model file are is decided in
:mod:`core.versions.registry_format`.
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
import sys
import tempfile
import time
from pathlib import Path

from core.versions.registry_format import ARTIFACTS
from core.versions.registry_format import FORMAT as _FORMAT
from core.versions.registry_format import artifact_file as _artifact_file
from core.versions.registry_format import is_artifact_file as _is_artifact_file
from core.versions.registry_format import VERSION_RE as _VERSION_RE
from core.versions.registry_format import entry_problem as _entry_problem
from core.versions.registry_format import manifest_problem as _manifest_problem
from core.versions.registry_format import model_from_bytes, model_to_bytes

__all__ = ["Registry", "RegistryError", "DEFAULT_MODELS_DIR", "models_dir"]

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
_MANIFEST = "manifest.json"
_BACKUP = "manifest.json.bak"
_KEPT_DATA_RE = re.compile(r"^[0-9a-f]{16}\.txt$")
_TEMP_RE = re.compile(r"^\..+\.tmp$")
_MODEL_FILE_RE = re.compile(r"^v\d{4,}\.(npz|joblib)$")
_SETTLE_NS = 200_000_000
_STALE_SECONDS = 3600  # temp files and unreferenced kept data younger than this are left alone


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


atomic_write = _atomic_write  # the public name other stores use (accounts, campaigns)


def _file_age(path: Path, now: float) -> float:
    return now - path.stat().st_mtime


class Registry:
    """Versioned models in one folder.

    Parameters
    ----------
    root : path-like, optional
        The folder; see :func:`models_dir`.

    Attributes
    ----------
    warnings : list of str
        What the last manifest read had to work around (e.g. a damaged ``manifest.json``
        recovered from ``manifest.json.bak``); empty when all was well.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = models_dir(root)
        self._seen: tuple | None = None  # (file identity, parsed manifest, warnings, recovered) of the last read
        # Replaced whole, never mutated in place: gunicorn threads may share one Registry.
        self._warnings: list[str] = []
        self._recovered = False
        self._told: set[str] = set()  # warnings already printed on stderr by this object

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

    def _warn(self, message: str) -> None:
        if message not in self._warnings:
            self._warnings = [*self._warnings, message]
        if message not in self._told:
            self._told.add(message)
            print(f"warning: {message}", file=sys.stderr, flush=True)

    @staticmethod
    def _parse(path: Path) -> tuple[dict | None, str | None]:
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None, "is missing"
        except OSError as exc:
            return None, f"cannot be read ({exc.strerror})"
        try:
            manifest = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            reason = (f"{exc.msg}: line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError)
                      else "not UTF-8")
            return None, f"is not valid JSON ({reason})"
        problem = _manifest_problem(manifest)
        return (manifest, None) if problem is None else (None, f"is not a registry manifest ({problem})")

    def _read_manifest(self) -> dict:
        """Parse ``manifest.json``; a damaged one is replaced by the last good copy, with a warning."""
        self._warnings, self._recovered = [], False
        path, backup = self.root / _MANIFEST, self.root / _BACKUP
        if not path.exists() and not backup.exists():
            return {"format": _FORMAT, "active": None, "history": [], "versions": {}}
        manifest, problem = self._parse(path)
        if problem is None:
            return manifest
        saved, backup_problem = self._parse(backup)
        if backup_problem is not None:
            # File names only, no absolute paths: these messages reach web pages and health checks.
            raise RegistryError(f"{_MANIFEST} is not a readable registry manifest: it {problem}, and its backup "
                                f"{_BACKUP} {backup_problem}")
        when = _dt.datetime.fromtimestamp(backup.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
        self._warn(f"{_MANIFEST} {problem}; using the last good copy {_BACKUP} (written {when}); "
                   "the next change to the registry rewrites it")
        self._recovered = True
        return saved

    def _manifest_for_reading(self) -> dict:
        """The manifest for read-only use, parsed again only when the file changed.

        Every dashboard callback asks for the active version and its metadata several
        times; the manifest is replaced by rename on every write, so its inode, mtime and
        size identify a version of it. Callers must not modify the returned dict.
        """
        try:
            st = (self.root / _MANIFEST).stat()
        except FileNotFoundError:
            self._seen = None
            return self._read_manifest()  # sets warnings and recovered itself
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        # File timestamps tick coarsely (a few ms) and inodes are reused, so two writes in quick
        # succession could look alike: a manifest changed in the last moment is always re-read.
        settled = time.time_ns() - st.st_mtime_ns > _SETTLE_NS
        if self._seen is None or self._seen[0] != identity or not settled:
            manifest = self._read_manifest()
            self._seen = (identity, manifest, list(self._warnings), self._recovered)
            if not self._recovered and not (self.root / _BACKUP).exists():
                self._seed_backup()
        self._warnings, self._recovered = list(self._seen[2]), self._seen[3]
        return self._seen[1]

    def _seed_backup(self) -> None:
        """Give a registry written before backups existed its first good copy (best effort)."""
        with contextlib.suppress(OSError), open(self.root / ".lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a writer is busy and will write the backup itself
            try:
                data = (self.root / _MANIFEST).read_bytes()
                manifest, problem = self._parse(self.root / _MANIFEST)
                if problem is None and not (self.root / _BACKUP).exists():
                    _atomic_write(self.root / _BACKUP, data)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_manifest(self, manifest: dict) -> None:
        problem = _manifest_problem(manifest)
        if problem:  # never replace the last good copy with something unreadable
            raise RegistryError(f"refusing to write a broken manifest ({problem})")
        manifest["format"] = _FORMAT
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        _atomic_write(self.root / _MANIFEST, data)
        _atomic_write(self.root / _BACKUP, data)
        self._warnings, self._recovered = [], False

    def _entry(self, manifest: dict, version: str) -> dict:
        if not isinstance(version, str):
            raise RegistryError(f"a model version is a name such as v0001, got {version!r}")
        entry = manifest["versions"].get(version)
        if entry is None:
            known = ", ".join(sorted(map(str, manifest["versions"]))) or "none"
            raise RegistryError(f"no model version {version!r} (versions: {known})")
        problem = _entry_problem(version, entry)
        if problem:
            raise RegistryError(f"model {version}: its manifest entry is malformed: {problem}")
        return entry

    def _read_checked(self, version: str, entry: dict) -> bytes:
        """The exact bytes of a version's file, after they match the manifest's SHA-256."""
        try:
            data = (self.root / entry["file"]).read_bytes()
        except OSError as exc:
            raise RegistryError(f"model {version}: file {entry['file']} cannot be read ({exc.strerror})") from exc
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise RegistryError(
                f"model {version}: file {entry['file']} fails its checksum (changed or truncated); refusing to load it")
        return data

    @staticmethod
    def _model_from_bytes(version: str, entry: dict, data: bytes):
        """Arrays only (``allow_pickle=False``), checked against the k and features the manifest records."""
        try:
            model = model_from_bytes(data)
        except ValueError as exc:
            raise RegistryError(f"model {version}: file {entry['file']} is not a valid model file ({exc})") from None
        meta = entry["meta"]
        if "k" in meta and meta["k"] != model.k:
            raise RegistryError(f"model {version}: file {entry['file']} has k={model.k} "
                                f"but the manifest says k={meta['k']}")
        if isinstance(meta.get("features"), list) and meta["features"] != model.features:
            raise RegistryError(f"model {version}: file {entry['file']} has features {', '.join(model.features)} "
                                "but the manifest lists others")
        return model

    def _convert_legacy(self, version: str):
        """Turn a pickled ``.joblib`` version into ``.npz`` once: verify, unpickle, rewrite, delete."""
        import joblib

        from core.fitting.model import SegmentationModel

        with self._locked():
            manifest = self._read_manifest()
            entry = self._entry(manifest, version)
            if not entry["file"].endswith(".joblib"):  # another process converted it meanwhile
                return self._model_from_bytes(version, entry, self._read_checked(version, entry))
            data = self._read_checked(version, entry)  # the checksum first: only a known file is unpickled
            try:
                payload = joblib.load(io.BytesIO(data))
            except Exception as exc:  # a file that matches its checksum but does not unpickle
                raise RegistryError(f"model {version}: file cannot be loaded ({type(exc).__name__})") from exc
            model = payload.get("model") if isinstance(payload, dict) else None
            if not isinstance(model, SegmentationModel):
                raise RegistryError(f"model {version}: file {entry['file']} does not hold a segmentation model")
            try:
                converted = model_to_bytes(model)
            except Exception as exc:  # noqa: BLE001 - an old model missing what the array format needs
                raise RegistryError(f"model {version}: file {entry['file']} cannot be converted "
                                    f"({type(exc).__name__}: {str(exc)[:120]})") from None
            new_entry = {
                "file": f"{version}.npz", "sha256": hashlib.sha256(converted).hexdigest(), "bytes": len(converted),
                "created": entry["created"], "meta": entry["meta"],
                "converted_from": {"file": entry["file"], "sha256": entry["sha256"], "bytes": entry["bytes"],
                                   "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
            }
            result = self._model_from_bytes(version, new_entry, converted)  # it reads back before anything changes
            _atomic_write(self.root / new_entry["file"], converted)
            manifest["versions"][version] = new_entry
            self._write_manifest(manifest)
            with contextlib.suppress(FileNotFoundError):
                (self.root / entry["file"]).unlink()
        self._warn(f"model {version}: converted {entry['file']} (a pickle) to {new_entry['file']} (arrays only) "
                   f"and deleted {entry['file']}")
        return result

    def _training_running(self) -> bool:
        """True while some process holds the training lock (its kept data is not referenced yet)."""
        try:
            with open(self.root / ".train.lock", "a+") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(fh, fcntl.LOCK_UN)
        except OSError:
            return True
        return False

    def _remove(self, path: Path, reason: str, removed: list) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        removed.append({"path": str(path.relative_to(self.root)), "bytes": size, "reason": reason})

    # ------------------------------------------------------------------ reading
    @property
    def warnings(self) -> list[str]:
        """What the last manifest read worked around (empty when all was well).

        Returns
        -------
        list of str
        """
        return list(self._warnings)

    @property
    def recovered(self) -> bool:
        """True when the last manifest read used the backup because ``manifest.json`` was damaged.

        Returns
        -------
        bool
        """
        return self._recovered

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
        """Return the manifest's active version, or None when no model has been saved.

        The pointer is returned as written even when that version's entry or file is
        broken, so a caller can report "degraded" instead of serving another version.

        Returns
        -------
        str or None
        """
        return self._manifest_for_reading().get("active")

    def versions(self, *, broken: bool = False) -> list[dict]:
        """Every version's metadata, oldest first, with ``version``, ``active`` and ``created`` keys.

        Parameters
        ----------
        broken : bool, default False
            False: a malformed manifest entry raises. True: it is listed as
            ``{"version", "active", "created": None, "problem": reason}`` so a caller can show it.

        Returns
        -------
        list of dict

        Raises
        ------
        RegistryError
            The manifest cannot be read, or (``broken=False``) an entry is malformed; the message
            names the version and the problem.
        """
        manifest = self._manifest_for_reading()
        out = []
        for version in sorted(manifest["versions"], key=str):
            try:
                entry = self._entry(manifest, version)
            except RegistryError as exc:
                if not broken:
                    raise
                out.append({"version": str(version), "active": version == manifest.get("active"), "created": None,
                            "problem": str(exc)})
                continue
            out.append(self._meta(manifest, version, entry))
        return out

    @staticmethod
    def _meta(manifest: dict, version: str, entry: dict) -> dict:
        meta = copy.deepcopy(entry["meta"])  # callers get copies: the parsed manifest is shared
        meta.update(version=version, active=version == manifest.get("active"), created=entry.get("created"))
        return meta

    def _resolve(self, version: str | None) -> tuple[str, dict, dict]:
        """``(version, entry, manifest)`` of a version (the active one by default), entry validated."""
        manifest = self._manifest_for_reading()
        version = version or manifest.get("active")
        if version is None:
            raise RegistryError(f"no active model in {self.root}; train one with `python -m core train`")
        return version, self._entry(manifest, version), manifest

    def metadata(self, version: str | None = None) -> dict:
        """Metadata of one version (the active one by default).

        Parameters
        ----------
        version : str, optional

        Returns
        -------
        dict
        """
        version, entry, manifest = self._resolve(version)
        return self._meta(manifest, version, entry)

    def file_path(self, version: str | None = None) -> Path:
        """Where a version's model file is (the active one by default); nothing is read or checked.

        Parameters
        ----------
        version : str, optional

        Returns
        -------
        pathlib.Path
            E.g. ``models/v0003.npz`` (``.joblib`` until a version from an earlier release is converted).
        """
        return self.root / self._resolve(version)[1]["file"]

    def load(self, version: str | None = None):
        """Load a model after checking its file against the manifest's SHA-256.

        Never falls back to another version: the requested (or active) one, or an error.

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
            No such version, a malformed entry, a missing file, a checksum mismatch (tampered or
            truncated) or a file that is not a model of the recorded shape.
        """
        version, entry, manifest = self._resolve(version)
        meta = self._meta(manifest, version, entry)
        if entry["file"].endswith(".joblib"):
            return self._convert_legacy(version), meta
        return self._model_from_bytes(version, entry, self._read_checked(version, entry)), meta

    def verify(self, version: str | None = None) -> list[dict]:
        """Check every version (or one): entry, file present, checksum, arrays of the recorded shape.

        A version still stored as a pickle from an earlier release is converted on the way
        (after its checksum matches), as its first load would.

        Parameters
        ----------
        version : str, optional
            Only this version.

        Returns
        -------
        list of dict
            One per version, oldest first: ``version``, ``active``, ``file``, ``ok`` (bool),
            ``status`` (``"ok"`` or the reason it fails, one line).

        Raises
        ------
        RegistryError
            The manifest cannot be read at all (nor its backup), or ``version`` is unknown.
        """
        manifest = self._manifest_for_reading()
        active = manifest.get("active")
        names = sorted(map(str, manifest["versions"]))
        if version is not None:
            if version not in manifest["versions"]:
                self._entry(manifest, version)  # raises, naming the known versions
            names = [version]
        out = []
        if version is None and active is not None and active not in manifest["versions"]:
            out.append({"version": active, "active": True, "file": None, "ok": False,
                        "status": f"the manifest's active version {active} has no entry"})
        for name in names:
            entry = manifest["versions"].get(name)
            row = {"version": name, "active": name == active,
                   "file": entry.get("file") if isinstance(entry, dict) else None, "ok": False}
            try:
                self.load(name)
                row["file"] = self.file_path(name).name
                for kind in (self.metadata_entry(name).get("artifacts") or {}):
                    self.artifact(name, kind)
                row.update(ok=True, status="ok")
            except RegistryError as exc:
                row["status"] = str(exc)
            out.append(row)
        return out

    # ------------------------------------------------------------------ writing
    def save(self, model, meta: dict, *, activate: bool = True, artifacts: dict | None = None) -> str:
        """Write a new version: model file first, then the manifest that names it.

        Parameters
        ----------
        model : SegmentationModel
            Fitted; stored as arrays (:meth:`SegmentationModel.to_arrays`).
        meta : dict
            JSON-serialisable metadata (fingerprint, features, k, seed, metrics, ...).
        activate : bool, default True
        artifacts : dict of str to bytes, optional
            What the version stores beside its model (kinds in ``ARTIFACTS``), written before the
            manifest names them.

        Returns
        -------
        str
            The new version, e.g. ``"v0004"``.
        """
        from core.fitting.model import SegmentationModel

        if not isinstance(model, SegmentationModel):
            raise TypeError(f"the registry stores SegmentationModel objects, not {type(model).__name__}")
        if not isinstance(meta, dict):
            raise TypeError("meta must be a dict")
        data = model_to_bytes(model)
        json.dumps(meta)  # fail before touching the disk if meta is not serialisable
        artifacts = dict(artifacts or {})
        for kind, blob in artifacts.items():
            self._check_artifact(kind, blob)
        with self._locked():
            manifest = self._read_manifest()
            numbers = [int(v[1:]) for v in manifest["versions"] if isinstance(v, str) and _VERSION_RE.match(v)]
            # Numbers are never reused: not those of deleted versions (the manifest's high-water mark,
            # kept in its backup too), nor those of files a crash left without an entry.
            numbers += [int(p.name[1:].split(".")[0]) for p in self.root.iterdir() if _MODEL_FILE_RE.match(p.name)]
            numbers.append(self._high_water(manifest))
            version = f"v{max(numbers) + 1:04d}"
            manifest["last_version"] = max(numbers) + 1
            filename = f"{version}.npz"
            _atomic_write(self.root / filename, data)
            manifest["versions"][version] = {
                "file": filename, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "meta": meta,
            }
            if artifacts:
                manifest["versions"][version]["artifacts"] = {
                    kind: self._write_artifact(version, kind, blob) for kind, blob in artifacts.items()}
            if activate or manifest.get("active") is None:
                self._set_active(manifest, version)
            self._write_manifest(manifest)
        return version

    @staticmethod
    def _high_water(manifest: dict) -> int:
        """The highest version number ever given in this registry (``last_version``; 0 when unset or unreadable)."""
        mark = manifest.get("last_version", 0)
        return mark if isinstance(mark, int) and not isinstance(mark, bool) and mark >= 0 else 0

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

    @staticmethod
    def _rollback_history(manifest: dict) -> list[str]:
        history = [v for v in manifest.get("history", []) if v in manifest["versions"]]
        while history and history[-1] == manifest.get("active"):
            history.pop()
        return history

    def previous_version(self) -> str | None:
        """The version :meth:`rollback` would activate (None when there is none).

        Returns
        -------
        str or None
        """
        history = self._rollback_history(self._manifest_for_reading())
        return history[-1] if history else None

    def rollback(self) -> str:
        """Re-activate the previously active version (after checking it loads, as :meth:`activate`).

        Returns
        -------
        str
            The version now active.
        """
        for _ in range(3):  # another writer may change the history between the check and the write
            target = self.previous_version()
            if target is None:
                raise RegistryError("nothing to roll back to: no earlier active version")
            self.load(target)  # never point at a file that fails its checksum
            with self._locked():
                manifest = self._read_manifest()
                history = self._rollback_history(manifest)
                if not history or history[-1] != target:
                    continue
                history.pop()
                manifest["history"] = history
                manifest["active"] = target
                self._write_manifest(manifest)
                return target
        raise RegistryError("the registry changed during the rollback several times; try again")

    def delete(self, version: str) -> dict:
        """Delete an inactive version, and its kept training data when no other version uses it.

        A version whose manifest entry is malformed can be deleted too (only files named after
        the version are removed then, never a path the entry names).

        Parameters
        ----------
        version : str

        Returns
        -------
        dict
            ``removed`` (list of ``{"path", "bytes", "reason"}``, paths relative to the registry),
            ``files`` and ``bytes`` removed.
        """
        removed: list[dict] = []
        with self._locked():
            manifest = self._read_manifest()
            if version not in manifest["versions"]:
                self._entry(manifest, version)  # raises, naming the known versions
            if manifest.get("active") == version:
                raise RegistryError(f"{version} is the active model; activate another version before deleting it")
            if not isinstance(version, str) or not _VERSION_RE.match(version):
                raise RegistryError(f"{version!r} is not a model version name")
            # The mark covers every number ever given, so a registry written before it existed gets it here.
            manifest["last_version"] = max([self._high_water(manifest)] + [
                int(v[1:]) for v in manifest["versions"] if isinstance(v, str) and _VERSION_RE.match(v)])
            entry = manifest["versions"].pop(version)
            manifest["history"] = [v for v in manifest.get("history", []) if v != version]
            self._write_manifest(manifest)
            for suffix in (".npz", ".joblib"):
                self._remove(self.root / f"{version}{suffix}", f"model file of {version}", removed)
            for path in sorted(self.root.glob(f"{version}.*.*")):
                if _is_artifact_file(path.name) and path.name.split(".")[0] == version:
                    self._remove(path, f"artifact of {version}", removed)
            kept = self._kept_data_name(entry.get("meta") if isinstance(entry, dict) else None)
            if kept and kept not in self._referenced_data(manifest) and not self._training_running():
                self._remove(self.root / "data" / kept, f"training data of {version}, used by no other version",
                             removed)
        return {"removed": removed, "files": len(removed), "bytes": sum(r["bytes"] for r in removed)}

    @staticmethod
    def _kept_data_name(meta) -> str | None:
        """The name of the kept training file a version's metadata points at (None if not a kept one)."""
        path = meta.get("data_path") if isinstance(meta, dict) else None
        if not isinstance(path, str):
            return None
        # Compared by name, not full path: kept files are named by content, and a registry folder
        # that was moved or copied still holds its files under the same names.
        name = Path(path).name
        return name if _KEPT_DATA_RE.match(name) and Path(path).parent.name == "data" else None

    def _referenced_data(self, manifest: dict) -> set[str]:
        names = set()
        for entry in manifest["versions"].values():
            name = self._kept_data_name(entry.get("meta") if isinstance(entry, dict) else None)
            if name:
                names.add(name)
        return names

    def gc(self) -> dict:
        """Delete what no version needs: unreferenced kept data, stray temp files, orphaned model files.

        Kept training files (``data/``) that no version's ``data_path`` names, temporary files
        left by interrupted writes and model files without a manifest entry are removed when
        they are more than an hour old (younger ones may belong to a save or upload in
        progress); kept data is left alone while a training run holds the training lock.

        Returns
        -------
        dict
            ``removed`` (list of ``{"path", "bytes", "reason"}``), ``files``, ``bytes`` and
            ``skipped`` (reasons something was deliberately not examined).

        Raises
        ------
        RegistryError
            The manifest was recovered from its backup or has a malformed entry: deciding what is
            unreferenced needs a sound manifest, so nothing is deleted.
        """
        removed: list[dict] = []
        skipped: list[str] = []
        if not self.root.exists():
            return {"removed": removed, "files": 0, "bytes": 0, "skipped": skipped}
        with self._locked():
            manifest = self._read_manifest()
            if self.recovered:
                raise RegistryError(f"{_MANIFEST} is damaged (recovered from {_BACKUP}); gc deletes nothing until "
                                    "the manifest is rewritten by the next change (e.g. `models activate`)")
            for version in manifest["versions"]:
                problem = _entry_problem(version, manifest["versions"][version])
                if problem:
                    raise RegistryError(f"model {version}: its manifest entry is malformed: {problem}; "
                                        "gc deletes nothing until it is fixed or the version is deleted")
            models = {entry["file"] for entry in manifest["versions"].values()}
            models |= {record["file"] for entry in manifest["versions"].values()
                       for record in (entry.get("artifacts") or {}).values()}
            data, kept = self.root / "data", self._referenced_data(manifest)
            training = data.is_dir() and self._training_running()
            if training:
                skipped.append("kept training data: a training run is in progress")

            def reason(path: Path) -> str | None:
                if _TEMP_RE.match(path.name):
                    return "temporary file left by an interrupted write"
                if path.parent == self.root and _MODEL_FILE_RE.match(path.name) and path.name not in models:
                    return "model file with no manifest entry"
                if path.parent == self.root and _is_artifact_file(path.name) and path.name not in models:
                    return "artifact no version names"
                if path.parent == data and _KEPT_DATA_RE.match(path.name) and path.name not in kept and not training:
                    return "training data no version uses"
                return None

            now = time.time()
            for path in [*sorted(self.root.iterdir()), *(sorted(data.iterdir()) if data.is_dir() else [])]:
                with contextlib.suppress(FileNotFoundError):
                    why = reason(path) if path.is_file() and not path.is_symlink() else None
                    if why and _file_age(path, now) > _STALE_SECONDS:
                        self._remove(path, why, removed)
        return {"removed": removed, "files": len(removed), "bytes": sum(r["bytes"] for r in removed),
                "skipped": skipped}

    # ------------------------------------------------------------------ artifacts
    @staticmethod
    def _check_artifact(kind: str, blob) -> None:
        if kind not in ARTIFACTS:
            raise RegistryError(f"unknown artifact {kind!r} (known: {', '.join(ARTIFACTS)})")
        if not isinstance(blob, (bytes, bytearray)):
            raise TypeError(f"artifact {kind} must be bytes, not {type(blob).__name__}")

    def _write_artifact(self, version: str, kind: str, blob: bytes) -> dict:
        """Write one artifact file (atomically) and return its manifest record; caller holds the lock."""
        sha = hashlib.sha256(blob).hexdigest()
        name = _artifact_file(version, kind, sha)
        _atomic_write(self.root / name, bytes(blob))
        return {"file": name, "sha256": sha, "bytes": len(blob)}

    def metadata_entry(self, version: str | None = None) -> dict:
        """A version's manifest entry as stored (a copy): file, checksum, metadata, artifacts."""
        return copy.deepcopy(self._resolve(version)[1])

    def put_artifact(self, version: str, kind: str, blob: bytes) -> dict:
        """Store (or replace) one artifact of an existing version, e.g. views computed after training.

        The new file is written first under a name that carries its checksum, then the manifest
        names it, then the file it replaces is removed: readers see the old artifact or the new
        one, never a partial file.

        Parameters
        ----------
        version : str
        kind : str
            One of ``ARTIFACTS``.
        blob : bytes

        Returns
        -------
        dict
            The manifest record: ``file``, ``sha256``, ``bytes``.
        """
        self._check_artifact(kind, blob)
        with self._locked():
            manifest = self._read_manifest()
            entry = self._entry(manifest, version)
            record = self._write_artifact(version, kind, blob)
            old = (entry.get("artifacts") or {}).get(kind)
            entry.setdefault("artifacts", {})[kind] = record
            self._write_manifest(manifest)
            if old and old["file"] != record["file"]:
                with contextlib.suppress(FileNotFoundError):
                    (self.root / old["file"]).unlink()
        return record

    def artifact(self, version: str | None, kind: str) -> bytes | None:
        """The bytes of a version's artifact after they match the manifest's SHA-256.

        Parameters
        ----------
        version : str or None
            None for the active version.
        kind : str
            One of ``ARTIFACTS``.

        Returns
        -------
        bytes or None
            None when the version has no artifact of that kind (e.g. versions trained before
            artifacts existed: callers compute what they need instead).

        Raises
        ------
        RegistryError
            Unknown version or kind, an unreadable file, or a checksum mismatch.
        """
        if kind not in ARTIFACTS:
            raise RegistryError(f"unknown artifact {kind!r} (known: {', '.join(ARTIFACTS)})")
        version, entry, _ = self._resolve(version)
        record = (entry.get("artifacts") or {}).get(kind)
        if record is None:
            return None
        try:
            data = (self.root / record["file"]).read_bytes()
        except OSError as exc:
            raise RegistryError(f"model {version}: artifact {record['file']} cannot be read ({exc.strerror})") from exc
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            raise RegistryError(f"model {version}: artifact {record['file']} fails its checksum (changed or truncated)")
        return data

    def artifact_json(self, version: str | None, kind: str):
        """A JSON artifact parsed (None when absent); RegistryError when it is not valid JSON."""
        data = self.artifact(version, kind)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise RegistryError(f"model {version or 'active'}: artifact {kind} is not valid JSON ({exc})") from None

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
            entry["meta"].update(changes)
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
        twice writes it once; the write is atomic like every other registry write. Keeping a
        file that is already there refreshes its time, so :meth:`gc` leaves it alone while the
        version that will use it is being trained.

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
        else:
            with contextlib.suppress(OSError):
                os.utime(path)
        return path
