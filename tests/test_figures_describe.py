"""Charts in words (issue 16): summaries and tables derived from figures, and the accessible colours."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from dashboard import ids
from dashboard.components import chart_text, graph_card, segment_badge
from dashboard.figures.common import empty_figure
from dashboard.figures.describe import MAX_ROWS, clean_text, describe, with_summary
from dashboard.figures.overview import sizes_figure
from dashboard.theme import SEGMENT_COLOURS, contrast_ratio, segment_text_colour


def test_bar_chart_names_the_largest_and_smallest_with_their_shares():
    sizes = pd.DataFrame({"n": [120, 412, 300], "share": [120 / 832, 412 / 832, 300 / 832]})
    fig = sizes_figure(sizes, ["Young savers", "Affluent <b>families</b>", "Budget & deals"])
    generic = describe(go.Figure(fig).update_layout(meta={}))  # a copy without its own sentence
    assert "highest 1 · Affluent <b>families</b> (412, 50%)" in generic.summary  # shown as typed, not as markup
    assert "lowest 0 · Young savers (120, 14%)" in generic.summary
    # The overview's own sentence (issue 16's example), with the table from the figure.
    text = describe(fig)
    assert text.summary == ("Segment 1 · Affluent <b>families</b> is the largest, 50% of customers (412); "
                            "segment 0 · Young savers the smallest, 14% (120).")
    assert text.columns == ["Category", "Customers"]
    assert text.rows == [["0 · Young savers", "120 (14%)"], ["1 · Affluent <b>families</b>", "412 (50%)"],
                         ["2 · Budget & deals", "300 (36%)"]]


def test_grouped_bars_give_one_column_per_series_and_percentages_from_the_axis_format():
    fig = go.Figure([go.Bar(name="Share of customers", x=["A", "B"], y=np.array([0.25, 0.75])),
                     go.Bar(name="Share of spend", x=["A", "B"], y=[0.6, 0.4])])
    fig.update_yaxes(tickformat=".0%")
    text = describe(fig)
    assert text.columns == ["Category", "Share of customers", "Share of spend"]
    assert text.rows == [["A", "25.0%", "60.0%"], ["B", "75.0%", "40.0%"]]
    assert "Share of customers: highest B (75.0%), lowest A (25.0%)." in text.summary
    assert "Share of spend: highest A (60.0%), lowest B (40.0%)." in text.summary


def test_lines_follow_each_series_and_the_title_leads():
    fig = go.Figure(go.Scatter(x=[2, 3, 4, 5], y=[0.31, 0.42, 0.38, 0.35], mode="lines+markers", name="Silhouette"))
    fig.update_layout(title="Silhouette against k")
    fig.update_xaxes(title_text="k")
    text = describe(fig)
    assert text.summary == ("Silhouette against k. Silhouette: 0.31 at k 2 to 0.35 at 5; highest 0.42 at 3.")
    assert text.columns == ["Series", "k", "Value"]
    assert text.rows[1] == ["Silhouette", "3", "0.42"]


def test_a_map_of_many_customers_is_counted_per_group_not_listed():
    rng = np.random.default_rng(0)
    fig = go.Figure([go.Scattergl(x=rng.normal(size=n), y=rng.normal(size=n), mode="markers", name=name)
                     for n, name in ((500, "0 · Savers"), (900, "1 · Spenders"))])
    text = describe(fig)
    assert text.summary == "1,400 points in 2 groups; the largest is 1 · Spenders (900)."
    assert [r[:2] for r in text.rows] == [["0 · Savers", "500"], ["1 · Spenders", "900"]]
    assert text.note


def test_heatmap_histogram_box_and_sankey():
    heat = go.Figure(go.Heatmap(z=[[0.5, -1.2], [2.0, 0.1]], x=["Income", "Age"], y=["Seg 0", "Seg 1"]))
    text = describe(heat)
    assert text.summary == "Highest 2 at Seg 1, Income; lowest -1.2 at Seg 0, Age."
    assert text.rows == [["Seg 0", "0.5", "-1.2"], ["Seg 1", "2", "0.1"]]

    box = describe(go.Figure(go.Box(y=list(range(1, 102)), name="Income")))
    assert box.rows == [["Income", "101", "1", "26", "51", "76", "101"]]
    assert box.summary == "Income: 101 values from 1 to 101, median 51."

    sankey = describe(go.Figure(go.Sankey(node={"label": ["A", "B", "C"]},
                                          link={"source": [0, 0, 1], "target": [1, 2, 2], "value": [5, 40, 7]})))
    assert sankey.summary == "3 flows; the largest is A → C (40)."
    assert sankey.rows[0] == ["A", "C", "40"]


def test_empty_figure_says_why_and_an_own_summary_wins():
    assert describe(empty_figure("Fix the form first")).summary == "Fix the form first"
    fig = with_summary(go.Figure(go.Bar(x=["a"], y=[1])), "Segment 2 is the largest, 19 % of customers.")
    assert describe(fig).summary == "Segment 2 is the largest, 19 % of customers."
    assert describe(fig.to_plotly_json()).summary == describe(fig).summary  # a figure dict (from the browser)


def test_long_tables_are_cut_with_a_note():
    fig = go.Figure(go.Scatter(x=list(range(200)), y=list(range(200)), mode="lines"))
    text = describe(fig)
    assert len(text.rows) == MAX_ROWS and text.note == f"The first {MAX_ROWS} of 200 points."


def test_clean_text_drops_plotly_markup_but_keeps_typed_text():
    assert clean_text("Big<br>spenders &amp; &lt;b&gt;") == "Big spenders & <b>"
    assert clean_text(None) == ""


def test_every_graph_card_carries_its_name_summary_and_table():
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 3]))
    card = graph_card("Customers per segment", "some-graph", figure=fig)
    figure = card.children[1].children
    assert figure.to_plotly_json()["props"]["aria-label"] == "Customers per segment"
    summary, details = figure.children[1], figure.children[2]
    assert summary.id == {"type": ids.CHART_SUMMARY, "graph": "some-graph"}
    assert summary.children == "Highest b (3), lowest a (1)."
    assert details.children[0].children == "View as table"
    assert details.children[1].to_plotly_json()["props"]["aria-label"] == "Customers per segment: data"
    table = details.children[1].children.children[0]  # scroll box > table div > dbc.Table
    assert [th.children for th in table.children[0].children.children] == ["Category", "Values"]
    assert chart_text("other")[0].children == "The chart is being drawn."


@pytest.mark.parametrize("segment", range(len(SEGMENT_COLOURS)))
def test_segment_badges_keep_text_contrast_aa(segment):
    assert contrast_ratio(SEGMENT_COLOURS[segment], segment_text_colour(segment)) >= 4.5
    assert segment_badge(segment, "x").style["color"] == segment_text_colour(segment)


def _simulate(hex_colour: str, matrix) -> np.ndarray:
    """A colour as seen with a colour-vision deficiency (Machado et al. 2009, severity 1), in linear RGB."""
    srgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return np.clip(np.asarray(matrix) @ linear, 0, 1)


def _lab(linear: np.ndarray) -> np.ndarray:
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    xyz /= np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("name,matrix", [
    ("protanopia", [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]),
    ("deuteranopia", [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]),
    ("tritanopia", [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]),
])
def test_the_first_six_segment_colours_stay_apart_for_common_colour_vision_deficiencies(name, matrix):
    labs = [_lab(_simulate(c, matrix)) for c in SEGMENT_COLOURS[:6]]
    closest = min(np.linalg.norm(a - b) for i, a in enumerate(labs) for b in labs[i + 1:])
    assert closest >= 10, f"two of the first six segment colours look alike with {name} (ΔE {closest:.1f})"
