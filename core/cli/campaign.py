"""Command line for campaign planning: ``python -m core campaign plan|results``.

Registered by :mod:`core.cli.commands`. Bad input ends with exit status 2 and one line on stderr
(``CampaignError`` is a ValueError, which ``core.cli.commands.main`` reports that way); nothing is saved then.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from core.cli.options import add_models, check_features, version_or_active

__all__ = ["add_parsers", "run", "COMMANDS"]


def add_parsers(sub) -> None:
    """Add the ``campaign`` sub-command to ``python -m core``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser("campaign", help="plan a campaign audience with a holdout, or measure its results",
                       description="Plan whom to contact (a campaign like the last one) and measure uplift.")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = csub.add_parser("plan", help="score response propensity and write the audience with a holdout",
                        description="Fit an out-of-fold response propensity model, rank customers by expected "
                                    "profit and write the audience (ID, segment, group, propensity).")
    q.add_argument("--data", metavar="PATH",
                   help="customer file (default: $SEGMENTLENS_DATA, else data/marketing_campaign.csv, else the sample)")
    add_models(q)
    q.add_argument("--cost", required=True, metavar="C", help="cost per contact (> 0)")
    q.add_argument("--revenue", required=True, metavar="R", help="revenue or margin per responder (> 0)")
    q.add_argument("--budget", metavar="B", help="most money to spend on contacts")
    q.add_argument("--max-contacts", metavar="N", help="most customers in the audience")
    q.add_argument("--top-n", metavar="N", help="contact the N best customers instead of the most profitable number")
    q.add_argument("--segments", metavar="I,J,..", help="contact these segments (ranked by expected profit)")
    q.add_argument("--holdout", default="0.1", metavar="F", help="holdout share of the audience, 0-0.5 (default 0.1)")
    q.add_argument("--seed", default="42", metavar="S", help="seed of the folds and the holdout (default 42)")
    q.add_argument("--out", required=True, metavar="AUDIENCE.csv")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q = csub.add_parser("results", help="measure response and uplift of a campaign from its outcomes",
                        description="Response in target vs holdout, uplift with 95%% intervals, incremental profit.")
    q.add_argument("--audience", required=True, metavar="A.csv", help="the audience file `campaign plan` wrote")
    q.add_argument("--outcomes", required=True, metavar="O.csv", help="ID, responded (0/1), optional revenue")
    add_models(q)
    q.add_argument("--cost", metavar="C", help="cost per contact (default: the saved plan's)")
    q.add_argument("--revenue", metavar="R", help="revenue per responder (default: measured, else the saved plan's)")
    q.add_argument("--json", action="store_true", help="print one JSON object")


def _read_csv(path: str, what: str):
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--{what}: no file {path}")
    data = p.read_bytes()
    try:
        return pd.read_csv(io.BytesIO(data), sep=None, engine="python"), data
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"--{what}: {path} is not a readable CSV file ({str(exc).splitlines()[0][:120]})") from None


def _plan(args) -> int:
    from core.campaigns.campaign import CampaignError, Economics, build_plan, fit_propensity
    from core.campaigns.store import CampaignStore, audience_csv, plan_record
    from core.versions.pipeline import prepare, resolve_data_path
    from core.versions.registry import Registry
    from core.versions.naming import segment_names

    econ = Economics.checked(args.cost, args.revenue, args.budget, args.max_contacts, args.holdout, args.seed)
    top_n = None
    if args.top_n is not None:
        try:
            top_n = int(args.top_n)
        except ValueError:
            raise CampaignError(f"top_n: must be a whole number, got {args.top_n!r}") from None
    segments = None
    if args.segments is not None:
        try:
            segments = [int(s) for s in args.segments.split(",") if s.strip()]
        except ValueError:
            raise CampaignError(f"segments: a comma-separated list of segment numbers, got {args.segments!r}") from None
    out = Path(args.out)
    if not out.parent.exists():
        raise ValueError(f"--out: folder {out.parent} does not exist")
    registry = Registry(args.models)
    version_or_active(registry)
    model, meta = registry.load()
    prepared = prepare(resolve_data_path(args.data))
    check_features(model, prepared.frame)
    frame = prepared.frame
    labels = model.score(frame)["segment"].to_numpy()
    fitted = fit_propensity(frame, labels, seed=econ.seed, k=model.k)
    plan = build_plan(frame["ID"].to_numpy(), labels, fitted.propensity, econ, k=model.k, top_n=top_n,
                      segments=segments)
    text = audience_csv(plan)
    names = segment_names(meta, model.k)
    record = CampaignStore(registry.root).save(
        plan_record(plan, model_version=meta["version"], auc=fitted.auc, names=names, source=prepared.source), text)
    out.write_text(text, encoding="utf-8")
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        t = plan.totals
        print(f"plan {record['id']} (model {meta['version']}, cross-validated AUC {fitted.auc:.3f}; "
              "predicts a campaign like the last one)")
        print(f"target {t['n_targeted']:,} + holdout {t['n_holdout']:,} -> {out}")
        print(f"expected responders {t['expected_responders']:.1f} "
              f"[{t['responders_low']:.1f}, {t['responders_high']:.1f}]; cost {t['cost']:,.2f}; "
              f"expected profit {t['expected_profit']:,.2f} [{t['profit_low']:,.2f}, {t['profit_high']:,.2f}]")
        for row in record["segments"]:
            print(f"  segment {row['segment']} {row.get('name', '')}: target {row['n_targeted']:,}, "
                  f"holdout {row['n_holdout']:,}, expected profit {row['expected_profit']:,.2f}")
        for note in plan.notes:
            print(f"note: {note}")
    return 0


def _results(args) -> int:
    from core.campaigns.campaign import Economics, measure_results, read_audience, read_outcomes
    from core.campaigns.store import CampaignStore

    audience_frame, data = _read_csv(args.audience, "audience")
    outcomes_frame, _ = _read_csv(args.outcomes, "outcomes")
    audience = read_audience(audience_frame)
    outcomes = read_outcomes(outcomes_frame, audience)
    cost = revenue = None
    if args.cost is not None or args.revenue is not None:
        econ = Economics.checked(args.cost if args.cost is not None else 1,
                                 args.revenue if args.revenue is not None else 1)
        cost = econ.cost if args.cost is not None else None
        revenue = econ.revenue if args.revenue is not None else None
    store = CampaignStore(args.models)
    saved = store.find_by_audience(data)
    if saved:
        cost = cost if cost is not None else saved["economics"]["cost"]
        revenue = revenue if revenue is not None else saved["economics"]["revenue"]
    result = measure_results(audience, outcomes, cost=cost, revenue=revenue)
    if saved:
        result = store.save_results(saved["id"], result)
        result["plan_id"] = saved["id"]
    if args.json:
        from core.campaigns.store import jsonable

        print(json.dumps(jsonable(result), indent=2))
    else:
        o = result["overall"]
        print(f"target {o['n_target']:,}: response {o['target_rate']:.1%}; holdout {o['n_holdout']:,}: "
              f"{o['holdout_rate']:.1%}; uplift {o['uplift']:+.1%} [{o['uplift_low']:+.1%}, {o['uplift_high']:+.1%}]")
        inc = result["incremental_profit"]
        if inc["value"] is not None:
            print(f"incremental profit {inc['value']:,.2f} [{inc['low']:,.2f}, {inc['high']:,.2f}]")
        else:
            print("incremental profit: give --cost and --revenue (no saved plan has this audience)")
        print(f"predicted responders in target {result['predicted_responders']:.1f}, "
              f"actual {result['actual_responders']:.0f}")
        for s in result["segments"]:
            print(f"  segment {s['segment']}: uplift {s['uplift']:+.1%} [{s['uplift_low']:+.1%}, {s['uplift_high']:+.1%}]")
        if saved:
            print(f"saved with plan {saved['id']}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``campaign`` command.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0 on success (bad input raises ValueError, reported by ``core.cli.commands.main`` with exit 2).
    """
    return _plan(args) if args.action == "plan" else _results(args)


COMMANDS = {"campaign": run}
