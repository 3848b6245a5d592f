"""What the pages show about a model on its data: the Analysis bundle, how it is built, and its service."""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core import profiles
from core.exports import to_safe_csv
from core.model import SegmentationModel
from core.pipeline import Prepared, prepare, resolve_data_path, train
from core.projection import Projection, pca
from core.registry import Registry
from core.selection import SweepResult, silhouette_samples, sweep

from .audit import Auditor
from .results import ResultCache
from .store import ModelStore, padded_names

__all__ = ["Analysis", "AnalysisService", "build_analysis", "scaled", "profile_tables"]

_SWEEP_STABILITY_RESAMPLES = 10
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


def profile_tables(analysis: Analysis, names: list[str]) -> pd.DataFrame:
    """Sizes, means/medians, z-scores, product and channel mix, campaign rates and economics in one frame.

    Rows are (table, measure); columns are the segments ("i · name"), so the file reads like the page.
    """
    k = analysis.k
    parts = [("size", analysis.sizes)]
    stats = analysis.stats
    for stat in ("mean", "median"):
        cols = [c for c in stats.columns if c[1] == stat]
        parts.append((stat, stats[cols].set_axis([c[0] for c in cols], axis=1)))
    parts += [("z-score", analysis.zscores), ("product mix (share of spend)", analysis.product_mix),
              ("channel mix (share of purchases)", analysis.channel_mix)]
    camp = analysis.campaigns
    if len(camp):
        wide = {f"{c} {m}": camp[camp["campaign"] == c].set_index("segment")[col]
                for c in camp["campaign"].unique()
                for m, col in (("rate", "rate"), ("95% low", "low"), ("95% high", "high"))}
        parts.append(("campaign acceptance", pd.DataFrame(wide)))
    parts.append(("campaign economics (like the last campaign)", analysis.economics))
    rows = []
    for table, frame in parts:
        frame = frame.reindex(range(k))
        for measure in frame.columns:
            rows.append({"table": table, "measure": str(measure),
                         **{f"{i} · {names[i]}": frame.loc[i, measure] for i in range(k)}})
    out = pd.DataFrame(rows)
    value_cols = out.columns[2:]
    out[value_cols] = out[value_cols].astype(float).round(6)
    return out


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

    # ------------------------------------------------------------ analyses
    def analysis(self) -> Analysis:
        """The full analysis of the served model on its data (cached by version + data file state)."""
        self.registry.active_version() or self.ensure_model()
        model, meta = self.model()  # raises ModelUnavailable when the active model cannot be served
        version = meta["version"]
        path = self.data_path_for(meta)
        st = path.stat()
        key = ("analysis", version, str(path), st.st_mtime_ns, st.st_size)
        # A kept upload's file name is made by the server; show the name the user knows it by.
        shown = meta.get("data_source") if meta.get("data_path") and str(path) == meta["data_path"] else None
        return self.results.cached(key, lambda: build_analysis(model, meta, prepare(path, name=shown)))

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

        def compute():
            Z = scaled(analysis)
            # Stability per k is one of the criteria of the recommended k (10 refits per k, ~2 s on 2K rows).
            return sweep(Z, k_min, k_max, seed=int(analysis.meta.get("seed", 42)), current_k=analysis.k,
                         stability_resamples=_SWEEP_STABILITY_RESAMPLES, progress=progress)
        return self.results.cached(key, compute)

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
        loads them) plus ``features.json`` naming the column order; see core.seed_export.
        """
        import io
        import tempfile
        import zipfile
        from pathlib import Path

        from core.seed_export import export_sklearn

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
        return to_safe_csv(profile_tables(self.analysis(), self.segment_names()))
