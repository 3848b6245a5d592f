"""Diagnostics figures: metrics against k, the per-customer silhouette plot, the metrics table and the advice."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.fitting.criteria import BY_NAME, CRITERIA

from ..theme import segment_colour
from .common import base_layout, empty_figure, plain, vline

__all__ = ["METRICS", "metrics_figure", "silhouette_figure", "metrics_table", "recommendation_text"]

# (key in KResult, title, how to read it, the vote it feeds in SweepResult.votes), from the one registry
# of criteria (core.fitting.criteria): a new criterion there is a new panel and a new table column here.
METRICS = [(c.name, c.label, c.hint, c.vote) for c in CRITERIA if not c.optional]
OPTIONAL_METRICS = [(c.name, c.label, c.hint, c.vote) for c in CRITERIA if c.optional]
# Completes an odd grid (no blank slot): a k whose smallest segment is tiny is rarely actionable.
SMALLEST_METRIC = ("smallest_share", "Smallest segment (share)", "very small is a warning", None)
_LINE = "#495057"
_RECOMMENDED = "#E69F00"
_CURRENT = "#D55E00"


def metrics_figure(sweep: dict | None, current_k: int | None = None, *, height: int = 520,
                   empty_message: str = "No sweep yet: choose a range of k and press Run.") -> go.Figure:
    """Small charts of the sweep's metrics (and stability, when measured) against k; recommended k as a star,
    current k as a ring."""
    results = (sweep or {}).get("results") or []
    if not results:
        return empty_figure(empty_message, height=height)
    ks = [r["k"] for r in results]
    rec = sweep.get("recommended_k")
    votes = sweep.get("votes") or {}
    # Criteria measured only on request are drawn when every k has them.
    metrics = METRICS + [m for m in OPTIONAL_METRICS if all(r.get(m[0]) is not None for r in results)]
    if len(metrics) % 2 and all(r.get("sizes") for r in results):
        metrics.append(SMALLEST_METRIC)
    results = [dict(r, smallest_share=min(r["sizes"]) / max(sum(r["sizes"]), 1) if r.get("sizes") else None)
               for r in results]
    cols = 2 if len(metrics) <= 4 else 3
    # Two short lines per title so that the titles fit side by side on a phone too.
    titles = [f"<b>{title}</b><br><span style='font-size:11px'>{hint}"
              + (f"; best k={votes[vote]}" if vote in votes else "") + "</span>"
              for _key, title, hint, vote in metrics]
    fig = make_subplots(rows=2, cols=cols, subplot_titles=titles, horizontal_spacing=0.12 if cols == 2 else 0.08,
                        vertical_spacing=0.2)
    for i, (key, title, _hint, _vote) in enumerate(metrics):
        row, col = divmod(i, cols)
        row, col = row + 1, col + 1
        values = [r[key] for r in results]
        fmt = ".1%" if key == "smallest_share" else ",.3f"
        threshold = BY_NAME[key].threshold if key in BY_NAME else None
        fig.add_trace(go.Scatter(x=ks, y=values, mode="lines+markers", name=title, showlegend=False,
                                 line={"color": _LINE, "width": 2}, marker={"size": 6, "color": _LINE},
                                 hovertemplate=f"k=%{{x}}<br>{title} %{{y:{fmt}}}<extra></extra>"), row=row, col=col)
        if rec in ks:
            fig.add_trace(go.Scatter(x=[rec], y=[values[ks.index(rec)]], mode="markers",
                                     name=f"Recommended k={rec}", legendgroup="recommended", showlegend=i == 0,
                                     marker={"symbol": "star", "size": 18, "color": _RECOMMENDED,
                                             "line": {"color": "#212529", "width": 1}},
                                     hovertemplate=f"Recommended k={rec}<br>{title} %{{y:{fmt}}}<extra></extra>"),
                          row=row, col=col)
        if current_k in ks:
            fig.add_trace(go.Scatter(x=[current_k], y=[values[ks.index(current_k)]], mode="markers",
                                     name=f"Current model k={current_k}", legendgroup="current", showlegend=i == 0,
                                     marker={"symbol": "circle-open", "size": 20, "color": _CURRENT,
                                             "line": {"width": 3}},
                                     hovertemplate=(f"Current model k={current_k}<br>{title} "
                                                    f"%{{y:{fmt}}}<extra></extra>")),
                          row=row, col=col)
        if threshold is not None:  # e.g. prediction strength's 0.8: the largest k above the line wins
            fig.add_hline(y=threshold, line={"color": "#adb5bd", "dash": "dot", "width": 1}, row=row, col=col)
        fig.update_xaxes(range=[min(ks) - 0.5, max(ks) + 0.5], dtick=1, row=row, col=col,
                         title_text="k (number of segments)" if row == 2 else None)
        if key == "smallest_share":
            fig.update_yaxes(tickformat=".0%", row=row, col=col)
    base_layout(fig, height=height)
    fig.update_annotations(font={"size": 12})
    fig.update_layout(margin={"t": 64, "l": 56}, legend={"orientation": "h", "y": -0.14, "x": 0})
    return fig


def _thin(sorted_values: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced ranks of a sorted array: the knife's outline survives, the point count does not."""
    n = len(sorted_values)
    if n <= keep:
        ranks = np.arange(n)
    else:
        ranks = np.unique(np.linspace(0, n - 1, max(keep, 2)).round().astype(int))
    return ranks, sorted_values[ranks]


def silhouette_figure(values: np.ndarray, labels: np.ndarray, names: list[str], *, max_points: int = 4000,
                      height: int = 480, note: str | None = None) -> go.Figure:
    """The classic silhouette plot: per segment, customers' silhouettes sorted, filled in the segment colour."""
    values = np.asarray(values, dtype=float)
    labels = np.asarray(labels)
    if len(values) == 0:
        return empty_figure("No silhouette values for this model.", height=height)
    n = len(values)
    gap = max(int(n * 0.02), 2)
    fig = go.Figure()
    y0, tickvals, ticktext = 0, [], []
    for seg, name in enumerate(names):
        seg_values = np.sort(values[labels == seg])[::-1]
        if len(seg_values) == 0:
            continue
        # Thinned per segment in proportion to its size so heights stay true to segment sizes.
        ranks, xs = _thin(seg_values, max(2, int(round(max_points * len(seg_values) / n))))
        mean = float(seg_values.mean())
        fig.add_trace(go.Scatter(
            x=xs, y=y0 + ranks, mode="lines", fill="tozerox", name=plain(name),
            line={"color": segment_colour(seg), "width": 0.8}, fillcolor=segment_colour(seg), opacity=0.85,
            hovertemplate=(f"<b>{seg} · %{{fullData.name}}</b><br>{len(seg_values):,} customers, "
                           f"mean {mean:.2f}<br>silhouette %{{x:.2f}}<extra></extra>")))
        tickvals.append(y0 + len(seg_values) / 2)
        ticktext.append(f"{seg} · {plain(name)}")
        y0 += len(seg_values) + gap
    overall = float(values.mean())
    fig.add_shape(vline(overall, {"color": "#212529", "dash": "dash", "width": 1.5}))
    fig.add_annotation(x=overall, y=0, yref="paper", text=f"mean {overall:.2f}", showarrow=False,
                       xanchor="left", yanchor="bottom")
    fig.add_shape(vline(0, {"color": "#adb5bd", "width": 1}))
    low = min(-0.1, float(values.min()) - 0.05)
    high = min(1.0, max(0.5, float(values.max()) + 0.1))
    fig.update_xaxes(title_text=note or "Silhouette of each customer", range=[low, high])
    fig.update_yaxes(tickvals=tickvals, ticktext=ticktext, autorange="reversed", showgrid=False,
                     title_text=None, zeroline=False)
    base_layout(fig, height=height)
    fig.update_layout(showlegend=False, margin={"l": 8, "t": 28})
    fig.update_yaxes(automargin=True)
    return fig


def _fmt(value: float, digits: int) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def metrics_table(sweep: dict | None, current_k: int | None = None) -> pd.DataFrame:
    """One row per k: every criterion of the registry (formatted), the smallest segment's share and marks."""
    results = (sweep or {}).get("results") or []
    rec = (sweep or {}).get("recommended_k")
    rows = []
    for r in results:
        sizes = r.get("sizes") or [0]
        marks = [m for m, on in (("recommended", r["k"] == rec), ("current model", r["k"] == current_k)) if on]
        row = {"k": str(r["k"])}
        row.update({c.label: _fmt(r.get(c.name), c.digits) for c in CRITERIA})
        row.update({"Smallest segment": f"{min(sizes) / max(sum(sizes), 1):.1%}", "": " · ".join(marks)})
        rows.append(row)
    return pd.DataFrame(rows, columns=["k", *(c.label for c in CRITERIA), "Smallest segment", ""])


def recommendation_text(sweep: dict | None, current_k: int | None = None) -> list[str]:
    """The recommendation in plain words: why, how it compares with the current k, how silhouette was computed."""
    if not sweep or not sweep.get("results"):
        return ["No sweep yet: choose a range of k and press Run."]
    results = {r["k"]: r for r in sweep["results"]}
    ks = sorted(results)
    rec = sweep["recommended_k"]
    # core's reason ends with its own remark on the current k; the page says that part itself, at more length.
    reason = str(sweep.get("reason", "")).split(" The current k=")[0]
    out = [f"Recommended {reason}" if reason.startswith(f"k={rec}:") else f"Recommended: k={rec}. {reason}".strip()]
    votes = sweep.get("votes") or {}
    agree = sum(1 for k in votes.values() if k == rec)
    if current_k is None:
        pass
    elif current_k not in results:
        out.append(f"The current model's k={current_k} is outside the range swept (k={ks[0]} to {ks[-1]}), "
                   "so it is not marked; widen the range to compare it.")
    elif current_k == rec:
        out.append(f"The evidence agrees with the current business choice, k={current_k}.")
    else:
        cur, best = results[current_k], results[rec]
        out.append(
            f"k={current_k} is the current business choice: it is the segmentation the team knows and uses. "
            f"The evidence on this data points elsewhere: {agree} of {len(votes)} criteria favour k={rec}, "
            f"whose silhouette is {best['silhouette']:.3f} against {cur['silhouette']:.3f} at k={current_k}. "
            f"Keeping k={current_k} is reasonable when its segments are stable and lead to different actions; "
            f"otherwise consider retraining with k={rec}.")
    method = str(sweep.get("silhouette_method", ""))
    n = int(sweep.get("n_customers", 0))
    if method.startswith("exact"):
        out.append(f"Silhouette was computed exactly, on all {n:,} customers.")
    else:
        out.append(f"Silhouette was estimated on a random sample ({method.replace('sampled ', '').strip('()')}) "
                   f"of the {n:,} customers, to bound time and memory; the other three criteria use every customer.")
    return out
