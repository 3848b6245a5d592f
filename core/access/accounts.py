"""Users, roles and API keys of a SegmentLens deployment (stored beside the model registry).

Roles are ordered: ``viewer`` < ``analyst`` < ``admin``; an action needs at least
the role :data:`ACTIONS` names.

Files in the registry folder (all mode 0600, replaced atomically under an fcntl lock)::

    users.json      {"format": 1, "users": {"alice": {"role": "admin", "password": "scrypt:...", "created": ...,
                                                  "session": "<random>"}}}
    apikeys.json    {"format": 1, "keys": {"etl": {"role": "analyst", "sha256": ..., "prefix": ..., "created": ...}}}
    secret_key      32 random bytes signing the dashboard's sessions (unless SEGMENTLENS_SECRET_KEY is set)
    .accounts.lock  the advisory lock serialising writers

A user's ``session`` value is drawn afresh when they sign out, their password or role changes, or
they are added (again): a dashboard session carries the value it was signed in with and ends when
it no longer matches (:meth:`AccountStore.session_token`), so every session of that user ends at once.

Passwords are hashed with scrypt in werkzeug's format (``scrypt:32768:8:1$salt$hex``), so
``werkzeug.security.check_password_hash`` accepts them; this module itself uses only the stdlib.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import tempfile
import time
from pathlib import Path

from core.versions.registry import atomic_write, models_dir

__all__ = ["ROLES", "ACTIONS", "allowed", "AccountsError", "AccountStore", "secret_key", "bootstrap_admin",
           "hash_password", "check_password", "MIN_PASSWORD_LENGTH", "KEY_PREFIX", "Caller", "Forbidden", "require",
           "LOCAL", "NOBODY", "refusal"]

ROLES = ("viewer", "analyst", "admin")
#: The least role each state-changing action needs.
ACTIONS = {
    "rename": "analyst", "upload": "analyst", "retrain": "analyst", "campaign": "analyst",
    "export_model": "analyst", "export_customers": "analyst",
    "activate": "admin", "rollback": "admin", "delete": "admin", "manage_users": "admin", "manage_keys": "admin",
    "audit": "admin", "reset_monitoring": "admin",
}
MIN_PASSWORD_LENGTH = 8
#: Every API key starts with this, so a leaked one is recognisable (e.g. by secret scanners).
KEY_PREFIX = "slk_"

_USERS = "users.json"
_KEYS = "apikeys.json"
_SECRET = "secret_key"
_LOCK = ".accounts.lock"
_FORMAT = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_SETTLE_NS = 200_000_000
_MAX_PASSWORD = 4096
# werkzeug's defaults (generate_password_hash, method "scrypt"): N=2**15, r=8, p=1, 16-character salt.
_SCRYPT = (2 ** 15, 8, 1)
_SALT_CHARS = string.ascii_letters + string.digits
# Hashed for unknown names so that a sign-in takes as long whether or not the name exists.
_DUMMY_HASH = "scrypt:32768:8:1$SegmentLensDummy$" + "0" * 128


class AccountsError(Exception):
    """users.json, apikeys.json or secret_key cannot be used; the message names the file in one line."""


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


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who asks for an action: the name written to the audit log and the role checked (None: no role).

    Parameters
    ----------
    name : str
    role : str or None
    """

    name: str
    role: str | None


#: The machine's own user: the command line, and a dashboard with no accounts on a loopback address.
LOCAL = Caller("local", "admin")
#: Nobody signed in (no role): every action is refused.
NOBODY = Caller("anonymous", None)


class Forbidden(PermissionError):
    """The caller's role does not allow the action; the message says who may, in one line."""

    def __init__(self, message: str, action: str = ""):
        super().__init__(message)
        self.action = action


def refusal(role: str | None, action: str) -> str:
    """Why ``role`` may not do ``action``, in one sentence.

    Parameters
    ----------
    role : str or None
    action : str

    Returns
    -------
    str
    """
    who = "analysts and admins" if ACTIONS.get(action, "admin") == "analyst" else "admins"
    if role is None:
        return f"Only {who} can do this; sign in first."
    return f"Only {who} can do this; you are signed in as {role}."


def require(caller: Caller, action: str) -> Caller:
    """Check that ``caller`` may do ``action``.

    Parameters
    ----------
    caller : Caller
    action : str
        A key of :data:`ACTIONS` (unknown actions need admin).

    Returns
    -------
    Caller
        ``caller``, for chaining.

    Raises
    ------
    Forbidden
        The role does not allow it (or there is no role).
    """
    if not isinstance(caller, Caller) or not allowed(caller.role, action):
        raise Forbidden(refusal(getattr(caller, "role", None), action), action)
    return caller


# ---------------------------------------------------------------------- passwords
def hash_password(password: str) -> str:
    """Hash a password with scrypt, in werkzeug's ``scrypt:N:r:p$salt$hex`` format.

    Parameters
    ----------
    password : str

    Returns
    -------
    str
    """
    n, r, p = _SCRYPT
    salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    digest = hashlib.scrypt(password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p)
    return f"scrypt:{n}:{r}:{p}${salt}${digest.hex()}"


def check_password(pwhash: str, password: str) -> bool:
    """Whether ``password`` matches ``pwhash`` (a scrypt hash as written by :func:`hash_password` or werkzeug).

    Parameters
    ----------
    pwhash : str
    password : str

    Returns
    -------
    bool
        False also for a hash in another or an unreadable format.
    """
    try:
        method, salt, expected = pwhash.split("$", 2)
        name, *params = method.split(":")
        n, r, p = (map(int, params) if params else _SCRYPT)
    except (AttributeError, ValueError):
        return False
    # Bounded so that a tampered users.json cannot make a sign-in allocate gigabytes.
    if name != "scrypt" or not (2 <= n <= 2 ** 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    try:
        digest = hashlib.scrypt(password.encode(), salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p + 2 ** 20)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest.hex().encode(), expected.encode())


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_name(name, what: str = "user") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"{what} name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def _check_role(role) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    return role


def _check_password_text(password) -> None:
    if not isinstance(password, str) or not password:
        raise ValueError("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > _MAX_PASSWORD:
        raise ValueError(f"the password is too long: at most {_MAX_PASSWORD} characters")


def _session_value() -> str:
    return secrets.token_urlsafe(12)


def _key_hash(key: str) -> str:
    # API keys carry 256 random bits, so a fast unsalted SHA-256 cannot be brute-forced and
    # keeps verification in microseconds; slow KDFs are for low-entropy human passwords.
    return hashlib.sha256(key.encode()).hexdigest()


# ---------------------------------------------------------------------- parsing
def _parse_users(path: Path, data) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
        raise AccountsError(f"{path} is not a users file (no 'users' object); fix it or remove it")
    if data.get("format", _FORMAT) != _FORMAT:
        raise AccountsError(f"{path} has format {data.get('format')!r}, this version of SegmentLens reads {_FORMAT}")
    for name, entry in data["users"].items():
        if not _NAME_RE.match(name) or not isinstance(entry, dict) or entry.get("role") not in ROLES \
                or not isinstance(entry.get("password"), str):
            raise AccountsError(f"{path}: the entry for user {name!r} is malformed (needs a known role and a "
                                "password hash); fix it or remove the user")
    return data["users"]


def _parse_keys(path: Path, data) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
        raise AccountsError(f"{path} is not an API keys file (no 'keys' object); fix it or remove it")
    if data.get("format", _FORMAT) != _FORMAT:
        raise AccountsError(f"{path} has format {data.get('format')!r}, this version of SegmentLens reads {_FORMAT}")
    for name, entry in data["keys"].items():
        if not _NAME_RE.match(name) or not isinstance(entry, dict) or entry.get("role") not in ROLES \
                or not isinstance(entry.get("sha256"), str) or not _HEX64_RE.match(entry["sha256"]):
            raise AccountsError(f"{path}: the entry for API key {name!r} is malformed (needs a known role and a "
                                "SHA-256); fix it or revoke the key")
    return data["keys"]


_PARSERS = {_USERS: _parse_users, _KEYS: _parse_keys}


class AccountStore:
    """Users and API keys of one deployment, stored in the model registry folder.

    Reads are cached per instance and re-parsed only when a file changes, so
    :meth:`verify_key`, :meth:`has_keys` and :meth:`has_users` cost a ``stat`` and a
    dict lookup; one instance may be shared by the threads of a worker.

    Parameters
    ----------
    root : path-like, optional
        The registry folder (default: :func:`core.versions.registry.models_dir`).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = models_dir(root)
        self._seen: dict = {}  # file name -> (file identity, parsed entries, index)
        self._paths = {name: os.fspath(self.root / name) for name in (_USERS, _KEYS)}  # str: stat on the hot path

    # ------------------------------------------------------------------ internals
    @contextlib.contextmanager
    def _locked(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / _LOCK, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _load(self, filename: str) -> dict:
        """Parse ``filename`` afresh: {} when absent; AccountsError when unreadable or malformed."""
        path = self.root / filename
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise AccountsError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise AccountsError(f"{path} is not valid JSON ({exc}); fix it or remove it") from None
        return _PARSERS[filename](path, data)

    def _cached(self, filename: str) -> tuple[dict, dict]:
        """(entries, index) of ``filename``, parsed again only when the file changed.

        Files are replaced by rename on every write, so (inode, mtime, size) identify a
        version of one. Timestamps tick coarsely and inodes are reused, so a file changed
        in the last moment is always re-read. Callers must not modify what is returned.
        """
        try:
            st = os.stat(self._paths[filename])
        except FileNotFoundError:
            identity, settled = None, True
        else:
            identity = (st.st_ino, st.st_mtime_ns, st.st_size)
            settled = time.time_ns() - st.st_mtime_ns > _SETTLE_NS
        seen = self._seen.get(filename)
        if seen is None or seen[0] != identity or not settled:
            entries = self._load(filename) if identity is not None else {}
            index = {e["sha256"]: {"name": n, "role": e["role"]} for n, e in entries.items()} \
                if filename == _KEYS else {}
            seen = (identity, entries, index)
            self._seen[filename] = seen
        return seen[1], seen[2]

    def _write(self, filename: str, entries: dict) -> None:
        key = "users" if filename == _USERS else "keys"
        payload = json.dumps({"format": _FORMAT, key: entries}, indent=2, sort_keys=True).encode()
        # atomic_write's temporary file comes from mkstemp, created 0600, and the rename keeps it.
        atomic_write(self.root / filename, payload)
        self._seen.pop(filename, None)

    # ------------------------------------------------------------------ users
    def has_users(self) -> bool:
        """Whether at least one user exists (then sign-in is required).

        Returns
        -------
        bool
        """
        return bool(self._cached(_USERS)[0])

    def users(self) -> list[dict]:
        """Every user, by name: ``name``, ``role``, ``created`` (never the password hash).

        Returns
        -------
        list of dict
        """
        entries = self._cached(_USERS)[0]
        return [{"name": n, "role": e["role"], "created": e.get("created", "")} for n, e in sorted(entries.items())]

    def get_user(self, name: str) -> dict | None:
        """One user (``name``, ``role``, ``created``), or None when there is no such user.

        Parameters
        ----------
        name : str

        Returns
        -------
        dict or None
        """
        entry = self._cached(_USERS)[0].get(name) if isinstance(name, str) else None
        return None if entry is None else {"name": name, "role": entry["role"], "created": entry.get("created", "")}

    def add_user(self, name: str, role: str, password: str) -> dict:
        """Create a user.

        Parameters
        ----------
        name : str
            1-64 letters, digits, ``.``, ``_`` or ``-``; unique ignoring case.
        role : str
            One of :data:`ROLES`.
        password : str
            At least :data:`MIN_PASSWORD_LENGTH` characters.

        Returns
        -------
        dict
            ``name``, ``role``, ``created``.

        Raises
        ------
        ValueError
            A bad name, role or password, or a user of that name exists.
        """
        return self._add_user(name, role, password, only_if_empty=False)

    def _add_user(self, name: str, role: str, password: str, *, only_if_empty: bool) -> dict | None:
        _check_name(name)
        _check_role(role)
        _check_password_text(password)
        pwhash = hash_password(password)  # slow: outside the lock
        with self._locked():
            users = self._load(_USERS)
            if only_if_empty and users:
                return None
            clash = next((n for n in users if n.lower() == name.lower()), None)
            if clash is not None:
                raise ValueError(f"a user named {clash!r} already exists")
            users[name] = {"role": role, "password": pwhash, "created": _now(), "session": _session_value()}
            self._write(_USERS, users)
        return {"name": name, "role": role, "created": users[name]["created"]}

    def _last_admin(self, users: dict, name: str) -> bool:
        admins = [n for n, e in users.items() if e["role"] == "admin"]
        return admins == [name] and len(users) > 1

    def remove_user(self, name: str) -> None:
        """Delete a user.

        Parameters
        ----------
        name : str

        Raises
        ------
        ValueError
            No such user, or it is the last admin while other users remain (nobody could
            manage them from the dashboard; removing the only user returns to no-sign-in mode).
        """
        with self._locked():
            users = self._load(_USERS)
            if name not in users:
                raise ValueError(f"no user named {name!r}")
            if self._last_admin(users, name):
                raise ValueError(f"{name!r} is the last admin; make another user admin first")
            del users[name]
            self._write(_USERS, users)

    def set_role(self, name: str, role: str) -> str:
        """Change a user's role.

        Parameters
        ----------
        name : str
        role : str

        Returns
        -------
        str
            The previous role.

        Raises
        ------
        ValueError
            No such user, an unknown role, or demoting the last admin while other users remain.
        """
        _check_role(role)
        with self._locked():
            users = self._load(_USERS)
            if name not in users:
                raise ValueError(f"no user named {name!r}")
            previous = users[name]["role"]
            if role != "admin" and self._last_admin(users, name):
                raise ValueError(f"{name!r} is the last admin; make another user admin first")
            users[name]["role"] = role
            users[name]["session"] = _session_value()  # sessions signed in under the old role end
            self._write(_USERS, users)
        return previous

    def set_password(self, name: str, password: str) -> None:
        """Change a user's password; every session of the user ends.

        Parameters
        ----------
        name : str
        password : str
            At least :data:`MIN_PASSWORD_LENGTH` characters.

        Raises
        ------
        ValueError
            No such user, or a bad password.
        """
        _check_password_text(password)
        pwhash = hash_password(password)  # slow: outside the lock
        with self._locked():
            users = self._load(_USERS)
            if name not in users:
                raise ValueError(f"no user named {name!r}")
            users[name]["password"] = pwhash
            users[name]["session"] = _session_value()
            self._write(_USERS, users)

    def end_sessions(self, name: str) -> bool:
        """End every dashboard session of a user (sign-out does this); False when there is no such user.

        Parameters
        ----------
        name : str

        Returns
        -------
        bool
        """
        with self._locked():
            users = self._load(_USERS)
            if name not in users:
                return False
            users[name]["session"] = _session_value()
            self._write(_USERS, users)
        return True

    def session_token(self, name: str) -> str | None:
        """The value a user's live sessions must carry (None: no such user, so no session is valid).

        A user written before this existed has ``""`` until their first sign-out or change.

        Parameters
        ----------
        name : str

        Returns
        -------
        str or None
        """
        entry = self._cached(_USERS)[0].get(name) if isinstance(name, str) else None
        if entry is None:
            return None
        value = entry.get("session", "")
        return value if isinstance(value, str) else None

    def authenticate(self, name: str, password: str) -> dict | None:
        """Check a sign-in.

        The password hash is computed even for an unknown name, so the time taken does
        not reveal which names exist.

        Parameters
        ----------
        name : str
        password : str

        Returns
        -------
        dict or None
            ``name`` and ``role`` when the password is right, else None.
        """
        if not isinstance(password, str) or len(password) > _MAX_PASSWORD:
            return None
        entry = self._cached(_USERS)[0].get(name) if isinstance(name, str) else None
        ok = check_password(entry["password"] if entry else _DUMMY_HASH, password)
        return {"name": name, "role": entry["role"]} if ok and entry else None

    # ------------------------------------------------------------------ API keys
    def has_keys(self) -> bool:
        """Whether at least one API key exists (then the API needs one).

        Returns
        -------
        bool
        """
        return bool(self._cached(_KEYS)[0])

    def keys(self) -> list[dict]:
        """Every API key, by name: ``name``, ``role``, ``prefix`` (for recognising it), ``created``; never a hash.

        Returns
        -------
        list of dict
        """
        entries = self._cached(_KEYS)[0]
        return [{"name": n, "role": e["role"], "prefix": e.get("prefix", ""), "created": e.get("created", "")}
                for n, e in sorted(entries.items())]

    def create_key(self, name: str, role: str) -> str:
        """Create an API key; only its SHA-256 is stored.

        Parameters
        ----------
        name : str
            What the key is for (1-64 letters, digits, ``.``, ``_`` or ``-``); unique.
        role : str
            One of :data:`ROLES`.

        Returns
        -------
        str
            The key, ``slk_`` + 43 URL-safe characters: shown once, it cannot be recovered.

        Raises
        ------
        ValueError
            A bad name or role, or a key of that name exists.
        """
        _check_name(name, "API key")
        _check_role(role)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._locked():
            keys = self._load(_KEYS)
            if name in keys:
                raise ValueError(f"an API key named {name!r} already exists; revoke it first or choose another name")
            keys[name] = {"role": role, "sha256": _key_hash(key), "prefix": key[:len(KEY_PREFIX) + 6],
                          "created": _now()}
            self._write(_KEYS, keys)
        return key

    def revoke_key(self, name: str) -> None:
        """Delete an API key: requests carrying it are refused from then on.

        Parameters
        ----------
        name : str

        Raises
        ------
        ValueError
            No key of that name.
        """
        with self._locked():
            keys = self._load(_KEYS)
            if name not in keys:
                raise ValueError(f"no API key named {name!r}")
            del keys[name]
            self._write(_KEYS, keys)

    def verify_key(self, key: str) -> dict | None:
        """The key's ``name`` and ``role``, or None for an unknown or revoked key.

        Parameters
        ----------
        key : str
            As sent in ``Authorization: Bearer KEY``.

        Returns
        -------
        dict or None
            A fresh dict (safe to modify).

        Raises
        ------
        AccountsError
            apikeys.json is malformed.
        """
        if not isinstance(key, str) or not key.startswith(KEY_PREFIX) or len(key) > 256:
            return None
        # A dict lookup by SHA-256 leaks at most timing about the hash of the caller's own guess,
        # which tells nothing about any stored key's preimage.
        found = self._cached(_KEYS)[1].get(_key_hash(key))
        return dict(found) if found else None


# ---------------------------------------------------------------------- deployment
def secret_key(root: str | os.PathLike | None = None) -> bytes:
    """The key signing session cookies: ``SEGMENTLENS_SECRET_KEY``, else the file ``secret_key`` in ``root``.

    The file is created once with 32 random bytes and mode 0600: written to a
    temporary file then hard-linked into place, which fails if another process won the
    race, so every gunicorn worker ends up with the same complete key.

    Parameters
    ----------
    root : path-like, optional
        The registry folder (default: :func:`core.versions.registry.models_dir`).

    Returns
    -------
    bytes

    Raises
    ------
    AccountsError
        The file exists but is not 32 bytes, or cannot be read or created.
    """
    env = os.environ.get("SEGMENTLENS_SECRET_KEY")
    if env:
        return env.encode()
    folder = models_dir(root)
    path = folder / _SECRET
    try:
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{_SECRET}.", suffix=".tmp", dir=folder)  # mode 0600
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(32))
                    fh.flush()
                    os.fsync(fh.fileno())
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        data = path.read_bytes()
    except OSError as exc:
        raise AccountsError(f"{path} cannot be read or created ({exc.strerror or exc})") from None
    if len(data) != 32:
        raise AccountsError(f"{path} is damaged ({len(data)} bytes, expected 32); delete it to make a new one "
                            "(everyone will have to sign in again)")
    return data


def bootstrap_admin(store: AccountStore) -> str | None:
    """Create the first admin from ``SEGMENTLENS_ADMIN_PASSWORD`` (for container platforms).

    Only when that variable is set and no user exists; the name is ``SEGMENTLENS_ADMIN_USER``
    (default ``admin``). Safe when several workers start at once: one creates the user.

    Parameters
    ----------
    store : AccountStore

    Returns
    -------
    str or None
        The name of the user created, or None when nothing was done.

    Raises
    ------
    AccountsError
        The variables hold an invalid name or a too-short password.
    """
    password = os.environ.get("SEGMENTLENS_ADMIN_PASSWORD")
    if not password or store.has_users():
        return None
    name = os.environ.get("SEGMENTLENS_ADMIN_USER") or "admin"
    try:
        created = store._add_user(name, "admin", password, only_if_empty=True)
    except ValueError as exc:
        raise AccountsError(f"SEGMENTLENS_ADMIN_USER/SEGMENTLENS_ADMIN_PASSWORD: {exc}") from None
    return created["name"] if created else None
