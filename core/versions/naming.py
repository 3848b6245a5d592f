"""A version's segment names: the one place they are read and padded (CLI, pages, API, exports, engines)."""
from __future__ import annotations

__all__ = ["segment_names", "UNASSIGNED_NAME", "UNASSIGNED_DESCRIPTION", "has_unassigned"]

UNASSIGNED_NAME = "Unassigned"
"""The name of the group of customers no segment claims (HDBSCAN's noise): always the last segment."""
UNASSIGNED_DESCRIPTION = "Customers in no dense group: the algorithm assigned them to no segment."


def has_unassigned(meta: dict | None) -> bool:
    """Whether a version's last segment is the Unassigned group."""
    return bool(((meta or {}).get("algorithm") or {}).get("unassigned"))


def segment_names(meta: dict | None, k: int | None = None) -> list[str]:
    """A version's segment names, renames included: the one place names are read and padded.

    Parameters
    ----------
    meta : dict or None
        The version's metadata (``segment_names``, ``k``).
    k : int, optional
        Number of segments (default ``meta["k"]``).

    Returns
    -------
    list of str
        Exactly ``k`` names; a segment without one is ``"Segment i"``; the last is
        :data:`UNASSIGNED_NAME` when the version has an Unassigned group.
    """
    meta = meta or {}
    k = int(meta.get("k") or 0) if k is None else int(k)
    names = [str(n) for n in (meta.get("segment_names") or [])][:k]
    names += [f"Segment {i}" for i in range(len(names), k)]
    if k and has_unassigned(meta):  # never renamed: the group is not a segment of customers alike
        names[-1] = UNASSIGNED_NAME
    return names
