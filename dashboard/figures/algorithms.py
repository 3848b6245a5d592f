"""Figures of the algorithm comparison (/diagnostics "Algorithms"): the criteria table, agreement heatmap, notes."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .common import base_layout

__all__ = ["comparison_table", "agreement_figure", "comparison_notes", "can_chart_agreement", "version_note"]


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


def version_note(algorithm: dict | None, customers: int) -> str:
    """One sentence on the served version's algorithm: what it is, its key facts, and what was sampled."""
    algorithm = algorithm or {"name": "kmeans", "title": "k-means"}
    title = algorithm.get("title") or algorithm["name"]
    if algorithm["name"] == "kmeans":
        return f"This version is {title}."
    info = algorithm.get("info") or {}
    facts = []
    if info.get("bic") is not None:
        facts.append(f"BIC {info['bic']:,.0f}, AIC {info['aic']:,.0f}")
    if info.get("gamma") is not None:
        facts.append(f"categorical weight gamma {info['gamma']:.3g} ({info.get('gamma_rule', 'rule not recorded')})")
    if info.get("pac") is not None:
        facts.append(f"PAC {info['pac']:.3f} at k={info.get('chosen_k', '?')}")
    if algorithm.get("unassigned"):
        facts.append(f"{info.get('noise_share', 0):.0%} of customers Unassigned")
    fitted, assigned = info.get("fitted_on"), info.get("assigned")
    if fitted is not None and fitted < customers:
        facts.append(f"fitted on a seeded sample of {fitted:,} of {customers:,} customers; "
                     f"the other {assigned if assigned is not None else customers - fitted:,} were placed by the fitted "
                     "model (HDBSCAN: nearest core point; consensus: nearest centre)")
    extra = [c for c in algorithm.get("categorical") or []]
    if extra:
        facts.append("categorical features " + ", ".join(extra))
    return f"This version is {title}" + (": " + "; ".join(facts) if facts else "") + "."
