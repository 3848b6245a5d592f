"""The result cache: a small per-process LRU in front of flask-caching's shared FileSystemCache."""
from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["ResultCache"]

# Entries of the per-process LRU: the analysis of a version or two plus derived results (sweeps,
# stability, comparisons, rendered views); all small but the analyses.
_MEMO_SIZE = 32


class ResultCache:
    """Expensive results keyed by tuples (model version, data fingerprint, parameters, ...).

    ``shared`` is the flask-caching Cache (or cachelib FileSystemCache) that every gunicorn worker
    reads and writes, or None; the LRU keeps the last few decoded results so a warm callback does
    not unpickle megabytes. Thread-safe.
    """

    def __init__(self, shared=None, size: int = _MEMO_SIZE):
        self.shared = shared
        self.size = int(size)
        self._memo: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        """The in-process value for ``key`` (None when absent)."""
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        return None

    def put(self, key, value) -> None:
        """Keep ``value`` in the in-process LRU."""
        with self._lock:
            self._memo[key] = value
            self._memo.move_to_end(key)
            while len(self._memo) > self.size:
                self._memo.popitem(last=False)

    def cached(self, key: tuple, compute):
        """The value for ``key``: from this process, else the shared cache, else ``compute()`` (then stored)."""
        value = self.get(key)
        if value is not None:
            return value
        shared_key = "sl:" + ":".join(map(str, key))
        value = self.shared.get(shared_key) if self.shared is not None else None
        if value is None:
            value = compute()
            if self.shared is not None:
                self.shared.set(shared_key, value)
        self.put(key, value)
        return value

    def local(self, key: tuple, build):
        """The value for ``key`` kept in this process only (e.g. rendered page content)."""
        value = self.get(key)
        if value is None:
            value = build()
            self.put(key, value)
        return value
