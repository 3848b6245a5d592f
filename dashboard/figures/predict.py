"""What-if predictor figures: distance to every segment, the customer on the PCA map, flip-point rows."""
from __future__ import annotations

import math
from functools import lru_cache

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from core.reading.schema import FEATURE_LABELS
from core.versions.scoring import format_value

from ..theme import FONT_FAMILY, segment_colour
from .common import plain, wrap_label


__all__ = ["distance_figure", "map_figure", "flip_rows", "scenario_table", "wrap_label"]


@lru_cache(maxsize=1)
def _template() -> dict:
    """The house template as plain JSON (read once; never modified)."""
    return pio.templates["plotly_white"].to_plotly_json()


def _figure(data: list[dict], height: int, margin: dict, **layout) -> go.Figure:
    """A figure from plain dicts, in the house style, without plotly's property validation.

    These figures are rebuilt on every keystroke of the what-if form. Validating them (and
    above all re-validating the template, as base_layout's update_layout does) costs ~25 ms
    a figure; the dicts below are fixed and tested, so validation buys nothing here.
    """
    return go.Figure({"data": data, "layout": {
        "template": _template(), "height": height, "margin": margin,
        "font": {"family": FONT_FAMILY, "size": 12}, "hoverlabel": {"font": {"family": FONT_FAMILY}}, **layout,
    }}, _validate=False)


def distance_figure(distances, names: list[str], segment: int) -> go.Figure:
    """Horizontal bars: distance from the customer to each segment's centre; the nearest is outlined."""
    k = len(names)
    bar = {
        # Wrapped names leave the bars (and the axis title under them) the room a narrow card has.
        "type": "bar", "orientation": "h", "y": [wrap_label(f"{i} · {n}") for i, n in enumerate(names)],
        "x": [float(d) for d in distances],
        "marker": {"color": [segment_colour(i) for i in range(k)],
                   "line": {"color": ["#212529" if i == segment else "rgba(0,0,0,0)" for i in range(k)], "width": 3}},
        "text": [f"{d:.2f}" for d in distances], "textposition": "auto",
        "hovertemplate": "%{y}<br>distance %{x:.3f}<extra></extra>",
    }
    # Top margin: room for the mode bar above the first bar.
    return _figure([bar], 300, {"l": 8, "r": 16, "t": 30, "b": 44}, showlegend=False,
                   yaxis={"autorange": "reversed", "automargin": True},
                   xaxis={"title": {"text": "Distance (SD units)", "standoff": 4}, "rangemode": "tozero",
                          "automargin": True})


def map_figure(background: dict, names: list[str], point, segment: int) -> go.Figure:
    """Existing customers on the first two PCA axes (a sample, by segment) and this customer as a star."""
    xs, ys, segs = background["x"], background["y"], background["segment"]
    data = []
    for seg, name in enumerate(names):
        rows = [i for i, s in enumerate(segs) if s == seg]
        shown = plain(name)
        data.append({"type": "scatter", "mode": "markers", "name": f"{seg} · {shown}",
                     "x": [xs[i] for i in rows], "y": [ys[i] for i in rows],
                     "marker": {"color": segment_colour(seg), "size": 5, "opacity": 0.35},
                     "hovertemplate": shown + "<extra></extra>"})  # plain() escapes "%{" too
    data.append({"type": "scatter", "mode": "markers", "name": "This customer",
                 "x": [float(point[0])], "y": [float(point[1])],
                 "marker": {"symbol": "star", "size": 20, "color": segment_colour(segment),
                            "line": {"color": "#212529", "width": 2}},
                 "hovertemplate": "This customer: " + plain(names[segment]) + "<extra></extra>"})
    ratio = background.get("explained") or [math.nan, math.nan]
    return _figure(data, 360, {"l": 48, "r": 16, "t": 16, "b": 40},
                   legend={"orientation": "h", "y": -0.25},
                   xaxis={"title": {"text": f"PC1 ({ratio[0]:.0%} of variance)"}, "zeroline": False},
                   yaxis={"title": {"text": f"PC2 ({ratio[1]:.0%} of variance)"}, "zeroline": False})


def flip_rows(flips: list[dict], names: list[str]) -> pd.DataFrame:
    """One row per feature: current value, and the value below / above that changes the segment, and to what."""
    rows = []
    for f in flips:
        cells = {"Feature": FEATURE_LABELS.get(f["feature"], f["feature"]), "Now": format_value(round(f["value"], 2))}
        for side, up in (("down", False), ("up", True)):
            value, seg = f[side], f[f"{side}_segment"]
            column = "Higher" if up else "Lower"
            if value is None:
                limit = f["high"] if up else f["low"]
                cells[column] = f"no change {'up to' if up else 'down to'} {format_value(round(limit, 2))}"
                continue
            sign = ("≥" if up else "≤") if f.get("whole") else (">" if up else "<")
            cells[column] = f"{sign} {format_value(round(value, 2))} → {names[seg]}"
        rows.append(cells)
    return pd.DataFrame(rows, columns=["Feature", "Now", "Lower", "Higher"])


def scenario_table(scenarios: list[dict], features: list[str]) -> pd.DataFrame:
    """Saved scenarios side by side: one column per scenario, rows the features and the answer."""
    measures = [("segment_name", "Segment"), ("confidence", "Confidence"), ("typicality", "Typicality")]
    measures += [(f, FEATURE_LABELS.get(f, f)) for f in features]
    data = {}
    for i, s in enumerate(scenarios):
        column = f"{i + 1}. {s.get('scenario') or 'Scenario'}"
        values = []
        for key, _label in measures:
            v = s.get(key)
            if key in ("confidence", "typicality") and isinstance(v, (int, float)):
                values.append(f"{v:.2f}")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                values.append(format_value(round(float(v), 2)))
            else:
                values.append("" if v is None else str(v))
        data[column] = values
    return pd.DataFrame(data, index=pd.Index([label for _, label in measures], name="Measure"))
