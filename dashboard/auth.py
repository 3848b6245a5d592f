"""Sign-in, roles and their enforcement on the server (Flask-Login sessions).

This is the dashboard's one place for "who is calling and what may they do".
Pages ask :func:`permission` to show a control disabled with the reason; the
server enforces the same rule on every ``/_dash-update-component`` request, so
hiding a button is never what protects an action.
"""
from __future__ import annotations

from core.accounts import ACTIONS, allowed

__all__ = ["permission", "current_role", "actor"]


def _user():
    import flask

    if not flask.has_request_context():
        return None
    try:
        import flask_login
    except ImportError:  # pragma: no cover - Flask-Login is a requirement
        return None
    user = flask_login.current_user
    return user if getattr(user, "is_authenticated", False) else None


def current_role() -> str | None:
    """The caller's role: the signed-in user's, ``"admin"`` in open (local, no users) mode, else None."""
    import flask

    if not flask.has_request_context():
        return None
    if flask.g.get("segmentlens_open_mode"):
        return "admin"
    user = _user()
    return user.role if user is not None else None


def actor() -> str:
    """The name written to the audit log for the caller ("local" in open mode, "anonymous" if nobody)."""
    import flask

    if flask.has_request_context() and flask.g.get("segmentlens_open_mode"):
        return "local"
    user = _user()
    return user.id if user is not None else "anonymous"


def permission(action: str) -> tuple[bool, str | None]:
    """Whether the caller may do ``action`` (a key of core.accounts.ACTIONS), and if not, why, for a tooltip."""
    role = current_role()
    if role is not None and allowed(role, action):
        return True, None
    needed = ACTIONS.get(action, "admin")
    who = "analysts and admins" if needed == "analyst" else "admins"
    if role is None:
        return False, f"Only {who} can do this; sign in first."
    return False, f"Only {who} can do this; you are signed in as {role}."
