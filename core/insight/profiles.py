"""Per-segment profiles, persona names, campaign response and economics, product lift.

Everything here is a pure function of a frame with engineered features (see
:mod:`core.reading.features`) and one label per row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.reading import schema
from core.reading.features import CHANNEL_COLUMNS

__all__ = [
    "Persona", "sizes", "summary_stats", "zscores", "product_mix", "channel_mix",
    "campaign_rates", "economics", "product_lift", "personas", "wilson_interval",
    "PROFILE_COLUMNS", "LIFT_THRESHOLD", "compare_segments", "effect_magnitude", "own_names",
]

# Columns profiled besides the model's features (means/medians, z-scores).
PROFILE_COLUMNS = [
    "Age", "Income", "Total_Spending", "Total_Children", "Kidhome", "Teenhome", "Recency",
    "Customer_since", "Total_Purchases", "NumDealsPurchases", "NumWebPurchases",
    "NumCatalogPurchases", "NumStorePurchases", "NumWebVisitsMonth", "Campaigns_Accepted",
] + schema.SPEND_COLUMNS
LIFT_THRESHOLD = 1.2
_DEFAULT_COST, _DEFAULT_REVENUE = 3.0, 11.0


def own_names(meta: dict | None) -> dict:
    """Canonical profile column -> the user's own column name, for a version trained on a customer table.

    Profiles and personas read a customer table's columns under their canonical names (``Income``),
    hidden copies of the user's columns (``income``); pages show the user's names (issue 30).

    Parameters
    ----------
    meta : dict or None
        The version's metadata (``aliases``, written at training by :func:`core.reading.mapping.input_summary`).

    Returns
    -------
    dict
        Empty for the canonical file, transaction logs and versions trained before aliases existed.
    """
    aliases = (meta or {}).get("aliases") if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in aliases.items()} if isinstance(aliases, dict) else {}


def _present(frame: pd.DataFrame, columns) -> list[str]:
    return [c for c in columns if c in frame]


def sizes(labels, k: int) -> pd.DataFrame:
    """Size and share of each segment.

    Parameters
    ----------
    labels : array-like of int
    k : int

    Returns
    -------
    pandas.DataFrame
        Index ``segment``; columns ``n`` and ``share`` (0-1).
    """
    counts = np.bincount(np.asarray(labels, int), minlength=k)
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"n": counts, "share": counts / total}, index=pd.RangeIndex(k, name="segment"))


def summary_stats(frame: pd.DataFrame, labels, columns=None) -> pd.DataFrame:
    """Mean and median of each numeric column per segment.

    Parameters
    ----------
    frame : pandas.DataFrame
    labels : array-like of int
    columns : list of str, optional
        Defaults to every numeric column but ID.

    Returns
    -------
    pandas.DataFrame
        Index ``segment``; two-level columns (column, ``mean``/``median``).
    """
    if columns is None:
        columns = [c for c in frame.select_dtypes("number").columns if c != "ID"]
    # A customer table of another layout lacks some profile columns: describe what it has.
    grouped = frame[_present(frame, columns)].groupby(np.asarray(labels))
    out = grouped.agg(["mean", "median"])
    out.index.name = "segment"
    return out


def zscores(frame: pd.DataFrame, labels, columns=None) -> pd.DataFrame:
    """Segment means against all customers, in standard deviations.

    Parameters
    ----------
    frame : pandas.DataFrame
    labels : array-like of int
    columns : list of str, optional
        Defaults to ``PROFILE_COLUMNS`` present in ``frame``.

    Returns
    -------
    pandas.DataFrame
        Index ``segment``, one column per feature.
    """
    columns = _present(frame, columns or PROFILE_COLUMNS)
    data = frame[columns].astype(float)
    std = data.std(ddof=0).replace(0, np.nan)
    out = ((data.groupby(np.asarray(labels)).mean() - data.mean()) / std).fillna(0.0)
    out.index.name = "segment"
    return out


def _mix(frame: pd.DataFrame, labels, columns: list[str], names: list[str]) -> pd.DataFrame:
    """Each segment's total of ``columns`` split into shares (rows sum to 1; 0 where the total is 0).

    Columns the frame lacks are left out (a table with none of them gives no columns): data of
    another layout (a transaction log's customers, a CRM export) may have no product or channel split.
    """
    keep = [i for i, c in enumerate(columns) if c in frame]
    columns, names = [columns[i] for i in keep], [names[i] for i in keep]
    totals = frame[columns].groupby(np.asarray(labels)).sum()
    mix = totals.div(totals.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
    mix.columns = names
    mix.index.name = "segment"
    return mix


def product_mix(frame: pd.DataFrame, labels) -> pd.DataFrame:
    """Share of each segment's total spend that goes to each product category.

    Parameters
    ----------
    frame : pandas.DataFrame
    labels : array-like of int

    Returns
    -------
    pandas.DataFrame
        Index ``segment``; columns the product categories (Wines, Fruits, ...); rows sum to 1.
    """
    return _mix(frame, labels, schema.SPEND_COLUMNS, [c[3:] for c in schema.SPEND_COLUMNS])


def channel_mix(frame: pd.DataFrame, labels) -> pd.DataFrame:
    """Share of each segment's purchases made on the web, by catalogue and in store.

    Parameters
    ----------
    frame : pandas.DataFrame
    labels : array-like of int

    Returns
    -------
    pandas.DataFrame
        Index ``segment``; columns ``Web``, ``Catalog``, ``Store``; rows sum to 1.
    """
    cols = ["NumWebPurchases", "NumCatalogPurchases", "NumStorePurchases"]
    return _mix(frame, labels, cols, [c.split("_")[1] for c in CHANNEL_COLUMNS])


def wilson_interval(successes, n, z: float = 1.96):
    """Wilson score interval for a proportion (sound for small n and rates near 0).

    Parameters
    ----------
    successes, n : array-like
    z : float, default 1.96 (95 %)

    Returns
    -------
    low, high : ndarray
    """
    successes = np.asarray(successes, float)
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, successes / n, 0.0)
        denom = 1 + z ** 2 / n
        centre = (p + z ** 2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / denom
    low = np.where(n > 0, np.clip(centre - half, 0, 1), 0.0)
    high = np.where(n > 0, np.clip(centre + half, 0, 1), 1.0)
    return low, high


def campaign_rates(frame: pd.DataFrame, labels) -> pd.DataFrame:
    """Acceptance rate of each campaign and of Response, per segment, with 95 % intervals.

    Parameters
    ----------
    frame : pandas.DataFrame
    labels : array-like of int

    Returns
    -------
    pandas.DataFrame
        Long form: ``segment``, ``campaign``, ``accepted``, ``n``, ``rate``,
        ``low``, ``high``. Campaigns absent from the file are left out.
    """
    campaigns = _present(frame, schema.CAMPAIGN_COLUMNS)
    if not campaigns:
        return pd.DataFrame(columns=["segment", "campaign", "accepted", "n", "rate", "low", "high"])
    lab = np.asarray(labels)
    accepted = frame[campaigns].groupby(lab).sum()
    n = pd.Series(lab).value_counts().sort_index()
    rows = []
    for seg in accepted.index:
        low, high = wilson_interval(accepted.loc[seg].to_numpy(), np.full(len(campaigns), n[seg]))
        for i, camp in enumerate(campaigns):
            a = float(accepted.loc[seg, camp])
            rows.append({"segment": int(seg), "campaign": camp, "accepted": int(a), "n": int(n[seg]),
                         "rate": a / n[seg], "low": float(low[i]), "high": float(high[i])})
    return pd.DataFrame(rows)


def economics(frame: pd.DataFrame, labels) -> pd.DataFrame:
    """What targeting each segment with a campaign like the last one would return.

    Expected responders use the segment's ``Response`` rate; cost is
    ``Z_CostContact`` per contact and revenue ``Z_Revenue`` per responder
    (the file's constants; 3 and 11 when the columns are absent).

    Parameters
    ----------
    frame : pandas.DataFrame
    labels : array-like of int

    Returns
    -------
    pandas.DataFrame
        Index ``segment``; ``contacts``, ``response_rate``, ``expected_responders``,
        ``cost``, ``revenue``, ``profit``, ``roi`` (profit / cost).
    """
    lab = np.asarray(labels)
    g = frame.assign(_one=1.0).groupby(lab)
    contacts = g["_one"].sum()
    rate = g["Response"].mean() if "Response" in frame else pd.Series(np.nan, index=contacts.index)
    cost_each = g["Z_CostContact"].mean() if "Z_CostContact" in frame else _DEFAULT_COST
    revenue_each = g["Z_Revenue"].mean() if "Z_Revenue" in frame else _DEFAULT_REVENUE
    responders = contacts * rate
    cost = contacts * cost_each
    revenue = responders * revenue_each
    out = pd.DataFrame({
        "contacts": contacts.astype(int), "response_rate": rate, "expected_responders": responders,
        "cost": cost, "revenue": revenue, "profit": revenue - cost,
    })
    out["roi"] = out["profit"] / out["cost"].replace(0, np.nan)
    out.index.name = "segment"
    return out


def product_lift(frame: pd.DataFrame, labels) -> pd.DataFrame:
    """How much more of its spend each segment puts in each category than all customers do.

    Parameters
    ----------
    frame : pandas.DataFrame
    labels : array-like of int

    Returns
    -------
    pandas.DataFrame
        Index ``segment``; one column per category; 1.0 = same share as
        everyone; >= ``LIFT_THRESHOLD`` over-indexes (a product to recommend).
    """
    mix = product_mix(frame, labels)
    total = frame[_present(frame, schema.SPEND_COLUMNS)].sum()
    overall = (total / max(float(total.sum()), 1e-12)).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = mix / np.where(overall > 0, overall, np.nan)
    return lift.fillna(0.0)


@dataclass
class Persona:
    """A segment's name and plain-words description.

    Parameters
    ----------
    segment : int
    name : str
        Unique within a model, e.g. "Affluent store loyalists".
    description : str
        One line.
    traits : list of str
        The most distinctive traits, strongest first.
    """

    segment: int
    name: str
    description: str
    traits: list


# (column, word when high, word when low): adjectives for who they are, nouns for how they buy.
_ADJECTIVES = [
    ("Income", "Affluent", "Budget"),
    ("Total_Spending", "Big-spending", "Low-spend"),
    ("Age", "Senior", "Young"),
    ("Total_Children", "Family", "Child-free"),
    ("Recency", "Lapsing", "Recently active"),
]
_NOUNS = [
    ("NumStorePurchases", "store loyalists", None),
    ("NumWebPurchases", "web shoppers", None),
    ("NumCatalogPurchases", "catalogue buyers", None),
    ("NumDealsPurchases", "bargain hunters", None),
    ("NumWebVisitsMonth", "browsers", "offline shoppers"),
    ("Total_Spending", "big spenders", "occasional buyers"),
]
_TRAIT_WORDS = {
    "Income": ("high income", "low income"), "Total_Spending": ("high spend", "low spend"),
    "Age": ("older", "younger"), "Total_Children": ("more children", "fewer children"),
    "Recency": ("long since last purchase", "bought recently"),
    "NumStorePurchases": ("many store purchases", "few store purchases"),
    "NumWebPurchases": ("many web purchases", "few web purchases"),
    "NumCatalogPurchases": ("many catalogue purchases", "few catalogue purchases"),
    "NumDealsPurchases": ("buys on discount", "rarely uses discounts"),
    "NumWebVisitsMonth": ("visits the website often", "rarely visits the website"),
    "Customer_since": ("long-standing", "recently enrolled"),
    "Campaigns_Accepted": ("responds to campaigns", "ignores campaigns"),
}


def _pick(z: pd.Series, table) -> list[tuple[float, str, str]]:
    options = []
    for column, high, low in table:
        if column not in z:
            continue
        value = float(z[column])
        word = high if value > 0 else low
        if word is not None:
            options.append((abs(value), word, column))
    return sorted(options, key=lambda t: -t[0])


def personas(frame: pd.DataFrame, labels, k: int) -> list[Persona]:
    """Generate a unique persona name and description for each segment.

    The adjective comes from the segment's most distinctive "who" trait
    (income, spend, age, children, recency) and the noun from its most
    distinctive "how they buy" trait, both by absolute z-score. When two
    segments would get the same name, the later one (smaller distinctiveness)
    takes its next-best words.

    Parameters
    ----------
    frame : pandas.DataFrame
        Customers with engineered features.
    labels : array-like of int
    k : int

    Returns
    -------
    list of Persona
        One per segment, in segment order.
    """
    z = zscores(frame, labels).reindex(range(k)).fillna(0.0)
    size = sizes(labels, k)
    strength = z.abs().max(axis=1)
    names: dict[int, str] = {}
    taken: set[str] = set()
    # Most distinctive segments choose first: they deserve the plainest names.
    for seg in sorted(range(k), key=lambda s: (-strength[s], s)):
        adjectives = _pick(z.loc[seg], _ADJECTIVES) or [(0.0, "Typical", "")]
        nouns = _pick(z.loc[seg], _NOUNS) or [(0.0, "customers", "")]
        # Never describe one trait twice ("Big-spending big spenders").
        candidates = [f"{a} {n}" for _, a, ca in adjectives for _, n, cn in nouns if ca != cn]
        name = next((c for c in candidates if c not in taken), None)
        if name is None:
            base = candidates[0] if candidates else "Typical customers"
            i = 2
            while f"{base} ({i})" in taken:
                i += 1
            name = f"{base} ({i})"
        taken.add(name)
        names[seg] = name
    out = []
    for seg in range(k):
        row = z.loc[seg]
        ranked = sorted(((abs(float(row[c])), c) for c in _TRAIT_WORDS if c in row), reverse=True)
        traits = [_TRAIT_WORDS[c][0 if row[c] > 0 else 1] for v, c in ranked[:3] if v >= 0.25]
        share = float(size.loc[seg, "share"])
        desc = f"{share:.0%} of customers"
        desc += f"; {', '.join(traits)}." if traits else "; close to the average customer."
        out.append(Persona(seg, names[seg], desc, traits))
    return out


def effect_magnitude(d) -> str:
    """Plain words for the size of a standardised difference (Cohen's conventions).

    Parameters
    ----------
    d : float
        Cohen's d (any sign).

    Returns
    -------
    str
        ``negligible`` (|d| < 0.2), ``small`` (< 0.5), ``medium`` (< 0.8),
        ``large``, or ``n/a`` when ``d`` is not a finite number.
    """
    try:
        size = abs(float(d))
    except (TypeError, ValueError):
        return "n/a"
    if not np.isfinite(size):
        return "n/a"
    if size < 0.2:
        return "negligible"
    if size < 0.5:
        return "small"
    if size < 0.8:
        return "medium"
    return "large"


def compare_segments(frame: pd.DataFrame, labels, a: int, b: int, columns=None) -> pd.DataFrame:
    """Per-feature difference between two segments with its effect size (Cohen's d, pooled SD).

    ``d = (mean_a - mean_b) / s_pooled`` with
    ``s_pooled = sqrt(((n_a - 1) var_a + (n_b - 1) var_b) / (n_a + n_b - 2))``
    (sample variances, ddof=1). Positive values mean segment ``a`` is higher.

    Parameters
    ----------
    frame : pandas.DataFrame
        Customers with engineered features.
    labels : array-like of int
        Segment of each row of ``frame``.
    a, b : int
        The two segments to compare.
    columns : list of str, optional
        Numeric columns to compare; defaults to ``PROFILE_COLUMNS``. Columns absent
        from ``frame`` are left out.

    Returns
    -------
    pandas.DataFrame
        Index ``feature`` (in ``columns`` order); columns ``mean_a``, ``mean_b``,
        ``diff`` (``mean_a - mean_b``), ``cohens_d`` and ``magnitude``
        (see :func:`effect_magnitude`). ``cohens_d`` is NaN when it is undefined:
        fewer than two customers in total, or no spread in either segment while
        the means differ; it is 0 when neither the means nor the values vary.
    """
    columns = _present(frame, columns or PROFILE_COLUMNS)
    lab = np.asarray(labels)
    data = frame[columns].astype(float)
    in_a, in_b = data[lab == a], data[lab == b]
    n_a, n_b = len(in_a), len(in_b)
    mean_a, mean_b = in_a.mean(), in_b.mean()
    diff = mean_a - mean_b
    dof = n_a + n_b - 2
    if dof > 0:
        pooled_var = (in_a.var(ddof=1).fillna(0.0) * max(n_a - 1, 0)
                      + in_b.var(ddof=1).fillna(0.0) * max(n_b - 1, 0)) / dof
        sd = np.sqrt(pooled_var)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = diff / sd.replace(0, np.nan)
        # Identical constants in both segments: no difference at all, not an undefined one.
        d = d.where(~((sd == 0) & (diff == 0)), 0.0)
    else:
        d = pd.Series(np.nan, index=columns)
    out = pd.DataFrame({"mean_a": mean_a, "mean_b": mean_b, "diff": diff, "cohens_d": d.astype(float)},
                       index=pd.Index(columns, name="feature"))
    out["magnitude"] = [effect_magnitude(v) for v in out["cohens_d"]]
    return out
