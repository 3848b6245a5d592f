"""Command line for segments over time on an order log: ``python -m core migration``.

Registered by :mod:`core.cli.commands`. Bad input (a date outside the log, a version trained on a customer
table, an unknown segment) ends with exit status 2 and one line on stderr: ``MigrationError`` is a
ValueError, which ``core.cli.commands.main`` reports that way; nothing is written then.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from core.cli.options import add_models

__all__ = ["add_parsers", "run", "COMMANDS"]


def add_parsers(sub) -> None:
    """Add the ``migration`` sub-command to ``python -m core``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "migration", help="segments over time on an order log: snapshots, who moved where, movers",
        description="Score each customer as of month (or quarter) ends with the version's model (only purchases up "
                    "to each date count) and show how customers moved between segments. With --movers, write the "
                    "customers who moved between the first and the last snapshot (--from / --to choose them).")
    p.add_argument("--data", metavar="LOG", help="the order log (default: the file the version was trained on)")
    add_models(p)
    p.add_argument("--version", metavar="VERSION", help="model version trained on the log (default: the active one)")
    p.add_argument("--every", choices=("month", "quarter"), default="month", help="snapshot dates (default: month)")
    p.add_argument("--from", dest="start", metavar="DATE", help="first snapshot date, yyyy-mm-dd")
    p.add_argument("--to", dest="end", metavar="DATE", help="last snapshot date, yyyy-mm-dd (default: the log's last)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--movers", metavar="FROM:TO",
                   help="segments (numbers or names; FROM may be new, either side * for any) of the movers to write")
    p.add_argument("--out", metavar="FILE", help="CSV file for the movers (formula-safe)")
    p.add_argument("--audience", metavar="FILE",
                   help="also write the movers as a campaign audience (ID, segment, group, propensity)")
    p.add_argument("--holdout", default="0.1", metavar="F", help="holdout share of that audience, 0-0.5 (default 0.1)")
    p.add_argument("--seed", default="42", metavar="S", help="seed of the holdout (default 42)")


def _check_out(path: str | None, flag: str):
    from core.insight.migration import MigrationError

    if path is None:
        return None
    out = Path(path)
    if not out.parent.exists():
        raise MigrationError(f"{flag}: folder {out.parent} does not exist")
    if out.is_dir():
        raise MigrationError(f"{flag}: {out} is a folder; give a file name")
    return out


def run(args) -> int:
    """Run ``python -m core migration``; returns the exit status."""
    from core.versions.exports import to_safe_csv
    from core.insight.migration import (
        MigrationError, movers, movers_audience, movers_csv, parse_segment_pair, run_for_version, store, version_log,
    )
    from core.versions.registry import Registry

    if (args.movers is None) != (args.out is None):
        raise MigrationError("--movers and --out go together: --movers FROM:TO --out FILE")
    if args.audience and not args.movers:
        raise MigrationError("--audience needs --movers FROM:TO")
    out, audience_out = _check_out(args.out, "--out"), _check_out(args.audience, "--audience")
    try:
        holdout, seed = float(args.holdout), int(args.seed)
    except ValueError:
        raise MigrationError("--holdout must be a share such as 0.1 and --seed a whole number") from None
    registry = Registry(args.models)
    log = version_log(registry, args.version, args.data)
    pair = parse_segment_pair(args.movers, log["names"]) if args.movers else None
    result = run_for_version(log, every=args.every, start=args.start, end=args.end)
    if pair is not None:
        ends = [result.dates[0], result.dates[-1]]
        kept = run_for_version(log, dates=ends, keep=ends)
        frame = movers(kept, *ends, from_segment=pair[0], to_segment=pair[1])
        out.write_text(movers_csv(frame), encoding="utf-8")
        if audience_out is not None:
            audience_out.write_text(to_safe_csv(movers_audience(frame, holdout=holdout, seed=seed)), encoding="utf-8")
        print(f"{len(frame):,} customers moved {args.movers} between {ends[0]} and {ends[1]} -> {out}",
              file=sys.stderr)
    whole = log["own"] and args.start is None and args.end is None
    if whole:  # the page reads it from the version instead of reading the log again
        store(registry, log, args.every, result)
    payload = {"model_version": log["version"], "source": log["name"], **result.to_dict()}
    if args.json:
        print(json.dumps(payload, separators=(",", ":")))
        return 0
    names = log["names"]
    lines = [f"model {log['version']} on {log['name']}: {len(result.dates)} snapshots every {args.every}, "
             f"{result.dates[0]} to {result.dates[-1]} ({result.rows:,} rows read once)"]
    header = f"{'date':<11} {'customers':>9}  " + "  ".join(f"{i}:{names[i][:14]:>14}" for i in range(len(names)))
    lines.append(header)
    for s in result.snapshots:
        lines.append(f"{s['date']:<11} {s['customers']:>9,}  "
                     + "  ".join(f"{s['sizes'][str(i)]:>16,}" for i in range(len(names))))
    lines += ["largest moves:"] + [f"  {h}" for h in result.headlines] if result.headlines else []
    lines += [f"note: {n}" for n in result.notes]
    print("\n".join(lines))
    return 0


COMMANDS = {"migration": run}
