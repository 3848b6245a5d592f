"""Segments over time on an order log: Sankey across snapshots, segment sizes and value per snapshot."""
from __future__ import annotations

import plotly.graph_objects as go

from ..theme import segment_colour
from .common import base_layout, empty_figure, numbered, rgba

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
    flows = [t for t in run["transitions"] if t["from_date"] in dates and t["to_date"] in dates]
    k = len(names)
    index: dict = {}
    labels, hover, colours, xs, ys = [], [], [], [], []

    def node(date: str, seg) -> int:
        key = (date, seg)
        if key not in index:
            index[key] = len(labels)
            col = dates.index(date)
            new = seg == _NEW
            hover.append(f"first purchase in the period ending {date}" if new else f"{numbered(seg, names)} on {date}")
            labels.append("new" if new else str(seg))
            colours.append("#ced4da" if new else segment_colour(seg))
            # Fixed positions keep snapshots in columns and each segment in its own row.
            xs.append(0.01 + 0.98 * col / max(len(dates) - 1, 1) - (0.05 if new else 0.0))
            ys.append(0.97 if new else 0.02 + 0.82 * seg / max(k - 1, 1))
        return index[key]
    src, dst, val, link_colours = [], [], [], []
    for t in flows:
        new = t["from"] == _NEW
        src.append(node(t["to_date"], _NEW) if new else node(t["from_date"], int(t["from"])))
        dst.append(node(t["to_date"], int(t["to"])))
        val.append(t["customers"])
        link_colours.append("rgba(173,181,189,0.35)" if new else rgba(segment_colour(int(t["from"])), 0.35))
    traces = [go.Sankey(
        arrangement="fixed", textfont={"size": 11, "color": "#212529"},
        node={"label": labels, "customdata": hover, "color": colours,
              "x": [min(max(x, 0.001), 0.999) for x in xs], "y": [min(max(y, 0.001), 0.999) for y in ys],
              "pad": 6, "thickness": 14, "hovertemplate": "%{customdata}<br>%{value:,} customers<extra></extra>"},
        link={"source": src, "target": dst, "value": val, "color": link_colours,
              "hovertemplate": "%{source.customdata} → %{target.customdata}<br>%{value:,} customers<extra></extra>"},
    )]
    shown = sorted({int(t[end]) for t in flows for end in ("from", "to") if t[end] != _NEW})
    traces += [go.Scatter(x=[None], y=[None], mode="markers", name=numbered(i, names), hoverinfo="skip",
                          marker={"color": segment_colour(i), "size": 10, "symbol": "square"}) for i in shown]
    fig = go.Figure(traces)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for col, date in enumerate(dates):
        fig.add_annotation(x=0.01 + 0.98 * col / max(len(dates) - 1, 1), y=1.0, xref="paper", yref="paper",
                           yanchor="bottom", text=date, showarrow=False, font={"size": 11, "color": "#495057"})
    fig = base_layout(fig, height=460)
    fig.update_layout(margin={"b": 16, "t": 28}, showlegend=True, plot_bgcolor="rgba(0,0,0,0)")
    return fig


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
