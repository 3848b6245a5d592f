"""Layout defaults shared by every figure."""
from __future__ import annotations

import plotly.graph_objects as go

from core.reading.schema import FEATURE_LABELS

from ..theme import FONT_FAMILY, segment_colour

__all__ = ["base_layout", "empty_figure", "vline", "hline", "vrect", "plain", "wrap_label", "feature_label", "rgba",
           "numbered", "column_sankey"]


def plain(text) -> str:
    """User-typed text made safe for any Plotly string: shown literally, never as markup or a template.

    Plotly renders a subset of HTML in titles, ticks, legends, hover, annotations and Sankey labels, and
    decodes entities when it draws them, so ``<a href=..>`` escaped here is shown as typed, not as a link.
    ``%{`` is escaped too, so a name cannot inject a hovertemplate field.
    """
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("%{", "&#37;{"))


def wrap_label(text, width: int = 18) -> str:
    """``text`` as plain text (see :func:`plain`) broken onto lines of about ``width`` characters (Plotly's <br>)."""
    lines, line = [], ""
    for word in str(text).split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "<br>".join(plain(part) for part in lines)


def feature_label(column) -> str:
    """Readable name of a column (core.reading.schema.FEATURE_LABELS, the one source); unknown columns in words."""
    return FEATURE_LABELS.get(column, str(column).replace("_", " "))


def base_layout(fig: go.Figure, *, title: str | None = None, height: int = 360) -> go.Figure:
    """Apply the house layout: compact margins, readable fonts (the template is the package default)."""
    fig.update_layout(
        height=height, font={"family": FONT_FAMILY, "size": 12},
        margin={"l": 48, "r": 16, "t": 48 if title else 16, "b": 40},
        title={"text": title, "x": 0.01, "xanchor": "left"} if title else None,
        # The legend sits at the bottom of the whole figure (container), below the x axis title whatever
        # the figure's height: a paper-relative offset landed on the axis title in short charts.
        legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0, "xanchor": "left"},
        hoverlabel={"font": {"family": FONT_FAMILY}},
        # Long tick labels (segment names) push the plot area over instead of being cut off.
        xaxis={"automargin": True}, yaxis={"automargin": True},
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


# Plotly's add_vline/add_hline/add_vrect work out which axes a shape spans, which costs ~10 ms
# a call; these plain shape specs (for fig.add_shape) do the same for single-axis figures.
def vline(x: float, line: dict, layer: str = "above", xref: str = "x") -> dict:
    """A vertical line across the whole plot height at ``x``."""
    return {"type": "line", "xref": xref, "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": line, "layer": layer}


def hline(y: float, line: dict, layer: str = "above", yref: str = "y") -> dict:
    """A horizontal line across the whole plot width at ``y``."""
    return {"type": "line", "xref": "paper", "yref": yref, "x0": 0, "x1": 1, "y0": y, "y1": y,
            "line": line, "layer": layer}


def vrect(x0: float, x1: float, fillcolor: str, opacity: float = 1.0, layer: str = "below") -> dict:
    """A band across the whole plot height between ``x0`` and ``x1``."""
    return {"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1,
            "fillcolor": fillcolor, "opacity": opacity, "line": {"width": 0}, "layer": layer}


def rgba(hex_colour: str, alpha: float) -> str:
    """``#rrggbb`` with an opacity, as Plotly's ``rgba(r,g,b,a)``."""
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def numbered(i: int, names: list[str]) -> str:
    """'i · name' with the user's name as plain text (Plotly would render markup in it)."""
    return f"{i} · {plain(names[i])}" if i < len(names) else f"Segment {i}"



def column_sankey(columns: list[str], links, names: list[str], k: int, *, new_hover: str, segment_hover: str,
                  height: int) -> go.Figure:
    """Customers moving between segments from one column (a snapshot) to the next, and newcomers.

    Parameters
    ----------
    columns : list of str
        The snapshots drawn, left to right; each is also its column's heading.
    links : iterable of (from column, from segment or None for newcomers, to column, to segment, customers)
    names : list of str
        Segment names (the legend under the chart).
    k : int
        Number of segments (rows).
    new_hover, segment_hover : str
        Hover text of a newcomers' node (``{column}``) and of a segment's (``{segment}``, ``{column}``).
    height : int
    """
    index: dict = {}
    labels, hover, colours, xs, ys = [], [], [], [], []

    def node(column: str, seg) -> int:
        key = (column, seg)
        if key not in index:
            index[key] = len(labels)
            col = columns.index(column)
            new = seg is None
            hover.append(new_hover.format(column=column) if new
                         else segment_hover.format(segment=numbered(seg, names), column=column))
            labels.append("new" if new else str(seg))
            colours.append("#ced4da" if new else segment_colour(seg))
            # Fixed positions keep snapshots in columns and each segment in its own row.
            xs.append(0.01 + 0.98 * col / max(len(columns) - 1, 1) - (0.05 if new else 0.0))
            ys.append(0.97 if new else 0.02 + 0.82 * seg / max(k - 1, 1))
        return index[key]
    src, dst, val, link_colours, shown = [], [], [], [], set()
    for from_column, source, to_column, target, customers in links:
        src.append(node(from_column, source))
        dst.append(node(to_column, target))
        val.append(customers)
        link_colours.append("rgba(173,181,189,0.35)" if source is None else rgba(segment_colour(source), 0.35))
        shown.update(s for s in (source, target) if s is not None)
    traces = [go.Sankey(
        arrangement="fixed", textfont={"size": 11, "color": "#212529"},
        node={"label": labels, "customdata": hover, "color": colours,
              "x": [min(max(x, 0.001), 0.999) for x in xs], "y": [min(max(y, 0.001), 0.999) for y in ys],
              "pad": 6, "thickness": 14, "hovertemplate": "%{customdata}<br>%{value:,} customers<extra></extra>"},
        link={"source": src, "target": dst, "value": val, "color": link_colours,
              "hovertemplate": "%{source.customdata} → %{target.customdata}<br>%{value:,} customers<extra></extra>"},
    )]
    # Legend entries only (no data): a Sankey has no legend of its own, and full names on the nodes
    # would cover the flows.
    traces += [go.Scatter(x=[None], y=[None], mode="markers", name=numbered(i, names), hoverinfo="skip",
                          marker={"color": segment_colour(i), "size": 10, "symbol": "square"}) for i in sorted(shown)]
    fig = go.Figure(traces)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for col, column in enumerate(columns):
        # Snapshots above their columns: below, they would meet the legend.
        fig.add_annotation(x=0.01 + 0.98 * col / max(len(columns) - 1, 1), y=1.0, xref="paper", yref="paper",
                           yanchor="bottom", text=column, showarrow=False, font={"size": 11, "color": "#495057"})
    fig = base_layout(fig, height=height)
    fig.update_layout(margin={"b": 16, "t": 28}, showlegend=True, plot_bgcolor="rgba(0,0,0,0)")
    return fig
