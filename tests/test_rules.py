"""Segment rules from an explainable k-means threshold tree (IMM): fidelity, price, text, SQL, pandas, CLI."""
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from core.fitting.model import SegmentationModel
from core.insight.explanation import explain, explain_model, format_number, nice_threshold, threshold_tree
from tests.helpers import planted_frame

# Groups apart on single features (axis-aligned), so one threshold per split can separate them.
AXIS_CENTRES = np.array([[-3, 0, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 3, 0],
                         [0, -3, 0, 0, 0, -3, 0]], float)


@pytest.fixture(scope="module")
def planted():
    frame, truth = planted_frame(n_per=150, centres=AXIS_CENTRES, spread=0.6, seed=3)
    model = SegmentationModel(k=4, seed=0).fit(frame)
    return frame, model, explain_model(model, frame)


def test_planted_axis_aligned_segments_get_faithful_rules(planted):
    frame, model, rules = planted
    assert rules.fidelity >= 0.98
    assert all(seg.fidelity >= 0.95 for seg in rules.segments)
    assert len(rules.segments) == 4 and len([n for n in rules.nodes if n["segment"] is not None]) == 4
    assert 1.0 <= rules.price < 1.1
    np.testing.assert_array_equal(rules.assign(frame), rules.assign(frame[model.features].to_numpy()))


def test_sql_and_pandas_select_what_the_rule_selects(planted):
    frame, model, rules = planted
    assigned = rules.assign(frame)
    con = sqlite3.connect(":memory:")
    frame.assign(row=np.arange(len(frame))).to_sql("customers", con, index=False)
    for seg in rules.segments:
        expected = np.flatnonzero(assigned == seg.segment)
        assert frame.query(seg.pandas).index.tolist() == frame.index[expected].tolist()
        rows = [r[0] for r in con.execute(f"SELECT row FROM customers WHERE {seg.sql} ORDER BY row")]
        assert rows == expected.tolist()
        assert seg.n_rule == len(expected)


def test_rule_text_in_feature_units_with_labels():
    assert nice_threshold(68_391, 68_420) == 68_400
    assert nice_threshold(4, 5) == 4
    assert nice_threshold(0.31, 0.33) == 0.32
    assert format_number(68_400) == "68,400" and format_number(1234.5) == "1,234.5"
    X = pd.DataFrame({"Income": [20_000, 30_000, 90_000, 95_000, 91_000, 99_000.0],
                      "NumWebVisitsMonth": [8, 7, 2, 3, 8, 9.0]})
    labels = np.array([0, 0, 1, 1, 2, 2])
    centres = np.vstack([X[labels == s].mean().to_numpy() for s in range(3)])
    rules = explain(X, labels, centres, list(X.columns))
    assert rules.fidelity == 1.0
    texts = {s.segment: s.text for s in rules.segments}
    assert texts[1] == "Yearly household income > 50,000 and Web visits / month ≤ 5"
    assert texts[0] == "Yearly household income ≤ 50,000"
    assert rules.segments[1].sql == '"Income" > 50000 AND "NumWebVisitsMonth" <= 5'
    assert rules.segments[1].pandas == "`Income` > 50000 and `NumWebVisitsMonth` <= 5"


def test_imm_minimises_mistakes_and_drops_them():
    # One customer of segment 0 sits among segment 1: the best cut makes exactly that one mistake.
    X = np.array([[0.0], [1], [2], [10], [11], [12], [11.5]])
    labels = np.array([0, 0, 0, 1, 1, 1, 0])
    centres = np.array([[1.0], [11.0]])
    nodes = threshold_tree(X, labels, centres)
    assert nodes[0]["mistakes"] == 1 and 2 <= nodes[0]["threshold"] < 10
    rules = explain(X, labels, centres, ["Recency"])
    assert rules.fidelity == pytest.approx(6 / 7)
    assert rules.segments[0].fidelity == pytest.approx(3 / 4) and rules.segments[1].precision == pytest.approx(3 / 4)


def test_price_is_rule_inertia_over_kmeans_inertia():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(400, 2))
    model = SegmentationModel(k=3, features=["Age", "Income"], seed=0).fit(pd.DataFrame(Z, columns=["Age", "Income"]))
    frame = pd.DataFrame(Z, columns=["Age", "Income"])
    rules = explain_model(model, frame)
    assert rules.inertia_kmeans == pytest.approx(model.inertia_, rel=1e-6)
    assert rules.price == pytest.approx(rules.inertia_rules / rules.inertia_kmeans)
    assert rules.price >= 1.0 - 1e-9 and rules.fidelity < 1.0  # a round blob is not axis-aligned
    with pytest.raises(ValueError):
        explain(Z, np.zeros(3, int), np.zeros((1, 2)), ["Age", "Income"])


def test_cli_rules_json(tmp_path, capsys):
    from core.cli.commands import main
    from core.versions.pipeline import SAMPLE_PATH

    models = str(tmp_path / "m")
    assert main(["train", "--data", str(SAMPLE_PATH), "--models", models, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["rules", "--models", models, "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["fidelity"] <= 1 and out["price"] >= 1
    assert len(out["segments"]) == 6
    assert {"segment", "name", "rule", "sql", "pandas", "fidelity"} <= set(out["segments"][0])
    assert main(["rules", "--models", models, "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "price of explainability" in text and "WHERE" in text
    assert main(["rules", "--models", str(tmp_path / "none")]) == 2
    assert "no model" in capsys.readouterr().err


def test_api_segments_carry_each_segments_rule(live_server):
    import urllib.request

    with urllib.request.urlopen(f"{live_server.url}/api/v1/segments", timeout=60) as response:
        body = json.loads(response.read())
    assert 0 < body["rules"]["fidelity"] <= 1 and body["rules"]["price"] >= 1
    for row in body["segments"]:
        assert {"rule", "sql", "pandas", "fidelity", "precision"} == set(row["rule"])
        assert row["rule"]["rule"] and row["rule"]["sql"] and row["rule"]["pandas"].startswith("`")


def test_log_scale_features_are_stated_in_their_own_units():
    import numpy as np

    from core.insight.explanation import Condition

    # Frequency_log is a signed log1p of Frequency: the same customers as Frequency <= expm1(2).
    assert Condition("Frequency_log", None, 2.0).text() == f"Orders ≤ {np.expm1(2.0):.2f}"
    assert Condition("Monetary_log", 3.5, None).text().endswith(f"> {np.expm1(3.5):.2f}")
    # The SQL and pandas query name the user's column in units: the inverse transform of the cut.
    assert Condition("Frequency_log", None, float(np.log1p(7))).sql() == '"Frequency" <= 7'
    assert Condition("Frequency_log", None, float(np.log1p(7))).pandas() == "`Frequency` <= 7"
    assert Condition("Monetary_log", 3.5, None).sql() == f'"Monetary" > {float(np.expm1(3.5))!r}'
    assert Condition("Monetary_log", 3.5, None).to_dict() == {
        "feature": "Monetary", "label": "Total spend", "greater_than": float(np.expm1(3.5)), "at_most": None}


def test_rules_on_logged_features_cut_round_units_and_select_the_same_customers():
    rng = np.random.default_rng(5)
    orders = np.concatenate([rng.integers(1, 4, 200), rng.integers(6, 30, 200)]).astype(float)
    spend = np.round(np.concatenate([rng.gamma(2, 20, 200), rng.gamma(2, 200, 200)]), 2)
    frame = pd.DataFrame({"Frequency": orders, "Monetary": spend})
    frame["Frequency_log"] = np.log1p(frame["Frequency"])
    frame["Monetary_log"] = np.log1p(frame["Monetary"])
    features = ["Frequency_log", "Monetary_log"]
    labels = (orders >= 6).astype(int)
    centres = np.vstack([frame.loc[labels == s, features].mean().to_numpy() for s in range(2)])
    rules = explain(frame, labels, centres, features)
    assert rules.fidelity == 1.0
    root = rules.nodes[0]
    # The cut between 3 and 6 orders is a round number of orders (5), stored as its log.
    assert root["feature"] == "Frequency_log" and root["threshold"] == float(np.log1p(5))
    assert rules.segments[0].sql == '"Frequency" <= 5' and rules.segments[1].pandas == "`Frequency` > 5"
    assert rules.segments[0].text == "Orders ≤ 5"
    assigned = rules.assign(frame)
    con = sqlite3.connect(":memory:")
    frame.assign(row=np.arange(len(frame))).to_sql("customers", con, index=False)
    for seg in rules.segments:
        expected = np.flatnonzero(assigned == seg.segment)
        assert frame.query(seg.pandas).index.tolist() == expected.tolist()
        assert [r[0] for r in con.execute(f"SELECT row FROM customers WHERE {seg.sql} ORDER BY row")] == \
            expected.tolist()
