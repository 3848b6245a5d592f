"""Sign-in, roles and their enforcement on the server (Flask-Login sessions).

This is the dashboard's one place for "who is calling and what may they do".
Pages ask :func:`permission` to show a control disabled with the reason; the
server enforces the same rule on every ``/_dash-update-component`` request
(:data:`PROTECTED_OUTPUTS`), so hiding a button is never what protects an action.

Modes, decided per request:

- **open**: no user exists and the server listens on a loopback address only (the quick
  start): everybody is treated as a local admin, as before accounts existed. Where the server
  listens is decided by how it was started (``SEGMENTLENS_LISTEN``, which gunicorn.conf.py and
  app.py set from the bind address; else the socket the request came in on), never by a request
  header; a unix socket or a trusted proxy counts as remote (dashboard.security.listen_policy).
- **read-only**: no user exists and the server listens on any other address: every
  page can be viewed, no state changes, and the pages say how to add an admin.
- **signed-in**: at least one user exists: every page and callback needs a session;
  state-changing callbacks need the role :data:`core.access.accounts.ACTIONS` names.
"""
from __future__ import annotations

import datetime
import hmac
import json
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit

import flask
import flask_login
from flask.sessions import SecureCookieSessionInterface
from markupsafe import escape
from werkzeug.exceptions import RequestEntityTooLarge

from core.access.accounts import ACTIONS, NOBODY, AccountStore, Caller, allowed
from core.access.accounts import refusal as _role_refusal
from core.access.audit import AuditLog

from . import ids
from .limits import API_PREFIX, RateLimiter, parse_rate_limit
from .security import DASH_UPDATE_PATH, LISTEN_POLICY_KEY, local_only, narrow_body_limit

__all__ = ["permission", "current_role", "actor", "mode", "install_auth", "PROTECTED_OUTPUTS", "TRIGGER_ACTIONS",
           "LOGIN_PATH", "LOGOUT_PATH", "ADD_ADMIN_HINT", "request_caller", "job_caller", "CallbackSpec"]

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
ADD_ADMIN_HINT = "python -m core users add NAME --role admin"
#: A callback that writes any of these outputs changes state: the least action it needs.
PROTECTED_OUTPUTS = {
    ids.PROFILES_NAMES: "rename",
    ids.DATA_UPLOAD_STORE: "upload",
    ids.DATA_RETRAIN_STORE: "retrain",
    ids.DATA_SEED_DOWNLOAD: "export_model",  # pickles of the model: analysts and admins
    ids.DATA_ACTION_STORE: "activate",  # activate, delete and roll back share one callback: all need admin
    ids.DATA_ADOPT_STORE: "rename",  # adopting a suggested segment name is a rename
    ids.MONITORING_RESET_STORE: "reset_monitoring",
    ids.CAMPAIGNS_SAVED: "campaign",
    ids.CAMPAIGNS_RESULTS_STORE: "campaign",
    ids.CAMPAIGNS_DOWNLOAD: "campaign",  # an audience is customer IDs: campaign work, not an aggregate export
    ids.OVERVIEW_DOWNLOAD: "export_customers",  # one row per customer: not an aggregate export
    ids.EXPLORER_DOWNLOAD: "export_customers",
    ids.MIGRATION_DOWNLOAD: "campaign",  # movers between segments: customer IDs, like an audience
    ids.MIGRATION_AUDIENCE_DOWNLOAD: "campaign",
    ids.VALUE_STATUS: "retrain",  # recomputing customer value with other settings (the recompute callback's output)
    ids.VALUE_DOWNLOAD: "campaign",  # valuable-but-slipping customers: customer IDs, like an audience
    ids.CAMPAIGNS_VALUE_DOWNLOAD: "campaign",  # the win-back / highest-CLV audience
    ids.DATA_DB_MSG: "db_source",  # saving and copying a database source (issue 27): admins
    ids.DIAG_ALGO_STORE: "compare_algorithms",  # fits every algorithm: analysts and admins start it
}
#: Inputs whose callback does several actions: a refusal is audited under the one the button names.
TRIGGER_ACTIONS = {ids.DATA_ACTIVATE: "activate", ids.DATA_DELETE: "delete", ids.DATA_ROLLBACK_CONFIRM: "rollback"}
# Static files anyone may fetch (no customer data in them): routes whose rule starts with one of these.
_PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/vendor/", "/_favicon.ico", "/static/")
_EXTENSION = "segmentlens_auth"


class User(flask_login.UserMixin):
    """A signed-in user as Flask-Login sees it; the role is read on every request.

    The session stores ``name:token``, the token being the user's session value in users.json when
    they signed in (core.access.accounts.AccountStore.session_token): sign-out, a new password or role, or
    removing the user draws a new one, so every session that carries the old one ends.
    """

    def __init__(self, name: str, role: str, token: str = ""):
        self.id, self.role, self.token = name, role, token

    def get_id(self) -> str:
        return f"{self.id}:{self.token}"


# ---------------------------------------------------------------- who is calling
def _state():
    return flask.current_app.extensions[_EXTENSION]


def mode() -> str:
    """``"open"``, ``"read-only"`` or ``"signed-in"`` for the current request (see the module docstring)."""
    cached = flask.g.get("segmentlens_mode")
    if cached:
        return cached
    if _state().store.has_users():
        value = "signed-in"
    else:
        policy = flask.current_app.extensions.get(LISTEN_POLICY_KEY)
        value = "open" if local_only(flask.request.environ, policy) else "read-only"
    flask.g.segmentlens_mode = value
    return value


def _user() -> User | None:
    user = flask_login.current_user
    return user if getattr(user, "is_authenticated", False) else None


def current_role() -> str | None:
    """The caller's role: the signed-in user's, ``"admin"`` in open mode, None when nobody is signed in."""
    if not flask.has_request_context() or _EXTENSION not in flask.current_app.extensions:
        return None
    current = mode()
    if current == "open":
        return "admin"
    if current == "read-only":
        return None
    user = _user()
    return user.role if user is not None else None


def actor() -> str:
    """The name written to the audit log for the caller ("local" in open mode, "anonymous" if nobody)."""
    if not flask.has_request_context() or _EXTENSION not in flask.current_app.extensions:
        return "local"
    if mode() == "open":
        return "local"
    user = _user()
    return user.id if user is not None else "anonymous"


def _refusal(action: str, role: str | None) -> str:
    if flask.has_request_context() and _EXTENSION in flask.current_app.extensions and mode() == "read-only":
        return f"This server has no accounts yet, so it is read-only. Add an admin with `{ADD_ADMIN_HINT}`."
    return _role_refusal(role, action)


def request_caller() -> Caller:
    """The caller of the current request, from the server's side: an API key's (set by the API's check),
    else the signed-in session's; nobody outside a request. The services' role checks ask this."""
    if not flask.has_request_context() or _EXTENSION not in flask.current_app.extensions:
        return NOBODY
    if "api_actor" in flask.g:
        return Caller(flask.g.api_actor, flask.g.get("api_role"))
    return Caller(actor(), current_role())


_JOB_NAMESPACE = "segmentlens_caller"


def _job_context(_callback_context) -> dict:
    # Runs in the request that starts a callback (background ones included), before the job is handed
    # to another process: the caller comes from the session here, never from the browser's inputs.
    services = flask.current_app.extensions.get("segmentlens") if flask.has_request_context() else None
    who = services.access.caller() if services is not None else request_caller()
    return {"name": who.name, "role": who.role}


def job_caller() -> Caller:
    """In a background callback: the caller of the request that started the job (nobody when unknown)."""
    from dash import ctx

    data = (getattr(ctx, "custom_data", None) or {}).get(_JOB_NAMESPACE) or {}
    name, role = data.get("name"), data.get("role")
    return Caller(str(name), role) if isinstance(name, str) and (role is None or isinstance(role, str)) else NOBODY


def _register_job_context() -> None:
    """Dash's custom-data hook (process-wide, registered once) carrying the caller into every callback's context."""
    from dash import hooks

    if not any((h.data or {}).get("namespace") == _JOB_NAMESPACE for h in hooks.get_hooks("custom_data")):
        hooks.custom_data(_JOB_NAMESPACE)(_job_context)


def permission(action: str) -> tuple[bool, str | None]:
    """Whether the caller may do ``action`` (a key of core.access.accounts.ACTIONS), and if not, why, for a tooltip."""
    role = current_role()
    if role is not None and allowed(role, action):
        return True, None
    return False, _refusal(action, role)


# ---------------------------------------------------------------- enforcement
class CallbackSpec:
    """What the server's own callback map says about one callback: its declared outputs and the action it needs.

    Built from ``app.callback_map`` (never from a request), once per callback and process.
    """

    def __init__(self, key: str, entry: dict):
        from dash.dependencies import Output

        self.key = key
        self.background = bool(entry.get("background"))
        self.n_inputs, self.n_state = len(entry.get("inputs") or []), len(entry.get("state") or [])
        # A callback fired by a dcc.Upload's contents carries the file: only these take upload-sized bodies.
        self.uploads = any(dep.get("property") == "contents" for dep in entry.get("inputs") or []
                           if isinstance(dep, dict))
        self.multi = key.startswith("..")
        self.outputs = [] if entry.get("no_output") else [Output(cid, prop) for cid, prop in _parse_outputs(key)]
        actions = {PROTECTED_OUTPUTS[name] for name in map(_id_name, (o.component_id for o in self.outputs))
                   if name in PROTECTED_OUTPUTS}
        # The most demanding action the callback's outputs need (admin before analyst), if any.
        self.action = max(actions, key=lambda a: (ACTIONS.get(a) == "admin", a)) if actions else None

    def arguments_match(self, body: dict) -> bool:
        """Whether the request sends as many inputs and states as the callback declares (Dash would answer 500)."""
        inputs, state = body.get("inputs", []), body.get("state", [])
        return isinstance(inputs, list) and isinstance(state, list) \
            and len(inputs) == self.n_inputs and len(state) == self.n_state

    def outputs_match(self, sent) -> bool:
        """Whether a request's ``outputs`` are exactly this callback's declared outputs (concrete ids of patterns).

        A single output is sent as one object, several as a list in declaration order; an ``ALL`` or
        ``ALLSMALLER`` pattern as a list of objects (possibly empty), every other output as one object.
        """
        from dash.dependencies import ALL, ALLSMALLER, Output

        if not self.outputs:
            return sent in (None, [])
        items = sent if self.multi else [sent]
        if not isinstance(items, list) or len(items) != len(self.outputs):
            return False
        for declared, item in zip(self.outputs, items):
            many = isinstance(declared.component_id, dict) and any(
                v is ALL or v is ALLSMALLER for v in declared.component_id.values())
            entries = item if many else [item]
            if not isinstance(entries, list):
                return False
            for entry in entries:
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), (str, dict)) \
                        or not isinstance(entry.get("property"), str):
                    return False
                concrete = entry["id"]
                if isinstance(concrete, dict) and not all(isinstance(v, (str, int, float, bool)) for v in concrete.values()):
                    return False  # a concrete id has plain values, never a wildcard
                if Output(concrete, entry["property"].split("@")[0]) != declared:
                    return False
        return True


def _parse_outputs(key: str) -> list[tuple]:
    """``(component id, property)`` of each output named in a callback-map key (``a.p`` or ``..a.p...b.q..``)."""
    from dash.dependencies import ALL, ALLSMALLER, MATCH

    wild = {"ALL": ALL, "MATCH": MATCH, "ALLSMALLER": ALLSMALLER}
    escaped = key.replace("\\.", "\0")  # Dash escapes dots inside ids
    parts = escaped[2:-2].split("...") if key.startswith("..") else [escaped]
    out = []
    for part in parts:
        cid, prop = part.rsplit(".", 1)
        cid = cid.replace("\0", ".")
        if cid.startswith("{"):
            cid = {k: wild[v[0]] if isinstance(v, list) and v and v[0] in wild else v
                   for k, v in json.loads(cid).items()}
        out.append((cid, prop.split("@")[0]))
    return out


def _id_name(component_id) -> str:
    """A plain id, or a pattern-matching id's ``type``."""
    return component_id.get("type", "") if isinstance(component_id, dict) else str(component_id)


def _json_error(status: int, code: str, message: str, **headers):
    response = flask.jsonify(error=code, message=message, status=status)
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def _callback_spec(output: str) -> CallbackSpec | None:
    """The server's description of the callback whose map key is ``output`` (None: no such callback)."""
    state = _state()
    spec = state.specs.get(output)
    if spec is None:
        entry = state.callbacks().get(output)
        if entry is None:
            return None
        spec = state.specs[output] = CallbackSpec(output, entry)
    return spec


def _audited_action(spec: CallbackSpec, body: dict) -> str:
    """The name a refusal is audited under: the button that fired it (delete, roll back) when it says more."""
    for prop_id in body.get("changedPropIds") or []:
        name = str(prop_id).rsplit(".", 1)[0]
        if name.startswith("{"):
            try:
                name = _id_name(json.loads(name))
            except ValueError:
                continue
        if TRIGGER_ACTIONS.get(name) and ACTIONS.get(TRIGGER_ACTIONS[name]) == ACTIONS.get(spec.action):
            return TRIGGER_ACTIONS[name]
    return spec.action


def _is_static(path: str) -> bool:
    """A request routed to a static-file view (not merely a path that begins like one: Dash's page
    route answers every other path with the app shell)."""
    rule = flask.request.url_rule
    return rule is not None and rule.rule.startswith(_PUBLIC_PREFIXES) and path.startswith(_PUBLIC_PREFIXES)


def _guard():
    """before_request: sessions for pages and callbacks, roles for state-changing callbacks.

    Which callback runs is what Dash dispatches on: the body's ``output``, looked up in the server's
    callback map. Its declared outputs decide the role needed, and a request whose ``outputs``
    disagree with them is refused before the callback runs.
    """
    path = flask.request.path
    if path.startswith(API_PREFIX + "/") or path == LOGIN_PATH or path == "/metrics" or _is_static(path):
        return None  # the API (and /metrics, dashboard/monitoring.py) checks keys or sessions itself
    if path == LOGOUT_PATH:
        return None if flask.request.method == "POST" else flask.redirect(LOGIN_PATH)
    current = mode()
    if current == "signed-in" and _user() is None:
        # Answered before a byte of any body is read; the connection closes so it is not read either.
        if path.startswith("/_dash-"):
            return _json_error(401, "unauthorized", "sign in first", WWW_Authenticate='Session realm="SegmentLens"',
                               Connection="close")
        response = flask.redirect(f"{LOGIN_PATH}?next={quote(flask.request.full_path.rstrip('?'), safe='/?=&')}")
        response.headers["Connection"] = "close"
        return response
    if path != DASH_UPDATE_PATH or flask.request.method != "POST":
        return None
    limits = flask.current_app.extensions.get("segmentlens_body_limits") or {}
    small = limits.get("callback")
    if small is not None and not allowed(current_role(), "upload"):
        # Only analysts and admins may send upload-sized bodies: everyone else's is cut off at the small limit.
        narrow_body_limit(small)
        if (flask.request.content_length or 0) > small:
            raise RequestEntityTooLarge(f"the request body has {flask.request.content_length:,} bytes; "
                                        f"this address takes at most {small:,}")
    raw = flask.request.get_data()  # bounded by the caller's limit (413 past it); kept for Dash, which reads it next
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("output"), str):
        return _json_error(400, "bad_request", "a callback request is a JSON object naming its output")
    spec = _callback_spec(body["output"])
    if spec is None:
        return _json_error(400, "bad_request", "no such callback")  # Dash itself would answer 500
    if not spec.outputs_match(body.get("outputs")) or not spec.arguments_match(body):
        return _json_error(400, "bad_request", "the request's outputs or inputs are not those of its callback")
    if small is not None and not spec.uploads and len(raw) > small:
        raise RequestEntityTooLarge(f"this callback carries no upload and takes at most {small:,} bytes")
    if spec.action is None:
        return None
    ok, reason = permission(spec.action)
    if not ok:
        _state().audit.append(actor(), _audited_action(spec, body), "callback", "refused", reason or "")
        return _json_error(403, "forbidden", reason or "not allowed")
    limiter = _state().action_limiter
    polling = spec.background and flask.request.args.get("cacheKey")  # a running job's progress, not a new action
    if limiter is not None and not polling:
        passed, retry = limiter.hit(f"action:{actor()}")
        if not passed:
            return _json_error(429, "rate_limited", f"too many changes; try again in {retry} s", Retry_After=str(retry))
    return None


# ---------------------------------------------------------------- sign-in page
def _csrf_token() -> str:
    token = flask.session.get("csrf")
    if not token:
        token = flask.session["csrf"] = secrets.token_urlsafe(32)
    return token


def _csrf_ok() -> bool:
    sent = flask.request.form.get("csrf", "")
    return bool(sent) and hmac.compare_digest(sent, flask.session.get("csrf", ""))


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an absolute or scheme-relative URL (open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def _login_page(message: str = "", status: int = 200, username: str = ""):
    stylesheet = flask.current_app.extensions.get("segmentlens_stylesheet", "")
    alert = f'<div class="alert alert-danger" role="alert">{escape(message)}</div>' if message else ""
    hint = ""
    if mode() != "signed-in":
        hint = ('<p class="text-muted small">No accounts exist yet. An administrator adds the first with '
                f'<code>{escape(ADD_ADMIN_HINT)}</code>.</p>')
    html_text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · SegmentLens</title><link rel="stylesheet" href="{escape(stylesheet)}">
<link rel="stylesheet" href="/assets/segmentlens.css"></head>
<body><main class="container" style="max-width: 26rem; padding-top: 4rem">
<h1 class="h3 mb-3">Sign in to SegmentLens</h1>{alert}{hint}
<form method="post" action="{LOGIN_PATH}">
<input type="hidden" name="csrf" value="{escape(_csrf_token())}">
<input type="hidden" name="next" value="{escape(_safe_next(flask.request.values.get('next')))}">
<div class="mb-3"><label class="form-label" for="username">User name</label>
<input class="form-control" id="username" name="username" autocomplete="username" required value="{escape(username)}"></div>
<div class="mb-3"><label class="form-label" for="password">Password</label>
<input class="form-control" id="password" name="password" type="password" autocomplete="current-password" required></div>
<button class="btn btn-primary" type="submit">Sign in</button>
</form></main></body></html>"""
    response = flask.Response(html_text, status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _login():
    if flask.request.method == "GET":
        return _login_page()
    state = _state()
    username = (flask.request.form.get("username") or "").strip()[:64]
    if not _csrf_ok():
        return _login_page("Your sign-in form expired; please try again.", 400, username)
    if state.login_limiter is not None:
        passed, retry = state.login_limiter.hit(f"login:{flask.request.remote_addr}")
        if not passed:
            state.audit.append(username or "?", "sign-in", username or "?", "refused", "too many attempts")
            response = _login_page(f"Too many sign-in attempts; try again in {retry} seconds.", 429, username)
            response.headers["Retry-After"] = str(retry)
            return response
    account = state.store.authenticate(username, flask.request.form.get("password") or "")
    if account is None:
        state.audit.append(username or "?", "sign-in", username or "?", "failed", f"from {flask.request.remote_addr}")
        return _login_page("Wrong user name or password.", 401, username)
    flask.session.clear()  # a new session on sign-in (no fixation)
    flask.session.permanent = True  # expires after SEGMENTLENS_SESSION_HOURS, in the browser and on the server
    flask_login.login_user(User(account["name"], account["role"], state.store.session_token(account["name"]) or ""))
    _csrf_token()  # made now: callbacks answered at once by both workers must not each write a different one
    state.audit.append(account["name"], "sign-in", account["name"], "ok", f"from {flask.request.remote_addr}")
    return flask.redirect(_safe_next(flask.request.form.get("next")))


def _logout():
    if not _csrf_ok():
        return flask.redirect("/")
    user = _user()
    if user is not None:
        _state().store.end_sessions(user.id)  # every session of this user ends, copies of this cookie included
        _state().audit.append(user.id, "sign-out", user.id, "ok")
    flask_login.logout_user()
    flask.session.clear()
    return flask.redirect(LOGIN_PATH)


def csrf_token() -> str:
    """The session's form token (the sign-out form in the header carries it)."""
    return _csrf_token()


class _AuthState:
    def __init__(self, store: AccountStore, audit: AuditLog, login_limiter, action_limiter, callbacks):
        self.store, self.audit, self.callbacks = store, audit, callbacks
        self.specs: dict[str, CallbackSpec] = {}  # callback-map key -> CallbackSpec, filled on first use
        self.login_limiter, self.action_limiter = login_limiter, action_limiter


def _limiter(path: Path, text: str | None, default: str, variable: str) -> RateLimiter | None:
    try:
        rate = parse_rate_limit(text or default)
    except ValueError as exc:
        raise ValueError(str(exc).replace("SEGMENTLENS_RATE_LIMIT", variable)) from None
    return RateLimiter(path, *rate) if rate else None


def session_lifetime(text: str | None) -> datetime.timedelta:
    """``SEGMENTLENS_SESSION_HOURS`` (default 8): how long a sign-in lasts; Flask also refuses older cookies."""
    try:
        hours = float(text) if text and text.strip() else 8.0
    except ValueError:
        hours = float("nan")
    if not (0 < hours <= 24 * 31):
        raise ValueError(f"SEGMENTLENS_SESSION_HOURS must be a number of hours between 0 and 744, got {text!r}")
    return datetime.timedelta(hours=hours)


def _keyed_api_call(request) -> bool:
    """An API request that names its caller by ``Authorization``: dashboard.api decides by the key alone."""
    return "HTTP_AUTHORIZATION" in request.environ and request.path.startswith(API_PREFIX + "/")


class _Sessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus two costs on the API's path (issue 29).

    - The signer is built once per secret key, not on every request (Flask builds a new one each time).
    - An API call with an ``Authorization`` header gets an empty session that is never read from nor
      written to the cookie: dashboard.api authenticates it by the key alone (a wrong key is a 401, never
      a fallback to the cookie), so verifying and re-signing the cookie would be work for nothing. An API
      call without the header (a signed-in browser) opens the cookie session as every page does.
    """

    def __init__(self):
        self._signer = None  # (secret key, fallbacks, serializer) of the last key seen

    def get_signing_serializer(self, app):
        key, fallbacks = app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ())
        cached = self._signer
        if cached is None or cached[0] != key or cached[1] != fallbacks:
            cached = self._signer = (key, fallbacks, super().get_signing_serializer(app))
        return cached[2]

    def open_session(self, app, request):
        if _keyed_api_call(request):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if flask.has_request_context() and _keyed_api_call(flask.request):
            return  # no cookie is set, changed or deleted by a key-authenticated API call
        super().save_session(app, session, response)


def install_auth(server: flask.Flask, registry_root: Path, cache_dir: Path, secret: bytes, callbacks) -> None:
    """Sessions, the sign-in page, and the guard on every request of ``server``.

    ``callbacks`` returns the Dash app's callback map (filled on the first request), so that a
    request for a callback that does not exist is refused with 400.
    """
    import os

    store = AccountStore(registry_root)
    server.secret_key = secret
    server.session_interface = _Sessions()
    # A sign-in lasts SEGMENTLENS_SESSION_HOURS from when it was made (not renewed by use), and the cookie is
    # written only when the session changes, so concurrent callbacks never overwrite each other's cookie.
    server.config.update(PERMANENT_SESSION_LIFETIME=session_lifetime(os.environ.get("SEGMENTLENS_SESSION_HOURS")),
                         SESSION_REFRESH_EACH_REQUEST=False,
                         SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         SESSION_COOKIE_NAME="segmentlens_session",
                         SESSION_COOKIE_SECURE=os.environ.get("SEGMENTLENS_SECURE_COOKIES", "").lower() in ("1", "true"),
                         REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax")
    manager = flask_login.LoginManager()
    manager.session_protection = "basic"
    manager.init_app(server)

    @manager.user_loader
    def load(user_id: str):
        # Read on every request: a removed user, a new role or password, or a sign-out elsewhere applies at once.
        name, _, token = str(user_id).partition(":")
        account = store.get_user(name)
        expected = store.session_token(name)
        if account is None or expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
            return None
        return User(account["name"], account["role"], token)

    server.extensions[_EXTENSION] = _AuthState(
        store, AuditLog(registry_root),
        _limiter(cache_dir / "login_rate_limit.sqlite3", os.environ.get("SEGMENTLENS_LOGIN_RATE_LIMIT"),
                 "10/minute", "SEGMENTLENS_LOGIN_RATE_LIMIT"),
        _limiter(cache_dir / "action_rate_limit.sqlite3", os.environ.get("SEGMENTLENS_ACTION_RATE_LIMIT"),
                 "60/minute", "SEGMENTLENS_ACTION_RATE_LIMIT"), callbacks)
    services = server.extensions.get("segmentlens")
    if services is not None:
        services.access.identify = request_caller  # the services check the session's role themselves too
    _register_job_context()
    server.add_url_rule(LOGIN_PATH, "segmentlens_login", _login, methods=["GET", "POST"])
    server.add_url_rule(LOGOUT_PATH, "segmentlens_logout", _logout, methods=["POST"])
    server.before_request(_guard)


def header_identity() -> dict:
    """What the header shows about the caller: mode, user name, role and the sign-out token."""
    current = mode()
    user = _user()
    return {"mode": current, "name": user.id if user else None, "role": current_role(),
            "csrf": csrf_token() if user else None}

