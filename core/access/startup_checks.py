"""Checks of a deployment's setup, each answered with one line for people (container logs, /health).

- :func:`volume_problem`: a folder the server must write (the model registry with its accounts and
  audit log, the cache) that cannot be created or written, e.g. a volume owned by another user. The
  server cannot run then: gunicorn.conf.py prints the line and stops before any worker starts.
- :func:`setup_warnings`: what leaves the server running but not as intended: no user yet (the
  dashboard is read-only for every visitor on a non-loopback address until an admin exists), or a
  ``SEGMENTLENS_SPARK_MASTER`` that is malformed, unreachable, or set in an install without pyspark.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from core.access.accounts import AccountStore
from core.versions.registry import models_dir

__all__ = ["volume_problem", "setup_warnings", "no_user_warning", "spark_master_warning", "ADD_ADMIN_COMMAND"]

ADD_ADMIN_COMMAND = "python -m core users add NAME --role admin"


def _cache_dir() -> Path:
    # The dashboard's default (dashboard/services/cache.py) is <project>/.cache; core cannot import it.
    env = os.environ.get("SEGMENTLENS_CACHE_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / ".cache"


def volume_problem(folders: list[Path] | None = None) -> str | None:
    """The first folder the server cannot create or write a file in, as one line (None when all can).

    Parameters
    ----------
    folders : list of Path, optional
        Default: the model registry (``SEGMENTLENS_MODELS``) and the cache (``SEGMENTLENS_CACHE_DIR``).

    Returns
    -------
    str or None
    """
    for folder in folders if folders is not None else [models_dir(), _cache_dir()]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Creating a file is the real test: a folder can exist and still refuse this user.
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            return (f"SegmentLens cannot start: {folder} is not writable by user id {os.getuid()} "
                    f"({exc.strerror or exc}); give that user the volume (e.g. chown -R {os.getuid()} on it) "
                    "or mount a fresh one")
    return None


def no_user_warning(root: str | os.PathLike | None = None) -> str | None:
    """Say so when no user exists yet (and none is created from ``SEGMENTLENS_ADMIN_PASSWORD``).

    Parameters
    ----------
    root : path-like, optional
        The registry folder (default: ``SEGMENTLENS_MODELS`` or models/).

    Returns
    -------
    str or None
    """
    if os.environ.get("SEGMENTLENS_ADMIN_PASSWORD") or AccountStore(models_dir(root)).has_users():
        return None
    return ("no user yet: the dashboard is read-only for visitors (open only on 127.0.0.1); create the first "
            f"admin with `{ADD_ADMIN_COMMAND}` (or set SEGMENTLENS_ADMIN_PASSWORD)")


def spark_master_warning(timeout: float = 2.0) -> str | None:
    """What is wrong with ``SEGMENTLENS_SPARK_MASTER`` (None when unset or reachable).

    Parameters
    ----------
    timeout : float, default 2
        Seconds to wait for a remote master's port to accept a connection.

    Returns
    -------
    str or None
    """
    value = os.environ.get("SEGMENTLENS_SPARK_MASTER")
    if not value:
        return None
    try:
        from core.engines.spark_engine import check_master, resolve_master
    except ImportError:
        return (f"SEGMENTLENS_SPARK_MASTER={value!r} is set but pyspark is not installed "
                "(pip install -r requirements-spark.txt, or build the image with WITH_SPARK=1)")
    from core.engines.base import EngineError

    try:
        check_master(resolve_master(value), timeout=timeout)
    except EngineError as exc:
        return str(exc)
    return None


def setup_warnings(root: str | os.PathLike | None = None) -> list[str]:
    """Every setup warning (:func:`no_user_warning`, :func:`spark_master_warning`), one line each.

    Parameters
    ----------
    root : path-like, optional
        The registry folder (default: ``SEGMENTLENS_MODELS`` or models/).

    Returns
    -------
    list of str
    """
    return [w for w in (no_user_warning(root), spark_master_warning()) if w]
