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
import re
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
from core.registry import Registry, RegistryError
from core.selection import SweepResult, silhouette_samples, sweep

__all__ = ["Analysis", "Services", "get_services", "CACHE_DIR", "profile_tables"]

CACHE_DIR = Path(os.environ.get("SEGMENTLENS_CACHE_DIR", PROJECT_ROOT / ".cache"))
# Entries of the per-process LRU: the model and analysis of a version or two plus their derived
# results (sweeps, stability, comparisons, rendered views); all small but the analyses.
_MEMO_SIZE = 32
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


class Services:
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
        """Spreadsheet-safe CSV of some customers (row positions): ID, segment, name, confidence, model features."""
        a = self.analysis()
        names = self.segment_names()
        pos = np.unique(np.asarray(positions, dtype=np.int64))
        rows = a.frame.iloc[pos[(pos >= 0) & (pos < len(a.frame))]]  # positions come from the browser
        labels = rows["segment"].to_numpy()
        out = pd.DataFrame({"ID": rows["ID"].to_numpy(), "segment": labels,
                            "segment_name": [names[s] for s in labels],
                            "confidence": rows["confidence"].round(4).to_numpy()})
        for feature in a.features:
            values = rows[feature]
            # Counts and whole amounts read as 77, not 77.0, in a spreadsheet.
            whole = values.notna().all() and bool((values.dropna() % 1 == 0).all())
            out[feature] = values.astype("int64").to_numpy() if whole else values.to_numpy()
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
    def live_model(self) -> "LiveModel":
        """The active model with its metadata and names; re-read only when the registry manifest changes.

        The check is one stat() of the manifest (Registry.token), so every gunicorn worker follows an
        activation on its next request; a full re-read at most every second covers a rewrite that
        keeps the same size within one timestamp tick.
        """
        import time

        token = self.registry.token()
        now = time.monotonic()
        live = self.__dict__.get("_live")
        if live is not None and live.token == token and now - live.checked < _LIVE_RECHECK_S:
            return live
        model, meta = self.model()  # checksum-verified; falls back like the pages when the active file is bad
        version = meta["version"]
        k = int(model.k)
        names = list(meta.get("segment_names") or [])[:k]
        names += [f"Segment {i}" for i in range(len(names), k)]
        live = LiveModel(version=version, model=model, meta=meta, names=names, token=token, checked=now)
        self._live = live
        return live

    def _analysis_model(self):
        """The analysis with the model and names of the same version (the live ones when they match)."""
        a = self.analysis()
        live = self.live_model()
        if live.version == a.version:
            return a, live.model, live.names
        model, meta = self.model(a.version)
        names = list(meta.get("segment_names") or [])[:a.k]
        return a, model, names + [f"Segment {i}" for i in range(len(names), a.k)]

    def predict_form(self) -> dict:
        """Form spec of the what-if page: per feature and raw field, label, data quartiles/min/max, accepted range."""
        a = self.analysis()
        return self._cached(("predict_form", a.version, a.fingerprint), lambda: predict_form_spec(a))

    def map_background(self, max_points: int = 2500) -> dict:
        """A seeded, downsampled sample of the customers' 2D PCA coordinates with their segments."""
        a = self.analysis()
        return self._cached(("predict_map", a.version, a.fingerprint, max_points),
                            lambda: map_sample(a, max_points))

    def segment_cards(self) -> list[dict]:
        """Per segment: description, last-campaign response (with 95 % interval) and recommended products."""
        a = self.analysis()
        return self._cached(("predict_cards", a.version, a.fingerprint), lambda: segment_cards(a))

    def what_if(self, texts: dict) -> dict:
        """Score a hypothetical customer typed into the form: errors per field, or the full explanation."""
        from core import scoring

        a, model, names = self._analysis_model()
        errors, values = {}, []
        for feature in model.features:
            value, message = scoring.parse_text(feature, texts.get(feature))
            if message:
                errors[feature] = message
            values.append(value)
        if errors:
            return {"errors": errors}
        seg, conf, typ, dists = model.score_one(values)
        form = self.predict_form()
        ranges = {f["name"]: (f["min"], f["max"]) for f in form["features"]}
        whole = {f["name"] for f in form["features"] if f["integer"]}
        flips = scoring.flip_points(values, model.mean_.tolist(), model.scale_.tolist(), model.centroids_.tolist(),
                                    model.features, ranges, whole)
        z = (np.asarray(values, dtype=float) - model.mean_) / model.scale_
        point = a.projection.transform(z[None, :])[0]
        return {
            "errors": {}, "version": a.version, "features": list(model.features),
            "values": dict(zip(model.features, values)), "segment": seg, "name": names[seg], "names": names,
            "confidence": conf, "typicality": typ, "distances": dists,
            "words": scoring.describe(seg, conf, typ, dists, names),
            "flips": [f.to_dict() for f in flips], "point": [float(point[0]), float(point[1])],
            "card": self.segment_cards()[seg],
        }

    def derive_features(self, texts: dict) -> tuple[dict, dict]:
        """Features computed from raw fields typed into the form: ({feature: value}, {field: error})."""
        from core import scoring

        form = self.predict_form()
        derived, errors = {}, {}
        for group in form["raw"]:
            parts = {}
            for field_spec in group["fields"]:
                name = field_spec["name"]
                value, message = scoring.parse_text(name, texts.get(name))
                if message:
                    errors[name] = message
                else:
                    parts[name] = value
            if len(parts) == len(group["fields"]):
                derived[group["feature"]] = scoring.derive(group["feature"], parts)
        return derived, errors

    def typical_member(self, segment: int) -> dict:
        """Fields (features and raw columns) of the member closest to a segment's centre."""
        a, model, _ = self._analysis_model()
        members = np.flatnonzero(a.labels == int(segment))
        if not len(members):
            raise ValueError(f"segment {segment} has no members")
        Z = scaled(a)[members]
        best = members[int(np.argmin(((Z - model.centroids_[int(segment)]) ** 2).sum(axis=1)))]
        return _row_fields(a, best)

    def customer_fields(self, customer_id) -> dict:
        """Fields of an existing customer by ID; ValueError naming the ID when there is none."""
        a = self.analysis()
        text = str(customer_id if customer_id is not None else "").strip()
        try:
            wanted = int(float(text.replace(",", "")))
        except ValueError:
            raise ValueError(f"a customer ID is a whole number (got {text[:20]!r})") from None
        hits = np.flatnonzero(a.frame["ID"].to_numpy() == wanted)
        if not len(hits):
            raise ValueError(f"no customer with ID {wanted} in {a.source}")
        return _row_fields(a, hits[0])

    def scenarios_csv(self, scenarios: list[dict]) -> str:
        """Spreadsheet-safe CSV of saved what-if scenarios: one row each, features then the answer."""
        return to_safe_csv(pd.DataFrame(scenarios))

    def segments_summary(self) -> list[dict]:
        """Per segment (API): size, share, name, description, feature means, last-campaign response rate."""
        a, _, names = self._analysis_model()
        rows = self._cached(("api_segments", a.version, a.fingerprint), lambda: segments_table(a))
        return [dict(row, name=names[row["segment"]]) for row in rows]

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
    def stability(self, resamples: int = 30, window: str = "quarter", progress=None) -> dict:
        """Bootstrap and enrolment-time stability of the active model on its data (each part cached).

        Returns {"bootstrap": BootstrapResult, "temporal": TemporalResult, "version", "source"};
        ``progress(done, total, message)`` runs 0-100 over both parts when they are computed.
        """
        from core.stability import bootstrap_stability, temporal_stability

        resamples = int(resamples)
        if not 1 <= resamples <= 1000:
            raise ValueError(f"resamples must be between 1 and 1000, got {resamples}")
        a = self.analysis()
        model, _ = self.model(a.version)
        seed = int(a.meta.get("seed", 42))
        n_init = int(a.meta.get("n_init", 10))  # refits fitted like the model, or stability is understated
        report = progress or (lambda *_args: None)
        boot = self._cached(
            ("stability-boot", a.version, a.fingerprint, resamples, seed, n_init),
            lambda: bootstrap_stability(scaled(a), a.labels, resamples=resamples, seed=seed, n_init=n_init,
                                        progress=lambda d, t, m: report(int(80 * d / t), 100, m)))
        temporal = self._cached(
            ("stability-time", a.version, a.fingerprint, window),
            lambda: temporal_stability(a.frame, model, window=window,
                                       progress=lambda d, t, m: report(80 + int(20 * d / t), 100, m)))
        report(100, 100, "done")
        return {"bootstrap": boot, "temporal": temporal, "version": a.version, "source": a.source}

    def drift_data_path(self) -> Path | None:
        """The configured later extract to compare with (SEGMENTLENS_DRIFT_DATA), when set and present."""
        path = os.environ.get("SEGMENTLENS_DRIFT_DATA")
        return Path(path) if path and Path(path).is_file() else None

    def drift(self, source=None, name: str | None = None, progress=None) -> dict:
        """Compare new data (upload bytes, a path, or the configured file) with the active model's data (cached).

        Returns {"report": DriftReport, "reference_source", "new_source", "version", "note"}; raises
        core.loading.DataFileError / ValueError with a message for people when the file cannot be used.
        """
        from core.drift import compare_new_data
        from core.pipeline import fingerprint

        if source is None:
            source = self.drift_data_path()
            if source is None:
                raise ValueError("no file to compare: upload one, or set SEGMENTLENS_DRIFT_DATA")
        if isinstance(source, (bytes, bytearray)):
            data, name = bytes(source), name or "upload"
        else:
            data, name = Path(source).read_bytes(), name or Path(source).name
        a = self.analysis()
        model, meta = self.model(a.version)
        key = ("drift", a.version, a.fingerprint, fingerprint(data))

        def compute():
            new = prepare(data, name=name)
            report = compare_new_data(model, a.frame, new.frame, progress=progress)
            return {"report": report, "new_source": new.source, "new_rows": new.report.rows_used}
        result = dict(self._cached(key, compute))
        note = None
        if meta.get("data_fingerprint") and meta["data_fingerprint"] != a.fingerprint:
            note = (f"The model's training file is no longer available; the comparison uses {a.source}, "
                    "the data the dashboard shows.")
        result.update(reference_source=a.source, version=a.version, note=note, new_source=name)
        return result

    # ------------------------------------------------------------ data & models (/data)
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

        from .theme import segment_colour

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


def get_services() -> Services:
    """The Services of the running app (from the Flask server handling this request)."""
    import flask

    return flask.current_app.extensions["segmentlens"]


# ---------------------------------------------------------------- prediction helpers (API and /predict)
_LIVE_RECHECK_S = 1.0


@dataclass(frozen=True)
class LiveModel:
    """The active model as scoring sees it: version, fitted model, metadata, current segment names."""

    version: str
    model: SegmentationModel
    meta: dict
    names: list
    token: str
    checked: float


def _quantiles(values: np.ndarray) -> dict:
    """Min, quartiles, median and max of a column, as plain floats."""
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0]) if len(values) else np.zeros(5)
    return dict(zip(("min", "q25", "median", "q75", "max"), (float(v) for v in q)))


def _field_spec(frame: pd.DataFrame, name: str) -> dict:
    from core import schema, scoring

    values = frame[name].to_numpy(dtype=float) if name in frame else np.empty(0)
    values = values[np.isfinite(values)]
    integer = bool(len(values)) and bool(np.all(values == np.round(values)))
    low, high = scoring.field_bounds(name)
    spec = {"name": name, "label": schema.FEATURE_LABELS.get(name, name.replace("_", " ")),
            "integer": integer, "low": low, "high": high, **_quantiles(values)}
    if name == "Year_Birth":
        spec["label"] = "Year of birth"
    return spec


def predict_form_spec(analysis: Analysis) -> dict:
    """The what-if form: each feature's data statistics and accepted range, and the raw fields behind it."""
    from core import scoring

    frame = analysis.frame
    features = [_field_spec(frame, f) for f in analysis.features]
    raw = [{"feature": f, "fields": [_field_spec(frame, p) for p in scoring.DERIVATIONS[f]]}
           for f in analysis.features if f in scoring.DERIVATIONS and all(p in frame for p in scoring.DERIVATIONS[f])]
    return {"features": features, "raw": raw}


def map_sample(analysis: Analysis, max_points: int) -> dict:
    """Seeded uniform sample of the 2D PCA coordinates (the map never ships every customer)."""
    n = len(analysis.coords)
    rows = np.arange(n)
    if n > max_points:
        rows = np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))
    ratio = analysis.projection.explained_variance_ratio
    return {"x": analysis.coords[rows, 0].tolist(), "y": analysis.coords[rows, 1].tolist(),
            "segment": analysis.labels[rows].astype(int).tolist(), "n_total": int(n),
            "explained": [float(r) for r in ratio[:2]]}


def segment_cards(analysis: Analysis) -> list[dict]:
    """What each segment answers to: response to the last campaign, other campaigns, products it over-buys."""
    out = []
    camp = analysis.campaigns
    for seg in range(analysis.k):
        rows = camp[camp["segment"] == seg] if len(camp) else camp
        response = None
        campaigns = []
        for r in rows.itertuples(index=False):
            item = {"campaign": r.campaign, "rate": float(r.rate), "low": float(r.low), "high": float(r.high),
                    "n": int(r.n)}
            if r.campaign == "Response":
                response = item
            else:
                campaigns.append(item)
        lift = analysis.lift.loc[seg] if seg in analysis.lift.index else pd.Series(dtype=float)
        products = [{"product": str(p), "lift": float(v)} for p, v in lift.sort_values(ascending=False).items()
                    if v >= profiles.LIFT_THRESHOLD]
        persona = analysis.personas[seg] if seg < len(analysis.personas) else None
        out.append({"segment": seg, "description": persona.description if persona else "",
                    "response": response, "campaigns": campaigns, "products": products})
    return out


def segments_table(analysis: Analysis) -> list[dict]:
    """Per segment: size, share, description, means of the model's features, response rate (JSON-ready)."""
    frame, labels = analysis.frame, analysis.labels
    means = frame[analysis.features].groupby(labels).mean().reindex(range(analysis.k))
    response = frame["Response"].groupby(labels).mean().reindex(range(analysis.k)) if "Response" in frame else None
    out = []
    for seg in range(analysis.k):
        rate = None if response is None or pd.isna(response.loc[seg]) else float(response.loc[seg])
        out.append({
            "segment": seg, "size": int(analysis.sizes.loc[seg, "n"]), "share": float(analysis.sizes.loc[seg, "share"]),
            "description": analysis.personas[seg].description if seg < len(analysis.personas) else "",
            "means": {f: (None if pd.isna(means.loc[seg, f]) else float(means.loc[seg, f])) for f in analysis.features},
            "response_rate": rate,
        })
    return out


def _row_fields(analysis: Analysis, position: int) -> dict:
    """One customer's model features and the raw columns they derive from, as plain numbers."""
    from core import scoring

    row = analysis.frame.iloc[int(position)]
    names = list(analysis.features)
    for feature in analysis.features:
        names += [p for p in scoring.DERIVATIONS.get(feature, ()) if p in analysis.frame]
    out = {}
    for name in dict.fromkeys(names):
        value = float(row[name])
        out[name] = int(value) if value == int(value) else round(value, 2)
    out["ID"] = int(row["ID"]) if "ID" in analysis.frame else None
    return out


# ---------------------------------------------------------------- data & models helpers (/data)
_UPLOAD_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_UPLOAD_MAX_AGE_S = 24 * 3600
# Up to this many customers the upload's k sweep runs when the file is checked (about a second).
UPLOAD_SWEEP_MAX = 5_000


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
