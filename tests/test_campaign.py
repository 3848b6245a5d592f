"""Campaign planning (core.campaigns.campaign, core.campaigns.store, the audiences API): values checked by hand."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from core.campaigns import campaign as c
from core.campaigns.campaign import CampaignError, Economics
from core.campaigns.store import CampaignStore, audience_csv, plan_record
from tests.conftest import SAMPLE


# ---------------------------------------------------------------- propensity
def _noise_frame(n=240, seed=0):
    """Customers whose features say nothing about Response: only out-of-fold scoring shows that."""
    rng = np.random.default_rng(seed)
    cols = c.propensity_features(pd.DataFrame({k: [0.0] for k in c._BASE + c._EARLIER}))
    frame = pd.DataFrame(rng.normal(size=(n, len(cols))), columns=cols)
    frame["ID"] = np.arange(n)
    frame["Response"] = rng.permutation(np.r_[np.ones(n // 4), np.zeros(n - n // 4)]).astype(int)
    return frame, rng.integers(0, 3, n)


def test_propensities_are_out_of_fold_not_in_sample():
    frame, labels = _noise_frame()
    fitted = c.fit_propensity(frame, labels, seed=3, folds=5)
    # Pure noise: honest (out-of-fold) AUC stays near 0.5; in-sample on 29 noise columns would be far above.
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, _ = c._design(frame, labels, 3)
    y = frame["Response"].to_numpy()
    in_sample = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y).predict_proba(X)[:, 1]
    assert roc_auc_score(y, in_sample) > 0.7
    assert fitted.auc < 0.62
    # Every customer's propensity is what a model fitted on the other folds predicts for them.
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    for train, test in cv.split(X, y):
        held_out = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X[train], y[train])
        np.testing.assert_allclose(fitted.propensity[test], held_out.predict_proba(X[test])[:, 1], rtol=1e-6)
    assert not np.allclose(fitted.propensity, in_sample)
    assert len(fitted.fold_aucs) == 5 and fitted.n == 240 and fitted.responders == 60


def test_response_never_leaks_into_the_features():
    frame, labels = _noise_frame()
    frame["Campaigns_Accepted"] = frame["Response"]  # a sum that contains the label
    frame["Z_Revenue"] = 11
    names = c.propensity_features(frame)
    assert "Response" not in names and "Campaigns_Accepted" not in names and "Z_Revenue" not in names
    X1, _ = c._design(frame, labels, 3)
    X2, _ = c._design(frame.assign(Response=1 - frame["Response"]), labels, 3)
    np.testing.assert_array_equal(X1, X2)


def test_propensity_on_the_sample_is_better_than_chance_and_calibrated():
    from core.versions.pipeline import prepare

    frame = prepare(SAMPLE).frame
    labels = np.arange(len(frame)) % 4
    fitted = c.fit_propensity(frame, labels, seed=42)
    assert 0.65 < fitted.auc < 0.95
    cal = fitted.calibration
    assert cal["n"].sum() == len(frame) and len(cal) == 10
    # Out-of-fold means match the observed rate overall to within a point.
    assert abs(fitted.propensity.mean() - frame["Response"].mean()) < 0.01
    assert (cal["predicted"].diff().dropna() >= 0).all()
    again = c.fit_propensity(frame, labels, seed=42)
    np.testing.assert_array_equal(fitted.propensity, again.propensity)


def test_propensity_refuses_a_frame_without_usable_response():
    frame, labels = _noise_frame()
    with pytest.raises(CampaignError, match="^Response: the data has no"):
        c.fit_propensity(frame.drop(columns="Response"), labels)
    with pytest.raises(CampaignError, match=r"^Response: 1 row\(s\) are not 0 or 1"):
        c.fit_propensity(frame.assign(Response=np.r_[2, frame["Response"].to_numpy()[1:]]), labels)
    with pytest.raises(CampaignError, match="need at least 5 responders"):
        c.fit_propensity(frame.assign(Response=(frame.index < 3).astype(int)), labels)


def test_segment_response_interval_by_hand():
    p = np.r_[np.tile([0.5, 0.2, 0.1], 10), 0.4]
    labels = np.r_[np.zeros(30, int), 1]
    out = c.segment_response(p, labels, 2, observed=np.r_[np.tile([1, 0, 0], 10), 1])
    sd = math.sqrt(10 * (0.25 + 0.16 + 0.09))  # Poisson-binomial: sum of p(1-p)
    assert out.loc[0, "expected_rate"] == pytest.approx(8 / 30)
    assert out.loc[0, "low"] == pytest.approx((8 - 1.96 * sd) / 30)
    assert out.loc[0, "high"] == pytest.approx((8 + 1.96 * sd) / 30)
    assert out.loc[0, "observed_rate"] == pytest.approx(1 / 3) and out.loc[1, "n"] == 1
    assert out.loc[1, "low"] == 0  # never below zero responders


# ---------------------------------------------------------------- the plan
P = np.array([0.9, 0.5, 0.3, 0.2, 0.1, 0.05])
IDS = np.array([10, 11, 12, 13, 14, 15])
SEG = np.array([0, 1, 0, 1, 0, 1])


def test_plan_arithmetic_by_hand():
    econ = Economics.checked(cost=1, revenue=4, holdout=0)
    plan = c.build_plan(IDS, SEG, P, econ)
    # gains 2.6, 1.0, 0.2, -0.2, -0.6, -0.8 -> cumulative 2.6, 3.6, 3.8, 3.6, 3.0, 2.2
    np.testing.assert_allclose(plan.curve["cumulative_profit"], [2.6, 3.6, 3.8, 3.6, 3.0, 2.2])
    assert plan.best_n == 3 and plan.break_even_n == 6 and plan.break_even_propensity == 0.25
    assert plan.audience["ID"].tolist() == [10, 11, 12] and set(plan.audience["group"]) == {"target"}
    t = plan.totals
    sd = math.sqrt(0.09 + 0.25 + 0.21)
    assert t["n_targeted"] == 3 and t["n_holdout"] == 0
    assert t["expected_responders"] == pytest.approx(1.7)
    assert t["cost"] == pytest.approx(3.0) and t["expected_revenue"] == pytest.approx(6.8)
    assert t["expected_profit"] == pytest.approx(3.8)  # sum of propensity x revenue - cost
    assert t["profit_low"] == pytest.approx((1.7 - 1.96 * sd) * 4 - 3)
    assert t["profit_high"] == pytest.approx((1.7 + 1.96 * sd) * 4 - 3)
    seg = plan.segments
    assert seg.loc[0, "n_targeted"] == 2 and seg.loc[0, "expected_profit"] == pytest.approx(1.2 * 4 - 2)
    assert seg.loc[1, "n_targeted"] == 1 and seg.loc[1, "expected_profit"] == pytest.approx(0.5 * 4 - 1)


def test_break_even_when_the_curve_turns_negative():
    plan = c.build_plan([1, 2, 3], [0, 0, 0], [0.9, 0.2, 0.1], Economics.checked(1, 2, holdout=0))
    # gains 0.8, -0.6, -0.8 -> cumulative 0.8, 0.2, -0.6
    assert (plan.best_n, plan.break_even_n) == (1, 2)
    nothing = c.build_plan([1, 2], [0, 0], [0.1, 0.2], Economics.checked(1, 2, holdout=0))
    assert nothing.best_n == 0 and len(nothing.audience) == 0 and nothing.totals["expected_profit"] == 0
    assert nothing.notes and "no customer" in nothing.notes[0]


def test_top_n_segments_and_caps():
    econ = Economics.checked(cost=1, revenue=4, holdout=0)
    assert c.build_plan(IDS, SEG, P, econ, top_n=5).audience["ID"].tolist() == [10, 11, 12, 13, 14]
    # More than there are customers (an API client may send any integer): everyone, said in a note.
    everyone = c.build_plan(IDS, SEG, P, econ, top_n=338240578281950019584)
    assert len(everyone.audience) == 6 and "more than the 6 customers" in everyone.notes[0]
    for bad in (0, 2.5, "x"):
        with pytest.raises(CampaignError, match="^top_n: must be a whole number"):
            c.build_plan(IDS, SEG, P, econ, top_n=bad)
    by_seg = c.build_plan(IDS, SEG, P, econ, segments=[1])
    assert by_seg.audience["ID"].tolist() == [11, 13, 15] and by_seg.mode == "segments"
    assert by_seg.totals["expected_profit"] == pytest.approx(0.75 * 4 - 3)
    capped = c.build_plan(IDS, SEG, P, Economics.checked(cost=1, revenue=4, holdout=0, budget=2.5), top_n=5)
    assert len(capped.audience) == 2 and "budget" in capped.notes[0]
    capped = c.build_plan(IDS, SEG, P, Economics.checked(cost=1, revenue=4, holdout=0, max_contacts=1))
    assert capped.audience["ID"].tolist() == [10]
    with pytest.raises(CampaignError, match="^segments: no segment 7"):
        c.build_plan(IDS, SEG, P, econ, segments=[7])


def test_holdout_share_and_stratification():
    seg = np.repeat([0, 1, 2], [500, 300, 200])
    hold = c.assign_holdout(seg, 0.2, seed=5)
    assert [int(hold[seg == s].sum()) for s in (0, 1, 2)] == [100, 60, 40]
    np.testing.assert_array_equal(hold, c.assign_holdout(seg, 0.2, seed=5))
    assert not np.array_equal(hold, c.assign_holdout(seg, 0.2, seed=6))
    assert c.assign_holdout(seg, 0.0, seed=5).sum() == 0
    # Odd sizes: 0.25 x (7, 13) = (1.75, 3.25); the total is round(0.25 x 20) = 5, the spare one going to
    # the largest remainder.
    odd = np.repeat([0, 1], [7, 13])
    h = c.assign_holdout(odd, 0.25, seed=1)
    assert [int(h[odd == s].sum()) for s in (0, 1)] == [2, 3]
    # 0.1 x (33, 33, 34) = (3.3, 3.3, 3.4): 10 in all, not 3 x 3 = 9.
    three = np.repeat([0, 1, 2], [33, 33, 34])
    h = c.assign_holdout(three, 0.1, seed=1)
    assert [int(h[three == s].sum()) for s in (0, 1, 2)] == [3, 3, 4]
    # 0.1 x (15, 15, 15, 55) = (1.5, 1.5, 1.5, 5.5): 10 in all, ties to the lower segments.
    four = np.repeat([0, 1, 2, 3], [15, 15, 15, 55])
    h = c.assign_holdout(four, 0.1, seed=1)
    assert [int(h[four == s].sum()) for s in range(4)] == [2, 2, 1, 5]


def test_plan_expected_figures_cover_the_target_group_only():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.3, 0.9, 400)
    seg = rng.integers(0, 3, 400)
    plan = c.build_plan(np.arange(400), seg, p, Economics.checked(1, 10, holdout=0.25, seed=9))
    aud = plan.audience
    target = aud[aud["group"] == "target"]
    assert plan.totals["n_holdout"] == (aud["group"] == "holdout").sum() == round(0.25 * 400) == 100
    assert plan.totals["expected_profit"] == pytest.approx((target["propensity"] * 10 - 1).sum())
    for s in range(3):
        members = aud[aud["segment"] == s]
        assert abs(plan.segments.loc[s, "n_holdout"] - 0.25 * len(members)) < 1


# ---------------------------------------------------------------- measured results
def _audience():
    return pd.DataFrame({"ID": np.arange(150), "segment": np.r_[np.zeros(100, int), np.zeros(50, int)],
                         "group": ["target"] * 100 + ["holdout"] * 50, "propensity": 0.15})


def test_uplift_and_interval_by_hand():
    audience = c.read_audience(_audience())
    responded = np.r_[np.ones(20), np.zeros(80), np.ones(5), np.zeros(45)].astype(int)
    outcomes = c.read_outcomes(pd.DataFrame({"ID": np.arange(150), "responded": responded}), audience)
    res = c.measure_results(audience, outcomes, cost=1, revenue=20)
    o = res["overall"]
    se = math.sqrt(0.2 * 0.8 / 100 + 0.1 * 0.9 / 50)
    assert (o["target_rate"], o["holdout_rate"]) == (pytest.approx(0.2), pytest.approx(0.1))
    assert o["uplift"] == pytest.approx(0.1)
    assert o["uplift_low"] == pytest.approx(0.1 - 1.96 * se) and o["uplift_high"] == pytest.approx(0.1 + 1.96 * se)
    inc = res["incremental_profit"]
    assert inc["value"] == pytest.approx(0.1 * 100 * 20 - 100)
    assert inc["low"] == pytest.approx((0.1 - 1.96 * se) * 100 * 20 - 100)
    assert res["predicted_responders"] == pytest.approx(15.0) and res["actual_responders"] == 20
    assert res["segments"][0]["uplift"] == pytest.approx(0.1)
    # Measured revenue per responder replaces the planned one.
    with_rev = c.read_outcomes(pd.DataFrame({"ID": np.arange(150), "responded": responded,
                                             "revenue": responded * 30.0}), audience)
    assert c.measure_results(audience, with_rev, cost=1, revenue=20)["incremental_profit"]["value"] == \
        pytest.approx(0.1 * 100 * 30 - 100)


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"ID": [1, 999], "responded": [0, 1]}), "outcomes: ID not in the audience on rows 2"),
    (pd.DataFrame({"ID": [1, 1, 2], "responded": [0, 1, 1]}), "outcomes: duplicate ID on rows 1, 2"),
    (pd.DataFrame({"ID": [1, 2, 3], "responded": [0, 2, "yes"]}), "outcomes: responded must be 0 or 1; rows 2, 3"),
    (pd.DataFrame({"ID": [1], "bought": [1]}), "outcomes: missing column(s) responded"),
    (pd.DataFrame({"ID": [1, 2], "responded": [1, 0], "revenue": [5, -1]}),
     "outcomes: revenue must be a number of at least 0; rows 2"),
    (pd.DataFrame({"ID": ["a", 2], "responded": [1, 0]}), "outcomes: ID must be a whole number; rows 1"),
])
def test_bad_outcomes_name_the_rows(frame, message):
    with pytest.raises(CampaignError) as err:
        c.read_outcomes(frame, c.read_audience(_audience()))
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("kwargs, message", [
    ({"cost": 0, "revenue": 11}, "cost: must be greater than 0"),
    ({"cost": -3, "revenue": 11}, "cost: must be greater than 0"),
    ({"cost": 3, "revenue": 0}, "revenue: must be greater than 0"),
    ({"cost": 3, "revenue": 11, "budget": 0}, "budget: must be greater than 0"),
    ({"cost": 3, "revenue": 11, "holdout": 0.51}, "holdout: must be between 0 and 0.5"),
    ({"cost": 3, "revenue": 11, "holdout": -0.1}, "holdout: must be between 0 and 0.5"),
    ({"cost": "x", "revenue": 11}, "cost: 'x' is not a number"),
    ({"cost": 3, "revenue": 11, "max_contacts": 2.5}, "max_contacts: must be a whole number"),
    ({"cost": float("nan"), "revenue": 11}, "cost: nan is not a finite number"),
    ({"cost": 3, "revenue": 11, "seed": 2**40}, "seed: must be between 0 and 4294967295"),
])
def test_bad_economics_name_the_field(kwargs, message):
    with pytest.raises(CampaignError) as err:
        Economics.checked(**kwargs)
    assert str(err.value).startswith(message)


def test_bad_audience_files():
    with pytest.raises(CampaignError, match="missing column"):
        c.read_audience(pd.DataFrame({"ID": [1]}))
    bad = _audience().assign(group=["target"] * 149 + ["control"])
    with pytest.raises(CampaignError, match="group must be target or holdout; rows 150"):
        c.read_audience(bad)


# ---------------------------------------------------------------- the store
def test_store_round_trip_is_json_and_csv(tmp_path):
    econ = Economics.checked(1, 4, holdout=0.34, seed=1)
    plan = c.build_plan(IDS, SEG, P, econ, top_n=6)
    store = CampaignStore(tmp_path)
    text = audience_csv(plan)
    record = store.save(plan_record(plan, model_version="v0001", auc=0.7, names=["a", "b"]), text)
    files = sorted(p.name for p in (tmp_path / "campaigns").iterdir())
    assert files == [f"{record['id']}.audience.csv", f"{record['id']}.json"]
    saved = json.loads((tmp_path / "campaigns" / f"{record['id']}.json").read_text())
    assert saved["economics"]["cost"] == 1 and saved["model_version"] == "v0001" and saved["n_holdout"] == 2
    assert text.splitlines()[0] == "ID,segment,group,propensity"
    assert store.audience(record["id"])["ID"].tolist() == plan.audience["ID"].tolist()
    assert store.find_by_audience(text.encode())["id"] == record["id"]
    assert store.plans()[0]["results"] is None
    with pytest.raises(CampaignError, match="no plan"):
        store.get("../../etc/passwd")


# ---------------------------------------------------------------- API and service
@pytest.fixture(scope="module")
def api_app(tmp_path_factory):
    from core.access.accounts import AccountStore
    from dashboard.factory import create_app

    tmp = tmp_path_factory.mktemp("camp-api")
    store = AccountStore(tmp / "models")
    keys = {role: store.create_key(f"{role}-key", role) for role in ("viewer", "analyst")}
    app = create_app(models_dir=tmp / "models", data_path=SAMPLE, cache_dir=tmp / "cache")
    return app, keys, tmp


def _post(client, body, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/api/v1/audiences", json=body, headers=headers)


def test_audiences_api_roles_and_result(api_app):
    app, keys, tmp = api_app
    client = app.server.test_client()
    assert _post(client, {"cost": 3, "revenue": 11}).status_code == 401
    denied = _post(client, {"cost": 3, "revenue": 11}, keys["viewer"])
    assert denied.status_code == 403 and "analysts" in denied.get_json()["message"]
    ok = _post(client, {"cost": 3, "revenue": 11, "holdout": 0.2, "top_n": 200}, keys["analyst"])
    assert ok.status_code == 201, ok.get_json()
    body = ok.get_json()
    assert body["n_targeted"] + body["n_holdout"] == 200 and body["n_holdout"] == pytest.approx(40, abs=3)
    assert 0.6 < body["auc"] < 1 and body["model_version"] == "v0001"
    target = [r for r in body["audience"] if r["group"] == "target"]
    assert body["expected_profit"] == pytest.approx(sum(r["propensity"] * 11 - 3 for r in target), rel=1e-5)
    assert set(body["audience"][0]) == {"ID", "segment", "group", "propensity"}
    assert CampaignStore(tmp / "models").get(body["id"])["economics"]["holdout"] == 0.2
    entries = (tmp / "models").glob("audit*")
    assert any("campaign" in p.read_text() for p in entries)


@pytest.mark.parametrize("body, field", [({"cost": 0, "revenue": 11}, "cost"), ({"cost": 3}, "revenue"),
                                         ({"cost": 3, "revenue": 11, "holdout": 0.9}, "holdout"),
                                         ({"cost": "3", "revenue": 11}, "cost"),
                                         ({"cost": 3, "revenue": 11, "segments": [99]}, "segments"),
                                         ({"cost": 3, "revenue": 11, "colour": 1}, "colour"), ([1], "body")])
def test_audiences_api_bad_input_is_422_and_saves_nothing(api_app, body, field):
    app, keys, tmp = api_app
    before = len(CampaignStore(tmp / "models").plans())
    resp = _post(app.server.test_client(), body, keys["analyst"])
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["errors"][0]["field"] == field
    assert len(CampaignStore(tmp / "models").plans()) == before


def test_audiences_in_openapi(api_app):
    app, _, _ = api_app
    doc = app.server.test_client().get("/api/v1/openapi.json").get_json()
    op = doc["paths"]["/api/v1/audiences"]["post"]
    assert {"201", "401", "403", "422"} <= set(op["responses"])
    assert doc["components"]["schemas"]["AudienceRequest"]["required"] == ["cost", "revenue"]


def test_service_caches_propensity_and_defaults_come_from_the_file(api_app):
    app, _, _ = api_app
    with app.server.app_context():
        services = app.server.extensions["segmentlens"]
        first = services.campaigns.propensity()
        assert services.campaigns.propensity() is first
        assert services.campaigns.defaults() == (3.0, 11.0)
        recs = services.campaigns.recommendations()
        assert set(recs) == set(range(services.analysis().k))
