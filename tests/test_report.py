"""The self-contained HTML segment report (core.insight.report): content, escaping, charts, nothing to fetch."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from core.insight import profiles
from core.versions.pipeline import prepare
from core.insight.report import bar_chart_svg, segment_report, stacked_bar_svg
from tests.conftest import SAMPLE

COLOURS = ["#0072B2", "#E69F00", "#009E73"]


@pytest.fixture(scope="module")
def inputs() -> dict:
    """Profiles of three segments of the sample (segments from income terciles: deterministic, no fit)."""
    frame = prepare(SAMPLE).frame
    labels = pd.qcut(frame["Income"], 3, labels=False).to_numpy()
    sizes = profiles.sizes(labels, 3)
    people = profiles.personas(frame, labels, 3)
    segments = [{"segment": i, "name": people[i].name, "description": people[i].description,
                 "traits": people[i].traits, "n": int(sizes.loc[i, "n"]), "share": float(sizes.loc[i, "share"]),
                 "colour": COLOURS[i]} for i in range(3)]
    return {"segments": segments, "economics": profiles.economics(frame, labels),
            "campaigns": profiles.campaign_rates(frame, labels), "product_mix": profiles.product_mix(frame, labels),
            "zscores": profiles.zscores(frame, labels),
            "summary": {"version": "v0007", "k": 3, "features": ["Income"], "data_source": "sample.tsv",
                        "data_fingerprint": "abc123", "n_customers": len(frame), "silhouette": 0.5123,
                        "created": "2026-01-02T03:04:05+00:00"}}


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]


def _parse(page: str) -> _Collector:
    parser = _Collector()
    parser.feed(page)
    return parser


def test_report_content(inputs):
    page = segment_report(title="Segments", generated_at="2026-01-01T00:00:00Z", **inputs)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for seg in inputs["segments"]:
        assert f"{seg['segment']} · {seg['name']}" in page
        assert f"{seg['n']:,} customers" in page
    assert "v0007" in page and "0.512" in page and "sample.tsv" in page and "2,212" in page
    assert "Campaign economics" in page and "How segments differ from the average customer" in page
    eco = inputs["economics"]
    for i in range(3):
        assert f"{eco.loc[i, 'profit']:,.0f}" in page and f"{eco.loc[i, 'response_rate']:.1%}" in page
    parsed = _parse(page)
    assert parsed.tags.count("svg") == 4  # sizes, response, profit, product mix
    assert parsed.tags.count("table") == 2
    z = inputs["zscores"]
    assert f"{z.loc[0, 'Income']:+.2f}" in page and f"{z.loc[2, 'Income']:+.2f}" in page  # income terciles
    # Segment colours are used for the segments' bars, in order.
    for seg in inputs["segments"]:
        title = re.escape(f"<title>{seg['segment']} · {seg['name']}: ")
        fills = re.findall(r'height="22" fill="(#[0-9A-Fa-f]{6})">' + title, page)
        assert len(fills) == 3 and set(fills) == {seg["colour"]}  # its bar in each of the three bar charts


def test_report_is_self_contained(inputs):
    page = segment_report(title="Segments", **inputs)
    parsed = _parse(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    assert not [a for a in parsed.attrs if a[1] in ("src", "href")]
    assert "url(" not in page and "@import" not in page


def test_everything_from_data_is_escaped(inputs):
    evil = '<script>alert("x")</script>'
    segments = [dict(s) for s in inputs["segments"]]
    segments[0].update(name=evil, description="<img src=x onerror=alert(1)>", traits=["<b>bold</b>"],
                       colour="red;background:url(http://evil.example/x)")
    summary = dict(inputs["summary"], data_source="<i>file</i>.csv", features=["<x>"])
    page = segment_report(title="<title>", summary=summary, segments=segments, economics=inputs["economics"],
                          campaigns=inputs["campaigns"], product_mix=inputs["product_mix"], zscores=inputs["zscores"])
    parsed = _parse(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "b" not in parsed.tags
    assert "i" not in parsed.tags and "x" not in parsed.tags
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "evil.example" not in page  # a colour that is not #rrggbb is replaced, not inserted
    assert "#7f7f7f" in page


def test_bar_chart_geometry_and_missing_values():
    svg = bar_chart_svg(["a", "b", "c"], [10.0, -5.0, float("nan")], ["#111111", "#222222", "#333333"])
    rects = re.findall(r'<rect x="([\d.]+)" y="\d+" width="([\d.]+)"', svg)
    assert len(rects) == 2  # no bar for the missing value
    zero = float(re.search(r'<line x1="([\d.]+)"', svg).group(1))
    (x_pos, w_pos), (x_neg, w_neg) = ((float(x), float(w)) for x, w in rects)
    assert x_pos == pytest.approx(zero) and x_neg + w_neg == pytest.approx(zero, abs=0.2)
    assert w_pos == pytest.approx(2 * w_neg, rel=0.01)  # lengths proportional to the values
    assert ">n/a<" in svg and ">10<" in svg and ">-5<" in svg


def test_bar_chart_whiskers_cover_the_interval():
    svg = bar_chart_svg(["a"], [0.5], ["#111111"], low=[0.25], high=[1.0], value_format="{:.2f}")
    path = re.search(r'<path d="M([\d.]+),[\d.]+V[\d.]+M[\d.]+,[\d.]+H([\d.]+)', svg)
    rect = re.search(r'<rect x="([\d.]+)" y="\d+" width="([\d.]+)"', svg)
    x0, width = float(rect.group(1)), float(rect.group(2))
    low, high = float(path.group(1)), float(path.group(2))
    assert low == pytest.approx(x0 + width / 2, abs=0.2) and high == pytest.approx(x0 + width * 2, abs=0.2)


def test_stacked_bars_are_proportional():
    svg = stacked_bar_svg(["s0"], np.array([[1.0, 3.0]]), ["wine", "meat"])
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)" height="22"', svg)]
    assert len(widths) == 2 and widths[1] == pytest.approx(3 * widths[0], rel=0.01)
    assert ">25%<" in svg and ">75%<" in svg and ">wine<" in svg
