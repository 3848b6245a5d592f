"""Overview and data-page figures, and the escaping of user-typed names in the figures of overview, predict, data."""
import math

import pandas as pd
import pytest

from dashboard.figures import data as fd
from dashboard.figures import overview as fo
from dashboard.figures import predict as fpr
from dashboard.theme import segment_colour

MARKUP = '<a href="https://evil.example">Click</a> & <b>me</b>'


@pytest.fixture()
def frame():
    """Six customers in three segments with hand-checkable numbers."""
    return pd.DataFrame({
        "segment": [0, 0, 1, 1, 1, 2],
        "Total_Spending": [100.0, 300.0, 50.0, 50.0, 100.0, 400.0],
        "Income": [40_000.0, 60_000.0, 20_000.0, 30_000.0, 40_000.0, 90_000.0],
        "Response": [1, 0, 0, 0, 1, 1],
    })


def test_segment_numbers_by_hand(frame):
    n = fo.segment_numbers(frame, 4)  # segment 3 has nobody
    assert n["customers"].tolist() == [2, 3, 1, 0]
    assert n["share"].tolist() == pytest.approx([2 / 6, 3 / 6, 1 / 6, 0.0])
    assert n.loc[0, "avg_spend"] == 200.0 and n.loc[1, "avg_spend"] == pytest.approx(200 / 3)
    assert n.loc[2, "avg_income"] == 90_000.0 and n.loc[1, "avg_income"] == 30_000.0
    assert n.loc[0, "response_rate"] == 0.5 and n.loc[1, "response_rate"] == pytest.approx(1 / 3)
    assert n["spend_share"].tolist()[:3] == pytest.approx([400 / 1000, 200 / 1000, 400 / 1000])
    assert n.loc[3, "spend_share"] == 0.0 and math.isnan(n.loc[3, "avg_spend"])


def test_segment_numbers_without_response_column(frame):
    n = fo.segment_numbers(frame.drop(columns="Response"), 3)
    assert n["response_rate"].isna().all()


def test_headline_numbers(frame):
    head = fo.headline_numbers(fo.segment_numbers(frame, 3))
    # Segments 0 and 2 tie on 40 % of spend: the lower number wins; segment 1 is the largest.
    assert head["top_segment"] == 0 and head["top_spend_share"] == pytest.approx(0.4)
    assert head["top_customer_share"] == pytest.approx(2 / 6)
    assert head["spend_per_customer"] == pytest.approx(1000 / 6) and head["total_spend"] == pytest.approx(1000)
    assert head["largest_segment"] == 1 and head["largest_share"] == pytest.approx(0.5)


def test_is_synthetic():
    assert fo.is_synthetic({"data_source": "synthetic_customers.tsv"})
    assert fo.is_synthetic({}, "synthetic_customers.tsv")
    assert not fo.is_synthetic({"data_source": "marketing_campaign.csv"}, "marketing_campaign.csv")


def test_spend_share_figure_uses_names_and_segment_colours(frame):
    fig = fo.spend_share_figure(frame, ["Big spenders", "Occasional buyers", "Rich"])
    customers, spend = fig.data
    assert [t.replace("<br>", " ") for t in customers.x] == ["Big spenders", "Occasional buyers", "Rich"]
    assert "Segment" not in " ".join(customers.x)
    assert list(spend.marker.color) == [segment_colour(i) for i in range(3)]
    assert list(customers.marker.line.color) == [segment_colour(i) for i in range(3)]
    assert customers.marker.color[1] == "rgba(230,159,0,0.3)"  # segment 1's colour, pale
    assert list(customers.y) == pytest.approx([2 / 6, 3 / 6, 1 / 6])
    assert list(spend.y) == pytest.approx([0.4, 0.2, 0.4])


def test_sizes_figure_labels(frame):
    sizes = pd.DataFrame({"n": [2, 3, 1], "share": [2 / 6, 3 / 6, 1 / 6]})
    fig = fo.sizes_figure(sizes, ["A", "B", "C"])
    assert list(fig.data[0].y) == ["0 · A", "1 · B", "2 · C"] and list(fig.data[0].text) == ["33%", "50%", "17%"]


def _texts(fig) -> str:
    """Every label a figure carries (axis ticks, legend names, hover templates, custom data)."""
    parts = []
    for trace in fig.data:
        for attr in ("x", "y", "name", "hovertemplate", "customdata", "text"):
            value = getattr(trace, attr, None)
            if value is None:
                continue
            parts.extend(str(v) for v in (value if isinstance(value, (list, tuple)) else
                                          (value.tolist() if hasattr(value, "tolist") else [value])))
    return " ".join(parts)


@pytest.mark.parametrize("build", [
    lambda names, frame: fo.spend_share_figure(frame, names),
    lambda names, frame: fo.sizes_figure(pd.DataFrame({"n": [1, 1, 1], "share": [1 / 3] * 3}), names),
    lambda names, frame: fpr.distance_figure([1.0, 2.0, 3.0], names, 0),
    lambda names, frame: fpr.map_figure({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0], "segment": [0, 1, 2],
                                         "explained": [0.5, 0.2]}, names, [0.0, 0.0], 0),
    lambda names, frame: fd.share_comparison_figure(
        [{"segment": i, "name": n, "share": 0.3, "reference_share": 0.3, "matched": i, "matched_name": n}
         for i, n in enumerate(names)], "v0001", "v0002"),
], ids=["spend_share", "sizes", "distance", "map", "data_shares"])
def test_user_typed_names_are_text_in_figures(build, frame):
    names = [MARKUP, "Plain", "%{x} braces"]
    fig = build(names, frame)
    text = _texts(fig)
    assert "<a " not in text and "<b>" not in text and "</a>" not in text
    assert "&lt;a" in text and "&lt;b&gt;" in text
    templates = " ".join(str(t.hovertemplate or "") for t in fig.data)
    assert "%{x} braces" not in templates  # a name is never read as a template field


def test_distance_figure_wraps_long_names_and_keeps_its_axis_title():
    fig = fpr.distance_figure([1.0, 2.0], ["Big-spending offline shoppers", "B"], 0)
    assert fig.data[0].y[0] == "0 · Big-spending<br>offline shoppers"
    assert fig.layout.xaxis.title.text == "Distance (SD units)" and fig.layout.xaxis.automargin
