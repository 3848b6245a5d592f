"""Synthetic transaction logs drawn from BG/NBD + Gamma-Gamma (tests and benchmarks at any size)."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["simulate_log", "CDNOW_PARAMS", "CDNOW_SPEND"]

# Fader, Hardie & Lee (2005): CDNOW 1/10th sample, weeks; (2005b) Gamma-Gamma on the same customers.
CDNOW_PARAMS = (0.243, 4.414, 0.793, 2.426)
CDNOW_SPEND = (6.25, 3.74, 15.44)


def simulate_log(n: int, *, params=CDNOW_PARAMS, spend=CDNOW_SPEND, weeks: float = 78.0, cohort_weeks: float = 12.0,
                 start: str = "2020-01-01", seed: int = 0, max_repeats: int = 500) -> pd.DataFrame:
    """A transaction log of ``n`` customers who behave as BG/NBD and Gamma-Gamma say (time unit: week).

    Each customer makes a first purchase on a day drawn uniformly in the first ``cohort_weeks``,
    then repeat purchases at Poisson rate lambda ~ Gamma(r, alpha) until dropping out (probability
    p ~ Beta(a, b) after each repeat purchase), until ``weeks`` after the start. Values are
    Gamma(p, nu) with nu ~ Gamma(q, gamma). Times are floored to days, so two purchases on one
    day become one purchase day.

    Parameters
    ----------
    n : int
    params : (r, alpha, a, b)
    spend : (p, q, gamma)
    weeks, cohort_weeks : float
    start : str
        Date of day 0.
    seed : int
    max_repeats : int
        Cap on a customer's purchases (keeps memory bounded for extreme draws).

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` (int64), ``date`` (datetime64[s]), ``amount`` (float64), sorted by date.
    """
    r, alpha, a, b = params
    sp, sq, sg = spend
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    drop = rng.beta(a, b, n)
    first = np.floor(rng.uniform(0, cohort_weeks * 7, n))
    window = weeks - first / 7  # weeks each customer is observed after the first purchase
    lives = np.minimum(rng.geometric(np.clip(drop, 1e-12, 1)), max_repeats)
    events = np.minimum(rng.poisson(lam * window), max_repeats)
    owner = np.repeat(np.arange(n), events)
    times = rng.uniform(0, 1, len(owner)) * window[owner]
    order = np.lexsort((times, owner))
    owner, times = owner[order], times[order]
    starts = np.cumsum(events) - events
    rank = np.arange(len(owner)) - starts[owner]
    keep = rank < lives[owner]
    owner, times = owner[keep], times[keep]
    nu = rng.gamma(sq, 1.0 / sg, n)
    ids = np.concatenate([np.arange(n), owner])
    days = np.concatenate([first, first[owner] + np.floor(times * 7)]).astype("int64")
    amount = np.round(rng.gamma(sp, 1.0 / nu[ids]), 2)
    base = np.datetime64(start, "D")
    frame = pd.DataFrame({"customer_id": ids + 1, "date": (base + days).astype("datetime64[s]"), "amount": amount})
    return frame.sort_values(["date", "customer_id"], kind="stable").reset_index(drop=True)
