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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import schema

__all__ = ["RuleResult", "CleaningReport", "clean", "RULES"]

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

_MARITAL_FIX = {"Alone": "Single", "Absurd": "Unknown", "YOLO": "Unknown"}
_EXTREME_IQR = 3.0
_MIN_AGE, _MAX_AGE = 16, 100
_EXAMPLES = 5


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
    ids = frame.loc[mask, "ID"].head(_EXAMPLES) if "ID" in frame else pd.Series(dtype=float)
    out = []
    for pos, value in zip(np.flatnonzero(mask)[:_EXAMPLES], ids):
        # IDs are the users' handle on a row; fall back to the file line when the ID is unreadable.
        out.append(int(value) if pd.notna(value) else f"line {int(frame.index[pos]) + 2}")
    return out


def clean(frame: pd.DataFrame, *, unreadable: dict[str, list[int]] | None = None,
          reference_year: int = 2026) -> tuple[pd.DataFrame, CleaningReport]:
    """Apply every cleaning rule and report what each did.

    Parameters
    ----------
    frame : pandas.DataFrame
        A frame as returned by :func:`core.loading.load_customers` (canonical
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
    alive = np.ones(n, dtype=bool)
    results: list[RuleResult] = []

    def record(name: str, mask: np.ndarray) -> None:
        action, description = RULES[name]
        mask = mask & alive if action == "dropped" else mask
        results.append(RuleResult(name, action, int(mask.sum()), description, _examples(df, mask)))
        if action == "dropped":
            alive[mask] = False

    bad = np.zeros(n, dtype=bool)
    for column, positions in (unreadable or {}).items():
        if column in schema.REQUIRED_COLUMNS or column in df:
            bad[[p for p in positions if 0 <= p < n]] = True
    record("unreadable_values", bad)

    record("duplicate_id", df["ID"].duplicated(keep="first").to_numpy() & df["ID"].notna().to_numpy())

    required = [c for c in schema.REQUIRED_COLUMNS if c != "Income" and c in df]
    record("missing_required", df[required].isna().any(axis=1).to_numpy())
    record("missing_income", df["Income"].isna().to_numpy())

    age = reference_year - df["Year_Birth"].to_numpy(dtype=float)
    record("implausible_birth_year", (age < _MIN_AGE) | (age > _MAX_AGE))

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

    income = df["Income"].to_numpy(dtype=float)
    kept_income = income[alive]
    extreme = np.zeros(n, dtype=bool)
    if kept_income.size >= 20:  # a fence from a handful of rows would be noise
        q1, q3 = np.percentile(kept_income, [25, 75])
        extreme = income > q3 + _EXTREME_IQR * (q3 - q1)
    record("extreme_income", extreme)

    marital = df["Marital_Status"]
    odd = marital.isin(list(_MARITAL_FIX)).to_numpy() & alive
    record("odd_marital_status", odd)
    df.loc[odd, "Marital_Status"] = marital[odd].map(_MARITAL_FIX)

    content = [c for c in df.columns if c != "ID"]
    dup = np.zeros(n, dtype=bool)
    dup[alive] = df.loc[alive, content].duplicated(keep="first").to_numpy()
    record("duplicate_record", dup)

    cleaned = df.loc[alive]
    return cleaned, CleaningReport(rows_read=n, rows_used=int(alive.sum()), rules=results)
