"""Layout defaults shared by every figure."""
from __future__ import annotations

import plotly.graph_objects as go

from ..theme import FONT_FAMILY

__all__ = ["base_layout", "empty_figure"]


def base_layout(fig: go.Figure, *, title: str | None = None, height: int = 360) -> go.Figure:
    """Apply the house layout: white template, compact margins, readable fonts."""
    fig.update_layout(
        template="plotly_white", height=height, font={"family": FONT_FAMILY, "size": 12},
        margin={"l": 48, "r": 16, "t": 48 if title else 16, "b": 40},
        title={"text": title, "x": 0.01, "xanchor": "left"} if title else None,
        legend={"orientation": "h", "y": -0.18}, hoverlabel={"font": {"family": FONT_FAMILY}},
    )
    return fig


def empty_figure(message: str, height: int = 300) -> go.Figure:
    """A blank chart that says why it is blank (never a silently empty chart)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": "#6c757d"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, height=height)
