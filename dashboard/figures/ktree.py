"""The k-transition tree (as R's clustree draws it) and the profile of one of its nodes."""
from __future__ import annotations

import math

import plotly.graph_objects as go

from ..theme import segment_colour
from .common import base_layout, empty_figure, feature_label, plain

__all__ = ["ktree_figure", "node_positions", "node_profile_rows"]

_MAX_EDGE_WIDTH = 14.0
_MIN_EDGE_SHARE = 0.05  # edges carrying less of the child's customers are not drawn (clustree's in_prop filter)


def node_positions(tree: dict) -> dict[str, tuple[float, int]]:
    """x (0..1) and level of every node: the first level in cluster order, each next one under its parents."""
    levels = tree.get("levels") or []
    nodes = tree.get("nodes") or []
    edges = tree.get("edges") or []
    pos: dict[str, tuple[float, int]] = {}
    for i, k in enumerate(levels):
        members = [n for n in nodes if n["k"] == k]
        if i == 0:
            order = sorted(members, key=lambda n: n["cluster"])
        else:
            def centre(node):
                incoming = [(pos[e["source"]][0], e["n"]) for e in edges if e["target"] == node["id"] and e["source"] in pos]
                total = sum(w for _x, w in incoming)
                return (sum(x * w for x, w in incoming) / total if total else 0.5, node["cluster"])
            order = sorted(members, key=centre)
        for j, node in enumerate(order):
            pos[node["id"]] = ((j + 1) / (len(order) + 1), k)
    return pos


def ktree_figure(tree: dict | None, *, current_k: int | None = None, height: int = 560) -> go.Figure:
    """Nodes = clusters for each k (size ~ customers), edges sized by customers moving, splits labelled."""
    if not tree or not tree.get("nodes"):
        return empty_figure("No k-transition tree for this model.", height=height)
    pos = node_positions(tree)
    edges = [e for e in tree["edges"] if e["in_share"] >= _MIN_EDGE_SHARE]
    top = max((e["n"] for e in edges), default=1)
    fig = go.Figure()
    for e in edges:
        (x0, y0), (x1, y1) = pos[e["source"]], pos[e["target"]]
        fig.add_trace(go.Scatter(
            x=[x0, x1], y=[y0, y1], mode="lines", hoverinfo="skip", showlegend=False,
            line={"color": "#495057", "width": max(0.6, _MAX_EDGE_WIDTH * e["n"] / top)},
            opacity=0.25 + 0.6 * e["in_share"]))
    nodes = tree["nodes"]
    biggest = max(n["size"] for n in nodes) or 1
    fig.add_trace(go.Scatter(
        x=[pos[n["id"]][0] for n in nodes], y=[n["k"] for n in nodes], mode="markers+text",
        text=[str(n["cluster"]) for n in nodes], textfont={"color": "#ffffff", "size": 10},
        customdata=[n["id"] for n in nodes], showlegend=False, name="clusters",
        marker={"size": [10 + 26 * math.sqrt(n["size"] / biggest) for n in nodes],
                "color": [segment_colour(n["cluster"]) for n in nodes],
                "line": {"color": ["#212529" if n["k"] == current_k else "#ffffff" for n in nodes],
                         "width": [3 if n["k"] == current_k else 1 for n in nodes]}},
        hovertext=[f"k={n['k']} · cluster {n['cluster']}: {n['size']:,} customers ({n['share']:.0%})"
                   + (f"<br>splits on {plain(n['split']['label'])}" if n.get("split") else "")
                   + "<br>click for its profile" for n in nodes],
        hoverinfo="text"))
    for n in nodes:
        if n.get("split"):
            x, k = pos[n["id"]]
            fig.add_annotation(x=x, y=k + 0.32, text=plain(n["split"]["label"]), showarrow=False,
                               font={"size": 10, "color": "#495057"}, bgcolor="rgba(255,255,255,0.8)")
    levels = tree["levels"]
    fig.update_yaxes(autorange="reversed", tickvals=levels, ticktext=[f"k={k}" for k in levels], showgrid=False,
                     zeroline=False, title_text=None)
    fig.update_xaxes(visible=False, range=[0, 1])
    base_layout(fig, height=height)
    fig.update_layout(margin={"l": 48, "r": 8, "t": 16, "b": 8}, hovermode="closest")
    return fig


def node_profile_rows(tree: dict | None, node_id: str | None) -> tuple[str, list[dict]]:
    """Heading and one row per feature (mean in feature units, difference from all customers in sd) of a node."""
    node = next((n for n in (tree or {}).get("nodes", []) if n["id"] == node_id), None)
    if node is None:
        return "Click a cluster in the tree to see its profile.", []
    heading = f"k={node['k']} · cluster {node['cluster']}: {node['size']:,} customers ({node['share']:.0%})"
    if node.get("split"):
        heading += f"; at k={node['k'] + 1} it splits mainly on {node['split']['label']}"
    rows = sorted(({"Feature": feature_label(f), "Mean": "n/a" if v is None else f"{v:,.1f}",
                    "vs all customers (sd)": "n/a" if node["z"].get(f) is None else f"{node['z'][f]:+.2f}",
                    "_order": -abs(node["z"].get(f) or 0.0)} for f, v in node["means"].items()),
                  key=lambda r: r["_order"])
    for r in rows:
        r.pop("_order")
    return heading, rows
