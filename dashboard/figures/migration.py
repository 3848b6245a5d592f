"""Segments over time on an order log: Sankey across snapshots, segment sizes and value per snapshot."""
from __future__ import annotations

import plotly.graph_objects as go

from ..theme import segment_colour
from .common import base_layout, column_sankey, empty_figure, numbered

__all__ = ["migration_sankey", "sizes_figure", "value_figure"]

_NEW = "new"


def migration_sankey(run: dict, names: list[str], max_snapshots: int = 8) -> go.Figure:
    """Customers moving between segments from one as-of snapshot to the next, and first purchases ("new").

    Only the last ``max_snapshots`` snapshots are drawn (24 monthly columns would be unreadable); each
    segment keeps its row, each snapshot its column; a legend under the chart names the segments.
    """
    dates = [s["date"] for s in run.get("snapshots", [])][-max_snapshots:]
    if len(dates) < 2:
        return empty_figure("Transitions need at least two snapshots.")
    links = [(t["to_date"], None, t["to_date"], int(t["to"]), t["customers"]) if t["from"] == _NEW
             else (t["from_date"], int(t["from"]), t["to_date"], int(t["to"]), t["customers"])
             for t in run["transitions"] if t["from_date"] in dates and t["to_date"] in dates]
    return column_sankey(dates, links, names, len(names), new_hover="first purchase in the period ending {column}",
                         segment_hover="{segment} on {column}", height=460)


def sizes_figure(run: dict, names: list[str]) -> go.Figure:
    """Customers per segment at each snapshot (stacked bars: the mix and the growth of the customer base)."""
    snaps = run.get("snapshots", [])
    if not snaps:
        return empty_figure("No snapshot.")
    dates = [s["date"] for s in snaps]
    fig = go.Figure([
        go.Bar(x=dates, y=[s["sizes"][str(i)] for s in snaps], name=numbered(i, names),
               marker={"color": segment_colour(i)},
               customdata=[s["shares"][str(i)] for s in snaps],
               hovertemplate=f"{numbered(i, names)}<br>%{{x}}: %{{y:,}} customers (%{{customdata:.1%}})<extra></extra>")
        for i in range(len(names))])
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="Snapshot (purchases up to this date)", type="category")
    fig.update_yaxes(title_text="Customers", tickformat=",")
    return base_layout(fig, height=340)


def value_figure(run: dict, names: list[str]) -> go.Figure:
    """Spend in each period by the segment its customers are in at the period's end (is the mix paying more?)."""
    snaps = run.get("snapshots", [])
    if not snaps:
        return empty_figure("No snapshot.")
    dates = [s["date"] for s in snaps]
    fig = go.Figure([
        go.Scatter(x=dates, y=[s["period_value"][str(i)] for s in snaps], name=numbered(i, names),
                   mode="lines+markers", line={"color": segment_colour(i), "width": 2},
                   hovertemplate=f"{numbered(i, names)}<br>period ending %{{x}}: %{{y:,.0f}}<extra></extra>")
        for i in range(len(names))])
    fig.update_xaxes(title_text="Period ending", type="category")
    fig.update_yaxes(title_text="Spend in the period", tickformat=",.0f")
    return base_layout(fig, height=340)
