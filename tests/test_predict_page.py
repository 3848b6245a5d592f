"""The what-if page without a browser: its Services methods and its figures."""
import math

import pytest

from dashboard.figures.predict import distance_figure, flip_rows, map_figure, scenario_table
from dashboard.services import Services
from dashboard.theme import segment_colour
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def services(trained):
    """Services over the trained registry and the sample, without Flask (no cache)."""
    return Services(trained[0], None, SAMPLE)


def _texts(fields: dict, features) -> dict:
    return {f: str(fields[f]) for f in features}


def test_live_model_follows_the_manifest(services, trained):
    registry, version, model, meta = trained
    live = services.live_model()
    assert live.version == version and live.names == meta["segment_names"]
    assert services.live_model() is live  # unchanged manifest: the same object, no re-read
    registry.update_meta(version, segment_names=["Renamed"] + meta["segment_names"][1:])
    try:
        assert services.live_model().names[0] == "Renamed"
    finally:
        registry.update_meta(version, segment_names=meta["segment_names"])


def test_what_if_scores_like_the_model_and_explains(services, trained):
    model = trained[2]
    member = services.typical_member(2)
    r = services.what_if(_texts(member, model.features))
    assert r["errors"] == {}
    seg, conf, typ, dists = model.score_one([float(member[f]) for f in model.features])
    assert (r["segment"], r["confidence"], r["typicality"], r["distances"]) == (seg, conf, typ, dists)
    assert r["segment"] == 2  # the member closest to a centre belongs to that segment
    assert r["words"]["headline"].endswith(r["name"]) or r["name"] in r["words"]["headline"]
    assert [f["feature"] for f in r["flips"]] == model.features
    assert len(r["point"]) == 2 and all(math.isfinite(v) for v in r["point"])
    assert r["card"]["segment"] == 2 and r["card"]["response"]["n"] > 0


def test_what_if_reports_every_bad_field_and_no_answer(services, trained):
    model = trained[2]
    texts = _texts(services.typical_member(0), model.features)
    texts.update({model.features[0]: "abc", model.features[1]: "", model.features[2]: "-5"})
    r = services.what_if(texts)
    assert set(r["errors"]) == set(model.features[:3]) and "segment" not in r
    assert "enter a number" in r["errors"][model.features[0]] and "enter a value" in r["errors"][model.features[1]]


def test_typical_member_is_the_member_closest_to_the_centre(services, trained):
    model = trained[2]
    a = services.analysis()
    d = model.distances(a.frame)
    for seg in range(model.k):
        members = a.labels == seg
        best = a.frame["ID"].to_numpy()[members][d[members, seg].argmin()]
        assert services.typical_member(seg)["ID"] == best


def test_customer_fields_and_raw_derivation(services):
    a = services.analysis()
    row = a.frame.iloc[10]
    fields = services.customer_fields(str(int(row["ID"])))
    assert fields["Age"] == row["Age"] and fields["Year_Birth"] == row["Year_Birth"]
    derived, errors = services.derive_features({k: str(v) for k, v in fields.items()})
    assert errors == {}
    assert derived["Age"] == row["Age"] and derived["Total_Spending"] == pytest.approx(row["Total_Spending"])
    with pytest.raises(ValueError, match="no customer with ID 999999999"):
        services.customer_fields("999999999")
    with pytest.raises(ValueError, match="whole number"):
        services.customer_fields("abc")
    _, errors = services.derive_features({**{k: str(v) for k, v in fields.items()}, "MntWines": "lots"})
    assert set(errors) == {"MntWines"}


def test_scenarios_csv_is_formula_safe(services):
    import csv as csvlib
    import io

    text = services.scenarios_csv([{"scenario": "=HYPERLINK(\"x\")", "segment": 1, "Age": 40}])
    rows = list(csvlib.reader(io.StringIO(text)))
    assert rows[0] == ["scenario", "segment", "Age"] and rows[1] == ["'=HYPERLINK(\"x\")", "1", "40"]


def test_predict_form_has_data_ranges(services, trained):
    form = services.predict_form()
    assert [f["name"] for f in form["features"]] == trained[2].features
    age = next(f for f in form["features"] if f["name"] == "Age")
    assert age["min"] <= age["q25"] <= age["median"] <= age["q75"] <= age["max"] and age["integer"]
    assert (age["low"], age["high"]) == (16, 110)
    assert {g["feature"] for g in form["raw"]} == {"Age", "Total_Spending"}


# ---------------------------------------------------------------- figures
def test_distance_figure_bars_colours_and_outline():
    fig = distance_figure([2.0, 1.0, 3.0], ["A", "B", "C"], 1)
    (bar,) = fig.data
    assert list(bar.x) == [2.0, 1.0, 3.0] and list(bar.y) == ["0 · A", "1 · B", "2 · C"]
    assert list(bar.marker.color) == [segment_colour(i) for i in range(3)]
    assert bar.marker.line.color[1] == "#212529" and bar.marker.line.color[0] == "rgba(0,0,0,0)"
    assert "Distance" in fig.layout.xaxis.title.text and fig.layout.template.layout.paper_bgcolor == "white"


def test_map_figure_one_trace_per_segment_plus_the_star():
    background = {"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 0.0, 1.0], "segment": [0, 1, 1, 2],
                  "explained": [0.46, 0.15]}
    fig = map_figure(background, ["A", "B", "C"], [0.5, -0.5], 2)
    assert len(fig.data) == 4
    assert list(fig.data[1].x) == [1.0, 2.0] and fig.data[1].marker.color == segment_colour(1)
    star = fig.data[-1]
    assert star.marker.symbol == "star" and list(star.x) == [0.5] and star.marker.color == segment_colour(2)
    assert fig.layout.xaxis.title.text == "PC1 (46% of variance)"


def test_flip_rows_words():
    flips = [{"feature": "Age", "value": 40.0, "down": 30.0, "down_segment": 1, "up": None, "up_segment": None,
              "low": 25.0, "high": 80.0, "whole": True},
             {"feature": "Income", "value": 5e4, "down": None, "down_segment": None, "up": 61234.567,
              "up_segment": 2, "low": 2e3, "high": 1.6e5, "whole": False}]
    rows = flip_rows(flips, ["A", "B", "C"])
    assert rows.to_dict("records") == [
        {"Feature": "Age (years)", "Now": "40", "Lower": "≤ 30 → B", "Higher": "no change up to 80"},
        {"Feature": "Yearly household income", "Now": "50,000", "Lower": "no change down to 2,000",
         "Higher": "> 61,234.57 → C"},
    ]


def test_scenario_table_side_by_side():
    scenarios = [{"scenario": "Base", "segment_name": "A", "confidence": 0.5, "typicality": 0.25, "Age": 40},
                 {"scenario": "Older", "segment_name": "B", "confidence": 0.12, "typicality": 0.9, "Age": 70}]
    table = scenario_table(scenarios, ["Age"])
    assert list(table.columns) == ["1. Base", "2. Older"]
    assert table.loc["Segment"].tolist() == ["A", "B"] and table.loc["Age (years)"].tolist() == ["40", "70"]
    assert table.loc["Confidence"].tolist() == ["0.50", "0.12"]


def test_predict_form_for_a_mapped_model_uses_its_features_and_observed_ranges():
    """A model of a transaction log: one field per feature, ranges from the data, a log feature typed in units."""
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from dashboard.services.predict import parse_field, predict_form_spec

    monetary = np.array([0.0, 10.0, 50.0, 400.0])
    frame = pd.DataFrame({"Recency": [0.0, 5.0, 100.0, 300.0], "Frequency": [1, 2, 3, 9], "Monetary": monetary,
                          "Monetary_log": np.log1p(monetary)})
    spec = predict_form_spec(SimpleNamespace(frame=frame, features=["Recency", "Frequency", "Monetary_log"],
                                             meta={"input": "transactions"}))
    by_name = {f["name"]: f for f in spec["features"]}
    assert list(by_name) == ["Recency", "Frequency", "Monetary"]
    assert [f["feature"] for f in spec["features"]] == ["Recency", "Frequency", "Monetary_log"]
    assert (by_name["Recency"]["low"], by_name["Recency"]["high"]) == (0.0, 600.0)
    assert by_name["Frequency"]["integer"] and by_name["Frequency"]["max"] == 9
    # The log feature is typed in money: its label, quartiles and accepted range are in units.
    monetary_field = by_name["Monetary"]
    assert monetary_field["label"] == "Total spend" and monetary_field["logged"]
    assert (monetary_field["min"], monetary_field["max"]) == (0.0, 400.0)
    assert monetary_field["q25"] == pytest.approx(np.quantile(monetary, 0.25))
    assert (monetary_field["low"], monetary_field["high"]) == (0.0, 800.0)
    assert spec["raw"] == []  # no birth year or spend per category in this data
    assert parse_field("Recency", "601", (0.0, 600.0))[1] == "must be between 0 and 600"
    assert parse_field("Recency", "1,5", (0.0, 600.0)) == (15.0, None)
    assert parse_field("Recency", "abc", (0.0, 600.0))[1].startswith("enter a number")
