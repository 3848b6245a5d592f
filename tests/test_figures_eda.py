"""Explore-data layer: core.insight.eda (rule rows, cut-offs, aggregates) and dashboard.figures.eda."""
import json

import numpy as np
import pytest

from core.reading.cleaning import RULES
from core.insight.eda import (
    correlations,
    enrolments,
    explore,
    histogram,
    missing_values,
    numeric_columns,
    outlier_summary,
    rule_rows,
    summary,
)
from dashboard.figures import eda as figures
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def sample():
    return explore(SAMPLE)


@pytest.fixture(scope="module")
def sample_summary(sample):
    return summary(sample)


def _counts(rows, action):
    return rows[rows["action"] == action].groupby("rule").size().to_dict()


def test_rule_rows_match_the_cleaning_report_on_the_sample(sample):
    assert _counts(sample.rows, "dropped") == {k: v for k, v in sample.report.dropped.items() if v}
    assert _counts(sample.rows, "changed") == {k: v for k, v in sample.report.changed.items() if v}
    assert list(sample.rows.columns) == ["rule", "action", "ID", "line"]  # no personal field beyond the ID
    # The 24 empty incomes: exactly the rows of the file with no Income.
    empty = sample.raw.index[sample.raw["Income"].isna()]
    assert sorted(sample.rows.loc[sample.rows["rule"] == "missing_income", "line"]) == sorted(empty + 2)
    dropped_lines = set(sample.rows.loc[sample.rows["action"] == "dropped", "line"] - 2)
    assert dropped_lines == set(sample.raw.index.difference(sample.frame.index))


def test_rule_rows_attribute_every_rule_on_a_damaged_file(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    header = lines[0].split("\t")
    col = {name: header.index(name) for name in header}

    def damage(i, column, value):
        cells = lines[i].split("\t")
        cells[col[column]] = value
        lines[i] = "\t".join(cells)

    damage(3, "ID", lines[2].split("\t")[0])   # repeated ID
    damage(4, "Recency", "-5")                  # out of range
    damage(5, "Income", "lots")                 # unreadable value
    damage(6, "Education", "")                  # required field empty
    damage(7, "Year_Birth", "1850")             # implausible birth year
    damage(8, "Income", "")                     # missing income (besides the sample's own 24)
    damage(9, "Marital_Status", "YOLO")         # changed, kept
    path = tmp_path / "damaged.tsv"
    path.write_text("\n".join(lines) + "\n")
    ex = explore(path)
    assert _counts(ex.rows, "dropped") == {k: v for k, v in ex.report.dropped.items() if v}
    assert _counts(ex.rows, "changed") == {k: v for k, v in ex.report.changed.items() if v}
    by_line = dict(zip(ex.rows["line"], ex.rows["rule"]))
    assert by_line[4] == "duplicate_id" and by_line[5] == "out_of_range" and by_line[6] == "unreadable_values"
    assert by_line[7] == "missing_required" and by_line[8] == "implausible_birth_year"
    assert by_line[9] == "missing_income" and by_line[10] == "odd_marital_status"
    # Rows are listed in the rules' order.
    order = [list(RULES).index(r) for r in ex.rows["rule"]]
    assert order == sorted(order)


def test_rule_rows_beyond_max_rows_are_counted_not_listed(sample):
    rows = rule_rows(sample.raw, sample.frame.drop(columns=[c for c in sample.frame if c not in sample.raw]),
                     max_rows=10)
    assert (rows["rule"] == "not_itemised").sum() == len(sample.raw) - len(sample.frame) - 10


def test_income_fence_separates_the_dropped_income_from_the_kept_ones(sample):
    fence = sample.cutoffs["Income"][0]["value"]
    extreme = sample.rows.loc[sample.rows["rule"] == "extreme_income", "line"] - 2
    assert len(extreme) == 1 and (sample.raw.loc[extreme, "Income"] > fence).all()
    assert sample.frame["Income"].max() <= fence
    assert [c["value"] for c in sample.cutoffs["Year_Birth"]] == [1926, 2010]
    assert [c["value"] for c in sample.cutoffs["Age"]] == [16, 100]


def test_aggregates(sample):
    missing = missing_values(sample.raw).set_index("column")
    assert missing.loc["Income", "missing"] == 24 and missing["missing"].sum() == 24
    assert missing.loc["Income", "share"] == pytest.approx(24 / 2240)
    enrol = enrolments(sample.frame)
    assert enrol["customers"].sum() == len(sample.frame)
    assert (enrol["period"].diff().dropna().dt.days.between(28, 31)).all()  # every month, zeros included
    h = histogram(sample.raw["Income"])
    assert sum(h["counts"]) == h["n"] == 2240 - 24 and len(h["edges"]) == len(h["counts"]) + 1
    kids = histogram(sample.raw["Kidhome"])
    assert kids["edges"] == [-0.5, 0.5, 1.5, 2.5] and sum(kids["counts"]) == 2240
    assert "ID" not in numeric_columns(sample.raw) and "Z_Revenue" not in numeric_columns(sample.raw)
    out = outlier_summary(sample.frame, ["Income"]).iloc[0]
    q1, q3 = np.percentile(sample.frame["Income"], [25, 75])
    assert out["high"] == pytest.approx(q3 + 1.5 * (q3 - q1))
    assert out["above"] == int((sample.frame["Income"] > out["high"]).sum())
    corr = correlations(sample.frame, ["Income", "Total_Spending", "Age"])
    assert corr.loc["Income", "Total_Spending"] == pytest.approx(
        np.corrcoef(sample.frame["Income"], sample.frame["Total_Spending"])[0, 1])


def test_summary_is_aggregates_only_and_json(sample_summary):
    text = json.dumps(sample_summary)
    assert sample_summary["rows_read"] == 2240 and sample_summary["rows_used"] == 2212
    assert {tuple(sorted(r)) for r in sample_summary["rule_rows"]} == {("ID", "action", "line", "rule")}
    assert len(text) < 200_000  # bins and counts, not customers
    assert sample_summary["histograms"]["Age"]["cleaned"] and not sample_summary["histograms"]["Income"]["cleaned"]


def test_distribution_figure_draws_the_cutoff_and_the_dropped_bar(sample_summary):
    s = sample_summary
    fig = figures.distribution_figure("Income", s["histograms"]["Income"], s["cutoffs"]["Income"])
    fence = s["cutoffs"]["Income"][0]["value"]
    assert [shape.x0 for shape in fig.layout.shapes] == [fence]
    assert "far-out fence" in fig.layout.annotations[0].text
    bar = fig.data[0]
    orange = [i for i, c in enumerate(bar.marker.color) if c != "#5B7083"]
    assert [bar.text[i] for i in orange] == ["1"]  # the one income beyond the fence
    assert fig.layout.xaxis.range[1] >= max(bar.x)
    assert sum(bar.y) == s["histograms"]["Income"]["n"]
    birth = figures.distribution_figure("Year_Birth", s["histograms"]["Year_Birth"], s["cutoffs"]["Year_Birth"])
    dropped = sum(int(t) for t in birth.data[0].text if t)
    assert dropped == 3 and len(birth.layout.shapes) == 2


def test_labels_are_words_not_column_names(sample_summary):
    for option in figures.column_options(sample_summary["histograms"]):
        assert "_" not in option["label"] and not option["label"].startswith(("Mnt", "Num", "Accepted Cmp"))
    fig = figures.correlation_figure(sample_summary["correlations"])
    assert "Yearly household income" in fig.data[0].x and not any("_" in x for x in fig.data[0].x)
    assert all("_" not in figures.rule_label(r) for r in RULES)


def test_missing_enrolment_and_table(sample_summary):
    s = sample_summary
    fig = figures.missing_figure(s["missing"], s["rows_read"])
    assert list(fig.data[0].y) == ["Yearly household income"] and list(fig.data[0].x) == [24]
    none = figures.missing_figure([{"column": "ID", "missing": 0, "share": 0.0}], 10)
    assert "No empty cells" in none.layout.annotations[0].text
    enrol = figures.enrolment_figure(s["enrolments"])
    assert sum(enrol.data[0].y) == s["rows_used"]
    rows = figures.rule_rows_table(s["rule_rows"])
    assert len(rows) == len(s["rule_rows"]) == 35
    assert set(rows[0]) == {"rule", "action", "why", "id", "line"}
    assert rows[0]["rule"] == "Income empty" and rows[-1]["action"] == "changed, kept"
    text = figures.outlier_text("Income", s["outliers"])
    assert "median" in text and "Tukey" in text
    assert "no values" in figures.outlier_text("Nope", s["outliers"])


def test_empty_inputs_say_why():
    assert "no values" in figures.distribution_figure("Income", {"counts": [], "edges": [], "n": 0}).layout.annotations[0].text
    assert figures.correlation_figure({"columns": []}).layout.annotations[0].text
    assert "no enrolment dates" in figures.enrolment_figure({"period": []}).layout.annotations[0].text
