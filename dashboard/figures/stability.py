"""Stability figures: Jaccard with Hennig's thresholds, ARI, shares and drift over enrolment time, Sankey, PSI."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..theme import segment_colour
from .common import base_layout, column_sankey, empty_figure, feature_label, hline, numbered, rgba, vline, vrect

__all__ = [
    "JACCARD_LINES", "JACCARD_BANDS", "PSI_LINES", "jaccard_figure", "ari_distribution_figure", "ari_time_figure",
    "shares_figure", "drift_heatmap", "sankey_figure", "cohort_figure", "psi_figure", "share_shift_figure",
]

# Hennig's reading of a mean bootstrap Jaccard (core.fitting.stability.JACCARD_BANDS), drawn behind the bars.
JACCARD_LINES = ((0.5, "dissolved ≤ 0.5"), (0.6, "unstable < 0.6"), (0.75, "stable ≥ 0.75"),
                 (0.85, "highly stable ≥ 0.85"))
JACCARD_BANDS = ((0.0, 0.5, "dissolved", "#f8d7da"), (0.5, 0.6, "unstable", "#fde2c8"),
                 (0.6, 0.75, "doubtful", "#fff3cd"), (0.75, 0.85, "stable", "#d8f0df"),
                 (0.85, 1.02, "highly stable", "#b7e4c7"))
PSI_LINES = ((0.1, "moderate ≥ 0.1"), (0.25, "significant ≥ 0.25"))
_PSI_COLOURS = {"no significant shift": "#6c9a8b", "moderate shift": "#E9A23B", "significant shift": "#C8553D"}
_NO_TIME = "No enrolment snapshot had enough customers to fit the segments."




def _vlines(fig: go.Figure, lines, colour: str = "#6c757d") -> None:
    for x, text in lines:
        fig.add_shape(vline(x, {"dash": "dot", "color": colour, "width": 1}))
        fig.add_annotation(x=x, y=1.0, yref="paper", text=text, showarrow=False, yanchor="bottom",
                           font={"size": 10, "color": colour}, textangle=0)


def jaccard_figure(jaccard: dict, names: list[str], quantiles: dict | None = None,
                   verdicts: dict | None = None, intervals: dict | None = None) -> go.Figure:
    """Mean bootstrap Jaccard per segment (bars on the segment's colour, 5-95% whiskers) with Hennig's thresholds;
    with ``intervals``, the 95 % interval of each mean as a black bar over it (the verdict needs all of it in a band)."""
    segs = sorted(int(s) for s in jaccard)
    if not segs:
        return empty_figure("No bootstrap result yet.")
    values = [jaccard[str(s)] if str(s) in jaccard else jaccard.get(s) for s in segs]
    error = None
    if quantiles:
        lo = [(v - (quantiles[str(s)]["p05"] or v)) if v is not None else 0 for s, v in zip(segs, values)]
        hi = [((quantiles[str(s)]["p95"] or v) - v) if v is not None else 0 for s, v in zip(segs, values)]
        error = {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "color": "#495057",
                 "thickness": 1}
    text = [f"{v:.2f}" if v is not None else "n/a" for v in values]
    hover = [f"{numbered(s, names)}<br>mean Jaccard {t}" + (f"<br>{verdicts[str(s)]}" if verdicts else "")
             for s, t in zip(segs, text)]
    fig = go.Figure(go.Bar(
        y=[numbered(s, names) for s in segs], x=[v if v is not None else 0 for v in values], orientation="h",
        marker_color=[segment_colour(s) for s in segs], text=text, textposition="inside", error_x=error,
        hovertext=hover, hoverinfo="text", name="mean Jaccard",
    ))
    if intervals:
        ends = [intervals.get(str(s)) or [None, None] for s in segs]
        ok = [v is not None and e[0] is not None and e[1] is not None for v, e in zip(values, ends)]
        fig.add_trace(go.Scatter(
            x=[v for v, good in zip(values, ok) if good], y=[numbered(s, names) for s, good in zip(segs, ok) if good],
            mode="markers", marker={"symbol": "line-ns", "size": 14, "color": "#212529", "line": {"width": 2}},
            error_x={"type": "data", "symmetric": False, "color": "#212529", "thickness": 3, "width": 0,
                     "array": [e[1] - v for v, e, good in zip(values, ends, ok) if good],
                     "arrayminus": [v - e[0] for v, e, good in zip(values, ends, ok) if good]},
            name="95% interval of the mean", hoverinfo="text",
            hovertext=[f"{numbered(s, names)}<br>mean {v:.2f}, 95% interval {e[0]:.2f}-{e[1]:.2f}"
                       for s, v, e, good in zip(segs, values, ends, ok) if good]))
    for i, (x0, x1, text, colour) in enumerate(JACCARD_BANDS):
        fig.add_shape(vrect(x0, x1, colour, opacity=0.6))
        # Alternate heights: the 0.5-0.6 band is too narrow for its label beside its neighbours'.
        fig.add_annotation(x=(x0 + x1) / 2, y=1.0 if i % 2 == 0 else 1.07, yref="paper", text=text,
                           showarrow=False, yanchor="bottom", font={"size": 10, "color": "#495057"})
    for x, _text in JACCARD_LINES:
        fig.add_shape(vline(x, {"dash": "dot", "color": "#6c757d", "width": 1}))
    fig.update_xaxes(range=[0, 1.02], tickvals=[0, 0.25, 0.5, 0.6, 0.75, 0.85, 1.0], showgrid=False,
                     title_text="Mean Jaccard with its best match in each resample")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(showlegend=False)
    fig = base_layout(fig, height=340)
    fig.update_layout(margin={"t": 52})
    return fig


def ari_distribution_figure(ari: list) -> go.Figure:
    """Histogram of the adjusted Rand index between the model and each bootstrap refit, median marked."""
    values = [v for v in ari if v is not None]
    if not values:
        return empty_figure("No bootstrap result yet.")
    med = float(np.median(values))
    fig = go.Figure(go.Histogram(x=values, xbins={"start": 0, "end": 1.0001, "size": 0.025},
                                 marker_color="#0072B2", opacity=0.85, name="refits",
                                 hovertemplate="ARI %{x}<br>%{y} resamples<extra></extra>"))
    fig.add_shape(vline(med, {"color": "#212529", "width": 2}))
    # Inside the plot, left of the line: above it the mode bar would cover the label.
    fig.add_annotation(x=med, y=0.98, yref="paper", text=f"median {med:.2f} ", showarrow=False, yanchor="top",
                       xanchor="right", font={"size": 11}, bgcolor="rgba(255,255,255,0.85)")
    fig.update_xaxes(range=[min(0.0, min(values)), 1.0], title_text="Adjusted Rand index, model vs refit")
    fig.update_yaxes(title_text="Resamples")
    fig.update_layout(showlegend=False, bargap=0.05)
    fig = base_layout(fig, height=340)
    fig.update_layout(margin={"t": 36})
    return fig


def ari_time_figure(snapshots: list[dict]) -> go.Figure:
    """Adjusted Rand index of each cumulative enrolment snapshot's refit against the model."""
    if not snapshots:
        return empty_figure(_NO_TIME)
    fig = go.Figure(go.Scatter(
        x=[s["period"] for s in snapshots], y=[s["ari"] for s in snapshots], mode="lines+markers",
        line={"color": "#0072B2", "width": 2}, marker={"size": 8},
        customdata=[[s["n_customers"], s["end"]] for s in snapshots], name="ARI",
        hovertemplate="enrolled up to %{customdata[1]}<br>%{customdata[0]:,} customers<br>ARI %{y:.2f}<extra></extra>",
    ))
    fig.add_shape(hline(0.75, {"dash": "dot", "color": "#6c757d", "width": 1}))
    fig.update_xaxes(title_text="Customers enrolled up to the end of", type="category")
    fig.update_yaxes(range=[min(0.0, min(s["ari"] for s in snapshots)), 1.05], title_text="Adjusted Rand index")
    fig.update_layout(showlegend=False)
    return base_layout(fig, height=320)


def shares_figure(snapshots: list[dict], names: list[str]) -> go.Figure:
    """Segment shares per cumulative snapshot as a stacked area (segments matched to the model's)."""
    if not snapshots:
        return empty_figure(_NO_TIME)
    periods = [s["period"] for s in snapshots]
    segs = sorted(int(k) for k in snapshots[0]["shares"])
    fig = go.Figure([
        go.Scatter(x=periods, y=[s["shares"][str(i)] for s in snapshots], name=numbered(i, names), mode="lines",
                   stackgroup="shares", line={"color": segment_colour(i), "width": 0.5},
                   fillcolor=rgba(segment_colour(i), 0.75),
                   hovertemplate=f"{numbered(i, names)}<br>%{{x}}: %{{y:.1%}}<extra></extra>")
        for i in segs
    ])
    fig.update_xaxes(title_text="Customers enrolled up to the end of", type="category")
    fig.update_yaxes(tickformat=".0%", range=[0, 1], title_text="Share of customers")
    fig = base_layout(fig, height=320)
    fig.update_layout(legend={"traceorder": "normal"})
    return fig


def drift_heatmap(snapshots: list[dict], names: list[str]) -> go.Figure:
    """Distance of each matched snapshot centroid from the model's centroid (scaled units)."""
    if not snapshots:
        return empty_figure(_NO_TIME)
    segs = sorted(int(k) for k in snapshots[0]["drift"])
    z = [[s["drift"][str(i)] for s in snapshots] for i in segs]
    fig = go.Figure(go.Heatmap(
        z=z, x=[s["period"] for s in snapshots], y=[numbered(i, names) for i in segs], colorscale="Oranges",
        zmin=0, colorbar={"title": {"text": "distance", "side": "right"}, "thickness": 12},
        text=[[f"{v:.2f}" for v in row] for row in z], texttemplate="%{text}",
        hovertemplate="%{y}<br>%{x}: centroid moved %{z:.2f} (scaled units)<extra></extra>",
    ))
    fig.update_xaxes(title_text="Customers enrolled up to the end of", type="category")
    fig.update_yaxes(autorange="reversed")
    return base_layout(fig, height=320)


def sankey_figure(flows: list[dict], snapshots: list[dict], names: list[str], max_snapshots: int = 8) -> go.Figure:
    """Customers moving between segments from one cumulative snapshot to the next (and new enrolments).

    Only the last ``max_snapshots`` snapshots are drawn (a monthly window has two dozen); segments keep
    one row each and periods one column each. Every node carries a short label (its segment number, "new"
    for new enrolments) so labels do not cover the flows; a legend under the chart names each segment.
    """
    if not flows or len(snapshots) < 2:
        return empty_figure("Transitions need at least two enrolment snapshots.")
    periods = [s["period"] for s in snapshots][-max_snapshots:]
    links = [(f["to"], None, f["to"], int(f["target"]), f["n"]) if f["source"] < 0
             else (f["from"], int(f["source"]), f["to"], int(f["target"]), f["n"])
             for f in flows if f["from"] in periods and f["to"] in periods]
    return column_sankey(periods, links, names, len(snapshots[0]["shares"]),
                         new_hover="customers enrolled in the period ending {column}",
                         segment_hover="{segment}, snapshot {column}", height=440)


def cohort_figure(cohorts: list[dict], names: list[str]) -> go.Figure:
    """The model's segment mix among the customers enrolled in each period (stacked bars, size in hover)."""
    if not cohorts:
        return empty_figure("No enrolment dates to group customers by.")
    periods = [c["period"] for c in cohorts]
    segs = sorted(int(s) for s in cohorts[0]["shares"])
    fig = go.Figure([
        go.Bar(x=periods, y=[c["shares"][str(i)] for c in cohorts], name=numbered(i, names),
               marker_color=segment_colour(i), customdata=[c["n_customers"] for c in cohorts],
               hovertemplate=f"{numbered(i, names)}<br>enrolled %{{x}} (%{{customdata:,}} customers): "
                             f"%{{y:.1%}}<extra></extra>")
        for i in segs
    ])
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="Enrolment cohort", type="category")
    fig.update_yaxes(tickformat=".0%", range=[0, 1], title_text="Share of the cohort")
    fig = base_layout(fig, height=320)
    fig.update_layout(legend={"traceorder": "normal"})
    return fig


def psi_figure(features: list[dict], labels: dict | None = None) -> go.Figure:
    """Population stability index per feature (coloured by its reading), with the 0.1 / 0.25 bands.

    Features are named by ``labels`` when given, else by core.reading.schema.FEATURE_LABELS.
    """
    if not features:
        return empty_figure("No feature to compare.")
    labels = labels or {}
    rows = sorted(features, key=lambda r: r["psi"])
    top = max(0.3, max(r["psi"] for r in rows) * 1.1)
    fig = go.Figure(go.Bar(
        y=[labels.get(r["feature"], feature_label(r["feature"])) for r in rows], x=[r["psi"] for r in rows],
        orientation="h",
        marker_color=[_PSI_COLOURS.get(r["band"], "#6c757d") for r in rows], text=[f"{r['psi']:.3f}" for r in rows],
        textposition="outside", customdata=[r["band"] for r in rows],
        hovertemplate="%{y}<br>PSI %{x:.3f}: %{customdata}<extra></extra>",
    ))
    _vlines(fig, PSI_LINES)
    fig.update_xaxes(range=[0, top], title_text="Population stability index (new vs training data)")
    fig.update_layout(showlegend=False)
    fig = base_layout(fig, height=320)
    fig.update_layout(margin={"t": 36})
    return fig


def share_shift_figure(segments: list[dict], names: list[str]) -> go.Figure:
    """Each segment's share in the training data and in the new data (scored with the model)."""
    if not segments:
        return empty_figure("No segment to compare.")
    segs = [int(r["segment"]) for r in segments]
    # Short ticks keep the axis readable beside the legend; names are in the hover.
    ticks = [f"Segment {s}" for s in segs]
    full = [numbered(s, names) for s in segs]
    fig = go.Figure([
        go.Bar(name="Training data", x=ticks, y=[r["reference_share"] for r in segments], marker_color="#adb5bd",
               customdata=full, hovertemplate="%{customdata}<br>training: %{y:.1%}<extra></extra>"),
        go.Bar(name="New data", x=ticks, y=[r["new_share"] for r in segments],
               marker_color=[segment_colour(s) for s in segs], customdata=full,
               hovertemplate="%{customdata}<br>new data: %{y:.1%}<extra></extra>"),
    ])
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%", title_text="Share of customers")
    return base_layout(fig, height=320)
