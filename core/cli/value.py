"""Command line for customer value: ``python -m core value --data LOG [...]``.

Registered by :mod:`core.cli.commands`. BG/NBD + Gamma-Gamma on a transaction log; with
``--calibration-end`` the rest of the log is the holdout. Bad input (a customer table, a
calibration end outside the data, nobody buying twice, a fit that does not converge) ends
with exit status 2 and one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from core.cli.options import add_models, whole_number

__all__ = ["add_parsers", "run", "COMMANDS", "CSV_COLUMNS"]

CSV_COLUMNS = ["ID", "frequency", "recency", "T", "p_alive", "expected_purchases", "expected_spend", "clv"]


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--discount-rate must be a number such as 0.10, got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value < 10):
        raise argparse.ArgumentTypeError(f"--discount-rate must be a yearly rate from 0 to 10 (0.10 = 10%), "
                                         f"got {text!r}")
    return value


def add_parsers(sub) -> None:
    """Add the ``value`` sub-command to ``python -m core``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
    """
    p = sub.add_parser(
        "value", help="customer lifetime value: BG/NBD purchases + Gamma-Gamma spend on a transaction log",
        description="Fit BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, gamma) by maximum likelihood on a "
                    "transaction log and value every customer: probability alive, expected purchases and "
                    "discounted CLV over the horizon with 95% parametric-bootstrap intervals. With "
                    "--calibration-end the fit uses purchases up to that day and the rest is the holdout. "
                    "Segments are shown when the active model version was trained on the same log.")
    p.add_argument("--data", metavar="LOG", required=True, help="transaction log (text or .parquet)")
    p.add_argument("--map", metavar="MAP.json", help="column mapping (roles customer_id, date, amount)")
    p.add_argument("--calibration-end", metavar="YYYY-MM-DD",
                   help="last day of the calibration period; later purchases are the holdout")
    p.add_argument("--time-unit", choices=["day", "week", "month"], default="week",
                   help="unit of recency, T and the horizon (default: week; a month is 365.25/12 days)")
    p.add_argument("--horizon", type=whole_number("--horizon", 1), metavar="N",
                   help="time units ahead for expected purchases and CLV (default: one year)")
    p.add_argument("--discount-rate", type=_rate, default=0.10, metavar="R",
                   help="yearly discount rate of CLV (default 0.10)")
    p.add_argument("--draws", type=whole_number("--draws", 0), default=100, metavar="B",
                   help="bootstrap draws of the parameters for the intervals (default 100; 0: none)")
    add_models(p)
    p.add_argument("--out", metavar="CUSTOMERS.csv", help="write one row per customer")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _mapping(path: str | None):
    if not path:
        return None
    from core.reading.mapping import Mapping

    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"--map {path}: {exc.strerror}") from None
    return Mapping.from_json(text, where=f"--map {path}")


def _write_csv(result, out: str) -> None:
    from core.versions.exports import to_safe_csv

    path = Path(out)
    if not path.parent.exists():
        raise ValueError(f"--out: folder {path.parent} does not exist")
    frame = result.customers.reset_index()
    columns = CSV_COLUMNS + (["segment"] if "segment" in frame else [])
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_text(to_safe_csv(frame[columns].round(6)), encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _text(report: dict) -> str:
    p, s = report["params"], report["spend_params"]
    t = report["totals"]
    unit = report["time_unit"]
    lines = [f"{report['source']}: {report['customers']:,} customers ({report['repeat_customers']:,} bought again), "
             f"purchase dates {report['first_date']} to {report['latest_date']}",
             f"BG/NBD ({unit}s): r={p['r']:.4g} alpha={p['alpha']:.4g} a={p['a']:.4g} b={p['b']:.4g} "
             f"(log-likelihood {report['log_likelihood']:,.2f})",
             f"Gamma-Gamma: p={s['p']:.4g} q={s['q']:.4g} gamma={s['gamma']:.4g} "
             f"({report['spend_customers']:,} customers with repeat purchases)",
             f"CLV over {report['horizon']} {unit}s at {report['discount_rate']:.0%} a year: total {t['clv_total']:,.2f}"
             + (f" (95% {t['clv_low']:,.2f} to {t['clv_high']:,.2f})" if t.get("clv_low") is not None else "")
             + f", mean {t['clv_mean']:,.2f}; mean probability alive {t['p_alive_mean']:.2f}"]
    for seg in report.get("segments", []):
        interval = (f" (95% {seg['clv_low']:,.0f} to {seg['clv_high']:,.0f})" if seg["clv_low"] is not None else "")
        lines.append(f"  {seg['rank']}. {seg['segment']} {seg['name'][:30]:<30} {seg['customers']:>8,} customers  "
                     f"CLV {seg['clv_total']:>14,.2f}{interval}  {seg['share']:.1%} of value  "
                     f"P(alive) {seg['p_alive_mean']:.2f}")
    if report.get("holdout"):
        lines.append(report["holdout"]["sentence"])
    lines.append(f"valuable but slipping: {report['slipping']['count']:,} customers ({report['slipping']['rule']})")
    lines.append(report["interval_method"])
    lines += [f"note: {n}" for n in report.get("notes", [])]
    return "\n".join(lines)


def run(args) -> int:
    """Run ``value``: exit status 0, or raise ValueError for bad input (reported by core.cli.commands)."""
    from core.fitting.algorithm_fit import jsonable
    from core.versions.registry import Registry
    from core.value.segments import run_value

    def step(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    data = Path(args.data)
    if not data.is_file():
        raise ValueError(f"--data {args.data}: no such file")
    registry = Registry(args.models)
    result, _, _ = run_value(data, mapping=_mapping(args.map), time_unit=args.time_unit,
                             calibration_end=args.calibration_end, horizon=args.horizon,
                             discount_rate=args.discount_rate, registry=registry, draws=args.draws, progress=step)
    if args.out:
        _write_csv(result, args.out)
        step(f"wrote {len(result.customers):,} customers to {args.out}")
    report = jsonable(result.report)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        print(_text(report))
    return 0


COMMANDS = {"value": run}
