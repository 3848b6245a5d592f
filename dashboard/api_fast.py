"""Keyed single predictions answered beneath Flask's request machinery (issue 29).

``POST /api/v1/predict`` with an API key is the API's hot path: scoring one customer takes about 10 us,
and Flask's request context, URL matching and a dozen before/after hooks (sessions, the sign-in guard,
Dash's router, compression negotiation) cost about 20 times that. :class:`KeyedPredict` is a WSGI layer
inside the security middleware (proxy handling and body limits run first) that answers the plain case
itself and hands everything else to Flask unchanged:

- it answers only a request that Flask would answer 200: a valid ``Bearer`` key, a declared body length
  within the API's limit, ``Content-Type: application/json``, a body that
  :func:`dashboard.api.predicted` scores (the function the Flask route calls), an answer too small to
  compress, and a rate limiter that lets it through;
- anything else (no or wrong key, a session, bad JSON, invalid values, no model, a throttled client, an
  unexpected error) goes to Flask with the body put back, so every refusal keeps its one implementation
  and its exact message. The rate limiter counts such a request once: the verdict travels in the
  environ (:data:`dashboard.api.RATE_COUNTED`);
- it does what the hooks would do for the answer it gives: the same headers in the same order (the
  API's security headers, ``Cache-Control: no-store``, ``X-Server-Time-ms``, ``Vary``), the prediction
  counters and the latency histogram, and no cookie (a keyed call never has one).

tests/test_api_fast_path.py checks that its answers equal Flask's byte for byte, header for header, and
that a new request hook fails a test until this layer is reviewed for it.
"""
from __future__ import annotations

import io
import logging
import time

import flask

from .api import PREDICT_PATH, RATE_COUNTED, SETTINGS_KEY, Refused, predicted
from .monitoring import monitor_of
from .security import COMPRESS_MIN_SIZE, api_security_headers

__all__ = ["KeyedPredict", "install_keyed_predict", "COVERED_HOOKS"]

_log = logging.getLogger("segmentlens.api")

#: The app's request hooks this layer stands in for (by qualified name). A hook not listed here fails
#: tests/test_api_fast_path.py: whoever adds one decides whether a keyed prediction needs it too.
COVERED_HOOKS = {
    "before": {"install_monitoring.<locals>._monitor_start", "Dash._setup_server", "Dash.enable_pages.<locals>.router_sync",
               "install_security.<locals>.limit_body", "_guard", "_create_blueprint.<locals>._start"},
    "after": {"_Compressor", "install_monitoring.<locals>._monitor_stop", "install_security.<locals>.add_headers",
              "LoginManager._update_remember_cookie", "_create_blueprint.<locals>._stamp"},
}


class KeyedPredict:
    """WSGI layer: a keyed prediction Flask would answer 200 is answered here; every other request passes."""

    def __init__(self, app, server: flask.Flask):
        self.app, self.server = app, server
        self.headers = [*api_security_headers(), ("Vary", "Accept-Encoding")]

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PREDICT_PATH or environ.get("REQUEST_METHOD") != "POST" \
                or "HTTP_AUTHORIZATION" not in environ:
            return self.app(environ, start_response)
        t0 = time.perf_counter()
        try:
            answer = self._answer(environ)
        except Exception:  # never fail here: Flask answers (and logs) whatever this could not
            _log.debug("keyed prediction left to Flask", exc_info=True)
            answer = None
        if answer is None:
            return self.app(environ, start_response)
        body, predictions = answer
        monitor = monitor_of(self.server)
        if monitor is not None:
            monitor.record(self.server.extensions["segmentlens"], predictions.version, predictions.rows,
                           predictions.segments, predictions.confidence, predictions.typicality, "api")
            monitor.metrics.latency_child(PREDICT_PATH, 200).observe(time.perf_counter() - t0)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store"),
                                  ("X-Server-Time-ms", f"{(time.perf_counter() - t0) * 1000:.3f}"), *self.headers])
        return [body]

    def _answer(self, environ):
        """(body, predictions) when this layer answers, else None (the body put back for Flask)."""
        cfg = self.server.extensions[SETTINGS_KEY]
        length = environ.get("CONTENT_LENGTH")
        content_type = environ.get("CONTENT_TYPE", "")
        if cfg.accounts is None or not (length or "").isdigit() \
                or content_type.partition(";")[0].strip().lower() != "application/json":
            return None  # the first keyed call (Flask opens the key store), a chunked body or odd length, not JSON
        length = int(length)
        if length > cfg.max_body:
            return None
        # The key before the body: an unknown caller's body is never read here (Flask refuses it unread).
        scheme, _, key = environ["HTTP_AUTHORIZATION"].strip().partition(" ")
        if scheme.lower() != "bearer" or cfg.accounts.verify_key(key.strip()) is None:
            return None
        data = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(data)  # whoever answers next reads the same body
        try:
            predictions = predicted(cfg, self.server.extensions["segmentlens"], data)
        except Refused:
            return None
        body = predictions.text.encode()
        if len(body) >= COMPRESS_MIN_SIZE:
            return None  # compressed for a client that asks: Flask-Compress negotiates it
        if cfg.limiter is not None:  # last: a request left to Flask before this point is counted there
            verdict = environ[RATE_COUNTED] = cfg.limiter.hit(environ.get("REMOTE_ADDR") or "unknown")
            if not verdict[0]:
                return None
        return body, predictions


def install_keyed_predict(server: flask.Flask) -> None:
    """Put :class:`KeyedPredict` around ``server.wsgi_app`` (before the security middleware wraps both)."""
    server.wsgi_app = KeyedPredict(server.wsgi_app, server)
