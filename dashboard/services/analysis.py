"""What the pages show about a model on its data: the Analysis bundle, how it is built, and its service."""
from __future__ import annotations

import fcntl
import math
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from core import profiles
from core.exports import to_safe_csv
from core.model import SegmentationModel
from core.pipeline import Prepared, resolve_data_path, train
from core.registry import Registry, RegistryError
from core.selection import SweepResult, sweep
from core.views import (
    analysis_parts, frame_from_json, matches_basis, matches_data, personas_from_json, projection_from_json,
    score_frame, segment_numbers, sweep_from_json,
)

from .audit import Auditor
from .results import ResultCache
from .store import ModelStore, padded_names
from .uploads import prepare_model_data

__all__ = ["Analysis", "AnalysisService", "build_analysis", "analysis_from_views", "scaled", "profile_tables"]

_SWEEP_STABILITY_RESAMPLES = 10
_FIRST_TRAINING_WAIT = 3600.0  # seconds another worker waits for the first start's training
_MAX_NAME = 60


class Analysis:
    """Everything the pages show about the active model on its data.

    The customers (``frame``) and their PCA coordinates (``coords``) may be loaded lazily: an
    analysis built from a version's stored views has every summary at once and reads the
    customers only when a page needs them (``loader`` returns ``(frame, coords)``).
    """

    _FIELDS = ("version", "fingerprint", "source", "k", "features", "meta", "sizes", "zscores", "stats",
               "product_mix", "channel_mix", "campaigns", "economics", "lift", "projection", "centroid_coords",
               "silhouette", "silhouette_rows", "scaler_mean", "scaler_scale", "personas")

    def __init__(self, *, frame: pd.DataFrame | None = None, coords: np.ndarray | None = None, loader=None,
                 load_info: dict | None = None, cleaning: dict | None = None, numbers: pd.DataFrame | None = None,
                 income_mean: float | None = None, response_mean: float | None = None,
                 n_customers: int | None = None, from_views: bool = False, basis: dict | None = None, **fields):
        missing = [name for name in self._FIELDS if name not in fields]
        if missing or set(fields) - set(self._FIELDS):
            raise TypeError(f"Analysis fields missing {missing} or unknown {sorted(set(fields) - set(self._FIELDS))}")
        if frame is None and loader is None:
            raise TypeError("Analysis needs its customers (frame) or a loader for them")
        self.__dict__.update(fields)
        self.load_info, self.cleaning = dict(load_info or {}), dict(cleaning or {})
        self.from_views = from_views
        # Set when ``frame`` is a stratified sample of a larger table (core.sample_basis): rows, of_rows, seed.
        self.basis = dict(basis) if basis else None
        self._frame, self._coords, self._loader = frame, coords, loader
        self._numbers, self._income_mean, self._response_mean = numbers, income_mean, response_mean
        self._n_customers = n_customers
        self._lock = threading.Lock()

    def __getstate__(self):
        # Pickled into the shared result cache only when complete (built from the customers).
        state = {key: value for key, value in self.__dict__.items() if key not in ("_lock", "_loader")}
        state["_frame"], state["_coords"] = self.frame, self.coords
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._loader, self._lock = None, threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._frame is None:
                self._frame, self._coords = self._loader()

    @property
    def frame(self) -> pd.DataFrame:
        """The scored customers (read on first use when the analysis came from stored views)."""
        if self._frame is None:
            self._load()
        return self._frame

    @property
    def coords(self) -> np.ndarray:
        """Every customer's PCA coordinates (3 components)."""
        if self._coords is None:
            self._load()
        return self._coords

    @property
    def sampled(self) -> bool:
        """Whether ``frame`` is a sample of the version's customers (the counts still cover every customer)."""
        return self.basis is not None

    @property
    def frame_loaded(self) -> bool:
        """Whether the customers are in memory (False until a page needed them, for views-built analyses)."""
        return self._frame is not None

    @property
    def n_customers(self) -> int:
        """Number of customers."""
        return int(self._n_customers) if self._n_customers is not None else len(self.frame)

    @property
    def numbers(self) -> pd.DataFrame:
        """Per segment: customers, share, average spend and income, response rate, share of spend."""
        if self._numbers is None:
            self._numbers = segment_numbers(self.frame, self.k)
        return self._numbers

    @property
    def income_mean(self) -> float:
        """Average income of all customers."""
        if self._income_mean is None:
            self._income_mean = float(self.frame["Income"].mean())
        return self._income_mean

    @property
    def response_mean(self) -> float:
        """Share of all customers who accepted the last campaign (NaN without a Response column)."""
        if self._response_mean is None:
            self._response_mean = float(self.frame["Response"].mean()) if "Response" in self.frame else math.nan
        return self._response_mean

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


def _customers(model: SegmentationModel, frame: pd.DataFrame, projection) -> tuple[pd.DataFrame, np.ndarray]:
    """The scored customers of a views-built analysis and their coordinates on its stored PCA."""
    frame = score_frame(model, frame) if "segment" not in frame else frame
    return frame, projection.transform(model.transform(frame))


def scaled(analysis: Analysis) -> np.ndarray:
    """The analysis' customers in the model's scaled feature space."""
    X = analysis.frame[analysis.features].to_numpy(dtype=float)
    return (X - analysis.scaler_mean) / analysis.scaler_scale


def build_analysis(model: SegmentationModel, meta: dict, prepared: Prepared, basis=None) -> Analysis:
    """Score the data with the model and compute every profile, the PCA and the silhouettes.

    With ``basis`` (core.sample_basis.SampleBasis: ``prepared`` is the version's sample of a larger
    table) the customer count, sizes and per-segment numbers cover every customer (its aggregates).
    """
    frame = score_frame(model, prepared.frame)
    parts = analysis_parts(model, frame)
    counts = {}
    if basis is not None:
        whole = basis.whole_table(model.k)
        parts["sizes"] = whole.pop("sizes")
        counts = dict(whole, basis=basis.to_dict(), n_customers=basis.of_rows)
    return Analysis(
        version=meta["version"], fingerprint=prepared.fingerprint, source=prepared.source, k=model.k,
        features=list(model.features), frame=frame, meta=meta,
        scaler_mean=model.mean_.copy(), scaler_scale=model.scale_.copy(),
        load_info=prepared.info.to_dict(), cleaning=prepared.report.to_dict(), **parts, **counts,
    )


def analysis_from_views(views: dict, meta: dict, loader) -> Analysis:
    """The analysis of a version from its stored views; the customers are read by ``loader`` when a page needs them."""
    a = views["views"]["analysis"]
    overview = views["views"]["overview"]
    return Analysis(
        version=meta["version"], fingerprint=a["data"]["fingerprint"], source=a["data"]["source"], k=int(a["k"]),
        features=list(a["features"]), meta=meta, loader=loader, from_views=True,
        **{name: frame_from_json(a[name]) for name in
           ("sizes", "zscores", "stats", "product_mix", "channel_mix", "campaigns", "economics", "lift")},
        projection=projection_from_json(a["projection"]),
        centroid_coords=np.asarray(a["centroid_coords"], dtype=float),
        silhouette=np.asarray(a["silhouette"], dtype=float), silhouette_rows=np.asarray(a["silhouette_rows"], dtype=np.int64),
        scaler_mean=np.asarray(a["scaler_mean"], dtype=float), scaler_scale=np.asarray(a["scaler_scale"], dtype=float),
        personas=personas_from_json(a["personas"]), load_info=a["load_info"], cleaning=a["cleaning"],
        numbers=frame_from_json(overview["numbers"]), n_customers=int(a["n_customers"]), basis=a.get("basis"),
        income_mean=math.nan if overview["income_mean"] is None else float(overview["income_mean"]),
        response_mean=math.nan if overview["response_mean"] is None else float(overview["response_mean"]),
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

    # ------------------------------------------------------------ analyses
    def analysis(self) -> Analysis:
        """The analysis of the served model on its data (cached by version + data file state).

        Served from the version's stored views when they were computed on the data shown (no
        computation: the customers are read only when a page needs them); else computed.
        """
        self.registry.active_version() or self.ensure_model()
        model, meta = self.model()  # raises ModelUnavailable when the active model cannot be served
        version = meta["version"]
        basis = self.sample_basis(version, meta)
        if basis is not None:
            return self._sampled_analysis(model, meta, basis)
        path = self.data_path_for(meta)
        st = path.stat()
        key = ("analysis", version, str(path), st.st_mtime_ns, st.st_size)
        # A kept upload's file name is made by the server; show the name the user knows it by.
        shown = meta.get("data_source") if meta.get("data_path") and str(path) == meta["data_path"] else None
        found = self.results.get(key)
        if found is not None:
            return found
        views = self.stored_views(version)
        if matches_data(views, path):
            projection = projection_from_json(views["views"]["analysis"]["projection"])

            def load():
                return self.results.cached(("customers", *key[1:]), lambda: _customers(
                    model, prepare_model_data(self.registry, version, path, shown).frame, projection))
            return self.results.local(key, lambda: analysis_from_views(views, meta, load))
        return self.results.cached(key, lambda: build_analysis(model, meta,
                                                               prepare_model_data(self.registry, version, path, shown)))

    def sample_basis(self, version: str, meta: dict | None = None):
        """The version's sample when its table is larger than it (core.sample_basis), else None.

        Read and verified once per process; an unreadable sample means the data file is read instead.
        """
        from core.sample_basis import sampled_customers

        def read():
            try:
                return sampled_customers(self.registry, version, meta) or False
            except (RegistryError, KeyError, ValueError, TypeError, OSError) as exc:
                print(f"SegmentLens: sample of {version} not used: {exc}", file=sys.stderr, flush=True)
                return False
        return self._once_per_artifact(version, "sample", read)

    def _sampled_analysis(self, model, meta: dict, basis) -> Analysis:
        """The analysis of a version larger than its sample: from its views, else computed on the sample."""
        version = meta["version"]
        key = ("analysis", version, "sample", basis.rows, basis.of_rows, basis.seed)
        found = self.results.get(key)
        if found is not None:
            return found
        views = self.stored_views(version)
        if matches_basis(views, basis):
            projection = projection_from_json(views["views"]["analysis"]["projection"])
            return self.results.local(key, lambda: analysis_from_views(
                views, meta, lambda: _customers(model, basis.prepared.frame, projection)))
        return self.results.local(key, lambda: build_analysis(model, meta, basis.prepared, basis))

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
        """Compute and store the active version's views when it lacks them (or they describe other data).

        Run once when the server starts (a warm-up, never on a visitor's request); one process
        computes while the other workers wait for its result. Returns the version warmed, or None.
        """
        from core.views import store_views

        version = self.registry.active_version()
        if not version:
            return None
        try:
            model, meta = self.model()
        except RegistryError:
            return None  # nothing can be served: the banner says why
        basis = self.sample_basis(version, meta)
        if basis is not None:
            return self._ensure_sampled_views(model, meta, basis)
        path = self.data_path_for(meta)
        if matches_data(self.stored_views(version), path):
            return None
        shown = meta.get("data_source") if meta.get("data_path") and str(path) == meta["data_path"] else None
        try:
            with open(self.registry.root / ".views.lock", "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                if matches_data(self.stored_views(version), path):
                    return None
                prepared = prepare_model_data(self.registry, version, path, shown)
                frame = score_frame(model, prepared.frame)
                views = store_views(self.registry, version, model, prepared, data_path=path, meta=meta, frame=frame)
        except (RegistryError, OSError, ValueError, KeyError, TypeError) as exc:  # pages compute as before
            print(f"SegmentLens: views of {version} not computed: {exc}", file=sys.stderr, flush=True)
            return None
        st = path.stat()
        # The customers were just read: the first page that needs them does not read them again.
        self.results.put(("customers", version, str(path), st.st_mtime_ns, st.st_size),
                         _customers(model, frame, projection_from_json(views["views"]["analysis"]["projection"])))
        return version

    def _ensure_sampled_views(self, model, meta: dict, basis) -> str | None:
        """ensure_views for a version larger than its sample: computed from the sample, never the file."""
        from core.views import store_views

        version = meta["version"]
        if matches_basis(self.stored_views(version), basis):
            return None
        try:
            with open(self.registry.root / ".views.lock", "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                if matches_basis(self.stored_views(version), basis):
                    return None
                store_views(self.registry, version, model, basis.prepared, meta=meta, basis=basis)
        except (RegistryError, OSError, ValueError, KeyError, TypeError) as exc:  # pages compute as before
            print(f"SegmentLens: views of {version} not computed: {exc}", file=sys.stderr, flush=True)
            return None
        return version

    def customers_of(self, version: str, meta: dict | None = None) -> Prepared:
        """A version's customers as the pages use them: its sample beyond the sample's size, else its data file."""
        meta = meta if meta is not None else self.registry.metadata(version)
        basis = self.sample_basis(version, meta)
        if basis is not None:
            return basis.prepared
        path = self.data_path_for(meta)
        shown = meta.get("data_source") if meta.get("data_path") and str(path) == meta["data_path"] else None
        return prepare_model_data(self.registry, version, path, shown)

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
        """Rules per segment (core.rules: IMM threshold tree) of the served model on its customers (cached)."""
        from core.rules import explain_model

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
        """The k-transition tree (core.ktree, k=2..8) of the served model's customers (cached, JSON-like)."""
        from core.ktree import k_transition_tree

        a = self.analysis()
        model, meta = self.model(a.version)
        top = min(8, len(a.frame) - 1)
        return self.results.cached(("ktree", a.version, a.fingerprint, top), lambda: k_transition_tree(
            scaled(a), list(a.features), X=a.frame[a.features].to_numpy(dtype=float), k_values=range(2, top + 1),
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
