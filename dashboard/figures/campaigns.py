"""Campaign planner figures: the expected profit curve, the calibration check, the per-segment plan table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.reading.schema import FEATURE_LABELS

from .common import base_layout, empty_figure, vline

__all__ = ["profit_curve_figure", "calibration_figure", "segment_plan_table", "results_table",
           "MAX_CURVE_POINTS"]

MAX_CURVE_POINTS = 2000  # a million customers still draw as a light line


def _thin(curve: pd.DataFrame, keep: list[int]) -> pd.DataFrame:
    n = len(curve)
    if n <= MAX_CURVE_POINTS:
        return curve
    pos = np.unique(np.concatenate([np.linspace(0, n - 1, MAX_CURVE_POINTS).astype(int),
                                    [k - 1 for k in keep if 0 < k <= n]]))
    return curve.iloc[pos]


def profit_curve_figure(curve: pd.DataFrame, best_n: int, break_even_n: int, chosen_n: int,
                        *, height: int = 340) -> go.Figure:
    """Cumulative expected profit as customers are added in order of expected profit, with the best number,
    the break-even point and the chosen audience marked."""
    if not len(curve):
        return empty_figure("No customers to plan for.", height)
    shown = _thin(curve, [best_n, break_even_n, chosen_n])
    fig = go.Figure(go.Scatter(
        x=shown["contacts"], y=shown["cumulative_profit"], mode="lines", name="Expected profit",
        line={"color": "#2C7FB8", "width": 2},
        hovertemplate="%{x:,} contacts<br>expected profit %{y:,.0f}<extra></extra>"))
    shapes, notes = [], []
    marks = [(best_n, "best = chosen" if chosen_n == best_n else "best", "#1A9850", "solid"),
             (break_even_n, "break-even", "#D73027", "dot")]
    if chosen_n != best_n:
        marks.append((chosen_n, "chosen", "#444444", "dash"))
    for i, (n, label, colour, dash) in enumerate(marks):
        if n > 0:
            shapes.append(vline(n, {"color": colour, "width": 1.5, "dash": dash}))
            notes.append({"x": n, "y": 1, "xref": "x", "yref": "paper", "text": f"{label} {n:,}", "showarrow": False,
                          "yanchor": "bottom", "yshift": 14 * (i == 2), "font": {"size": 11, "color": colour}})
    fig.update_layout(shapes=shapes, annotations=notes, showlegend=False)
    fig.update_xaxes(title="Customers contacted (best first)", rangemode="tozero")
    fig.update_yaxes(title="Cumulative expected profit", zeroline=True, zerolinecolor="#999")
    base_layout(fig, height=height)
    fig.update_layout(margin={"t": 44})
    return fig


def calibration_figure(calibration: pd.DataFrame, *, height: int = 300) -> go.Figure:
    """Predicted against observed response by propensity decile (out-of-fold), with 95 % intervals."""
    if not len(calibration):
        return empty_figure("No calibration to show.", height)
    top = float(max(calibration["high"].max(), calibration["predicted"].max(), 0.05))
    fig = go.Figure([
        go.Scatter(x=[0, top], y=[0, top], mode="lines", line={"color": "#bbb", "dash": "dot"}, hoverinfo="skip",
                   name="perfect"),
        go.Scatter(x=calibration["predicted"], y=calibration["observed"], mode="markers+lines", name="deciles",
                   marker={"color": "#2C7FB8", "size": 8}, line={"color": "#2C7FB8", "width": 1},
                   error_y={"type": "data", "symmetric": False,
                            "array": calibration["high"] - calibration["observed"],
                            "arrayminus": calibration["observed"] - calibration["low"]},
                   customdata=calibration[["bin", "n"]].to_numpy(),
                   hovertemplate="decile %{customdata[0]} (%{customdata[1]:,} customers)<br>"
                                 "predicted %{x:.1%}<br>observed %{y:.1%}<extra></extra>"),
    ])
    fig.update_xaxes(title="Predicted response (out-of-fold)", tickformat=".0%", range=[0, top * 1.05])
    fig.update_yaxes(title=FEATURE_LABELS.get("Response", "Response"), tickformat=".0%", range=[0, top * 1.05])
    base_layout(fig, height=height)
    fig.update_layout(showlegend=False)
    return fig


def segment_plan_table(segments: pd.DataFrame, response: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The plan per segment in words: predicted response, target/holdout and expected figures with intervals."""
    rows = []
    for s, row in segments.iterrows():
        r = response.loc[s] if s in response.index else None
        rows.append({
            "Segment": f"{s} · {names[s] if s < len(names) else ''}",
            "Predicted response": "–" if r is None else f"{r['expected_rate']:.1%} ({r['low']:.1%}–{r['high']:.1%})",
            "Target": f"{int(row['n_targeted']):,}", "Holdout": f"{int(row['n_holdout']):,}",
            "Responders": f"{row['expected_responders']:,.1f} ({row['responders_low']:,.1f}–{row['responders_high']:,.1f})",
            "Cost": f"{row['cost']:,.0f}",
            "Revenue": f"{row['expected_revenue']:,.0f} ({row['revenue_low']:,.0f}–{row['revenue_high']:,.0f})",
            "Profit": f"{row['expected_profit']:,.0f} ({row['profit_low']:,.0f}–{row['profit_high']:,.0f})",
        })
    return pd.DataFrame(rows)


def results_table(results: dict, names: list[str]) -> pd.DataFrame:
    """Measured response per segment: target vs holdout and the uplift with its 95 % interval."""
    def pct(v):
        return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:+.1%}"

    def rate(v):
        return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.1%}"

    rows = []
    for item in [dict(results["overall"], segment="all")] + list(results.get("segments", [])):
        s = item["segment"]
        label = "All" if s == "all" else f"{s} · {names[s] if isinstance(s, int) and s < len(names) else ''}"
        rows.append({"Segment": label, "Target": f"{item['n_target']:,} · {rate(item['target_rate'])}",
                     "Holdout": f"{item['n_holdout']:,} · {rate(item['holdout_rate'])}",
                     "Uplift (95% CI)": f"{pct(item['uplift'])} ({pct(item['uplift_low'])} to {pct(item['uplift_high'])})"})
    return pd.DataFrame(rows)

