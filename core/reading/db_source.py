"""The database source an admin saved on the /data page (``db_source.json`` beside the registry).

What is kept is the URL **without** its password and, when given, the query: credentials come
from the server's environment (``PGPASSWORD``, ``.pgpass``, a service file or
``SEGMENTLENS_DB_SECRETS``), as on the command line. A URL with a password in it is refused
rather than kept: a password typed into a web form would travel through the browser and logs.
The file also names the upload token of the latest copy of the source, so a retrain from that
copy records the database (not the copy) as the version's source.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from core.reading import postgres

__all__ = ["SOURCE_FILE", "check", "load", "save", "mark_copy", "provenance"]

#: The saved source, in the registry folder.
SOURCE_FILE = "db_source.json"
_MAX_QUERY = 20_000


def _has_password(url: str) -> bool:
    parts = urlsplit(url.strip())
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    return ":" in userinfo or "password=" in parts.query.lower()


def check(url: str, query: str | None = None) -> dict:
    """A source as it would be saved: ``{"url", "query", "display"}``; one-line errors for bad input.

    Parameters
    ----------
    url : str
        ``postgresql://user@host:5432/db?table=schema.table`` (or without ``table`` with a query).
    query : str, optional
        A SELECT, read in a read-only transaction.

    Returns
    -------
    dict

    Raises
    ------
    core.reading.postgres.PostgresError
        Not a PostgreSQL URL, a password in it, no table and no query (or both), a bad table name,
        a query longer than 20,000 characters.
    """
    url = (url or "").strip()
    query = (query or "").strip() or None
    if not postgres.is_url(url):
        raise postgres.PostgresError("database URL: expected postgresql://user@host:5432/db?table=schema.table")
    if _has_password(url):
        raise postgres.PostgresError("database URL: leave the password out; the server reads it from PGPASSWORD, "
                                     "~/.pgpass, a service file or SEGMENTLENS_DB_SECRETS")
    if query is not None and len(query) > _MAX_QUERY:
        raise postgres.PostgresError(f"query: at most {_MAX_QUERY:,} characters")
    source = postgres.parse(url, query)
    return {"url": postgres.safe_url(url), "query": source.query, "display": source.display}


def _path(root) -> Path:
    return Path(root) / SOURCE_FILE


def load(root) -> dict | None:
    """The saved source (``url``, ``query``, ``display``, ``saved_by``, ``saved_at``, ``copy_token``) or None.

    Parameters
    ----------
    root : path-like
        The registry folder.

    Returns
    -------
    dict or None
        None when nothing is saved or the file is not a source (a damaged file is not trusted).
    """
    try:
        data = json.loads(_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    try:
        return dict(data, **check(data["url"], data.get("query")))
    except postgres.PostgresError:
        return None


def _write(root, data: dict) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".db_source.", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, _path(root))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save(root, url: str, query: str | None, user: str) -> dict:
    """Check and keep a source (replacing the saved one); returns it.

    Parameters
    ----------
    root : path-like
    url, query : str
    user : str
        Who saved it.

    Returns
    -------
    dict
    """
    source = check(url, query)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {"url": source["url"], "query": source["query"], "saved_by": str(user)[:80], "saved_at": now,
            "copy_token": None}
    _write(root, data)
    return dict(data, display=source["display"])


def mark_copy(root, token: str) -> None:
    """Name the upload token of the latest copy of the saved source.

    Parameters
    ----------
    root : path-like
    token : str
    """
    data = load(root)
    if data is not None:
        data.pop("display", None)
        _write(root, dict(data, copy_token=token))


def provenance(root, token) -> dict | None:
    """For a retrain from ``token``: what the version records as its source (None for any other upload).

    Parameters
    ----------
    root : path-like
    token : str

    Returns
    -------
    dict or None
        ``data_source`` (shown), ``data_url`` (no password) and ``data_query``.
    """
    data = load(root)
    if data is None or not token or data.get("copy_token") != token:
        return None
    return {"data_source": data["display"], "data_url": data["url"], "data_query": data.get("query")}
