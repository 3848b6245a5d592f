"""Live-prediction monitoring on the server: the shared counter store and Prometheus metrics.

Every prediction (API and what-if) adds a few counter increments (core.insight.monitoring.prediction_counts)
to a SQLite file under the cache folder (``monitoring.sqlite3``), so every gunicorn worker counts
into the same place and the counters survive a worker restart. The increments are summed in the
worker first and written off the request path (issue 29): a flusher thread (a greenlet under gevent)
writes what is pending once per ``SEGMENTLENS_MONITORING_FLUSH`` seconds (default 1) in one
transaction, a request writes it itself when more than :data:`MAX_PENDING` counters are pending
(bounded memory), and the worker writes it when it exits (``atexit``: a clean shutdown loses
nothing). A worker's own report flushes first; another worker's last second may show a second late,
and a worker killed (SIGKILL) loses at most that second. No customer is stored: a value only ever
becomes the index of its bin on the training data's edges. The reference (bins and training shares)
is computed once per model version and kept in the same file.

Prometheus (``GET /metrics``): counters and histograms from ``prometheus-client``. Under gunicorn,
gunicorn.conf.py sets ``PROMETHEUS_MULTIPROC_DIR`` so every worker's values are summed at scrape
time; with ``python app.py`` the single process keeps them in memory. The active model version and
background-job durations are read from the registry and the SQLite file at scrape time.

``SEGMENTLENS_MONITORING=off`` turns the counting off (the benchmark compares both);
``SEGMENTLENS_MONITORING_BUCKET`` sets the time bucket in seconds (default 300);
``SEGMENTLENS_MONITORING_RETENTION_DAYS`` how long buckets are kept (default 30).
"""
from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path

import flask

from core.insight import monitoring as core_monitoring

__all__ = ["MonitoringStore", "Monitor", "install_monitoring", "current_monitor", "record_prediction",
           "metrics_response", "monitor_of", "TimedDiskcacheManager", "METRICS_PATH", "JOB_BUCKETS", "MAX_PENDING"]

METRICS_PATH = "/metrics"
JOB_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_EXTENSION = "segmentlens_monitoring"
_log = logging.getLogger("segmentlens.monitoring")
# 5 parameters a row; SQLite before 3.32 allows 999 parameters in a statement.
_ROWS_PER_STATEMENT = 199
#: Distinct counters (version, bucket, metric, bin) a worker holds before a request writes them itself.
MAX_PENDING = 4096


def _upsert_rows(n: int) -> str:
    """The UPSERT of ``n`` counter rows in one statement (building it costs a microsecond; sqlite3 caches the
    compiled statement by its text)."""
    return ("INSERT INTO counts(version, bucket, metric, bin, n) VALUES " + ", ".join(["(?, ?, ?, ?, ?)"] * n)
            + " ON CONFLICT(version, bucket, metric, bin) DO UPDATE SET n = n + excluded.n")


class MonitoringStore:
    """Aggregated prediction counters in one SQLite file shared by every worker process.

    One connection per process behind a lock: a statement takes tens of microseconds and never
    yields to another greenlet, so sharing it costs nothing and avoids a connection per greenlet.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = None
        self._writes = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # never share a connection across a fork
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            for attempt in range(50):  # workers racing to switch to WAL get "locked" at once: retry
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.executescript(
                        "CREATE TABLE IF NOT EXISTS counts (version TEXT NOT NULL, bucket INTEGER NOT NULL, "
                        "metric TEXT NOT NULL, bin INTEGER NOT NULL, n INTEGER NOT NULL, "
                        "PRIMARY KEY (version, bucket, metric, bin)) WITHOUT ROWID;"
                        "CREATE TABLE IF NOT EXISTS reference (version TEXT PRIMARY KEY, profile TEXT NOT NULL);"
                        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                        "CREATE TABLE IF NOT EXISTS jobs (job TEXT NOT NULL, bin INTEGER NOT NULL, "
                        "n INTEGER NOT NULL, PRIMARY KEY (job, bin));"
                        "CREATE TABLE IF NOT EXISTS job_sums (job TEXT PRIMARY KEY, seconds REAL NOT NULL, "
                        "n INTEGER NOT NULL);")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.02)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def add(self, version: str, bucket: int, counts: dict) -> None:
        """Add ``{(metric, bin): n}`` to one bucket of a version (one transaction).

        A prediction's counters (a dozen rows) go in one multi-row statement, which SQLite runs as its own
        transaction: one call instead of BEGIN, a statement per row and COMMIT (about half the time, on the
        path of every prediction). Larger batches are split to stay under SQLite's parameter limit, inside one
        explicit transaction.
        """
        self.add_rows([(version, bucket, m, b, n) for (m, b), n in counts.items()])

    def add_rows(self, rows: list[tuple]) -> None:
        """Add counter rows ``(version, bucket, metric, bin, n)`` in one transaction (what a flush writes)."""
        if not rows:
            return
        chunks = [rows[i:i + _ROWS_PER_STATEMENT] for i in range(0, len(rows), _ROWS_PER_STATEMENT)]
        with self._lock:
            conn = self._connection()
            if len(chunks) == 1:
                conn.execute(_upsert_rows(len(rows)), [value for row in rows for value in row])
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                for chunk in chunks:
                    conn.execute(_upsert_rows(len(chunk)), [value for row in chunk for value in row])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def rows(self, version: str, since_bucket: int = 0) -> list[tuple]:
        """Counters of a version from a bucket on: per bucket for traffic and confidence, else totals (bucket -1)."""
        with self._lock:
            return self._connection().execute(
                "SELECT bucket, metric, bin, SUM(n) FROM counts WHERE version = ?1 AND bucket >= ?2 "
                "AND metric IN ('n', 'conf') GROUP BY bucket, metric, bin UNION ALL "
                "SELECT -1, metric, bin, SUM(n) FROM counts WHERE version = ?1 AND bucket >= ?2 "
                "AND metric NOT IN ('n', 'conf') GROUP BY metric, bin", (version, since_bucket)).fetchall()

    def prune(self, before_bucket: int) -> None:
        """Forget buckets older than ``before_bucket``."""
        with self._lock:
            self._connection().execute("DELETE FROM counts WHERE bucket < ?", (before_bucket,))

    def reference(self, version: str) -> dict | None:
        """The stored reference profile of a version (JSON), or None."""
        with self._lock:
            row = self._connection().execute("SELECT profile FROM reference WHERE version = ?", (version,)).fetchone()
        return json.loads(row[0]) if row else None

    def save_reference(self, version: str, profile: dict) -> None:
        """Keep a version's reference profile (the first writer wins; every worker computes the same)."""
        with self._lock:
            self._connection().execute("INSERT OR IGNORE INTO reference(version, profile) VALUES (?, ?)",
                                       (version, json.dumps(profile)))

    def reset(self, now: float, actor: str) -> None:
        """Start a new window: forget every prediction counter, note when and who."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM counts")
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('window', ?)",
                         (json.dumps({"start": now, "by": actor}),))
            conn.execute("COMMIT")

    def window(self) -> dict | None:
        """``{"start": unix time, "by": name}`` of the last reset, or None."""
        with self._lock:
            row = self._connection().execute("SELECT value FROM meta WHERE key = 'window'").fetchone()
        return json.loads(row[0]) if row else None

    def record_job(self, job: str, seconds: float) -> None:
        """Count one background job's duration in its histogram bin."""
        b = sum(1 for edge in JOB_BUCKETS if seconds > edge)
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO jobs(job, bin, n) VALUES (?, ?, 1) ON CONFLICT(job, bin) DO UPDATE SET n = n + 1",
                         (job, b))
            conn.execute("INSERT INTO job_sums(job, seconds, n) VALUES (?, ?, 1) ON CONFLICT(job) DO UPDATE SET "
                         "seconds = seconds + excluded.seconds, n = n + 1", (job, seconds))
            conn.execute("COMMIT")

    def jobs(self) -> dict:
        """``{job: {"bins": {bin: n}, "seconds": sum, "n": count}}``."""
        with self._lock:
            conn = self._connection()
            out = {job: {"bins": {}, "seconds": s, "n": n}
                   for job, s, n in conn.execute("SELECT job, seconds, n FROM job_sums")}
            for job, b, n in conn.execute("SELECT job, bin, n FROM jobs"):
                out.setdefault(job, {"bins": {}, "seconds": 0.0, "n": 0})["bins"][b] = n
        return out


class _Metrics:
    """The prometheus-client metrics of one app (per-app registry; multiprocess files under gunicorn)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.predictions = Counter("segmentlens_predictions", "Predictions served, by segment and model version",
                                   ["segment", "model_version", "source"], registry=self.registry)
        self.latency = Histogram("segmentlens_request_duration_seconds", "Request latency by endpoint and status",
                                 ["endpoint", "status"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.rate_limited = Counter("segmentlens_rate_limited", "Requests refused by a rate limit (429)",
                                    ["endpoint"], registry=self.registry)
        # Label values -> the metric's child, resolved once (issue 29): ``labels()`` checks and locks on every
        # call. Bounded like the labels themselves (endpoints x statuses; segments x versions x sources).
        self._latency_children: dict = {}
        self._prediction_children: dict = {}

    def latency_child(self, endpoint: str, status: int):
        """The latency histogram of one endpoint and status."""
        child = self._latency_children.get((endpoint, status))
        if child is None:
            child = self._latency_children[(endpoint, status)] = self.latency.labels(endpoint, str(status))
        return child

    def prediction_child(self, segment: int, version: str, source: str):
        """The prediction counter of one segment, model version and source."""
        child = self._prediction_children.get((segment, version, source))
        if child is None:
            child = self._prediction_children[(segment, version, source)] = self.predictions.labels(
                str(segment), version, source)
        return child


class Monitor:
    """Counting predictions and reporting on them for one app (``server.extensions``)."""

    def __init__(self, cache_dir: str | os.PathLike, *, enabled: bool = True, bucket_seconds: int = 300,
                 retention_days: float = 30, flush_seconds: float = 1.0):
        self.store = MonitoringStore(Path(cache_dir) / "monitoring.sqlite3")
        self.enabled, self.bucket_seconds, self.retention_days = enabled, int(bucket_seconds), retention_days
        self.metrics = _Metrics()
        self._profiles: dict = {}  # version -> reference profile (or None when the data is unavailable)
        self._lock = threading.Lock()
        self.flush_seconds = float(flush_seconds)
        # (version, bucket) -> {(metric, bin): n} counted in this process and not yet in the store; grouped so that
        # a prediction's counters are added where they belong, without a key tuple each (issue 29).
        self._pending: dict = {}
        self._pending_n = 0  # counters in _pending
        self._pending_lock = threading.Lock()
        self._flusher_pid = None  # the process whose flusher thread runs (a fork has none)
        self._last_prune = 0.0
        # A clean exit (gunicorn's graceful stop, Ctrl-C) writes what is pending; weakly, so that an app dropped
        # (tests make many) is not kept alive by it.
        atexit.register(_flush_if_alive, weakref.ref(self))

    @classmethod
    def from_env(cls, cache_dir) -> "Monitor":
        """A monitor configured by SEGMENTLENS_MONITORING, _BUCKET and _RETENTION_DAYS."""
        enabled = (os.environ.get("SEGMENTLENS_MONITORING") or "on").strip().lower() not in ("off", "0", "false", "no")
        bucket = int(os.environ.get("SEGMENTLENS_MONITORING_BUCKET") or 300)
        retention = float(os.environ.get("SEGMENTLENS_MONITORING_RETENTION_DAYS") or 30)
        flush = float(os.environ.get("SEGMENTLENS_MONITORING_FLUSH") or 1.0)
        return cls(cache_dir, enabled=enabled, bucket_seconds=max(bucket, 1), retention_days=retention,
                   flush_seconds=min(max(flush, 0.05), 60.0))

    # ------------------------------------------------------------ reference per model version
    def profile(self, version: str, services) -> dict | None:
        """The training reference of a version: this process's copy, the shared file's, or computed once."""
        if version in self._profiles:
            return self._profiles[version]
        with self._lock:
            if version in self._profiles:
                return self._profiles[version]
            profile = None
            try:
                profile = self.store.reference(version) or self._compute(version, services)
            except Exception as exc:  # no training data to compare with: still count, without feature bins
                _log.warning("monitoring: no training reference for %s (%s); feature drift not counted", version, exc)
            self._profiles[version] = profile
            return profile

    def _compute(self, version: str, services) -> dict | None:
        # Load, clean and derive the model's training file only (about a second on 50K rows), not the
        # whole analysis: this runs on the first prediction of a version anywhere (then it is shared).
        model, meta = services.model(version)
        # Through the version's column mapping; a version larger than its sample is profiled on the sample.
        frame = services.analyses.customers_of(version, meta).frame
        X = frame[model.features].to_numpy(dtype=float)
        scores = model.score(X)
        profile = core_monitoring.reference_profile(
            X, model.features, scores["segment"].to_numpy(), scores["confidence"].to_numpy(),
            scores["typicality"].to_numpy(), model.k)
        self.store.save_reference(version, profile)
        return profile

    # ------------------------------------------------------------ counting
    def record(self, services, version: str, rows, segments, confidence, typicality, source: str = "api") -> None:
        """Count some predictions of ``version`` (never raises: monitoring must not fail a prediction).

        The counters are added to this process's pending sums; the flusher writes them (see the module).
        """
        if not self.enabled or not len(segments):
            return
        try:
            profile = self.profile(version, services)
            bucket = int(time.time() // self.bucket_seconds)
            if self._flusher_pid != os.getpid():
                self._start_flusher()
            counts = core_monitoring.prediction_counts(profile, rows, segments, confidence, typicality)
            with self._pending_lock:
                group = self._pending.get((version, bucket))
                if group is None:
                    group = self._pending[(version, bucket)] = {}
                before = len(group)
                for key, n in counts.items():
                    group[key] = group.get(key, 0) + n
                self._pending_n += len(group) - before
                full = self._pending_n > MAX_PENDING
            child = self.metrics.prediction_child
            for (metric, b), n in counts.items():
                if metric == "seg":
                    child(b, version, source).inc(n)
            if full:
                self.flush()
        except Exception as exc:
            _log.warning("monitoring: a prediction was not counted (%s)", exc)

    def pending(self) -> int:
        """How many counters this process holds that the store does not have yet."""
        with self._pending_lock:
            return self._pending_n

    def flush(self) -> None:
        """Write this process's pending counters to the store in one transaction (never raises)."""
        with self._pending_lock:
            if self._flusher_pid not in (None, os.getpid()):
                self._pending, self._pending_n = {}, 0  # a forked child's copy of its parent's: the parent writes them
            if not self._pending:
                return
            pending, self._pending, self._pending_n = self._pending, {}, 0
        rows = [(version, bucket, metric, b, n) for (version, bucket), group in pending.items()
                for (metric, b), n in group.items()]
        try:
            self.store.add_rows(rows)
        except Exception as exc:  # e.g. the file locked past its timeout: keep them for the next flush
            _log.warning("monitoring: %d counters not written yet (%s)", len(rows), exc)
            with self._pending_lock:
                for version, bucket, metric, b, n in rows:
                    group = self._pending.setdefault((version, bucket), {})
                    self._pending_n += (metric, b) not in group
                    group[(metric, b)] = group.get((metric, b), 0) + n
                if self._pending_n > 4 * MAX_PENDING:  # bounded even when the store stays unwritable
                    _log.error("monitoring: dropping %d counters the store would not take", self._pending_n)
                    self._pending, self._pending_n = {}, 0
            return
        now = time.time()
        if now - self._last_prune > 3600:  # old buckets go once an hour per process
            self._last_prune = now
            try:
                self.store.prune(int((now - self.retention_days * 86400) // self.bucket_seconds))
            except Exception as exc:
                _log.warning("monitoring: old counters not pruned (%s)", exc)

    def _start_flusher(self) -> None:
        with self._pending_lock:
            if self._flusher_pid == os.getpid():
                return
            if self._flusher_pid is not None:  # forked after counting: the parent writes what it held
                self._pending, self._pending_n = {}, 0
            self._flusher_pid = os.getpid()
        # A weak reference: an app dropped (tests make many) takes its flusher with it.
        threading.Thread(target=_flush_loop, args=(weakref.ref(self), self.flush_seconds),
                         name="segmentlens-monitoring-flush", daemon=True).start()

    def reset_window(self, services, actor: str) -> None:
        """Forget every counted prediction and start a new window (admins; audited)."""
        with self._pending_lock:
            self._pending, self._pending_n = {}, 0  # counted before the reset: not part of the new window
        self.store.reset(time.time(), actor)
        services.auditor.record(actor, "reset_monitoring", "monitoring", "ok", "prediction counters cleared")

    def report(self, services, hours: float | None = None) -> dict:
        """The monitoring report of the served model (core.insight.monitoring.summarise) with its window."""
        live = services.live_model()
        self.flush()  # this process's own predictions so far are in the report
        since = 0
        if hours is not None:
            since = int((time.time() - hours * 3600) // self.bucket_seconds)
        profile = self.profile(live.version, services)
        out = core_monitoring.summarise(profile, self.store.rows(live.version, since),
                                        bucket_seconds=self.bucket_seconds, names=live.names)
        window = self.store.window()
        out.update(model_version=live.version, enabled=self.enabled,
                   window={"hours": hours, "reset_at": window["start"] if window else None,
                           "reset_by": window["by"] if window else None})
        if profile is None:
            out["note"] = "the model's training data is not available, so incoming customers cannot be compared"
        return out


def _flush_if_alive(ref) -> None:
    monitor = ref()
    if monitor is not None:
        monitor.flush()


def _flush_loop(ref, seconds: float) -> None:
    """The flusher: write a monitor's pending counters every ``seconds`` while the monitor exists."""
    while True:
        time.sleep(seconds)
        monitor = ref()
        if monitor is None:
            return
        monitor.flush()
        del monitor


# ---------------------------------------------------------------- Flask integration
def monitor_of(server: flask.Flask) -> Monitor | None:
    """The monitor installed on ``server`` (None when there is none)."""
    return server.extensions.get(_EXTENSION)


def current_monitor() -> Monitor | None:
    """The app's monitor inside a request or app context, else None."""
    return monitor_of(flask.current_app) if flask.has_app_context() else None


def record_prediction(version: str, rows, segments, confidence, typicality, source: str) -> None:
    """Count predictions made inside a request of the app (a no-op elsewhere, e.g. in a background job)."""
    if not flask.has_app_context():
        return
    extensions = flask.current_app.extensions  # one context lookup for both (issue 29)
    monitor = extensions.get(_EXTENSION)
    if monitor is not None:
        monitor.record(extensions["segmentlens"], version, rows, segments, confidence, typicality, source)


def _endpoint(request) -> str:
    """A bounded label for the latency histogram: the API route, or the kind of dashboard request."""
    path = request.path
    if path.startswith("/api/"):
        return request.url_rule.rule if request.url_rule is not None and "<path:" not in request.url_rule.rule \
            else "/api/unknown"
    if path == METRICS_PATH:
        return path
    if path == "/_dash-update-component":
        return "dash-callback"
    if path.startswith(("/assets/", "/_dash-component-suites/", "/vendor/", "/_dash-", "/_favicon")):
        return "static"
    return "page"


def install_monitoring(server: flask.Flask, cache_dir: str | os.PathLike) -> Monitor:
    """Put a :class:`Monitor` on ``server`` and time every request into the latency histogram."""
    multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc:
        Path(multiproc).mkdir(parents=True, exist_ok=True)
    monitor = Monitor.from_env(cache_dir)
    server.extensions[_EXTENSION] = monitor

    @server.before_request
    def _monitor_start():
        flask.g.monitor_t0 = time.perf_counter()

    @server.after_request
    def _monitor_stop(response):
        t0 = flask.g.get("monitor_t0")
        if t0 is not None:
            endpoint = _endpoint(flask.request._get_current_object())
            status = response.status_code
            monitor.metrics.latency_child(endpoint, status).observe(time.perf_counter() - t0)
            if status == 429:
                monitor.metrics.rate_limited.labels(endpoint).inc()
        return response

    return monitor


class _ScrapeTime:
    """Collector of what is read at scrape time: the active model version and background-job durations."""

    def __init__(self, services, monitor: Monitor):
        self.services, self.monitor = services, monitor

    def collect(self):
        from prometheus_client.core import HistogramMetricFamily, InfoMetricFamily

        info = InfoMetricFamily("segmentlens_model", "The active model version and the version served")
        status = self.services.status()
        info.add_metric([], {"version": str(status.get("active") or ""), "serving": str(status.get("serving") or ""),
                             "status": str(status.get("status") or "")})
        yield info
        jobs = HistogramMetricFamily("segmentlens_job_duration_seconds", "Background job durations (retrain, "
                                     "sweeps, stability, drift), all processes", labels=["job"])
        for job, data in sorted(self.monitor.store.jobs().items()):
            running, buckets = 0, []
            for i, edge in enumerate(JOB_BUCKETS):
                running += data["bins"].get(i, 0)
                buckets.append((repr(float(edge)), running))
            buckets.append(("+Inf", data["n"]))
            jobs.add_metric([job], buckets, data["seconds"])
        yield jobs


def metrics_response() -> flask.Response:
    """The Prometheus text exposition of this app, summed over every worker under gunicorn."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    monitor = current_monitor()
    services = flask.current_app.extensions["segmentlens"]
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = monitor.metrics.registry
    body = generate_latest(registry)
    extra = CollectorRegistry()
    extra.register(_ScrapeTime(services, monitor))
    body += generate_latest(extra)
    return flask.Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0], headers={"Cache-Control": "no-store"})


# ---------------------------------------------------------------- background jobs
def _job_name(context) -> str:
    try:
        outputs = context.get("outputs_list")
        first = outputs[0] if isinstance(outputs, list) and outputs else outputs
        if isinstance(first, list):
            first = first[0]
        ident = first["id"]
        return ident if isinstance(ident, str) else str(ident.get("type", "pattern"))
    except Exception:
        return "background"


def _timed_job(job_fn, store_path: str, name: str, *args):
    t0 = time.perf_counter()
    try:
        return job_fn(*args)
    finally:
        try:
            MonitoringStore(store_path).record_job(name, time.perf_counter() - t0)
        except Exception as exc:  # a metric must never fail the job
            _log.warning("monitoring: job duration not recorded (%s)", exc)


def TimedDiskcacheManager(cache, cache_dir: str | os.PathLike):  # noqa: N802 - a class factory
    """Dash's DiskcacheManager that records each background job's duration in the monitoring store."""
    import dash

    store_path = str(Path(cache_dir) / "monitoring.sqlite3")

    class _Manager(dash.DiskcacheManager):
        def call_job_fn(self, key, job_fn, args, context):
            return super().call_job_fn(key, functools.partial(_timed_job, job_fn, store_path, _job_name(context)),
                                       args, context)

    return _Manager(cache)
