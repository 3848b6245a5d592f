"""Explore-data figures: per-column distributions with cleaning cut-offs, missing values, correlations, enrolment.

Every function takes the aggregates of :func:`core.insight.eda.summary` (bin counts, a correlation matrix,
monthly counts), never customer rows, so a large file costs the browser no more than the sample.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.reading.cleaning import RULES

from .common import base_layout, empty_figure, feature_label, plain, vline

__all__ = ["column_label", "distribution_figure", "missing_figure", "correlation_figure", "enrolment_figure",
           "rule_rows_table", "rule_label", "outlier_text", "column_options"]

# Columns of the file that are not clustering features (FEATURE_LABELS names those).
_FILE_LABELS = {
    "ID": "Customer ID",
    "Year_Birth": "Year of birth",
    "Education": "Education",
    "Marital_Status": "Marital status",
    "Dt_Customer": "Enrolment date",
    "AcceptedCmp1": "Accepted campaign 1",
    "AcceptedCmp2": "Accepted campaign 2",
    "AcceptedCmp3": "Accepted campaign 3",
    "AcceptedCmp4": "Accepted campaign 4",
    "AcceptedCmp5": "Accepted campaign 5",
    "Response": "Accepted the last campaign",
    "Complain": "Complained in the last 2 years",
    "Z_CostContact": "Cost per contact",
    "Z_Revenue": "Revenue per response",
}
_RULE_LABELS = {
    "unreadable_values": "Unreadable value",
    "duplicate_id": "Repeated ID",
    "missing_required": "Required field empty",
    "missing_income": "Income empty",
    "implausible_birth_year": "Implausible birth year",
    "out_of_range": "Value out of range",
    "extreme_income": "Extreme income",
    "odd_marital_status": "Marital status tidied",
    "duplicate_record": "Same record, other ID",
    "not_itemised": "Dropped (not listed: large file)",
}
_BAR = "#5B7083"
_CUT = "#D55E00"


def column_label(column) -> str:
    """Readable name of any column of the file or an engineered feature."""
    return _FILE_LABELS.get(column) or feature_label(column)


def rule_label(rule: str) -> str:
    """A cleaning rule in words."""
    return _RULE_LABELS.get(rule, str(rule).replace("_", " ").capitalize())


def column_options(histograms: dict) -> list[dict]:
    """Dropdown options for the distribution chart: label in words, value the column."""
    return [{"label": column_label(c) + (" (after cleaning)" if h.get("cleaned") else ""), "value": c}
            for c, h in histograms.items()]


def distribution_figure(column: str, hist: dict | None, cutoffs: list | None = None, *, height: int = 340) -> go.Figure:
    """Bars of one column's bin counts, with the cleaning rules' cut-offs as labelled dashed lines."""
    if not hist or not hist.get("counts"):
        return empty_figure(f"{column_label(column)}: no values to show.", height=height)
    counts = np.asarray(hist["counts"])
    edges = np.asarray(hist["edges"], dtype=float)
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    label = column_label(column)
    values = [float(c["value"]) for c in cutoffs or []]
    # Bars beyond a cut-off hold the customers the rule drops: drawn in the cut-off colour and counted,
    # so a single far-out value stays visible next to bars of hundreds.
    lows = [v for v in values if v <= np.median(centres)] if len(values) > 1 else []
    highs = [v for v in values if v not in lows]
    cut = np.zeros(len(centres), dtype=bool)
    if highs:
        cut |= edges[:-1] >= min(highs)
    if lows:
        cut |= edges[1:] <= max(lows)
    cut &= counts > 0
    fig = go.Figure(go.Bar(
        x=centres, y=counts, width=widths, marker={"color": np.where(cut, _CUT, _BAR).tolist(), "line": {"width": 0}},
        customdata=np.column_stack([edges[:-1], edges[1:]]), name=label,
        text=[f"{n:,}" if c else "" for n, c in zip(counts, cut)], textposition="outside", cliponaxis=False,
        textfont={"color": _CUT},
        hovertemplate="%{customdata[0]:,.4~g} to %{customdata[1]:,.4~g}<br>%{y:,} customers<extra></extra>",
    ))
    low, high = float(edges[0]), float(edges[-1])
    for i, cut in enumerate(cutoffs or []):
        value = float(cut["value"])
        fig.add_shape(vline(value, {"color": _CUT, "dash": "dash", "width": 2}))
        fig.add_annotation(x=value, y=1 - 0.1 * (i % 2), yref="paper", text=plain(cut["label"]), showarrow=False,
                           xanchor="left" if value <= (low + high) / 2 else "right", yanchor="top",
                           font={"color": _CUT, "size": 11}, bgcolor="rgba(255,255,255,0.8)")
        low, high = min(low, value), max(high, value)
    span = (high - low) or 1.0
    fig.update_xaxes(title_text=label + (" (after cleaning)" if hist.get("cleaned") else " (as read)"),
                     range=[low - 0.02 * span, high + 0.02 * span])
    fig.update_yaxes(title_text="Customers")
    base_layout(fig, height=height)
    fig.update_layout(showlegend=False, bargap=0.05, margin={"t": 24})
    return fig


def outlier_text(column: str, outliers: list[dict]) -> str:
    """One sentence: median, quartiles and customers beyond Tukey's fences for ``column``."""
    row = next((r for r in outliers if r["column"] == column), None)
    if row is None:
        return f"{column_label(column)}: no values after cleaning."
    beyond = row["below"] + row["above"]
    return (f"{column_label(column)} after cleaning: median {_num(row['median'])}, middle half "
            f"{_num(row['q1'])} to {_num(row['q3'])}; {beyond:,} customers ({row['share']:.1%}) lie beyond "
            f"Tukey's fences ({_num(row['low'])} and {_num(row['high'])}).")


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def missing_figure(missing: list[dict], rows_read: int) -> go.Figure:
    """Horizontal bars: empty cells per column of the file (columns with none are named in the title)."""
    table = pd.DataFrame(missing, columns=["column", "missing", "share"])
    gaps = table[table["missing"] > 0].sort_values("missing")
    if gaps.empty:
        return empty_figure(f"No empty cells: all {len(table)} columns are complete in {rows_read:,} rows.",
                            height=200)
    fig = go.Figure(go.Bar(
        x=gaps["missing"], y=[column_label(c) for c in gaps["column"]], orientation="h", marker_color=_BAR,
        text=[f"{n:,} ({s:.1%})" for n, s in zip(gaps["missing"], gaps["share"])], textposition="auto",
        hovertemplate="%{y}: %{x:,} empty cells<extra></extra>",
    ))
    fig.update_xaxes(title_text=f"Empty cells (of {rows_read:,} rows)")
    fig.update_yaxes(automargin=True)
    base_layout(fig, height=max(180, 90 + 32 * len(gaps)))
    fig.update_layout(margin={"l": 8, "t": 16})
    return fig


def correlation_figure(correlations: dict, *, height: int = 560) -> go.Figure:
    """Heatmap of Pearson correlations between numeric columns, diverging around 0."""
    columns = correlations.get("columns") or []
    if len(columns) < 2:
        return empty_figure("Fewer than two numeric columns vary: no correlations to show.", height=300)
    z = np.asarray(correlations["matrix"], dtype=float)
    labels = [column_label(c) for c in columns]
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=labels, colorscale="RdBu_r", zmid=0, zmin=-1, zmax=1, xgap=1, ygap=1,
        colorbar={"title": {"text": "r"}, "thickness": 12, "len": 0.9},
        hovertemplate="%{y}<br>%{x}<br>correlation %{z:+.2f}<extra></extra>",
    ))
    fig.update_xaxes(tickangle=-45, automargin=True, tickfont={"size": 10})
    fig.update_yaxes(autorange="reversed", automargin=True, tickfont={"size": 10})
    base_layout(fig, height=height)
    fig.update_layout(margin={"l": 8, "r": 8, "t": 16, "b": 8})
    return fig


def enrolment_figure(enrolments: dict) -> go.Figure:
    """Bars: customers enrolled per month."""
    periods = enrolments.get("period") or []
    if not periods:
        return empty_figure("The file has no enrolment dates.")
    fig = go.Figure(go.Bar(x=pd.to_datetime(periods), y=enrolments["customers"], marker_color=_BAR,
                           hovertemplate="%{x|%B %Y}: %{y:,} customers enrolled<extra></extra>"))
    fig.update_xaxes(title_text="Month of enrolment")
    fig.update_yaxes(title_text="Customers enrolled")
    base_layout(fig, height=300)
    fig.update_layout(showlegend=False, margin={"t": 16})
    return fig


def rule_rows_table(rule_rows: list[dict]) -> list[dict]:
    """Rows for the "what cleaning did" table: rule in words, what happened, customer ID, file line."""
    return [{"rule": rule_label(r["rule"]),
             "action": {"dropped": "dropped", "changed": "changed, kept"}.get(r["action"], r["action"]),
             "why": RULES.get(r["rule"], ("", "too many dropped rows to list them all"))[1],
             "id": "unreadable" if r["ID"] is None else str(r["ID"]), "line": int(r["line"])}
            for r in rule_rows]
