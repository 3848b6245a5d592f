"""Sign-in, roles and their enforcement on the server (Flask-Login sessions).

This is the dashboard's one place for "who is calling and what may they do".
Pages ask :func:`permission` to show a control disabled with the reason; the
server enforces the same rule on every ``/_dash-update-component`` request
(:data:`PROTECTED_OUTPUTS`), so hiding a button is never what protects an action.

Modes, decided per request:

- **open**: no user exists and the server listens on a loopback address (the quick
  start): everybody is treated as a local admin, as before accounts existed.
- **read-only**: no user exists and the server listens on any other address: every
  page can be viewed, no state changes, and the pages say how to add an admin.
- **signed-in**: at least one user exists: every page and callback needs a session;
  state-changing callbacks need the role :data:`core.accounts.ACTIONS` names.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit

import flask
import flask_login
from markupsafe import escape

from core.accounts import ACTIONS, AccountStore, allowed
from core.audit import AuditLog

from . import ids
from .api import API_PREFIX, RateLimiter, parse_rate_limit
from .security import DASH_UPDATE_PATH, LISTEN_HOST_KEY

__all__ = ["permission", "current_role", "actor", "mode", "install_auth", "PROTECTED_OUTPUTS",
           "LOGIN_PATH", "LOGOUT_PATH", "ADD_ADMIN_HINT"]

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
}
# Paths anyone may fetch: the sign-in page itself and static files (no customer data in them).
_PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/vendor/", "/_favicon.ico", "/favicon.ico")
_EXTENSION = "segmentlens_auth"


class User(flask_login.UserMixin):
    """A signed-in user as Flask-Login sees it: the name is the id; the role is read on every request."""

    def __init__(self, name: str, role: str):
        self.id, self.role = name, role


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
        value = "open" if _is_loopback(flask.request.environ.get(LISTEN_HOST_KEY, "")) else "read-only"
    flask.g.segmentlens_mode = value
    return value


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    needed = ACTIONS.get(action, "admin")
    who = "analysts and admins" if needed == "analyst" else "admins"
    if flask.has_request_context() and _EXTENSION in flask.current_app.extensions and mode() == "read-only":
        return f"This server has no accounts yet, so it is read-only. Add an admin with `{ADD_ADMIN_HINT}`."
    if role is None:
        return f"Only {who} can do this; sign in first."
    return f"Only {who} can do this; you are signed in as {role}."


def permission(action: str) -> tuple[bool, str | None]:
    """Whether the caller may do ``action`` (a key of core.accounts.ACTIONS), and if not, why, for a tooltip."""
    role = current_role()
    if role is not None and allowed(role, action):
        return True, None
    return False, _refusal(action, role)


# ---------------------------------------------------------------- enforcement
def _callback_outputs(body: dict) -> list[str]:
    """Component ids a Dash callback request writes (single, multi and pattern-matching outputs)."""
    outputs = body.get("outputs")
    items = outputs if isinstance(outputs, list) else [outputs]
    found = []
    for item in items:
        for entry in (item if isinstance(item, list) else [item]):
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                found.append(entry["id"])
    if not found and isinstance(body.get("output"), str):  # "..a.prop...b.prop.." or "a.prop"
        found = [part.rsplit(".", 1)[0] for part in body["output"].strip(".").split("...") if part]
    return found


def _json_error(status: int, code: str, message: str, **headers):
    response = flask.jsonify(error=code, message=message, status=status)
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def _guard():
    """before_request: sessions for pages and callbacks, roles for state-changing callbacks."""
    path = flask.request.path
    if path in (LOGIN_PATH, LOGOUT_PATH, "/metrics") or path.startswith(_PUBLIC_PREFIXES) or path.startswith(API_PREFIX + "/"):
        return None  # the API (and /metrics, dashboard/monitoring.py) checks keys or sessions itself
    current = mode()
    if current == "signed-in" and _user() is None:
        if path.startswith("/_dash-"):
            return _json_error(401, "unauthorized", "sign in first", WWW_Authenticate='Session realm="SegmentLens"')
        return flask.redirect(f"{LOGIN_PATH}?next={quote(flask.request.full_path.rstrip('?'), safe='/?=&')}")
    if path != DASH_UPDATE_PATH or flask.request.method != "POST":
        return None
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("output"), str):
        return _json_error(400, "bad_request", "a callback request is a JSON object naming its output")
    if body["output"] not in _state().callbacks():
        return _json_error(400, "bad_request", "no such callback")  # Dash itself would answer 500
    needed = sorted({PROTECTED_OUTPUTS[o] for o in _callback_outputs(body) if o in PROTECTED_OUTPUTS},
                    key=lambda a: ACTIONS.get(a) == "admin", reverse=True)
    if not needed:
        return None
    action = needed[0]
    ok, reason = permission(action)
    if not ok:
        _state().audit.append(actor(), action, "callback", "refused", reason or "")
        return _json_error(403, "forbidden", reason or "not allowed")
    limiter = _state().action_limiter
    if limiter is not None and not flask.request.args.get("cacheKey"):  # background-job polls are not actions
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
    flask_login.login_user(User(account["name"], account["role"]))
    state.audit.append(account["name"], "sign-in", account["name"], "ok", f"from {flask.request.remote_addr}")
    return flask.redirect(_safe_next(flask.request.form.get("next")))


def _logout():
    if not _csrf_ok():
        return flask.redirect("/")
    user = _user()
    if user is not None:
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
        self.login_limiter, self.action_limiter = login_limiter, action_limiter


def _limiter(path: Path, text: str | None, default: str, variable: str) -> RateLimiter | None:
    try:
        rate = parse_rate_limit(text or default)
    except ValueError as exc:
        raise ValueError(str(exc).replace("SEGMENTLENS_RATE_LIMIT", variable)) from None
    return RateLimiter(path, *rate) if rate else None


def install_auth(server: flask.Flask, registry_root: Path, cache_dir: Path, secret: bytes, callbacks) -> None:
    """Sessions, the sign-in page, and the guard on every request of ``server``.

    ``callbacks`` returns the Dash app's callback map (filled on the first request), so that a
    request for a callback that does not exist is refused with 400.
    """
    import os

    store = AccountStore(registry_root)
    server.secret_key = secret
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         SESSION_COOKIE_NAME="segmentlens_session",
                         SESSION_COOKIE_SECURE=os.environ.get("SEGMENTLENS_SECURE_COOKIES", "").lower() in ("1", "true"),
                         REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax")
    manager = flask_login.LoginManager()
    manager.session_protection = "basic"
    manager.init_app(server)

    @manager.user_loader
    def load(name: str):
        account = store.get_user(name)  # read on every request: a removed user or a new role applies at once
        return User(account["name"], account["role"]) if account else None

    server.extensions[_EXTENSION] = _AuthState(
        store, AuditLog(registry_root),
        _limiter(cache_dir / "login_rate_limit.sqlite3", os.environ.get("SEGMENTLENS_LOGIN_RATE_LIMIT"),
                 "10/minute", "SEGMENTLENS_LOGIN_RATE_LIMIT"),
        _limiter(cache_dir / "action_rate_limit.sqlite3", os.environ.get("SEGMENTLENS_ACTION_RATE_LIMIT"),
                 "60/minute", "SEGMENTLENS_ACTION_RATE_LIMIT"), callbacks)
    server.add_url_rule(LOGIN_PATH, "segmentlens_login", _login, methods=["GET", "POST"])
    server.add_url_rule(LOGOUT_PATH, "segmentlens_logout", _logout, methods=["POST"])
    server.before_request(_guard)


def header_identity() -> dict:
    """What the header shows about the caller: mode, user name, role and the sign-out token."""
    current = mode()
    user = _user()
    return {"mode": current, "name": user.id if user else None, "role": current_role(),
            "csrf": csrf_token() if user else None}

