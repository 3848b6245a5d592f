"""core.versions.scoring: validation, derivation of features from raw columns, plain words, exact flip points."""
import math

import jsonschema
import numpy as np
import pytest

from core.versions import scoring
from core.reading.schema import DEFAULT_FEATURES, SPEND_COLUMNS

FEATURES = list(DEFAULT_FEATURES)
CUSTOMER = {"Age": 52, "Income": 58_000, "Total_Spending": 640, "NumWebPurchases": 4, "NumStorePurchases": 6,
            "NumWebVisitsMonth": 5, "Recency": 41}
SPEND = dict(zip(SPEND_COLUMNS, [300, 40, 200, 50, 20, 30]))  # sums to 640


# ---------------------------------------------------------------- single values
@pytest.mark.parametrize("value, fragment", [
    (True, "true/false"), ("52", "text"), (None, "null"), ({"v": 1}, "an object"), ([1], "a list"),
    (float("nan"), "finite"), (float("inf"), "finite"), (10 ** 400, "digits"), (1e300, "between"),
    (15, "between 16 and 110"), (111, "between 16 and 110"),
])
def test_check_number_refuses_with_a_reason(value, fragment):
    number, message = scoring.check_number("Age", value)
    assert number is None
    assert fragment in message


def test_check_number_accepts_the_bounds_inclusive():
    assert scoring.check_number("Age", 16) == (16.0, None)
    assert scoring.check_number("Age", 110.0) == (110.0, None)
    assert scoring.check_number("Income", 0) == (0.0, None)


def test_open_ended_fields_get_a_finite_ceiling():
    for name, (low, high) in scoring.FIELD_BOUNDS.items():
        assert math.isfinite(low) and math.isfinite(high) and low < high, name
    assert scoring.check_number("Income", 666_666)[1] is None  # the real file's outlier stays acceptable


def test_birth_year_range_matches_the_age_range():
    low, high = scoring.field_bounds("Year_Birth")
    assert (scoring.REFERENCE_YEAR - high, scoring.REFERENCE_YEAR - low) == scoring.field_bounds("Age")


@pytest.mark.parametrize("text, expected", [("52,000", 52000.0), (" 52000 ", 52000.0), ("1e3", 1000.0),
                                            ("52000.5", 52000.5), (52000, 52000.0)])
def test_parse_text_reads_what_people_type(text, expected):
    assert scoring.parse_text("Income", text) == (expected, None)


@pytest.mark.parametrize("text, fragment", [("", "enter a value"), ("   ", "enter a value"), (None, "enter a value"),
                                            ("abc", "enter a number"), ("5,2", "enter a number"),
                                            ("-1", "between 0 and")])
def test_parse_text_messages(text, fragment):
    value, message = scoring.parse_text("Income", text)
    assert value is None and fragment in message


@pytest.mark.parametrize("value, ok", [(7, True), ("C-17", True), (0, True), (-1, False), (1.5, False),
                                       (True, False), (None, False), ("x" * 65, False), (2 ** 60, False)])
def test_check_id(value, ok):
    assert (scoring.check_id(value) is None) is ok


# ---------------------------------------------------------------- customers
def test_explicit_features_in_model_order():
    shuffled = dict(reversed(list(CUSTOMER.items())))
    values, errors = scoring.customer_values(shuffled, FEATURES)
    assert errors == []
    assert values == [float(CUSTOMER[f]) for f in FEATURES]


def test_raw_columns_give_the_same_values_as_explicit_features():
    raw = {k: v for k, v in CUSTOMER.items() if k not in ("Age", "Total_Spending")}
    raw.update(Year_Birth=scoring.REFERENCE_YEAR - 52, **SPEND)
    assert scoring.customer_values(raw, FEATURES) == scoring.customer_values(CUSTOMER, FEATURES)


def test_explicit_feature_wins_over_derived_one():
    both = {**CUSTOMER, "Year_Birth": 1950, **{c: 1 for c in SPEND_COLUMNS}}
    values, errors = scoring.customer_values(both, FEATURES)
    assert errors == []
    assert values[FEATURES.index("Age")] == 52 and values[FEATURES.index("Total_Spending")] == 640


def test_children_purchases_and_campaigns_derive_too():
    fields = {"Kidhome": 1, "Teenhome": 2, "NumDealsPurchases": 1, "NumWebPurchases": 2, "NumCatalogPurchases": 3,
              "NumStorePurchases": 4, **{f"AcceptedCmp{i}": i % 2 for i in range(1, 6)}}
    values, errors = scoring.customer_values(fields, ["Total_Children", "Total_Purchases", "Campaigns_Accepted"])
    assert errors == [] and values == [3.0, 10.0, 3.0]


def test_every_problem_is_named_with_its_index():
    bad = {"Age": "old", "Income": None, "NumWebPurchases": True, "NumStorePurchases": {"n": 1},
           "NumWebVisitsMonth": float("inf"), "MntWines": 10, "ID": 1.5}
    values, errors = scoring.customer_values(bad, FEATURES, index=3)
    assert values is None
    by_field = {e["field"]: e["message"] for e in errors}
    assert all(e["index"] == 3 for e in errors)
    assert set(by_field) == {"Age", "Income", "NumWebPurchases", "NumStorePurchases", "NumWebVisitsMonth", "ID",
                             "Total_Spending", "Recency"}
    assert "missing MntFruits" in by_field["Total_Spending"]
    assert by_field["Recency"] == "is required"


def test_unknown_fields_are_ignored_but_known_ones_must_be_valid():
    assert scoring.customer_values({**CUSTOMER, "Education": "PhD", "Note": [1, 2]}, FEATURES)[1] == []
    _, errors = scoring.customer_values({**CUSTOMER, "Kidhome": 99}, FEATURES)  # not a feature, still checked
    assert [e["field"] for e in errors] == ["Kidhome"]


def test_parse_request_single_and_batch_keep_order_and_ids():
    rows, ids, batch = scoring.parse_request({**CUSTOMER, "ID": "a"}, FEATURES)
    assert (len(rows), ids, batch) == (1, ["a"], False)
    customers = [{**CUSTOMER, "Age": 20 + i, "ID": i} for i in range(5)]
    rows, ids, batch = scoring.parse_request({"customers": customers}, FEATURES)
    assert batch and ids == list(range(5)) and [r[0] for r in rows] == [20, 21, 22, 23, 24]


@pytest.mark.parametrize("body, field", [([CUSTOMER], "body"), ("x", "body"), ({"customers": {"a": 1}}, "customers"),
                                         ({"customers": [CUSTOMER] * 4}, "customers")])
def test_parse_request_refuses_bad_shapes(body, field):
    with pytest.raises(scoring.ValidationFailed) as info:
        scoring.parse_request(body, FEATURES, max_batch=3)
    assert info.value.errors[0]["field"] == field


def test_parse_request_lists_errors_of_every_customer():
    customers = [CUSTOMER, {**CUSTOMER, "Age": 5}, CUSTOMER, {**CUSTOMER, "Recency": -1}]
    with pytest.raises(scoring.ValidationFailed) as info:
        scoring.parse_request({"customers": customers}, FEATURES)
    assert [(e["index"], e["field"]) for e in info.value.errors] == [(1, "Age"), (3, "Recency")]


# ---------------------------------------------------------------- schema agrees with validation
@pytest.mark.parametrize("body", [
    CUSTOMER, {**CUSTOMER, "ID": 3}, {k: v for k, v in CUSTOMER.items() if k != "Age"},
    {**{k: v for k, v in CUSTOMER.items() if k != "Age"}, "Year_Birth": 1980},
    {**{k: v for k, v in CUSTOMER.items() if k != "Total_Spending"}, **SPEND},
    {**{k: v for k, v in CUSTOMER.items() if k != "Total_Spending"}, "MntWines": 3},
    {**CUSTOMER, "Age": 200}, {**CUSTOMER, "Age": True}, {**CUSTOMER, "Year_Birth": 2015}, {**CUSTOMER, "ID": 1.5},
    {**CUSTOMER, "Kidhome": -1}, {**CUSTOMER, "Other": "anything"},
])
def test_json_schema_accepts_exactly_what_validation_accepts(body):
    schema = scoring.customer_schema(FEATURES)
    schema_ok = jsonschema.Draft7Validator(schema).is_valid(body)
    assert schema_ok == (scoring.customer_values(body, FEATURES)[1] == [])


# ---------------------------------------------------------------- words
def test_describe_borderline_names_both_segments():
    names = ["Affluent store loyalists", "Web bargain hunters", "Budget browsers"]
    words = scoring.describe(0, 0.05, 0.6, [1.0, 1.05, 3.0], names)
    assert words["headline"] == "Borderline between Affluent store loyalists and Web bargain hunters"
    assert words["runner_up"] == 1
    assert "typical member" in words["typicality_text"]


def test_describe_clear_and_leaning_and_unusual():
    names = ["A", "B", "C"]
    assert scoring.describe(2, 0.7, 0.5, [3.0, 4.0, 1.0], names)["headline"] == "Clearly C"
    assert scoring.describe(2, 0.2, 0.5, [3.0, 1.3, 1.0], names)["headline"] == "C, leaning towards B"
    assert "unusual" in scoring.describe(2, 0.7, 0.03, [3.0, 4.0, 1.0], names)["typicality_text"]
    assert "97%" in scoring.describe(2, 0.7, 0.03, [3.0, 4.0, 1.0], names)["typicality_text"]


# ---------------------------------------------------------------- flip points
def test_flip_points_on_a_line():
    # One feature, centroids at 0, 2 and 5 (scaled = raw): boundaries at 1 and 3.5.
    flips = scoring.flip_points([0.5], [0.0], [1.0], [[0.0], [2.0], [5.0]], ["x"], {"x": (-10, 10)})
    assert (flips[0].down, flips[0].up, flips[0].up_segment) == (None, 1.0, 1)
    flips = scoring.flip_points([2.5], [0.0], [1.0], [[0.0], [2.0], [5.0]], ["x"], {"x": (-10, 10)})
    assert (flips[0].down, flips[0].down_segment, flips[0].up, flips[0].up_segment) == (1.0, 0, 3.5, 2)
    # Outside the plausible range: no change reported.
    flips = scoring.flip_points([2.5], [0.0], [1.0], [[0.0], [2.0], [5.0]], ["x"], {"x": (1.5, 3.0)})
    assert flips[0].down is None and flips[0].up is None


def test_flip_points_whole_values_take_the_segment_found_there():
    # Moving x from 0 with y held at 0: boundaries at 1.403 (0 -> 1) and 1.597 (1 -> 2) both fall
    # between the whole values 1 and 2, so the first whole value past the change (2) is in segment 2.
    centroids = [[0.0, 0.0], [1.5, 1.4], [3.0, 0.0]]
    flips = scoring.flip_points([0.0, 0.0], [0.0, 0.0], [1.0, 1.0], centroids, ["x", "y"],
                                {"x": (-10, 10), "y": (-10, 10)}, integer={"x"})
    assert (flips[0].up, flips[0].up_segment, flips[0].whole) == (2.0, 2, True)
    exact = scoring.flip_points([0.0, 0.0], [0.0, 0.0], [1.0, 1.0], centroids, ["x", "y"],
                                {"x": (-10, 10), "y": (-10, 10)})
    assert exact[0].up == pytest.approx(4.21 / 3) and exact[0].up_segment == 1 and not exact[0].whole


def test_flip_points_are_exact_on_a_trained_model(trained):
    _registry, _version, model, _meta = trained
    rng = np.random.default_rng(3)
    centres = model.centroids_original().to_numpy()
    ranges = {f: (lo, hi) for f, lo, hi in zip(model.features, centres.min(0) * 0.2, centres.max(0) * 2.5)}
    checked = 0
    for _ in range(8):
        values = (centres[rng.integers(model.k)] * rng.uniform(0.7, 1.3, len(model.features))).tolist()
        current = model.score_one(values)[0]
        flips = scoring.flip_points(values, model.mean_.tolist(), model.scale_.tolist(), model.centroids_.tolist(),
                                    model.features, ranges)
        for j, flip in enumerate(flips):
            for side, sign in (("down", -1), ("up", +1)):
                edge, seg = getattr(flip, side), getattr(flip, f"{side}_segment")
                stop = edge if edge is not None else (flip.low if sign < 0 else flip.high)
                # Nothing changes between the current value and the reported point (or the range end) ...
                for v in np.linspace(values[j], stop, 60)[:-1]:
                    assert model.score_one(values[:j] + [float(v)] + values[j + 1:])[0] == current
                if edge is None:
                    continue
                # ... and just past it the customer is in the reported segment.
                eps = 1e-6 * max(1.0, abs(edge))
                moved = values[:j] + [edge + sign * eps] + values[j + 1:]
                assert model.score_one(moved)[0] == seg != current
                checked += 1
    assert checked > 10
