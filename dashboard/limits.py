"""What the API, the sign-in guard and the HTTP hardening share: the API's prefix, size and rate parsing,
and the rate limiter. Its own module so that none of the three imports another to get them."""
from __future__ import annotations

import logging
import math
import os
import re
import sqlite3
import threading
import time

__all__ = ["API_PREFIX", "DEFAULT_RATE_LIMIT", "DEFAULT_MAX_BODY", "RateLimiter", "parse_rate_limit", "parse_size"]

API_PREFIX = "/api/v1"
DEFAULT_RATE_LIMIT = "120/minute"
DEFAULT_MAX_BODY = 1024 * 1024
_log = logging.getLogger("segmentlens.api")


_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
            "d": 86400, "day": 86400}


def parse_rate_limit(text: str | None) -> tuple[int, float] | None:
    """Parse ``"120/minute"``, ``"5 per second"``, ``"1000/10min"``; None for ``off``/``0``/``none``."""
    text = (text or DEFAULT_RATE_LIMIT).strip().lower()
    if text in ("off", "none", "0", "unlimited"):
        return None
    match = re.fullmatch(r"(\d+)\s*(?:/|per)\s*(\d*)\s*([a-z]+?)s?", text)
    if not match or match.group(3) not in _PERIODS or int(match.group(1)) < 1:
        raise ValueError(f"SEGMENTLENS_RATE_LIMIT={text!r} is not a rate like '120/minute' or 'off'")
    return int(match.group(1)), float(int(match.group(2) or 1) * _PERIODS[match.group(3)])


def parse_size(text: str | None, default: int = DEFAULT_MAX_BODY) -> int:
    """Parse a byte size such as ``1048576``, ``512K`` or ``2M``."""
    if not text or not text.strip():
        return default
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)[bB]?\s*", text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"SEGMENTLENS_MAX_BODY={text!r} is not a size like 1048576, 512K or 2M")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]


class RateLimiter:
    """Per-client window counter in a SQLite file shared by every worker process.

    A client's window opens at its first request and lasts ``period`` seconds; within it at
    most ``limit`` requests pass, whichever worker answers them. A worker takes a client's allowance
    from the shared file in leases of ``lease`` requests (default ``limit // 64``, at least 1) and
    spends a lease in process: a dict lookup per request, one UPSERT per lease (issue 29). The file
    never grants more than ``limit`` in a window, so the limit holds across workers; what a worker has
    leased and not spent when its client moves to another worker is lost for that window (at most
    ``lease - 1`` requests per worker, under 2 % of the limit). Limits under 128 lease one request at a
    time: every request is counted in the file, as before.
    """

    _SQL = ("INSERT INTO hits(key, start, n) VALUES (?1, ?2, ?4) ON CONFLICT(key) DO UPDATE SET "
            "n = CASE WHEN ?2 - start >= ?3 THEN ?4 ELSE n + ?4 END, "
            "start = CASE WHEN ?2 - start >= ?3 THEN ?2 ELSE start END RETURNING start, n")
    _LEASE_SHARE = 64  # a lease is this fraction of the limit
    _MAX_LEASED_CLIENTS = 10_000  # past this many clients with a lease, expired leases are dropped

    def __init__(self, path: str | os.PathLike, limit: int, period: float, *, lease: int | None = None):
        self.path, self.limit, self.period = str(path), int(limit), float(period)
        self.lease = max(1, min(int(lease if lease is not None else self.limit // self._LEASE_SHARE), self.limit))
        self._local = threading.local()
        self._count = 0
        self._leases: dict[str, list] = {}  # client key -> [window start, requests left], this process's
        self._leases_pid = os.getpid()
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # never share a connection across a fork
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            # Workers opening the file at the same moment race to switch it to WAL, and SQLite
            # answers "database is locked" at once there instead of waiting: retry briefly, or
            # the first requests would be let through uncounted.
            for attempt in range(50):
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=OFF")  # counters need no durability across power loss
                    conn.execute("CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, start REAL NOT NULL, "
                                 "n INTEGER NOT NULL)")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.02)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _spend_lease(self, key: str, now: float) -> bool:
        """Spend one request of this process's lease for ``key`` (False: none left, or its window closed)."""
        with self._lock:
            if self._leases_pid != os.getpid():  # a forked worker inherits nothing of its parent's leases
                self._leases, self._leases_pid = {}, os.getpid()
            entry = self._leases.get(key)
            if entry is None or entry[1] <= 0 or now - entry[0] >= self.period:
                return False
            entry[1] -= 1
            return True

    def _keep_lease(self, key: str, start: float, left: int, now: float) -> None:
        with self._lock:
            if len(self._leases) >= self._MAX_LEASED_CLIENTS:
                self._leases = {k: e for k, e in self._leases.items() if e[1] > 0 and now - e[0] < self.period}
                if len(self._leases) >= self._MAX_LEASED_CLIENTS:
                    self._leases = {}  # bounded: forgetting leases only ever refuses early, never lets more pass
            self._leases[key] = [start, left]

    def hit(self, key: str) -> tuple[bool, int]:
        """Count one request of ``key``: (allowed, seconds until the window reopens)."""
        now = time.time()
        if self.lease > 1 and self._spend_lease(key, now):
            return True, 0
        try:
            conn = self._connection()
            # fetchall() steps the statement to its end, which releases the write lock at once.
            (start, n), = conn.execute(self._SQL, (key, now, self.period, self.lease)).fetchall()
            self._count += 1
            if self._count % 1000 == 0:
                conn.execute("DELETE FROM hits WHERE start < ?", (now - self.period,))
        except sqlite3.Error as exc:  # a broken counter file must not take the API down
            _log.warning("rate limiter unavailable (%s); request allowed", exc)
            return True, 0
        granted = min(self.lease, self.limit - (n - self.lease))  # what the file had left of this window
        if granted >= 1:
            if granted > 1:
                self._keep_lease(key, start, granted - 1, now)
            return True, 0
        return False, max(1, math.ceil(start + self.period - now))
