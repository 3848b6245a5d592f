"""The result cache: a small per-process LRU in front of flask-caching's shared FileSystemCache.

A model version's results are keyed by its model's checksum as well as its number: a key element
naming a version (``v0003``) is stored as ``v0003@<sha256[:16]>``, so results computed for one
model can never be served for another, whatever its number (and whatever a cache on disk still
holds from before a number's model changed).
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from core.versions.registry import RegistryError
from core.versions.registry_format import VERSION_RE

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

    def __init__(self, shared=None, size: int = _MEMO_SIZE, *, registry=None):
        self.shared = shared
        self.size = int(size)
        self.registry = registry
        self._memo: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._sums: tuple[str, dict] = ("", {})  # (manifest token, {version: checksum}) of this process

    def checksum(self, version: str) -> str | None:
        """The SHA-256 of a version's model file as the manifest records it (None: unknown version)."""
        if self.registry is None:
            return None
        token = self.registry.token()
        seen_token, sums = self._sums
        if token != seen_token:
            sums = {}
        if version not in sums:
            try:
                sums = {**sums, version: str(self.registry.metadata_entry(version)["sha256"])}
            except (RegistryError, KeyError, TypeError):
                return None
        self._sums = (token, sums)  # replaced whole: threads of a worker share this object
        return sums[version]

    def full_key(self, key: tuple) -> tuple:
        """``key`` with each version number in it followed by that version's model checksum."""
        out = []
        for part in key:
            if isinstance(part, str) and VERSION_RE.match(part):
                checksum = self.checksum(part)
                part = f"{part}@{checksum[:16]}" if checksum else part
            out.append(part)
        return tuple(out)

    def get(self, key):
        """The in-process value for ``key`` (None when absent)."""
        return self._get(self.full_key(key))

    def put(self, key, value) -> None:
        """Keep ``value`` in the in-process LRU."""
        self._put(self.full_key(key), value)

    def _get(self, key):
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        return None

    def _put(self, key, value) -> None:
        with self._lock:
            self._memo[key] = value
            self._memo.move_to_end(key)
            while len(self._memo) > self.size:
                self._memo.popitem(last=False)

    def cached(self, key: tuple, compute):
        """The value for ``key``: from this process, else the shared cache, else ``compute()`` (then stored)."""
        key = self.full_key(key)
        value = self._get(key)
        if value is not None:
            return value
        shared_key = "sl:" + ":".join(map(str, key))
        value = self.shared.get(shared_key) if self.shared is not None else None
        if value is None:
            value = compute()
            if self.shared is not None:
                self.shared.set(shared_key, value)
        self._put(key, value)
        return value

    def local(self, key: tuple, build):
        """The value for ``key`` kept in this process only (e.g. rendered page content)."""
        key = self.full_key(key)
        value = self._get(key)
        if value is None:
            value = build()
            self._put(key, value)
        return value
