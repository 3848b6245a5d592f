"""Synthetic customers in exactly the shape of the "Customer Personality Analysis" file.

The dashboard opens on a sample that the project generates itself, because the real
file may not be redistributed with it. The sample has to look like the real thing to
a person exploring segments, so the generator is a mixture of four latent customer
types whose parameters were read off the public file (cluster profiles, within-type
regressions and marginal frequencies), not a set of independent columns:

* ``affluent``: high income, few children, big spenders on wine and meat, buy from the
  catalogue and in store, rarely browse the website, accept most campaigns.
* ``established``: middle-to-high income parents of teenagers, moderate spend, the
  keenest web shoppers and deal hunters.
* ``young_family``: young, low income, small children, tiny spend, browse the website a
  lot but buy little.
* ``budget_family``: older low-to-middle income parents of small children and teenagers,
  low spend, rarely respond to campaigns.

Within a type, income still drives spend, spend drives purchases and campaign
acceptance, so the correlations hold both across and inside segments. The real file's
quirks (missing incomes, impossible birth years, one 666666 income, joke marital
statuses, a handful of odd purchase records) are planted in proportional numbers so
that the loader and cleaner see them on the default data too.

Everything is vectorised numpy: a million customers take one to two seconds and ~0.7 GB.
"""
from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.reading.schema import CANONICAL_COLUMNS, INTEGER_COLUMNS, SPEND_COLUMNS

__all__ = ["SAMPLE_FILE", "generate_customers", "write_customers", "write_sample", "write_parquet"]

SAMPLE_FILE = "synthetic_customers.tsv"

# Enrolment dates span exactly the real file's range, 30-07-2012 .. 29-06-2014.
_FIRST_DAY = np.datetime64("2012-07-30")
_LAST_DAY = np.datetime64("2014-06-29")
_SPAN_DAYS = int((_LAST_DAY - _FIRST_DAY) // np.timedelta64(1, "D"))   # 699
# Ages are drawn as of the last enrolment year and turned into birth years from it.
_REFERENCE_YEAR = 2014
# The real file has 2,240 rows; quirk counts below are "per 2,240 customers".
_REAL_ROWS = 2240

_EDUCATION = ("Graduation", "PhD", "Master", "2n Cycle", "Basic")
_MARITAL = ("Married", "Together", "Single", "Divorced", "Widow")
# Multiplies income by education; Basic earns far less in the real file (~20K mean).
_EDUCATION_INCOME = (1.0, 1.04, 1.0, 0.94, 0.62)

# Mean spend shares per category (SPEND_COLUMNS order) at four levels of log total
# spend: small baskets carry relatively more gold, fish and fruit, big ones more meat.
_SHARE_KNOTS = (3.5, 5.0, 6.3, 7.3)
_SHARES = (
    (0.36, 0.41, 0.55, 0.51),      # wine
    (0.060, 0.060, 0.045, 0.040),  # fruit
    (0.25, 0.22, 0.20, 0.295),     # meat
    (0.090, 0.085, 0.060, 0.065),  # fish
    (0.060, 0.060, 0.045, 0.045),  # sweets
    (0.18, 0.165, 0.10, 0.045),    # gold
)
# Shares vary in two stages: wine / meat / fresh food / gold first, then fruit / fish /
# sweets within fresh food, which is why the three fresh categories move together
# (real correlations ~0.55-0.6). Each part is a gamma draw with the mean share and a
# concentration of its own: the larger, the steadier that share from one customer to
# the next (gold is a steady small share, fresh food comes and goes).
_GROUP_CONCENTRATION = (6.0, 10.0, 9.0, 20.0)   # wine, meat, fresh, gold
_FRESH_CONCENTRATION = 5.0
_FRESH = (1, 3, 4)   # fruit, fish, sweets in SPEND_COLUMNS
# Small baskets often skip a fresh category altogether (the real file has ~18% zero
# fruit, fish and sweets, nearly all among low spenders): chance of skipping each one at
# a total of 0, fading as exp(-total / 250).
_FRESH_SKIPPED = (0.12, 0.25, 0.12)
# The real file never exceeds these per-category amounts.
_SPEND_MAX = (1493, 199, 1725, 259, 263, 362)


@dataclass(frozen=True)
class _Segment:
    """Parameters of one latent customer type (read off the real file's clusters)."""

    name: str
    weight: float
    age: tuple[float, float]             # mean, sd (years at the reference year)
    log_income: tuple[float, float]      # mean, sd of log(income)
    kidhome: tuple[float, float, float]  # P(0), P(1), P(2)
    teenhome: tuple[float, float, float]
    education: tuple[float, ...]         # probabilities in _EDUCATION order
    marital: tuple[float, ...]           # probabilities in _MARITAL order
    # log total spend = base + slope * (log income - type mean) + kid/teen effects + noise
    spend: tuple[float, float, float, float, float]  # base, income slope, kid, teen, noise sd
    spend_mean: float                    # type mean of log total spend, centre of the slopes below
    # Purchase counts are rounded, clipped normals (the real file's counts look exactly
    # like that): (mean at the type centre, slope on log spend, slope on log income,
    # residual sd, effect of each small child above the type's average).
    deals: tuple[float, float, float, float, float]
    web: tuple[float, float, float, float, float]
    catalog: tuple[float, float, float, float, float]
    store: tuple[float, float, float, float, float]
    visits: tuple[float, float, float, float, float]
    no_deals: float                      # share who never used a discount (mostly the affluent)
    # Campaign logit intercepts in _CAMPAIGNS order, calibrated by simulation
    # so that each type's acceptance rates match its real counterpart.
    campaigns: tuple[float, float, float, float, float, float]


_SEGMENTS = (
    _Segment(
        name="affluent", weight=0.273, age=(45.5, 13.5), log_income=(11.20, 0.16),
        kidhome=(0.96, 0.04, 0.0), teenhome=(0.86, 0.135, 0.005),
        education=(0.54, 0.22, 0.16, 0.08, 0.0), marital=(0.36, 0.26, 0.25, 0.09, 0.04),
        spend=(7.13, 1.6, -0.15, -0.31, 0.32), spend_mean=7.08,
        deals=(1.16, 0.0, -0.66, 0.5, 0.9), web=(4.88, 1.27, -1.24, 1.9, 0.0),
        catalog=(5.73, 1.43, 4.27, 2.4, 0.0), store=(8.37, 0.67, -0.78, 2.7, 0.0),
        visits=(2.76, 1.35, -5.69, 1.3, 2.4), no_deals=0.06,
        campaigns=(-2.24, -4.48, -2.82, -2.63, -1.96, -1.55),
    ),
    _Segment(
        name="established", weight=0.267, age=(49.3, 9.3), log_income=(10.95, 0.20),
        kidhome=(0.76, 0.235, 0.005), teenhome=(0.03, 0.93, 0.04),
        education=(0.49, 0.26, 0.18, 0.07, 0.0), marital=(0.42, 0.26, 0.14, 0.13, 0.05),
        spend=(6.78, 1.6, -0.27, -0.16, 0.38), spend_mean=6.55,
        deals=(4.04, 0.81, -2.09, 1.8, 2.5), web=(6.69, 1.37, -1.29, 2.4, 0.0),
        catalog=(3.24, 3.0, -1.87, 1.8, 0.0), store=(7.67, 1.96, 2.08, 2.3, 0.0),
        visits=(5.94, 0.03, -0.78, 1.3, 0.9), no_deals=0.005,
        campaigns=(-5.12, -5.61, -3.03, -2.58, -6.17, -2.9),
    ),
    _Segment(
        name="young_family", weight=0.252, age=(35.8, 7.7), log_income=(10.18, 0.45),
        kidhome=(0.13, 0.84, 0.03), teenhome=(0.99, 0.01, 0.0),
        education=(0.51, 0.14, 0.15, 0.12, 0.08), marital=(0.40, 0.24, 0.26, 0.085, 0.015),
        spend=(4.58, 1.1, -0.33, 0.0, 0.72), spend_mean=4.17,
        deals=(1.91, 0.87, -1.63, 1.1, 1.0), web=(2.21, 0.9, -0.21, 0.75, 0.0),
        catalog=(0.48, 0.48, -0.18, 0.55, 0.0), store=(3.08, 0.5, 0.52, 0.7, 0.0),
        visits=(7.06, 0.43, -2.04, 1.0, 0.4), no_deals=0.008,
        campaigns=(-11.69, -9.15, -2.65, -8.21, -14.55, -3.09),
    ),
    _Segment(
        name="budget_family", weight=0.208, age=(50.3, 9.1), log_income=(10.59, 0.30),
        kidhome=(0.32, 0.64, 0.04), teenhome=(0.05, 0.92, 0.03),
        education=(0.47, 0.25, 0.18, 0.09, 0.01), marital=(0.37, 0.28, 0.19, 0.12, 0.04),
        spend=(4.60, 1.2, -0.36, -0.02, 0.70), spend_mean=4.25,
        deals=(2.16, 0.97, -1.40, 0.8, 1.0), web=(1.97, 0.8, -0.31, 0.65, 0.0),
        catalog=(0.58, 0.55, -0.10, 0.55, 0.0), store=(3.35, 0.55, -0.30, 0.7, 0.0),
        visits=(5.79, 0.41, -2.19, 1.1, 0.85), no_deals=0.008,
        campaigns=(-10.55, -7.09, -3.31, -5.54, -11.87, -4.35),
    ),
)

# Purchase counts: (segment field, column, low, high, tenure effect). Outside the odd
# records the real file's counts stay within these bounds (deals and store purchases
# start at 1 and 2 for nearly everyone). Long-standing customers deal, browse and buy
# on the web a little more (real correlations with tenure ~0.2-0.3); the effect is over
# the whole tenure range.
_COUNTS = (
    ("deals", "NumDealsPurchases", 1, 15, 1.2),
    ("web", "NumWebPurchases", 0, 11, 1.0),
    ("catalog", "NumCatalogPurchases", 0, 11, 0.0),
    ("store", "NumStorePurchases", 2, 13, 0.0),
    ("visits", "NumWebVisitsMonth", 1, 9, 1.5),
)

_CAMPAIGNS = ("AcceptedCmp1", "AcceptedCmp2", "AcceptedCmp3", "AcceptedCmp4", "AcceptedCmp5", "Response")
# Each campaign's logit adds slopes on log income and log spend (deviations from the
# type's centre) and scale * u, where u is one latent "responsiveness" per customer
# shared by all campaigns: customers who accepted one campaign are far more likely to
# accept the others (real corr ~0.4). Campaigns 1 and 5 were almost only accepted by
# incomes above ~70K, hence their steep income slopes; campaign 3 ignored income.
_CAMPAIGN_INCOME_SLOPE = (6.0, 2.0, 0.0, 2.0, 8.0, 0.5)
_CAMPAIGN_SPEND_SLOPE = (1.0, 1.0, 0.0, 1.0, 1.0, 0.5)
_CAMPAIGN_SHARED = (1.5, 1.5, 1.0, 1.3, 1.5, 1.6)
# Response (the last campaign) is also far likelier after a recent purchase and for
# long-standing customers: real rates fall from ~29% at recency < 20 to ~6% at > 80.
_RESPONSE_RECENCY = -2.6
_RESPONSE_TENURE = 1.6

# Quirks of the real file, as counts per 2,240 customers.
_MISSING_INCOME = 24
_ANCIENT_BIRTH_YEARS = (1900, 1893, 1899)    # cycled; 3 per 2,240
_ODD_STATUSES = (("Alone", 3), ("Absurd", 2), ("YOLO", 2))
# Odd purchase records (store purchases of 0-1 with extreme browsing, bulk catalogue or
# web orders, or a six-figure income), about 15 per 2,240 like the real file's.
_ODD_RECORDS = 15
_EXTREME_INCOME = 666666.0
_QUIRK_MIN_ROWS = 500   # from this size on every quirk appears at least once
_COMPLAIN_RATE = 0.0094


def _check_n(n) -> int:
    """Validate the requested number of customers."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return int(n)


def _quirk_count(per_real_file: int, n: int) -> int:
    """Scale a per-2,240 quirk count to ``n`` rows, at least one once n >= 500."""
    count = int(round(per_real_file * n / _REAL_ROWS))
    if n >= _QUIRK_MIN_ROWS:
        count = max(count, 1)
    return count


def _segment_table() -> dict[str, np.ndarray]:
    """Stack the segment parameters into arrays indexed by segment number."""
    fields = (
        "weight", "age", "log_income", "kidhome", "teenhome", "education", "marital",
        "spend", "spend_mean", *(count[0] for count in _COUNTS), "no_deals", "campaigns",
    )
    return {f: np.array([getattr(s, f) for s in _SEGMENTS], dtype=float) for f in fields}


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category per row from a (rows, k) matrix of probabilities."""
    cumulative = np.cumsum(probs, axis=1)
    cumulative /= cumulative[:, -1:]
    u = rng.random(len(probs))[:, None]
    # Index of the first cumulative probability above u; min() guards rounding at 1.0.
    return np.minimum((u >= cumulative).sum(axis=1), probs.shape[1] - 1)


def _reflect(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fold values back inside [low, high] so tails do not pile up at the bounds."""
    x = np.where(x < low, 2 * low - x, x)
    x = np.where(x > high, 2 * high - x, x)
    return np.clip(x, low, high)


def _simulate(n: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Draw every column; returns the columns and each customer's latent segment."""
    table = _segment_table()
    seg = rng.choice(len(_SEGMENTS), size=n, p=table["weight"] / table["weight"].sum())

    def param(name: str, index: int | None = None) -> np.ndarray:
        values = table[name] if index is None else table[name][:, index]
        return values[seg]

    # IDs: unique, in random order, from a range about five times n (0..11191 for 2,240).
    id_space = max(n, int(round(n * 11192 / _REAL_ROWS)))
    ids = rng.choice(id_space, size=n, replace=False) if n else np.zeros(0, dtype=np.int64)

    age = _reflect(rng.normal(param("age", 0), param("age", 1)), 18.0, 74.0)
    year_birth = _REFERENCE_YEAR - np.rint(age).astype(np.int64)

    # Within a type, older customers are less likely to have small children at home.
    kid_probs = table["kidhome"][seg].copy()
    kid_probs[:, 1:] *= np.exp(-0.05 * (age - param("age", 0)))[:, None]
    kidhome = _categorical(rng, kid_probs)
    teenhome = _categorical(rng, table["teenhome"][seg])
    education = _categorical(rng, table["education"][seg])
    # Widowhood rises steeply with age (real widows average 55 against 45 overall).
    marital_probs = table["marital"][seg].copy()
    marital_probs[:, 4] *= 0.8 * np.exp(0.09 * (age - 50.0))
    marital = _categorical(rng, marital_probs)

    log_income = (
        rng.normal(param("log_income", 0), param("log_income", 1))
        + np.log(np.array(_EDUCATION_INCOME))[education]
    )
    # Fold the tails back inside the real file's ordinary range (the six-figure outliers
    # come from the odd records below) rather than piling customers on the bounds.
    income = np.rint(np.exp(_reflect(log_income, np.log(1730.0), np.log(115000.0))))
    log_income = np.log(income)
    income_dev = log_income - param("log_income", 0)

    # Enrolment is uniform over the span, as in the real file.
    days_before_last = rng.integers(0, _SPAN_DAYS + 1, n)
    # Tenure in [0, 1]: long-standing customers spend, browse and respond a little more.
    tenure = days_before_last / _SPAN_DAYS
    recency = rng.integers(0, 100, n)

    log_spend = (
        param("spend", 0)
        + param("spend", 1) * income_dev
        + param("spend", 2) * kidhome
        + param("spend", 3) * teenhome
        + 0.6 * (tenure - 0.5)
        + rng.normal(0.0, param("spend", 4))
    )
    total = np.exp(log_spend)
    # Soft ceiling: the real file tops out near 2,500 over two years, without a spike.
    knee, room = 1800.0, 750.0
    total = np.where(total > knee, knee + room * (1 - np.exp(-(total - knee) / room)), total)
    total = np.maximum(total, 5.0)
    log_total = np.log(total)

    amounts = _split_spend(rng, total, log_total)
    spend_dev = log_total - param("spend_mean")

    # Small children above the type's average push deals and web visits up.
    kid_excess = kidhome - table["kidhome"][seg] @ np.arange(3)
    counts = {}
    for name, column, low, high, tenure_effect in _COUNTS:
        mean = (
            param(name, 0)
            + param(name, 1) * spend_dev
            + param(name, 2) * income_dev
            + param(name, 4) * kid_excess
            + tenure_effect * (tenure - 0.5)
        )
        draw = np.rint(mean + param(name, 3) * rng.standard_normal(n))
        counts[column] = np.clip(draw, low, high).astype(np.int64)
    counts["NumDealsPurchases"][rng.random(n) < param("no_deals")] = 0

    # One latent responsiveness per customer, shared by every campaign (see above).
    shared = rng.standard_normal(n)
    campaign = {}
    for k, name in enumerate(_CAMPAIGNS):
        logit = (
            param("campaigns", k)
            + _CAMPAIGN_INCOME_SLOPE[k] * income_dev
            + _CAMPAIGN_SPEND_SLOPE[k] * spend_dev
            + _CAMPAIGN_SHARED[k] * shared
        )
        if name == "Response":
            logit = logit + _RESPONSE_RECENCY * (recency / 99.0 - 0.5) + _RESPONSE_TENURE * (tenure - 0.5)
        campaign[name] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    complain = (rng.random(n) < _COMPLAIN_RATE).astype(np.int64)

    columns = {
        "ID": ids.astype(np.int64),
        "Year_Birth": year_birth,
        "Education": np.array(_EDUCATION, dtype=object)[education],
        "Marital_Status": np.array(_MARITAL, dtype=object)[marital],
        "Income": income,
        "Kidhome": kidhome.astype(np.int64),
        "Teenhome": teenhome.astype(np.int64),
        "Dt_Customer": days_before_last,   # turned into text once quirks are planted
        "Recency": recency.astype(np.int64),
        **{col: amounts[:, k] for k, col in enumerate(SPEND_COLUMNS)},
        **counts,
        **campaign,
        "Complain": complain,
        "Z_CostContact": np.full(n, 3, dtype=np.int64),
        "Z_Revenue": np.full(n, 11, dtype=np.int64),
    }
    _plant_quirks(rng, columns, n)
    return columns, seg


def _split_spend(rng: np.random.Generator, total: np.ndarray, log_total: np.ndarray) -> np.ndarray:
    """Split each total into the six categories (columns in SPEND_COLUMNS order)."""
    n = len(total)
    mean = np.column_stack([np.interp(log_total, _SHARE_KNOTS, curve) for curve in _SHARES])
    mean /= mean.sum(axis=1, keepdims=True)
    fresh = list(_FRESH)
    # Stage one: wine, meat, fresh food, gold.
    groups = np.column_stack([mean[:, 0], mean[:, 2], mean[:, fresh].sum(axis=1), mean[:, 5]])
    conc = np.array(_GROUP_CONCENTRATION)
    top = rng.gamma(conc * groups) / conc
    top /= top.sum(axis=1, keepdims=True)
    # Stage two: fruit, fish, sweets within fresh food.
    inner = rng.gamma(_FRESH_CONCENTRATION * mean[:, fresh] / groups[:, 2:3])
    inner /= inner.sum(axis=1, keepdims=True)
    shares = np.empty((n, len(SPEND_COLUMNS)))
    shares[:, 0], shares[:, 2], shares[:, 5] = top[:, 0], top[:, 1], top[:, 3]
    shares[:, fresh] = top[:, 2:3] * inner
    skipped = rng.random((n, len(fresh))) < np.array(_FRESH_SKIPPED) * np.exp(-total / 250.0)[:, None]
    shares[:, fresh] = np.where(skipped, 0.0, shares[:, fresh])
    amounts = np.minimum(np.floor(shares * total[:, None]), np.array(_SPEND_MAX)).astype(np.int64)
    # Nobody in the real file spent less than 5 in total: top up the wine column.
    short = amounts.sum(axis=1) < 5
    amounts[short, 0] += 5 - amounts[short].sum(axis=1)
    return amounts


def _plant_quirks(rng: np.random.Generator, columns: dict[str, np.ndarray], n: int) -> None:
    """Overwrite a few rows with the real file's data-entry quirks, in place."""
    counts = {
        "missing": _quirk_count(_MISSING_INCOME, n),
        "ancient": _quirk_count(len(_ANCIENT_BIRTH_YEARS), n),
        "extreme": 1 if n >= _QUIRK_MIN_ROWS else 0,
        "odd": _quirk_count(_ODD_RECORDS, n),
        **{status: _quirk_count(count, n) for status, count in _ODD_STATUSES},
    }
    total = sum(counts.values())
    if total == 0:
        return
    # Distinct rows for every quirk, so that e.g. the 666666 income is never blanked.
    rows = rng.choice(n, size=min(total, n), replace=False)
    start = 0
    picked = {}
    for name, count in counts.items():
        picked[name] = rows[start:start + count]
        start += count

    columns["Income"][picked["missing"]] = np.nan
    years = np.array(_ANCIENT_BIRTH_YEARS)
    columns["Year_Birth"][picked["ancient"]] = years[np.arange(len(picked["ancient"])) % len(years)]
    columns["Income"][picked["extreme"]] = _EXTREME_INCOME
    for status, _ in _ODD_STATUSES:
        columns["Marital_Status"][picked[status]] = status

    # Odd purchase records of four kinds seen in the real file, in a cycle of five (two
    # browsers). Like the real ones they contradict the rest of their row (a tiny income
    # with ordinary spend, bulk orders without store visits): they are there to be
    # noticed as outliers, not to follow the model.
    odd = picked["odd"]
    kind = np.arange(len(odd)) % 5
    m = len(odd)
    columns["NumStorePurchases"][odd] = rng.integers(0, 2, m)
    browsers = odd[kind <= 1]          # tiny income, browse 13-20 times a month
    columns["Income"][browsers] = np.rint(rng.uniform(1730, 9000, len(browsers)))
    columns["NumWebVisitsMonth"][browsers] = rng.integers(13, 21, len(browsers))
    rich = odd[kind == 2]              # six-figure income with almost no store visits
    columns["Income"][rich] = np.rint(rng.uniform(150000, 162500, len(rich)))
    catalog_bulk = odd[kind == 3]
    columns["NumCatalogPurchases"][catalog_bulk] = rng.integers(22, 29, len(catalog_bulk))
    web_bulk = odd[kind == 4]
    columns["NumWebPurchases"][web_bulk] = rng.integers(23, 28, len(web_bulk))
    columns["NumDealsPurchases"][odd[(kind == 0) | (kind == 2)]] = 15
    quiet = odd[kind >= 2]
    columns["NumWebVisitsMonth"][quiet] = rng.integers(0, 2, len(quiet))


def _date_strings(days_before_last: np.ndarray) -> np.ndarray:
    """Format day offsets as the real file's 'dd-mm-yyyy', via a table of ~700 dates."""
    dates = _LAST_DAY - np.arange(_SPAN_DAYS + 1)
    iso = np.datetime_as_string(dates, unit="D")      # 'yyyy-mm-dd'
    table = np.array([f"{d[8:10]}-{d[5:7]}-{d[0:4]}" for d in iso], dtype=object)
    return table[days_before_last]


def generate_customers(n: int = 2240, seed: int = 7) -> pd.DataFrame:
    """Generate synthetic customers in the raw form of the real file.

    Parameters
    ----------
    n : int, default 2240
        Number of customers (the real file has 2,240).
    seed : int, default 7
        Seed of the random generator; the same ``n`` and ``seed`` always give the same
        frame (with the same numpy version).

    Returns
    -------
    pandas.DataFrame
        Exactly ``schema.CANONICAL_COLUMNS`` in order. ``ID`` (unique, shuffled, drawn
        from about ``0 .. 5 n``), integer counts, amounts and flags as int64, ``Income`` as
        float64 (whole numbers, NaN when missing), ``Education``, ``Marital_Status`` and
        ``Dt_Customer`` (``'dd-mm-yyyy'``) as strings, ``Z_CostContact`` 3 and
        ``Z_Revenue`` 11. The real file's quirks are included in proportional numbers:
        ~1% missing incomes, birth years 1893/1899/1900, one income of 666666 (when
        ``n >= 500``), marital statuses Alone/Absurd/YOLO and a few odd purchase records.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n`` is negative.
    """
    n = _check_n(n)
    rng = np.random.default_rng(seed)
    columns, _ = _simulate(n, rng)
    columns["Dt_Customer"] = _date_strings(columns["Dt_Customer"])
    frame = pd.DataFrame({name: columns[name] for name in CANONICAL_COLUMNS})
    for name in ("Education", "Marital_Status", "Dt_Customer"):
        # The same string dtype read_csv gives the real file's text columns.
        frame[name] = frame[name].astype("str")
    return frame


def _number_column(values: pd.Series) -> pd.Series:
    """Prepare a numeric column so to_csv writes it as the real file does.

    Integers stay bare (``58138``, never ``58138.0``) and missing values become empty
    fields. Integer dtypes pass through untouched; whole floats become the nullable
    Int64 dtype, which to_csv writes fast; only a column with true fractions (incomes
    with cents) is turned into text, keeping the shortest exact form (``58138.5``).
    """
    if pd.api.types.is_integer_dtype(values.dtype):
        return values
    numbers = pd.to_numeric(values, errors="raise").astype("float64")
    if np.isinf(numbers.to_numpy()).any():
        raise ValueError(f"cannot write an infinite value in column {values.name!r}")
    present = numbers.notna()
    whole = present & (numbers == np.floor(numbers))
    if bool((whole == present).all()):
        return numbers.astype("Int64")
    text = pd.Series("", index=values.index, dtype=object)
    text[whole] = numbers[whole].astype("int64").astype(str)
    fractional = present & ~whole
    text[fractional] = numbers[fractional].map(repr)
    return text


def write_customers(frame: pd.DataFrame, path) -> None:
    """Write customers in exactly the real file's format, atomically.

    Parameters
    ----------
    frame : pandas.DataFrame
        Must contain every column of ``schema.CANONICAL_COLUMNS``; other columns (for
        example engineered features) are not written.
    path : str or os.PathLike
        Destination file. Its folder must exist. A temporary file is written next to
        it and moved over it with ``os.replace``, so readers never see half a file.

    Notes
    -----
    The output is tab-separated, UTF-8 without a byte-order mark, has one header line,
    ``'\\n'`` line endings and a final newline, integer columns without ``.0``, ``Income``
    as an integer when whole (``58138``) and empty when missing.

    Raises
    ------
    ValueError
        If a canonical column is missing or a numeric column holds an infinity.
    """
    missing = [c for c in CANONICAL_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot write customers: missing columns {missing}")
    out = frame[CANONICAL_COLUMNS].copy()
    for name in CANONICAL_COLUMNS:
        if name in INTEGER_COLUMNS or name == "Income":
            out[name] = _number_column(frame[name])
    path = Path(path)
    # mkstemp creates the file private (0600); keep the mode of the file being replaced,
    # or use the usual 0644 for a new one, so the result is readable like any data file.
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            # QUOTE_NONE: the real file never quotes anything; a tab inside a value
            # (never produced by the generator) is escaped rather than breaking the row.
            out.to_csv(
                handle, sep="\t", index=False, lineterminator="\n", na_rep="",
                quoting=csv.QUOTE_NONE, escapechar="\\",
            )
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_sample(path, n: int = 2240, seed: int = 7) -> pd.DataFrame:
    """Generate synthetic customers and write them to ``path`` in the real format.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file (see :func:`write_customers`).
    n : int, default 2240
        Number of customers.
    seed : int, default 7
        Random seed.

    Returns
    -------
    pandas.DataFrame
        The generated frame, as :func:`generate_customers` returns it.
    """
    frame = generate_customers(n=n, seed=seed)
    write_customers(frame, path)
    return frame


# Customers generated at a time by write_parquet: bounded memory (about 0.5 GB per million in pandas).
PARQUET_BLOCK = 500_000


def _id_space(n: int) -> int:
    return max(n, int(round(n * 11192 / _REAL_ROWS)))


def write_parquet(path, n: int = 2240, seed: int = 7, *, block: int = PARQUET_BLOCK) -> int:
    """Generate synthetic customers and write them as one Parquet file, block by block, atomically.

    Up to ``block`` customers this is exactly :func:`generate_customers` (``n``, ``seed``), so a
    small Parquet file holds the same customers as the tab-separated one. Beyond, block ``j``
    is generated with a seed derived from ``(seed, j)`` and its IDs shifted past the previous
    blocks' ID range, so IDs stay unique and memory stays bounded at any ``n``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its folder must exist.
    n : int, default 2240
    seed : int, default 7
    block : int, default 500000
        Customers per generated block (and per Parquet row group).

    Returns
    -------
    int
        Customers written.

    Notes
    -----
    Columns are ``schema.CANONICAL_COLUMNS``: integers as int64, ``Income`` as float64 (null
    when missing), text as strings and ``Dt_Customer`` as a Parquet date.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = _check_n(n)
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    writer = None
    try:
        offset, done, j = 0, 0, 0
        while done < n or (n == 0 and writer is None):
            m = min(block, n - done)
            block_seed = seed if j == 0 else int(np.random.SeedSequence([seed, j]).generate_state(1)[0])
            frame = generate_customers(m, seed=block_seed)
            frame["ID"] = frame["ID"].to_numpy(dtype=np.int64) + offset
            frame["Dt_Customer"] = pd.to_datetime(frame["Dt_Customer"], format="%d-%m-%Y").dt.date
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.cast(table.schema.set(table.schema.get_field_index("Dt_Customer"),
                                                pa.field("Dt_Customer", pa.date32())))
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=max(block, 1))
            offset += _id_space(m)
            done += m
            j += 1
            if n == 0:
                break
        writer.close()
        writer = None
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return n
