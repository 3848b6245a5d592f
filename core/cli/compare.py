"""Command line for comparing algorithms: ``python -m core compare-algorithms``.

Registered by :mod:`core.cli.commands`, which also gives ``train`` and ``sweep`` their ``--algorithm``.
Bad input ends with exit status 2 and one line on stderr.
"""
from __future__ import annotations

import json
import sys

__all__ = ["add_parsers", "run", "COMMANDS", "parse_options", "split_features"]


def add_parsers(sub) -> None:
    """Add the ``compare-algorithms`` sub-command to ``python -m core``."""
    p = sub.add_parser(
        "compare-algorithms", help="every algorithm on the same data, features and k, with a recommendation",
        description="Fit k-means, Gaussian mixture, k-prototypes, HDBSCAN and consensus clustering on the same "
                    "customers, features and k; report silhouette, Davies-Bouldin, Calinski-Harabasz, BIC where "
                    "defined, bootstrap stability, prediction strength, sizes, pairwise agreement (adjusted Rand) "
                    "and which algorithm to believe.")
    p.add_argument("--data", metavar="PATH",
                   help="customer file (default: $SEGMENTLENS_DATA, else data/marketing_campaign.csv, else the sample)")
    p.add_argument("--features", metavar="A,B,..",
                   help="comma-separated features; categorical ones (Education, Marital_Status) go to kprototypes")
    p.add_argument("--algorithms", metavar="A,B,..", help="comma-separated (default: all)")
    p.add_argument("--k", type=int, default=6, help="number of segments (default 6)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--resamples", type=int, default=5, help="bootstrap refits for stability (default 5; 0: none)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def parse_options(items) -> dict:
    """``NAME=VALUE`` texts -> options (numbers read as numbers); a one-line ValueError otherwise."""
    out = {}
    for item in items or []:
        name, sep, text = str(item).partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--option expects NAME=VALUE, got {item[:40]!r}")
        value: object = text.strip()
        for cast in (int, float):
            try:
                value = cast(text)
                break
            except ValueError:
                continue
        out[name.strip()] = value
    return out


def split_features(text, frame):
    """(numeric features, categorical features) of a ``--features`` text for prepared customers."""
    from core.fitting.algorithm_fit import split_categorical
    from core.reading.prepared import parse_features

    requested, categorical = split_categorical(text, frame)
    numeric = parse_features(requested if not isinstance(requested, list) else ",".join(requested))
    return numeric, categorical


def run(args) -> int:
    """Run ``compare-algorithms``: exit status 0, or raise ValueError for bad input (reported by core.cli.commands)."""
    from core.fitting.compare_algorithms import compare
    from core.reading.prepared import prepare, resolve_data_path

    if not args.quiet:
        print("load, clean, features", file=sys.stderr, flush=True)
    prepared = prepare(resolve_data_path(args.data))
    features, categorical = split_features(args.features, prepared.frame)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()] if args.algorithms else None
    if not args.quiet:
        print("fit and measure each algorithm", file=sys.stderr, flush=True)
    result = compare(prepared.frame, features, algorithms=algorithms, k=args.k, categorical=categorical,
                     seed=args.seed, resamples=max(0, args.resamples))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(format_table(result))
    return 0


def _cell(value, digits=3) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def format_table(result: dict) -> str:
    """The comparison as a text table, the agreement matrix and the recommendation."""
    head = f"{'algorithm':<12} {'silhouette':>10} {'DB':>6} {'CH':>9} {'BIC':>11} {'stability':>9} {'PS':>5} " \
           f"{'unassigned':>10}  sizes"
    lines = [f"{result['customers']:,} customers (fitted on {result['fitted_on']:,}; stability and prediction "
             f"strength on {result['measured_on']:,}), k={result['k']}, features: "
             + ", ".join(result["features"] + result["categorical"]), head]
    for r in result["algorithms"]:
        if "error" in r:
            lines.append(f"{r['algorithm']:<12} {r['error']}")
            continue
        lines.append(f"{r['algorithm']:<12} {_cell(r['silhouette']):>10} {_cell(r['davies_bouldin'], 2):>6} "
                     f"{_cell(r['calinski_harabasz'], 0):>9} {_cell(r['bic'], 0):>11} "
                     f"{_cell(r.get('stability'), 2):>9} {_cell(r.get('prediction_strength'), 2):>5} "
                     f"{r['unassigned_share']:>10.0%}  " + " / ".join(f"{s:,}" for s in r["sizes"])
                     + (f"  ({r['note']})" if r.get("note") else ""))
    names = result["agreement"]["algorithms"]
    if len(names) > 1:
        lines.append("agreement (adjusted Rand):")
        lines.append(" " * 12 + "".join(f"{n[:10]:>11}" for n in names))
        for n, row in zip(names, result["agreement"]["ari"]):
            lines.append(f"{n:<12}" + "".join(f"{v:>11.2f}" for v in row))
    lines.append(f"recommendation: {result['recommendation']}")
    return "\n".join(lines)


COMMANDS = {"compare-algorithms": run}
