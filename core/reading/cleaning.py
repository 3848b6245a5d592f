"""Rules that drop or fix customer rows, each one named and counted.

Every rule reports how many rows it dropped or changed, so nothing disappears
silently. Rules run in a fixed order; a row dropped by an earlier rule is not
counted again by a later one.

Decisions (also in the README):

* Repeated ``ID``: the later rows are dropped; an ID names one customer.
* Same record under different IDs (182 such rows in the real file): kept and
  only *flagged*: two customers can share every attribute, and the file gives
  no way to tell a re-keyed copy from a twin.
* ``Alone`` is folded into ``Single``; ``Absurd`` and ``YOLO`` become
  ``Unknown``. Marital status is not a clustering feature, so the customers stay.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from core.reading import schema

__all__ = ["RuleResult", "CleaningReport", "clean", "RULES", "PARAMETERS", "Parameters", "repeats", "unreadable_mask", "duplicate_ids", "income_fence",
           "content_hashes", "early_rules", "extreme_incomes", "odd_marital", "fix_marital", "rule_result",
           "merge_results"]

# name -> (action, description). The order is the order the rules run in.
RULES: dict[str, tuple[str, str]] = {
    "unreadable_values": ("dropped", "a required field held a value that could not be read"),
    "duplicate_id": ("dropped", "the ID appeared on an earlier row (the first row is kept)"),
    "missing_required": ("dropped", "a required field other than Income was empty"),
    "missing_income": ("dropped", "Income was empty (the original project removed these rows)"),
    "implausible_birth_year": ("dropped", "age outside 16-100 at the reference year"),
    "out_of_range": ("dropped", "a count, spend or flag outside its valid range (e.g. negative)"),
    "extreme_income": ("dropped", "Income above Q3 + 3 x IQR of the file (Tukey's far-out fence)"),
    "odd_marital_status": ("changed", "Alone -> Single; Absurd, YOLO -> Unknown"),
    "duplicate_record": ("flagged", "same values as an earlier row under another ID (kept)"),
}

@dataclass(frozen=True)
class Parameters:
    """The cleaning rules' parameters: one table, read by the pandas rules here and the Spark rules alike.

    Parameters
    ----------
    marital_fix : mapping
        Marital status values rewritten (joke answers of the original survey).
    extreme_iqr : float
        Income above Q3 + this x IQR is dropped (Tukey's far-out fence).
    min_age, max_age : int
        Plausible ages; a birth year outside them is dropped.
    examples : int
        Rows quoted per rule in the cleaning report.
    """

    marital_fix: Mapping = field(default_factory=lambda: MappingProxyType(
        {"Alone": "Single", "Absurd": "Unknown", "YOLO": "Unknown"}))
    extreme_iqr: float = 3.0
    min_age: int = 16
    max_age: int = 100
    examples: int = 5


PARAMETERS = Parameters()


@dataclass
class RuleResult:
    """Outcome of one cleaning rule.

    Parameters
    ----------
    name : str
        Rule name (a key of ``RULES``).
    action : str
        ``"dropped"``, ``"changed"`` or ``"flagged"``.
    count : int
        Rows affected.
    description : str
        What the rule does, in plain words.
    examples : list
        Up to five IDs (or file line numbers when the ID is unreadable).
    """

    name: str
    action: str
    count: int
    description: str
    examples: list = field(default_factory=list)


@dataclass
class CleaningReport:
    """Rows read, rows used and what every rule did.

    Parameters
    ----------
    rows_read : int
        Customer rows in the file.
    rows_used : int
        Rows left after every dropping rule.
    rules : list of RuleResult
        One entry per rule, in the order they ran (zero counts included).
    """

    rows_read: int
    rows_used: int
    rules: list[RuleResult]

    @property
    def dropped(self) -> dict[str, int]:
        """Rows dropped per rule."""
        return {r.name: r.count for r in self.rules if r.action == "dropped"}

    @property
    def changed(self) -> dict[str, int]:
        """Rows changed (kept) per rule."""
        return {r.name: r.count for r in self.rules if r.action == "changed"}

    @property
    def flagged(self) -> dict[str, int]:
        """Rows flagged but kept, per rule."""
        return {r.name: r.count for r in self.rules if r.action == "flagged"}

    def to_dict(self) -> dict:
        """Return a JSON-serialisable form.

        Returns
        -------
        dict
            ``rows_read``, ``rows_used``, ``dropped``, ``changed``, ``flagged``
            and ``rules`` (the full list).
        """
        return {
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "dropped": self.dropped,
            "changed": self.changed,
            "flagged": self.flagged,
            "rules": [vars(r).copy() for r in self.rules],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "CleaningReport":
        """Rebuild a report from :meth:`to_dict` output.

        Parameters
        ----------
        data : dict
            Output of :meth:`to_dict`.

        Returns
        -------
        CleaningReport
        """
        return cls(data["rows_read"], data["rows_used"], [RuleResult(**r) for r in data["rules"]])


def _examples(frame: pd.DataFrame, mask: np.ndarray) -> list:
    ids = frame.loc[mask, "ID"].head(PARAMETERS.examples) if "ID" in frame else pd.Series(dtype=float)
    out = []
    for pos, value in zip(np.flatnonzero(mask)[:PARAMETERS.examples], ids):
        # IDs are the users' handle on a row; fall back to the file line when the ID is unreadable.
        out.append(int(value) if pd.notna(value) else f"line {int(frame.index[pos]) + 2}")
    return out


def unreadable_mask(frame: pd.DataFrame, unreadable: dict[str, list[int]] | None) -> np.ndarray:
    """Rows holding a required (or present) cell the loader could not read.

    Parameters
    ----------
    frame : pandas.DataFrame
    unreadable : dict, optional
        Column -> frame positions (0-based, within ``frame``).

    Returns
    -------
    ndarray of bool
    """
    n = len(frame)
    bad = np.zeros(n, dtype=bool)
    for column, positions in (unreadable or {}).items():
        if column in schema.REQUIRED_COLUMNS or column in frame:
            bad[[p for p in positions if 0 <= p < n]] = True
    return bad


def duplicate_ids(ids: np.ndarray) -> np.ndarray:
    """Rows whose ID appeared on an earlier row (the first is kept); missing IDs are never duplicates.

    Parameters
    ----------
    ids : ndarray of float
        IDs in file order, NaN where unreadable.

    Returns
    -------
    ndarray of bool
    """
    return repeats(np.asarray(ids, dtype=np.float64))


def repeats(values: np.ndarray) -> np.ndarray:
    """True where a value equals one on an earlier row (NaN never repeats): ``duplicated(keep="first")``.

    A stable sort instead of a hash table, so ten million values cost two arrays, not a dict.
    """
    out = np.zeros(len(values), dtype=bool)
    missing = np.isnan(values) if values.dtype.kind == "f" else None
    if missing is not None and missing.any():
        valid = np.flatnonzero(~missing)
        order = valid[np.argsort(values[valid], kind="stable")]
    else:  # no missing value: no index array beside the sort (16 bytes a row fewer at 10M rows)
        order = np.argsort(values, kind="stable")
    if len(order) < 2:
        return out
    ordered = values[order]
    out[order[1:][ordered[1:] == ordered[:-1]]] = True
    return out


def income_fence(kept_income: np.ndarray) -> float | None:
    """Tukey's far-out fence (Q3 + 3 x IQR) of the incomes of rows kept so far; None below 20 rows.

    Parameters
    ----------
    kept_income : ndarray
        Incomes of every row the earlier rules kept (the whole file, not one chunk).

    Returns
    -------
    float or None
    """
    if kept_income.size < 20:  # a fence from a handful of rows would be noise
        return None
    q1, q3 = np.percentile(kept_income, [25, 75])
    return float(q3 + PARAMETERS.extreme_iqr * (q3 - q1))


def content_hashes(frame: pd.DataFrame) -> np.ndarray:
    """64-bit hash of every row's values except the ID: equal rows give equal hashes.

    The chunked reader finds repeated records across the whole file with these (a
    collision between two different rows is about n^2 / 2^65, 3e-6 at 10M rows).

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    ndarray of uint64
    """
    content = [c for c in frame.columns if c != "ID"]
    return pd.util.hash_pandas_object(frame[content], index=False).to_numpy(dtype=np.uint64)


def early_rules(df: pd.DataFrame, bad: np.ndarray, dup_id: np.ndarray, *,
                reference_year: int = 2026) -> tuple[list[RuleResult], np.ndarray]:
    """The rules that need only the row itself (and the whole-file duplicate-ID mask).

    Parameters
    ----------
    df : pandas.DataFrame
        Loaded rows (index = position in the file).
    bad : ndarray of bool
        :func:`unreadable_mask`.
    dup_id : ndarray of bool
        :func:`duplicate_ids` of the whole file, for these rows.
    reference_year : int, default 2026

    Returns
    -------
    results : list of RuleResult
        unreadable_values, duplicate_id, missing_required, missing_income,
        implausible_birth_year, out_of_range.
    alive : ndarray of bool
        Rows none of them dropped.
    """
    n = len(df)
    alive = np.ones(n, dtype=bool)
    results: list[RuleResult] = []

    def record(name: str, mask: np.ndarray) -> None:
        mask = mask & alive
        results.append(RuleResult(name, RULES[name][0], int(mask.sum()), RULES[name][1], _examples(df, mask)))
        alive[mask] = False

    record("unreadable_values", bad)
    record("duplicate_id", dup_id)
    required = [c for c in schema.REQUIRED_COLUMNS if c != "Income" and c in df]
    record("missing_required", df[required].isna().any(axis=1).to_numpy())
    record("missing_income", df["Income"].isna().to_numpy())

    age = reference_year - df["Year_Birth"].to_numpy(dtype=float)
    record("implausible_birth_year", (age < PARAMETERS.min_age) | (age > PARAMETERS.max_age))

    out = np.zeros(n, dtype=bool)
    for column in schema.INTEGER_COLUMNS:
        if column in ("ID", "Year_Birth") or column not in df:
            continue
        low, high = schema.BOUNDS.get(column, (None, None))
        values = df[column].to_numpy(dtype=float)
        if low is not None:
            out |= values < low
        if high is not None:
            out |= values > high
    out |= df["Income"].to_numpy(dtype=float) < 0
    record("out_of_range", out)
    return results, alive


def extreme_incomes(df: pd.DataFrame, fence: float | None) -> np.ndarray:
    """Rows whose income is above the fence (none when there is no fence)."""
    if fence is None:
        return np.zeros(len(df), dtype=bool)
    return df["Income"].to_numpy(dtype=float) > fence


def odd_marital(df: pd.DataFrame) -> np.ndarray:
    """Rows whose marital status the ``odd_marital_status`` rule changes."""
    return df["Marital_Status"].isin(list(PARAMETERS.marital_fix)).to_numpy()


def fix_marital(df: pd.DataFrame, mask: np.ndarray) -> None:
    """Apply the ``odd_marital_status`` change to the rows in ``mask``, in place."""
    marital = df["Marital_Status"]
    df.loc[mask, "Marital_Status"] = marital[mask].map(PARAMETERS.marital_fix)


def rule_result(name: str, count: int, examples: list) -> RuleResult:
    """A :class:`RuleResult` for rule ``name`` (action and description from :data:`RULES`)."""
    action, description = RULES[name]
    return RuleResult(name, action, int(count), description, list(examples)[:PARAMETERS.examples])


def merge_results(parts: list[list[RuleResult]]) -> list[RuleResult]:
    """Add up the same rules' results over chunks (counts summed, the first five examples kept).

    Parameters
    ----------
    parts : list of list of RuleResult
        One list per chunk, each in the same rule order.

    Returns
    -------
    list of RuleResult
    """
    merged: dict[str, RuleResult] = {}
    for part in parts:
        for r in part:
            m = merged.setdefault(r.name, RuleResult(r.name, r.action, 0, r.description, []))
            m.count += r.count
            m.examples = (m.examples + list(r.examples))[:PARAMETERS.examples]
    return list(merged.values())


def clean(frame: pd.DataFrame, *, unreadable: dict[str, list[int]] | None = None,
          reference_year: int = 2026) -> tuple[pd.DataFrame, CleaningReport]:
    """Apply every cleaning rule and report what each did.

    Three rules need the whole file: ``duplicate_id`` (an earlier row anywhere),
    ``extreme_income`` (a quantile fence) and ``duplicate_record``. The chunked reader
    (:mod:`core.reading.sources`) computes those in a first pass over the file and applies
    the same functions chunk by chunk.

    Parameters
    ----------
    frame : pandas.DataFrame
        A frame as returned by :func:`core.reading.loading.load_customers` (canonical
        columns, index = position in the file).
    unreadable : dict, optional
        Column -> frame positions of cells that could not be read (from the
        loader's ``LoadInfo.unreadable``).
    reference_year : int, default 2026
        Year against which ages are computed.

    Returns
    -------
    cleaned : pandas.DataFrame
        Kept rows, original index preserved (so a row can be traced to its line).
    report : CleaningReport
    """
    df = frame.copy()
    n = len(df)
    bad = unreadable_mask(df, unreadable)
    ids = df["ID"].to_numpy(dtype=np.float64)
    results, alive = early_rules(df, bad, duplicate_ids(ids), reference_year=reference_year)

    income = df["Income"].to_numpy(dtype=float)
    extreme = extreme_incomes(df, income_fence(income[alive])) & alive
    results.append(rule_result("extreme_income", extreme.sum(), _examples(df, extreme)))
    alive &= ~extreme

    odd = odd_marital(df) & alive
    results.append(rule_result("odd_marital_status", odd.sum(), _examples(df, odd)))
    fix_marital(df, odd)

    content = [c for c in df.columns if c != "ID"]
    dup = np.zeros(n, dtype=bool)
    dup[alive] = df.loc[alive, content].duplicated(keep="first").to_numpy()
    results.append(rule_result("duplicate_record", dup.sum(), _examples(df, dup)))

    cleaned = df.loc[alive]
    return cleaned, CleaningReport(rows_read=n, rows_used=int(alive.sum()), rules=results)
