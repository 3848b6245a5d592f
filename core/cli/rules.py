"""Command line for segment rules: ``python -m core rules [--data PATH] [--json]``.

Registered by :mod:`core.cli.commands`. Rules come from an explainable k-means threshold
tree (:mod:`core.insight.explanation`) grown for the active model on its customers. Bad input
ends with exit status 2 and one line on stderr.
"""
from __future__ import annotations

import json
import sys

from core.cli.options import add_models, check_features, version_or_active

__all__ = ["add_parsers", "run", "COMMANDS"]


def add_parsers(sub) -> None:
    """Add the ``rules`` sub-command to ``python -m core``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "rules", help="a short threshold rule per segment of the active model, with its fidelity",
        description="Grow an explainable k-means threshold tree (IMM, Dasgupta et al. 2020: k leaves, one per "
                    "segment) for the active model and print each segment's rule in feature units, as an SQL "
                    "WHERE clause and as a pandas query, with its fidelity (share of the segment's customers "
                    "the rule selects) and the price of explainability (rule-partition inertia / k-means inertia).")
    p.add_argument("--data", metavar="PATH",
                   help="customer file (default: the active model's training file, else $SEGMENTLENS_DATA, "
                        "data/marketing_campaign.csv or the sample)")
    add_models(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run(args) -> int:
    """Run ``rules``: exit status 0, or raise ValueError for bad input (reported by core.cli.commands)."""
    from pathlib import Path

    from core.versions.pipeline import prepare, resolve_data_path
    from core.versions.registry import Registry
    from core.insight.explanation import explain_model
    from core.versions.naming import segment_names

    registry = Registry(args.models)
    version = version_or_active(registry)
    model, meta = registry.load(version)
    source = args.data or (meta.get("data_path") if meta.get("data_path") and Path(meta["data_path"]).exists()
                           else None)
    if not args.quiet:
        print("load, clean, features", file=sys.stderr, flush=True)
    prepared = prepare(resolve_data_path(source))
    check_features(model, prepared.frame)
    if not args.quiet:
        print("threshold tree", file=sys.stderr, flush=True)
    rules = explain_model(model, prepared.frame)
    names = segment_names(meta, model.k)
    payload = {"model_version": version, "data_source": prepared.source, **rules.to_dict(names)}
    if args.json:
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    lines = [f"model {version}, {rules.n_customers:,} customers: the rules give {rules.fidelity:.1%} of customers "
             f"their segment; price of explainability {rules.price:.3f} (rule-partition inertia / k-means inertia)"]
    for seg in payload["segments"]:
        fid = "n/a" if seg["fidelity"] is None else f"{seg['fidelity']:.1%}"
        lines += [f"{seg['segment']} {seg['name']} (fidelity {fid}, {seg['n_segment']:,} customers)",
                  f"    {seg['rule']}", f"    SQL:    WHERE {seg['sql']}", f"    pandas: {seg['pandas']}"]
    print("\n".join(lines))
    return 0


COMMANDS = {"rules": run}
