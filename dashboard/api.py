"""Prediction API: JSON endpoints under /api/v1/ on the dashboard's Flask server.

Endpoints: ``POST /api/v1/predict``, ``GET /api/v1/health``, ``GET /api/v1/model``,
``GET /api/v1/segments`` and ``GET /api/v1/openapi.json`` (the OpenAPI 3 document,
built from the active model so its request schema names that model's features).

Every answer is JSON, errors included (400 malformed JSON, 404 unknown route,
405 wrong method, 413 body too large, 415 not JSON, 422 invalid values, 429 rate
limited with Retry-After, 503 no model). Validation lives in :mod:`core.scoring`,
so the page and the API accept the same values.

Configuration (environment): ``SEGMENTLENS_RATE_LIMIT`` (default ``120/minute`` per
client address; ``off`` disables it), ``SEGMENTLENS_MAX_BODY`` (bytes, ``K``/``M``
suffixes allowed, default 1M), ``SEGMENTLENS_MAX_BATCH`` (customers per request,
default 10,000; with every feature spelled out a customer takes ~110 bytes, so the
default body limit admits about 9,000 of them).

The rate-limit counters live in a SQLite file under the cache folder, so the
limit holds across gunicorn workers; one UPSERT per request (tens of microseconds,
see benchmarks/bench_api.py).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import flask
from werkzeug.exceptions import HTTPException

from core import scoring
from core.registry import RegistryError

__all__ = ["API_PREFIX", "DEFAULT_RATE_LIMIT", "DEFAULT_MAX_BODY", "RateLimiter", "parse_rate_limit",
           "parse_size", "register_api", "openapi_document"]

API_PREFIX = "/api/v1"
DEFAULT_RATE_LIMIT = "120/minute"
DEFAULT_MAX_BODY = 1024 * 1024
_EXTENSION = "segmentlens_api"
# Path (after the prefix) -> methods; the catch-all route answers 405 for these and 404 for the rest.
_ROUTES = {"predict": ("POST",), "health": ("GET",), "model": ("GET",), "segments": ("GET",),
           "openapi.json": ("GET",)}
_UNLIMITED = {"health"}  # probes from load balancers must never be throttled
_SMALL_BATCH = 16  # below this, score_one per customer beats building arrays
_log = logging.getLogger("segmentlens.api")


# ---------------------------------------------------------------- configuration
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
            "d": 86400, "day": 86400}


def parse_rate_limit(text: str | None) -> tuple[int, float] | None:
    """Parse ``"120/minute"``, ``"5 per second"``, ``"1000/10min"``; None for ``off``/``0``/``none``."""
    text = (text or DEFAULT_RATE_LIMIT).strip().lower()
    if text in ("off", "none", "0", "unlimited"):
        return None
    match = re.fullmatch(r"(\d+)\s*(?:/|per)\s*(\d*)\s*([a-z]+?)s?", text)
    if not match or match.group(3) not in _PERIODS or int(match.group(1)) < 1:
        raise ValueError(f"SEGMENTLENS_RATE_LIMIT={text!r} is not a rate like '120/minute' or 'off'")
    return int(match.group(1)), float(int(match.group(2) or 1) * _PERIODS[match.group(3)])


def parse_size(text: str | None, default: int = DEFAULT_MAX_BODY) -> int:
    """Parse a byte size such as ``1048576``, ``512K`` or ``2M``."""
    if not text or not text.strip():
        return default
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)[bB]?\s*", text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"SEGMENTLENS_MAX_BODY={text!r} is not a size like 1048576, 512K or 2M")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]


class RateLimiter:
    """Per-client window counter in a SQLite file shared by every worker process.

    A client's window opens at its first request and lasts ``period`` seconds; within it at
    most ``limit`` requests pass. One UPSERT per request, each connection per thread.
    """

    _SQL = ("INSERT INTO hits(key, start, n) VALUES (?1, ?2, 1) ON CONFLICT(key) DO UPDATE SET "
            "n = CASE WHEN ?2 - start >= ?3 THEN 1 ELSE n + 1 END, "
            "start = CASE WHEN ?2 - start >= ?3 THEN ?2 ELSE start END RETURNING start, n")

    def __init__(self, path: str | os.PathLike, limit: int, period: float):
        self.path, self.limit, self.period = str(path), int(limit), float(period)
        self._local = threading.local()
        self._count = 0

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # never share a connection across a fork
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            # Workers opening the file at the same moment race to switch it to WAL, and SQLite
            # answers "database is locked" at once there instead of waiting: retry briefly, or
            # the first requests would be let through uncounted.
            for attempt in range(50):
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=OFF")  # counters need no durability across power loss
                    conn.execute("CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, start REAL NOT NULL, "
                                 "n INTEGER NOT NULL)")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.02)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def hit(self, key: str) -> tuple[bool, int]:
        """Count one request of ``key``: (allowed, seconds until the window reopens)."""
        now = time.time()
        try:
            conn = self._connection()
            # fetchall() steps the statement to its end, which releases the write lock at once.
            (start, n), = conn.execute(self._SQL, (key, now, self.period)).fetchall()
            self._count += 1
            if self._count % 1000 == 0:
                conn.execute("DELETE FROM hits WHERE start < ?", (now - self.period,))
        except sqlite3.Error as exc:  # a broken counter file must not take the API down
            _log.warning("rate limiter unavailable (%s); request allowed", exc)
            return True, 0
        if n <= self.limit:
            return True, 0
        return False, max(1, math.ceil(start + self.period - now))


@dataclass
class ApiSettings:
    """The API's configuration on one server (``server.extensions['segmentlens_api']``)."""

    limiter: RateLimiter | None
    rate_text: str
    max_body: int
    max_batch: int


# ---------------------------------------------------------------- responses
def _finite(value):
    """Replace NaN/Infinity (which JSON cannot carry) with null, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json(payload, status: int = 200, headers: dict | None = None) -> flask.Response:
    try:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a NaN metric in model metadata, say: still valid JSON, never a 500
        body = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False)
    return flask.Response(body, status=status, mimetype="application/json", headers=headers)


def _error(status: int, code: str, message: str, headers: dict | None = None, **extra) -> flask.Response:
    return _json({"error": code, "message": message, "status": status, **extra}, status, headers)


_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
          415: "unsupported_media_type", 422: "invalid_input", 429: "rate_limited", 500: "internal_error",
          503: "no_model"}


def _parse_int(text: str):
    return int(text) if len(text) <= 18 else float(text)


def _loads(data: bytes):
    """Decode a JSON body; an integer literal too long for Python's int limit becomes a float.

    Such a number is valid JSON and must fail validation (422) like any other huge number,
    not pass for malformed JSON. The hook costs ~30 ns per integer, so it only runs on retry.
    """
    try:
        return json.loads(data)
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
        return json.loads(data, parse_int=_parse_int)


# ---------------------------------------------------------------- blueprint
def _create_blueprint() -> flask.Blueprint:
    bp = flask.Blueprint("api_v1", __name__)

    def settings() -> ApiSettings:
        return flask.current_app.extensions[_EXTENSION]

    def services():
        return flask.current_app.extensions["segmentlens"]

    @bp.before_request
    def _start():
        flask.g.api_t0 = time.perf_counter()
        cfg = settings()
        path = flask.request.path[len(API_PREFIX) + 1:]
        if flask.request.method == "OPTIONS":
            # Flask's automatic answer would list the catch-all route's methods too.
            methods = _ROUTES.get(path) if flask.request.path.startswith(API_PREFIX + "/") else None
            if methods is None:
                return _error(404, "not_found", f"no API route {flask.request.path}")
            allow = list(methods) + (["HEAD"] if "GET" in methods else []) + ["OPTIONS"]
            return flask.Response(status=204, headers={"Allow": ", ".join(allow)})
        if cfg.limiter is not None and path not in _UNLIMITED:
            allowed, retry = cfg.limiter.hit(flask.request.remote_addr or "unknown")
            if not allowed:
                return _error(429, "rate_limited", f"too many requests (limit {cfg.rate_text} per client); "
                              f"retry in {retry} s", {"Retry-After": str(retry)}, retry_after=retry)
        return None

    @bp.after_request
    def _stamp(response):
        t0 = flask.g.get("api_t0")
        if t0 is not None:
            response.headers["X-Server-Time-ms"] = f"{(time.perf_counter() - t0) * 1000:.3f}"
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        return _error(status, _CODES.get(status, "error"), exc.description or exc.name)

    @bp.errorhandler(RegistryError)
    def _no_model(exc: RegistryError):
        return _error(503, "no_model", str(exc))

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception):
        _log.exception("unexpected error in %s %s", flask.request.method, flask.request.path)
        return _error(500, "internal_error", "unexpected server error; it has been logged")

    @bp.route(f"{API_PREFIX}/predict", methods=["POST"])
    def predict():
        cfg = settings()
        request = flask.request
        if not request.is_json:
            return _error(415, "unsupported_media_type",
                          f"send the customers as JSON with Content-Type: application/json "
                          f"(got {request.mimetype or 'no content type'})")
        request.max_content_length = cfg.max_body
        if request.content_length is not None and request.content_length > cfg.max_body:
            return _error(413, "payload_too_large", f"the body is larger than {cfg.max_body:,} bytes")
        data = request.get_data(cache=False)
        try:
            body = _loads(data)
        except (ValueError, RecursionError) as exc:
            reason = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)[:200]
            return _error(400, "bad_request", f"the body is not valid JSON ({reason})")
        live = services().live_model()
        model = live.model
        try:
            rows, ids, _batch = scoring.parse_request(body, model.features, cfg.max_batch)
        except scoring.ValidationFailed as exc:
            return _error(422, "invalid_input", f"{len(exc.errors)} invalid or missing field(s): {exc}",
                          errors=exc.errors)
        if len(rows) <= _SMALL_BATCH:
            scored = [model.score_one(values) for values in rows]
            segs, confs, typs, dists = ([s[i] for s in scored] for i in range(4))
        else:
            import numpy as np  # loaded by the app already; kept off the single-customer path

            X = np.asarray(rows, dtype=float)
            scores = model.score(X)
            segs, confs, typs = (scores[c].tolist() for c in ("segment", "confidence", "typicality"))
            dists = model.distances(X).tolist()
        return flask.Response(_encode_predictions(live.version, live.names, ids, segs, confs, typs, dists),
                              mimetype="application/json")

    @bp.route(f"{API_PREFIX}/health", methods=["GET"])
    def health():
        live = services().live_model()
        return _json({"status": "ok", "model_version": live.version, "worker_pid": os.getpid()})

    @bp.route(f"{API_PREFIX}/model", methods=["GET"])
    def model_info():
        live = services().live_model()
        meta = live.meta
        return _json({
            "version": live.version, "created": meta.get("created"), "k": int(live.model.k),
            "features": list(live.model.features), "segment_names": live.names,
            "metrics": meta.get("metrics", {}), "n_customers": meta.get("n_customers"),
            "data_source": meta.get("data_source"), "seed": meta.get("seed"),
        })

    @bp.route(f"{API_PREFIX}/segments", methods=["GET"])
    def segments():
        live = services().live_model()
        return _json({"model_version": live.version, "segments": services().segments_summary()})

    @bp.route(f"{API_PREFIX}/openapi.json", methods=["GET"])
    def openapi():
        live = services().live_model()
        return _json(openapi_document(live.model.features, version=live.version,
                                      max_batch=settings().max_batch, max_body=settings().max_body))

    _ALL = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]

    @bp.route("/api", methods=_ALL, defaults={"rest": ""})
    @bp.route("/api/<path:rest>", methods=_ALL)
    def unknown(rest: str):
        # Dash serves every other path (its pages); under /api only the routes above exist.
        allowed = _ROUTES.get(rest[len("v1/"):]) if rest.startswith("v1/") else None
        if allowed and flask.request.method not in allowed:
            return _error(405, "method_not_allowed",
                          f"{flask.request.method} is not allowed on /api/{rest}; use {', '.join(allowed)}",
                          {"Allow": ", ".join(allowed)})
        return _error(404, "not_found", f"no API route {flask.request.path}; see {API_PREFIX}/openapi.json")

    return bp


def _encode_predictions(version, names, ids, segs, confs, typs, dists) -> str:
    """The predict response as JSON text, six significant digits per number.

    Written with one %-template per customer: for a batch of 1,000 this is about twice as fast
    as json.dumps over dicts (float repr dominates), which keeps the batch within its budget.
    """
    k = len(names)
    row = ('{"segment":%d,"segment_name":%s,"confidence":%.6g,"typicality":%.6g,"distances":['
           + ",".join(["%.6g"] * k) + "]}")
    quoted = [json.dumps(n) for n in names]
    parts = []
    for cid, seg, conf, typ, dist in zip(ids, segs, confs, typs, dists):
        text = row % (seg, quoted[seg], conf, typ, *dist)
        if cid is not None:
            text = '{"ID":' + (str(cid) if type(cid) is int else json.dumps(cid)) + "," + text[1:]
        parts.append(text)
    return '{"model_version":' + json.dumps(version) + ',"predictions":[' + ",".join(parts) + "]}"


def register_api(server: flask.Flask, cache_dir: str | os.PathLike) -> None:
    """Register the /api/v1 blueprint on ``server`` with its rate limiter and limits from the environment."""
    rate_text = os.environ.get("SEGMENTLENS_RATE_LIMIT") or DEFAULT_RATE_LIMIT
    rate = parse_rate_limit(rate_text)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    limiter = RateLimiter(cache_dir / "api_rate_limit.sqlite3", *rate) if rate else None
    max_batch = int(os.environ.get("SEGMENTLENS_MAX_BATCH") or scoring.MAX_BATCH)
    server.extensions[_EXTENSION] = ApiSettings(limiter, rate_text.strip(), parse_size(
        os.environ.get("SEGMENTLENS_MAX_BODY")), max_batch)
    server.register_blueprint(_create_blueprint())


# ---------------------------------------------------------------- OpenAPI
def _error_schema() -> dict:
    return {"type": "object", "required": ["error", "message", "status"], "properties": {
        "error": {"type": "string", "description": "Short machine-readable code, e.g. invalid_input"},
        "message": {"type": "string", "description": "What went wrong, for people"},
        "status": {"type": "integer"},
        "retry_after": {"type": "integer", "description": "Seconds to wait (429 only)"},
        "errors": {"type": "array", "description": "Every invalid field (422 only)", "items": {
            "type": "object", "required": ["field", "message"], "properties": {
                "index": {"type": "integer", "description": "Position of the customer in a batch"},
                "field": {"type": "string"}, "message": {"type": "string"}}}},
    }}


def _err(description: str, headers: dict | None = None) -> dict:
    out = {"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if headers:
        out["headers"] = headers
    return out


def openapi_document(features, *, version: str, max_batch: int = scoring.MAX_BATCH,
                     max_body: int = DEFAULT_MAX_BODY) -> dict:
    """The OpenAPI 3.0 document of the API for a model with these features."""
    customer = scoring.customer_schema(features)
    customer["description"] = ("One customer: each of the model's features, or the raw columns it derives from "
                               f"(Year_Birth -> Age = {scoring.REFERENCE_YEAR} - Year_Birth; Kidhome + Teenhome "
                               "-> Total_Children; the six Mnt* -> Total_Spending). An explicit feature wins. "
                               "Other fields are ignored; every known numeric field given must be valid.")
    single = {"allOf": [{"$ref": "#/components/schemas/Customer"}, {"not": {"required": ["customers"]}}]}
    batch = {"type": "object", "required": ["customers"], "properties": {"customers": {
        "type": "array", "maxItems": max_batch, "items": {"$ref": "#/components/schemas/Customer"}}}}
    prediction = {"type": "object", "required": ["segment", "segment_name", "confidence", "typicality", "distances"],
                  "properties": {
                      "ID": {"anyOf": [{"type": "integer"}, {"type": "string"}],
                             "description": "Echoed from the request"},
                      "segment": {"type": "integer", "minimum": 0},
                      "segment_name": {"type": "string"},
                      "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                                     "description": "1 - d1/d2: 0 = exactly between two segments"},
                      "typicality": {"type": "number", "minimum": 0, "maximum": 1,
                                     "description": "Share of the segment's members farther from its centre"},
                      "distances": {"type": "array", "items": {"type": "number", "minimum": 0},
                                    "description": "Distance to each segment's centre (index = segment), scaled units"},
                  }}
    limited = {"Retry-After": {"description": "Seconds until requests are accepted again",
                               "schema": {"type": "integer", "minimum": 1}}}
    timing = {"X-Server-Time-ms": {"description": "Time spent in the server, milliseconds",
                                   "schema": {"type": "number"}}}
    r429 = _err("Too many requests from this client", limited)
    r503 = _err("No active model in the registry")

    def ok(description: str, schema_ref: str) -> dict:
        return {"description": description, "headers": timing,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}

    return {
        "openapi": "3.0.3",
        "info": {"title": "SegmentLens API", "version": "1",
                 "description": f"Customer segmentation with the active model ({version}). Rate limited per "
                                f"client address (429 with Retry-After); bodies up to {max_body:,} bytes."},
        "paths": {
            f"{API_PREFIX}/predict": {"post": {
                "operationId": "predict", "summary": "Segment of one customer or a batch",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "anyOf": [single, batch]}}}},
                "responses": {
                    "200": ok("One prediction per customer, in order", "Predictions"),
                    "400": _err("The body is not valid JSON"),
                    "413": _err(f"The body is larger than the limit ({max_body:,} bytes)"),
                    "415": _err("The body is not sent as application/json"),
                    "422": _err("Invalid or missing values; `errors` names every one"),
                    "429": r429, "503": r503,
                }}},
            f"{API_PREFIX}/health": {"get": {
                "operationId": "health", "summary": "Liveness and the active model version (not rate limited)",
                "responses": {"200": ok("Serving", "Health"), "503": r503}}},
            f"{API_PREFIX}/model": {"get": {
                "operationId": "model", "summary": "The active model: features, k, segment names, metrics",
                "responses": {"200": ok("The active model", "Model"), "429": r429, "503": r503}}},
            f"{API_PREFIX}/segments": {"get": {
                "operationId": "segments", "summary": "Profile summary of every segment",
                "responses": {"200": ok("One entry per segment", "Segments"), "429": r429, "503": r503}}},
            f"{API_PREFIX}/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document", "content": {
                    "application/json": {"schema": {"type": "object"}}}}, "429": r429, "503": r503}}},
        },
        "components": {"schemas": {
            "Customer": customer,
            "Prediction": prediction,
            "Predictions": {"type": "object", "required": ["model_version", "predictions"], "properties": {
                "model_version": {"type": "string"},
                "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}}},
            "Health": {"type": "object", "required": ["status", "model_version"], "properties": {
                "status": {"type": "string", "enum": ["ok"]}, "model_version": {"type": "string"},
                "worker_pid": {"type": "integer", "description": "Process that answered (one per gunicorn worker)"}}},
            "Model": {"type": "object", "required": ["version", "k", "features", "segment_names", "metrics"],
                      "properties": {
                          "version": {"type": "string"}, "created": {"type": "string", "nullable": True},
                          "k": {"type": "integer", "minimum": 1},
                          "features": {"type": "array", "items": {"type": "string"}},
                          "segment_names": {"type": "array", "items": {"type": "string"}},
                          "metrics": {"type": "object", "additionalProperties": {"type": "number", "nullable": True}},
                          "n_customers": {"type": "integer", "nullable": True},
                          "data_source": {"type": "string", "nullable": True},
                          "seed": {"type": "integer", "nullable": True}}},
            "Segments": {"type": "object", "required": ["model_version", "segments"], "properties": {
                "model_version": {"type": "string"},
                "segments": {"type": "array", "items": {"type": "object", "required": [
                    "segment", "name", "size", "share", "means"], "properties": {
                    "segment": {"type": "integer"}, "name": {"type": "string"},
                    "description": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
                    "share": {"type": "number", "minimum": 0, "maximum": 1},
                    "means": {"type": "object", "additionalProperties": {"type": "number", "nullable": True}},
                    "response_rate": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True}}}}}},
            "Error": _error_schema(),
        }},
    }
