"""The Spark engine: StandardScaler + KMeans (k-means||) in Spark MLlib, on a table Spark reads.

Where the data lives decides the engine: a customer table in a lake or warehouse (10M-1B rows)
is read, cleaned, scaled and clustered where it is, by a Spark cluster; only the fitted
parameters, the per-segment aggregates and a stratified sample come back to the driver, and
the registered version is the same as the numpy engine's (the API and the what-if page score
it with numpy).

The cluster is chosen by ``SEGMENTLENS_SPARK_MASTER`` (or the ``master`` argument):
``local[*]`` (default: every core of this machine), ``spark://host:7077`` (a standalone
cluster) or ``sc://host:15002`` (Spark Connect, which needs ``pyspark[connect]``). A master
that does not answer within a few seconds is reported as such (:class:`EngineError`), instead
of Spark's default of retrying for minutes.

Scaling: MLlib's StandardScaler divides by the *sample* standard deviation (n - 1), the numpy
engine (and scikit-learn) by the *population* one (n). The two scaled spaces differ by the one
factor ``sqrt(n / (n - 1))`` on every feature, which changes no assignment, so the engine fits
in MLlib's space and converts: ``scale = std * sqrt((n - 1) / n)`` (1 where it is 0),
``centroids *= sqrt(n / (n - 1))``, ``inertia *= n / (n - 1)``. The FitResult is then in the
numpy engine's units (the tests compare).

Starts: MLlib's KMeans (k-means|| seeding) runs ``min(n_init, 3)`` starts, each a full distributed
fit; above 100,000 customers they run on a seeded uniform sample and the best start is refined on
every row by Lloyd passes in Spark SQL (MLlib's DataFrame KMeans cannot start from given centres),
the scheme the numpy engine uses too.

Rules: reading, parsing, cleaning and feature engineering are :mod:`core.reading.spark_cleaning`, the
same rules as :mod:`core.reading.cleaning` and :mod:`core.reading.features` (tests compare on the sample).
"""
from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from core.engines.base import EngineError, EngineUnavailable, FitResult, check_k

try:  # pyspark is an optional extra; get_engine("spark") turns this ImportError into how to install it
    import pyspark  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(exc.msg, name="pyspark") from None

__all__ = ["SparkEngine", "MASTER_ENV", "DEFAULT_MASTER", "resolve_master", "check_master", "spark_session",
           "SPARK_TOL", "MAX_STARTS", "SAMPLE_ROWS"]

MASTER_ENV = "SEGMENTLENS_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"
# MLlib's convergence threshold: every centre moved less than this (scaled units) in one iteration.
SPARK_TOL = 1e-4
# k-means|| starts at most (each is a full MLlib fit); k-means|| seeds well, so a few suffice.
MAX_STARTS = 3
# Above this many customers the starts run on a seeded uniform sample of this size and the best
# start is refined on every row (as the numpy engine does).
SAMPLE_ROWS = 100_000
# Numeric columns per aggregation pass: 5 statistics (7 buffer fields) each stay under Spark's
# 100-field limit for generated code.
_AGG_COLUMNS = 12
_ARROW = "spark.sql.execution.arrow.pyspark.enabled"
_CONNECT_TIMEOUT = 5.0
# Spark generates Java methods of up to 64 KB for wide rows (parsing, cleaning, per-segment
# statistics), but HotSpot leaves methods above 8 KB of bytecode interpreted; letting it compile
# them makes those stages several times faster.
_JIT_OPTIONS = "-XX:-DontCompileHugeMethods"
_DEFAULT_PORTS = {"spark": 7077, "sc": 15002}
_LOG_LEVEL_ENV = "SEGMENTLENS_SPARK_LOG"
# Python-side pyspark loggers that print whole query plans with every analysis error.
_NOISY_LOGGERS = ("DataFrameQueryContextLogger", "SQLQueryContextLogger", "py4j", "py4j.clientserver")


def resolve_master(master: str | None = None) -> str:
    """The Spark master to use: ``master``, else ``SEGMENTLENS_SPARK_MASTER``, else ``local[*]``.

    Parameters
    ----------
    master : str, optional

    Returns
    -------
    str

    Raises
    ------
    EngineError
        A value that is not ``local[...]``, ``spark://...``, ``sc://...``, ``yarn`` or ``k8s://...``.
    """
    value = (master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER).strip()
    if not re.match(r"^(local(\[(\*|\d+)(,\d+)?\])?|spark://.+|sc://.+|yarn|k8s://.+)$", value):
        raise EngineError(f"{MASTER_ENV}={value!r} is not a Spark master; use local[*], spark://HOST:7077 "
                          "or a Spark Connect URL sc://HOST:15002")
    return value


def _endpoints(master: str) -> list[tuple[str, int]]:
    scheme, rest = master.split("://", 1)
    rest = rest.split("/", 1)[0].split(";", 1)[0]
    out = []
    for part in rest.split(","):  # spark://a:7077,b:7077 (standby masters)
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        host = host.strip("[]") or part
        out.append((host, int(port) if port.isdigit() else _DEFAULT_PORTS.get(scheme, 7077)))
    return out


def check_master(master: str, timeout: float = _CONNECT_TIMEOUT) -> None:
    """Fail fast when a remote master does not accept connections.

    Spark's standalone client retries an unreachable master for about a minute and a Spark
    Connect client longer; one TCP connection attempt answers in at most ``timeout`` seconds.

    Parameters
    ----------
    master : str
    timeout : float, default 5

    Raises
    ------
    EngineError
        No endpoint of the master answers.
    """
    if not master.startswith(("spark://", "sc://")):
        return
    errors = []
    for host, port in _endpoints(master):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    raise EngineError(f"Spark master {master} is not reachable ({'; '.join(errors)}); start it, or set "
                      f"{MASTER_ENV} to a running master (local[*] runs Spark on this machine)")


def _log_config() -> str:
    """A log4j2 configuration that keeps the JVM quiet (errors become one-line messages here)."""
    level = os.environ.get(_LOG_LEVEL_ENV, "off").lower()
    text = (f"rootLogger.level = {level}\nrootLogger.appenderRef.stderr.ref = console\n"
            "appender.console.type = Console\nappender.console.name = console\n"
            "appender.console.target = SYSTEM_ERR\nappender.console.layout.type = PatternLayout\n"
            "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n"
            # Spark prints "Setting default log level" unless the shell's logger has the root's level.
            f"logger.repl.name = org.apache.spark.repl.Main\nlogger.repl.level = {level}\n")
    path = Path(tempfile.gettempdir()) / f"segmentlens-spark-log4j2-{level}.properties"
    if not path.exists() or path.read_text() != text:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".segmentlens-log4j2.")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    return path.as_uri()


def spark_session(master: str | None = None, *, app_name: str = "SegmentLens", config: dict | None = None):
    """Start (or join) a Spark session on ``master``.

    Parameters
    ----------
    master : str, optional
        See :func:`resolve_master`.
    app_name : str, default "SegmentLens"
    config : dict, optional
        Extra Spark settings (e.g. ``{"spark.driver.memory": "4g"}``).

    Returns
    -------
    pyspark.sql.SparkSession

    Raises
    ------
    EngineError
        Unreachable master or a session that cannot start (the message says which).
    EngineUnavailable
        Spark Connect asked for without its client libraries.
    """
    from pyspark.sql import SparkSession

    master = resolve_master(master)
    check_master(master)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    builder = SparkSession.builder.appName(app_name)
    if master.startswith("sc://"):
        try:
            import grpc  # noqa: F401  # Spark Connect's transport
        except ImportError:
            raise EngineUnavailable("Spark Connect (sc://) needs the connect client: "
                                    "pip install 'pyspark[connect]==4.1.4'") from None
        builder = builder.remote(master)
    else:
        log = _log_config()
        settings = {
            "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
            "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={log} {_JIT_OPTIONS}",
            "spark.executor.extraJavaOptions": f"-Dlog4j2.configurationFile={log} {_JIT_OPTIONS}",
            "spark.sql.session.timeZone": "UTC",
            # Fail a lost cluster within seconds, not the default minutes of retries.
            "spark.network.timeout": "60s", "spark.rpc.askTimeout": "30s",
            "spark.deploy.maxExecutorRetries": "2",
        }
        if master.startswith("local"):
            settings.update({"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "2g"})
        settings.update(config or {})
        builder = builder.master(master)
        for key, value in settings.items():
            builder = builder.config(key, value)
    try:
        with _quiet_stderr(os.environ.get(_LOG_LEVEL_ENV, "off").lower() == "off"):
            return builder.getOrCreate()
    except Exception as exc:  # the JVM or the connection failed: one line for people
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"Spark could not start on {master} ({first[:200]})") from None


@contextlib.contextmanager
def _quiet_stderr(enabled: bool):
    """Start the JVM with its standard error on /dev/null (it inherits the descriptor for good).

    The JVM writes start-up notes ("Using incubator modules", log set-up) straight to the
    process's stderr; a command's errors must stay one line.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _spark_error(exc: Exception) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"\s+", " ", first)[:200]


class SparkEngine:
    """k-means on Spark MLlib (StandardScaler + KMeans with k-means|| initialisation).

    Parameters
    ----------
    master : str, optional
        Spark master (default: ``SEGMENTLENS_SPARK_MASTER`` or ``local[*]``).
    session : pyspark.sql.SparkSession, optional
        Use this session (tests share one) instead of starting one.
    config : dict, optional
        Extra Spark settings for a session this engine starts.
    reference_year : int, default 2026

    Notes
    -----
    The engine keeps the tables it prepared (cleaned, with features, cached in Spark) for the
    lifetime of the instance, so fit, aggregates, sample and assign read the source once.
    """

    name = "spark"

    def __init__(self, master: str | None = None, *, session=None, config: dict | None = None,
                 reference_year: int | None = None, max_starts: int = MAX_STARTS, sample_rows: int = SAMPLE_ROWS):
        from core.reading.features import DEFAULT_REFERENCE_YEAR

        self.max_starts = int(max_starts)
        self.sample_rows = int(sample_rows)
        self.master = resolve_master(master) if session is None else _session_master(session)
        self._session = session
        self._config = dict(config or {})
        self.reference_year = reference_year or DEFAULT_REFERENCE_YEAR
        self._prepared: dict = {}

    # ------------------------------------------------------------------ session and data
    @property
    def spark(self):
        """The Spark session (started on first use)."""
        if self._session is None:
            self._session = spark_session(self.master, config=self._config)
        return self._session

    def prepare(self, source):
        """Read, clean and engineer the features of ``source`` in Spark (once per source).

        Parameters
        ----------
        source : core.reading.sources.DataSource, path-like, URI str or pandas.DataFrame
            A DataFrame is taken as prepared customers (its index becomes ``_row``).

        Returns
        -------
        core.reading.spark_cleaning.SparkPrepared

        Raises
        ------
        core.reading.loading.DataFileError
            The table cannot be used (the message names the file and the column).
        EngineError
            Spark failed while reading it.
        """
        from core.reading import spark_cleaning as spark_rules
        from core.reading.cleaning import CleaningReport

        if isinstance(source, pd.DataFrame):
            key = ("frame", id(source))
            if key not in self._prepared:
                frame = source.copy()
                for column in frame.columns:
                    if frame[column].dtype.kind in "iub":
                        frame[column] = frame[column].astype("float64")
                    elif frame[column].dtype.kind == "O":  # text: None where missing, for Arrow
                        frame[column] = frame[column].where(frame[column].notna(), None).astype(object)
                frame["_row"] = np.asarray(frame.index, dtype=np.int64)
                sdf = self.spark.createDataFrame(frame).cache()
                report = CleaningReport(len(frame), len(frame), [])
                self._prepared[key] = spark_rules.SparkPrepared(sdf, report, {"format": "pandas"}, "frame", len(frame))
            return self._prepared[key]
        uri = _uri(source)
        if uri not in self._prepared:
            try:
                self._prepared[uri] = spark_rules.prepare(self.spark, uri, reference_year=self.reference_year)
            except (EngineError, EngineUnavailable, ValueError):
                raise
            except Exception as exc:
                raise EngineError(f"Spark failed while reading {_display(uri)} ({_spark_error(exc)})") from None
        return self._prepared[uri]

    # ------------------------------------------------------------------ fitting
    def fit(self, source, *, features, k: int, seed: int = 42, n_init: int = 1, max_iter: int = 300,
            tol: float = SPARK_TOL) -> FitResult:
        """Fit MLlib's StandardScaler and KMeans on every customer of ``source``.

        Parameters
        ----------
        source
            As :meth:`prepare`.
        features : list of str
        k : int
        seed : int, default 42
            Start ``i`` uses seed ``seed + i``.
        n_init : int, default 1
            k-means|| starts, at most ``max_starts`` (3): each is a full MLlib fit, and k-means||
            seeds well. The one with the lowest cost is kept. Above ``sample_rows`` (100,000)
            customers the starts run on a seeded uniform sample and the best is refined on every
            row by Lloyd passes in Spark SQL (one aggregation per pass), as the numpy engine does.
        max_iter : int, default 300
        tol : float, default 1e-4
            MLlib's threshold on how far every centre moves in one iteration.

        Returns
        -------
        FitResult
            In the numpy engine's units (population standard deviation; see the module notes).

        Raises
        ------
        ValueError
            Bad k or an unknown feature.
        EngineError
            Spark failed.
        """
        from pyspark.ml.clustering import KMeans
        from pyspark.ml.feature import StandardScaler, VectorAssembler
        from pyspark.sql import functions as F

        started = time.perf_counter()
        prepared = self.prepare(source)
        features = list(features)
        missing = [f for f in features if f not in prepared.frame.columns]
        if missing:
            raise ValueError(f"{prepared.source}: missing feature column(s) {', '.join(missing)}")
        n = int(prepared.rows)
        check_k(k, n)
        starts = max(1, min(int(n_init), self.max_starts))
        try:
            data = prepared.frame.select(*[F.col(f).cast("double").alias(f) for f in features])
            vectors = VectorAssembler(inputCols=features, outputCol="_x").transform(data).select("_x")
            scaler = StandardScaler(inputCol="_x", outputCol="_z", withMean=True, withStd=True).fit(vectors)
            mean, sample_std = _array(scaler.mean), _array(scaler.std)
            factor = math.sqrt(n / (n - 1)) if n > 1 else 1.0
            population = sample_std / factor
            scale = np.where(population > 0, population, 1.0)
            scaled = scaler.transform(vectors).select("_z")
            sampled = n > self.sample_rows
            if sampled:  # the starts run on a seeded uniform sample, the best is refined on every row
                scaled = scaled.sample(withReplacement=False, fraction=min(1.0, self.sample_rows / n), seed=int(seed))
            scaled = scaled.cache()
            # MLlib caches its own rows (vectors with their norms) only when its input is not cached;
            # fed the cached frame directly it would rebuild them from it in every iteration.
            starts_input = scaled.select(F.col("_z").alias("_v"))
            best = None
            # Starts on a sample only choose the basin (the refinement converges on every row): they
            # may stop earlier, which saves most of their distributed iterations.
            start_iter, start_tol = (min(int(max_iter), 50), max(float(tol), 1e-3)) if sampled else \
                (int(max_iter), float(tol))
            for start in range(starts):
                model = KMeans(featuresCol="_v", k=k, seed=int(seed) + start, maxIter=start_iter, tol=start_tol,
                               initMode="k-means||", initSteps=2, solver="block").fit(starts_input)
                cost = float(model.summary.trainingCost)
                if best is None or cost < best[0]:
                    best = (cost, model)
            cost, model = best
            centers = np.array([_array(c) for c in model.clusterCenters()], dtype=np.float64)
            # MLlib scales by the sample std: its space is the numpy engine's times 1/factor on every
            # non-constant feature (a constant one is 0 in both).
            centroids = np.where(population > 0, centers * factor, centers)
            if sampled:
                centroids, sizes, inertia, n_iter = self._refine(prepared.frame, features, mean, scale, centroids,
                                                                 max_iter=int(max_iter))
            else:
                sizes = np.asarray(model.summary.clusterSizes, dtype=np.int64)
                inertia, n_iter = cost * factor ** 2, int(model.summary.numIter)
            scaled.unpersist()
        except (EngineError, ValueError):
            raise
        except Exception as exc:
            raise EngineError(f"Spark failed while fitting ({_spark_error(exc)})") from None
        finally:
            # Over Spark Connect a fitted MLlib model is a server-side object that the client deletes
            # when the Python object is collected. Collected at interpreter exit instead (they sit in
            # reference cycles), the delete starts a gRPC thread then and the process hangs for good;
            # release them now, while the session is alive.
            scaler = model = best = None
            gc.collect()
        return FitResult(
            features=features, mean=mean, scale=scale, centroids=centroids, sizes=sizes,
            inertia=float(inertia), n_iter=n_iter, rows=n, seconds=time.perf_counter() - started,
            info={"engine": self.name, "master": self.master, "spark_version": self.spark.version,
                  "init": "k-means||", "n_init": starts, "tol": float(tol),
                  "starts_on": "sample" if sampled else "all rows", "sample_rows": int(self.sample_rows),
                  "source_format": prepared.info.get("format")})

    def _refine(self, frame, features, mean, scale, centroids, *, max_iter: int):
        """Lloyd iterations on every row, in Spark SQL, from the best start's centroids.

        One distributed aggregation per iteration: each row's nearest centroid and squared
        distance come from one ``least`` over (distance, index) structs (every distance is
        computed once per row; the lowest index wins ties, as numpy's argmin), then segment
        sizes, feature sums and costs per segment. Stops when the centroids' total squared
        shift is at most 1e-4 (the numpy engine's threshold in scaled units) or after
        ``max_iter`` iterations; one last pass gives the sizes and inertia of the final centroids.

        Returns
        -------
        centroids, sizes, inertia, n_iter
        """
        from pyspark.sql import functions as F

        d = len(features)
        z = frame.select(*[((F.col(f).cast("double") - float(m)) / float(s)).alias(f"_z{j}")
                           for j, (f, m, s) in enumerate(zip(features, mean, scale))]).cache()
        centroids = np.array(centroids, dtype=np.float64)
        k = len(centroids)

        def one_pass(centres):
            best = _nearest_struct(centres, d)
            rows = (z.select(best.alias("_b"), *[F.col(f"_z{j}") for j in range(d)])
                    .groupBy(F.col("_b.i").alias("_s"))
                    .agg(F.count(F.lit(1)).alias("n"), F.sum("_b.d").alias("cost"),
                         *[F.sum(f"_z{j}").alias(f"s{j}") for j in range(d)]).collect())
            sizes = np.zeros(k, dtype=np.int64)
            sums = np.zeros((k, d))
            cost = 0.0
            for row in rows:
                s = int(row["_s"])
                sizes[s] = int(row["n"])
                sums[s] = [row[f"s{j}"] for j in range(d)]
                cost += float(row["cost"])
            return sizes, sums, cost

        n_iter = 0
        try:
            for n_iter in range(1, max_iter + 1):
                sizes, sums, _ = one_pass(centroids)
                new = centroids.copy()
                filled = sizes > 0  # an empty segment keeps its centroid
                new[filled] = sums[filled] / sizes[filled, None]
                shift = float(((new - centroids) ** 2).sum())
                centroids = new
                if shift <= 1e-4:
                    break
            sizes, _, inertia = one_pass(centroids)
        finally:
            z.unpersist()
        return centroids, sizes, inertia, n_iter

    # ------------------------------------------------------------------ scoring in Spark
    def scored(self, source, mean, scale, centroids, features):
        """Customers of ``source`` with ``_segment``, ``_d1`` and ``_confidence`` columns (lazy).

        ``_segment`` is the nearest centroid (lowest index on ties, as numpy's argmin),
        ``_confidence`` is ``1 - d1/d2`` as :meth:`core.fitting.model.SegmentationModel.score`
        (0 when the two nearest are equally far).

        Parameters
        ----------
        source
            As :meth:`prepare`.
        mean, scale : array-like of shape (d,)
        centroids : array-like of shape (k, d)
            Scaled units.
        features : list of str

        Returns
        -------
        pyspark.sql.DataFrame
        """
        from pyspark.sql import functions as F

        prepared = self.prepare(source)
        centroids = np.asarray(centroids, dtype=np.float64)
        z = [(F.col(f).cast("double") - float(m)) / float(s) for f, m, s in zip(features, mean, scale)]
        frame = prepared.frame.select("*", *[e.alias(f"_z{j}") for j, e in enumerate(z)])
        dists = []
        for c in centroids:
            total = None
            for j, value in enumerate(c):
                diff = F.col(f"_z{j}") - float(value)
                total = diff * diff if total is None else total + diff * diff
            dists.append(F.sqrt(total))
        frame = frame.select("*", *[d.alias(f"_d{i}") for i, d in enumerate(dists)])
        k = len(centroids)
        d1 = F.least(*[F.col(f"_d{i}") for i in range(k)]) if k > 1 else F.col("_d0")
        segment = F.lit(k - 1)
        for i in range(k - 2, -1, -1):
            segment = F.when(F.col(f"_d{i}") == F.col("_dmin"), F.lit(i)).otherwise(segment)
        frame = frame.withColumn("_dmin", d1).withColumn("_segment", segment.cast("int"))
        if k > 1:
            second = F.element_at(F.array_sort(F.array(*[F.col(f"_d{i}") for i in range(k)])), 2)
            conf = F.when(second > 0, F.lit(1.0) - F.col("_dmin") / second).otherwise(0.0)
            conf = F.greatest(F.lit(0.0), F.least(F.lit(1.0), conf))
        else:
            conf = F.lit(1.0)
        frame = frame.withColumn("_confidence", conf).withColumnRenamed("_dmin", "_d1")
        return frame.drop(*[f"_z{j}" for j in range(len(features))], *[f"_d{i}" for i in range(k)])

    def assign(self, source, fit: FitResult, *, chunk_rows: int = 100_000) -> Iterator[np.ndarray]:
        """Yield the nearest centroid of each customer, in the source's row order, chunk by chunk.

        Labels are computed in Spark; only the label column travels to the driver.

        Parameters
        ----------
        source
            As :meth:`prepare`.
        fit : FitResult
        chunk_rows : int, default 100000

        Yields
        ------
        ndarray of int
        """
        frame = self.scored(source, fit.mean, fit.scale, fit.centroids, fit.features)
        buffer: list[int] = []
        for row in frame.orderBy("_row").select("_segment").toLocalIterator(prefetchPartitions=True):
            buffer.append(row[0])
            if len(buffer) >= chunk_rows:
                yield np.asarray(buffer, dtype=np.int64)
                buffer = []
        if buffer:
            yield np.asarray(buffer, dtype=np.int64)

    def labels(self, source, fit: FitResult) -> np.ndarray:
        """All labels at once, in row order (for tests and small tables).

        Parameters
        ----------
        source
        fit : FitResult

        Returns
        -------
        ndarray of int
        """
        frame = self.scored(source, fit.mean, fit.scale, fit.centroids, fit.features)
        rows = frame.select("_row", "_segment").toPandas().sort_values("_row")
        return rows["_segment"].to_numpy(dtype=np.int64)

    def silhouette(self, source, fit: FitResult) -> float:
        """MLlib's distributed silhouette (squared Euclidean, O(n)) of the fitted segments.

        Parameters
        ----------
        source
        fit : FitResult

        Returns
        -------
        float
        """
        from pyspark.ml.evaluation import ClusteringEvaluator
        from pyspark.ml.feature import VectorAssembler

        frame = self.scored(source, fit.mean, fit.scale, fit.centroids, fit.features)
        z = frame.select(*[((frame[f] - float(m)) / float(s)).alias(f) for f, m, s in
                           zip(fit.features, fit.mean, fit.scale)], frame["_segment"].cast("double").alias("_p"))
        vectors = VectorAssembler(inputCols=list(fit.features), outputCol="_v").transform(z)
        evaluator = ClusteringEvaluator(featuresCol="_v", predictionCol="_p", metricName="silhouette",
                                        distanceMeasure="squaredEuclidean")
        return float(evaluator.evaluate(vectors))

    def write_scores(self, source, model, names: list, out: str) -> int:
        """Write ``ID, segment, segment_name, confidence`` of every customer as Parquet (a folder).

        Parameters
        ----------
        source
            As :meth:`prepare`.
        model : core.fitting.model.SegmentationModel
            The registered model (its scaler and centroids, its segment numbering).
        names : list of str
            Segment names.
        out : str
            Output folder (local path or URI the cluster writes to); replaced if it exists.

        Returns
        -------
        int
            Customers scored.
        """
        from pyspark.sql import functions as F

        frame = self.scored(source, model.mean_, model.scale_, model.centroids_, list(model.features))
        lookup = F.create_map(*[x for i, name in enumerate(names) for x in (F.lit(i), F.lit(str(name)))])
        result = frame.select(F.col("ID").cast("long").alias("ID"), F.col("_segment").alias("segment"),
                              lookup[F.col("_segment")].alias("segment_name"),
                              F.round(F.col("_confidence"), 4).alias("confidence"), "_row")
        try:
            result.orderBy("_row").drop("_row").write.mode("overwrite").parquet(str(out))
        except Exception as exc:
            raise EngineError(f"Spark could not write {out} ({_spark_error(exc)})") from None
        return int(self.prepare(source).rows)

    def score_file(self, source, model, meta: dict, out, *, progress=None) -> str:
        """``python -m core score --engine spark``: score every customer of ``source`` into Parquet.

        Parameters
        ----------
        source
            As :meth:`prepare`.
        model : core.fitting.model.SegmentationModel
        meta : dict
            The version's metadata (version, segment names).
        out : str or path-like
            Output folder of Parquet files (replaced if it exists); its parent must exist.
        progress : callable, optional

        Returns
        -------
        str
            One line saying what was written.

        Raises
        ------
        ValueError
            No parent folder, or the table lacks a feature of the model.
        """
        from core.versions.naming import segment_names

        step = progress or (lambda _msg: None)
        out = str(out)
        if "://" not in out and not Path(out).resolve().parent.exists():
            raise ValueError(f"folder {Path(out).resolve().parent} does not exist")
        step("load")
        prepared = self.prepare(source)
        missing = [f for f in model.features if f not in prepared.frame.columns]
        if missing:
            raise ValueError(f"the file lacks the model's feature(s) {', '.join(missing)}")
        names = segment_names(meta, model.k)
        step("score")
        rows = self.write_scores(source, model, names, out)
        dropped = prepared.report.rows_read - prepared.report.rows_used
        return (f"scored {rows:,} customers with model {meta.get('version')} -> {out} (Parquet, Spark {self.master})"
                + (f" ({dropped:,} rows not scored: see cleaning rules)" if dropped else ""))

    # ------------------------------------------------------------------ what a version stores
    def aggregates(self, source, model) -> dict:
        """Per-segment (and overall) count, sum, mean, std (ddof=1), min, max of every numeric column.

        A few aggregations per segment over a cached narrow copy (the overall figures merged from
        the segments' on the driver); the result has exactly the
        layout of :meth:`core.versions.aggregates.ProfileAggregator.result` and equals pandas' figures
        within 1e-6 (tests).

        Parameters
        ----------
        source
            As :meth:`prepare`.
        model : core.fitting.model.SegmentationModel
            Its scaler and centroids assign the segments (its numbering).

        Returns
        -------
        dict
        """
        from pyspark.sql import functions as F

        from core.versions.aggregates import AGGREGATES_SCHEMA

        frame = self.scored(source, model.mean_, model.scale_, model.centroids_, list(model.features))
        columns = _numeric_columns(self.prepare(source).frame)
        # Per segment only (no rollup: it would aggregate every row twice); the overall block is
        # merged from the segments' figures below. Columns go in groups small enough for Spark's
        # generated code (it falls back to a much slower interpreter above 100 buffer fields), over
        # a cached narrow copy of the scored rows so that the segments are computed once.
        narrow = frame.select(F.col("_segment").alias("_s"),
                              *[F.col(f"`{c}`").cast("double").alias(f"c{i}") for i, c in enumerate(columns)])
        stats: dict[int, dict] = {}
        try:
            narrow = narrow.cache()
            for first in range(0, max(len(columns), 1), _AGG_COLUMNS):
                exprs = [F.count(F.lit(1)).alias("_rows")]
                for i in range(first, min(first + _AGG_COLUMNS, len(columns))):
                    x = F.col(f"c{i}")
                    exprs += [F.count(x).alias(f"n{i}"), F.sum(x).alias(f"s{i}"), F.stddev_samp(x).alias(f"d{i}"),
                              F.min(x).alias(f"lo{i}"), F.max(x).alias(f"hi{i}")]
                for row in narrow.groupBy("_s").agg(*exprs).collect():
                    stats.setdefault(int(row["_s"]), {}).update(row.asDict())
        except Exception as exc:
            raise EngineError(f"Spark failed while computing the aggregates ({_spark_error(exc)})") from None
        finally:
            narrow.unpersist()

        def merged(parts: list) -> dict:
            """One segment's figures, or the whole table's from its segments' (Chan's merge of variances)."""
            out = {"_rows": sum(int(p["_rows"]) for p in parts)}
            for i in range(len(columns)):
                live = [p for p in parts if int(p[f"n{i}"]) > 0]
                n = sum(int(p[f"n{i}"]) for p in live)
                out[f"n{i}"] = n
                if n == 0:
                    out.update({f"s{i}": None, f"m{i}": None, f"d{i}": None, f"lo{i}": None, f"hi{i}": None})
                    continue
                total = float(sum(float(p[f"s{i}"]) for p in live)) if len(live) > 1 else float(live[0][f"s{i}"])
                mean = total / n
                out.update({f"s{i}": total, f"m{i}": mean, f"lo{i}": min(float(p[f"lo{i}"]) for p in live),
                            f"hi{i}": max(float(p[f"hi{i}"]) for p in live)})
                if len(live) == 1:
                    out[f"d{i}"] = live[0][f"d{i}"]
                    continue
                m2 = 0.0
                for p in live:
                    n_p = int(p[f"n{i}"])
                    m2 += (n_p - 1) * float(p[f"d{i}"]) ** 2 if n_p > 1 and p[f"d{i}"] is not None else 0.0
                    m2 += n_p * (float(p[f"s{i}"]) / n_p - mean) ** 2
                out[f"d{i}"] = math.sqrt(m2 / (n - 1)) if n > 1 else None
            return out

        def block(row) -> dict:
            out = {"count": int(row["_rows"]) if row is not None else 0}
            for key, prefix in (("mean", "m"), ("std", "d"), ("min", "lo"), ("max", "hi"), ("sum", "s")):
                values = {}
                for i, c in enumerate(columns):
                    n = int(row[f"n{i}"]) if row is not None else 0
                    ok = n > 1 if key == "std" else n > 0
                    values[c] = float(row[f"{prefix}{i}"]) if ok and row[f"{prefix}{i}"] is not None else None
                out[key] = values
            out["non_missing"] = {c: int(row[f"n{i}"]) if row is not None else 0 for i, c in enumerate(columns)}
            return out

        by_segment = {s: merged([part]) for s, part in stats.items()}
        overall = merged(list(stats.values()))
        return {"schema": AGGREGATES_SCHEMA, "rows": int(overall["_rows"]), "columns": list(columns),
                "overall": block(overall),
                "segments": [{"segment": s, **block(by_segment.get(s))} for s in range(model.k)]}

    def sample(self, source, model, *, sizes, size: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        """The seeded stratified sample, drawn in Spark: the same customers :mod:`core.reading.sampling` draws.

        Every row's key is :func:`core.reading.sampling.row_keys` of its position and the seed
        (SplitMix64, computed in Spark SQL with wrapping 64-bit arithmetic); each segment keeps
        its quota (:func:`core.reading.sampling.quotas`) of smallest keys. Only the sample travels to
        the driver.

        Parameters
        ----------
        source
            As :meth:`prepare`.
        model : core.fitting.model.SegmentationModel
        sizes : array-like of int
            Customers per segment (model numbering).
        size : int
            Sample size wanted.
        seed : int

        Returns
        -------
        frame : pandas.DataFrame
            Prepared customers, index = position in the table, in table order.
        segments : ndarray of int
        """
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        from core.reading.sampling import quotas

        sizes = np.asarray(sizes, dtype=np.int64)
        quota = quotas(sizes, int(size))
        frame = self.scored(source, model.mean_, model.scale_, model.centroids_, list(model.features))
        columns = [c for c in self.prepare(source).frame.columns if c != "_row"]
        spark = self.spark
        ansi = spark.conf.get("spark.sql.ansi.enabled", "false")
        arrow = spark.conf.get(_ARROW, "false")
        # SplitMix64 needs wrapping 64-bit products; ANSI mode would raise on overflow instead.
        spark.conf.set("spark.sql.ansi.enabled", "false")
        # The sample comes back as Arrow batches, not one Python object per value (seconds at 50K rows).
        spark.conf.set(_ARROW, "true")
        try:
            keyed = frame.withColumn("_key", _row_key(F.col("_row"), int(seed)))
            # Keys are uniform: a segment's quota lies below quota/size with a wide margin.
            limits = {s: min(1.0, (q + 8.0 * math.sqrt(q) + 16.0) / max(int(sizes[s]), 1))
                      for s, q in enumerate(quota.tolist())}
            for attempt in range(2):
                pick = keyed
                if attempt == 0:
                    limit = F.create_map(*[x for s, v in limits.items() for x in (F.lit(s), F.lit(float(v)))])
                    pick = keyed.where(F.col("_key") < limit[F.col("_segment")])
                rank = F.row_number().over(Window.partitionBy("_segment").orderBy("_key", "_row"))
                quota_of = F.create_map(*[x for s, q in enumerate(quota.tolist()) for x in (F.lit(s), F.lit(int(q)))])
                chosen = (pick.withColumn("_rank", rank).where(F.col("_rank") <= quota_of[F.col("_segment")])
                          .select(*[F.col(f"`{c}`") for c in columns], "_row", "_segment").toPandas())
                got = np.bincount(chosen["_segment"].to_numpy(dtype=np.int64), minlength=len(quota))
                if (got >= quota).all():
                    break
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"Spark failed while drawing the sample ({_spark_error(exc)})") from None
        finally:
            spark.conf.set("spark.sql.ansi.enabled", ansi)
            spark.conf.set(_ARROW, arrow)
        chosen = chosen.sort_values("_row", kind="stable")
        segments = chosen.pop("_segment").to_numpy(dtype=np.int64)
        chosen.index = pd.Index(chosen.pop("_row").to_numpy(dtype=np.int64))
        if "Dt_Customer" in chosen:
            chosen["Dt_Customer"] = pd.to_datetime(chosen["Dt_Customer"])
        if "ID" in chosen and chosen["ID"].notna().all():
            chosen["ID"] = chosen["ID"].astype(np.int64)
        return chosen, segments

    def summarise(self, source, model, *, sample_size: int, seed: int) -> tuple[dict, pd.DataFrame, np.ndarray]:
        """Aggregates and the stratified sample with the final model (what :func:`core.versions.pipeline.summarise_streamed` asks).

        Parameters
        ----------
        source
            As :meth:`prepare`.
        model : core.fitting.model.SegmentationModel
        sample_size : int
        seed : int

        Returns
        -------
        aggregates : dict
        sample : pandas.DataFrame
        segments : ndarray of int
        """
        aggregates = self.aggregates(source, model)
        sizes = [s["count"] for s in aggregates["segments"]]
        sample, segments = self.sample(source, model, sizes=sizes, size=sample_size, seed=seed)
        return aggregates, sample, segments

    def stop(self) -> None:
        """Stop the session this engine started (a session passed in is left running)."""
        for prepared in self._prepared.values():
            try:
                prepared.frame.unpersist()
            except Exception:  # the session may be gone already
                pass
        self._prepared.clear()


def _nearest_struct(centroids: np.ndarray, d: int):
    """``struct(d, i)``: squared distance of ``_z0.._z{d-1}`` to the nearest centroid and its index.

    ``least`` over (distance, index) structs: each distance is computed once per row, and the
    lowest index wins ties (as numpy's argmin).
    """
    from pyspark.sql import functions as F

    items = []
    for i, c in enumerate(centroids):
        total = None
        for j in range(d):
            diff = F.col(f"_z{j}") - float(c[j])
            term = diff * diff
            total = term if total is None else total + term
        items.append(F.struct(total.alias("d"), F.lit(i).alias("i")))
    return F.least(*items) if len(items) > 1 else items[0]


def _numeric_columns(frame) -> list[str]:
    """Every numeric or boolean column but the ID and the row number (as :func:`core.versions.aggregates.numeric_columns`)."""
    from pyspark.sql.types import BooleanType, NumericType

    return [f.name for f in frame.schema.fields if f.name not in ("ID", "_row")
            and isinstance(f.dataType, (NumericType, BooleanType))]


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _row_key(position, seed: int):
    """:func:`core.reading.sampling.row_keys` as a Spark expression (needs non-ANSI wrapping arithmetic)."""
    from pyspark.sql import functions as F

    z = (position.cast("long") * F.lit(_signed(0x9E3779B97F4A7C15))
         + F.lit(_signed(((seed & 0xFFFFFFFFFFFFFFFF) * 0xD1B54A32D192ED03) & 0xFFFFFFFFFFFFFFFF)))
    z = (z.bitwiseXOR(F.shiftrightunsigned(z, 30))) * F.lit(_signed(0xBF58476D1CE4E5B9))
    z = (z.bitwiseXOR(F.shiftrightunsigned(z, 27))) * F.lit(_signed(0x94D049BB133111EB))
    z = z.bitwiseXOR(F.shiftrightunsigned(z, 31))
    return F.shiftrightunsigned(z, 11).cast("double") / float(1 << 53)


def _array(vector) -> np.ndarray:
    return np.asarray(vector.toArray() if hasattr(vector, "toArray") else vector, dtype=np.float64)


def _session_master(session) -> str:
    try:
        return session.conf.get("spark.master")
    except Exception:  # Spark Connect sessions do not expose it
        return "connect"


def _uri(source) -> str:
    path = getattr(source, "path", source)
    text = str(path)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        return text
    return str(Path(text).resolve())


def _display(uri: str) -> str:
    parts = [p for p in re.split(r"[\\/]", str(uri)) if p]
    return parts[-1] if parts else str(uri)

