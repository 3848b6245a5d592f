"""Figures of the algorithm comparison (/diagnostics "Algorithms"): the criteria table, agreement heatmap, notes."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .common import base_layout

__all__ = ["comparison_table", "agreement_figure", "comparison_notes", "can_chart_agreement"]


def _num(value, digits: int):
    return None if value is None else round(float(value), digits)


def comparison_table(result: dict) -> pd.DataFrame:
    """One row per algorithm that found segments: its criteria, sizes and Unassigned share."""
    rows = []
    for r in result["algorithms"]:
        if "error" in r:
            continue
        rows.append({
            "Algorithm": r["title"] + (" *" if r.get("note") else ""),
            "Silhouette": _num(r.get("silhouette"), 3),
            "Davies-Bouldin": _num(r.get("davies_bouldin"), 2),
            "Calinski-Harabasz": _num(r.get("calinski_harabasz"), 0),
            "BIC": _num(r.get("bic"), 0) if r.get("bic") is not None else "—",
            "Stability (ARI)": _num(r.get("stability"), 2) if r.get("stability") is not None else "—",
            "Prediction strength": (_num(r.get("prediction_strength"), 2)
                                    if r.get("prediction_strength") is not None else "—"),
            "Segments": r["segments"],
            "Unassigned": f"{r['unassigned_share']:.0%}",
            "Sizes": " / ".join(f"{s:,}" for s in r["sizes"]),
        })
    return pd.DataFrame(rows)


def comparison_notes(result: dict) -> list[str]:
    """One line per algorithm that found nothing or left many unassigned, and per footnote."""
    lines = []
    for r in result["algorithms"]:
        if "error" in r:
            lines.append(f"{r['title']}: {r['error']}")
        elif r.get("unassigned_share", 0) >= 0.25:
            lines.append(f"{r['title']}: {r['unassigned_share']:.0%} of customers are in no dense group "
                         f"(shown as Unassigned).")
    noted = [r for r in result["algorithms"] if r.get("note")]
    if noted:
        lines.append("* " + "; ".join(f"{r['title']}: {r['note']}" for r in noted))
    return lines


def can_chart_agreement(result: dict) -> bool:
    """Whether there are two algorithms to compare (else the page says so in one line, no chart)."""
    return len(result["agreement"]["algorithms"]) >= 2


def agreement_figure(result: dict, height: int = 380) -> go.Figure:
    """Pairwise adjusted Rand of the algorithms' partitions of the same customers, as an annotated heatmap."""
    titles = {r["algorithm"]: r["title"] for r in result["algorithms"]}
    names = [titles[a] for a in result["agreement"]["algorithms"]]
    ari = result["agreement"]["ari"]
    fig = go.Figure(go.Heatmap(
        z=ari, x=names, y=names, zmin=-0.1, zmax=1, colorscale="Blues",
        text=[[f"{v:.2f}" for v in row] for row in ari], texttemplate="%{text}",
        hovertemplate="%{y} vs %{x}: adjusted Rand %{z:.3f}<extra></extra>",
        colorbar={"title": "ARI"}))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(xaxis_title=None, yaxis_title=None)
    return base_layout(fig, height=height)
