"""Overview figures: segment sizes and share of spend."""
from __future__ import annotations

import plotly.graph_objects as go

from ..theme import segment_colours
from .common import base_layout

__all__ = ["sizes_figure", "spend_share_figure"]


def sizes_figure(sizes, names: list[str]) -> go.Figure:
    """Horizontal bars: customers per segment, labelled with share."""
    colours = segment_colours(len(names))
    fig = go.Figure(go.Bar(
        y=[f"{i} · {n}" for i, n in enumerate(names)], x=sizes["n"].tolist(), orientation="h",
        marker_color=colours, text=[f"{s:.0%}" for s in sizes["share"]], textposition="auto",
        customdata=list(range(len(names))), hovertemplate="%{y}<br>%{x:,} customers<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="Customers")
    return base_layout(fig, height=320)


def spend_share_figure(frame, names: list[str]) -> go.Figure:
    """Share of customers vs share of total spend per segment (grouped bars)."""
    k = len(names)
    counts = frame.groupby("segment").size().reindex(range(k), fill_value=0)
    spend = frame.groupby("segment")["Total_Spending"].sum().reindex(range(k), fill_value=0)
    # Short ticks (segment numbers) keep the axis readable on a laptop; names are in the hover.
    ticks = [f"Segment {i}" for i in range(k)]
    fig = go.Figure([
        go.Bar(name="Share of customers", x=ticks, y=(counts / max(counts.sum(), 1)).tolist(), customdata=names,
               marker_color="#adb5bd", hovertemplate="%{customdata}<br>%{y:.1%} of customers<extra></extra>"),
        go.Bar(name="Share of total spend", x=ticks, y=(spend / max(spend.sum(), 1)).tolist(), customdata=names,
               marker_color=segment_colours(k), hovertemplate="%{customdata}<br>%{y:.1%} of spend<extra></extra>"),
    ])
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%", title_text="Share")
    return base_layout(fig, height=320)
