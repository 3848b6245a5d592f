"""The append-only audit log of a SegmentLens deployment (``audit.log`` beside the model registry).

One JSON object per line::

    {"time": "2026-12-01T14:30:25.123Z", "user": "alice", "action": "activate",
     "target": "v0003", "outcome": "ok", "detail": ""}

Names in use (callers choose; nothing is enforced):

- action: ``sign-in``, ``sign-out``, ``upload``, ``retrain``, ``activate``, ``rollback``, ``delete``,
  ``rename``; from the command line ``user-add``, ``user-remove``, ``user-set-role``, ``key-create``,
  ``key-revoke``;
- outcome: ``ok``, ``started``, ``failed`` (tried and could not be done), ``denied`` / ``refused``
  (the role, the credentials or a rate limit said no);
- user: a user or key name, ``local`` in open mode, ``cli:<os user>`` from the command line.

Lines are only ever appended (``O_APPEND``, one ``write`` per line under an fcntl lock,
then fsync); the file is never rewritten. A line torn by a crash is skipped on reading,
and the next append starts on a fresh line so it cannot merge with the torn one.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
from pathlib import Path

from core.versions.registry import models_dir

__all__ = ["AuditLog", "MAX_FIELD"]

#: Longest value kept per field, in characters; longer values are cut and marked with "…".
MAX_FIELD = 500
_FILE = "audit.log"
_FIELDS = ("time", "user", "action", "target", "outcome", "detail")
_CHUNK = 65536


def _plain(value) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD - 1] + "…"


class AuditLog:
    """Append and read the audit log.

    Parameters
    ----------
    root : path-like, optional
        The registry folder (default: :func:`core.versions.registry.models_dir`).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = models_dir(root)
        self.path: Path = self.root / _FILE

    def append(self, user: str, action: str, target: str, outcome: str, detail: str = "") -> dict:
        """Append one entry, stamped with the current UTC time.

        Parameters
        ----------
        user, action, target, outcome, detail : str
            Stored as plain strings, each cut to :data:`MAX_FIELD` characters.

        Returns
        -------
        dict
            The entry as written.
        """
        now = _dt.datetime.now(_dt.timezone.utc)
        entry = {"time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                 "user": _plain(user), "action": _plain(action), "target": _plain(target),
                 "outcome": _plain(outcome), "detail": _plain(detail)}
        # ensure_ascii: every line is pure ASCII, so no input (newlines, U+2028, lone surrogates) can split it.
        line = (json.dumps(entry, ensure_ascii=True) + "\n").encode("ascii")
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)  # read: the last byte
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # the previous writer died mid-line: do not merge with it
                written = os.write(fd, line)
                while written < len(line):  # a short write is rare (disk full, signals) but possible
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return entry

    def entries(self, limit: int | None = None) -> list[dict]:
        """The entries, oldest first (newest last); unreadable lines are skipped.

        Parameters
        ----------
        limit : int, optional
            Only the last ``limit`` entries (read from the end of the file, so a long log costs
            no more than the entries asked for).

        Returns
        -------
        list of dict
            Each with the keys time, user, action, target, outcome, detail (strings).
        """
        if limit is not None and limit <= 0:
            return []
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read() if limit is None else self._tail(fh, limit)
        except FileNotFoundError:
            return []
        out = []
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                continue  # torn by a crash mid-write
            if isinstance(item, dict):
                out.append({f: _plain(item.get(f)) for f in _FIELDS})
        return out if limit is None else out[-limit:]

    @staticmethod
    def _tail(fh, limit: int) -> bytes:
        """The end of the file holding at least ``limit`` complete lines (or the whole file)."""
        end = fh.seek(0, os.SEEK_END)
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= limit + 1:
            step = min(_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
        if pos > 0:  # the first line may be a partial one: drop it
            data = data.split(b"\n", 1)[1]
        return data
