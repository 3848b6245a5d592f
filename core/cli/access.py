"""Command line for access control: ``python -m core users|apikeys|audit``.

Registered by :mod:`core.cli.commands`. Bad input ends with exit status 2 and one line on
stderr. Every change to a user or key, and every refused attempt, is appended to
the audit log as ``cli:<os user>``.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from core.access.accounts import ROLES, AccountsError, AccountStore
from core.access.audit import AuditLog
from core.cli.options import add_models, whole_number
from core.versions.registry import models_dir

__all__ = ["add_parsers", "run", "COMMANDS", "cli_user"]

_ROLES = "|".join(ROLES)


class _Refused(Exception):
    """Bad input found before anything was tried (not an attempted change: not audited)."""


def _leaf(sub, name: str, help_: str, json_: bool = False) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".")
    add_models(p)
    if json_:
        p.add_argument("--json", action="store_true", help="print JSON")
    return p


def add_parsers(sub) -> None:
    """Add the ``users``, ``apikeys`` and ``audit`` sub-commands to ``python -m core``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser("users", help="add, list, remove users or change their role",
                       description="Dashboard users. Once one exists, the dashboard needs a sign-in.")
    usub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = _leaf(usub, "add", "create a user")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--role", required=True, metavar=_ROLES, help="what the user may do")
    q.add_argument("--password-stdin", action="store_true",
                   help="read the password from one line of standard input (default: prompt twice)")
    _leaf(usub, "list", "list users (never their passwords)", json_=True)
    q = _leaf(usub, "remove", "delete a user")
    q.add_argument("name", metavar="NAME")
    q = _leaf(usub, "set-password", "change a user's password (ends their sessions)")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--password-stdin", action="store_true",
                   help="read the password from one line of standard input (default: prompt twice)")
    q = _leaf(usub, "sign-out", "end every dashboard session of a user")
    q.add_argument("name", metavar="NAME")
    q = _leaf(usub, "set-role", "change a user's role (ends their sessions)")
    q.add_argument("name", metavar="NAME")
    q.add_argument("role", metavar=_ROLES)

    p = sub.add_parser("apikeys", help="create, list or revoke API keys",
                       description="Keys for the JSON API. Once one exists, the API needs 'Authorization: Bearer KEY'.")
    ksub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = _leaf(ksub, "create", "create an API key and print it once", json_=True)
    q.add_argument("--name", required=True, metavar="NAME", help="what the key is for, e.g. crm-sync")
    q.add_argument("--role", required=True, metavar=_ROLES, help="what the key may do")
    _leaf(ksub, "list", "list API keys (name, role, first characters)", json_=True)
    q = _leaf(ksub, "revoke", "delete an API key")
    q.add_argument("name", metavar="NAME")

    p = _leaf(sub, "audit", "print the audit log, oldest first", json_=True)
    p.add_argument("--limit", type=whole_number("--limit", 0), metavar="N", help="only the last N entries")


def cli_user() -> str:
    """The audit log's name for whoever runs the command line: ``cli:<os user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no name for this uid (containers)
        return f"cli:uid{os.getuid()}"


def _read_password(args) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1].rstrip("\r") if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise _Refused("no password: pipe it with --password-stdin, or run in a terminal to be prompted")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise _Refused("the passwords do not match")
    return first


def _printable(value) -> str:
    # Log values come from users (segment names, file names): no terminal control sequences.
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(value))


def _table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_printable(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _change(args, action: str, target: str, do) -> object:
    """Run ``do()`` and audit it (ok or failed); a failure is re-raised."""
    log = AuditLog(args.models)
    try:
        result = do()
    except (ValueError, AccountsError) as exc:
        if log.root.is_dir():
            log.append(cli_user(), action, target, "failed", str(exc))
        raise
    detail = result if isinstance(result, str) else ""
    log.append(cli_user(), action, target, "ok", detail)
    return result


def _users(args) -> int:
    store = AccountStore(args.models)
    if args.action == "list":
        users = store.users()
        if args.json:
            print(json.dumps(users, indent=2))
        elif not users:
            print(f"no users in {store.root}: the dashboard needs no sign-in "
                  "(read-only when served beyond this machine)")
        else:
            print(_table(users, ["name", "role", "created"]))
    elif args.action == "add":
        password = _read_password(args)

        def add():
            store.add_user(args.name, args.role, password)
            return f"role {args.role}"
        _change(args, "user-add", args.name, add)
        print(f"user {args.name} added with role {args.role}")
    elif args.action == "remove":
        _change(args, "user-remove", args.name, lambda: store.remove_user(args.name))
        print(f"user {args.name} removed")
    elif args.action == "set-password":
        password = _read_password(args)
        _change(args, "user-set-password", args.name, lambda: store.set_password(args.name, password))
        print(f"user {args.name}: password changed; their sessions have ended")
    elif args.action == "sign-out":
        def end():
            if not store.end_sessions(args.name):
                raise ValueError(f"no user named {args.name!r}")
        _change(args, "user-sign-out", args.name, end)
        print(f"user {args.name}: every session has ended")
    else:
        previous = _change(args, "user-set-role", args.name,
                           lambda: f"{store.set_role(args.name, args.role)} -> {args.role}")
        print(f"user {args.name}: {previous}")
    return 0


def _apikeys(args) -> int:
    store = AccountStore(args.models)
    if args.action == "list":
        keys = store.keys()
        if args.json:
            print(json.dumps(keys, indent=2))
        elif not keys:
            print(f"no API keys in {store.root}: the API needs no key")
        else:
            print(_table([{**k, "prefix": k["prefix"] + "…"} for k in keys], ["name", "role", "prefix", "created"]))
    elif args.action == "create":
        box = {}

        def create():
            box["key"] = store.create_key(args.name, args.role)
            return f"role {args.role}, prefix {box['key'][:10]}"
        _change(args, "key-create", args.name, create)
        if args.json:
            print(json.dumps({"key": box["key"], "name": args.name, "role": args.role}, indent=2))
        else:
            print(box["key"])
            print(f"API key {args.name!r} ({args.role}) created; it is shown only this once, so store it now",
                  file=sys.stderr)
    else:
        _change(args, "key-revoke", args.name, lambda: store.revoke_key(args.name))
        print(f"API key {args.name} revoked")
    return 0


def _audit(args) -> int:
    entries = AuditLog(args.models).entries(limit=args.limit)
    if args.json:
        print(json.dumps(entries, indent=2))
    elif not entries:
        print(f"the audit log in {models_dir(args.models)} is empty")
    else:
        print(_table(entries, ["time", "user", "action", "target", "outcome", "detail"]))
    return 0


def run(args) -> int:
    """Run a parsed ``users``, ``apikeys`` or ``audit`` command.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0 success; 2 bad input (one line on stderr).
    """
    try:
        return {"users": _users, "apikeys": _apikeys, "audit": _audit}[args.command](args)
    except (_Refused, ValueError, AccountsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\ninterrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "), file=sys.stderr)
        return 2


#: Sub-command name -> function, for :mod:`core.cli.commands`'s dispatch table.
COMMANDS = {"users": run, "apikeys": run, "audit": run}
