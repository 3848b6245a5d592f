"""Explorer figures: the customers on the PCA axes, and the filter/sample/selection helpers behind them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.fitting.projection import downsample_per_segment
from core.reading.schema import unit_field

from ..theme import segment_colour
from .common import base_layout, empty_figure, feature_label, plain, wrap_label

__all__ = ["MAX_POINTS", "HOVER_COLUMNS", "MapView", "range_bounds", "filter_positions", "map_view", "axis_title",
           "hover_spec", "pca_map_figure", "place_labels", "selected_positions", "selection_summary"]

# Points drawn at most: WebGL keeps 20K responsive in 2D; 3D (no GL point sprites) needs fewer.
MAX_POINTS = {2: 20_000, 3: 8_000}
MIN_PER_SEGMENT = 200
# customdata columns, in order; position 0 is the customer's row in the analysis frame.
HOVER_COLUMNS = ["ID", "Age", "Income", "Total_Spending", "NumWebPurchases", "NumStorePurchases", "Recency",
                 "confidence"]
_HOVER = ("<b>%{fullData.name}</b><br>Customer %{customdata[1]:.0f}<br>"
          "Age %{customdata[2]:.0f} · income %{customdata[3]:,.0f}<br>"
          "Spend %{customdata[4]:,.0f} (2 years)<br>"
          "Purchases: %{customdata[5]:.0f} web, %{customdata[6]:.0f} in store<br>"
          "Last purchase %{customdata[7]:.0f} days ago<br>"
          "Confidence %{customdata[8]:.0%}<extra></extra>")


@dataclass
class MapView:
    """Which customers the map draws: positions drawn, how many matched the filters, how many in all."""

    positions: np.ndarray
    matching: int
    total: int

    @property
    def sampled(self) -> bool:
        """True when fewer customers are drawn than match the filters."""
        return len(self.positions) < self.matching

    def caption(self) -> str:
        """'Showing N of M customers' in plain words."""
        if self.matching == 0:
            return f"No customer matches these filters (of {self.total:,})."
        text = f"Showing {len(self.positions):,} of {self.matching:,} customers"
        if self.matching < self.total:
            text += f" matching the filters ({self.total:,} in all)"
        if self.sampled:
            text += "; a sample that keeps every segment visible"
        return text + "."


def range_bounds(values, step: float) -> tuple[float, float]:
    """Slider bounds that contain every value: min rounded down and max rounded up to ``step``."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if v.empty:
        return 0.0, float(step)
    lo, hi = float(np.floor(v.min() / step) * step), float(np.ceil(v.max() / step) * step)
    return (lo, hi) if hi > lo else (lo, lo + step)


def filter_positions(frame: pd.DataFrame, *, education=None, marital=None, age=None, income=None,
                     age_bounds=None, income_bounds=None, range_columns=("Age", "Income")) -> np.ndarray:
    """Row positions of customers passing the filters (empty selections and full ranges filter nothing).

    ``range_columns`` names the columns the two range filters (``age``, ``income``) apply to: data of
    another layout (a transaction log's customers) filters on its own columns; absent columns filter nothing.
    """
    keep = np.ones(len(frame), dtype=bool)
    if education and "Education" in frame:
        keep &= frame["Education"].isin(list(education)).to_numpy()
    if marital and "Marital_Status" in frame:
        keep &= frame["Marital_Status"].isin(list(marital)).to_numpy()
    for column, rng, bounds in zip(range_columns, (age, income), (age_bounds, income_bounds)):
        # A range at the slider's bounds means "any": it must not drop values the slider rounds away.
        if column is None or column not in frame or rng is None or (
                bounds is not None and rng[0] <= bounds[0] and rng[1] >= bounds[1]):
            continue
        values = frame[column].to_numpy(dtype=float)
        keep &= (values >= rng[0]) & (values <= rng[1])
    return np.flatnonzero(keep)


def map_view(frame: pd.DataFrame, labels: np.ndarray, *, dims: int = 2, seed: int = 0, max_points: int | None = None,
             **filters) -> MapView:
    """Filter first, then downsample per segment, so a filtered view still shows up to ``max_points``."""
    matching = filter_positions(frame, **filters)
    limit = max_points or MAX_POINTS.get(dims, MAX_POINTS[2])
    if len(matching) == 0:
        return MapView(matching, 0, len(frame))
    keep = downsample_per_segment(np.asarray(labels)[matching], limit, seed,
                                  min_per_segment=min(MIN_PER_SEGMENT, limit))
    return MapView(matching[keep], len(matching), len(frame))


def axis_title(i: int, ratio) -> str:
    """'PC1 (31% of variance)'."""
    return f"PC{i + 1} ({float(ratio[i]):.0%} of variance)"


def hover_spec(frame: pd.DataFrame, features=None) -> tuple[list[str], str]:
    """The hover's customdata columns (after the position) and its template.

    The canonical file's customers get the full card (age, income, spend, purchases, recency); data of
    another layout (a transaction log's RFM customers, a mapped table) shows its ID, the model's features
    as they were measured (``Monetary`` for ``Monetary_log``) and the confidence.
    """
    if all(c in frame for c in HOVER_COLUMNS):
        return HOVER_COLUMNS, _HOVER
    raw = []
    for f in list(features or []):
        base = unit_field(f) if unit_field(f) in frame else f
        if base in frame and base not in raw and base not in ("ID", "confidence"):
            raw.append(base)
    columns = ["ID"] + raw[:6] + ["confidence"]
    lines = ["<b>%{fullData.name}</b>", "Customer %{customdata[1]:.0f}"]
    lines += [f"{plain(feature_label(c))} %{{customdata[{i + 2}]:,.4~g}}" for i, c in enumerate(raw[:6])]
    lines.append(f"Confidence %{{customdata[{len(columns)}]:.0%}}<extra></extra>")
    return columns, "<br>".join(lines)


def _hover_data(frame: pd.DataFrame, positions: np.ndarray, columns=HOVER_COLUMNS) -> np.ndarray:
    rows = frame.iloc[positions]
    cols = [np.asarray(positions, dtype=float)]
    cols += [pd.to_numeric(rows[c], errors="coerce").to_numpy(dtype=float) if c in rows
             else np.full(len(rows), np.nan) for c in columns]
    # float32 travels as a compact base64 typed array; exact for positions and IDs below 16.7 million.
    return np.column_stack(cols).astype(np.float32)


def _unit(v) -> tuple[float, float]:
    """Direction of a 2D vector (straight up for a zero vector)."""
    x, y = float(v[0]), float(v[1])
    norm = (x * x + y * y) ** 0.5
    return (x / norm, y / norm) if norm > 1e-9 else (0.0, 1.0)


def _arrow_scale(points: np.ndarray, loadings: np.ndarray) -> float:
    """Stretch loadings (correlations, |l| <= 1) so the longest arrow reaches most of the data's spread."""
    reach = np.percentile(np.abs(points), 98, axis=0).min() if len(points) else 1.0
    longest = np.sqrt((loadings ** 2).sum(axis=1)).max()
    return float(0.9 * reach / longest) if longest > 0 and reach > 0 else 1.0


def pca_map_figure(coords: np.ndarray, labels: np.ndarray, frame: pd.DataFrame, positions: np.ndarray,
                   names: list[str], centroid_coords: np.ndarray, variance_ratio, *, loadings=None,
                   features=None, dims: int = 2, height: int = 560, revision: str | None = None) -> go.Figure:
    """Customers on the first 2 or 3 principal axes, one WebGL trace per segment, centroids and loading arrows."""
    dims = 3 if dims == 3 else 2
    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) == 0:
        return empty_figure("No customer matches these filters. Widen the age or income range, "
                            "or clear a filter.", height=height)
    dims = min(dims, coords.shape[1])
    labels = np.asarray(labels)
    shown = labels[positions]
    xyz = np.asarray(coords[positions, :dims], dtype=np.float32)
    hover_columns, hover = hover_spec(frame, features)
    custom = _hover_data(frame, positions, hover_columns)
    traces = []
    for seg in range(len(names)):
        mask = shown == seg
        if not mask.any():
            continue
        # ids carry each point's customer position into selectedData: dcc.Graph drops customdata sent as a
        # typed array from selections, and plain-list customdata costs ~1 s per 20K points to serialise.
        common = dict(name=f"{seg} · {plain(names[seg])}", customdata=custom[mask], ids=[str(p) for p in positions[mask]],
                      hovertemplate=hover, legendgroup=str(seg))
        if dims == 3:
            traces.append(go.Scatter3d(x=xyz[mask, 0], y=xyz[mask, 1], z=xyz[mask, 2], mode="markers",
                                       marker={"size": 2.5, "color": segment_colour(seg), "opacity": 0.7},
                                       **common))
        else:
            traces.append(go.Scattergl(x=xyz[mask, 0], y=xyz[mask, 1], mode="markers",
                                       marker={"size": 5, "color": segment_colour(seg), "opacity": 0.6},
                                       **common))
    k = len(names)
    cc = np.asarray(centroid_coords)[:k, :dims]
    centre = dict(name="Segment centres", text=[f"{i} · {plain(n)}" for i, n in enumerate(names)],
                  hovertemplate="<b>Centre of %{text}</b><extra></extra>", showlegend=True)
    if dims == 3:
        # Numbers only in 3D: full names pile up in the projected scene; the legend and hover carry them.
        traces.append(go.Scatter3d(x=cc[:, 0], y=cc[:, 1], z=cc[:, 2], mode="markers+text", textposition="top center",
                                   texttemplate=[f"<b>{i}</b>" for i in range(k)],
                                   marker={"size": 7, "symbol": "diamond",
                                           "color": [segment_colour(i) for i in range(k)],
                                           "line": {"color": "#212529", "width": 2}},
                                   textfont={"size": 11, "color": "#212529"}, **centre))
    else:
        # SVG, not GL: drawn above the WebGL points and not selectable as customers (no customdata).
        traces.append(go.Scatter(x=cc[:, 0], y=cc[:, 1], mode="markers",
                                 marker={"size": 16, "symbol": "x", "color": [segment_colour(i) for i in range(k)],
                                         "line": {"color": "#212529", "width": 1.5}}, **centre))
    fig = go.Figure(traces)
    titles = [axis_title(i, variance_ratio) for i in range(dims)]
    tips = None
    if loadings is not None:
        loadings = np.asarray(loadings)[:, :dims]
        tips = loadings * _arrow_scale(xyz, loadings)
        _add_loadings(fig, loadings, tips, list(features or []), dims)
    if dims == 2:
        _add_labels(fig, names, cc, xyz, tips, loadings, list(features or []), height)
    if dims == 3:
        fig.update_layout(scene={"xaxis": {"title": {"text": titles[0]}}, "yaxis": {"title": {"text": titles[1]}},
                                 "zaxis": {"title": {"text": titles[2]}}, "aspectmode": "manual",
                                 "aspectratio": {"x": 1.5, "y": 1.1, "z": 0.9},
                                 "camera": {"eye": {"x": 1.3, "y": 1.5, "z": 0.75}},
                                 "domain": {"x": [0, 1], "y": [0.14, 1]}})
    else:
        fig.update_xaxes(title_text=titles[0], zeroline=True, zerolinecolor="#dee2e6")
        fig.update_yaxes(title_text=titles[1], zeroline=True, zerolinecolor="#dee2e6")
        fig.update_layout(dragmode="lasso")
    base_layout(fig, height=height)
    fig.update_layout(legend={"orientation": "h", "y": -0.12 if dims == 2 else 0.02, "itemsizing": "constant"},
                      uirevision=revision or str(dims), margin={"t": 16, "l": 8 if dims == 3 else 48})
    return fig


def _unit_label(feature: str) -> str:
    """A feature named as people read it: a log-scale feature by its column ("Orders"); the page says the scale."""
    return feature_label(unit_field(feature))


def _arrow_label(features: list[str], i: int) -> str:
    """A feature's readable name, on two lines when long (arrow labels crowd near the origin)."""
    return wrap_label(_unit_label(features[i]) if i < len(features) else f"x{i}", 16)


def _add_loadings(fig: go.Figure, loadings: np.ndarray, tips: np.ndarray, features: list[str], dims: int) -> None:
    """Arrows from the origin along each feature's direction (2D labels are placed with the segment labels)."""
    if dims == 3:
        xs, ys, zs = [], [], []
        for tip in tips:
            xs += [0, tip[0], None]
            ys += [0, tip[1], None]
            zs += [0, tip[2], None]
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line={"color": "#495057", "width": 4},
                                   name="Feature directions", hoverinfo="skip", legendgroup="loadings"))
        labels = [_unit_label(features[i]) if i < len(features) else f"x{i}" for i in range(len(tips))]
        fig.add_trace(go.Scatter3d(x=tips[:, 0] * 1.08, y=tips[:, 1] * 1.08, z=tips[:, 2] * 1.08, mode="text",
                                   text=labels, textfont={"size": 11, "color": "#343a40"}, showlegend=False,
                                   hovertext=labels, hoverinfo="text", legendgroup="loadings"))
        return
    for tip in tips:
        fig.add_annotation(x=tip[0], y=tip[1], ax=0, ay=0, xref="x", yref="y", axref="x", ayref="y", text="",
                           showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=1.6, arrowcolor="#495057")


# The label layout assumes the map's usual plot area on a laptop (the card is ~800 px wide); the chart is
# responsive, so this is an estimate: it separates labels that would overlap at that size.
_PLOT_WIDTH = 780
_CHAR_PX = {10: 6.0, 11: 6.6}


def _text_box(text: str, size: int) -> tuple[float, float]:
    """Width and height in pixels of an annotation's text (plotly <b>/<br> aware, padding included)."""
    lines = str(text).replace("<b>", "").replace("</b>", "").split("<br>")
    width = max(len(line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")) for line in lines)
    return width * _CHAR_PX[size] + 10, len(lines) * (size + 4) + 6


def _overlap(a, b) -> float:
    """Overlap area of two boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def place_labels(candidates: list[list[tuple]], fixed: list[tuple], bounds: tuple) -> list[int]:
    """Greedy label placement: per label, the first candidate box that overlaps nothing placed so far.

    ``candidates[i]`` lists label i's boxes (x0, y0, x1, y1) in order of preference; ``fixed`` are boxes no
    label may cover (markers); boxes leaving ``bounds`` count as overlapping. When every candidate overlaps,
    the one overlapping least wins. Returns the chosen candidate index per label.
    """
    placed = list(fixed)
    chosen = []
    bx0, by0, bx1, by1 = bounds
    for boxes in candidates:
        best, best_cost = 0, None
        for j, box in enumerate(boxes):
            outside = (max(bx0 - box[0], 0) + max(box[2] - bx1, 0)) * (box[3] - box[1]) + \
                      (max(by0 - box[1], 0) + max(box[3] - by1, 0)) * (box[2] - box[0])
            cost = outside + sum(_overlap(box, other) for other in placed)
            if best_cost is None or cost < best_cost:
                best, best_cost = j, cost
            if cost == 0:
                break
        chosen.append(best)
        placed.append(boxes[best])
    return chosen


def _add_labels(fig: go.Figure, names: list[str], centres: np.ndarray, points: np.ndarray, tips, loadings,
                features: list[str], height: int) -> None:
    """Segment names by their centres and feature names at the arrow tips, placed so they do not overlap."""
    coords = [np.asarray(points, dtype=float)[:, :2], np.asarray(centres, dtype=float)[:, :2]]
    if tips is not None:
        coords += [np.asarray(tips, dtype=float)[:, :2], np.zeros((1, 2))]
    allxy = np.vstack(coords)
    lo, hi = allxy.min(axis=0), allxy.max(axis=0)
    pad = np.maximum((hi - lo) * 0.04, 1e-9)
    lo, hi = lo - pad, hi + pad
    width, plot_height = _PLOT_WIDTH, max(height - 150, 200)

    def px(x: float, y: float) -> tuple[float, float]:
        return ((x - lo[0]) / (hi[0] - lo[0]) * width, (hi[1] - y) / (hi[1] - lo[1]) * plot_height)

    fixed = [(cx - 9, cy - 9, cx + 9, cy + 9) for cx, cy in (px(*c) for c in centres[:, :2])]
    specs, candidates = [], []
    # Feature labels first: they must stay at their arrow's tip; segment labels can move further out.
    for i, tip in enumerate(tips if tips is not None else []):
        text = _arrow_label(features, i)
        w, h = _text_box(text, 10)
        dx, dy = _unit(tip)
        tx, ty = px(tip[0], tip[1])
        xanchor = "left" if dx > 0.35 else "right" if dx < -0.35 else "center"
        yanchor = "bottom" if dy > 0.35 else "top" if dy < -0.35 else "middle"
        options = []
        for step in (0, 1, -1, 2, -2, 3, -3):
            # Slide along the arrow's perpendicular (screen pixels; plotly's yshift points up).
            xs, ys = 4 * dx - 13 * step * dy, 4 * dy + 13 * step * dx
            x0 = tx + xs if xanchor == "left" else tx + xs - w if xanchor == "right" else tx + xs - w / 2
            top = ty - ys - h if yanchor == "bottom" else ty - ys if yanchor == "top" else ty - ys - h / 2
            options.append(((x0, top, x0 + w, top + h), {"xshift": round(xs), "yshift": round(ys)}))
        candidates.append([o[0] for o in options])
        specs.append(("arrow", i, text, xanchor, yanchor, [o[1] for o in options]))
    for i, name in enumerate(names):
        text = f"<b>{i}</b> · {plain(name)}"
        w, h = _text_box(text, 11)
        cx, cy = px(centres[i, 0], centres[i, 1])
        dx, dy = _unit(centres[i])
        base = np.arctan2(-dy, dx)  # outward, in screen coordinates (y down)
        options = []
        for r in (44, 70, 100):
            for turn in (0, 35, -35, 70, -70, 110, -110, 180):
                a = base + np.radians(turn)
                ax, ay = r * np.cos(a), r * np.sin(a)
                options.append(((cx + ax - w / 2, cy + ay - h / 2, cx + ax + w / 2, cy + ay + h / 2),
                                {"ax": round(ax), "ay": round(ay)}))
        candidates.append([o[0] for o in options])
        specs.append(("segment", i, text, None, None, [o[1] for o in options]))
    chosen = place_labels(candidates, fixed, (0, 0, width, plot_height))
    for (kind, i, text, xanchor, yanchor, params), pick in zip(specs, chosen):
        if kind == "arrow":
            load = loadings[i]
            fig.add_annotation(x=tips[i][0], y=tips[i][1], xref="x", yref="y", text=text, showarrow=False,
                               xanchor=xanchor, yanchor=yanchor, **params[pick],
                               font={"size": 10, "color": "#495057"}, bgcolor="rgba(255,255,255,0.7)",
                               hovertext=f"{_unit_label(features[i]) if i < len(features) else text}: loading "
                                         f"{load[0]:+.2f} on PC1, {load[1]:+.2f} on PC2")
        else:
            # Boxed in the segment's colour, joined to its centre by a thin line.
            fig.add_annotation(x=centres[i, 0], y=centres[i, 1], xref="x", yref="y", text=text, showarrow=True,
                               arrowhead=0, arrowwidth=1, arrowcolor=segment_colour(i), **params[pick],
                               font={"size": 11, "color": "#212529"}, bgcolor="rgba(255,255,255,0.85)",
                               bordercolor=segment_colour(i), borderwidth=1.5, borderpad=2)


def selected_positions(selected: dict | None, n_rows: int) -> np.ndarray:
    """Customer positions in a Plotly selection (point id, else customdata[0]); centres and junk are skipped."""
    if not selected:
        return np.empty(0, dtype=np.int64)
    out = []
    for point in selected.get("points") or []:
        if not isinstance(point, dict):
            continue
        if isinstance(point.get("id"), str) and point["id"].isdigit():
            out.append(int(point["id"]))
            continue
        custom = point.get("customdata")
        # customdata travels as a typed array, which the browser serialises as {"0": .., "1": ..}.
        first = custom[0] if isinstance(custom, list) and custom else (
            custom.get("0") if isinstance(custom, dict) else None)
        if isinstance(first, (int, float)) and not isinstance(first, bool) and np.isfinite(first):
            out.append(int(first))
    pos = np.unique(np.asarray(out, dtype=np.int64))
    return pos[(pos >= 0) & (pos < n_rows)]


def selection_summary(frame: pd.DataFrame, labels: np.ndarray, positions: np.ndarray, names: list[str],
                      columns=("Income", "Total_Spending", "Age")) -> dict:
    """Count, customers and share per segment, and the mean of ``columns`` (those present) of the selected customers."""
    positions = np.asarray(positions, dtype=np.int64)
    rows = frame.iloc[positions]
    counts = np.bincount(np.asarray(labels)[positions], minlength=len(names))[:len(names)]
    n = int(len(positions))
    per_segment = pd.DataFrame({"segment": range(len(names)), "name": names, "customers": counts,
                                "share": counts / n if n else np.zeros(len(names))})
    means = {c: float(rows[c].mean()) if n else float("nan") for c in columns if c in frame}
    return {"count": n, "per_segment": per_segment[per_segment["customers"] > 0].reset_index(drop=True),
            "means": means}
