"""Profiles and compare: core.insight.profiles.compare_segments, the figure functions, profile tables, renaming."""
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from core.insight import profiles
from core.versions.pipeline import prepare
from core.versions.registry import Registry
from dashboard.figures import compare as fc
from dashboard.figures import profiles as fp
from dashboard.services import Services, build_analysis, profile_tables
from dashboard.theme import segment_colour


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def analysis(trained, sample_path):
    """The analysis of the sample's trained model, as the pages see it."""
    registry, version, model, _ = trained
    return build_analysis(model, registry.metadata(version), prepare(sample_path))


@pytest.fixture(scope="module")
def names(analysis):
    return [p.name for p in analysis.personas]


def _annotation(fig) -> str:
    return " ".join(a.text for a in fig.layout.annotations)


# ------------------------------------------------------------------ core: compare_segments
def test_compare_segments_matches_hand_computation():
    frame = pd.DataFrame({
        "x": [1.0, 2.0, 3.0, 5.0, 7.0, 100.0],
        "y": [0.0, 1.0, 2.0, 1.2, 1.6, 100.0],
        "c": [4.0, 4.0, 4.0, 4.0, 4.0, 4.0],
    })
    labels = np.array([0, 0, 0, 1, 1, 2])  # segment 2 must not leak into either side
    out = profiles.compare_segments(frame, labels, 0, 1, ["x", "y", "c", "absent"])
    assert list(out.index) == ["x", "y", "c"]
    assert list(out.columns) == ["mean_a", "mean_b", "diff", "cohens_d", "magnitude"]
    # x: means 2 and 6; variances 1 and 2 (ddof=1); pooled var = (2*1 + 1*2) / 3 = 4/3.
    assert out.loc["x", "mean_a"] == pytest.approx(2.0)
    assert out.loc["x", "mean_b"] == pytest.approx(6.0)
    assert out.loc["x", "diff"] == pytest.approx(-4.0)
    assert out.loc["x", "cohens_d"] == pytest.approx(-4.0 / math.sqrt(4.0 / 3.0))  # -3.464
    assert out.loc["x", "magnitude"] == "large"
    # y: means 1 and 1.4; variances 1 and 0.08; pooled var = (2*1 + 1*0.08) / 3.
    assert out.loc["y", "cohens_d"] == pytest.approx(-0.4 / math.sqrt(2.08 / 3.0))  # -0.480
    assert out.loc["y", "magnitude"] == "small"
    # A constant equal in both segments: no difference (0), not an undefined one.
    assert out.loc["c", "cohens_d"] == 0.0
    assert out.loc["c", "magnitude"] == "negligible"


def test_compare_segments_is_antisymmetric_and_flags_undefined():
    frame = pd.DataFrame({"x": [1.0, 2.0, 4.0, 8.0], "k": [1.0, 1.0, 2.0, 2.0]})
    labels = [0, 0, 1, 1]
    ab = profiles.compare_segments(frame, labels, 0, 1, ["x", "k"])
    ba = profiles.compare_segments(frame, labels, 1, 0, ["x", "k"])
    assert ab.loc["x", "cohens_d"] == pytest.approx(-ba.loc["x", "cohens_d"])
    # Different constants in each segment: no spread, so d is undefined (NaN, "n/a"), never inf.
    assert np.isnan(ab.loc["k", "cohens_d"]) and ab.loc["k", "magnitude"] == "n/a"
    # An empty segment gives NaN means and "n/a", not an exception.
    empty = profiles.compare_segments(frame, labels, 0, 7, ["x"])
    assert np.isnan(empty.loc["x", "mean_b"]) and empty.loc["x", "magnitude"] == "n/a"


@pytest.mark.parametrize("d, words", [
    (0.0, "negligible"), (0.199, "negligible"), (-0.2, "small"), (0.499, "small"), (0.5, "medium"),
    (-0.799, "medium"), (0.8, "large"), (-2.5, "large"), (float("nan"), "n/a"), (None, "n/a"),
])
def test_effect_magnitude_thresholds(d, words):
    assert profiles.effect_magnitude(d) == words


def test_compare_segments_on_sample_matches_numpy(analysis):
    frame, labels = analysis.frame, analysis.labels
    out = profiles.compare_segments(frame, labels, 0, 1)
    assert list(out.index) == [c for c in profiles.PROFILE_COLUMNS if c in frame]
    a, b = frame.loc[labels == 0, "Income"].to_numpy(), frame.loc[labels == 1, "Income"].to_numpy()
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    assert out.loc["Income", "cohens_d"] == pytest.approx((a.mean() - b.mean()) / pooled)


# ------------------------------------------------------------------ profiles figures
def test_heatmap_shows_the_zscores_with_names_and_highlight(analysis, names):
    fig = fp.zscore_heatmap(analysis.zscores, names, highlight=2)
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    np.testing.assert_allclose(np.array(fig.data[0].z, float), analysis.zscores.to_numpy(float))
    assert fig.data[0].zmid == 0
    assert [y.replace("<br>", " ") for y in fig.data[0].y] == [f"{i} · {n}" for i, n in enumerate(names)]
    assert list(fig.data[0].x) == [fp.feature_label(c) for c in analysis.zscores.columns]
    assert "Feature" in fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "Segment"
    (shape,) = fig.layout.shapes
    assert (shape.y0, shape.y1) == (1.5, 2.5)
    renamed = fp.zscore_heatmap(analysis.zscores, ["Wine lovers"] + names[1:])
    assert renamed.data[0].y[0] == "0 · Wine lovers" and not renamed.layout.shapes


def test_distribution_boxes_are_exact_quartiles_per_segment(analysis, names):
    fig = fp.distribution_figure(analysis.frame, "Income", names, highlight=1)
    assert len(fig.data) == analysis.k
    grouped = analysis.frame.groupby("segment")["Income"]
    for seg, trace in enumerate(fig.data):
        assert trace.type == "box" and trace.boxpoints is False
        assert trace.median[0] == pytest.approx(grouped.median()[seg])
        assert trace.q1[0] == pytest.approx(grouped.quantile(0.25)[seg])
        assert trace.mean[0] == pytest.approx(grouped.mean()[seg])
        assert trace.marker.color == segment_colour(seg)
        assert trace.opacity == (1.0 if seg == 1 else pytest.approx(0.35))
    assert fig.layout.xaxis.title.text == "Yearly household income"  # core.reading.schema.FEATURE_LABELS
    # No raw values are shipped to the browser, whatever the number of customers.
    assert all(t.x is None and t.y is not None and len(t.y) == 1 for t in fig.data)
    assert "No column" in _annotation(fp.distribution_figure(analysis.frame, "Nope", names))


def test_mix_figure_stacks_categories_per_segment(analysis, names):
    fig = fp.mix_figure(analysis.product_mix, names, what="spend", highlight=0)
    assert fig.layout.barmode == "stack"
    assert len(fig.data) == analysis.product_mix.shape[1] == 6
    assert [t.name for t in fig.data] == ["Wine", "Fruit", "Meat", "Fish", "Sweets", "Gold"]
    np.testing.assert_allclose(fig.data[0].x, analysis.product_mix["Wines"].to_numpy())
    assert np.allclose(np.sum([t.x for t in fig.data], axis=0), 1.0)
    assert fig.layout.xaxis.title.text == "Share of spend"
    assert fig.data[0].y[0].startswith("<b>")  # the highlighted segment's label is bold
    channel = fp.mix_figure(analysis.channel_mix, names, what="purchases")
    assert [t.name for t in channel.data] == ["Web", "Catalogue", "Store"]


def test_campaign_error_bars_are_wilson_intervals(analysis, names):
    fig = fp.campaigns_figure(analysis.campaigns, names, highlight=3)
    k = analysis.k
    assert len(fig.data) == k
    assert list(fig.data[0].x) == ["1st", "2nd", "3rd", "4th", "5th", "Last"]
    frame, labels = analysis.frame, analysis.labels
    columns = ["AcceptedCmp1", "AcceptedCmp2", "AcceptedCmp3", "AcceptedCmp4", "AcceptedCmp5", "Response"]
    for seg, trace in enumerate(fig.data):
        rows = frame[labels == seg]
        accepted = rows[columns].sum().to_numpy()
        low, high = profiles.wilson_interval(accepted, np.full(len(columns), len(rows)))
        rate = accepted / len(rows)
        np.testing.assert_allclose(trace.y, rate)
        np.testing.assert_allclose(trace.error_y.array, high - rate)
        np.testing.assert_allclose(trace.error_y.arrayminus, rate - low)
        assert trace.marker.color == segment_colour(seg)
    assert fig.layout.yaxis.title.text == "Accepted (share of segment)"
    assert fig.layout.xaxis.title.text.startswith("Campaign")
    empty = fp.campaigns_figure(analysis.campaigns.iloc[0:0], names)
    assert not empty.data and "no campaign columns" in _annotation(empty)


def test_economics_table_and_assumptions(analysis, names):
    table = fp.economics_table(analysis.economics, names)
    assert list(table.columns) == ["Segment", "Customers", "Response rate", "Expected responders", "Cost",
                                   "Revenue", "Profit", "ROI"]
    assert len(table) == analysis.k
    econ = analysis.economics.loc[0]
    assert table.loc[0, "Segment"] == f"0 · {names[0]}"
    assert table.loc[0, "Customers"] == f"{int(analysis.sizes.loc[0, 'n']):,}"
    assert table.loc[0, "Response rate"] == f"{econ['response_rate']:.1%}"
    assert table.loc[0, "Profit"] == f"{econ['profit']:,.0f}"
    text = fp.economics_assumptions(analysis.frame)
    assert "like the last one" in text and "3.00 per contact" in text and "11.00 per responder" in text
    assert "Z_CostContact" in text
    assert "defaults" in fp.economics_assumptions(analysis.frame.drop(columns=["Z_CostContact", "Z_Revenue"]))


def test_empty_segment_is_shown_not_crashed(analysis, names):
    # A model applied to other data can leave a segment empty: its rows are NaN after reindexing.
    frame, labels = analysis.frame, analysis.labels.copy()
    labels[labels == 5] = 0
    k = analysis.k
    econ = profiles.economics(frame, labels).reindex(range(k))
    table = fp.economics_table(econ, names)
    assert table.loc[5, "Customers"] == "0" and table.loc[5, "Response rate"] == "n/a"
    box = fp.distribution_figure(frame.assign(segment=labels), "Income", names)
    assert len(box.data) == k - 1
    kpis = dict(fc.segment_kpis(profiles.sizes(labels, k), profiles.summary_stats(frame, labels, ["Income"]),
                                econ, 5))
    assert kpis["Customers"] == "0" and kpis["Mean income"] == "n/a" and kpis["Response rate"] == "n/a"
    empty = fc.overlay_distribution(frame.assign(segment=labels), "Income", 5, 5, names)
    assert not empty.data and "no customers" in _annotation(empty)


def test_recommendations_phrase_over_indexing_categories():
    lift = pd.DataFrame({"Wines": [0.9, 1.25], "GoldProds": [1.84, 1.0]}, index=[0, 1])
    recs = fp.recommendations(lift, ["Bargain hunters", "Wine lovers"], profiles.LIFT_THRESHOLD)
    assert [r["text"] for r in recs] == [
        "Bargain hunters spends 1.8x the average share on gold: feature it.",
        "Wine lovers spends 1.2x the average share on wine: feature it.",
    ]
    assert fp.recommendations(lift, ["a", "b"], 2.0) == []


def test_recommendations_on_sample_cover_every_lift_over_threshold(analysis, names):
    recs = fp.recommendations(analysis.lift, names, profiles.LIFT_THRESHOLD)
    assert len(recs) == int((analysis.lift >= profiles.LIFT_THRESHOLD).to_numpy().sum())
    assert [r["lift"] for r in recs] == sorted((r["lift"] for r in recs), reverse=True)


def test_most_different_segment():
    z = pd.DataFrame({"a": [0.0, 0.1, 3.0], "b": [0.0, 0.0, -1.0]})
    assert fp.most_different(z, 0) == 2 and fp.most_different(z, 2) == 0
    assert fp.most_different(z.iloc[:1], 0) is None


# ------------------------------------------------------------------ compare figures
def test_effect_size_figure_sorted_and_coloured_by_higher_segment(analysis, names):
    comparison = profiles.compare_segments(analysis.frame, analysis.labels, 1, 4)
    fig = fc.effect_size_figure(comparison, 1, 4, names)
    assert len(fig.data) == 2
    higher_a, higher_b = fig.data
    assert higher_a.marker.color == segment_colour(1) and higher_b.marker.color == segment_colour(4)
    assert all(x >= 0 for x in higher_a.x) and all(x < 0 for x in higher_b.x)
    by_label = {fc.feature_label(f): d for f, d in comparison["cohens_d"].items()}
    for trace in fig.data:
        for label, x in zip(trace.y, trace.x):
            assert x == pytest.approx(by_label[label])
    order = list(fig.layout.yaxis.categoryarray)
    assert [abs(by_label[label]) for label in order] == sorted(map(abs, by_label.values()), reverse=True)
    assert "Cohen's d" in fig.layout.xaxis.title.text
    same = fc.effect_size_figure(profiles.compare_segments(analysis.frame, analysis.labels, 2, 2), 2, 2, names)
    assert not same.data and "two different segments" in _annotation(same)


def test_comparison_table_columns_and_order():
    comparison = pd.DataFrame({"mean_a": [1.0, 10.0], "mean_b": [1.5, 5.0], "diff": [-0.5, 5.0],
                               "cohens_d": [-0.3, 1.2], "magnitude": ["small", "large"]},
                              index=pd.Index(["Age", "Income"], name="feature"))
    table = fc.comparison_table(comparison, 2, 5)
    assert list(table.columns) == ["Feature", "Mean in 2", "Mean in 5", "Difference", "Cohen's d", "Size"]
    # Labels from core.reading.schema.FEATURE_LABELS; money in whole units, counts as counts (issue 14).
    assert table["Feature"].tolist() == ["Yearly household income", "Age (years)"]
    assert table.iloc[0].tolist() == ["Yearly household income", "10", "5", "+5", "+1.20", "large"]
    assert table.iloc[1].tolist() == ["Age (years)", "1.0", "1.5", "-50 per 100", "-0.30", "small"]


def test_counts_show_as_counts_not_fractions():
    assert fc.format_value("Kidhome", 0.04) == "4 per 100"
    assert fc.format_value("NumWebPurchases", 5.04) == "5.0"
    assert fc.format_value("Recency", 48.7) == "49"
    assert fc.format_value("MntWines", 639.14) == "639"
    assert fc.format_value("Income", 73860.13) == "73,860"
    assert fc.format_value("Kidhome", -0.54, signed=True) == "-54 per 100"
    assert fc.format_value("Total_Spending", 1060.9, signed=True) == "+1,061"
    assert fc.format_value("Income", float("nan")) == "n/a"


def test_comparison_summary_names_the_three_biggest_differences():
    comparison = pd.DataFrame({"mean_a": [1256.8, 8.9, 0.04, 61.0, 5.0], "mean_b": [195.9, 3.9, 0.58, 60.0, 5.1],
                               "diff": [1060.9, 5.0, -0.54, 1.0, -0.1], "cohens_d": [2.81, 2.53, -1.31, 0.05, -0.6],
                               "magnitude": ["large", "large", "large", "negligible", "medium"]},
                              index=pd.Index(["Total_Spending", "NumStorePurchases", "Kidhome", "Recency",
                                              "NumWebPurchases"], name="feature"))
    names = ["Zero", "Big spenders", "Two", "Three", "Budget"]
    lines = fc.comparison_summary(comparison, 1, 4, names)
    assert lines == [
        "Total spend, 2 years: 1 · Big spenders is 6.4× as high as 4 · Budget (1,257 against 196; "
        "Cohen's d 2.8, large).",
        "Store purchases: 1 · Big spenders is 2.3× as high as 4 · Budget (8.9 against 3.9; Cohen's d 2.5, large).",
        "Small children at home: 4 · Budget is 14.5× as high as 1 · Big spenders (58 per 100 against 4 per 100; "
        "Cohen's d 1.3, large).",
    ]
    # Only medium or larger effects; none for a segment against itself.
    assert len(fc.comparison_summary(comparison, 1, 4, names, top=10)) == 4
    assert fc.comparison_summary(comparison, 2, 2, names) == []


def test_overlay_distribution_shares_and_bins(analysis, names):
    fig = fc.overlay_distribution(analysis.frame, "Income", 0, 5, names)
    assert len(fig.data) == 2 and fig.layout.barmode == "overlay"
    for trace, seg in zip(fig.data, (0, 5)):
        assert trace.marker.color == segment_colour(seg)
        assert sum(trace.y) == pytest.approx(1.0)  # shares of each segment, so sizes do not matter
    assert fig.layout.xaxis.title.text.startswith("Yearly household income")
    assert fig.layout.yaxis.title.text == "Share of segment"
    kids = fc.overlay_distribution(analysis.frame, "Kidhome", 0, 5, names)
    assert list(kids.data[0].x) == [0.0, 1.0, 2.0]  # counts get one bar per whole number
    share_no_kids = (analysis.frame.loc[analysis.labels == 5, "Kidhome"] == 0).mean()
    assert kids.data[1].y[0] == pytest.approx(share_no_kids)


def test_mix_pair_side_by_side(analysis, names):
    fig = fc.mix_pair_figure(analysis.channel_mix, 2, 3, names, what="purchases")
    assert len(fig.data) == 2 and fig.layout.barmode == "group"
    assert list(fig.data[0].x) == ["Web", "Catalogue", "Store"]
    np.testing.assert_allclose(fig.data[1].y, analysis.channel_mix.loc[3].to_numpy())
    assert fig.data[0].marker.color == segment_colour(2) and fig.data[1].marker.color == segment_colour(3)
    assert fig.layout.yaxis.title.text == "Share of purchases"


def test_segment_kpis(analysis):
    kpis = dict(fc.segment_kpis(analysis.sizes, analysis.stats, analysis.economics, 3))
    frame = analysis.frame[analysis.labels == 3]
    assert kpis["Customers"] == f"{len(frame):,}"
    assert kpis["Share"] == f"{len(frame) / len(analysis.frame):.1%}"
    assert kpis["Mean income"] == f"{frame['Income'].mean():,.0f}"
    assert kpis["Mean spend"] == f"{frame['Total_Spending'].mean():,.0f}"
    assert kpis["Response rate"] == f"{frame['Response'].mean():.1%}"


# ------------------------------------------------------------------ services: tables and renaming
def test_profile_tables_one_column_per_segment(analysis, names):
    out = profile_tables(analysis, names)
    assert list(out.columns[:2]) == ["table", "measure"]
    assert list(out.columns[2:]) == [f"{i} · {n}" for i, n in enumerate(names)]
    tables = set(out["table"])
    assert {"size", "mean", "median", "z-score", "product mix (share of spend)", "channel mix (share of purchases)",
            "campaign acceptance", "campaign economics (like the last campaign)"} <= tables
    z = out[(out["table"] == "z-score") & (out["measure"] == "Income")].iloc[0, 2:].to_numpy(float)
    np.testing.assert_allclose(z, analysis.zscores["Income"].to_numpy(), atol=1e-6)
    low = out[(out["table"] == "campaign acceptance") & (out["measure"] == "Response 95% low")].iloc[0, 2:]
    expected = analysis.campaigns.query("campaign == 'Response'").set_index("segment")["low"]
    np.testing.assert_allclose(low.to_numpy(float), expected.to_numpy(), atol=1e-6)


@pytest.fixture
def services(trained, tmp_path, sample_path):
    """Services over a private copy of the trained registry (renames must not leak to other tests)."""
    registry, *_ = trained
    shutil.copytree(registry.root, tmp_path / "models")
    return Services(Registry(tmp_path / "models"), None, sample_path)


def test_rename_is_saved_and_duplicates_refused(services):
    before = services.segment_names()
    assert services.rename_segment(2, "  Wine   lovers ") == "Wine lovers"
    assert services.segment_names()[2] == "Wine lovers"
    assert services.segment_names()[:2] == before[:2]
    # Saved with the model version: a fresh Services on the same folder sees it.
    again = Services(Registry(services.registry.root), None, services.data_path)
    assert again.segment_names()[2] == "Wine lovers"
    with pytest.raises(ValueError, match="already called"):
        services.rename_segment(0, "wine LOVERS")
    with pytest.raises(ValueError, match="enter a name"):
        services.rename_segment(0, "   ")
    assert services.segment_names()[0] == before[0]
    # The download carries the new name in its header, spreadsheet-safe.
    csv = services.profiles_csv()
    assert "2 · Wine lovers" in csv.splitlines()[0]
    comparison = services.compare_segments(0, 2)
    assert comparison.loc["Income", "cohens_d"] == pytest.approx(
        profiles.compare_segments(services.analysis().frame, services.analysis().labels, 0, 2)
        .loc["Income", "cohens_d"])
