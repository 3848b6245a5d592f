"""Customer lifetime value from BG/NBD + Gamma-Gamma: per customer, per segment, and the holdout check.

Discounted CLV over a horizon of H time units sums, period by period, the expected purchases
in that period times the expected spend per purchase, discounted at the yearly rate converted
to the time unit: ``d = (1 + R) ** (unit_days / 365.25) - 1``, period k weighted by
``1 / (1 + d) ** k``.

Intervals (95%) come from a parametric bootstrap: the log-parameters of each model are drawn
from the asymptotic normal distribution of their maximum-likelihood estimates (covariance from
the inverse numerical Hessian, by the delta method on the log scale), and every value is
recomputed per draw. They show the uncertainty of the parameters only, not the randomness of a
customer's future purchases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import core.value.bgnbd as bgnbd
import core.value.gammagamma as gammagamma
from core.value.bgnbd import FitError
from core.value.statistics import ValueData, collapse

__all__ = ["ValueResult", "compute_value", "default_horizon", "discount_per_unit", "customer_value", "values_at",
           "INTERVAL_METHOD", "SLIPPING_MAX"]

DRAWS = 100
SEED = 42
SLIPPING_MAX = 1000
INTERVAL_METHOD = ("95% intervals by parametric bootstrap: {draws} draws of each model's log-parameters from the "
                   "asymptotic normal distribution of their maximum-likelihood estimates (covariance from the "
                   "inverse numerical Hessian); they show parameter uncertainty, not the randomness of each "
                   "customer's future purchases")


@dataclass
class ValueResult:
    """Per-customer values and the JSON-ready report.

    Parameters
    ----------
    customers : pandas.DataFrame
        Index ``ID``: ``frequency``, ``recency``, ``T``, ``p_alive``, ``expected_purchases``,
        ``expected_spend``, ``clv``, ``total_value`` and ``segment`` when labels were given.
    report : dict
        What the CLI prints with ``--json``, the page shows and the API serves.
    """

    customers: pd.DataFrame
    report: dict


def default_horizon(time_unit: str) -> int:
    """One year in the time unit (52 weeks, 365 days, 12 months)."""
    return {"day": 365, "week": 52, "month": 12}[time_unit]


def discount_per_unit(yearly: float, unit_days: float) -> float:
    """The yearly discount rate converted to one time unit: (1 + R)^(unit_days / 365.25) - 1."""
    return (1.0 + yearly) ** (unit_days / 365.25) - 1.0


def _tail_sum(params, horizon: int, disc: float, x, T) -> np.ndarray:
    """Sum over k = 1..H of (F(k-1) - F(k)) / (1+d)^k with F(0) = 1 (per distinct (x, T))."""
    prev = np.ones(len(x))
    out = np.zeros(len(x))
    for k in range(1, horizon + 1):
        cur = bgnbd.tail_factor(params, float(k), x, T)
        out += (prev - cur) / (1.0 + disc) ** k
        prev = cur
    return out


def _discounted_purchases(params, horizon: int, disc: float, x, tx, T, pairs) -> np.ndarray:
    """Discounted expected purchases over the horizon for each distinct (x, t_x, T)."""
    r, alpha, a, b = params
    inv, _, (px, pT) = pairs
    tail = _tail_sum(params, horizon, disc, px, pT)[inv]
    return (a + b + x - 1) / (a - 1) * bgnbd.p_alive(params, x, tx, T) * tail


def _draws(fit, n: int, rng) -> np.ndarray | None:
    cov = fit.cov_log
    if n <= 0 or not np.all(np.isfinite(cov)):
        return None
    return np.exp(rng.multivariate_normal(np.log(fit.params), cov, size=n, method="eigh"))


def _check_spend(params) -> None:
    if params[1] <= 1:
        raise FitError(f"the spend (Gamma-Gamma) fit gives q = {params[1]:.3g} <= 1, so the mean spend per purchase "
                       "does not exist; too few repeat purchases with a value to fit it")


def compute_value(data: ValueData, *, horizon: int | None = None, discount_rate: float = 0.10,
                  labels: pd.Series | None = None, names: list | None = None, draws: int = DRAWS,
                  seed: int = SEED) -> ValueResult:
    """Fit both models and value every customer (and segment, when labels are given).

    Parameters
    ----------
    data : ValueData
    horizon : int, optional
        Time units ahead (default: one year, :func:`default_horizon`).
    discount_rate : float, default 0.10
        Yearly.
    labels : pandas.Series, optional
        Segment of each customer, indexed by ID (customers without one count as -1, "unsegmented").
    names : list of str, optional
        Segment names by label.
    draws : int, default 100
        Bootstrap draws for the intervals (0: none).
    seed : int, default 42

    Returns
    -------
    ValueResult

    Raises
    ------
    FitError
        A model that does not converge, or a spend model without a finite mean.
    """
    horizon = horizon or default_horizon(data.time_unit)
    if horizon < 1:
        raise ValueError(f"--horizon must be at least 1 time unit, got {horizon}")
    if not 0 <= discount_rate < 10:
        raise ValueError(f"--discount-rate must be a yearly rate such as 0.10, got {discount_rate}")
    cust = data.customers
    x = cust["frequency"].to_numpy(dtype="float64")
    tx = cust["recency"].to_numpy(dtype="float64")
    T = cust["T"].to_numpy(dtype="float64")
    inv, w, (cx, ctx, cT) = collapse(x, tx, T)
    bg = bgnbd.fit(cx, ctx, cT, w)
    m = cust["monetary_value"].to_numpy(dtype="float64")
    ok = (x > 0) & (np.nan_to_num(m) > 0)
    _, gw, (gx, gm) = collapse(x[ok], m[ok])
    gg = gammagamma.fit(gx, gm, gw)
    _check_spend(gg.params)
    disc = discount_per_unit(discount_rate, data.unit_days)
    pairs = collapse(cx, cT)
    d_combo = _discounted_purchases(bg.params, horizon, disc, cx, ctx, cT, pairs)
    m_used = np.where(x > 0, np.maximum(np.nan_to_num(m), 0.0), 0.0)
    spend = gammagamma.expected_spend(gg.params, x, m_used)
    out = pd.DataFrame({
        "frequency": cust["frequency"].to_numpy(), "recency": tx, "T": T,
        "p_alive": bgnbd.p_alive(bg.params, cx, ctx, cT)[inv],
        "expected_purchases": bgnbd.expected_purchases(bg.params, float(horizon), cx, ctx, cT)[inv],
        "expected_spend": spend,
        "clv": spend * d_combo[inv],
        "total_value": cust["total_value"].to_numpy(),
    }, index=cust.index)
    if labels is not None:
        out["segment"] = labels.reindex(cust.index).fillna(-1).astype("int64").to_numpy()
    for column in ("p_alive", "expected_purchases", "expected_spend", "clv"):
        if not np.all(np.isfinite(out[column].to_numpy())):
            raise FitError(f"the fitted models give a non-finite {column.replace('_', ' ')} for some customers; "
                           "the fit is not usable on this log")
    report = {
        "model": "BG/NBD + Gamma-Gamma", "time_unit": data.time_unit, "unit_days": data.unit_days,
        "horizon": int(horizon), "discount_rate": float(discount_rate), "discount_per_unit": disc,
        "source": data.source, "first_date": data.first_date, "latest_date": data.latest_date,
        "calibration_end": data.end_date if data.calibration else None,
        "customers": int(len(cust)), "repeat_customers": int((x > 0).sum()),
        "params": bg.as_dict(), "params_se": bg.se_dict(), "log_likelihood": bg.log_likelihood,
        "combinations": bg.combinations, "spend_params": gg.as_dict(), "spend_params_se": gg.se_dict(),
        "spend_log_likelihood": gg.log_likelihood, "spend_customers": int(ok.sum()),
        "cov_log": bg.cov_log.tolist(), "spend_cov_log": gg.cov_log.tolist(),
        "draws": int(draws), "seed": int(seed), "interval_method": INTERVAL_METHOD.format(draws=draws),
        "rows_read": data.rows_read, "notes": list(data.notes),
        "totals": {"clv_total": float(out["clv"].sum()), "clv_mean": float(out["clv"].mean()),
                   "p_alive_mean": float(out["p_alive"].mean()),
                   "expected_purchases": float(out["expected_purchases"].sum())},
    }
    groups = out["segment"].to_numpy() if labels is not None else np.zeros(len(out), dtype="int64")
    intervals = _bootstrap(bg, gg, horizon, disc, (cx, ctx, cT), pairs, inv, x, m_used, groups, draws, seed)
    if intervals is not None:
        report["totals"]["clv_low"], report["totals"]["clv_high"] = intervals["all"]
    else:
        report["notes"].append("no intervals: the Hessian of a fit could not be inverted")
    if labels is not None:
        report["segments"] = _segments(out, names or [], intervals)
    report["slipping"] = _slipping(out)
    if data.calibration:
        report["holdout"] = _holdout(bg.params, data, out, (cx, ctx, cT), inv)
    return ValueResult(out, report)


def _bootstrap(bg, gg, horizon, disc, combos, pairs, inv, x, m_used, groups, draws, seed):
    """Per-group 95% intervals of the total CLV: {group: (low, high)} plus "all"."""
    rng = np.random.default_rng(seed)
    bgd, ggd = _draws(bg, draws, rng), _draws(gg, draws, rng)
    if bgd is None or ggd is None:
        return None
    cx, ctx, cT = combos
    # Spend is linear in each customer's repeat value, so per (group, combination) the counts and
    # the summed repeat value are all a draw needs.
    glab, gidx = np.unique(groups, return_inverse=True)
    key = gidx.astype("int64") * len(cx) + inv
    kinv, ukey = pd.factorize(key, sort=False)
    n_gc = np.bincount(kinv, minlength=len(ukey)).astype("float64")
    z_gc = np.bincount(kinv, weights=np.where(x > 0, m_used * x, 0.0), minlength=len(ukey))
    g_of, c_of = ukey // len(cx), ukey % len(cx)
    totals = np.empty((draws, len(glab)))
    for i in range(draws):
        with np.errstate(all="ignore"):
            d = _discounted_purchases(bgd[i], horizon, disc, cx, ctx, cT, pairs)
            p, q, g = ggd[i]
            xc = cx[c_of]
            spend_sum = np.where(xc > 0, p * (g * n_gc + z_gc) / (p * xc + q - 1), n_gc * p * g / (q - 1))
            spend_sum = np.where(q > 1, spend_sum, np.nan)
        totals[i] = np.bincount(g_of, weights=spend_sum * d[c_of], minlength=len(glab))
    finite = np.all(np.isfinite(totals), axis=1)
    totals = totals[finite]
    if len(totals) < max(10, draws // 2):
        return None
    low, high = np.percentile(totals, [2.5, 97.5], axis=0)
    all_low, all_high = np.percentile(totals.sum(axis=1), [2.5, 97.5])
    out = {int(g): (float(lo), float(hi)) for g, lo, hi in zip(glab, low, high)}
    out["all"] = (float(all_low), float(all_high))
    return out


def _segments(out: pd.DataFrame, names: list, intervals) -> list[dict]:
    total = float(out["clv"].sum())
    bins = np.linspace(0, 1, 11)
    rows = []
    for seg, part in out.groupby("segment", sort=True):
        seg = int(seg)
        n = len(part)
        clv_total = float(part["clv"].sum())
        lo, hi = (intervals or {}).get(seg, (None, None))
        hist = np.histogram(part["p_alive"].to_numpy(), bins=bins)[0]
        rows.append({
            "segment": seg,
            "name": names[seg] if 0 <= seg < len(names) else ("Unsegmented" if seg < 0 else f"Segment {seg}"),
            "customers": n, "clv_total": clv_total, "clv_mean": clv_total / n,
            "clv_low": lo, "clv_high": hi,
            "clv_mean_low": None if lo is None else lo / n, "clv_mean_high": None if hi is None else hi / n,
            "share": clv_total / total if total else 0.0,
            "p_alive_mean": float(part["p_alive"].mean()),
            "expected_purchases_mean": float(part["expected_purchases"].mean()),
            "past_value_mean": float(part["total_value"].mean()),
            "p_alive_histogram": [int(v) for v in hist],
        })
    rows.sort(key=lambda r: -r["clv_total"])
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def slipping_mask(out: pd.DataFrame) -> np.ndarray:
    """Valuable but slipping: past value in the top 20% of customers and probability alive below 0.5."""
    cut = float(np.quantile(out["total_value"].to_numpy(), 0.8))
    return ((out["total_value"] >= cut) & (out["p_alive"] < 0.5)).to_numpy()


def _slipping(out: pd.DataFrame) -> dict:
    mask = slipping_mask(out)
    part = out[mask].sort_values(["total_value", "clv"], ascending=[False, False])
    cut = float(np.quantile(out["total_value"].to_numpy(), 0.8))
    cols = ["frequency", "recency", "total_value", "p_alive", "clv"] + (["segment"] if "segment" in part else [])
    rows = []
    for ident, row in part.head(SLIPPING_MAX)[cols].iterrows():
        item = {"ID": ident.item() if hasattr(ident, "item") else ident}
        item.update({c: (int(row[c]) if c in ("frequency", "segment") else float(row[c])) for c in cols})
        rows.append(item)
    return {"rule": f"past value at least {cut:,.2f} (the top 20% of customers) and probability alive below 0.5",
            "past_value_cut": cut, "count": int(mask.sum()), "customers": rows}


def _holdout(params, data: ValueData, out: pd.DataFrame, combos, inv) -> dict:
    cx, ctx, cT = combos
    t_hold = data.holdout_days / data.unit_days
    pred = bgnbd.expected_purchases(params, t_hold, cx, ctx, cT)[inv]
    actual = data.customers["holdout_purchases"].to_numpy(dtype="float64")
    x = out["frequency"].to_numpy()
    buckets = []
    for lo in range(0, 8):
        mask = x == lo if lo < 7 else x >= 7
        if mask.any():
            buckets.append({"frequency": f"{lo}" if lo < 7 else "7+", "customers": int(mask.sum()),
                            "predicted": float(pred[mask].mean()), "actual": float(actual[mask].mean())})
    # Cumulative repeat purchases per week since the log's first day, predicted from each customer's
    # first purchase with the unconditional expectation (as in Fader, Hardie & Lee's figure 3).
    first = data.customers["first_day"].to_numpy()
    start = int((np.datetime64(data.first_date) - np.datetime64("1970-01-01")).astype(int))
    days, counts = np.unique(first, return_counts=True)
    weeks = len(data.weekly_actual)
    ends = start + 7 * np.arange(1, weeks + 1)
    age = np.maximum(ends[:, None] - days[None, :], 0) / data.unit_days
    predicted_curve = (bgnbd.unconditional_purchases(params, age) * counts[None, :]).sum(axis=1)
    actual_curve = np.cumsum(data.weekly_actual)
    cal_weeks = int((np.datetime64(data.end_date) - np.datetime64(data.first_date)).astype(int)) // 7 + 1
    total_pred, total_act = float(pred.sum()), float(actual.sum())
    err = (total_pred - total_act) / total_act if total_act else None
    mae = float(np.mean([abs(b["predicted"] - b["actual"]) for b in buckets]))
    sentence = (f"Over the {t_hold:,.1f}-{data.time_unit} holdout after {data.end_date} the model predicted "
                f"{total_pred:,.0f} repeat purchases against {total_act:,.0f} actual"
                + (f" ({err:+.1%})" if err is not None else "")
                + f"; per frequency bucket the mean absolute error is {mae:.2f} purchases per customer"
                + (" - it held well." if err is not None and abs(err) <= 0.1 else
                   " - it held roughly." if err is not None and abs(err) <= 0.25 else " - it did not hold well."))
    return {"predicted": total_pred, "actual": total_act, "relative_error": err, "length": t_hold,
            "by_frequency": buckets, "sentence": sentence, "calibration_weeks": cal_weeks,
            "weekly": [{"week": i + 1, "predicted": float(p), "actual": int(a)}
                       for i, (p, a) in enumerate(zip(predicted_curve, actual_curve))]}


def customer_value(report: dict, frequency: float, recency: float, T: float, repeat_value: float) -> dict:
    """One customer's values from a stored report, with 95% bootstrap intervals (same draws as the report).

    Parameters
    ----------
    report : dict
        :attr:`ValueResult.report`.
    frequency, recency, T : float
        In the report's time unit.
    repeat_value : float
        Total value of the repeat purchase days.

    Returns
    -------
    dict
        ``p_alive``, ``expected_purchases``, ``expected_spend``, ``clv`` and their ``*_low``/``*_high``.
    """
    bgp = np.array([report["params"][k] for k in bgnbd.PARAMS])
    ggp = np.array([report["spend_params"][k] for k in gammagamma.PARAMS])
    horizon, disc = int(report["horizon"]), float(report["discount_per_unit"])
    x, tx, T = (np.array([float(v)]) for v in (frequency, recency, T))
    m = np.array([max(repeat_value, 0.0) / frequency if frequency > 0 else 0.0])

    def values(bp, gp):
        pairs = collapse(x, T)
        spend = gammagamma.expected_spend(gp, x, m)
        return (bgnbd.p_alive(bp, x, tx, T)[0], bgnbd.expected_purchases(bp, float(horizon), x, tx, T)[0],
                spend[0], (spend * _discounted_purchases(bp, horizon, disc, x, tx, T, pairs))[0])

    point = values(bgp, ggp)
    keys = ("p_alive", "expected_purchases", "expected_spend", "clv")
    result = {k: float(v) for k, v in zip(keys, point)}
    rng = np.random.default_rng(int(report.get("seed", SEED)))
    draws = int(report.get("draws", DRAWS))
    cov_bg, cov_gg = np.array(report["cov_log"], dtype=float), np.array(report["spend_cov_log"], dtype=float)
    if draws and np.all(np.isfinite(cov_bg)) and np.all(np.isfinite(cov_gg)):
        bgd = np.exp(rng.multivariate_normal(np.log(bgp), cov_bg, size=draws, method="eigh"))
        ggd = np.exp(rng.multivariate_normal(np.log(ggp), cov_gg, size=draws, method="eigh"))
        with np.errstate(all="ignore"):
            sims = np.array([values(b, g) for b, g in zip(bgd, ggd)])
        sims = sims[np.all(np.isfinite(sims), axis=1)]
        if len(sims):
            low, high = np.percentile(sims, [2.5, 97.5], axis=0)
            for k, lo, hi in zip(keys, low, high):
                result[f"{k}_low"], result[f"{k}_high"] = float(lo), float(hi)
    return result


def values_at(report: dict, frequency, recency, T, repeat_value) -> pd.DataFrame:
    """Every customer's point values from a stored report's parameters (vectorised, no intervals).

    Parameters
    ----------
    report : dict
        :attr:`ValueResult.report`.
    frequency, recency, T, repeat_value : array-like
        Per customer, in the report's time unit.

    Returns
    -------
    pandas.DataFrame
        ``p_alive``, ``expected_purchases``, ``expected_spend``, ``clv`` (same order as the input).
    """
    bgp = np.array([report["params"][k] for k in bgnbd.PARAMS])
    ggp = np.array([report["spend_params"][k] for k in gammagamma.PARAMS])
    horizon, disc = int(report["horizon"]), float(report["discount_per_unit"])
    x, tx, T, z = (np.asarray(v, dtype="float64") for v in (frequency, recency, T, repeat_value))
    inv, _, (cx, ctx, cT) = collapse(x, tx, T)
    m = np.where(x > 0, np.maximum(z, 0.0) / np.where(x > 0, x, 1.0), 0.0)
    spend = gammagamma.expected_spend(ggp, x, m)
    d = _discounted_purchases(bgp, horizon, disc, cx, ctx, cT, collapse(cx, cT))
    return pd.DataFrame({"p_alive": bgnbd.p_alive(bgp, cx, ctx, cT)[inv],
                         "expected_purchases": bgnbd.expected_purchases(bgp, float(horizon), cx, ctx, cT)[inv],
                         "expected_spend": spend, "clv": spend * d[inv]})
