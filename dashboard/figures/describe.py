"""Charts for people who cannot see them: a one-sentence summary and a data table derived from a plotly figure.

Pure functions of the figure (traces' names, x/y/z, labels; the layout's title and axis titles), so every chart
gets a text alternative without its figure function knowing; a figure whose generic sentence would be poor
sets its own in ``layout.meta["summary"]`` (see :func:`with_summary`).
"""
from __future__ import annotations

import base64
import html as html_lib
import math
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ChartText", "describe", "with_summary", "clean_text", "MAX_ROWS"]

#: Rows shown in a chart's table; beyond it the table says how many there are (a map of thousands of customers
#: is summarised per group instead of listed).
MAX_ROWS = 60
_MAX_COLUMNS = 24
_TAG = re.compile(r"<[^>]*>")


@dataclass
class ChartText:
    """A chart in words: ``summary`` (one or two sentences), a table (``columns``, ``rows`` of strings) and a
    ``note`` when the table is cut short or summarised."""

    summary: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    note: str | None = None


def with_summary(fig, summary: str):
    """``fig`` with its own summary sentence (kept in ``layout.meta``, which plotly carries but never draws)."""
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    fig.update_layout(meta={**meta, "summary": summary})
    return fig


def clean_text(text) -> str:
    """Plotly label text as plain words: line breaks to spaces, tags dropped, entities decoded."""
    if text is None:
        return ""
    out = _TAG.sub("", str(text).replace("<br>", " ").replace("<br />", " "))
    return " ".join(html_lib.unescape(out).split())


def _as_dict(fig) -> dict:
    if fig is None:
        return {}
    if hasattr(fig, "to_plotly_json"):
        return fig.to_plotly_json()
    return dict(fig)


def _decode(value):
    """A trace array as a plain list (plotly >= 6 encodes numpy arrays as base64 typed arrays)."""
    if value is None:
        return None
    if isinstance(value, dict) and "bdata" in value:
        raw = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value.get("dtype", "f8")))
        shape = value.get("shape")
        if shape:
            dims = [int(s) for s in str(shape).split(",")] if not isinstance(shape, list | tuple) else list(shape)
            raw = raw.reshape(dims)
        return raw.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_decode(v) if isinstance(v, dict | np.ndarray) else v for v in value]
    return value


def _number(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fmt(v, percent: bool = False) -> str:
    """A value as people read it: percentages when the axis shows them, thousands separators, 3 significant."""
    f = _number(v)
    if f is None:
        return clean_text(v) if v is not None else "–"
    if percent:
        return f"{f:.1%}"
    if f == int(f) and abs(f) < 1e15:
        return f"{int(f):,}"
    if abs(f) >= 100:
        return f"{f:,.0f}"
    return f"{f:.3g}"


def _axis(layout: dict, trace: dict, letter: str) -> dict:
    ref = trace.get(f"{letter}axis") or letter
    return layout.get(f"{letter}axis{ref[1:]}") or {}


def _axis_title(axis: dict) -> str:
    title = axis.get("title")
    return clean_text(title.get("text") if isinstance(title, dict) else title)


def _is_percent(axis: dict) -> bool:
    return "%" in str(axis.get("tickformat") or "")


def _title(layout: dict) -> str:
    title = layout.get("title")
    return clean_text(title.get("text") if isinstance(title, dict) else title)


def _name(trace: dict, index: int) -> str:
    return clean_text(trace.get("name")) or (f"Series {index + 1}" if index else "Values")


def _cut(rows: list, what: str = "rows") -> tuple[list, str | None]:
    if len(rows) <= MAX_ROWS:
        return rows, None
    return rows[:MAX_ROWS], f"The first {MAX_ROWS} of {len(rows):,} {what}."


# ---------------------------------------------------------------- per trace type
def _bars(traces: list[dict], layout: dict) -> ChartText:
    """Bars (and lines over few categories): one row per category, one column per series."""
    first = traces[0]
    horizontal = first.get("orientation") == "h"
    cat_letter, val_letter = ("y", "x") if horizontal else ("x", "y")
    cat_axis, val_axis = _axis(layout, first, cat_letter), _axis(layout, first, val_letter)
    percent = _is_percent(val_axis)
    categories: list[str] = []
    series = []
    for i, t in enumerate(traces):
        cats = [clean_text(c) for c in (_decode(t.get(cat_letter)) or [])]
        vals = _decode(t.get(val_letter)) or []
        if not cats:
            cats = [str(j + 1) for j in range(len(vals))]
        texts = _decode(t.get("text"))
        texts = texts if isinstance(texts, list) and len(texts) == len(vals) else None
        # A bar's own label adds to its value only when it is not the value again, rounded ("19%" does).
        labels = {c: clean_text(x) for c, x in zip(cats, texts or []) if x is not None and _number(x) is None}
        series.append((_name(t, i), dict(zip(cats, vals)), {c: x for c, x in labels.items() if x}))
        categories += [c for c in cats if c not in categories]
    head = _axis_title(cat_axis) or "Category"
    unit = _axis_title(val_axis)
    columns = [head] + [(name if len(series) > 1 or not unit else unit) for name, _, _ in series]
    rows = [[c] + [_fmt(values.get(c), percent) + (f" ({texts[c]})" if texts.get(c) else "")
                   if c in values else "–" for _name_, values, texts in series] for c in categories]
    sentences = []
    for name, values, texts in series[:4]:
        numeric = {c: _number(v) for c, v in values.items() if _number(v) is not None}
        if not numeric:
            continue
        hi, lo = max(numeric, key=numeric.get), min(numeric, key=numeric.get)
        label = f"{name}: " if len(series) > 1 else (f"{unit}: " if unit else "")

        def said(c):
            extra = texts.get(c, "")
            return f"{c} ({_fmt(values[c], percent)}{', ' + extra if extra and extra != _fmt(values[c], percent) else ''})"
        if len(numeric) == 1:
            sentences.append(f"{label}{said(hi)}.")
        else:
            sentences.append(f"{label}highest {said(hi)}, lowest {said(lo)}.")
    if len(series) > 4:
        sentences.append(f"{len(series)} series in all; the table has every value.")
    rows, note = _cut(rows)
    return ChartText(" ".join(sentences), columns, rows, note)


def _lines(traces: list[dict], layout: dict) -> ChartText:
    """Lines and small scatters: one row per point (series, x, y); the summary follows each series."""
    first = traces[0]
    x_axis, y_axis = _axis(layout, first, "x"), _axis(layout, first, "y")
    percent = _is_percent(y_axis)
    x_title, y_title = _axis_title(x_axis) or "x", _axis_title(y_axis) or "Value"
    rows, sentences = [], []
    for i, t in enumerate(traces):
        xs = _decode(t.get("x")) or []
        ys = _decode(t.get("y")) or []
        if not ys:
            continue
        if not xs:
            xs = list(range(1, len(ys) + 1))
        name = _name(t, i)
        rows += [[name, clean_text(x) if _number(x) is None else _fmt(x), _fmt(y, percent)] for x, y in zip(xs, ys)]
        points = [(x, _number(y)) for x, y in zip(xs, ys) if _number(y) is not None]
        if not points or len(sentences) >= 4:
            continue
        (x0, y0), (x1, y1) = points[0], points[-1]
        hx, hy = max(points, key=lambda p: p[1])
        fx = (lambda x: clean_text(x) if _number(x) is None else _fmt(x))
        if len(points) == 1:
            sentences.append(f"{name}: {_fmt(y0, percent)} at {x_title} {fx(x0)}.")
        else:
            sentences.append(f"{name}: {_fmt(y0, percent)} at {x_title} {fx(x0)} to {_fmt(y1, percent)} at "
                             f"{fx(x1)}; highest {_fmt(hy, percent)} at {fx(hx)}.")
    live = [t for t in traces if _decode(t.get("y"))]
    if len(live) > 4:
        sentences.append(f"{len(live)} series in all; the table has every value.")
    rows, note = _cut(rows, "points")
    return ChartText(" ".join(sentences), ["Series", x_title, y_title], rows, note)


def _points(traces: list[dict], layout: dict) -> ChartText:
    """Large scatters (maps of customers): counted per group, with where each group sits."""
    first = traces[0]
    x_title = _axis_title(_axis(layout, first, "x")) or "x"
    y_title = _axis_title(_axis(layout, first, "y")) or "y"
    rows, counts = [], []
    for i, t in enumerate(traces):
        xs = [_number(v) for v in (_decode(t.get("x")) or [])]
        ys = [_number(v) for v in (_decode(t.get("y")) or [])]
        pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
        if not pairs:
            continue
        name = _name(t, i)
        mx, my = np.mean([p[0] for p in pairs]), np.mean([p[1] for p in pairs])
        rows.append([name, f"{len(pairs):,}", _fmt(mx), _fmt(my)])
        counts.append((len(pairs), name))
    total = sum(n for n, _ in counts)
    big = [(n, name) for n, name in counts if n > 1]
    summary = f"{total:,} points in {len(counts)} group{'s' if len(counts) != 1 else ''}"
    if big:
        n, name = max(big)
        summary += f"; the largest is {name} ({n:,})"
    return ChartText(summary + ".", ["Group", "Points", f"Mean {x_title}", f"Mean {y_title}"], rows,
                     "One row per group: the chart has too many points to list.")


def _distributions(traces: list[dict], layout: dict) -> ChartText:
    """Histograms and box plots of raw values: count, quartiles and range per series."""
    rows, sentences = [], []
    for i, t in enumerate(traces):
        letter = "x" if t.get("type") == "histogram" and t.get("x") is not None else "y"
        if t.get("type") == "box" and t.get("orientation") == "h":
            letter = "x"
        values = np.array([v for v in (_number(v) for v in (_decode(t.get(letter)) or [])) if v is not None])
        if not len(values):
            continue
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        name = _name(t, i)
        rows.append([name, f"{len(values):,}", _fmt(values.min()), _fmt(q1), _fmt(med), _fmt(q3), _fmt(values.max())])
        if len(sentences) < 4:
            sentences.append(f"{name}: {len(values):,} values from {_fmt(values.min())} to {_fmt(values.max())}, "
                             f"median {_fmt(med)}.")
    rows, note = _cut(rows)
    return ChartText(" ".join(sentences), ["Series", "Count", "Minimum", "Lower quartile", "Median",
                                           "Upper quartile", "Maximum"], rows, note)


def _heatmap(trace: dict, layout: dict) -> ChartText:
    """A matrix: rows and columns as drawn, extreme cells in the summary."""
    z = _decode(trace.get("z")) or []
    if z and not isinstance(z[0], list):
        z = [z]
    xs = [clean_text(x) for x in (_decode(trace.get("x")) or range(1, len(z[0]) + 1 if z else 1))]
    ys = [clean_text(y) for y in (_decode(trace.get("y")) or range(1, len(z) + 1))]
    cells = [(_number(v), ys[r] if r < len(ys) else str(r + 1), xs[c] if c < len(xs) else str(c + 1))
             for r, row in enumerate(z) for c, v in enumerate(row or [])]
    cells = [c for c in cells if c[0] is not None]
    summary = ""
    if cells:
        hi, lo = max(cells), min(cells)
        summary = f"Highest {_fmt(hi[0])} at {hi[1]}, {hi[2]}; lowest {_fmt(lo[0])} at {lo[1]}, {lo[2]}."
    shown = xs[:_MAX_COLUMNS]
    rows = [[y] + [_fmt(v) for v in (row or [])[:_MAX_COLUMNS]] for y, row in zip(ys, z)]
    rows, note = _cut(rows)
    if len(xs) > _MAX_COLUMNS:
        note = (note + " " if note else "") + f"The first {_MAX_COLUMNS} of {len(xs)} columns."
    return ChartText(summary, [_axis_title(_axis(layout, trace, "y")) or ""] + shown, rows, note)


def _sankey(trace: dict) -> ChartText:
    nodes = [clean_text(n) for n in (_decode((trace.get("node") or {}).get("label")) or [])]
    link = trace.get("link") or {}
    sources, targets = _decode(link.get("source")) or [], _decode(link.get("target")) or []
    values = _decode(link.get("value")) or []

    def node(i):
        return nodes[int(i)] if 0 <= int(i) < len(nodes) else str(i)
    flows = [(node(s), node(t), v) for s, t, v in zip(sources, targets, values) if _number(v)]
    flows.sort(key=lambda f: -_number(f[2]))
    summary = (f"{len(flows)} flows; the largest is {flows[0][0]} → {flows[0][1]} ({_fmt(flows[0][2])})."
               if flows else "No flows.")
    rows, note = _cut([[a, b, _fmt(v)] for a, b, v in flows], "flows")
    return ChartText(summary, ["From", "To", "Customers"], rows, note)


def _pie(trace: dict) -> ChartText:
    labels = [clean_text(v) for v in (_decode(trace.get("labels")) or [])]
    values = [_number(v) or 0.0 for v in (_decode(trace.get("values")) or [])]
    total = sum(values) or 1.0
    rows = [[lab, _fmt(v), f"{v / total:.0%}"] for lab, v in zip(labels, values)]
    summary = ""
    if values:
        i = int(np.argmax(values))
        summary = f"The largest slice is {labels[i]}, {values[i] / total:.0%} of the total."
    return ChartText(summary, ["Label", "Value", "Share"], rows)


def _kind(trace: dict) -> str:
    kind = trace.get("type") or "scatter"
    if kind in ("scatter", "scattergl"):
        n = len(_decode(trace.get("y")) or [])
        mode = str(trace.get("mode") or ("lines" if n > 20 else "markers"))
        return "lines" if "lines" in mode or n <= MAX_ROWS else "points"
    return kind


def describe(fig) -> ChartText:
    """What a figure shows, in words and as a table (see module docstring)."""
    data = _as_dict(fig)
    layout = data.get("layout") or {}
    traces = [t for t in (data.get("data") or []) if t.get("visible", True) not in (False, "legendonly")]
    meta = layout.get("meta") if isinstance(layout.get("meta"), dict) else {}
    if not traces:
        notes = [clean_text(a.get("text")) for a in (layout.get("annotations") or []) if a.get("text")]
        return ChartText(" ".join(notes) or "The chart is empty.")
    kinds = {_kind(t) for t in traces}
    if "sankey" in kinds:
        out = _sankey(next(t for t in traces if t.get("type") == "sankey"))
    elif "heatmap" in kinds:
        out = _heatmap(next(t for t in traces if t.get("type") == "heatmap"), layout)
    elif "pie" in kinds:
        out = _pie(next(t for t in traces if t.get("type") == "pie"))
    elif kinds & {"histogram", "box", "violin"}:
        out = _distributions([t for t in traces if t.get("type") in ("histogram", "box", "violin")], layout)
    elif "bar" in kinds:
        out = _bars([t for t in traces if t.get("type") == "bar"], layout)
    elif "points" in kinds:
        out = _points(traces, layout)
    else:
        out = _lines(traces, layout)
    title = _title(layout)
    if meta.get("summary"):  # plain text written for people (names as typed), not Plotly markup
        out.summary = " ".join(str(meta["summary"]).split())
    elif title and out.summary:
        out.summary = f"{title}. {out.summary}"
    out.summary = out.summary or title or "A chart."
    out.summary = out.summary[0].upper() + out.summary[1:]
    return out
