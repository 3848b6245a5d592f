"""Segment profile figures: z-score heatmap, distributions, product/channel mix, campaigns; table helpers."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.reading.schema import FEATURE_LABELS

from ..theme import segment_colour
from .common import base_layout, empty_figure, feature_label, plain, wrap_label

__all__ = [
    "FEATURE_LABELS", "CATEGORY_LABELS", "feature_label", "segment_label", "campaign_label", "text_colour",
    "zscore_heatmap", "distribution_figure", "mix_figure", "campaigns_figure",
    "economics_table", "economics_assumptions", "recommendations", "most_different",
]

# Product-mix columns (core.insight.profiles.product_mix) and channel-mix columns, in words.
CATEGORY_LABELS = {
    "Wines": "wine", "Fruits": "fruit", "MeatProducts": "meat", "FishProducts": "fish",
    "SweetProducts": "sweets", "GoldProds": "gold", "Web": "web", "Catalog": "catalogue", "Store": "store",
}
# Categories get their own (semantic) colours so they never read as segments.
_CATEGORY_COLOURS = {
    "Wines": "#8E3B46", "Fruits": "#E9C46A", "MeatProducts": "#C8553D", "FishProducts": "#4A90A4",
    "SweetProducts": "#E5A4CB", "GoldProds": "#B39B3A", "Web": "#6C8EBF", "Catalog": "#A8A8A8",
    "Store": "#5B8C5A",
}
_DIM = 0.35


_DARK_TEXT, _LIGHT_TEXT = "#212529", "#ffffff"


def _on_white(hex_colour: str, opacity: float) -> tuple[float, float, float]:
    """The colour a bar of ``hex_colour`` at ``opacity`` shows on the white background (0-1 RGB)."""
    h = str(hex_colour).lstrip("#")
    rgb = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    return tuple(opacity * c + (1 - opacity) for c in rgb)


def text_colour(hex_colour: str, opacity: float = 1.0) -> str:
    """Dark or white text, whichever contrasts more with the bar as drawn (WCAG relative luminance)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c) for c in _on_white(hex_colour, opacity))
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # Contrast with white is 1.05 / (L + 0.05), with #212529 (L ~0.017) is (L + 0.05) / 0.067.
    return _LIGHT_TEXT if 1.05 / (lum + 0.05) >= (lum + 0.05) / 0.067 else _DARK_TEXT


def segment_label(segment: int, name: str, width: int | None = None) -> str:
    """'i · name' (the name as plain text), wrapped to ``width`` characters when given."""
    return wrap_label(f"{segment} · {name}", width) if width else f"{segment} · {plain(name)}"


def campaign_label(column: str) -> str:
    """Short axis label: '3rd' for AcceptedCmp3, 'Last' for Response (short so a phone needs no rotation)."""
    if column == "Response":
        return "Last"
    if column.startswith("AcceptedCmp"):
        number = column[len("AcceptedCmp"):]
        return number + {"1": "st", "2": "nd", "3": "rd"}.get(number, "th")
    return column


def _opacity(segment: int, highlight: int | None) -> float:
    return 1.0 if highlight is None or segment == highlight else _DIM


def zscore_heatmap(zscores: pd.DataFrame, names: list[str], highlight: int | None = None) -> go.Figure:
    """Segments x features heatmap of z-scores, diverging around 0, highlighted row outlined."""
    if zscores is None or zscores.empty:
        return empty_figure("No profile columns to show.")
    z = zscores.to_numpy(dtype=float)
    segs = [int(s) for s in zscores.index]
    labels = [segment_label(s, names[s], 26) for s in segs]
    columns = [str(c) for c in zscores.columns]
    bound = max(1.0, float(np.nanmax(np.abs(z))) if z.size else 1.0)
    fig = go.Figure(go.Heatmap(
        z=z, x=[feature_label(c) for c in columns], y=labels, customdata=np.array([columns] * len(segs)),
        colorscale="RdBu_r", zmid=0, zmin=-bound, zmax=bound, xgap=1, ygap=1,
        texttemplate="%{z:.1f}", textfont={"size": 10},
        colorbar={"title": {"text": "z"}, "thickness": 12, "len": 0.9},
        hovertemplate="%{y}<br>%{x}: %{z:+.2f} SD from the average customer<extra></extra>",
    ))
    if highlight is not None and highlight in segs:
        row = segs.index(highlight)
        fig.add_shape(type="rect", x0=-0.5, x1=len(columns) - 0.5, y0=row - 0.5, y1=row + 0.5,
                      line={"color": "#212529", "width": 2.5}, fillcolor="rgba(0,0,0,0)")
    fig.update_yaxes(autorange="reversed", title_text="Segment", automargin=True)
    fig.update_xaxes(title_text="Feature (z-score: segment mean vs all customers)", tickangle=-40,
                     automargin=True)
    base_layout(fig, height=max(300, 150 + 44 * len(segs)))
    # Room above the cells for the mode bar, which would otherwise cover the first row.
    fig.update_layout(margin={"t": 36})
    return fig


def _box_stats(values: pd.Series) -> dict | None:
    v = values.dropna().to_numpy(dtype=float)
    if v.size == 0:
        return None
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    iqr = q3 - q1
    # Tukey whiskers: the furthest data points within 1.5 IQR of the box.
    low = v[v >= q1 - 1.5 * iqr].min()
    high = v[v <= q3 + 1.5 * iqr].max()
    return {"q1": q1, "median": med, "q3": q3, "lowerfence": low, "upperfence": high, "mean": v.mean(),
            "n": v.size}


def distribution_figure(frame: pd.DataFrame, feature: str, names: list[str],
                        highlight: int | None = None) -> go.Figure:
    """Horizontal box per segment of one feature (quartiles of every customer; no points are sent)."""
    # Precomputed quartiles instead of raw values keep the figure a few KB at 100K customers.
    if frame is None or feature not in frame or "segment" not in frame:
        return empty_figure(f"No column {feature!r} in this data.")
    fig = go.Figure()
    for seg, values in frame.groupby("segment")[feature]:
        seg = int(seg)
        stats = _box_stats(values)
        if stats is None or seg >= len(names):
            continue
        label = segment_label(seg, names[seg], 22)
        if seg == highlight:
            label = f"<b>{label}</b>"
        colour = segment_colour(seg)
        fig.add_trace(go.Box(
            y=[label], orientation="h", q1=[stats["q1"]], median=[stats["median"]], q3=[stats["q3"]],
            lowerfence=[stats["lowerfence"]], upperfence=[stats["upperfence"]], mean=[stats["mean"]],
            name=segment_label(seg, names[seg]), marker_color=colour, line_color=colour, boxpoints=False,
            opacity=_opacity(seg, highlight), showlegend=False,
        ))
    if not fig.data:
        return empty_figure(f"No values of {feature_label(feature)} to show.")
    fig.update_xaxes(title_text=feature_label(feature))
    fig.update_yaxes(autorange="reversed", automargin=True)
    base_layout(fig, height=max(340, 130 + 42 * len(names)))
    fig.update_layout(margin={"t": 36})
    return fig


def mix_figure(mix: pd.DataFrame, names: list[str], *, what: str = "spend",
               highlight: int | None = None) -> go.Figure:
    """Stacked horizontal bars: each segment's share of spend (or purchases) per category."""
    if mix is None or mix.empty:
        return empty_figure("Nothing to show.")
    segs = [int(s) for s in mix.index]
    labels = [segment_label(s, names[s], 22) for s in segs]
    if highlight is not None and highlight in segs:
        labels[segs.index(highlight)] = f"<b>{labels[segs.index(highlight)]}</b>"
    opacity = [_opacity(s, highlight) for s in segs]
    fig = go.Figure()
    for column in mix.columns:
        word = CATEGORY_LABELS.get(column, column)
        colour = _CATEGORY_COLOURS.get(column, "#6c757d")
        fig.add_trace(go.Bar(
            y=labels, x=mix[column].tolist(), name=word.capitalize(), orientation="h",
            marker={"color": colour, "opacity": opacity},
            texttemplate="%{x:.0%}", textposition="inside", insidetextanchor="middle", textangle=0,
            # Text colour per bar as drawn: a faded (not selected) bar is light, so its label turns dark.
            insidetextfont={"color": [text_colour(colour, o) for o in opacity]},
            hovertemplate=f"%{{y}}<br>{word}: %{{x:.1%}} of {what}<extra></extra>",
        ))
    fig.update_xaxes(title_text=f"Share of {what}", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(autorange="reversed", automargin=True)
    base_layout(fig, height=max(300, 120 + 40 * len(segs)))
    # Legend in stacking order (plotly reverses it for stacked bars by default); mode bar above the bars.
    fig.update_layout(barmode="stack", uniformtext={"minsize": 9, "mode": "hide"}, legend_traceorder="normal",
                      margin={"t": 36})
    return fig


def campaigns_figure(campaigns: pd.DataFrame, names: list[str], highlight: int | None = None) -> go.Figure:
    """Acceptance of each campaign per segment with 95 % (Wilson) intervals as error bars."""
    if campaigns is None or campaigns.empty:
        return empty_figure("This file has no campaign columns (AcceptedCmp1-5, Response).")
    order = list(dict.fromkeys(campaigns["campaign"]))
    fig = go.Figure()
    for seg, rows in campaigns.groupby("segment", sort=True):
        seg = int(seg)
        rows = rows.set_index("campaign").reindex(order)
        rate = rows["rate"].to_numpy(float)
        fig.add_trace(go.Bar(
            x=[campaign_label(c) for c in order], y=rate, name=segment_label(seg, names[seg]),
            marker_color=segment_colour(seg), opacity=_opacity(seg, highlight),
            error_y={"type": "data", "array": rows["high"].to_numpy(float) - rate,
                     "arrayminus": rate - rows["low"].to_numpy(float), "visible": True,
                     "thickness": 1.2, "width": 2, "color": "#495057"},
            customdata=np.column_stack([rows["low"], rows["high"], rows["accepted"], rows["n"]]),
            hovertemplate=(f"{segment_label(seg, names[seg])}<br>%{{x}}: %{{y:.1%}} accepted "
                           "(95% CI %{customdata[0]:.1%}–%{customdata[1]:.1%})<br>"
                           "%{customdata[2]:,.0f} of %{customdata[3]:,.0f}<extra></extra>"),
        ))
    fig.update_layout(barmode="group", bargap=0.2, bargroupgap=0.05)
    fig.update_yaxes(title_text="Accepted (share of segment)", tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(title_text="Campaign (Last = Response)")
    base_layout(fig, height=400)
    fig.update_layout(margin={"t": 36})
    return fig


def _money(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:,.0f}"


def economics_table(economics: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Campaign economics per segment, formatted for reading (strings)."""
    rows = []
    for seg, r in economics.iterrows():
        seg = int(seg)
        rate, roi, contacts = float(r["response_rate"]), float(r["roi"]), float(r["contacts"])
        rows.append({
            # An empty segment (a model applied to other data) has NaN rows: show 0 customers, n/a.
            "Segment": f"{seg} · {names[seg]}", "Customers": f"{int(contacts) if math.isfinite(contacts) else 0:,}",
            "Response rate": "n/a" if not math.isfinite(rate) else f"{rate:.1%}",
            "Expected responders": _money(float(r["expected_responders"])),
            "Cost": _money(float(r["cost"])), "Revenue": _money(float(r["revenue"])),
            "Profit": _money(float(r["profit"])),
            "ROI": "n/a" if not math.isfinite(roi) else f"{roi:+.0%}",
        })
    return pd.DataFrame(rows)


def economics_assumptions(frame: pd.DataFrame) -> str:
    """One sentence saying what the economics assume (cost per contact and revenue per responder)."""
    cost = float(frame["Z_CostContact"].mean()) if "Z_CostContact" in frame else 3.0
    revenue = float(frame["Z_Revenue"].mean()) if "Z_Revenue" in frame else 11.0
    source = "the file's Z_CostContact and Z_Revenue" if {"Z_CostContact", "Z_Revenue"} <= set(frame.columns) \
        else "defaults (the file has no Z_CostContact/Z_Revenue)"
    return (f"Assumes a campaign like the last one: each segment responds at its last-campaign (Response) rate; "
            f"{cost:,.2f} per contact and {revenue:,.2f} per responder, from {source}.")


def recommendations(lift: pd.DataFrame, names: list[str], threshold: float) -> list[dict]:
    """Over-indexing product categories (lift >= threshold), strongest first, with a sentence each."""
    out = []
    for seg, row in lift.iterrows():
        seg = int(seg)
        for category, value in row.items():
            value = float(value)
            if math.isfinite(value) and value >= threshold:
                word = CATEGORY_LABELS.get(category, str(category))
                out.append({"segment": seg, "category": category, "lift": value,
                            "text": f"{names[seg]} spends {value:.1f}x the average share on {word}: feature it."})
    return sorted(out, key=lambda r: (-r["lift"], r["segment"]))


def most_different(zscores: pd.DataFrame, segment: int) -> int | None:
    """The segment whose profile is furthest (Euclidean, in z-scores) from ``segment``."""
    if zscores is None or segment not in zscores.index or len(zscores) < 2:
        return None
    dist = ((zscores - zscores.loc[segment]) ** 2).sum(axis=1).drop(segment)
    return int(dist.idxmax())
