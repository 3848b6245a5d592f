"""Figures of /monitoring: live predictions against the training customers (pure functions of the report)."""
from __future__ import annotations

import datetime as _dt

import plotly.graph_objects as go

from ..theme import segment_colour
from .common import base_layout, empty_figure, feature_label, hline, plain, vline

__all__ = ["traffic_figure", "segment_mix_figure", "confidence_figure", "drift_figure"]

_NO_PREDICTIONS = "No predictions in this window yet."
_BAND_COLOURS = {"no significant shift": "#198754", "moderate shift": "#fd7e14", "significant shift": "#dc3545"}


def _times(traffic: list[dict], offset: float = 0.0) -> list:
    return [_dt.datetime.fromtimestamp(t["start"] + offset, _dt.timezone.utc) for t in traffic]


def _time_range(traffic: list[dict], bucket_seconds: float) -> list:
    """The buckets shown with one bucket of room either side (a single bucket would span milliseconds)."""
    first, last = min(t["start"] for t in traffic), max(t["start"] for t in traffic)
    return [_dt.datetime.fromtimestamp(first - bucket_seconds, _dt.timezone.utc),
            _dt.datetime.fromtimestamp(last + 2 * bucket_seconds, _dt.timezone.utc)]


def traffic_figure(traffic: list[dict], bucket_seconds: float) -> go.Figure:
    """Predictions per time bucket (UTC)."""
    if not traffic:
        return empty_figure(_NO_PREDICTIONS)
    minutes = bucket_seconds / 60
    fig = go.Figure(go.Bar(x=_times(traffic, bucket_seconds / 2), y=[t["predictions"] for t in traffic],
                           width=bucket_seconds * 1000 * 0.9, marker_color="#0d6efd",
                           customdata=[_dt.datetime.fromtimestamp(t["start"], _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
                                       for t in traffic],
                           hovertemplate=f"%{{customdata}} UTC + {minutes:g} min<br>%{{y:,}} predictions<extra></extra>"))
    fig.update_xaxes(title_text="Time (UTC)", range=_time_range(traffic, bucket_seconds))
    fig.update_yaxes(title_text=f"Predictions per {minutes:g} min", rangemode="tozero")
    return base_layout(fig, height=300)


def segment_mix_figure(segments: list[dict]) -> go.Figure:
    """Each segment's share among incoming customers and among the training customers."""
    if not segments or all(s["incoming_share"] is None for s in segments):
        return empty_figure(_NO_PREDICTIONS)
    ticks = [f"Segment {s['segment']}" for s in segments]
    full = [plain(f"{s['segment']} · {s['name']}") for s in segments]
    bars = [go.Bar(name="Incoming", x=ticks, y=[s["incoming_share"] or 0 for s in segments],
                   marker_color=[segment_colour(s["segment"]) for s in segments], customdata=full,
                   hovertemplate="%{customdata}<br>incoming: %{y:.1%}<extra></extra>")]
    if any(s["training_share"] is not None for s in segments):
        bars.insert(0, go.Bar(name="Training", x=ticks, y=[s["training_share"] or 0 for s in segments],
                              marker_color="#adb5bd", customdata=full,
                              hovertemplate="%{customdata}<br>training: %{y:.1%}<extra></extra>"))
    fig = go.Figure(bars)
    fig.update_layout(barmode="group")
    fig.update_yaxes(tickformat=".0%", title_text="Share of customers", rangemode="tozero")
    return base_layout(fig, height=300)


def confidence_figure(traffic: list[dict], training_share: float | None, threshold: float,
                      ratio: float, bucket_seconds: float = 300) -> go.Figure:
    """Share of low-confidence predictions per bucket, with the training share and the alert line."""
    points = [t for t in traffic if t["low_confidence_share"] is not None]
    if not points:
        return empty_figure(_NO_PREDICTIONS)
    fig = go.Figure(go.Scatter(
        x=_times(points, bucket_seconds / 2), y=[t["low_confidence_share"] for t in points], mode="lines+markers",
        name="Incoming",
        line={"color": "#6f42c1"}, customdata=[t["predictions"] for t in points],
        hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.1%} of %{customdata:,} predictions<extra></extra>"))
    fig.update_xaxes(range=_time_range(points, bucket_seconds))
    top = max(t["low_confidence_share"] for t in points)
    if training_share is not None:
        alert = ratio * max(training_share, 0.01)
        fig.add_shape(hline(training_share, {"color": "#6c757d", "dash": "dot", "width": 1}))
        fig.add_shape(hline(alert, {"color": "#dc3545", "dash": "dash", "width": 1}))
        fig.add_annotation(x=1, xref="paper", y=alert, text=f"alert ({ratio:g}× training)", showarrow=False,
                           xanchor="right", yanchor="bottom", font={"size": 11, "color": "#dc3545"})
        top = max(top, alert)
    fig.update_xaxes(title_text="Time (UTC)")
    fig.update_yaxes(tickformat=".0%", range=[0, min(1.0, top * 1.15 + 0.02)],
                     title_text=f"Confidence below {threshold:g}")
    fig.update_layout(showlegend=False)
    return base_layout(fig, height=300)


def drift_figure(features: list[dict], alert_psi: float, moderate: float, major: float) -> go.Figure:
    """PSI of each feature, incoming vs training customers, with the watch, alert and retrain lines."""
    rows = [f for f in features if f["psi"] is not None]
    if not rows:
        return empty_figure(_NO_PREDICTIONS)
    rows = sorted(rows, key=lambda r: r["psi"])
    top = max(0.3, max(r["psi"] for r in rows) * 1.15)
    fig = go.Figure(go.Bar(
        y=[feature_label(r["feature"]) for r in rows], x=[r["psi"] for r in rows], orientation="h",
        marker_color=[_BAND_COLOURS.get(r["band"], "#6c757d") for r in rows], text=[f"{r['psi']:.2f}" for r in rows],
        textposition="outside", customdata=[r["band"] for r in rows], cliponaxis=False,
        hovertemplate="%{y}<br>PSI %{x:.3f}: %{customdata}<extra></extra>"))
    for x, colour, dash in ((moderate, "#fd7e14", "dot"), (alert_psi, "#dc3545", "dash"), (major, "#dc3545", "solid")):
        fig.add_shape(vline(x, {"color": colour, "dash": dash, "width": 1}))
    fig.update_xaxes(range=[0, top], title_text="PSI, incoming vs training")
    fig.update_layout(showlegend=False)
    fig = base_layout(fig, height=320)
    fig.update_layout(margin={"t": 36, "r": 32})  # room for the mode bar above the top bar
    return fig
