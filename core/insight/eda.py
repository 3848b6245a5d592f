"""Exploratory views of a customer file: what cleaning did row by row, cut-offs, missing values, outliers.

Every number comes from the loader and :func:`core.reading.cleaning.clean` themselves:
the rows a rule dropped are found by running ``clean`` again on small groups of
the dropped rows (groups no larger than the report's example list, and too
small for the file-wide income fence), so no rule is written twice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.reading import cleaning
from core.reading import schema
from core.reading.cleaning import RULES, CleaningReport, clean
from core.reading.features import DEFAULT_REFERENCE_YEAR, add_features
from core.reading.loading import LoadInfo, load_customers, read_source
from core.versions.pipeline import fingerprint

__all__ = ["Exploration", "explore", "rule_rows", "cleaning_cutoffs", "missing_values", "outlier_summary",
           "correlations", "enrolments", "numeric_columns", "histogram", "summary", "NOT_ITEMISED"]

# The rule name given to dropped rows beyond ``max_rows`` (large files): counted, not listed.
NOT_ITEMISED = "not_itemised"
_GROUP = cleaning.PARAMETERS.examples  # a group this small has every affected row among its report's examples
_NOT_NUMERIC = {"ID", "Dt_Customer", *schema.CATEGORY_COLUMNS}


@dataclass
class Exploration:
    """A customer file before and after cleaning, with what every rule did to which row.

    Parameters
    ----------
    raw : pandas.DataFrame
        The file as loaded (canonical columns; index = position in the file).
    frame : pandas.DataFrame
        Cleaned customers with engineered features (as :func:`core.versions.pipeline.prepare`).
    report : CleaningReport
    info : LoadInfo
    rows : pandas.DataFrame
        One row per customer a rule dropped or changed: ``rule``, ``action``, ``ID``, ``line``.
    cutoffs : dict
        Column -> list of ``{"value", "label", "rule"}``: the cleaning rules' limits.
    fingerprint : str
    source : str
    """

    raw: pd.DataFrame
    frame: pd.DataFrame
    report: CleaningReport
    info: LoadInfo
    rows: pd.DataFrame
    cutoffs: dict
    fingerprint: str
    source: str


def explore(source, *, name: str | None = None, reference_year: int = DEFAULT_REFERENCE_YEAR,
            max_rows: int = 5000) -> Exploration:
    """Load and clean a customer file, keeping the raw rows and what each rule did.

    Parameters
    ----------
    source : path-like or bytes
    name : str, optional
        Display name (for bytes).
    reference_year : int, default 2026
    max_rows : int, default 5000
        Dropped rows itemised by rule; beyond that they are listed as ``not_itemised``.

    Returns
    -------
    Exploration

    Raises
    ------
    core.reading.loading.DataFileError
        The file cannot be used.
    """
    data, name = read_source(source, name)
    loaded = load_customers(data, name=name)
    cleaned, report = clean(loaded.frame, unreadable=loaded.info.unreadable, reference_year=reference_year)
    rows = rule_rows(loaded.frame, cleaned, unreadable=loaded.info.unreadable, reference_year=reference_year,
                     max_rows=max_rows)
    frame = add_features(cleaned, reference_year=reference_year) if len(cleaned) else cleaned
    cutoffs = cleaning_cutoffs(loaded.frame, cleaned, rows, reference_year=reference_year)
    return Exploration(loaded.frame, frame, report, loaded.info, rows, cutoffs, fingerprint(data),
                       loaded.info.source)


def _line(position) -> int:
    return int(position) + 2  # header is line 1 (as core.reading.loading.file_line)


def rule_rows(raw: pd.DataFrame, cleaned: pd.DataFrame, *, unreadable: dict | None = None,
              reference_year: int = DEFAULT_REFERENCE_YEAR, max_rows: int = 5000) -> pd.DataFrame:
    """Which rule dropped or changed each row.

    Parameters
    ----------
    raw : pandas.DataFrame
        The loaded file (index = position in the file, as the loader returns it).
    cleaned : pandas.DataFrame
        ``clean(raw, ...)[0]`` (index preserved).
    unreadable : dict, optional
        The loader's ``LoadInfo.unreadable``.
    reference_year : int, default 2026
    max_rows : int, default 5000
        Dropped rows attributed to a rule; the rest get rule ``not_itemised``.

    Returns
    -------
    pandas.DataFrame
        Columns ``rule``, ``action`` (``dropped``/``changed``), ``ID`` (float,
        NaN when unreadable) and ``line`` (file line), in file order within
        the rules' order. No other customer field.
    """
    unreadable = unreadable or {}
    positions = pd.Index(raw.index)
    dropped = positions.difference(cleaned.index)
    rule_of: dict[int, str] = {}
    ids = raw["ID"] if "ID" in raw else pd.Series(np.nan, index=raw.index)
    # An ID seen on an earlier row: the only rule (with the income fence) that depends on other rows.
    bad_cells = {int(p) for ps in unreadable.values() for p in ps}
    repeat = ids.duplicated(keep="first") & ids.notna()
    for pos in dropped:
        if repeat.loc[pos] and int(pos) not in bad_cells:
            rule_of[int(pos)] = "duplicate_id"
    rest = [int(p) for p in dropped if int(p) not in rule_of]
    itemised, skipped = rest[:max_rows], rest[max_rows:]
    for start in range(0, len(itemised), _GROUP):
        group = itemised[start:start + _GROUP]
        local = {p: i for i, p in enumerate(group)}
        cells = {c: [local[p] for p in ps if p in local] for c, ps in unreadable.items()}
        _, report = clean(raw.loc[group], unreadable={c: v for c, v in cells.items() if v},
                          reference_year=reference_year)
        by_key = {}
        for p in group:
            value = ids.loc[p]
            by_key[int(value) if pd.notna(value) else f"line {_line(p)}"] = p
        for result in report.rules:
            if result.action == "dropped":
                for example in result.examples:
                    if example in by_key:
                        rule_of.setdefault(by_key[example], result.name)
        for p in group:  # only the file-wide income fence cannot fire on a handful of rows
            rule_of.setdefault(p, "extreme_income")
    for p in skipped:
        rule_of[p] = NOT_ITEMISED
    changed_rules = [name for name, (action, _) in RULES.items() if action == "changed"]
    records = [{"rule": rule, "action": "dropped", "position": p} for p, rule in rule_of.items()]
    if changed_rules and len(cleaned):
        common = [c for c in cleaned.columns if c in raw.columns]
        before, after = raw.loc[cleaned.index, common], cleaned[common]
        differs = ~((before == after) | (before.isna() & after.isna())).all(axis=1)
        records += [{"rule": changed_rules[0], "action": "changed", "position": int(p)}
                    for p in cleaned.index[differs.to_numpy()]]
    order = {name: i for i, name in enumerate([*RULES, NOT_ITEMISED])}
    out = pd.DataFrame(records, columns=["rule", "action", "position"])
    out["order"] = out["rule"].map(order)
    out = out.sort_values(["order", "position"], kind="stable")
    return pd.DataFrame({
        "rule": out["rule"].to_numpy(), "action": out["action"].to_numpy(),
        "ID": ids.reindex(out["position"]).to_numpy(dtype=float),
        "line": [_line(p) for p in out["position"]],
    })


def cleaning_cutoffs(raw: pd.DataFrame, cleaned: pd.DataFrame, rows: pd.DataFrame, *,
                     reference_year: int = DEFAULT_REFERENCE_YEAR) -> dict:
    """The limits the cleaning rules applied, per column, to draw on distributions.

    Parameters
    ----------
    raw, cleaned : pandas.DataFrame
        As for :func:`rule_rows`.
    rows : pandas.DataFrame
        Output of :func:`rule_rows`.
    reference_year : int, default 2026

    Returns
    -------
    dict
        ``Income``: the far-out fence (Q3 + 3 x IQR of the incomes still in play
        when the rule ran; absent when fewer than 20); ``Year_Birth`` and ``Age``:
        the plausible-age bounds.
    """
    low_age, high_age = cleaning.PARAMETERS.min_age, cleaning.PARAMETERS.max_age
    out = {
        "Year_Birth": [{"value": reference_year - high_age, "label": f"born before {reference_year - high_age}",
                        "rule": "implausible_birth_year"},
                       {"value": reference_year - low_age, "label": f"born after {reference_year - low_age}",
                        "rule": "implausible_birth_year"}],
        "Age": [{"value": low_age, "label": f"under {low_age}", "rule": "implausible_birth_year"},
                {"value": high_age, "label": f"over {high_age}", "rule": "implausible_birth_year"}],
    }
    fenced = rows.loc[rows["rule"] == "extreme_income", "line"].to_numpy() - 2
    in_play = raw.loc[cleaned.index.union(pd.Index(fenced)), "Income"].to_numpy(dtype=float)
    in_play = in_play[np.isfinite(in_play)]
    if in_play.size >= 20:
        q1, q3 = np.percentile(in_play, [25, 75])
        fence = float(q3 + cleaning.PARAMETERS.extreme_iqr * (q3 - q1))
        out["Income"] = [{"value": fence, "label": f"far-out fence {fence:,.0f}", "rule": "extreme_income"}]
    return out


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns worth a distribution: the file's numeric fields, then engineered features.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    list of str
        Excludes the ID, dates, categories and constant columns.
    """
    wanted = [c for c in schema.CANONICAL_COLUMNS if c not in _NOT_NUMERIC] + [
        c for c in schema.MODEL_FEATURES if c not in schema.CANONICAL_COLUMNS]
    out = []
    for column in dict.fromkeys(wanted):
        if column in frame and pd.api.types.is_numeric_dtype(frame[column]):
            values = frame[column].dropna()
            if values.nunique() > 1:
                out.append(column)
    return out


def missing_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Empty cells per column.

    Parameters
    ----------
    frame : pandas.DataFrame
        Usually the raw file (before cleaning drops incomplete rows).

    Returns
    -------
    pandas.DataFrame
        ``column``, ``missing`` (count), ``share`` (0-1), every column in file order.
    """
    counts = frame.isna().sum()
    return pd.DataFrame({"column": counts.index, "missing": counts.to_numpy(dtype=int),
                         "share": (counts / max(len(frame), 1)).to_numpy(dtype=float)})


def outlier_summary(frame: pd.DataFrame, columns=None, whisker: float = 1.5) -> pd.DataFrame:
    """Tukey's fences per column and how many customers lie beyond them.

    Parameters
    ----------
    frame : pandas.DataFrame
    columns : list of str, optional
        Default :func:`numeric_columns`.
    whisker : float, default 1.5
        1.5 gives Tukey's "outside" fences, 3 the "far out" ones.

    Returns
    -------
    pandas.DataFrame
        ``column``, ``median``, ``q1``, ``q3``, ``low``, ``high`` (fences),
        ``below``, ``above`` (counts) and ``share`` (0-1 outside either fence).
    """
    rows = []
    for column in columns or numeric_columns(frame):
        values = frame[column].dropna().to_numpy(dtype=float)
        if not values.size:
            continue
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        low, high = q1 - whisker * (q3 - q1), q3 + whisker * (q3 - q1)
        below, above = int((values < low).sum()), int((values > high).sum())
        rows.append({"column": column, "median": median, "q1": q1, "q3": q3, "low": low, "high": high,
                     "below": below, "above": above, "share": (below + above) / values.size})
    return pd.DataFrame(rows, columns=["column", "median", "q1", "q3", "low", "high", "below", "above", "share"])


def correlations(frame: pd.DataFrame, columns=None) -> pd.DataFrame:
    """Pearson correlations between numeric columns (constant columns left out).

    Parameters
    ----------
    frame : pandas.DataFrame
    columns : list of str, optional
        Default :func:`numeric_columns`.

    Returns
    -------
    pandas.DataFrame
        Square, indexed and labelled by column.
    """
    columns = [c for c in (columns or numeric_columns(frame)) if frame[c].nunique() > 1]
    return frame[columns].astype(float).corr()


def enrolments(frame: pd.DataFrame, window: str = "month") -> pd.DataFrame:
    """Customers enrolled per month or quarter (``Dt_Customer``).

    Parameters
    ----------
    frame : pandas.DataFrame
    window : {"month", "quarter"}, default "month"

    Returns
    -------
    pandas.DataFrame
        ``period`` (first day, Timestamp) and ``customers``, every period from
        the first enrolment to the last (zeros included).
    """
    dates = pd.to_datetime(frame["Dt_Customer"]).dropna()
    if dates.empty:
        return pd.DataFrame({"period": pd.Series(dtype="datetime64[ns]"), "customers": pd.Series(dtype=int)})
    freq = "Q" if window == "quarter" else "M"
    periods = dates.dt.to_period(freq)
    counts = periods.value_counts()
    full = pd.period_range(periods.min(), periods.max(), freq=freq)
    counts = counts.reindex(full, fill_value=0)
    return pd.DataFrame({"period": full.to_timestamp(), "customers": counts.to_numpy(dtype=int)})


def histogram(values, bins: int = 40) -> dict:
    """Counts per bin of one column (whole-number columns with a short range get one bin per value).

    Parameters
    ----------
    values : array-like
        NaN is ignored.
    bins : int, default 40

    Returns
    -------
    dict
        ``counts`` (list of int), ``edges`` (list of float, one more than
        counts), ``n`` (values counted).
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if not x.size:
        return {"counts": [], "edges": [], "n": 0}
    low, high = float(x.min()), float(x.max())
    if np.all(x == np.round(x)) and high - low <= 60:
        edges = np.arange(low - 0.5, high + 1.5)
    else:
        edges = np.histogram_bin_edges(x, bins=bins if high > low else 1)
    counts, edges = np.histogram(x, bins=edges)
    return {"counts": counts.astype(int).tolist(), "edges": edges.astype(float).tolist(), "n": int(x.size)}


def summary(exploration: Exploration, *, columns=None, bins: int = 40) -> dict:
    """Everything an EDA page shows, as aggregates only (no customer rows but the rule rows' IDs).

    Parameters
    ----------
    exploration : Exploration
    columns : list of str, optional
        Columns of the correlation matrix (default: the model features present).
    bins : int, default 40

    Returns
    -------
    dict
        ``source``, ``rows_read``, ``rows_used``, ``rules`` (the report's
        list), ``histograms`` (column -> :func:`histogram` of the file's values
        before cleaning; engineered features after cleaning, flagged by
        ``cleaned``), ``cutoffs``, ``outliers`` (records of
        :func:`outlier_summary` on the cleaned customers), ``missing`` (records
        of :func:`missing_values` on the file), ``correlations`` (``columns``
        and ``matrix``), ``enrolments`` (``period`` ISO dates, ``customers``)
        and ``rule_rows`` (records of :func:`rule_rows`).
    """
    raw, frame = exploration.raw, exploration.frame
    raw_columns = numeric_columns(raw)
    engineered = [c for c in numeric_columns(frame) if c not in raw_columns]
    histograms = {c: {**histogram(raw[c], bins), "cleaned": False} for c in raw_columns}
    histograms.update({c: {**histogram(frame[c], bins), "cleaned": True} for c in engineered})
    columns = [c for c in (columns or schema.MODEL_FEATURES) if c in frame]
    corr = correlations(frame, columns) if len(frame) > 1 else pd.DataFrame()
    enrol = enrolments(frame) if "Dt_Customer" in frame else pd.DataFrame({"period": [], "customers": []})
    rows = exploration.rows.astype({"ID": object})
    rows["ID"] = [None if pd.isna(v) else int(v) for v in exploration.rows["ID"]]
    return {
        "source": exploration.source,
        "fingerprint": exploration.fingerprint,
        "rows_read": exploration.report.rows_read,
        "rows_used": exploration.report.rows_used,
        "rules": exploration.report.to_dict()["rules"],
        "histograms": histograms,
        "cutoffs": exploration.cutoffs,
        "outliers": outlier_summary(frame, raw_columns + engineered).to_dict("records") if len(frame) else [],
        "missing": missing_values(raw).to_dict("records"),
        "correlations": {"columns": list(corr.columns), "matrix": corr.round(4).to_numpy().tolist()},
        "enrolments": {"period": [p.date().isoformat() for p in enrol["period"]],
                       "customers": [int(v) for v in enrol["customers"]]},
        "rule_rows": rows.to_dict("records"),
    }
