"""A version's segment names: the one place they are read and padded (CLI, pages, API, exports, engines)."""
from __future__ import annotations

__all__ = ["segment_names"]


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
        Exactly ``k`` names; a segment without one is ``"Segment i"``.
    """
    meta = meta or {}
    k = int(meta.get("k") or 0) if k is None else int(k)
    names = [str(n) for n in (meta.get("segment_names") or [])][:k]
    return names + [f"Segment {i}" for i in range(len(names), k)]
