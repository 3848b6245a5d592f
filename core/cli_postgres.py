"""PostgreSQL URLs on the command line: ``--data postgresql://...`` (with ``--query``) and ``score --out postgresql://...``.

Registered by :mod:`core.cli`: :func:`add_options` adds ``--query`` (and ``score --mode``);
:func:`run` wraps a command. A database source is copied to a temporary file by COPY
(:func:`core.postgres.local_copy`) and the command reads that file as it reads any file, so
customer tables, transaction logs and the canonical layout all go through the same column
mapping. A version trained from a database records the URL without its password as its
source. ``score --out`` with a URL writes the scores to the table atomically
(:func:`core.postgres.write_scores`).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from . import postgres

__all__ = ["add_options", "run", "DATA_COMMANDS"]

#: Commands whose ``--data`` may be a PostgreSQL URL.
DATA_COMMANDS = ("train", "sweep", "score", "stability", "customers")


def add_options(sub: argparse._SubParsersAction) -> None:
    """Add ``--query`` to the commands that read ``--data``, and ``--mode`` to ``score``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
    """
    for name in DATA_COMMANDS:
        parser = sub.choices.get(name)
        if parser is None:
            continue
        parser.add_argument("--query", metavar="SQL",
                            help="with --data postgresql://user@host/db: read the rows of this SELECT "
                                 "(else ?table=schema.table in the URL)")
    score = sub.choices.get("score")
    if score is not None:
        score.add_argument("--mode", choices=postgres.MODES, default="replace",
                           help="with --out postgresql://...?table=schema.table: replace the table (default) or "
                                "upsert by id")


def _versions(models) -> set[str]:
    from .registry import Registry

    return {v["version"] for v in Registry(models).versions()}


def run(args: argparse.Namespace, command) -> int:
    """Run ``command(args)``, with database URLs in ``--data``/``--out`` turned into temporary files.

    Parameters
    ----------
    args : argparse.Namespace
    command : callable
        The sub-command's function.

    Returns
    -------
    int
        The command's exit status.
    """
    data, query, out = getattr(args, "data", None), getattr(args, "query", None), getattr(args, "out", None)
    pg_in, pg_out = postgres.is_url(data), args.command == "score" and postgres.is_url(out)
    if query and not pg_in:
        raise postgres.PostgresError("--query needs --data postgresql://user@host/db")
    if not (pg_in or pg_out):
        return command(args)
    target = postgres.parse(out, need_table=True) if pg_out else None
    models = getattr(args, "models", None)
    before = _versions(models) if pg_in and args.command == "train" else set()
    with tempfile.TemporaryDirectory(prefix="segmentlens-pg-") as tmp:
        shown = None
        if pg_in:
            source = postgres.parse(data, query)
            path = Path(tmp) / source.file_name
            rows = postgres.export(source, path)
            if not getattr(args, "quiet", False):
                print(f"read {rows:,} rows from {source.display}", file=sys.stderr)
            args.data, shown = str(path), source.display
        if pg_out:
            postgres.connect(target).close()  # a wrong password or host fails before scoring
            args.out = str(Path(tmp) / "scores.csv")
        status = command(args)
        if status == 0 and shown and args.command == "train":
            from .registry import Registry

            registry = Registry(models)
            for version in sorted(_versions(models) - before):
                # The temporary copy is gone after this run: the version names the database, password removed.
                registry.update_meta(version, data_source=shown, data_path=None, data_url=shown)
        if status == 0 and pg_out:
            from .registry import Registry

            version = getattr(args, "version", None) or Registry(models).active_version()
            rows = postgres.write_scores(out, postgres.read_scores_csv(args.out), model_version=version,
                                         mode=args.mode)
            print(f"wrote {rows:,} rows to table {target.table} of {target.display} ({args.mode})", file=sys.stderr)
    return status
