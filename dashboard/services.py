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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import profiles
from core.exports import to_safe_csv
from core.model import SegmentationModel
from core.pipeline import PROJECT_ROOT, Prepared, prepare, resolve_data_path, train
from core.projection import Projection, pca
from core.registry import Registry
from core.selection import SweepResult, silhouette_samples, sweep

__all__ = ["Analysis", "Services", "get_services", "CACHE_DIR"]

CACHE_DIR = Path(os.environ.get("SEGMENTLENS_CACHE_DIR", PROJECT_ROOT / ".cache"))
_MEMO_SIZE = 4
_MAX_NAME = 60


@dataclass
class Analysis:
    """Everything the pages show about the active model on its data."""

    version: str
    fingerprint: str
    source: str
    k: int
    features: list
    frame: pd.DataFrame
    meta: dict
    sizes: pd.DataFrame
    zscores: pd.DataFrame
    stats: pd.DataFrame
    product_mix: pd.DataFrame
    channel_mix: pd.DataFrame
    campaigns: pd.DataFrame
    economics: pd.DataFrame
    lift: pd.DataFrame
    projection: Projection
    coords: np.ndarray
    centroid_coords: np.ndarray
    silhouette: np.ndarray
    silhouette_rows: np.ndarray
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    personas: list
    load_info: dict = field(default_factory=dict)
    cleaning: dict = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        """Segment of every customer."""
        return self.frame["segment"].to_numpy()


class Services:
    """Cached access to the registry, the data and the analyses of the active model."""

    def __init__(self, registry: Registry, cache, data_path: str | os.PathLike | None = None):
        self.registry = registry
        self.cache = cache
        self.data_path = data_path
        self._memo: OrderedDict = OrderedDict()
        self._memo_lock = threading.Lock()

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
        """The model and its metadata (active by default); metadata is re-read so renames show at once."""
        version = version or self.registry.active_version()
        meta = self.registry.metadata(version)
        model = self._memo_get(("model", version))
        if model is None:
            model, _ = self.registry.load(version)
            self._memo_put(("model", version), model)
        return model, meta

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
        version = self.registry.active_version() or self.ensure_model()
        model, meta = self.model(version)
        path = self.data_path_for(meta)
        st = path.stat()
        key = ("analysis", version, str(path), st.st_mtime_ns, st.st_size)
        return self._cached(key, lambda: build_analysis(model, meta, prepare(path)))

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
        key = ("sweep", analysis.version, analysis.fingerprint, k_min, k_max)

        def compute():
            Z = scaled(analysis)
            return sweep(Z, k_min, k_max, seed=int(analysis.meta.get("seed", 42)), current_k=analysis.k,
                         progress=progress)
        return self._cached(key, compute)

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


def scaled(analysis: Analysis) -> np.ndarray:
    """The analysis' customers in the model's scaled feature space."""
    X = analysis.frame[analysis.features].to_numpy(dtype=float)
    return (X - analysis.scaler_mean) / analysis.scaler_scale


def build_analysis(model: SegmentationModel, meta: dict, prepared: Prepared) -> Analysis:
    """Score the data with the model and compute every profile, the PCA and the silhouettes."""
    frame = prepared.frame
    scores = model.score(frame)
    frame = frame.assign(segment=scores["segment"].to_numpy(), confidence=scores["confidence"].to_numpy(),
                         typicality=scores["typicality"].to_numpy())
    labels = frame["segment"].to_numpy()
    k = model.k
    Z = model.transform(frame)
    projection = pca(Z, 3, features=model.features, seed=model.seed)
    sil, rows = silhouette_samples(Z, labels, seed=model.seed)
    return Analysis(
        version=meta["version"], fingerprint=prepared.fingerprint, source=prepared.source, k=k,
        features=list(model.features), frame=frame, meta=meta,
        sizes=profiles.sizes(labels, k), zscores=profiles.zscores(frame, labels).reindex(range(k)).fillna(0.0),
        stats=profiles.summary_stats(frame, labels, profiles.PROFILE_COLUMNS),
        product_mix=profiles.product_mix(frame, labels).reindex(range(k)).fillna(0.0),
        channel_mix=profiles.channel_mix(frame, labels).reindex(range(k)).fillna(0.0),
        campaigns=profiles.campaign_rates(frame, labels), economics=profiles.economics(frame, labels).reindex(range(k)),
        lift=profiles.product_lift(frame, labels).reindex(range(k)).fillna(0.0),
        projection=projection, coords=projection.transform(Z),
        centroid_coords=projection.transform(model.centroids_),
        silhouette=sil, silhouette_rows=rows, scaler_mean=model.mean_.copy(), scaler_scale=model.scale_.copy(),
        personas=profiles.personas(frame, labels, k),
        load_info=prepared.info.to_dict(), cleaning=prepared.report.to_dict(),
    )


def get_services() -> Services:
    """The Services of the running app (from the Flask server handling this request)."""
    import flask

    return flask.current_app.extensions["segmentlens"]
