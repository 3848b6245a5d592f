"""Users, roles and API keys of a SegmentLens deployment (stored beside the model registry).

Roles are ordered: ``viewer`` < ``analyst`` < ``admin``; an action needs at least
the role :data:`ACTIONS` names.
"""
from __future__ import annotations

__all__ = ["ROLES", "ACTIONS", "allowed"]

ROLES = ("viewer", "analyst", "admin")
#: The least role each state-changing action needs.
ACTIONS = {
    "rename": "analyst", "upload": "analyst", "retrain": "analyst", "campaign": "analyst",
    "export_model": "analyst",
    "activate": "admin", "rollback": "admin", "delete": "admin", "manage_users": "admin", "manage_keys": "admin",
    "audit": "admin",
}


def allowed(role: str | None, action: str) -> bool:
    """Whether ``role`` may do ``action`` (unknown actions need admin).

    Parameters
    ----------
    role : str or None
    action : str

    Returns
    -------
    bool
    """
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(ACTIONS.get(action, "admin"))
