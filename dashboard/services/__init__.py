"""The one bridge between the dashboard and core: cached analyses keyed by model version and data.

A :class:`Services` object lives on the Flask server (``server.extensions``), not
in a module global. Expensive results go through flask-caching's
FileSystemCache, which every gunicorn worker shares, keyed by model version and
data fingerprint; each process also keeps the last few decoded results in a
small in-memory LRU so a warm callback does not unpickle megabytes.
"""
from __future__ import annotations

import fcntl
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from core import profiles
from core.exports import to_safe_csv
from core.model import SegmentationModel
from core.pipeline import prepare, resolve_data_path, train
from core.registry import Registry, RegistryError
from core.selection import SweepResult, sweep

from .analysis import Analysis, build_analysis, profile_tables, scaled
from .cache import CACHE_DIR
from .predict import PredictServices
from .stability import StabilityServices
from .uploads import DataServices

__all__ = ["Analysis", "Services", "get_services", "CACHE_DIR", "build_analysis", "profile_tables", "scaled"]

# Entries of the per-process LRU: the model and analysis of a version or two plus their derived
# results (sweeps, stability, comparisons, rendered views); all small but the analyses.
_MEMO_SIZE = 32
_SWEEP_STABILITY_RESAMPLES = 10
_MAX_NAME = 60



class Services(PredictServices, StabilityServices, DataServices):
    """Cached access to the registry, the data and the analyses of the active model."""

    def __init__(self, registry: Registry, cache, data_path: str | os.PathLike | None = None):
        self.registry = registry
        self.cache = cache
        self.data_path = data_path
        self._memo: OrderedDict = OrderedDict()
        self._memo_lock = threading.Lock()

    @classmethod
    def from_env(cls) -> "Services":
        """Services built from the environment alone, for code without a Flask request (background callbacks).

        Same registry (SEGMENTLENS_MODELS), data (SEGMENTLENS_DATA) and on-disk result cache
        (SEGMENTLENS_CACHE_DIR/results) as the app's, so results computed here are the app's too.
        """
        from cachelib import FileSystemCache

        cache_dir = Path(os.environ.get("SEGMENTLENS_CACHE_DIR", CACHE_DIR))
        # Same settings as factory.create_app's flask-caching FileSystemCache, which writes the same files.
        cache = FileSystemCache(str(cache_dir / "results"), threshold=200, default_timeout=0)
        return cls(Registry(), cache, None)

    # ------------------------------------------------------------ model & data
    def ensure_model(self) -> str:
        """Train a model on the configured data when the registry has none; return the active version."""
        active = self.registry.active_version()
        if active:
            return active
        self.registry.root.mkdir(parents=True, exist_ok=True)
        # One trainer at a time across gunicorn workers; the others find its model when they get the lock.
        with open(self.registry.root / ".train.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            active = self.registry.active_version()
            if not active:
                active, _, _ = train(self.configured_data(), registry=self.registry)
        return active

    def configured_data(self) -> Path:
        """The data file given by configuration (flag, SEGMENTLENS_DATA, data/, sample)."""
        return resolve_data_path(self.data_path)

    def model(self, version: str | None = None) -> tuple[SegmentationModel, dict]:
        """The model and its metadata (active by default); metadata is re-read so renames show at once.

        When the active model's file fails its checksum (or is missing), the newest earlier version that
        loads is served instead and :meth:`model_warning` says so; an explicit ``version`` never falls back.
        """
        if version is not None:
            return self._checked_model(version), self.registry.metadata(version)
        active = self.registry.active_version()
        if active is None:
            raise RegistryError(f"no active model in {self.registry.root}; train one with `python -m core train`")
        try:
            model = self._checked_model(active)
        except RegistryError as exc:
            return self._fallback_model(active, exc)
        self._degraded = None
        return model, self.registry.metadata(active)

    def _checked_model(self, version: str) -> SegmentationModel:
        """A version's model, loaded (checksum verified) again whenever its file changes on disk."""
        try:  # the registry names model files <version>.joblib; a changed file must be verified again
            st = (self.registry.root / f"{version}.joblib").stat()
            state = (st.st_mtime_ns, st.st_size)
        except OSError:
            state = None
        key = ("model", version, state)
        model = self._memo_get(key)
        if model is None:
            # A file that failed stays failed until it changes: do not hash it again on every request.
            failed = self.__dict__.setdefault("_failed_files", {})
            if (version, state) in failed and state is not None:
                raise failed[(version, state)]
            try:
                model, _ = self.registry.load(version)
            except RegistryError as exc:
                failed.clear()
                failed[(version, state)] = exc
                raise
            self._memo_put(key, model)
        return model

    def _fallback_model(self, bad: str, error: Exception) -> tuple[SegmentationModel, dict]:
        """Serve the newest loadable version before ``bad`` (then any later one) and remember why."""
        import sys

        numbers = {v["version"]: int(v["version"][1:]) for v in self.registry.versions()
                   if v["version"][1:].isdigit()}
        bad_n = numbers.get(bad, 0)
        earlier = sorted((v for v, n in numbers.items() if n < bad_n), key=numbers.get, reverse=True)
        later = sorted((v for v, n in numbers.items() if n > bad_n), key=numbers.get)
        for candidate in earlier + later:
            try:
                model = self._checked_model(candidate)
            except RegistryError:
                continue
            message = (f"The active model {bad} cannot be used: {error}. Showing {candidate} instead, the newest "
                       f"earlier version that loads. Activate a good version or retrain on Data & models.")
            previous = self.__dict__.get("_degraded")
            if not previous or previous.get("message") != message:
                print(f"segmentlens: {message}", file=sys.stderr, flush=True)
            self._degraded = {"bad": bad, "serving": candidate, "message": message}
            return model, self.registry.metadata(candidate)
        raise error

    def model_warning(self) -> str | None:
        """Why the dashboard shows another version than the active one (None when the active model loads)."""
        self.model()
        degraded = self.__dict__.get("_degraded")
        return degraded["message"] if degraded else None

    def data_path_for(self, meta: dict) -> Path:
        """The file the model's analysis is shown on: its training file when still there, else the configured one."""
        trained_on = meta.get("data_path")
        if trained_on and Path(trained_on).exists():
            return Path(trained_on)
        return self.configured_data()

    # ------------------------------------------------------------ memo helpers
    def _memo_get(self, key):
        with self._memo_lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        return None

    def _memo_put(self, key, value) -> None:
        with self._memo_lock:
            self._memo[key] = value
            self._memo.move_to_end(key)
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)

    def view(self, name: str, build, *parts):
        """A page's rendered content, kept per process for the active version, data and segment names.

        Building figures costs tens of milliseconds; the same view for the same model, data,
        names and ``parts`` (e.g. the selected segment) is the same, so it is built once.
        """
        a = self.analysis()
        key = ("view", name, a.version, a.fingerprint, tuple(self.segment_names()), *parts)
        value = self._memo_get(key)
        if value is None:
            value = build()
            self._memo_put(key, value)
        return value

    def _cached(self, key: tuple, compute):
        value = self._memo_get(key)
        if value is not None:
            return value
        cache_key = "sl:" + ":".join(map(str, key))
        value = self.cache.get(cache_key) if self.cache is not None else None
        if value is None:
            value = compute()
            if self.cache is not None:
                self.cache.set(cache_key, value)
        self._memo_put(key, value)
        return value

    # ------------------------------------------------------------ analyses
    def analysis(self) -> Analysis:
        """The full analysis of the active model on its data (cached by version + data file state)."""
        self.registry.active_version() or self.ensure_model()
        model, meta = self.model()  # the active model, or the last good one when its file fails its checksum
        version = meta["version"]
        path = self.data_path_for(meta)
        st = path.stat()
        key = ("analysis", version, str(path), st.st_mtime_ns, st.st_size)
        # A kept upload's file name is made by the server; show the name the user knows it by.
        shown = meta.get("data_source") if meta.get("data_path") and str(path) == meta["data_path"] else None
        return self._cached(key, lambda: build_analysis(model, meta, prepare(path, name=shown)))

    def segment_names(self) -> list[str]:
        """Current names of the active model's segments (renames included)."""
        _, meta = self.model()
        k = int(meta.get("k", 0))
        names = list(meta.get("segment_names") or [])
        return names + [f"Segment {i}" for i in range(len(names), k)]

    def rename_segment(self, segment: int, name: str) -> str:
        """Rename a segment of the active model; returns the saved name or raises ValueError."""
        name = " ".join(str(name or "").split())
        if not name:
            raise ValueError("enter a name")
        if len(name) > _MAX_NAME:
            raise ValueError(f"a name has at most {_MAX_NAME} characters")
        _, meta = self.model()
        names = self.segment_names()
        if not 0 <= segment < len(names):
            raise ValueError(f"no segment {segment}")
        if any(n.lower() == name.lower() for i, n in enumerate(names) if i != segment):
            raise ValueError(f"another segment is already called {name!r}")
        names[segment] = name
        self.registry.update_meta(meta["version"], segment_names=names)
        return name

    def sweep(self, k_min: int, k_max: int, progress=None) -> SweepResult:
        """Metrics per k on the active model's features and data (cached)."""
        analysis = self.analysis()
        key = ("sweep", analysis.version, analysis.fingerprint, k_min, k_max, _SWEEP_STABILITY_RESAMPLES)

        def compute():
            Z = scaled(analysis)
            # Stability per k is one of the criteria of the recommended k (10 refits per k, ~2 s on 2K rows).
            return sweep(Z, k_min, k_max, seed=int(analysis.meta.get("seed", 42)), current_k=analysis.k,
                         stability_resamples=_SWEEP_STABILITY_RESAMPLES, progress=progress)
        return self._cached(key, compute)

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

    # ------------------------------------------------------------ prediction (API and /predict)

    def compare_segments(self, a: int, b: int) -> pd.DataFrame:
        """Means, difference and Cohen's d of every profile column between segments a and b (cached)."""
        analysis = self.analysis()
        key = ("compare", analysis.version, analysis.fingerprint, int(a), int(b))
        return self._cached(key, lambda: profiles.compare_segments(
            analysis.frame, analysis.labels, int(a), int(b), profiles.PROFILE_COLUMNS))

    def profiles_csv(self) -> str:
        """Spreadsheet-safe CSV of every profile table: one row per measure, one column per segment."""
        return to_safe_csv(profile_tables(self.analysis(), self.segment_names()))

    # ------------------------------------------------------------ stability (/stability)


def get_services() -> Services:
    """The Services of the running app (from the Flask server handling this request)."""
    import flask

    return flask.current_app.extensions["segmentlens"]

