"""Figures of the data & models page (/data): a candidate model's segment shares against the active model's."""
from __future__ import annotations


import plotly.graph_objects as go

from ..theme import segment_colour
from .common import base_layout, empty_figure, plain, rgba


__all__ = ["share_comparison_figure"]



def share_comparison_figure(segments: list[dict], reference_version: str, candidate_version: str) -> go.Figure:
    """Per candidate segment: its share of customers and the share of the active segment it matches."""
    if not segments:
        return empty_figure("No segment to compare.")
    # Short ticks keep the axis readable; the names are in the hover and in the table beside the chart.
    ticks = [f"Segment {r['segment']}" for r in segments]
    names = [plain(f"{r['segment']} · {r['name']}") for r in segments]
    colours = [segment_colour(int(r["segment"])) for r in segments]
    active = [r["reference_share"] if r["reference_share"] is not None else 0.0 for r in segments]
    fig = go.Figure([
        go.Bar(name=f"Active {plain(reference_version)} (matched segment)", x=ticks, y=active,
               marker={"color": [rgba(c, 0.35) for c in colours], "line": {"color": colours, "width": 1.5}},
               customdata=[plain(f"{r['matched']} · {r['matched_name']}") if r["matched"] is not None
                           else "no match" for r in segments],
               hovertemplate="%{customdata}<br>%{y:.1%} of customers<extra>active</extra>"),
        go.Bar(name=f"Candidate {plain(candidate_version)}", x=ticks, y=[r["share"] for r in segments],
               marker_color=colours, customdata=names,
               hovertemplate="%{customdata}<br>%{y:.1%} of customers<extra>candidate</extra>"),
    ])
    fig.update_yaxes(title_text="Share of customers", tickformat=".0%")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.12, "x": 0})
    return base_layout(fig, height=340)
