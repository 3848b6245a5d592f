"""Customer value figures: CLV per segment with intervals, probability alive, the calibration check."""
from __future__ import annotations

import plotly.graph_objects as go

from ..theme import segment_colour
from .common import base_layout, empty_figure, plain, vline

__all__ = ["segment_value_figure", "p_alive_figure", "frequency_check_figure", "weekly_check_figure"]

_PREDICTED, _ACTUAL = "#1f6f8b", "#C8553D"


def _label(seg: dict) -> str:
    """'i · name' with the (user-editable) name as plain text: Plotly would render markup in it."""
    return f"{seg['segment']} · {plain(seg['name'])}" if seg["segment"] >= 0 else plain(seg["name"])


def segment_value_figure(segments: list[dict], horizon_text: str = "") -> go.Figure:
    """Total CLV per segment (ranked), with its 95% bootstrap interval as error bars."""
    if not segments:
        return empty_figure("No segments: the value is shown for all customers above.")
    rows = list(reversed(segments))  # the most valuable on top
    has = all(s.get("clv_low") is not None and s.get("clv_high") is not None for s in rows)
    fig = go.Figure(go.Bar(
        x=[s["clv_total"] for s in rows], y=[_label(s) for s in rows], orientation="h",
        marker_color=[segment_colour(s["segment"]) if s["segment"] >= 0 else "#adb5bd" for s in rows],
        error_x=dict(type="data", symmetric=False, array=[s["clv_high"] - s["clv_total"] for s in rows],
                     arrayminus=[s["clv_total"] - s["clv_low"] for s in rows], color="#343a40") if has else None,
        text=[f"{s['share']:.0%}" for s in rows], textposition="inside", insidetextanchor="start",
        customdata=[[s["customers"], s["clv_mean"], s["p_alive_mean"]] for s in rows],
        hovertemplate="%{y}<br>CLV %{x:,.0f} (%{text} of the total)<br>%{customdata[0]:,} customers, mean "
                      "%{customdata[1]:,.2f}<br>mean probability alive %{customdata[2]:.2f}<extra></extra>"))
    fig.update_xaxes(title=f"Total CLV{horizon_text}", rangemode="tozero")
    fig.update_yaxes(automargin=True)
    return base_layout(fig, height=max(260, 60 + 46 * len(rows)))


def p_alive_figure(segments: list[dict]) -> go.Figure:
    """Share of each segment's customers per tenth of probability alive (a heatmap, rows = segments)."""
    if not segments:
        return empty_figure("No segments to compare.")
    labels = [f"{i / 10:.1f}–{(i + 1) / 10:.1f}" for i in range(10)]
    z, text = [], []
    for s in segments:
        hist = s["p_alive_histogram"]
        total = max(sum(hist), 1)
        z.append([v / total for v in hist])
        text.append([f"{v:,}" for v in hist])
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=[_label(s) for s in segments], colorscale="Blues", zmin=0,
                               text=text, texttemplate="%{z:.0%}", colorbar=dict(title="share", tickformat=".0%"),
                               hovertemplate="%{y}<br>probability alive %{x}: %{text} customers "
                                             "(%{z:.0%})<extra></extra>"))
    fig.update_xaxes(title="Probability alive")
    fig.update_yaxes(autorange="reversed", automargin=True)
    return base_layout(fig, height=max(260, 80 + 40 * len(segments)))


def frequency_check_figure(holdout: dict | None) -> go.Figure:
    """Mean repeat purchases in the holdout per calibration frequency: predicted against actual."""
    if not holdout:
        return empty_figure("No calibration check: choose a calibration end and recompute.")
    rows = holdout["by_frequency"]
    x = [r["frequency"] for r in rows]
    fig = go.Figure([
        go.Bar(x=x, y=[r["predicted"] for r in rows], name="predicted", marker_color=_PREDICTED,
               customdata=[r["customers"] for r in rows],
               hovertemplate="x = %{x}: predicted %{y:.2f} (%{customdata:,} customers)<extra></extra>"),
        go.Bar(x=x, y=[r["actual"] for r in rows], name="actual", marker_color=_ACTUAL,
               hovertemplate="x = %{x}: actual %{y:.2f}<extra></extra>")])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.1))
    fig.update_xaxes(title="Repeat purchases in the calibration period", type="category")
    fig.update_yaxes(title="Mean repeat purchases in the holdout")
    return base_layout(fig)


def weekly_check_figure(holdout: dict | None) -> go.Figure:
    """Cumulative repeat purchases per week: predicted from each customer's first purchase against actual."""
    if not holdout:
        return empty_figure("No calibration check: choose a calibration end and recompute.")
    weeks = holdout["weekly"]
    x = [w["week"] for w in weeks]
    fig = go.Figure([
        go.Scatter(x=x, y=[w["actual"] for w in weeks], name="actual", mode="lines",
                   line=dict(color=_ACTUAL, width=2), hovertemplate="week %{x}: actual %{y:,.0f}<extra></extra>"),
        go.Scatter(x=x, y=[w["predicted"] for w in weeks], name="predicted", mode="lines",
                   line=dict(color=_PREDICTED, width=2, dash="dash"),
                   hovertemplate="week %{x}: predicted %{y:,.0f}<extra></extra>")])
    end = holdout.get("calibration_weeks")
    if end:
        fig.add_shape(vline(end, {"dash": "dot", "color": "#6c757d", "width": 1}))
        fig.add_annotation(x=end, y=1.0, yref="paper", text="calibration end", showarrow=False, yanchor="bottom")
    fig.update_layout(legend=dict(orientation="h", y=1.12))
    fig.update_xaxes(title="Week since the log's first day")
    fig.update_yaxes(title="Cumulative repeat purchases", rangemode="tozero")
    return base_layout(fig)
