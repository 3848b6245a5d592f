"""Overview figures: segment sizes, share of customers against share of spend, and the per-segment numbers."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from ..theme import segment_colour, segment_colours
from .common import base_layout, plain, rgba, wrap_label
from .describe import with_summary


__all__ = ["sizes_figure", "spend_share_figure", "segment_numbers", "headline_numbers", "SYNTHETIC_SOURCE",
           "is_synthetic"]

#: The file name of the embedded demo sample (core.versions.pipeline's fallback when no data is configured).
SYNTHETIC_SOURCE = "synthetic_customers.tsv"


def is_synthetic(meta: dict, source: str | None = None) -> bool:
    """Whether the model was trained on (and the pages show) the synthetic demo sample."""
    return SYNTHETIC_SOURCE in {str(meta.get("data_source") or ""), str(source or "")}



def segment_numbers(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per segment: customers, share of customers, average spend and income, last-campaign response rate and
    share of total spend (the persona cards' numbers). Response is NaN when the file has no Response column."""
    groups = frame.groupby("segment")
    counts = groups.size().reindex(range(k), fill_value=0)
    spend = groups["Total_Spending"].sum().reindex(range(k), fill_value=0.0)
    out = pd.DataFrame({
        "customers": counts.astype(int),
        "share": counts / max(int(counts.sum()), 1),
        "avg_spend": groups["Total_Spending"].mean().reindex(range(k)),
        "avg_income": groups["Income"].mean().reindex(range(k)),
        "response_rate": (groups["Response"].mean().reindex(range(k)) if "Response" in frame
                          else pd.Series(math.nan, index=range(k))),
        "spend_share": spend / spend.sum() if spend.sum() > 0 else spend * 0.0,
    })
    out.index.name = "segment"
    return out


def headline_numbers(numbers: pd.DataFrame) -> dict:
    """Manager-level KPIs from :func:`segment_numbers`: the top segment by spend and its share of spend and of
    customers, spend per customer, the largest segment."""
    total_customers = int(numbers["customers"].sum())
    total_spend = float((numbers["avg_spend"].fillna(0) * numbers["customers"]).sum())
    top = int(numbers["spend_share"].idxmax())
    largest = int(numbers["customers"].idxmax())
    return {"top_segment": top, "top_spend_share": float(numbers.loc[top, "spend_share"]),
            "top_customer_share": float(numbers.loc[top, "share"]),
            "spend_per_customer": total_spend / total_customers if total_customers else math.nan,
            "total_spend": total_spend, "largest_segment": largest,
            "largest_share": float(numbers.loc[largest, "share"])}


def sizes_figure(sizes, names: list[str]) -> go.Figure:
    """Horizontal bars: customers per segment, labelled with share."""
    colours = segment_colours(len(names))
    labels = [wrap_label(f"{i} · {n}", 28) for i, n in enumerate(names)]
    fig = go.Figure(go.Bar(
        y=labels, x=sizes["n"].tolist(), orientation="h",
        marker_color=colours, text=[f"{s:.0%}" for s in sizes["share"]], textposition="auto",
        customdata=list(range(len(names))), hovertemplate="%{y}<br>%{x:,} customers<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title_text="Customers")
    # In words for people who cannot see the bars (issue 16): the largest and smallest segments.
    n = sizes["n"].astype(int).tolist()
    big, small = max(range(len(n)), key=n.__getitem__), min(range(len(n)), key=n.__getitem__)
    summary = (f"Segment {big} · {names[big]} is the largest, {sizes['share'].iloc[big]:.0%} of customers "
               f"({n[big]:,}); segment {small} · {names[small]} the smallest, {sizes['share'].iloc[small]:.0%} "
               f"({n[small]:,}).") if n else "No customers."
    return with_summary(base_layout(fig, height=320), summary)


def spend_share_figure(frame, names: list[str], numbers: pd.DataFrame | None = None) -> go.Figure:
    """Per segment (named, in its colour): share of customers (pale) next to share of total spend (solid);
    ``numbers`` (:func:`segment_numbers`, e.g. precomputed) spares reading the customers."""
    k = len(names)
    numbers = segment_numbers(frame, k) if numbers is None else numbers
    ticks = [wrap_label(n, 14) for n in names]
    colours = [segment_colour(i) for i in range(k)]
    hover_names = [plain(f"{i} · {n}") for i, n in enumerate(names)]
    fig = go.Figure([
        go.Bar(name="Share of customers", x=ticks, y=numbers["share"].tolist(), customdata=hover_names,
               marker={"color": [rgba(c, 0.3) for c in colours], "line": {"color": colours, "width": 1.5}},
               hovertemplate="%{customdata}<br>%{y:.1%} of customers<extra></extra>"),
        go.Bar(name="Share of total spend", x=ticks, y=numbers["spend_share"].tolist(), customdata=hover_names,
               marker={"color": colours}, texttemplate="%{y:.0%}", textposition="outside",
               hovertemplate="%{customdata}<br>%{y:.1%} of spend<extra></extra>"),
    ])
    fig.update_layout(barmode="group", bargap=0.25)
    fig.update_yaxes(tickformat=".0%", title_text="Share", rangemode="tozero")
    fig.update_xaxes(tickangle=0, automargin=True)
    fig = base_layout(fig, height=340)
    # Names under the bars need room; the legend goes above the plot, where it cannot sit on them.
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                      margin={"t": 36, "b": 16}, uniformtext={"minsize": 9, "mode": "hide"})
    return fig
