"""The served model: the active version, verified, or nothing (one place for the serving rule).

:class:`ModelStore` owns loading and verifying model files, the verified in-memory
copies, the degraded state and the lock that guards them (gunicorn runs several
threads per worker). The rule: the model served is always the active version. When
its file fails verification or is missing, the verified in-memory copy of *that*
version keeps being served if this process has one (``status`` says so in
``warning``); otherwise :class:`ModelUnavailable` is raised with the reason. Never
an older or newer version instead.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.fitting.model import SegmentationModel
from core.versions.naming import segment_names
from core.versions.registry import Registry, RegistryError

__all__ = ["ModelStore", "ModelUnavailable", "LiveModel"]

_LIVE_RECHECK_S = 1.0
# Verified copies kept per process: the active version and a few compared with it.
_KEEP_VERIFIED = 4


class ModelUnavailable(RegistryError):
    """No model can be served: the active version's file fails verification (or is gone) and this
    process holds no verified copy of it. ``reason`` says why, for people."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LiveModel:
    """The active model as scoring sees it: version, fitted model, metadata, current segment names."""

    version: str
    model: SegmentationModel
    meta: dict
    names: list
    token: str
    checked: float


def padded_names(meta: dict, k: int) -> list[str]:
    """A version's segment names, padded with "Segment i" up to k (renames included): core.versions.naming.segment_names."""
    return segment_names(meta, k)


class ModelStore:
    """Loads and verifies model versions and decides what is served (see the module docstring)."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self._lock = threading.RLock()
        self._loading = threading.Lock()
        self._verified: dict[str, tuple[tuple | None, SegmentationModel]] = {}  # version -> (file state, model)
        self._failed: dict[tuple, RegistryError] = {}  # (version, file state) -> why it failed
        self._live: LiveModel | None = None
        self._status: dict = {"status": "ok", "reason": None, "active": None, "serving": None, "warning": None}
        self._said: str | None = None

    # ------------------------------------------------------------ files
    def file_path(self, version: str) -> Path | None:
        """Where a version's model file is (the registry decides the name; None for an unknown version)."""
        helper = getattr(self.registry, "file_path", None)
        if helper is not None:
            try:
                return Path(helper(version))
            except (RegistryError, KeyError, TypeError, ValueError):
                return None
        try:  # registries without file_path: ask the manifest entry
            entry = self.registry._manifest_for_reading()["versions"].get(version) or {}
        except (RegistryError, AttributeError, TypeError):
            return None
        name = entry.get("file") if isinstance(entry, dict) else None
        return self.registry.root / name if isinstance(name, str) else None

    def _file_state(self, version: str) -> tuple | None:
        path = self.file_path(version)
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        return (str(path), st.st_ino, st.st_mtime_ns, st.st_size)

    # ------------------------------------------------------------ loading
    def load(self, version: str, *, keep_copy: bool = False) -> SegmentationModel:
        """A version's model, verified (checksum) again whenever its file changes on disk.

        Raises RegistryError when the file is missing or fails verification; with ``keep_copy``
        the verified copy this process loaded earlier is returned instead (the serving rule).
        """
        fresh = self._fresh(version, self._file_state(version))
        if fresh is not None:
            return fresh
        with self._loading:  # one load at a time: a page's callbacks arrive together and would each load it
            return self._load(version, keep_copy)

    def _fresh(self, version: str, state) -> SegmentationModel | None:
        """The verified copy of ``version`` when its file has not changed since (None otherwise)."""
        with self._lock:
            held = self._verified.get(version)
        return held[1] if held is not None and held[0] == state and state is not None else None

    def _load(self, version: str, keep_copy: bool) -> SegmentationModel:
        state = self._file_state(version)
        with self._lock:
            held = self._verified.get(version)
            if held is not None and held[0] == state and state is not None:
                return held[1]
            failed = self._failed.get((version, state)) if state is not None else None
        if failed is None:
            try:
                model, _ = self.registry.load(version)
            except RegistryError as exc:
                failed = exc
            else:
                with self._lock:
                    self._verified.pop(version, None)
                    self._verified[version] = (state, model)
                    while len(self._verified) > _KEEP_VERIFIED:
                        self._verified.pop(next(iter(self._verified)))
                    self._failed = {key: e for key, e in self._failed.items() if key[0] != version}
                return model
            with self._lock:  # a file that failed stays failed until it changes: do not hash it on every call
                self._failed = {key: e for key, e in self._failed.items() if key[0] != version}
                self._failed[(version, state)] = failed
        if keep_copy and held is not None:
            return held[1]
        raise failed

    # ------------------------------------------------------------ serving
    def served(self) -> tuple[SegmentationModel, dict]:
        """The active model and its metadata (re-read, so renames show at once), or ModelUnavailable."""
        try:
            active = self.registry.active_version()
        except RegistryError as exc:
            self._set(active=None, reason=f"the registry cannot be read: {exc}")
            raise ModelUnavailable(self._status["reason"]) from exc
        if active is None:
            reason = "no active model in the registry; train one with `python -m core train`"
            self._set(active=None, reason=reason)
            raise ModelUnavailable(reason)
        try:
            meta = self.registry.metadata(active)
        except RegistryError as exc:
            self._set(active=active, reason=f"the active model {active} cannot be used: {exc}")
            raise ModelUnavailable(self._status["reason"]) from exc
        try:
            model = self.load(active)
        except RegistryError as exc:
            with self._lock:
                held = self._verified.get(active)
            if held is None:
                reason = (f"the active model {active} cannot be used: {exc}. No other version is served "
                          "instead: an admin can activate a good version on Data & models or retrain")
                self._set(active=active, reason=reason)
                raise ModelUnavailable(reason) from exc
            self._set(active=active, serving=active,
                      warning=f"the file of the active model {active} cannot be used now ({exc}); this server "
                              f"keeps serving the copy of {active} it verified earlier, until it restarts")
            return held[1], meta
        self._set(active=active, serving=active)
        return model, meta

    def _set(self, *, active, serving=None, reason=None, warning=None) -> None:
        status = {"status": "ok" if serving else "degraded", "reason": reason, "active": active,
                  "serving": serving, "warning": warning}
        with self._lock:
            self._status = status
        said = reason or warning
        if said and said != self._said:  # once per change, so the server log explains a 503
            print(f"segmentlens: {said}", file=sys.stderr, flush=True)
        self._said = said

    def status(self) -> dict:
        """``{"status": "ok"|"degraded", "reason", "active", "serving", "warning"}`` after checking the active model.

        ``ok`` only while the active version is what is served (its verified in-memory copy
        counts, with ``warning`` set); ``degraded`` with ``reason`` when nothing can be served.
        """
        try:
            self.served()
        except ModelUnavailable:
            pass
        with self._lock:
            return dict(self._status)

    def live(self) -> LiveModel:
        """The served model with metadata and names; re-checked when the manifest changes, else each second.

        The check is one stat() of the manifest (Registry.token), so every gunicorn worker follows an
        activation on its next request; the re-check each second also notices a damaged model file.
        """
        token = self.registry.token()
        now = time.monotonic()
        live = self._live
        if live is not None and live.token == token and now - live.checked < _LIVE_RECHECK_S:
            return live
        model, meta = self.served()
        live = LiveModel(version=meta["version"], model=model, meta=meta, names=padded_names(meta, int(model.k)),
                         token=token, checked=now)
        self._live = live
        return live
