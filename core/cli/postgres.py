"""PostgreSQL URLs on the command line: ``--data postgresql://...`` (with ``--query``) and ``score --out postgresql://...``.

Registered by :mod:`core.cli.commands`: :func:`add_options` adds ``--query`` (and ``score --mode``);
:func:`run` wraps a command. A database source is copied to a temporary file by COPY
(:func:`core.reading.postgres.export`) and the command reads that file as it reads any file, so
every input kind goes through the same column mapping; of a transaction log only the head, the
source going on as ``args.database`` to be grouped on the server (:func:`_copy_for`). A version
trained from a database records the URL without its password. ``score --out`` with a URL writes
the scores to the table atomically (:func:`core.reading.postgres.write_scores`). pandas and
psycopg are imported only when a command runs (``--help`` stays fast).
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["add_options", "run", "sync", "last_sync", "DATA_COMMANDS", "SYNC_ACTION"]

#: Audit log action of a rewrite of the ``SEGMENTLENS_SYNC_URL`` table.
SYNC_ACTION = "db-sync"

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
                                 "(default: the table named by ?table=schema.table in the URL)")
        parser.set_defaults(database=None)  # the PostgreSQL source a --data copy holds the head of (run)
    score = sub.choices.get("score")
    if score is not None:  # the choices are core.reading.postgres.MODES (not imported: it loads pandas)
        score.add_argument("--mode", choices=("replace", "upsert"), default="replace",
                           help="with --out postgresql://...?table=schema.table: replace the table or upsert by id "
                                "(default: replace)")


def _versions(models) -> set[str]:
    from core.versions.registry import Registry

    return {v["version"] for v in Registry(models).versions()}


def run(args: argparse.Namespace, command, rerun=None) -> int:
    """Run ``command(args)``, with database URLs in ``--data``/``--out`` turned into temporary files.

    After ``models activate`` or ``models rollback``, the ``SEGMENTLENS_SYNC_URL`` table (when set)
    is rewritten with the newly active version's segments (:func:`sync`).

    Parameters
    ----------
    args : argparse.Namespace
    command : callable
        The sub-command's function.
    rerun : callable, optional
        The CLI's ``main`` (argv list -> exit status), which :func:`sync` scores through.

    Returns
    -------
    int
        The command's exit status.
    """
    from core.reading import postgres

    if args.command == "models" and getattr(args, "action", None) in ("activate", "rollback"):
        status = command(args)
        if status == 0 and rerun is not None and os.environ.get(postgres.SYNC_ENV):
            sync(args.models, rerun, action=args.action)
        return status
    data, query, out = getattr(args, "data", None), getattr(args, "query", None), getattr(args, "out", None)
    pg_in, pg_out = postgres.is_url(data), args.command == "score" and postgres.is_url(out)
    if query and not pg_in:
        raise postgres.PostgresError("--query needs --data postgresql://user@host/db")
    if not (pg_in or pg_out):
        return command(args)
    if pg_out and getattr(args, "engine", "numpy") != "numpy":
        raise postgres.PostgresError("score --out postgresql://... writes with the numpy engine; leave out --engine")
    target = postgres.parse(out, need_table=True) if pg_out else None
    models = getattr(args, "models", None)
    before = _versions(models) if pg_in and args.command == "train" else set()
    with tempfile.TemporaryDirectory(prefix="segmentlens-pg-") as tmp:
        shown = None
        if pg_in and getattr(args, "engine", "numpy") == "spark" and args.command == "train":
            # The Spark engine reads the table itself through JDBC (core.reading.spark_cleaning.read_table).
            source = postgres.parse(data, query)
            if query:
                raise postgres.PostgresError("--engine spark reads a table through JDBC: name it with ?table=... "
                                             "(a view works for a query)")
            shown = source.display
        elif pg_in:
            source = postgres.parse(data, query)
            path = Path(tmp) / source.file_name
            rows = _copy_for(args, source, path)
            if not getattr(args, "quiet", False):
                print(f"read {rows:,} rows from {source.display}" if rows else
                      f"{source.display}: a transaction log, aggregated on the server where it can be",
                      file=sys.stderr)
            args.data, shown = str(path), source.display
        if pg_out:
            postgres.connect(target).close()  # a wrong password or host fails before scoring
            args.out = str(Path(tmp) / "scores.csv")
        status = command(args)
        if status == 0 and shown and args.command == "train":
            from core.versions.registry import Registry

            registry = Registry(models)
            for version in sorted(_versions(models) - before):
                # The temporary copy is gone after this run: the version names the database, password removed.
                registry.update_meta(version, data_source=shown, data_path=None, data_url=postgres.safe_url(data),
                                     data_query=query)
        if status == 0 and pg_out:
            from core.versions.registry import Registry

            version = getattr(args, "version", None) or Registry(models).active_version()
            rows = postgres.write_scores(out, postgres.read_scores_csv(args.out), model_version=version,
                                         mode=args.mode)
            print(f"wrote {rows:,} rows to table {target.table} of {target.display} ({args.mode})", file=sys.stderr)
    return status


def _copy_for(args: argparse.Namespace, source, path: Path) -> int:
    """Copy the source (a :class:`core.reading.postgres.PgSource`) to ``path``: every row, or of a log the head.

    A transaction log read by the input stage (``train``, ``customers``, ``score`` of a log's
    version, numpy engine) is copied only for its first :data:`core.reading.pg_aggregate.HEAD_ROWS`
    rows (the layout and mapping are detected from them) and ``args.database`` is set to the source,
    so :func:`core.reading.mapping.prepare_input` groups it on the server.

    Returns
    -------
    int
        Rows copied; 0 when only the head of a log was.
    """
    from core.reading import postgres
    from core.reading.pg_aggregate import HEAD_ROWS

    if args.command not in ("train", "customers", "score") or getattr(args, "engine", "numpy") != "numpy":
        return postgres.export(source, path)
    from core.cli.data import input_mapping
    from core.versions.pipeline import input_kind

    head = postgres.export(source, path, limit=HEAD_ROWS)
    if head < HEAD_ROWS:  # the whole source is already here
        return head
    kind, mapping = input_mapping(args)
    if input_kind(path, kind, mapping, source.file_name) != "transactions":
        return postgres.export(source, path)
    args.database = source
    return 0


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:?"


def sync(models, rerun, *, action: str = "activate", url: str | None = None, actor: str | None = None) -> bool:
    """Rewrite the sync table with the active version's segments of its training data; audited.

    The one sync of both the CLI (``models activate|rollback``) and the dashboard's version
    actions. The version's source is scored again: its database URL (password never stored;
    credentials from the environment) or its training file when that still exists. A failure is
    reported on stderr and in the audit log and leaves the table as it was; the activation stands.

    Parameters
    ----------
    models : path-like or None
        The registry folder.
    rerun : callable
        The CLI's ``main``.
    action : str
        What triggered the sync (``activate`` or ``rollback``), for the audit entry.
    url : str, optional
        Default: ``SEGMENTLENS_SYNC_URL``.
    actor : str, optional
        Who activated (the audit entry's user); default ``cli:<login>``.

    Returns
    -------
    bool
        True when the table was rewritten.
    """
    from core.access.audit import AuditLog
    from core.reading import postgres
    from core.versions.registry import Registry

    url = url or os.environ.get(postgres.SYNC_ENV)
    who = actor or _actor()
    registry = Registry(models)
    audit = AuditLog(registry.root)
    shown = postgres.safe_url(url)
    version = registry.active_version()
    meta = registry.metadata(version)
    source = meta.get("data_url") or (meta.get("data_path") if meta.get("data_path")
                                       and Path(meta["data_path"]).exists() else None)
    if source is None:
        detail = f"{version}: its training data cannot be read again (an upload or a moved file)"
        audit.append(who, SYNC_ACTION, shown, "failed", detail)
        print(f"sync of {shown} skipped: {detail}", file=sys.stderr)
        return False
    argv = ["score", "--data", source, "--models", str(registry.root), "--version", version, "--out", url,
            "--mode", "replace", "--quiet"]
    if meta.get("data_url") and meta.get("data_query"):
        argv[3:3] = ["--query", meta["data_query"]]
    status = rerun(argv)
    if status != 0:
        audit.append(who, SYNC_ACTION, shown, "failed", f"{version} after {action}: exit {status}")
        return False
    try:
        target = postgres.parse(url, need_table=True)
        from psycopg import sql

        with postgres.connect(target) as conn:
            rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target.relation())).fetchone()[0]
    except Exception as exc:  # the table was written; only its count could not be read back
        audit.append(who, SYNC_ACTION, shown, "ok", f"{version} after {action}: rows not counted ({exc})"[:300])
        return True
    audit.append(who, SYNC_ACTION, shown, "ok", f"{version} after {action}: {rows} rows")
    print(f"synced {rows:,} rows of {version} to {shown}", file=sys.stderr)
    return True


def last_sync(models=None) -> dict | None:
    """The latest sync of the table (for the /data page): time, table, outcome, detail (version, rows).

    Parameters
    ----------
    models : path-like, optional

    Returns
    -------
    dict or None
    """
    from core.access.audit import AuditLog

    entries = [e for e in AuditLog(models).entries() if e.get("action") == SYNC_ACTION]
    return entries[-1] if entries else None
