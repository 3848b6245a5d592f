"""A self-contained HTML report of the segments: personas, key charts, campaign economics.

:func:`segment_report` is a pure function from data to one HTML string. The
file it makes opens offline anywhere: the charts are inline SVG drawn here,
the style sheet is inline, there is no script and nothing is fetched. Every
text that comes from data (segment names a user typed, file names, column
names) is escaped with :func:`html.escape`, and colours must be ``#rrggbb``.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
from html import escape

import numpy as np
import pandas as pd

from core.reading.schema import FEATURE_LABELS

__all__ = ["segment_report", "bar_chart_svg", "stacked_bar_svg", "PRODUCT_COLOURS"]

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_FALLBACK = "#7f7f7f"
# Product categories are not segments: a neutral palette that cannot be mistaken for segment colours.
PRODUCT_COLOURS = ["#4e79a7", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f", "#bab0ac"]
# Columns of the "differs from the average" table, headed with the one set of feature labels.
_ZSCORE_COLUMNS = {c: FEATURE_LABELS.get(c, c) for c in (
    "Income", "Age", "Total_Spending", "Total_Children", "Recency", "NumWebPurchases", "NumStorePurchases",
    "NumCatalogPurchases", "NumDealsPurchases", "NumWebVisitsMonth", "Campaigns_Accepted")}
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;color:#222;margin:2rem auto;
max-width:1100px;padding:0 1rem;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem}.muted{color:#666;font-size:.9rem}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;font-size:.9rem}dl.meta dt{color:#666}
dl.meta dd{margin:0}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1rem}
.card{border:1px solid #ddd;border-radius:6px;overflow:hidden}.card .stripe{height:6px}
.card .body{padding:.7rem .9rem}.card h3{font-size:1rem;margin:0 0 .2rem}.tag{display:inline-block;
border:1px solid #ccc;border-radius:3px;padding:0 .3rem;margin:0 .2rem .2rem 0;font-size:.8rem;background:#f7f7f7}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border-bottom:1px solid #e5e5e5;
padding:.25rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}thead th{background:#f5f5f5}
.swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.35rem;vertical-align:-1px}
svg{max-width:100%;height:auto}figure{margin:1rem 0}figcaption{font-size:.85rem;color:#555}
@media print{body{margin:0}h2{break-after:avoid}.card,figure{break-inside:avoid}}
"""


def _colour(value) -> str:
    return value if isinstance(value, str) and _HEX.match(value) else _FALLBACK


def _num(value, fmt: str = "{:,.0f}") -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return fmt.format(v) if math.isfinite(v) else "n/a"


def _finite(values) -> np.ndarray:
    arr = np.asarray([float(v) if v is not None else np.nan for v in values], dtype=float)
    return np.where(np.isfinite(arr), arr, 0.0)


def bar_chart_svg(labels, values, colours, *, value_format: str = "{:,.0f}", axis_label: str = "",
                  low=None, high=None, width: int = 720) -> str:
    """A horizontal bar chart as inline SVG (negative values extend left of a zero line).

    Parameters
    ----------
    labels : list of str
        One per bar (escaped here).
    values : list of float
        NaN / None draw no bar and print "n/a".
    colours : list of str
        ``#rrggbb`` per bar; anything else is drawn grey.
    value_format : str
        Format of the value printed after each bar.
    axis_label : str
        Caption under the chart.
    low, high : list of float, optional
        An interval per bar, drawn as a whisker.
    width : int, default 720

    Returns
    -------
    str
        An ``<svg>`` element.
    """
    labels = [str(label) for label in labels]
    raw = list(values)
    vals = _finite(raw)
    lows = _finite(low) if low is not None else None
    highs = _finite(high) if high is not None else None
    extent = [0.0, *vals.tolist(), *(lows.tolist() if lows is not None else []),
              *(highs.tolist() if highs is not None else [])]
    vmin, vmax = min(extent), max(extent)
    span = (vmax - vmin) or 1.0
    label_w, value_w, bar_h, gap, top = 230, 90, 22, 8, 8
    plot_w = width - label_w - value_w
    height = top + len(labels) * (bar_h + gap) + 24

    def x(v: float) -> float:
        return label_w + (v - vmin) / span * plot_w

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(axis_label)}" '
             'font-family="system-ui,Arial,sans-serif" font-size="12">']
    zero = x(0.0)
    for i, label in enumerate(labels):
        y = top + i * (bar_h + gap)
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{escape(short)}</text>')
        value = raw[i]
        ok = value is not None and isinstance(value, (int, float, np.number)) and math.isfinite(float(value))
        if ok:
            v = float(value)
            x0, x1 = sorted((zero, x(v)))
            parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.5):.1f}" height="{bar_h}" '
                         f'fill="{_colour(colours[i] if i < len(colours) else None)}"><title>{escape(label)}: '
                         f'{escape(value_format.format(v))}</title></rect>')
            if lows is not None and highs is not None:
                lx, hx, cy = x(lows[i]), x(highs[i]), y + bar_h / 2
                parts.append(f'<path d="M{lx:.1f},{cy - 5:.1f}V{cy + 5:.1f}M{lx:.1f},{cy:.1f}H{hx:.1f}'
                             f'M{hx:.1f},{cy - 5:.1f}V{cy + 5:.1f}" stroke="#333" stroke-width="1.2" fill="none"/>')
            text = value_format.format(v)
            tx = max(x1, x(highs[i]) if highs is not None else x1) + 6
        else:
            text, tx = "n/a", zero + 6
        parts.append(f'<text x="{tx:.1f}" y="{y + bar_h * 0.7:.1f}" fill="#333">{escape(text)}</text>')
    axis_y = top + len(labels) * (bar_h + gap)
    parts.append(f'<line x1="{zero:.1f}" y1="{top - 4}" x2="{zero:.1f}" y2="{axis_y}" stroke="#999"/>')
    if axis_label:
        parts.append(f'<text x="{label_w}" y="{axis_y + 16}" fill="#666">{escape(axis_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar_svg(labels, shares, categories, colours=None, *, width: int = 720) -> str:
    """100 % stacked horizontal bars (one per row) with a legend, as inline SVG.

    Parameters
    ----------
    labels : list of str
        One per bar.
    shares : array-like of shape (len(labels), len(categories))
        Each row is scaled to sum to 1 (an all-zero row draws nothing).
    categories : list of str
    colours : list of str, optional
        ``#rrggbb`` per category (default :data:`PRODUCT_COLOURS`).
    width : int, default 720

    Returns
    -------
    str
    """
    labels = [str(label) for label in labels]
    categories = [str(c) for c in categories]
    colours = [_colour(c) for c in (colours or PRODUCT_COLOURS)]
    matrix = np.nan_to_num(np.asarray(shares, dtype=float).reshape(len(labels), len(categories)))
    matrix = np.clip(matrix, 0, None)
    label_w, bar_h, gap, top = 230, 22, 8, 8
    plot_w = width - label_w - 20
    legend_rows = math.ceil(len(categories) / 4)
    height = top + len(labels) * (bar_h + gap) + 10 + legend_rows * 18
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" font-family="system-ui,Arial,sans-serif" font-size="12">']
    for i, label in enumerate(labels):
        y = top + i * (bar_h + gap)
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{escape(short)}</text>')
        total = matrix[i].sum()
        x = float(label_w)
        for j, category in enumerate(categories):
            share = matrix[i, j] / total if total > 0 else 0.0
            w = share * plot_w
            if w <= 0:
                continue
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                         f'fill="{colours[j % len(colours)]}"><title>{escape(label)} · {escape(category)}: '
                         f'{share:.0%}</title></rect>')
            if w >= 34:
                parts.append(f'<text x="{x + w / 2:.1f}" y="{y + bar_h * 0.7:.1f}" text-anchor="middle" '
                             f'fill="#fff">{share:.0%}</text>')
            x += w
    ly = top + len(labels) * (bar_h + gap) + 10
    for j, category in enumerate(categories):
        lx = label_w + (j % 4) * (plot_w / 4)
        yy = ly + (j // 4) * 18
        parts.append(f'<rect x="{lx:.1f}" y="{yy}" width="11" height="11" fill="{colours[j % len(colours)]}"/>'
                     f'<text x="{lx + 16:.1f}" y="{yy + 10}">{escape(category)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list[str]], *, raw_first: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw_first`` marks the first cell as pre-built HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [row[0] if raw_first else escape(row[0])] + [escape(c) for c in row[1:]]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _swatch_name(seg: dict) -> str:
    return (f'<span class="swatch" style="background:{_colour(seg.get("colour"))}"></span>'
            f'{escape(str(seg["segment"]))} · {escape(str(seg["name"]))}')


def _zscore_cell(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "<td>n/a</td>"
    if not math.isfinite(v):
        return "<td>n/a</td>"
    strength = min(abs(v) / 1.5, 1.0)
    # Blue above the average customer, red below; white at the average.
    r, g, b = (int(255 - strength * (255 - c)) for c in ((33, 102, 172) if v > 0 else (178, 24, 43)))
    ink = "#fff" if strength > 0.6 else "#222"
    return f'<td style="background:rgb({r},{g},{b});color:{ink}">{v:+.2f}</td>'


def segment_report(*, title: str, summary: dict, segments: list[dict], economics: pd.DataFrame | None = None,
                   campaigns: pd.DataFrame | None = None, product_mix: pd.DataFrame | None = None,
                   zscores: pd.DataFrame | None = None, generated_at: str | None = None) -> str:
    """Build the report as one self-contained HTML document.

    Parameters
    ----------
    title : str
    summary : dict
        Model and data facts shown at the top: ``version``, ``k``, ``features`` (list),
        ``data_source``, ``data_fingerprint``, ``n_customers``, ``silhouette``, ``created``
        (missing keys are left out).
    segments : list of dict
        One per segment, in order: ``segment``, ``name``, ``description``, ``traits`` (list),
        ``n``, ``share`` (0-1), ``colour`` (``#rrggbb``).
    economics : pandas.DataFrame, optional
        :func:`core.insight.profiles.economics` (index segment).
    campaigns : pandas.DataFrame, optional
        :func:`core.insight.profiles.campaign_rates` (long form); its ``Response`` rows are charted.
    product_mix : pandas.DataFrame, optional
        :func:`core.insight.profiles.product_mix` (index segment, one column per category).
    zscores : pandas.DataFrame, optional
        :func:`core.insight.profiles.zscores` (index segment).
    generated_at : str, optional
        Timestamp printed in the footer (default: now, UTC).

    Returns
    -------
    str
        A complete HTML document (no script, no external resource).
    """
    generated_at = generated_at or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    labels = [f"{s['segment']} · {s['name']}" for s in segments]
    colours = [_colour(s.get("colour")) for s in segments]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{escape(title)}</h1>",
           f'<p class="muted">Customer segments of model {escape(str(summary.get("version", "?")))}. '
           "This file is self-contained: it opens offline and can be e-mailed or printed.</p>"]

    facts = [("Model", summary.get("version")), ("Segments (k)", summary.get("k")),
             ("Features", ", ".join(map(str, summary.get("features") or [])) or None),
             ("Data", summary.get("data_source")), ("Data fingerprint", summary.get("data_fingerprint")),
             ("Customers", _num(summary["n_customers"]) if summary.get("n_customers") is not None else None),
             ("Silhouette", _num(summary["silhouette"], "{:.3f}") if summary.get("silhouette") is not None else None),
             ("Trained", summary.get("created"))]
    out.append('<dl class="meta">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>"
                                             for k, v in facts if v not in (None, "")) + "</dl>")

    out.append("<h2>Personas</h2><div class=\"cards\">")
    for seg in segments:
        traits = "".join(f'<span class="tag">{escape(str(t))}</span>' for t in seg.get("traits") or [])
        out.append(f'<div class="card"><div class="stripe" style="background:{_colour(seg.get("colour"))}"></div>'
                   f'<div class="body"><h3>{escape(str(seg["segment"]))} · {escape(str(seg["name"]))}</h3>'
                   f'<div class="muted">{_num(seg.get("n"))} customers · {_num(seg.get("share"), "{:.0%}")}</div>'
                   f'<p>{escape(str(seg.get("description", "")))}</p>{traits}</div></div>')
    out.append("</div>")

    out.append("<h2>Key charts</h2>")
    out.append("<figure>" + bar_chart_svg(labels, [s.get("n") for s in segments], colours,
                                          axis_label="customers per segment")
               + "<figcaption>Customers per segment.</figcaption></figure>")
    if campaigns is not None and len(campaigns) and "Response" in set(campaigns["campaign"]):
        resp = campaigns[campaigns["campaign"] == "Response"].set_index("segment").reindex(
            [s["segment"] for s in segments])
        out.append("<figure>" + bar_chart_svg(labels, (resp["rate"] * 100).tolist(), colours, value_format="{:.1f}%",
                                              low=(resp["low"] * 100).tolist(), high=(resp["high"] * 100).tolist(),
                                              axis_label="% accepted the last campaign (95% interval)")
                   + "<figcaption>Response to the last campaign, with 95% Wilson intervals.</figcaption></figure>")
    if economics is not None and len(economics):
        eco = economics.reindex([s["segment"] for s in segments])
        out.append("<figure>" + bar_chart_svg(labels, eco["profit"].tolist(), colours, value_format="{:,.0f}",
                                              axis_label="profit if the segment is targeted like the last campaign")
                   + "<figcaption>Expected profit per segment for a campaign like the last one "
                     "(revenue per responder minus cost per contact).</figcaption></figure>")
    if product_mix is not None and len(product_mix):
        mix = product_mix.reindex([s["segment"] for s in segments]).fillna(0.0)
        out.append("<figure>" + stacked_bar_svg(labels, mix.to_numpy(), [str(c).replace("Mnt", "").replace(
            "Products", "").replace("Prods", "") for c in mix.columns])
                   + "<figcaption>Share of each segment's spend by product category.</figcaption></figure>")

    if economics is not None and len(economics):
        out.append("<h2>Campaign economics</h2>")
        eco = economics.reindex([s["segment"] for s in segments])
        rows = []
        for seg, (_, r) in zip(segments, eco.iterrows()):
            rows.append([_swatch_name(seg), _num(r.get("contacts")), _num(r.get("response_rate"), "{:.1%}"),
                         _num(r.get("expected_responders"), "{:,.1f}"), _num(r.get("cost")), _num(r.get("revenue")),
                         _num(r.get("profit")), _num(r.get("roi"), "{:.0%}")])
        out.append(_table(["Segment", "Contacts", "Response rate", "Expected responders", "Cost", "Revenue",
                           "Profit", "ROI"], rows, raw_first=True))
        out.append('<p class="muted">Response rate from the last campaign; cost per contact and revenue per '
                   "responder from the file (Z_CostContact, Z_Revenue).</p>")

    if zscores is not None and len(zscores):
        cols = [c for c in _ZSCORE_COLUMNS if c in zscores.columns]
        if cols:
            z = zscores.reindex([s["segment"] for s in segments])
            head = "".join(f"<th>{escape(_ZSCORE_COLUMNS[c])}</th>" for c in cols)
            body = "".join("<tr><td>" + _swatch_name(seg) + "</td>"
                           + "".join(_zscore_cell(z.loc[seg["segment"], c]) for c in cols) + "</tr>"
                           for seg in segments)
            out.append("<h2>How segments differ from the average customer</h2>"
                       '<div style="overflow-x:auto">'
                       f"<table><thead><tr><th>Segment</th>{head}</tr></thead><tbody>{body}</tbody></table></div>"
                       '<p class="muted">Standard deviations from the average customer: blue above, red below.</p>')

    out.append(f'<p class="muted">Generated by SegmentLens at {escape(generated_at)}.</p></body></html>')
    return "\n".join(out)
