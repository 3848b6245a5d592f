"""Who is calling, checked by the services themselves before any state changes (defence in depth).

The web layer refuses a caller early (dashboard.auth's guard, the API's key check); the services
check again, so no page, callback or future route that forgets can change state for a viewer.
The identity comes from a hook the web layer installs (the server-side session or API key of the
current request); code with no request (a background job) passes the caller it was started for.
"""
from __future__ import annotations

from collections.abc import Callable

from core.access.accounts import LOCAL, Caller, Forbidden, allowed, refusal

from .audit import Auditor

__all__ = ["Access"]


class Access:
    """The caller's identity (from ``identify``) and the role check every state-changing service makes.

    Parameters
    ----------
    auditor : Auditor
        Refusals are audited under the action's own name.
    identify : callable, optional
        Returns the current :class:`core.access.accounts.Caller`; default: the local admin (a Services made
        by the command line or a test, where no accounts apply).
    """

    def __init__(self, auditor: Auditor, identify: Callable[[], Caller] | None = None):
        self.auditor = auditor
        self.identify = identify or (lambda: LOCAL)

    def caller(self, caller: Caller | None = None) -> Caller:
        """``caller`` when given (a background job's), else the current request's."""
        return caller if caller is not None else self.identify()

    def require(self, action: str, target: str = "-", caller: Caller | None = None) -> Caller:
        """The caller, when their role allows ``action``; else the refusal is audited and Forbidden raised."""
        who = self.caller(caller)
        if not isinstance(who, Caller) or not allowed(who.role, action):
            role = getattr(who, "role", None)
            message = refusal(role, action)
            self.auditor.record(getattr(who, "name", "anonymous"), action, target, "refused", message)
            raise Forbidden(message, action)
        return who
