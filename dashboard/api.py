"""Prediction API: JSON endpoints under /api/v1/ on the dashboard's Flask server.

Endpoints: ``POST /api/v1/predict``, ``GET /api/v1/health``, ``GET /api/v1/model``,
``GET /api/v1/segments``, ``GET /api/v1/openapi.json`` (the OpenAPI 3 document,
built from the active model so its request schema names that model's features), and
for admins ``POST /api/v1/models/{version}/activate`` and ``POST /api/v1/models/rollback``, and for
analysts ``POST /api/v1/audiences`` (a campaign plan and its audience, dashboard.services.campaigns), and
``GET /api/v1/migration`` (segments over time on an order log, dashboard.services.migration).

Access: once any API key exists (``python -m core apikeys create``), every endpoint but
``health`` and ``openapi.json`` needs ``Authorization: Bearer KEY`` or a signed-in dashboard
session (401 with ``WWW-Authenticate: Bearer`` otherwise). The admin endpoints always need an
admin key or admin session (401 without credentials, 403 for a lower role); their calls,
allowed or denied, are written to the audit log. A key check is a dict lookup
(core.access.accounts.AccountStore caches the key file by its identity).

Every answer is JSON, errors included (400 malformed JSON, 401/403 credentials, 404 unknown
route or version, 405 wrong method, 409 a version that cannot be activated, 413 body too
large, 415 not JSON, 422 invalid values, 429 rate limited with Retry-After, 503 no model can
be served, with the reason). ``health`` answers 200 only while the active version is what is
served, else 503 ``{"status": "degraded", "reason": ...}``. Validation lives in
:mod:`core.versions.scoring`, so the page and the API accept the same values.

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

import functools
import json
import logging
import math
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import flask
from werkzeug.exceptions import HTTPException

from core.versions import scoring
from core.access.accounts import AccountsError, AccountStore, allowed
from core.versions.registry import RegistryError
from core.access.startup_checks import setup_warnings

from .limits import API_PREFIX, DEFAULT_MAX_BODY, DEFAULT_RATE_LIMIT, RateLimiter, parse_rate_limit, parse_size
from .monitoring import METRICS_PATH, install_monitoring, metrics_response, record_prediction

__all__ = ["API_PREFIX", "DEFAULT_RATE_LIMIT", "DEFAULT_MAX_BODY", "RateLimiter", "parse_rate_limit",
           "parse_size", "register_api", "openapi_document", "predicted", "Predicted", "Refused", "ApiSettings",
           "RATE_COUNTED", "PREDICT_PATH", "SETTINGS_KEY"]

_EXTENSION = SETTINGS_KEY = "segmentlens_api"
# Path (after the prefix) -> methods; the catch-all route answers 405 for these and 404 for the rest.
_ROUTES = {"predict": ("POST",), "health": ("GET",), "model": ("GET",), "segments": ("GET",),
           "openapi.json": ("GET",), "models/rollback": ("POST",), "monitoring": ("GET",),
           "audiences": ("POST",), "migration": ("GET",), "value": ("GET",)}
_ACTIVATE = re.compile(r"^models/[^/]+/activate$")
_VALUE_CUSTOMER = re.compile(r"^value/customers/[^/]+$")
# What GET /value serves of the stored value report (no covariance matrices, no customer list).
_VALUE_KEYS = ("model", "time_unit", "unit_days", "horizon", "discount_rate", "calibration_end", "first_date",
               "latest_date", "customers", "repeat_customers", "params", "params_se", "log_likelihood",
               "spend_params", "spend_params_se", "spend_customers", "totals", "segments", "holdout",
               "interval_method", "notes")
_UNLIMITED = {"health"}  # probes from load balancers must never be throttled
_SETUP_TTL = 30.0  # seconds between health's setup checks (core.access.startup_checks)
_PUBLIC = {"health", "openapi.json"}  # answered without credentials even when keys exist
_SMALL_BATCH = 16  # below this, score_one per customer beats building arrays
#: A WSGI environ key: this request has been counted by the rate limiter already (dashboard.api_fast
#: counts a keyed prediction it then leaves to Flask). Only server code can set a key without ``HTTP_``.
RATE_COUNTED = "segmentlens.rate_counted"
PREDICT_PATH = f"{API_PREFIX}/predict"
_log = logging.getLogger("segmentlens.api")


@dataclass
class ApiSettings:
    """The API's configuration on one server (``server.extensions['segmentlens_api']``)."""

    limiter: RateLimiter | None
    rate_text: str
    max_body: int
    max_batch: int
    accounts: AccountStore | None = None  # made on first use, on the registry folder of the app's services
    workers: dict | None = None  # process id -> an opaque name of this worker (health never shows a PID)
    setup: tuple | None = None  # (monotonic time, core.access.startup_checks.setup_warnings()) for health
    fields: tuple | None = None  # (LiveModel, mapped_fields of it): the served model's accepted fields


def _methods(path: str):
    """Methods of an API path after ``/api/v1/`` (None for no such route)."""
    if path in _ROUTES:
        return _ROUTES[path]
    if _VALUE_CUSTOMER.match(path):
        return ("GET",)
    return ("POST",) if _ACTIVATE.match(path) else None


def _session_role(keys_exist: bool) -> str | None:
    """The signed-in dashboard user's role (dashboard.auth); open mode counts only while no key exists."""
    try:
        from dashboard import auth

        if keys_exist and auth.mode() == "open":
            return None
        return auth.current_role()
    except Exception:  # no sign-in configured on this server (e.g. an API-only app)
        return None


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


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_input",
          429: "rate_limited", 500: "internal_error", 503: "no_model"}


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


# ---------------------------------------------------------------- predictions
class Refused(Exception):
    """A prediction request the API answers with an error: status, code, message and extra fields."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class Predicted:
    """Scored customers and the answer's JSON text (what monitoring counts and what the caller gets)."""

    version: str
    rows: list
    segments: list
    confidence: list
    typicality: list
    text: str


def predicted(cfg: ApiSettings, svc, data: bytes) -> Predicted:
    """Score the customers of a predict body with the served model (raises :class:`Refused`).

    The one place a prediction is made for the API: the blueprint's route and the keyed fast path
    (dashboard.api_fast) both call it, so both accept, refuse and answer alike. No side effect:
    the caller counts the predictions once it answers.
    """
    try:
        body = _loads(data)
    except (ValueError, RecursionError) as exc:
        reason = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise Refused(400, "bad_request", f"the body is not valid JSON ({reason})") from None
    try:
        live = svc.live_model()
    except RegistryError as exc:
        raise Refused(503, "no_model", str(exc)) from None
    model = live.model
    known = cfg.fields
    if known is None or known[0] is not live:  # asked again only when the served model is looked up afresh
        known = cfg.fields = (live, mapped_fields(svc, live))
    fields = known[1]
    try:
        if fields is None:
            rows, ids, _batch = scoring.parse_request(body, model.features, cfg.max_batch)
        else:  # a model of a customer table or transaction log: its own features (issue 18)
            from core.reading.mapping import mapped_request

            rows, ids, _batch = mapped_request(body, model.features, fields, cfg.max_batch)
    except scoring.ValidationFailed as exc:
        raise Refused(422, "invalid_input", f"{len(exc.errors)} invalid or missing field(s): {exc}",
                      errors=exc.errors) from None
    probs = None
    if getattr(model, "algorithm", "kmeans") != "kmeans":  # placed by the model's own algorithm
        import numpy as np
        import pandas as pd

        try:
            table = pd.DataFrame(np.asarray(rows, dtype=float).reshape(len(rows), len(model.features)),
                                 columns=list(model.features))
            for name, values in _categorical_fields(body, model.categorical).items():
                table[name] = values
        except ValueError as exc:
            raise Refused(422, "invalid_input", str(exc)) from None
        scores = model.score(table)
        segs, confs, typs = (scores[c].tolist() for c in ("segment", "confidence", "typicality"))
        dists = model.distances(table).tolist()
        if model.soft:
            probs = model.predict_proba(table).tolist()
    elif len(rows) <= _SMALL_BATCH:
        scored = [model.score_one(values) for values in rows]
        segs, confs, typs, dists = ([s[i] for s in scored] for i in range(4))
    else:
        import numpy as np  # loaded by the app already; kept off the single-customer path

        X = np.asarray(rows, dtype=float)
        scores = model.score(X)
        segs, confs, typs = (scores[c].tolist() for c in ("segment", "confidence", "typicality"))
        dists = model.distances(X).tolist()
    return Predicted(live.version, rows, segs, confs, typs,
                     _encode_predictions(live.version, live.names, ids, segs, confs, typs, dists, probs))


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
        request = flask.request._get_current_object()  # one context lookup, not one per attribute (issue 29)
        full_path = request.path
        path = full_path[len(API_PREFIX) + 1:]
        if request.method == "OPTIONS":
            # Flask's automatic answer would list the catch-all route's methods too.
            methods = _methods(path) if full_path.startswith(API_PREFIX + "/") else None
            if methods is None:
                return _error(404, "not_found", f"no API route {full_path}")
            allow = list(methods) + (["HEAD"] if "GET" in methods else []) + ["OPTIONS"]
            return flask.Response(status=204, headers={"Allow": ", ".join(allow)})
        if cfg.limiter is not None and path not in _UNLIMITED:
            allowed_now, retry = request.environ.get(RATE_COUNTED) or cfg.limiter.hit(request.remote_addr or "unknown")
            if not allowed_now:
                return _error(429, "rate_limited", f"too many requests (limit {cfg.rate_text} per client); "
                              f"retry in {retry} s", {"Retry-After": str(retry)}, retry_after=retry)
        if path in _PUBLIC or not full_path.startswith(API_PREFIX + "/"):
            return None
        return _authorise(cfg, path, request)

    def _accounts(cfg: ApiSettings) -> AccountStore:
        if cfg.accounts is None:
            cfg.accounts = AccountStore(services().registry.root)
        return cfg.accounts

    def _authorise(cfg: ApiSettings, path: str, request: flask.Request | None = None):
        """None when the caller may go on (flask.g.api_actor names them), else the 401/403 answer."""
        request = request if request is not None else flask.request._get_current_object()
        admin_route = _methods(path) == ("POST",) and path.startswith("models/")
        try:
            accounts = _accounts(cfg)
            header = request.environ.get("HTTP_AUTHORIZATION")  # request.headers.get without its key mangling
            if header is not None:
                scheme, _, key = header.strip().partition(" ")
                found = accounts.verify_key(key.strip()) if scheme.lower() == "bearer" else None
                if found is None:
                    return _denied(401, "the API key is not valid (send Authorization: Bearer KEY with a key from "
                                        "`python -m core apikeys create`)", path, admin_route, "anonymous")
                # A valid key means keys exist: no second look at the key file on the key's path.
                actor, role, by_session, keys_exist = f"apikey:{found['name']}", found["role"], False, True
            else:
                keys_exist = accounts.has_keys()
                role = _session_role(keys_exist)
                actor, by_session = _session_actor(), True
        except AccountsError as exc:
            _log.error("API keys cannot be read: %s", exc)
            return _error(503, "no_model", "the server cannot read its API keys; an admin must repair apikeys.json")
        g = flask.g._get_current_object()
        g.api_actor, g.api_role = actor, role  # the services check this caller's role again
        if role is None and (keys_exist or admin_route):
            return _denied(401, "this endpoint needs an API key: send Authorization: Bearer KEY", path,
                           admin_route, actor)
        if admin_route:
            if not allowed(role, "activate"):
                return _denied(403, f"only admins can change the active model; this key or session is {role}",
                               path, admin_route, actor)
            # A session cookie rides along with cross-site forms; those cannot send JSON without CORS consent.
            if by_session and not (request.is_json or request.headers.get("X-Requested-With")):
                return _denied(403, "send Content-Type: application/json (or X-Requested-With) with a session",
                               path, admin_route, actor)
        if path == "audiences":  # campaign work (issue 12): analysts and admins, key or session
            denied = None
            if role is None:
                denied = (401, "this endpoint needs an analyst's API key or session: send Authorization: Bearer KEY")
            elif not allowed(role, "campaign"):
                denied = (403, f"only analysts and admins can create audiences; this key or session is {role}")
            elif by_session and not (request.is_json or request.headers.get("X-Requested-With")):
                denied = (403, "send Content-Type: application/json (or X-Requested-With) with a session")
            if denied:
                services().auditor.record(actor, "campaign", "audiences", "denied", f"API {denied[0]}: {denied[1]}")
                return _denied(*denied, path, admin_route, actor)
        return None

    def _session_actor() -> str:
        try:
            from dashboard.auth import actor

            return actor()
        except Exception:
            return "anonymous"

    def _denied(status: int, message: str, path: str, admin_route: bool, actor: str):
        if admin_route:
            action = "rollback" if path == "models/rollback" else "activate"
            target = "-" if action == "rollback" else path.split("/")[1]
            services().auditor.record(actor, action, target, "denied", f"API {status}: {message}")
        headers = {"WWW-Authenticate": 'Bearer realm="segmentlens"'} if status == 401 else None
        return _error(status, _CODES[status], message, headers)

    @bp.after_request
    def _stamp(response):
        t0 = flask.g.get("api_t0")
        headers = response.headers
        if "Cache-Control" in headers:
            headers["Cache-Control"] = "no-store"
            stamp = []
        else:  # the common case: both headers added in one call, no search for one to replace
            stamp = [("Cache-Control", "no-store")]
        if t0 is not None:
            stamp.append(("X-Server-Time-ms", f"{(time.perf_counter() - t0) * 1000:.3f}"))
        headers.extend(stamp)
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

    @bp.route(PREDICT_PATH, methods=["POST"])
    def predict():
        cfg = settings()
        request = flask.request._get_current_object()
        if not request.is_json:
            return _error(415, "unsupported_media_type",
                          f"send the customers as JSON with Content-Type: application/json "
                          f"(got {request.mimetype or 'no content type'})")
        request.max_content_length = cfg.max_body
        if request.content_length is not None and request.content_length > cfg.max_body:
            return _error(413, "payload_too_large", f"the body is larger than {cfg.max_body:,} bytes")
        try:
            answer = predicted(cfg, services(), request.get_data(cache=False))
        except Refused as refused:
            return _error(refused.status, refused.code, refused.message, **refused.extra)
        record_prediction(answer.version, answer.rows, answer.segments, answer.confidence, answer.typicality, "api")
        return flask.Response(answer.text, mimetype="application/json")

    def worker() -> str:
        cfg = settings()
        if cfg.workers is None:
            cfg.workers = {}
        return cfg.workers.setdefault(os.getpid(), secrets.token_hex(4))

    @bp.route(f"{API_PREFIX}/health", methods=["GET"])
    def health():
        status = services().status()
        body = {"status": status["status"], "model_version": status["serving"], "active": status["active"],
                "serving": status["serving"], "reason": status["reason"], "worker": worker()}
        if status.get("warning"):
            body["warning"] = status["warning"]
        setup = setup_now()
        if setup:
            body["setup_warnings"] = setup
        return _json(body, 200 if status["status"] == "ok" else 503)

    def setup_now() -> list[str]:
        # Checked at most every _SETUP_TTL seconds: probes must answer fast (a Spark master check
        # may wait for a connection), yet a user created or a master started later is noticed.
        cfg, now = settings(), time.monotonic()
        if cfg.setup is None or now - cfg.setup[0] > _SETUP_TTL:
            cfg.setup = (now, setup_warnings(services().registry.root))
        return cfg.setup[1]

    @bp.route(f"{API_PREFIX}/models/<version>/activate", methods=["POST"])
    def activate(version: str):
        svc = services()
        known = {v["version"] for v in svc.registry.versions()}
        if version not in known:
            return _error(404, "not_found", f"no model version {version!r}; versions: {', '.join(sorted(known)) or 'none'}")
        previous = svc.registry.active_version()
        try:
            svc.activate_version(version)
        except RegistryError as exc:
            return _error(409, "conflict", f"{version} cannot be activated: {exc}")
        return _json({"active": version, "previous": previous})

    @bp.route(f"{API_PREFIX}/models/rollback", methods=["POST"])
    def rollback():
        svc = services()
        previous = svc.registry.active_version()
        try:
            active = svc.rollback_version()
        except RegistryError as exc:
            return _error(409, "conflict", f"cannot roll back: {exc}")
        return _json({"active": active, "previous": previous})

    @bp.route(f"{API_PREFIX}/audiences", methods=["POST"])
    def audiences():
        cfg, request = settings(), flask.request
        if not request.is_json:
            return _error(415, "unsupported_media_type", "send the economics as JSON with Content-Type: application/json")
        if request.content_length is not None and request.content_length > cfg.max_body:
            return _error(413, "payload_too_large", f"the body is larger than {cfg.max_body:,} bytes")
        try:
            body = _loads(request.get_data(cache=False))
        except (ValueError, RecursionError):
            return _error(400, "bad_request", "the body is not valid JSON")
        from core.campaigns.campaign import CampaignError

        try:
            record = services().campaigns.plan_from_json(body, actor=flask.g.get("api_actor", "anonymous"))
        except CampaignError as exc:
            field, _, message = str(exc).partition(": ")
            return _error(422, "invalid_input", str(exc), errors=[{"field": field, "message": message or str(exc)}])
        return _json(record, 201)

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
        rows = services().segments_summary()
        # Each segment's threshold rule (core.insight.explanation: IMM tree), with its fidelity; the whole set's below.
        rules = services().analyses.rules()
        by_segment = {r.segment: r.to_dict() for r in rules.segments}
        rows = [dict(row, rule={key: by_segment[row["segment"]][key] for key in
                                ("rule", "sql", "pandas", "fidelity", "precision")})
                if row["segment"] in by_segment else row for row in rows]
        return _json({"model_version": live.version, "segments": rows,
                      "rules": {key: v for key, v in rules.to_dict().items() if key in
                                ("method", "fidelity", "price", "n_customers")}})

    @bp.route(f"{API_PREFIX}/migration", methods=["GET"])
    def migration():
        from core.insight.migration import MigrationError, NotALogError

        from .services.migration import migration_service

        args = flask.request.args
        every = args.get("every", "month")
        try:
            payload = migration_service(services()).migration(every, args.get("from") or None, args.get("to") or None)
        except NotALogError as exc:
            return _error(409, "conflict", str(exc))
        except MigrationError as exc:
            field, _, message = str(exc).partition(": ")
            return _error(422, "invalid_input", str(exc), errors=[{"field": field, "message": message or str(exc)}])
        return _json(payload)
    @bp.route(f"{API_PREFIX}/value", methods=["GET"])
    def value():
        from .services.value import ValueUnavailable

        try:
            report = services().values.report()
        except ValueUnavailable as exc:
            return _error(409, "conflict", str(exc))
        body = {"model_version": report.get("version"), **{key: report.get(key) for key in _VALUE_KEYS}}
        body["slipping_customers"] = (report.get("slipping") or {}).get("count")
        return _json(body)

    @bp.route(f"{API_PREFIX}/value/customers/<ident>", methods=["GET"])
    def customer_value(ident: str):
        from .services.value import ValueUnavailable

        try:
            found = services().values.customer(ident)
        except ValueUnavailable as exc:
            return _error(409, "conflict", str(exc))
        if found is None:
            return _error(404, "not_found", f"no customer with ID {ident[:40]!r} in the active version's log")
        return _json(found)

    @bp.route(f"{API_PREFIX}/openapi.json", methods=["GET"])
    def openapi():
        live = services().live_model()
        doc = openapi_document(live.model.features, version=live.version,
                               max_batch=settings().max_batch, max_body=settings().max_body,
                               fields=mapped_fields(services(), live),
                               categories={name: getattr(live.model, "categories_", {}).get(name, [])
                                           for name in getattr(live.model, "categorical", [])})
        # The active model's segments are the only ones an audience can name.
        doc["components"]["schemas"]["AudienceRequest"]["properties"]["segments"]["items"]["maximum"] = \
            int(live.model.k) - 1
        return _json(doc)

    @bp.route(f"{API_PREFIX}/monitoring", methods=["GET"])
    def monitoring():
        from .monitoring import current_monitor

        text = flask.request.args.get("hours")
        hours = None
        if text is not None:  # given but empty is not a number either
            try:
                hours = float(text)
            except ValueError:
                hours = -1.0
            if not (0 < hours <= 24 * 366):
                return _error(422, "invalid_input", f"hours must be a number of hours from 0 to 8784 (got {text[:20]!r})",
                              errors=[{"field": "hours", "message": "a number of hours, 0 < hours <= 8784"}])
        return _json(current_monitor().report(services(), hours))

    @bp.route(METRICS_PATH, methods=["GET"])
    def metrics():
        # Same rule as the API: open while no API key exists, then a key (or signed-in session) is needed.
        refused = _authorise(settings(), "metrics")
        return refused if refused is not None else metrics_response()

    _ALL = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]

    @bp.route("/api", methods=_ALL, defaults={"rest": ""})
    @bp.route("/api/<path:rest>", methods=_ALL)
    def unknown(rest: str):
        # Dash serves every other path (its pages); under /api only the routes above exist.
        methods = _methods(rest[len("v1/"):]) if rest.startswith("v1/") else None
        if methods and flask.request.method not in methods:
            return _error(405, "method_not_allowed",
                          f"{flask.request.method} is not allowed on /api/{rest}; use {', '.join(methods)}",
                          {"Allow": ", ".join(methods)})
        return _error(404, "not_found", f"no API route {flask.request.path}; see {API_PREFIX}/openapi.json")

    return bp


def _categorical_fields(body, names) -> dict:
    """The categorical features of a k-prototypes model from a predict body: text per customer (None: missing)."""
    if not names:
        return {}
    customers = body["customers"] if "customers" in body else [body]
    out = {name: [] for name in names}
    for i, customer in enumerate(customers):
        for name in names:
            value = customer.get(name)
            if value is not None and not isinstance(value, str):
                where = f"customers[{i}].{name}" if "customers" in body else name
                raise ValueError(f"{where} must be a category (text), got {type(value).__name__}")
            out[name].append(value)
    return out


def _encode_predictions(version, names, ids, segs, confs, typs, dists, probs=None) -> str:
    """The predict response as JSON text, six significant digits per number.

    Written with one %-template per customer: for a batch of 1,000 this is about twice as fast
    as json.dumps over dicts (float repr dominates), which keeps the batch within its budget.
    ``probs`` (soft models): membership probability per segment, indexed as ``distances``.
    """
    row, quoted = _response_template(tuple(names), probs is not None)
    parts = []
    for i, (cid, seg, conf, typ, dist) in enumerate(zip(ids, segs, confs, typs, dists)):
        text = row % ((seg, quoted[seg], conf, typ, *dist) + (tuple(probs[i]) if probs is not None else ()))
        if cid is not None:
            text = '{"ID":' + (str(cid) if type(cid) is int else json.dumps(cid)) + "," + text[1:]
        parts.append(text)
    return '{"model_version":' + json.dumps(version) + ',"predictions":[' + ",".join(parts) + "]}"


@functools.lru_cache(maxsize=32)
def _response_template(names: tuple, soft: bool) -> tuple[str, list[str]]:
    """The %-template of one prediction and the segment names as JSON strings (made once per model and names)."""
    k = len(names)
    row = ('{"segment":%d,"segment_name":%s,"confidence":%.6g,"typicality":%.6g,"distances":['
           + ",".join(["%.6g"] * k) + "]"
           + (',"probabilities":[' + ",".join(["%.6g"] * k) + "]" if soft else "") + "}")
    return row, [json.dumps(n) for n in names]


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
    install_monitoring(server, cache_dir)  # prediction counters + /metrics (SEGMENTLENS_MONITORING)
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


def _monitoring_schema() -> dict:
    number = {"type": "number", "nullable": True}
    alert = {"type": "object", "required": ["kind", "value", "threshold", "message"], "properties": {
        "kind": {"type": "string", "enum": ["feature_drift", "segment_mix", "low_confidence"]},
        "feature": {"type": "string"}, "segment": {"type": "integer"}, "segment_name": {"type": "string"},
        "value": {"type": "number"}, "threshold": {"type": "number"}, "message": {"type": "string"}}}
    return {"type": "object", "required": ["model_version", "predictions", "segments", "features", "alerts",
                                           "recommendation"], "properties": {
        "model_version": {"type": "string"}, "enabled": {"type": "boolean"},
        "predictions": {"type": "integer", "minimum": 0, "description": "Predictions counted in the window"},
        "bucket_seconds": {"type": "number"},
        "traffic": {"type": "array", "description": "Per time bucket", "items": {"type": "object", "properties": {
            "start": {"type": "integer", "description": "Unix time"}, "predictions": {"type": "integer"},
            "low_confidence_share": number}}},
        "segments": {"type": "array", "items": {"type": "object", "properties": {
            "segment": {"type": "integer"}, "name": {"type": "string"}, "predictions": {"type": "integer"},
            "training_share": number, "incoming_share": number}}},
        "segment_psi": number,
        "features": {"type": "array", "description": "PSI of incoming vs training customers, largest first",
                     "items": {"type": "object", "properties": {
                         "feature": {"type": "string"}, "psi": number, "band": {"type": "string", "nullable": True},
                         "predictions": {"type": "integer"},
                         "training_shares": {"type": "array", "items": {"type": "number"}},
                         "incoming_shares": {"type": "array", "items": {"type": "number"}}}}},
        "low_confidence_share": number, "training_low_confidence_share": number,
        "alerts": {"type": "array", "items": alert},
        "recommendation": {"type": "string", "enum": ["keep", "watch", "retrain"]},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "thresholds": {"type": "object", "additionalProperties": {"type": "number"}},
        "window": {"type": "object", "properties": {"hours": number, "reset_at": number,
                                                     "reset_by": {"type": "string", "nullable": True}}},
        "note": {"type": "string"}}}


def _audience_request_schema() -> dict:
    positive = {"type": "number", "exclusiveMinimum": True, "minimum": 0}
    return {"type": "object", "required": ["cost", "revenue"], "additionalProperties": False, "properties": {
        "cost": {**positive, "description": "Cost per contact"},
        "revenue": {**positive, "description": "Revenue (or margin) per responder"},
        "budget": {**positive, "nullable": True, "description": "Most money to spend on contacts"},
        "max_contacts": {"type": "integer", "minimum": 1, "nullable": True},
        "holdout": {"type": "number", "minimum": 0, "maximum": 0.5, "description": "Holdout share (default 0.1)"},
        "seed": {"type": "integer", "minimum": 0, "maximum": 4294967295,
                 "description": "Folds and holdout draw (default 42)"},
        "top_n": {"type": "integer", "minimum": 1, "nullable": True,
                  "description": "Contact the N best customers (default: the most profitable number)"},
        "segments": {"type": "array", "nullable": True, "minItems": 1, "items": {"type": "integer", "minimum": 0},
                     "description": "Contact these segments instead (numbers of the active model's segments)"}},
        "not": {"required": ["top_n", "segments"]}}


def _audience_schema() -> dict:
    number = {"type": "number", "nullable": True}
    return {"type": "object", "required": ["id", "model_version", "auc", "economics", "expected_profit",
                                           "n_targeted", "n_holdout", "segments", "audience"], "properties": {
        "id": {"type": "string"}, "created": {"type": "string"}, "model_version": {"type": "string"},
        "auc": {**number, "description": "Cross-validated AUC of the propensity model"},
        "economics": {"type": "object"}, "expected_profit": {
            **number, "description": "Sum of propensity x revenue - cost over the target group"},
        "n_targeted": {"type": "integer"}, "n_holdout": {"type": "integer"},
        "segments": {"type": "array", "items": {"type": "object"}},
        "audience": {"type": "array", "items": {"type": "object", "properties": {
            "ID": {"type": "integer"}, "segment": {"type": "integer"},
            "group": {"type": "string", "enum": ["target", "holdout"]}, "propensity": {"type": "number"}}}}}}


def _migration_schema() -> dict:
    per_segment = {"type": "object", "description": "Segment number (as text) -> value",
                   "additionalProperties": {"type": "number"}}
    segment_ref = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "enum": ["new"]}]}
    date = {"type": "string", "format": "date"}
    return {"type": "object", "required": ["model_version", "dates", "segments", "snapshots", "transitions", "flows",
                                           "headlines"], "properties": {
        "model_version": {"type": "string"}, "source": {"type": "string"},
        "every": {"type": "string", "nullable": True, "enum": ["month", "quarter", None]},
        "dates": {"type": "array", "items": date}, "rows": {"type": "integer", "minimum": 0},
        "segments": {"type": "array", "items": {"type": "object", "required": ["segment", "name"], "properties": {
            "segment": {"type": "integer", "minimum": 0}, "name": {"type": "string"}}}},
        "snapshots": {"type": "array", "items": {"type": "object", "required": ["date", "customers", "sizes"],
                                                 "properties": {
            "date": date, "customers": {"type": "integer", "minimum": 0},
            "sizes": {**per_segment, "additionalProperties": {"type": "integer", "minimum": 0}},
            "shares": per_segment, "value": {**per_segment, "description": "Spend to date per segment"},
            "period_value": {**per_segment, "description": "Spend in the period ending at the date, per segment"},
            "note": {"type": "string"}}}},
        "transitions": {"type": "array", "items": {"type": "object", "required": [
            "from_date", "to_date", "from", "to", "customers"], "properties": {
            "from_date": date, "to_date": date, "from": segment_ref, "from_name": {"type": "string"},
            "to": {"type": "integer", "minimum": 0}, "to_name": {"type": "string"},
            "customers": {"type": "integer", "minimum": 1},
            "share": {"type": "number", "minimum": 0, "maximum": 1, "description": "Of the from row's customers"}}}},
        "flows": {"type": "array", "items": {"type": "object", "properties": {
            "from_date": date, "to_date": date, "segment": {"type": "integer"}, "name": {"type": "string"},
            "new": {"type": "integer"}, "in": {"type": "integer"}, "out": {"type": "integer"},
            "net": {"type": "integer"}}}},
        "headlines": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}}}}
def _value_schema() -> dict:
    num, nnum = {"type": "number"}, {"type": "number", "nullable": True}
    params = {"type": "object", "properties": {k: num for k in ("r", "alpha", "a", "b")}}
    spend = {"type": "object", "properties": {k: num for k in ("p", "q", "gamma")}}
    segment = {"type": "object", "required": ["segment", "name", "customers", "clv_mean", "clv_total", "clv_low",
                                              "clv_high", "p_alive_mean"], "properties": {
        "segment": {"type": "integer"}, "name": {"type": "string"}, "rank": {"type": "integer", "minimum": 1},
        "customers": {"type": "integer", "minimum": 0}, "clv_mean": num, "clv_total": num,
        "clv_low": nnum, "clv_high": nnum, "clv_mean_low": nnum, "clv_mean_high": nnum,
        "share": {"type": "number", "description": "Share of the total CLV"},
        "p_alive_mean": {"type": "number", "minimum": 0, "maximum": 1},
        "expected_purchases_mean": num, "past_value_mean": num,
        "p_alive_histogram": {"type": "array", "items": {"type": "integer", "minimum": 0},
                              "description": "Customers per tenth of probability alive (0-0.1, ..., 0.9-1)"}}}
    return {"type": "object", "required": ["model_version", "model", "time_unit", "horizon", "discount_rate",
                                           "customers", "params", "log_likelihood", "spend_params"], "properties": {
        "model_version": {"type": "string"}, "model": {"type": "string"},
        "time_unit": {"type": "string", "enum": ["day", "week", "month"]}, "unit_days": num,
        "horizon": {"type": "integer", "minimum": 1, "description": "Time units ahead"},
        "discount_rate": {"type": "number", "description": "Yearly"},
        "calibration_end": {"type": "string", "nullable": True}, "first_date": {"type": "string"},
        "latest_date": {"type": "string"}, "customers": {"type": "integer"}, "repeat_customers": {"type": "integer"},
        "params": params, "params_se": {"type": "object", "additionalProperties": nnum}, "log_likelihood": num,
        "spend_params": spend, "spend_params_se": {"type": "object", "additionalProperties": nnum},
        "spend_customers": {"type": "integer"},
        "totals": {"type": "object", "additionalProperties": nnum},
        "segments": {"type": "array", "nullable": True, "items": segment},
        "holdout": {"type": "object", "nullable": True, "description": "Predicted against actual repeat purchases "
                    "after the calibration end: totals, per frequency bucket, per week (cumulative)",
                    "properties": {"predicted": num, "actual": num, "sentence": {"type": "string"}}},
        "interval_method": {"type": "string"}, "notes": {"type": "array", "items": {"type": "string"}},
        "slipping_customers": {"type": "integer", "nullable": True,
                               "description": "Customers of high past value and low probability alive"}}}


def _customer_value_schema() -> dict:
    num, nnum = {"type": "number"}, {"type": "number", "nullable": True}
    props = {"ID": {"anyOf": [{"type": "integer"}, {"type": "string"}]}, "model_version": {"type": "string"},
             "time_unit": {"type": "string"}, "horizon": {"type": "integer"}, "discount_rate": num,
             "frequency": {"type": "integer", "minimum": 0}, "recency": num, "T": num, "past_value": num,
             "segment": {"type": "integer"}, "segment_name": {"type": "string"}}
    for key in ("p_alive", "expected_purchases", "expected_spend", "clv"):
        props[key] = num
        props[f"{key}_low"], props[f"{key}_high"] = nnum, nnum
    return {"type": "object", "required": ["ID", "model_version", "p_alive", "expected_purchases", "expected_spend",
                                           "clv"], "properties": props}


def _err(description: str, headers: dict | None = None) -> dict:
    out = {"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if headers:
        out["headers"] = headers
    return out


def mapped_fields(svc, live) -> dict | None:
    """Accepted fields of a model trained through a column mapping (None for the canonical fields; cached)."""
    if all(f in scoring.FIELD_BOUNDS for f in live.model.features):
        return None
    from core.reading.mapping import accepted_fields

    def read():
        try:
            return accepted_fields(svc.registry.artifact_json(live.version, "mapping"), live.model.features) or {}
        except RegistryError:
            return {}
    return svc.results.local(("mapping-fields", live.version), read)


def openapi_document(features, *, version: str, max_batch: int = scoring.MAX_BATCH,
                     max_body: int = DEFAULT_MAX_BODY, fields: dict | None = None,
                 categories: dict | None = None) -> dict:
    """The OpenAPI 3.0 document of the API for a model with these features (``fields``: a mapped model's;
    ``categories``: a k-prototypes model's categorical features and the categories it was trained on)."""
    if fields is not None:
        from core.reading.mapping import mapped_schema

        customer = mapped_schema(features, fields)
    else:
        customer = scoring.customer_schema(features)
    customer["description"] = ("One customer: each of the model's features, or the raw columns it derives from "
                               f"(Year_Birth -> Age = {scoring.REFERENCE_YEAR} - Year_Birth; Kidhome + Teenhome "
                               "-> Total_Children; the six Mnt* -> Total_Spending). An explicit feature wins. "
                               "Other fields are ignored; every known numeric field given must be valid.")
    if fields is not None:
        customer["description"] = ("One customer: each of the model's features (a feature clustered on a log "
                                   "scale, NAME_log, may be given in the data's own units as NAME). Other fields are "
                                   "ignored; every known numeric field given must be valid.")
    for name, seen in (categories or {}).items():
        # Text, not an enum: a category the model has not seen (or none) is placed as a missing one.
        customer.setdefault("properties", {})[name] = {
            "type": "string", "description": f"A category of {name}; seen in training: {', '.join(seen) or 'none'}. "
                                             "Another or none counts as missing."}
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
                                     "description": "k-means: 1 - d1/d2 (0 = exactly between two segments); Gaussian "
                                                    "mixture: the largest membership probability; consensus: the "
                                                    "customer's agreement; HDBSCAN and k-prototypes: the "
                                                    "placement's own confidence"},
                      "typicality": {"type": "number", "minimum": 0, "maximum": 1,
                                     "description": "Share of the segment's members farther from its centre"},
                      "distances": {"type": "array", "items": {"type": "number", "minimum": 0},
                                    "description": "Distance to each segment's centre (index = segment), scaled units"},
                      "probabilities": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                                        "description": "Soft models only (Gaussian mixture): membership probability "
                                                       "of each segment (index = segment); they sum to 1"},
                  }}
    limited = {"Retry-After": {"description": "Seconds until requests are accepted again",
                               "schema": {"type": "integer", "minimum": 1}}}
    timing = {"X-Server-Time-ms": {"description": "Time spent in the server, milliseconds",
                                   "schema": {"type": "number"}}}
    r429 = _err("Too many requests from this client", limited)
    r503 = _err("No model can be served: none is active, or the active version's file fails verification "
                "(the message says why)")
    r401 = _err("No valid credentials: send Authorization: Bearer KEY (needed once any API key exists)",
                {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}})
    r403 = _err("The key or session belongs to a role that may not do this (admins only)")
    version_param = {"name": "version", "in": "path", "required": True, "description": "A model version, e.g. v0003",
                     "schema": {"type": "string", "pattern": "^v[0-9]{4,}$"}}

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
                    "401": r401, "429": r429, "503": r503,
                }}},
            f"{API_PREFIX}/health": {"get": {
                "operationId": "health", "security": [],
                "summary": "Whether the active model is what is served (not rate limited, no credentials)",
                "responses": {"200": ok("The active version is served", "Health"),
                              "503": ok("Degraded: nothing is served; `reason` says why", "Health")}}},
            f"{API_PREFIX}/model": {"get": {
                "operationId": "model", "summary": "The active model: features, k, segment names, metrics",
                "responses": {"200": ok("The active model", "Model"), "401": r401, "429": r429, "503": r503}}},
            f"{API_PREFIX}/segments": {"get": {
                "operationId": "segments", "summary": "Profile summary of every segment",
                "responses": {"200": ok("One entry per segment", "Segments"), "401": r401, "429": r429,
                              "503": r503}}},
            f"{API_PREFIX}/models/{{version}}/activate": {"post": {
                "operationId": "activate", "summary": "Make a version the active model (admins; audited)",
                "parameters": [version_param],
                "responses": {"200": ok("Activated", "Activation"), "401": r401, "403": r403,
                              "404": _err("No such version"),
                              "409": _err("The version's file fails verification; the active model is unchanged"),
                              "429": r429, "503": r503}}},
            f"{API_PREFIX}/models/rollback": {"post": {
                "operationId": "rollback", "summary": "Re-activate the previously active version (admins; audited)",
                "responses": {"200": ok("Rolled back", "Activation"), "401": r401, "403": r403,
                              "409": _err("Nothing to roll back to, or its file fails verification"),
                              "429": r429, "503": r503}}},
            f"{API_PREFIX}/monitoring": {"get": {
                "operationId": "monitoring",
                "summary": "Live predictions of the served model: traffic, segment mix and feature PSI vs training, "
                           "low-confidence share, alerts",
                "parameters": [{"name": "hours", "in": "query", "required": False,
                                "description": "Only the last N hours (default: since the window was last reset)",
                                "schema": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 8784}}],
                "responses": {"200": ok("Aggregated counters; no customer is stored", "Monitoring"),
                              "401": r401, "422": _err("hours is not a number of hours"), "429": r429,
                              "503": r503}}},
            f"{API_PREFIX}/audiences": {"post": {
                "operationId": "createAudience",
                "summary": "Plan a campaign like the last one and save its audience with a holdout (analysts; audited)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/AudienceRequest"}}}},
                "responses": {"201": ok("The saved plan with its audience", "Audience"),
                              "400": _err("The body is not valid JSON"), "401": r401,
                              "403": _err("The key or session belongs to a viewer (analysts and admins only)"),
                              "413": _err(f"The body is larger than the limit ({max_body:,} bytes)"),
                              "415": _err("The body is not sent as application/json"),
                              "422": _err("Invalid economics; `errors` names the field"), "429": r429,
                              "503": r503}}},
            f"{API_PREFIX}/migration": {"get": {
                "operationId": "migration",
                "summary": "Segments over time on the active version's order log: snapshots as of month or quarter "
                           "ends scored with the version's model, and the customers moving between segments",
                "parameters": [
                    {"name": "every", "in": "query", "required": False, "description": "Snapshot dates (default month)",
                     "schema": {"type": "string", "enum": ["month", "quarter"]}},
                    {"name": "from", "in": "query", "required": False,
                     "description": "First snapshot date, yyyy-mm-dd (default: the first month or quarter end)",
                     "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "required": False,
                     "description": "Last snapshot date, yyyy-mm-dd (default: the log's latest date)",
                     "schema": {"type": "string", "format": "date"}}],
                "responses": {"200": ok("Snapshots, transitions, flows and the largest moves", "Migration"),
                              "401": r401,
                              "409": _err("The active version was trained on a customer table: no purchase dates"),
                              "422": _err("A date outside the log or not a date, or every is not month or quarter; "
                                          "`errors` names the field"),
                              "429": r429, "503": r503}}},
            f"{API_PREFIX}/value": {"get": {
                "operationId": "value",
                "summary": "Customer value of the active version (a transaction log): BG/NBD + Gamma-Gamma "
                           "parameters, CLV per segment with 95% intervals, the horizon and the calibration check",
                "responses": {"200": ok("The stored value results (computed with the defaults on first use)",
                                        "Value"),
                              "401": r401,
                              "409": _err("No value for the active version: it was not trained on a transaction "
                                          "log, its log is gone, or a model does not fit (the message says which)"),
                              "429": r429, "503": r503}}},
            f"{API_PREFIX}/value/customers/{{id}}": {"get": {
                "operationId": "customerValue",
                "summary": "One known customer's probability alive, expected purchases and spend, and CLV with "
                           "95% intervals",
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "description": "The customer's ID in the log (whole-number IDs match their number)",
                                "schema": {"type": "string"}}],
                "responses": {"200": ok("The customer's value", "CustomerValue"), "401": r401,
                              "404": _err("No customer with that ID"),
                              "409": _err("No value for the active version (see GET /value)"),
                              "429": r429, "503": r503}}},
            f"{API_PREFIX}/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3 document", "content": {
                    "application/json": {"schema": {"type": "object"}}}}, "429": r429, "503": r503}}},
        },
        "security": [{"bearerAuth": []}],
        "components": {"securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer",
            "description": "An API key from `python -m core apikeys create --name NAME --role ROLE`; needed once any "
                           "key exists (admin endpoints: an admin key or admin session, always)"}},
                       "schemas": {
            "Customer": customer,
            "Prediction": prediction,
            "Predictions": {"type": "object", "required": ["model_version", "predictions"], "properties": {
                "model_version": {"type": "string"},
                "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}}},
            "Health": {"type": "object", "required": ["status", "model_version", "active", "serving", "reason"],
                       "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"],
                           "description": "ok only while the active version is what is served"},
                "model_version": {"type": "string", "nullable": True, "description": "The version served (= serving)"},
                "active": {"type": "string", "nullable": True, "description": "The version activated in the registry"},
                "serving": {"type": "string", "nullable": True, "description": "The version served; null when degraded"},
                "reason": {"type": "string", "nullable": True, "description": "Why nothing is served (degraded only)"},
                "warning": {"type": "string", "description": "The active version is served from this server's "
                                                             "verified in-memory copy: its file fails verification now"},
                "worker": {"type": "string", "description": "An opaque name of the worker process that answered"},
                "setup_warnings": {"type": "array", "items": {"type": "string"}, "description":
                                   "What in this deployment's setup needs attention (no user yet, an "
                                   "unreachable SEGMENTLENS_SPARK_MASTER), one line each"}}},
            "Activation": {"type": "object", "required": ["active"], "properties": {
                "active": {"type": "string", "description": "The version active now"},
                "previous": {"type": "string", "nullable": True, "description": "The version active before"}}},
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
                    "response_rate": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
                    "rule": {"type": "object", "description": "Threshold rule of the segment (IMM tree)",
                             "properties": {"rule": {"type": "string"}, "sql": {"type": "string"},
                                            "pandas": {"type": "string"},
                                            "fidelity": {"type": "number", "nullable": True},
                                            "precision": {"type": "number", "nullable": True}}}}}},
                "rules": {"type": "object", "properties": {
                    "method": {"type": "string"}, "fidelity": {"type": "number", "nullable": True},
                    "price": {"type": "number", "nullable": True}, "n_customers": {"type": "integer"}}}}},
            "Error": _error_schema(),
            "Monitoring": _monitoring_schema(),
            "AudienceRequest": _audience_request_schema(),
            "Audience": _audience_schema(),
            "Migration": _migration_schema(),
            "Value": _value_schema(),
            "CustomerValue": _customer_value_schema(),
        }},
    }
