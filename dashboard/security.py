"""HTTP hardening of the one Flask server: body limits, security headers, proxies, opaque job handles.

Everything here is a property of the HTTP layer, not of a page: it is installed once by
``factory.create_app`` and holds for the dashboard, its callbacks and the API alike.

- Body limits are enforced before a body is read: a declared ``Content-Length`` over the
  route's limit is refused with 413 at once, and a chunked body is counted as it is read (never
  kept here) and cut off as soon as it passes the limit. On the Dash route the limit is the
  caller's: the sign-in guard (dashboard.auth) checks the session before any byte is read, gives
  the upload-sized limit only to analysts and admins and only for upload callbacks, and a small
  one (``SEGMENTLENS_MAX_CALLBACK_BODY``, 2 MB) to every other callback request.
- Security headers on every response, with a Content-Security-Policy that Dash and Plotly work
  under (inline scripts by hash; Plotly needs inline styles and, for WebGL, ``blob:`` workers). The API's
  JSON answers (and /metrics) get a stricter, shorter policy: none of the page's allowances.
- ``X-Forwarded-For`` is trusted only from the proxies listed in ``SEGMENTLENS_TRUSTED_PROXIES``.
- Dash's background-callback handles carry the job's process id; the browser gets an opaque
  token instead (no PIDs in responses), mapped back on the way in.
- Compression and caching (:func:`install_delivery`): brotli or gzip as the browser asks (identity
  when it does not), static assets compressed once per process, fingerprinted assets cached for a
  year (``immutable``), pages revalidated on every visit. Compression runs after every other
  response hook, so the security headers (CSP hashes come from Dash's inline scripts, not from the
  body) and the job-handle rewrite see the plain body.
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import flask
from dash.exceptions import DependencyException
from dash.fingerprint import build_fingerprint, check_fingerprint
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from .limits import API_PREFIX, parse_size

__all__ = ["install_security", "install_delivery", "api_security_headers", "COMPRESS_MIN_SIZE", "slim_validation_layout", "body_limits", "narrow_body_limit", "DASH_UPDATE_PATH",
           "LISTEN_ENV", "LISTEN_POLICY_KEY", "listen_policy", "local_only", "choose_encoding", "IMMUTABLE"]

DASH_UPDATE_PATH = "/_dash-update-component"
LISTEN_ENV = "SEGMENTLENS_LISTEN"
LISTEN_POLICY_KEY = "segmentlens_listen_policy"
_SMALL_BODY = 64 * 1024  # sign-in form and anything else that is not an upload or the API
# Callback requests that carry no upload: a lasso selection of a few thousand points is well under it.
_CALLBACK_BODY = 2 * 1024 * 1024
_COUNTED_KEY = "segmentlens.counted_input"
_JOB_RE = re.compile(r'"job"\s*:\s*"(\d+)\.([0-9a-f]{16,})"')
_TOKEN_RE = re.compile(r"^j([0-9a-f]+)\.([0-9a-f]{16,})$")
IMMUTABLE = "public, max-age=31536000, immutable"
_SUITES = "/_dash-component-suites/"
_STATIC_PREFIXES = (_SUITES, "/assets/", "/vendor/")
# Dynamic responses are compressed on every request (fast levels); static assets once per process.
_DYNAMIC_BR, _DYNAMIC_GZIP = 4, 6
COMPRESS_MIN_SIZE = 500  # bytes: smaller bodies are sent as they are (compression would gain a few bytes)
_STATIC_BR, _STATIC_GZIP = 6, 9
_STATIC_CACHE_BYTES = 64 * 1024 * 1024


def body_limits() -> dict[str, int]:
    """Largest request body per kind of route, in bytes, from the environment.

    The Dash route carries uploads base64-encoded inside JSON (4/3 of the file plus the
    callback's other inputs), so its largest limit (``dash``, upload callbacks of analysts and
    admins) follows ``SEGMENTLENS_MAX_UPLOAD_MB``; every other callback request gets ``callback``.
    """
    upload_mb = float(os.environ.get("SEGMENTLENS_MAX_UPLOAD_MB") or 50)
    try:
        callback = parse_size(os.environ.get("SEGMENTLENS_MAX_CALLBACK_BODY"), _CALLBACK_BODY)
    except ValueError:
        raise ValueError(f"SEGMENTLENS_MAX_CALLBACK_BODY={os.environ.get('SEGMENTLENS_MAX_CALLBACK_BODY')!r} is "
                         "not a size like 2097152, 512K or 2M") from None
    dash_limit = int(upload_mb * 1024 * 1024 * 4 / 3) + 1024 * 1024
    return {
        "dash": max(dash_limit, callback),
        "callback": min(callback, dash_limit),
        "api": parse_size(os.environ.get("SEGMENTLENS_MAX_BODY")),
        "other": _SMALL_BODY,
    }


def _limit_for(path: str, limits: dict[str, int]) -> int:
    if path == DASH_UPDATE_PATH:
        return limits["dash"]
    if path.startswith(API_PREFIX + "/"):
        return limits["api"]
    return limits["other"]


def _csp(app) -> str:
    # Dash writes a few inline <script> blocks (config, renderer start-up): allowed by hash only.
    script_hashes = " ".join(app.csp_hashes())  # already quoted: 'sha256-...'
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' {script_hashes} 'unsafe-eval'",  # plotly.js compiles some WebGL shaders with Function()
        "style-src 'self' 'unsafe-inline'",  # plotly.js and React set inline styles
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


# The API's answers are JSON, never a document with scripts or styles: their policy allows nothing the page's
# needs (script hashes, 'unsafe-eval', inline styles, data: and blob:), and is a fifth of its length, which
# every client parses on every answer (issue 29).
_API_CSP = "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"


def api_security_headers() -> list[tuple[str, str]]:
    """The security headers of the API's JSON answers (and /metrics), in the order they are sent."""
    return list(_security_headers(None, _API_CSP).items())


def _security_headers(app, csp: str | None = None) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp or _csp(app),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }


class _TrustedProxies:
    """Apply ProxyFix only when the direct peer is one of the configured proxies."""

    def __init__(self, app, proxies: list):
        self.app = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=0, x_port=0, x_prefix=0)
        self.proxies = proxies

    def _trusted(self, addr: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(addr or "")
        except ValueError:
            return False
        return any(ip in net for net in self.proxies)

    def __call__(self, environ, start_response):
        if self.proxies and self._trusted(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)


def parse_proxies(text: str | None) -> list:
    """``SEGMENTLENS_TRUSTED_PROXIES``: comma-separated addresses or networks (e.g. ``10.0.0.5, 10.1.0.0/16``)."""
    out = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"SEGMENTLENS_TRUSTED_PROXIES: {part!r} is not an IP address or network") from None
    return out


class _OpaqueJobs:
    """Replace the process id in Dash's background-job handles with a keyed token, and back.

    Dash hands the browser ``"<pid>.<signature>"``; the pid is XOR-ed with a mask derived from the
    server's secret and the handle's own signature, so every worker can map it back and the
    browser never learns a process id.
    """

    def __init__(self, app, secret: bytes):
        self.app, self.secret = app, secret

    def _mask(self, signature: str) -> int:
        return int.from_bytes(hmac.new(self.secret, signature.encode(), hashlib.sha256).digest()[:4], "big")

    def hide(self, pid: str, signature: str) -> str:
        return f"j{int(pid) ^ self._mask(signature):x}.{signature}"

    def reveal(self, token: str) -> str:
        match = _TOKEN_RE.match(token)
        if not match:
            return token  # not ours: Dash's own signature check refuses it
        return f"{int(match.group(1), 16) ^ self._mask(match.group(2))}.{match.group(2)}"

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != DASH_UPDATE_PATH:
            return self.app(environ, start_response)
        query = environ.get("QUERY_STRING", "")
        if "job" in query.lower():
            pairs = [(k, self.reveal(v) if k in ("job", "oldJob", "cancelJob") else v)
                     for k, v in parse_qsl(query, keep_blank_values=True)]
            environ["QUERY_STRING"] = urlencode(pairs)
        return self.app(environ, start_response)

    def rewrite_response(self, response: flask.Response) -> None:
        if response.direct_passthrough or response.mimetype != "application/json":
            return
        body = response.get_data(as_text=True)
        if '"job"' not in body:
            return
        response.set_data(_JOB_RE.sub(lambda m: f'"job":{json.dumps(self.hide(m.group(1), m.group(2)))}', body))


class _CountedInput:
    """A chunked request body, counted as the application reads it and cut off past ``limit`` (never kept)."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.count = stream, limit, 0

    def _seen(self, data: bytes) -> bytes:
        self.count += len(data)
        if self.count == self.limit and data and self.stream.read(1):
            self.count += 1  # readers stop at the limit (werkzeug's stream does): look one byte further
        if self.count > self.limit:
            raise RequestEntityTooLarge(f"the request body is larger than this address takes ({self.limit:,} bytes "
                                        "at most)")
        return data

    def read(self, size: int = -1) -> bytes:
        # Never more than one byte past the limit in one call, whatever the reader asks for.
        room = self.limit + 1 - self.count
        return self._seen(self.stream.read(room if size is None or size < 0 else min(size, room)))

    def readline(self, size: int = -1) -> bytes:
        room = self.limit + 1 - self.count
        return self._seen(self.stream.readline(room if size is None or size < 0 else min(size, room)))

    def __iter__(self):
        while True:
            line = self.readline(65536)
            if not line:
                return
            yield line


class _BodyLimit:
    """Refuse bodies over the route's limit before the application reads a byte of them.

    A declared ``Content-Length`` over the limit is answered with 413 at once. A chunked body
    (no length) is handed on wrapped in :class:`_CountedInput`, which counts what is read and
    refuses the byte past the limit, holding nothing itself; the sign-in guard answers an anonymous
    caller before reading any of it. Doing this at the WSGI layer means no code that touches the
    request early (Dash's page router, extensions) can bypass the limit.
    """

    def __init__(self, app, limits: dict[str, int], headers):
        self.app, self.limits, self.headers = app, limits, headers

    def _refuse(self, environ, start_response, path: str, limit: int, length: int | None):
        said = f"the request body has {length:,} bytes" if length is not None else "the request body is too large"
        message = f"{said}; this address takes at most {limit:,}"
        if path.startswith(API_PREFIX + "/") or path == DASH_UPDATE_PATH:
            body = json.dumps({"error": "payload_too_large", "message": message, "status": 413}).encode()
            mimetype = "application/json"
        else:
            body, mimetype = f"413 Payload Too Large: {message}\n".encode(), "text/plain"
        response = flask.Response(body, 413, mimetype=mimetype, headers={**self.headers(), "Connection": "close"})
        return response(environ, start_response)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        limit = _limit_for(path, self.limits)
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > limit:
            return self._refuse(environ, start_response, path, limit, length)
        if length < 0 and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            environ["wsgi.input"] = environ[_COUNTED_KEY] = _CountedInput(environ["wsgi.input"], limit)
        return self.app(environ, start_response)


def _loopback_address(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_policy(listen: str | None = None, proxies: str | None = None) -> bool | None:
    """Whether the server is reachable from this machine only, as it was started.

    ``listen`` is ``SEGMENTLENS_LISTEN`` (set by gunicorn.conf.py from gunicorn's ``--bind`` and by
    app.py from ``HOST``; an operator may set it): comma-separated addresses such as ``127.0.0.1:8050``,
    ``[::1]:80`` or ``unix:/run/x.sock``. Every one must be a loopback TCP address; a unix socket counts
    as remote (a reverse proxy forwards the world to it), and so does any configured trusted proxy.

    Returns
    -------
    bool or None
        True or False when decided; None when nothing says (then the request's own server socket
        decides, see :func:`local_only`).
    """
    if (proxies or "").strip():
        return False
    if not (listen or "").strip():
        return None
    for bind in (part.strip() for part in listen.split(",") if part.strip()):
        if bind.startswith(("unix:", "fd://")) or bind.startswith("/"):
            return False
        host = bind.rsplit(":", 1)[0] if bind.count(":") == 1 or bind.startswith("[") else bind
        if not _loopback_address(host):
            return False
    return True


def local_only(environ: dict, policy: bool | None) -> bool:
    """The open-mode rule for one request: the startup ``policy``, else the address of the server socket
    the request came in on (gunicorn's or werkzeug's), never a header. Unknown counts as remote."""
    if policy is not None:
        return policy
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    try:
        family, local = sock.family, sock.getsockname()
    except (AttributeError, OSError):
        return False
    if family not in (socket.AF_INET, socket.AF_INET6):
        return False  # a unix socket: whoever the proxy in front lets in
    return _loopback_address(str(local[0]))


def narrow_body_limit(limit: int, request: flask.Request | None = None) -> None:
    """Lower the current request's body limit to ``limit`` before its body is read (Flask's reads, and the
    count of a chunked body, which is refused one byte past it rather than cut off silently)."""
    request = request if request is not None else flask.request._get_current_object()  # one context lookup
    current = request.max_content_length
    request.max_content_length = limit if current is None else min(current, limit)
    counted = request.environ.get(_COUNTED_KEY)
    if counted is not None:
        counted.limit = min(counted.limit, limit)


def install_security(app, secret: bytes) -> None:
    """Install body limits, headers, proxy handling, opaque job handles and quiet 404s on ``app.server``."""
    server: flask.Flask = app.server
    limits = body_limits()
    server.extensions["segmentlens_body_limits"] = limits
    headers: dict[str, str] = {}
    items: list[tuple[str, str, str]] = []  # (name, value, lower-case name) of ``headers``, made with it

    def security_headers(fresh: bool = False) -> dict[str, str]:
        # Dash adds inline scripts (clientside callbacks, the page router's) while it sets itself up on
        # the first requests: a page's policy is computed afresh (hashing a few scripts takes
        # microseconds), and other responses reuse the last one.
        if fresh or not headers:
            headers.update(_security_headers(app))
            items[:] = [(name, value, name.lower()) for name, value in headers.items()]
        return headers

    api_items = [(name, value, name.lower()) for name, value in api_security_headers()]
    install_delivery(server)  # compression and cache lifetimes, run after every other response hook
    load_plotly_early(app)
    jobs = _OpaqueJobs(server.wsgi_app, secret)
    server.extensions[LISTEN_POLICY_KEY] = listen_policy(os.environ.get(LISTEN_ENV),
                                                         os.environ.get("SEGMENTLENS_TRUSTED_PROXIES"))
    server.wsgi_app = _TrustedProxies(_BodyLimit(jobs, limits, security_headers),
                                      parse_proxies(os.environ.get("SEGMENTLENS_TRUSTED_PROXIES")))

    @server.before_request
    def limit_body():
        # The WSGI layer already refused what is over the limit; this keeps Flask's own reads bounded too.
        request = flask.request._get_current_object()
        narrow_body_limit(_limit_for(request.path, limits), request)

    @server.after_request
    def add_headers(response: flask.Response):
        # Only the headers a handler did not set itself: one pass over the response's headers, then
        # one extend (six setdefault calls each scanned the list again).
        path = flask.request.path
        html = response.mimetype == "text/html"
        if html:
            security_headers(fresh=True)
        elif not items:
            security_headers()
        api = not html and (path.startswith(API_PREFIX + "/") or path == "/metrics")  # data, never a page
        chosen = api_items if api else items
        present = {name.lower() for name, _value in response.headers}
        response.headers.extend([(name, value) for name, value, lower in chosen if lower not in present])
        if path == DASH_UPDATE_PATH:
            jobs.rewrite_response(response)
        return response

    @server.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        limit = flask.request.max_content_length or _limit_for(flask.request.path, limits)  # the caller's limit
        message = exc.description if "bytes" in str(exc.description) else \
            f"the request body is larger than this address takes ({limit:,} bytes at most)"
        if flask.request.path.startswith(API_PREFIX + "/") or flask.request.path == DASH_UPDATE_PATH:
            response = flask.jsonify(error="payload_too_large", message=message, status=413)
        else:
            response = flask.Response(f"413 Payload Too Large: {message}\n", 413, mimetype="text/plain")
        response.status_code = 413
        response.headers["Connection"] = "close"  # the rest of the body is not read: end the connection
        return response

    @server.errorhandler(DependencyException)
    def unknown_component_suite(_exc):
        # Dash raises this for a package it does not serve: a wrong URL, not a server fault.
        return flask.Response("404 Not Found\n", 404, mimetype="text/plain")

    @server.errorhandler(NotFound)
    def not_found(exc):
        if flask.request.path.startswith(API_PREFIX + "/"):
            return flask.jsonify(error="not_found", message="no such endpoint", status=404), 404
        return flask.Response("404 Not Found\n", 404, mimetype="text/plain")


# ---------------------------------------------------------------------------- compression and caching
def _cache_control(path: str, args, response: flask.Response) -> str | None:
    """The Cache-Control a response should carry (None: leave it as it is)."""
    if response.status_code not in (200, 304):
        return None
    if path.startswith(_SUITES) and check_fingerprint(path[len(_SUITES):])[1]:
        return IMMUTABLE  # Dash names the file after its package version and modification time
    if path.startswith("/assets/") and args.get("m"):
        return IMMUTABLE  # Dash adds ?m=<modification time> to every asset it links
    if response.mimetype == "text/html" and "Cache-Control" not in response.headers:
        return "no-cache"  # every page load revalidates: a new model or release shows at once
    return None


def choose_encoding(offered: tuple[str, ...], accept_encoding: str | None) -> str | None:
    """The content coding to send: the one of ``offered`` the client rates highest (RFC 9110 section 12.5.3).

    Ties go to the server's order in ``offered``; ``q=0`` refuses a coding; ``*`` rates every coding the
    client did not name; an absent or empty header, or no acceptable coding, means identity (None).

    Parameters
    ----------
    offered : tuple of str
        Codings this server can produce, preferred first (e.g. ``("br", "gzip")``).
    accept_encoding : str or None
        The request's ``Accept-Encoding`` header.

    Returns
    -------
    str or None
    """
    rated: dict[str, float] = {}
    for part in (accept_encoding or "").lower().split(","):
        name, *params = (piece.strip() for piece in part.split(";"))
        if not name:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0  # an unreadable weight: do not guess that the client wants it
                q = q if 0.0 <= q <= 1.0 else 0.0
        rated[name] = max(q, rated.get(name, 0.0)) if name in rated else q
    best, best_q = None, 0.0
    for coding in offered:
        q = rated.get(coding, rated.get("*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    return best


class _Compressor:
    """Brotli/gzip for every compressible response; static assets compressed once per process.

    Dynamic responses (pages, callback and API JSON) go through Flask-Compress at fast levels.
    A static asset is the same bytes for every visitor, so its compressed copy is kept in a
    small per-process LRU keyed by content digest and algorithm (higher levels, paid once).
    """

    def __init__(self, server: flask.Flask):
        from flask_compress import Compress

        server.config.update(COMPRESS_REGISTER=False, COMPRESS_ALGORITHM=["br", "gzip"],
                             COMPRESS_ALGORITHM_STREAMING=["br", "deflate"], COMPRESS_BR_LEVEL=_DYNAMIC_BR,
                             COMPRESS_LEVEL=_DYNAMIC_GZIP, COMPRESSCOMPRESS_MIN_SIZE=COMPRESS_MIN_SIZE)
        self.compress = Compress(server)
        self.mimetypes = set(server.config["COMPRESS_MIMETYPES"])
        self.choose = choose_encoding  # our own negotiation: no private Flask-Compress name to break on upgrade
        self._store: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def _static(self, data: bytes, algorithm: str) -> bytes:
        key = (algorithm, hashlib.blake2b(data, digest_size=16).digest())
        with self._lock:
            blob = self._store.get(key)
            if blob is not None:
                self._store.move_to_end(key)
                return blob
        if algorithm == "br":
            import brotli

            blob = brotli.compress(data, quality=_STATIC_BR)
        else:
            import gzip

            blob = gzip.compress(data, _STATIC_GZIP, mtime=0)
        with self._lock:
            if key not in self._store:
                self._store[key] = blob
                self._bytes += len(blob)
            while self._bytes > _STATIC_CACHE_BYTES and len(self._store) > 1:
                _, old = self._store.popitem(last=False)
                self._bytes -= len(old)
        return blob

    def __call__(self, response: flask.Response) -> flask.Response:
        request = flask.request._get_current_object()  # one context lookup, not one per attribute
        path = request.path
        if response.mimetype == "application/json" and not response.is_streamed \
                and (response.content_length or 0) < COMPRESS_MIN_SIZE and not path.startswith(_STATIC_PREFIXES):
            # A small JSON answer (a prediction, an error) is never compressed and gets no cache policy:
            # only the Vary that Flask-Compress would add, without its negotiation (issue 29).
            vary = response.headers.get("Vary")
            if not vary:
                response.headers["Vary"] = "Accept-Encoding"
            elif "accept-encoding" not in vary.lower():
                response.headers["Vary"] = f"{vary}, Accept-Encoding"
            return response
        policy = _cache_control(path, request.args, response)
        if policy:
            response.headers["Cache-Control"] = policy
        if response.mimetype == "text/html" and "no-store" in response.headers.get("Cache-Control", ""):
            # The sign-in page carries a CSRF token next to text from the URL (``next``): compressing
            # both together would let a network observer guess the token from sizes (BREACH).
            return response
        if not request.path.startswith(_STATIC_PREFIXES) or response.status_code != 200 \
                or response.mimetype not in self.mimetypes or "Content-Encoding" in response.headers:
            return self.compress.after_request(response)
        vary = response.headers.get("Vary")
        if not vary:
            response.headers["Vary"] = "Accept-Encoding"
        elif "accept-encoding" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Accept-Encoding"
        algorithm = self.choose(("br", "gzip"), request.headers.get("Accept-Encoding", ""))
        if algorithm is None:
            return response
        response.direct_passthrough = False  # send_file hands a file wrapper: read it
        data = response.get_data()
        if len(data) < COMPRESS_MIN_SIZE:
            return response
        response.set_data(self._static(data, algorithm))
        response.headers["Content-Encoding"] = algorithm
        etag, weak = response.get_etag()
        if etag and not weak:
            response.set_etag(f"{etag}:{algorithm}")
        # The browser revalidates an unfingerprinted asset (plotly.min.js) with the ETag it was given:
        # answer 304 here, since the handler compared it with the uncompressed one.
        return response.make_conditional(request)


def plotly_script_url(prefix: str = "/") -> str:
    """The fingerprinted address of the plotly.js bundle Dash serves (``plotly/package_data/plotly.min.js``).

    Named after plotly's version and the file's modification time, as Dash names its own scripts, so
    the browser keeps it for a year (:data:`IMMUTABLE`) instead of revalidating the unversioned
    address that dcc.Graph loads by itself.
    """
    import plotly

    modified = int((Path(plotly.__file__).parent / "package_data" / "plotly.min.js").stat().st_mtime)
    return f"{prefix}_dash-component-suites/plotly/{build_fingerprint('package_data/plotly.min.js', plotly.__version__, modified)}"


def load_plotly_early(app) -> None:
    """Load plotly.js with the page (deferred) instead of after its first chart arrives (issue 29).

    dcc.Graph fetches plotly.js only when a graph is first rendered, i.e. after the page's layout and
    its first callback came back, and then the browser spends most of a cold visit compiling those
    4.6 MB. As a deferred script in the page's head it downloads alongside Dash's own scripts and is
    compiled while the layout and callbacks travel; dcc.Graph uses ``window.Plotly`` when it is there,
    and assets/segmentlens-plotly.js makes it wait for this copy when a chart comes first (never two
    copies). Same origin, so the Content-Security-Policy (``script-src 'self'``) allows it.
    """
    tag = (f'<script defer data-plotly-early src="{plotly_script_url(app.config.requests_pathname_prefix)}">'
           "</script>")
    if tag not in app.index_string:
        app.index_string = app.index_string.replace("{%css%}", "{%css%}\n        " + tag, 1)


def install_delivery(server: flask.Flask) -> None:
    """Compress responses (brotli or gzip, as the browser asks) and set cache lifetimes.

    The hook is placed to run after every other ``after_request`` hook, the blueprints' included,
    so whatever reads or rewrites a body does so before it is compressed.
    """
    compressor = _Compressor(server)
    server.extensions["segmentlens_compressor"] = compressor
    # Flask runs app-level hooks last-registered first, after the blueprints': index 0 runs last of all.
    server.after_request_funcs.setdefault(None, []).insert(0, compressor)


def slim_validation_layout(layout):
    """The components of Dash's validation layout with their ids only, for the page's config.

    With ``suppress_callback_exceptions`` off, Dash writes every page's whole layout into each
    page's HTML (figures included, about 0.5 MB) so that the browser can check callbacks against
    ids of other pages. The check needs each id and its component type, nothing else.
    """
    from dash import html
    from dash.development.base_component import Component

    stubs = []
    for component in _walk(layout):
        if getattr(component, "id", None) is None:
            continue
        stub = copy.copy(component)
        for name in list(stub.__dict__):
            if name != "id" and (name in getattr(stub, "_prop_names", ()) or name.startswith(("data-", "aria-"))):
                delattr(stub, name)
        stubs.append(stub)
    return html.Div(stubs) if isinstance(layout, Component) else layout


def _walk(node):
    """Every Dash component under ``node`` (itself included), depth first."""
    from dash.development.base_component import Component

    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, Component):
            yield item
            for name in getattr(item, "_children_props", []) + ["children"]:
                child = getattr(item, name.split(".")[0].replace("[]", "").replace("{}", ""), None)
                if child is not None:
                    stack.append(child)
