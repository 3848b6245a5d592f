"""Campaign planning: response propensity, the targeting plan, holdouts and measured uplift.

Everything here is a pure function over DataFrames/arrays. The propensity model predicts a
campaign *like the last one* (``Response``) from the customer's features, segment and earlier
campaign flags; its predictions are out-of-fold (every customer is scored by a model that never
saw them), so the AUC and the plan are honest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from core.reading import schema

__all__ = [
    "CampaignError", "Economics", "Propensity", "Plan", "PROPENSITY_EXCLUDED", "propensity_features",
    "fit_propensity", "segment_response", "build_plan", "assign_holdout", "measure_results",
    "read_outcomes", "read_audience", "calibration", "AUDIENCE_COLUMNS", "MAX_HOLDOUT", "MAX_SEED", "Z",
    "value_audience", "VALUE_TARGETS",
]

Z = 1.96  # two-sided 95 %
MAX_HOLDOUT = 0.5
MAX_SEED = 2**32 - 1  # scikit-learn's random_state limit
AUDIENCE_COLUMNS = ["ID", "segment", "group", "propensity"]
# Never features: the label itself, sums that contain it, the file's constants, identifiers and dates.
PROPENSITY_EXCLUDED = {"Response", "Campaigns_Accepted", "Z_CostContact", "Z_Revenue", "ID", "Dt_Customer",
                       "Year_Birth", "segment", "confidence", "typicality"}
_EARLIER = ["AcceptedCmp1", "AcceptedCmp2", "AcceptedCmp3", "AcceptedCmp4", "AcceptedCmp5", "Complain"]
_BASE = list(dict.fromkeys(schema.MODEL_FEATURES + ["Kidhome", "Teenhome", "NumDealsPurchases",
                                                    "NumCatalogPurchases", "Total_Purchases"]))


class CampaignError(ValueError):
    """Bad planner input: the message names the field or rows."""


@dataclass(frozen=True)
class Economics:
    """The planner's economics.

    Parameters
    ----------
    cost : float
        Cost per contact (> 0).
    revenue : float
        Revenue (or margin) per responder (> 0).
    budget : float, optional
        Most money to spend on contacts (> 0).
    max_contacts : int, optional
        Most customers in the audience (>= 1).
    holdout : float
        Share of the audience kept as an uncontacted control group, in [0, 0.5].
    seed : int
        Seed of the holdout draw and of the cross-validation folds.
    """

    cost: float
    revenue: float
    budget: float | None = None
    max_contacts: int | None = None
    holdout: float = 0.1
    seed: int = 42

    @classmethod
    def checked(cls, cost, revenue, budget=None, max_contacts=None, holdout=0.1, seed=42) -> "Economics":
        """Validated economics; CampaignError naming the first bad field.

        Parameters
        ----------
        cost, revenue, budget, max_contacts, holdout, seed
            As the class; numbers or numeric text; ``None``/"" for the optional ones.

        Returns
        -------
        Economics
        """
        def num(name, value, *, optional=False, integer=False):
            if value is None or (isinstance(value, str) and not value.strip()):
                if optional:
                    return None
                raise CampaignError(f"{name}: enter a number")
            try:
                out = float(value)
            except (TypeError, ValueError):
                raise CampaignError(f"{name}: {value!r} is not a number") from None
            if not np.isfinite(out):
                raise CampaignError(f"{name}: {value!r} is not a finite number")
            if integer:
                if out != int(out):
                    raise CampaignError(f"{name}: must be a whole number, got {value!r}")
                return int(out)
            return out

        c, r = num("cost", cost), num("revenue", revenue)
        if c <= 0:
            raise CampaignError(f"cost: must be greater than 0, got {c:g}")
        if r <= 0:
            raise CampaignError(f"revenue: must be greater than 0, got {r:g}")
        b = num("budget", budget, optional=True)
        if b is not None and b <= 0:
            raise CampaignError(f"budget: must be greater than 0, got {b:g}")
        m = num("max_contacts", max_contacts, optional=True, integer=True)
        if m is not None and m < 1:
            raise CampaignError(f"max_contacts: must be at least 1, got {m}")
        h = num("holdout", 0.1 if holdout is None else holdout)
        if not 0 <= h <= MAX_HOLDOUT:
            raise CampaignError(f"holdout: must be between 0 and {MAX_HOLDOUT}, got {h:g}")
        s = num("seed", 42 if seed is None else seed, integer=True)
        if not 0 <= s <= MAX_SEED:
            raise CampaignError(f"seed: must be between 0 and {MAX_SEED}, got {s}")
        return cls(c, r, b, m, h, s)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return asdict(self)


@dataclass
class Propensity:
    """Out-of-fold response propensities and how good they are."""

    propensity: np.ndarray
    auc: float
    fold_aucs: list
    calibration: pd.DataFrame
    features: list
    n: int
    responders: int
    folds: int
    seed: int


@dataclass
class Plan:
    """A targeting plan: the audience, the profit curve and the expected figures."""

    economics: Economics
    audience: pd.DataFrame
    curve: pd.DataFrame
    segments: pd.DataFrame
    totals: dict
    best_n: int
    break_even_n: int
    break_even_propensity: float
    mode: str
    notes: list = field(default_factory=list)


def propensity_features(frame: pd.DataFrame) -> list[str]:
    """The columns the propensity model uses: customer features and earlier campaign flags.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    list of str
        Never ``Response`` nor anything computed from it (see :data:`PROPENSITY_EXCLUDED`).
    """
    cols = [c for c in _BASE + _EARLIER if c in frame and c not in PROPENSITY_EXCLUDED]
    return [c for c in cols if pd.api.types.is_numeric_dtype(frame[c])]


def _design(frame: pd.DataFrame, labels, k: int | None = None) -> tuple[np.ndarray, list[str]]:
    cols = propensity_features(frame)
    X = frame[cols].to_numpy(dtype=float)
    X = np.where(np.isfinite(X), X, np.nan)
    med = np.nanmedian(X, axis=0) if len(X) else np.zeros(len(cols))
    X = np.where(np.isnan(X), np.nan_to_num(med)[None, :], X)
    lab = np.asarray(labels, dtype=int)
    k = int(k if k is not None else (lab.max() + 1 if len(lab) else 0))
    onehot = (lab[:, None] == np.arange(k)[None, :]).astype(float)
    return np.hstack([X, onehot]), cols + [f"segment_{i}" for i in range(k)]


def fit_propensity(frame: pd.DataFrame, labels, *, seed: int = 42, folds: int = 5,
                   k: int | None = None) -> Propensity:
    """Out-of-fold propensity of responding to a campaign like the last one.

    A standardised logistic regression scored with ``cross_val_predict`` over a seeded
    ``StratifiedKFold``: each customer's propensity comes from a model fitted without them.

    Parameters
    ----------
    frame : pandas.DataFrame
        Prepared customers with ``Response`` (0/1).
    labels : array-like of int
        Segment of each row.
    seed : int
        Fold shuffling seed.
    folds : int
        Number of folds (at least 2).
    k : int, optional
        Number of segments (default: largest label + 1).

    Returns
    -------
    Propensity

    Raises
    ------
    CampaignError
        No ``Response`` column, values other than 0/1, or too few responders/non-responders.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if "Response" not in frame:
        raise CampaignError("Response: the data has no last-campaign response column, so no propensity can be fitted")
    y = pd.to_numeric(frame["Response"], errors="coerce").to_numpy()
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise CampaignError(f"Response: {int(bad.sum())} row(s) are not 0 or 1")
    y = y.astype(int)
    positives = int(y.sum())
    if min(positives, len(y) - positives) < folds:
        raise CampaignError(f"Response: need at least {folds} responders and {folds} non-responders, "
                            f"got {positives} and {len(y) - positives}")
    X, names = _design(frame, labels, k)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    p = cross_val_predict(model, X, y, cv=cv, method="predict_proba")[:, 1]
    fold_aucs = [float(roc_auc_score(y[test], p[test])) for _, test in cv.split(X, y)]
    return Propensity(propensity=p, auc=float(roc_auc_score(y, p)), fold_aucs=fold_aucs,
                      calibration=calibration(p, y), features=names, n=len(y), responders=positives,
                      folds=folds, seed=seed)


def calibration(propensity, outcome, bins: int = 10) -> pd.DataFrame:
    """Predicted against observed response by propensity decile.

    Parameters
    ----------
    propensity, outcome : array-like
    bins : int

    Returns
    -------
    pandas.DataFrame
        ``bin``, ``n``, ``predicted`` (mean propensity), ``observed`` (response rate), ``low``, ``high``
        (Wilson 95 % interval of the observed rate).
    """
    from core.insight.profiles import wilson_interval

    p = np.asarray(propensity, dtype=float)
    y = np.asarray(outcome, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = []
    for i, idx in enumerate(np.array_split(order, min(bins, max(len(p), 1)))):
        if not len(idx):
            continue
        lo, hi = wilson_interval(y[idx].sum(), len(idx))
        rows.append({"bin": i + 1, "n": len(idx), "predicted": float(p[idx].mean()),
                     "observed": float(y[idx].mean()), "low": float(lo), "high": float(hi)})
    return pd.DataFrame(rows)


def _sum_interval(p: np.ndarray) -> tuple[float, float, float]:
    """Expected count of responders and its 95 % interval (normal approximation to the Poisson-binomial)."""
    mean = float(p.sum())
    sd = float(np.sqrt((p * (1 - p)).sum()))
    return mean, max(0.0, mean - Z * sd), mean + Z * sd


def segment_response(propensity, labels, k: int, observed=None) -> pd.DataFrame:
    """Expected response rate per segment with a 95 % interval.

    Parameters
    ----------
    propensity : array-like
    labels : array-like of int
    k : int
    observed : array-like, optional
        The last campaign's responses, shown beside the prediction.

    Returns
    -------
    pandas.DataFrame
        Index ``segment``; ``n``, ``expected_rate``, ``low``, ``high``, and ``observed_rate`` when given.
    """
    p = np.asarray(propensity, dtype=float)
    lab = np.asarray(labels, dtype=int)
    rows = []
    for s in range(k):
        ps = p[lab == s]
        n = len(ps)
        mean, lo, hi = _sum_interval(ps) if n else (np.nan, np.nan, np.nan)
        row = {"segment": s, "n": n, "expected_rate": mean / n if n else np.nan,
               "low": lo / n if n else np.nan, "high": hi / n if n else np.nan}
        if observed is not None:
            obs = np.asarray(observed, dtype=float)[lab == s]
            row["observed_rate"] = float(obs.mean()) if n else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("segment")


def assign_holdout(segments, fraction: float, seed: int) -> np.ndarray:
    """A seeded random holdout, stratified by segment.

    The holdout has ``round(fraction * n)`` customers in all, shared among segments by largest
    remainder (each segment gets ``floor(fraction * n_segment)`` or one more), so the total is the
    chosen size and every segment's share is as close to ``fraction`` as whole customers allow.

    Parameters
    ----------
    segments : array-like of int
        Segment of each audience member.
    fraction : float
        In [0, 0.5].
    seed : int

    Returns
    -------
    numpy.ndarray of bool
        True for the holdout.
    """
    seg = np.asarray(segments, dtype=int)
    out = np.zeros(len(seg), dtype=bool)
    rng = np.random.default_rng(seed)
    groups, counts = np.unique(seg, return_counts=True)
    quota = fraction * counts
    n_hold = np.floor(quota).astype(int)
    extra = int(np.floor(fraction * len(seg) + 0.5)) - int(n_hold.sum())
    if extra > 0:  # largest remainders first; ties to the lower segment number (stable sort)
        n_hold[np.argsort(-(quota - n_hold), kind="stable")[:extra]] += 1
    for s, n in zip(groups, n_hold):
        out[rng.permutation(np.flatnonzero(seg == s))[:n]] = True
    return out


def _figures(p: np.ndarray, econ: Economics) -> dict:
    n = len(p)
    mean, lo, hi = _sum_interval(p) if n else (0.0, 0.0, 0.0)
    cost = n * econ.cost
    return {"n_targeted": n, "expected_responders": mean, "responders_low": lo, "responders_high": hi,
            "cost": cost, "expected_revenue": mean * econ.revenue, "revenue_low": lo * econ.revenue,
            "revenue_high": hi * econ.revenue, "expected_profit": mean * econ.revenue - cost,
            "profit_low": lo * econ.revenue - cost, "profit_high": hi * econ.revenue - cost}


def build_plan(ids, labels, propensity, econ: Economics, *, k: int | None = None, top_n: int | None = None,
               segments=None) -> Plan:
    """The plan: whom to contact, the profit curve, the holdout and the expected figures.

    Customers are ranked by expected profit ``propensity * revenue - cost`` (ties by ID). The
    audience is, by ``mode``: the best number (the top of the curve) by default, the top ``top_n``,
    or every member of the chosen ``segments`` ranked the same way; then capped by
    ``max_contacts`` and by ``floor(budget / cost)`` (caps count the holdout too, so the spend never
    exceeds the budget). The holdout is drawn from the audience (:func:`assign_holdout`); expected
    figures are over the target group only.

    Parameters
    ----------
    ids, labels, propensity : array-like
        One entry per customer.
    econ : Economics
    k : int, optional
        Number of segments (default: largest label + 1).
    top_n : int, optional
        Contact this many (mode "top_n").
    segments : iterable of int, optional
        Contact these segments (mode "segments").

    Returns
    -------
    Plan
    """
    ids = np.asarray(ids)
    lab = np.asarray(labels, dtype=int)
    p = np.asarray(propensity, dtype=float)
    if not (len(ids) == len(lab) == len(p)):
        raise CampaignError("ids, labels and propensity must have the same length")
    k = int(k if k is not None else (lab.max() + 1 if len(lab) else 0))
    gain = p * econ.revenue - econ.cost
    order = np.lexsort((ids, -gain))
    cum = np.cumsum(gain[order])
    curve = pd.DataFrame({"contacts": np.arange(1, len(p) + 1), "cumulative_profit": cum,
                          "propensity": p[order]})
    best_n = int(np.argmax(cum) + 1) if len(cum) and cum.max() > 0 else 0
    non_negative = np.flatnonzero(cum >= 0)
    break_even_n = int(non_negative.max() + 1) if len(non_negative) else 0
    notes = []
    if top_n is not None and segments is not None:
        raise CampaignError("choose either top_n or segments, not both")
    if top_n is not None:
        try:
            whole = int(top_n)
        except (TypeError, ValueError, OverflowError):
            raise CampaignError(f"top_n: must be a whole number, got {top_n!r}") from None
        if whole != top_n or whole < 1:
            raise CampaignError(f"top_n: must be a whole number of at least 1, got {top_n}")
        if whole > len(p):
            notes.append(f"top_n ({whole:,}) is more than the {len(p):,} customers: all of them are in the plan")
        chosen, mode = order[:min(whole, len(p))], "top_n"
    elif segments is not None:
        wanted = sorted({int(s) for s in segments})
        unknown = [s for s in wanted if not 0 <= s < k]
        if unknown:
            raise CampaignError(f"segments: no segment {', '.join(map(str, unknown))} (there are {k})")
        if not wanted:
            raise CampaignError("segments: choose at least one segment")
        chosen, mode = order[np.isin(lab[order], wanted)], "segments"
    else:
        chosen, mode = order[:best_n], "best"
        if best_n == 0:
            notes.append("no customer is expected to bring more than they cost at these economics")
    cap = len(chosen)
    if econ.max_contacts is not None and econ.max_contacts < cap:
        cap = econ.max_contacts
        notes.append(f"capped at {cap:,} contacts (maximum contacts)")
    if econ.budget is not None:
        affordable = np.floor(econ.budget / econ.cost + 1e-9)  # may be inf for extreme values: compare as float
        if affordable < cap:
            cap = int(affordable)
            notes.append(f"capped at {cap:,} contacts (budget {econ.budget:,.2f} / cost {econ.cost:,.2f})")
    chosen = chosen[:cap]
    hold = assign_holdout(lab[chosen], econ.holdout, econ.seed)
    audience = pd.DataFrame({"ID": ids[chosen], "segment": lab[chosen],
                             "group": np.where(hold, "holdout", "target"), "propensity": p[chosen]})
    rows = []
    for s in range(k):
        in_s = lab[chosen] == s
        row = {"segment": s, **_figures(p[chosen][in_s & ~hold], econ), "n_holdout": int((in_s & hold).sum())}
        rows.append(row)
    per_segment = pd.DataFrame(rows).set_index("segment")
    totals = {**_figures(p[chosen][~hold], econ), "n_holdout": int(hold.sum())}
    return Plan(econ, audience, curve, per_segment, totals, best_n, break_even_n,
                float(econ.cost / econ.revenue), mode, notes)


def read_audience(frame: pd.DataFrame) -> pd.DataFrame:
    """An audience file checked: ``ID``, ``segment``, ``group`` (target|holdout), ``propensity``.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    CampaignError
        Naming the missing column or the bad rows (1-based data rows).
    """
    missing = [c for c in AUDIENCE_COLUMNS if c not in frame]
    if missing:
        raise CampaignError(f"audience: missing column(s) {', '.join(missing)}; expected {', '.join(AUDIENCE_COLUMNS)}")
    out = frame[AUDIENCE_COLUMNS].copy()
    out["ID"] = _int_ids(out["ID"], "audience")
    groups = out["group"].astype(str).str.strip().str.lower()
    bad = np.flatnonzero(~groups.isin(["target", "holdout"]).to_numpy())
    if len(bad):
        raise CampaignError(f"audience: group must be target or holdout; rows {_rows(bad)}")
    out["group"] = groups
    dup = np.flatnonzero(out["ID"].duplicated(keep=False).to_numpy())
    if len(dup):
        raise CampaignError(f"audience: duplicate ID on rows {_rows(dup)}")
    out["propensity"] = pd.to_numeric(out["propensity"], errors="coerce")
    out["segment"] = pd.to_numeric(out["segment"], errors="coerce")
    bad = np.flatnonzero(out["propensity"].isna().to_numpy() | out["segment"].isna().to_numpy())
    if len(bad):
        raise CampaignError(f"audience: segment and propensity must be numbers; rows {_rows(bad)}")
    out["segment"] = out["segment"].astype(int)
    return out.reset_index(drop=True)


def _rows(positions, limit: int = 10) -> str:
    rows = [str(int(i) + 1) for i in positions[:limit]]
    more = len(positions) - limit
    return ", ".join(rows) + (f" and {more} more" if more > 0 else "")


def _int_ids(values: pd.Series, what: str) -> pd.Series:
    num = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero((num.isna() | (num != np.floor(num))).to_numpy())
    if len(bad):
        raise CampaignError(f"{what}: ID must be a whole number; rows {_rows(bad)}")
    return num.astype(np.int64)


def read_outcomes(frame: pd.DataFrame, audience: pd.DataFrame) -> pd.DataFrame:
    """An outcomes file checked against its audience: ``ID``, ``responded`` (0/1), optional ``revenue``.

    Parameters
    ----------
    frame : pandas.DataFrame
        The uploaded outcomes.
    audience : pandas.DataFrame
        From :func:`read_audience`.

    Returns
    -------
    pandas.DataFrame
        ``ID``, ``responded`` (int) and ``revenue`` (float, or NaN when the file has none).

    Raises
    ------
    CampaignError
        Missing columns, IDs not in the audience, duplicate IDs, ``responded`` not 0/1 or a
        negative/non-numeric ``revenue``, naming the rows (1-based data rows).
    """
    cols = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in ("id", "responded") if c not in cols]
    if missing:
        raise CampaignError(f"outcomes: missing column(s) {', '.join(m if m != 'id' else 'ID' for m in missing)}; "
                            "expected ID, responded (0/1) and optionally revenue")
    if not len(frame):
        raise CampaignError("outcomes: the file has no rows")
    out = pd.DataFrame({"ID": _int_ids(frame[cols["id"]], "outcomes")})
    dup = np.flatnonzero(out["ID"].duplicated(keep=False).to_numpy())
    if len(dup):
        raise CampaignError(f"outcomes: duplicate ID on rows {_rows(dup)}")
    unknown = np.flatnonzero(~out["ID"].isin(audience["ID"]).to_numpy())
    if len(unknown):
        raise CampaignError(f"outcomes: ID not in the audience on rows {_rows(unknown)}")
    resp = pd.to_numeric(frame[cols["responded"]], errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isin(resp, (0, 1)))
    if len(bad):
        raise CampaignError(f"outcomes: responded must be 0 or 1; rows {_rows(bad)}")
    out["responded"] = resp.astype(int)
    if "revenue" in cols:
        rev = pd.to_numeric(frame[cols["revenue"]], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(rev) | (rev < 0))
        if len(bad):
            raise CampaignError(f"outcomes: revenue must be a number of at least 0; rows {_rows(bad)}")
        out["revenue"] = rev
    else:
        out["revenue"] = np.nan
    return out


def _uplift(t: np.ndarray, h: np.ndarray) -> dict:
    """Target and holdout response rates, uplift and its Wald 95 % interval."""
    nt, nh = len(t), len(h)
    rt = float(t.mean()) if nt else np.nan
    rh = float(h.mean()) if nh else np.nan
    se = np.sqrt(rt * (1 - rt) / nt + rh * (1 - rh) / nh) if nt and nh else np.nan
    up = rt - rh
    return {"n_target": nt, "n_holdout": nh, "target_rate": rt, "holdout_rate": rh, "uplift": up,
            "uplift_low": up - Z * se, "uplift_high": up + Z * se}


def measure_results(audience: pd.DataFrame, outcomes: pd.DataFrame, *, cost: float | None = None,
                    revenue: float | None = None) -> dict:
    """What happened: response in target vs holdout, uplift, incremental profit, prediction vs outcome.

    Uplift = target rate - holdout rate with a Wald interval
    ``± 1.96 * sqrt(rt(1-rt)/nt + rh(1-rh)/nh)``. Incremental profit over the measured target group
    is ``uplift * n_target * value - n_target * cost`` where ``value`` is the measured revenue per
    responder when the outcomes carry revenue, else ``revenue``.

    Parameters
    ----------
    audience : pandas.DataFrame
        From :func:`read_audience`.
    outcomes : pandas.DataFrame
        From :func:`read_outcomes`.
    cost, revenue : float, optional
        The plan's economics (incremental profit is None without a cost and a revenue per responder).

    Returns
    -------
    dict
        ``overall`` and ``segments`` (list) of uplift figures, ``incremental_profit`` with ``low``/
        ``high``, ``predicted_responders``/``actual_responders`` in the measured target group,
        ``n_without_outcome``.
    """
    merged = audience.merge(outcomes, on="ID", how="inner")
    is_t = (merged["group"] == "target").to_numpy()
    y = merged["responded"].to_numpy(dtype=float)
    overall = _uplift(y[is_t], y[~is_t])
    segs = []
    for s in sorted(merged["segment"].unique()):
        in_s = (merged["segment"] == s).to_numpy()
        segs.append({"segment": int(s), **_uplift(y[in_s & is_t], y[in_s & ~is_t])})
    rev = merged["revenue"].to_numpy(dtype=float)
    value = revenue
    responders_t = y[is_t].sum()
    if np.isfinite(rev).any() and responders_t > 0:
        value = float(np.nansum(rev[is_t] * y[is_t]) / responders_t)
    nt = overall["n_target"]
    incremental = {"value": None, "low": None, "high": None, "revenue_per_responder": value}
    if value is not None and cost is not None and nt:
        incremental.update({key: float(overall[src] * nt * value - nt * cost)
                            for key, src in (("value", "uplift"), ("low", "uplift_low"), ("high", "uplift_high"))
                            if np.isfinite(overall[src])})
    return {"overall": overall, "segments": segs, "incremental_profit": incremental,
            "predicted_responders": float(merged["propensity"].to_numpy()[is_t].sum()),
            "actual_responders": float(responders_t),
            "n_without_outcome": int(len(audience) - len(merged))}


# Targets by customer value (issue 24): the most valuable, or a win-back audience of the slipping.
VALUE_TARGETS = {"clv": "highest CLV", "winback": "win-back: high past value, probability alive below a cut"}


def value_audience(customers: pd.DataFrame, target: str, *, top_n: int | None = None, p_alive_below: float = 0.5,
                   past_value_share: float = 0.2, holdout: float = 0.1, seed: int = 42) -> pd.DataFrame:
    """An audience chosen by customer value, with a seeded holdout stratified by segment.

    Parameters
    ----------
    customers : pandas.DataFrame
        ``ID``, ``segment``, ``p_alive``, ``clv`` and ``total_value`` (past value), one row per customer.
    target : {"clv", "winback"}
        ``clv``: the ``top_n`` customers of highest CLV. ``winback``: customers whose past value is in
        the top ``past_value_share`` and whose probability alive is below ``p_alive_below``, most
        valuable first (at most ``top_n`` when given).
    top_n : int, optional
        Required for ``clv``.
    p_alive_below, past_value_share : float
    holdout : float
        Share kept uncontacted, 0 to 0.5.
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``ID``, ``segment``, ``group`` (target or holdout), ``p_alive``, ``clv``, ``total_value``.

    Raises
    ------
    CampaignError
        Naming the field that is out of range, or an empty audience.
    """
    if target not in VALUE_TARGETS:
        raise CampaignError(f"target: must be one of {', '.join(VALUE_TARGETS)}, got {target!r}")
    if top_n is not None and (not isinstance(top_n, (int, np.integer)) or top_n < 1):
        raise CampaignError(f"top N: must be a whole number of at least 1, got {top_n!r}")
    if not 0 < p_alive_below <= 1:
        raise CampaignError(f"probability alive below: must be in (0, 1], got {p_alive_below!r}")
    if not 0 <= holdout <= MAX_HOLDOUT:
        raise CampaignError(f"holdout: must be from 0 to {MAX_HOLDOUT}, got {holdout!r}")
    if target == "clv":
        if top_n is None:
            raise CampaignError("top N: enter how many of the most valuable customers to contact")
        chosen = customers.sort_values(["clv", "ID"], ascending=[False, True], kind="stable").head(top_n)
    else:
        cut = float(np.quantile(customers["total_value"].to_numpy(), 1 - past_value_share))
        mask = (customers["total_value"] >= cut) & (customers["p_alive"] < p_alive_below)
        chosen = customers[mask].sort_values(["total_value", "ID"], ascending=[False, True], kind="stable")
        if top_n is not None:
            chosen = chosen.head(top_n)
    if chosen.empty:
        raise CampaignError("no customer matches: loosen the probability-alive cut or the number")
    out = chosen[["ID", "segment", "p_alive", "clv", "total_value"]].reset_index(drop=True)
    held = assign_holdout(out["segment"].to_numpy(), holdout, seed)
    out.insert(2, "group", np.where(held, "holdout", "target"))
    return out
