"""Two-segment comparison figures: effect sizes, overlaid distributions, mixes side by side; KPI and table helpers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.reading import schema

from ..theme import segment_colour
from .common import base_layout, empty_figure, feature_label, vline, vrect
from .profiles import CATEGORY_LABELS, segment_label

__all__ = ["segment_kpis", "effect_size_figure", "comparison_table", "comparison_summary", "format_value",
           "overlay_distribution", "mix_pair_figure"]

_MAX_BINS = 40
# Money is shown in whole units; counts (children, purchases, days) as counts: "0.04 children" reads as
# "4 per 100 customers".
_MONEY = {"Income", "Total_Spending", *schema.SPEND_COLUMNS}
_COUNTS = {c for c in schema.INTEGER_COLUMNS if c not in _MONEY} | {
    "Age", "Total_Children", "Customer_since", "Total_Purchases", "Campaigns_Accepted"}


def format_value(feature: str, value: float, *, signed: bool = False) -> str:
    """A segment mean (or a difference of means) in the feature's own unit: money, count or plain number."""
    if value is None or not math.isfinite(value):
        return "n/a"
    sign = "+" if signed else ""
    if feature in _MONEY:
        return f"{value:{sign},.0f}"
    if feature in _COUNTS:
        if abs(value) >= 10:
            return f"{value:{sign},.0f}"
        if abs(value) >= 1 or value == 0:
            return f"{value:{sign}.1f}"
        return f"{value * 100:{sign}.0f} per 100"
    return f"{value:{sign},.2f}"


def _room_for_modebar(fig: go.Figure) -> go.Figure:
    """A top margin so plotly's mode bar does not cover the first bar."""
    fig.update_layout(margin={"t": 36})
    return fig


def segment_kpis(sizes: pd.DataFrame, stats: pd.DataFrame, economics: pd.DataFrame,
                 segment: int) -> list[tuple[str, str]]:
    """(label, value) pairs: size, share, mean income, mean spend, response rate of one segment."""
    def stat(column: str) -> float:
        key = (column, "mean")
        if key in stats.columns and segment in stats.index:
            return float(stats.loc[segment, key])
        return float("nan")

    def fmt(v: float, pattern: str) -> str:
        return pattern.format(v) if math.isfinite(v) else "n/a"

    n = int(sizes.loc[segment, "n"]) if segment in sizes.index else 0
    share = float(sizes.loc[segment, "share"]) if segment in sizes.index else float("nan")
    rate = float(economics.loc[segment, "response_rate"]) \
        if segment in economics.index and "response_rate" in economics else float("nan")
    # Data of another layout (a transaction log's customers) may have no income or no campaign response:
    # those figures are left out rather than shown as "n/a" for every segment.
    spend = next((c for c in ("Total_Spending", "Monetary") if (c, "mean") in stats.columns), "Total_Spending")
    has_response = "response_rate" in economics and economics["response_rate"].notna().any()
    pairs = [
        ("Customers", f"{n:,}"),
        ("Share", fmt(share, "{:.1%}")),
        ("Mean income", fmt(stat("Income"), "{:,.0f}")) if ("Income", "mean") in stats.columns else None,
        ("Mean spend", fmt(stat(spend), "{:,.0f}")),
        ("Response rate", fmt(rate, "{:.1%}")) if has_response else None,
    ]
    return [p for p in pairs if p is not None]


def effect_size_figure(comparison: pd.DataFrame, a: int, b: int, names: list[str]) -> go.Figure:
    """Horizontal bars of Cohen's d per feature, largest |d| on top, coloured by the higher segment."""
    if a == b:
        return empty_figure("Pick two different segments to see how they differ.")
    data = comparison.dropna(subset=["cohens_d"])
    if data.empty:
        return empty_figure("Not enough customers in these segments to compare.")
    data = data.reindex(data["cohens_d"].abs().sort_values(ascending=False).index)
    labels = [feature_label(f) for f in data.index]
    fig = go.Figure()
    for seg, mask in ((a, data["cohens_d"] >= 0), (b, data["cohens_d"] < 0)):
        part = data[mask]
        if part.empty:
            continue
        fig.add_trace(go.Bar(
            y=[feature_label(f) for f in part.index], x=part["cohens_d"].tolist(), orientation="h",
            name=f"Higher in {segment_label(seg, names[seg])}", marker_color=segment_colour(seg),
            customdata=np.column_stack([part["mean_a"], part["mean_b"], part["magnitude"]]),
            hovertemplate=("%{y}: d = %{x:+.2f} (%{customdata[2]})<br>"
                           f"mean in {a}: %{{customdata[0]:,.2f}} · in {b}: %{{customdata[1]:,.2f}}<extra></extra>"),
        ))
    # Cohen's thresholds as faint guides: inside the grey band a difference is negligible.
    fig.add_shape(vrect(-0.2, 0.2, "#adb5bd", opacity=0.18))
    for x in (-0.8, -0.5, 0.5, 0.8):
        fig.add_shape(vline(x, {"color": "#adb5bd", "width": 1, "dash": "dot"}, layer="below"))
    fig.update_yaxes(categoryorder="array", categoryarray=labels, autorange="reversed", automargin=True)
    # Two short lines: one long line was cut at the card's edge on a phone.
    fig.update_xaxes(title_text=f"Cohen's d<br>({a} − {b}) / pooled SD", zeroline=True, zerolinecolor="#6c757d")
    return _room_for_modebar(base_layout(fig, height=max(320, 110 + 22 * len(labels))))


def comparison_table(comparison: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    """Means of A and B, difference, d and its size in words, sorted by |d| (strings for display)."""
    data = comparison.reindex(comparison["cohens_d"].abs().sort_values(ascending=False, na_position="last").index)

    def num(v: float, pattern: str = "{:,.2f}") -> str:
        return pattern.format(v) if math.isfinite(v) else "n/a"
    return pd.DataFrame({
        "Feature": [feature_label(f) for f in data.index],
        f"Mean in {a}": [format_value(f, v) for f, v in data["mean_a"].items()],
        f"Mean in {b}": [format_value(f, v) for f, v in data["mean_b"].items()],
        "Difference": [format_value(f, v, signed=True) for f, v in data["diff"].items()],
        "Cohen's d": [num(v, "{:+.2f}") for v in data["cohens_d"]],
        "Size": data["magnitude"].tolist(),
    })


def comparison_summary(comparison: pd.DataFrame, a: int, b: int, names: list[str], top: int = 3) -> list[str]:
    """The biggest differences in plain words, largest |d| first (only medium or larger effects, |d| >= 0.5).

    e.g. "Total spend, 2 years: 2 · Big spenders is 3.1× as high as 4 · Budget browsers (1,250 against 400;
    Cohen's d 1.8, large)." Returns plain strings (shown as text, never markup).
    """
    if a == b or comparison is None or comparison.empty:
        return []
    data = comparison.dropna(subset=["cohens_d"])
    data = data[data["cohens_d"].abs() >= 0.5]
    data = data.reindex(data["cohens_d"].abs().sort_values(ascending=False).index)[:top]
    out = []
    for feature, row in data.iterrows():
        d = float(row["cohens_d"])
        hi, lo = (a, b) if d > 0 else (b, a)
        mean_hi, mean_lo = (float(row["mean_a"]), float(row["mean_b"])) if d > 0 else \
            (float(row["mean_b"]), float(row["mean_a"]))
        label = feature_label(feature)
        ratio = mean_hi / mean_lo if mean_lo > 0 else None
        how = f"{ratio:.1f}× as high as" if ratio is not None and ratio >= 1.5 else "higher than"
        out.append(f"{label}: {hi} · {names[hi]} is {how} {lo} · {names[lo]} "
                   f"({format_value(feature, mean_hi)} against {format_value(feature, mean_lo)}; "
                   f"Cohen's d {abs(d):.1f}, {row['magnitude']}).")
    return out


def _bins(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return np.array([lo - 0.5, hi + 0.5])
    if np.all(np.mod(values, 1) == 0) and hi - lo <= _MAX_BINS:
        # Counts (children, purchases): one bar per whole number, centred on it.
        return np.arange(lo - 0.5, hi + 1.5)
    edges = np.histogram_bin_edges(values, bins="auto")
    if len(edges) - 1 > _MAX_BINS:
        edges = np.linspace(lo, hi, _MAX_BINS + 1)
    return edges


def overlay_distribution(frame: pd.DataFrame, feature: str, a: int, b: int, names: list[str]) -> go.Figure:
    """Overlaid histograms (share of each segment per bin) of one feature, with each segment's mean."""
    if feature not in frame:
        return empty_figure(f"No column {feature!r} in this data.")
    labels = frame["segment"].to_numpy()
    parts = [(seg, frame[feature].to_numpy(float)[labels == seg]) for seg in dict.fromkeys((a, b))]
    parts = [(seg, v[np.isfinite(v)]) for seg, v in parts]
    if not any(len(v) for _, v in parts):
        return empty_figure("These segments have no customers.")
    edges = _bins(np.concatenate([v for _, v in parts if len(v)]))
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = go.Figure()
    for seg, values in parts:
        if not len(values):
            continue
        counts, _ = np.histogram(values, bins=edges)
        colour = segment_colour(seg)
        fig.add_trace(go.Bar(
            x=centres, y=counts / len(values), width=widths, name=segment_label(seg, names[seg]), marker_color=colour,
            opacity=0.55, customdata=np.column_stack([edges[:-1], edges[1:], counts]),
            hovertemplate=(f"{segment_label(seg, names[seg])}<br>%{{customdata[0]:,.4~g}}–%{{customdata[1]:,.4~g}}: "
                           "%{y:.1%} (%{customdata[2]:,} customers)<extra></extra>"),
        ))
        fig.add_shape(vline(float(values.mean()), {"color": colour, "width": 2, "dash": "dash"}))
    fig.update_layout(barmode="overlay", bargap=0)
    fig.update_xaxes(title_text=f"{feature_label(feature)}<br>(dashed line: segment mean)")
    fig.update_yaxes(title_text="Share of segment", tickformat=".0%")
    return _room_for_modebar(base_layout(fig, height=340))


def mix_pair_figure(mix: pd.DataFrame, a: int, b: int, names: list[str], *, what: str = "spend") -> go.Figure:
    """Grouped bars: the two segments' shares per category, side by side in their colours."""
    if mix is None or mix.empty:
        return empty_figure("Nothing to show.")
    categories = [CATEGORY_LABELS.get(c, c).capitalize() for c in mix.columns]
    fig = go.Figure()
    for seg in dict.fromkeys((a, b)):
        if seg not in mix.index:
            continue
        fig.add_trace(go.Bar(
            x=categories, y=mix.loc[seg].tolist(), name=segment_label(seg, names[seg]), marker_color=segment_colour(seg),
            texttemplate="%{y:.0%}", textposition="outside", cliponaxis=False,
            hovertemplate=f"{segment_label(seg, names[seg])}<br>%{{x}}: %{{y:.1%}} of {what}<extra></extra>",
        ))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=f"Share of {what}", tickformat=".0%", rangemode="tozero")
    return _room_for_modebar(base_layout(fig, height=320))
