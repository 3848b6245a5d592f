"""Command line for bringing your own data: ``python -m core customers``, ``train``/``score`` on any input.

Registered by :mod:`core.cli.commands`. ``customers`` turns a transaction log (or any customer
table) into the customer table SegmentLens segments; ``--input`` and ``--map`` on
``train`` and ``score`` read any kind of input (see :mod:`core.reading.mapping`); :mod:`core.cli.commands`
runs both through one recipe (:func:`core.versions.pipeline.make_version`) and :func:`score_mapped`.
Bad input ends with exit status 2 and one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.options import check_features, progress, version_or_active

__all__ = ["add_parsers", "COMMANDS", "mapping_arg", "input_mapping", "score_mapped"]


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", choices=["customers", "transactions", "canonical"],
                   help="kind of file (default: recognised from its columns)")
    p.add_argument("--map", metavar="MAP.json", dest="map_file",
                   help="column mapping: {\"input\": ..., \"columns\": {column: role}, \"features\": [...]} "
                        "(default: suggested from the columns' names and values)")


def add_parsers(sub) -> None:
    """Add ``customers`` and the ``--input``/``--map`` options of ``train`` and ``score``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
    """
    p = sub.add_parser(
        "customers", help="turn a transaction log (or any customer table) into the customer table",
        description="Aggregate a transaction log to one row per customer: ID, Recency, Frequency, Monetary, "
                    "Tenure, average order value, inter-purchase days, spend per category and channel mix when "
                    "mapped, and RFM scores and groups. Streams the log in chunks (bounded memory).")
    p.add_argument("--data", required=True, metavar="TRANSACTIONS", help="the transaction log or customer table")
    _add_input(p)
    p.add_argument("--out", required=True, metavar="CUSTOMERS.csv", help="CSV file to write")
    p.add_argument("--write-map", metavar="MAP.json", help="also write the mapping used (to edit and pass as --map)")
    p.add_argument("--chunk-rows", type=int, default=None, metavar="N", help="rows per chunk (default 500,000)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    for command in ("train", "score"):
        if command in sub.choices:
            _add_input(sub.choices[command])


def mapping_arg(args):
    """The ``--map`` file as a :class:`core.reading.mapping.Mapping` (None without one)."""
    from core.reading.mapping import Mapping

    if not getattr(args, "map_file", None):
        return None
    path = Path(args.map_file)
    if not path.is_file():
        raise ValueError(f"--map: no file {args.map_file}")
    return Mapping.from_json(path.read_bytes(), where=f"--map {path.name}")


def input_mapping(args) -> tuple:
    """The kind (None: recognised) and mapping ``--data`` is read with: ``--input``, ``--map``, for ``score`` the version's.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    (str or None, core.reading.mapping.Mapping or None)
    """
    mapping = mapping_arg(args)
    if args.command != "score":
        return args.input, mapping
    from core.reading.mapping import Mapping
    from core.versions.registry import Registry

    registry = Registry(args.models)
    version = version_or_active(registry, args.version)
    saved = None if mapping else registry.artifact_json(version, "mapping")
    mapping = mapping or (Mapping.from_dict(saved, where=f"{version} mapping") if saved else None)
    return args.input or (mapping.kind if mapping else "canonical"), mapping


def _customers(args) -> int:
    from core.versions.exports import to_safe_csv
    from core.reading.mapping import prepare_input

    step = progress(args.quiet)
    out = Path(args.out)
    if not out.parent.exists():
        raise ValueError(f"folder {out.parent} does not exist")
    prepared, mapping = prepare_input(args.data, kind=args.input, mapping=mapping_arg(args), progress=step,
                                      chunk_rows=args.chunk_rows, database=args.database)
    frame = prepared.frame
    if mapping.kind == "transactions":
        from core.reading.transactions import CUSTOMER_COLUMNS

        first = [c for c in CUSTOMER_COLUMNS if c in frame]
        rest = [c for c in frame.columns if c not in first and c not in ("Total_Spending", "Total_Purchases",
                                                                         "Customer_since")
                and not c.endswith("_log")]
        table = frame[first + rest]
    else:
        table = frame[[c for c in frame.columns if not c.endswith("_log")]]
    out.write_text(to_safe_csv(table), encoding="utf-8")
    if args.write_map:
        Path(args.write_map).write_bytes(mapping.to_json())
    summary = dict(frame.attrs.get("summary") or {})
    payload = {"input": mapping.kind, "customers": int(len(frame)), "rows_read": prepared.report.rows_read,
               "rows_used": prepared.report.rows_used, "columns": list(table.columns), "mapping": mapping.to_dict(),
               "cleaning": prepared.report.to_dict(), **summary}
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(f"wrote {len(table):,} customers ({', '.join(table.columns[:6])}, ...) from "
              f"{prepared.report.rows_read:,} rows of {prepared.source} ({mapping.kind}) -> {out}")
        if "nonpositive" in summary:
            print(f"{summary['nonpositive']:,} rows with an amount of zero or less were kept (returns, free items); "
                  f"total amount {summary['total_amount']:,.2f}; latest date {summary['latest_date']}")
    return 0


def score_mapped(args) -> bool:
    """``score`` of a version trained on a mapped input (or with ``--input``/``--map``); False for the canonical file.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    bool
        Whether the file was scored here.
    """
    from core.versions.exports import to_safe_csv
    from core.reading.mapping import prepare_input
    from core.versions.pipeline import resolve_data_path
    from core.versions.registry import Registry
    from core.versions.naming import segment_names

    kind, mapping = input_mapping(args)
    if kind == "canonical" and (mapping is None or mapping.kind == "canonical"):
        return False
    step = progress(args.quiet)
    model, meta = Registry(args.models).load(args.version)
    if mapping is not None:  # the columns' roles only: the version says which features it scores
        mapping.features, mapping.ranges = None, {}
    prepared, _ = prepare_input(resolve_data_path(args.data), kind=kind, mapping=mapping, progress=step,
                                database=args.database)
    check_features(model, prepared.frame)
    scores = model.score(prepared.frame)
    names = segment_names(meta, model.k)
    out = scores.assign(ID=prepared.frame["ID"].to_numpy(), segment_name=[names[s] for s in scores["segment"]])
    cols = ["ID", "segment", "segment_name", "confidence", "typicality"]
    if "RFM_group" in prepared.frame:
        out["RFM_group"] = prepared.frame["RFM_group"].to_numpy()
        cols.append("RFM_group")
    out = out[cols].round({"confidence": 4, "typicality": 4})
    path = Path(args.out)
    if not path.parent.exists():
        raise ValueError(f"folder {path.parent} does not exist")
    path.write_text(to_safe_csv(out), encoding="utf-8")
    print(f"scored {len(out):,} customers with model {meta['version']} -> {path}", file=sys.stderr)
    return True


COMMANDS = {"customers": _customers}
