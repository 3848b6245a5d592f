"""Customer value: likelihoods against the published formulas, the paper's numbers, statistics and the fit."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.value import (LOG_NEEDED, ValueInputError, collapse, compute_value, customer_value, read_purchase_days,
                        value_statistics)
from core.value import bgnbd, gammagamma
from core.value.simulate import CDNOW_PARAMS, CDNOW_SPEND, simulate_log

ROOT = Path(__file__).resolve().parents[1]
CDNOW = ROOT.parent / "shared" / "data" / "cdnow_transactions.txt"


def _direct_bgnbd(params, x, tx, T) -> float:
    """Eq. 6 of Fader, Hardie & Lee (2005), one customer at a time, with math's lgamma."""
    r, alpha, a, b = params

    def lbeta(u, v):
        return math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v)

    total = 0.0
    for xi, ti, Ti in zip(x, tx, T):
        common = math.lgamma(r + xi) - math.lgamma(r) + r * math.log(alpha)
        first = lbeta(a, b + xi) - lbeta(a, b) - (r + xi) * math.log(alpha + Ti)
        like = math.exp(common + first)
        if xi > 0:
            like += math.exp(common + lbeta(a + 1, b + xi - 1) - lbeta(a, b) - (r + xi) * math.log(alpha + ti))
        total += math.log(like)
    return total


def _direct_gg(params, x, m) -> float:
    """Gamma-Gamma likelihood of Fader, Hardie & Lee (2005b), one customer at a time."""
    p, q, g = params
    total = 0.0
    for xi, mi in zip(x, m):
        total += (math.lgamma(p * xi + q) - math.lgamma(p * xi) - math.lgamma(q) + q * math.log(g)
                  + (p * xi - 1) * math.log(mi) + p * xi * math.log(xi) - (p * xi + q) * math.log(g + mi * xi))
    return total


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("value") / "log.csv"
    frame = simulate_log(3000, seed=3)
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_stats(small_log):
    return value_statistics(read_purchase_days(small_log), time_unit="week")


def test_bgnbd_likelihood_equals_direct_formula(small_stats):
    c = small_stats.customers
    x, tx, T = c["frequency"].to_numpy(), c["recency"].to_numpy(), c["T"].to_numpy()
    for params in (CDNOW_PARAMS, (1.3, 8.0, 2.5, 0.7), (0.05, 0.5, 0.2, 9.0)):
        mine = bgnbd.log_likelihood(params, x, tx, T)
        assert mine == pytest.approx(_direct_bgnbd(params, x, tx, T), rel=1e-9, abs=1e-9)
        # the weighted sum on the distinct combinations is the same number
        _, w, (cx, ctx, cT) = collapse(x, tx, T)
        assert bgnbd.log_likelihood(params, cx, ctx, cT, w) == pytest.approx(mine, rel=1e-9)


def test_gamma_gamma_likelihood_equals_direct_formula(small_stats):
    c = small_stats.customers
    c = c[(c["frequency"] > 0) & (c["monetary_value"] > 0)]
    x, m = c["frequency"].to_numpy(), c["monetary_value"].to_numpy()
    for params in (CDNOW_SPEND, (2.0, 1.5, 40.0)):
        assert gammagamma.log_likelihood(params, x, m) == pytest.approx(_direct_gg(params, x, m), rel=1e-9)


def test_analytic_gradients_match_differences(small_stats):
    c = small_stats.customers
    x, tx, T = c["frequency"].to_numpy(), c["recency"].to_numpy(), c["T"].to_numpy()
    params = np.array([0.4, 6.0, 0.9, 2.2])
    grad = bgnbd.gradient(params, x, tx, T)
    for i in range(4):
        h = 1e-6 * params[i]
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        numeric = (bgnbd.log_likelihood(up, x, tx, T) - bgnbd.log_likelihood(down, x, tx, T)) / (2 * h)
        assert grad[i] == pytest.approx(numeric, rel=1e-5)


def test_paper_worked_example():
    """Fader, Hardie & Lee (2005): x=2, t_x=30.43, T=38.86 weeks -> 1.226 purchases in the next 39 weeks."""
    value = bgnbd.expected_purchases(CDNOW_PARAMS, 39.0, np.array([2]), np.array([30.43]), np.array([38.86]))[0]
    assert round(float(value), 3) == 1.226
    assert bgnbd.p_alive(CDNOW_PARAMS, np.array([0, 0]), np.array([0.0, 0.0]), np.array([5.0, 80.0])).tolist() == [1, 1]
    # a customer who bought often and long ago is less likely alive than one who just bought
    alive = bgnbd.p_alive(CDNOW_PARAMS, np.array([5, 5]), np.array([5.0, 38.0]), np.array([38.86, 38.86]))
    assert alive[0] < alive[1] < 1


def test_weighted_fit_on_collapsed_statistics_equals_per_customer_fit(small_stats):
    c = small_stats.customers
    x, tx, T = c["frequency"].to_numpy(), c["recency"].to_numpy(), c["T"].to_numpy()
    per_customer = bgnbd.fit(x, tx, T)
    _, w, (cx, ctx, cT) = collapse(x, tx, T)
    assert len(cx) < len(x)
    collapsed = bgnbd.fit(cx, ctx, cT, w)
    np.testing.assert_allclose(collapsed.params, per_customer.params, rtol=1e-6)
    assert collapsed.log_likelihood == pytest.approx(per_customer.log_likelihood, rel=1e-10)
    # simulated from the CDNOW parameters: the fit recovers them within a few standard errors
    assert np.all(np.abs(collapsed.params - np.array(CDNOW_PARAMS)) < 4 * collapsed.se)


def test_statistics_by_hand(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("customer,date,amount\n"
                   "A,2024-01-01,10\nA,2024-01-01,5\nA,2024-01-08,20\nA,2024-01-15,30\nA,2024-02-05,7\n"
                   "B,2024-01-03,50\nB,2024-01-03,1\n"
                   "C,2024-01-02,9\nC,2024-01-10,11\n")
    data = value_statistics(read_purchase_days(log), time_unit="week", calibration_end="2024-01-20")
    c = data.customers
    # A: two purchases on Jan 1 are one; repeats on Jan 8 and 15 (Feb 5 is in the holdout)
    assert c.loc["A", "frequency"] == 2
    assert c.loc["A", "recency"] == pytest.approx(14 / 7)
    assert c.loc["A", "T"] == pytest.approx(19 / 7)
    assert c.loc["A", "repeat_value"] == pytest.approx(50.0)
    assert c.loc["A", "monetary_value"] == pytest.approx(25.0)
    assert c.loc["A", "holdout_purchases"] == 1
    assert c.loc["B", "frequency"] == 0 and np.isnan(c.loc["B", "monetary_value"])
    assert c.loc["C", "T"] == pytest.approx(18 / 7) and c.loc["C", "recency"] == pytest.approx(8 / 7)
    days = value_statistics(read_purchase_days(log), time_unit="day")
    assert days.customers.loc["A", "recency"] == 35 and days.customers.loc["A", "frequency"] == 3
    month = value_statistics(read_purchase_days(log), time_unit="month")
    assert month.customers.loc["A", "T"] == pytest.approx(35 / (365.25 / 12))


def test_bad_inputs(tmp_path, sample_path):
    with pytest.raises(ValueInputError, match=re.escape(LOG_NEEDED)):
        read_purchase_days(sample_path)
    once = tmp_path / "once.csv"
    once.write_text("customer,date,amount\nA,2024-01-01,10\nA,2024-01-01,3\nB,2024-01-02,5\nC,2024-01-05,1\n")
    with pytest.raises(ValueInputError, match="nobody bought on two different days"):
        value_statistics(read_purchase_days(once))
    two = tmp_path / "two.csv"
    two.write_text("customer,date,amount\nA,2024-01-01,10\nA,2024-01-09,3\nB,2024-01-02,5\nB,2024-01-03,1\n")
    for end in ("2023-12-31", "2024-01-09", "2030-01-01"):
        with pytest.raises(ValueInputError, match="outside the data's dates"):
            value_statistics(read_purchase_days(two), calibration_end=end)
    with pytest.raises(ValueInputError, match="not a date"):
        value_statistics(read_purchase_days(two), calibration_end="soon")


def test_clv_without_discount_is_spend_times_expected_purchases(small_stats):
    result = compute_value(small_stats, horizon=26, discount_rate=0.0, draws=0)
    c = result.customers
    np.testing.assert_allclose(c["clv"], c["expected_spend"] * c["expected_purchases"], rtol=1e-9)
    discounted = compute_value(small_stats, horizon=26, discount_rate=0.2, draws=0).customers
    assert np.all(discounted["clv"] <= c["clv"] + 1e-12) and discounted["clv"].sum() < c["clv"].sum()


def test_segments_intervals_and_one_customer(small_stats):
    ids = small_stats.customers.index
    labels = pd.Series(np.asarray(ids) % 3, index=ids)
    result = compute_value(small_stats, labels=labels, names=["A", "B", "C"], draws=60)
    segs = result.report["segments"]
    assert [s["segment"] for s in segs] == sorted(range(3), key=lambda s: -result.customers.loc[
        result.customers["segment"] == s, "clv"].sum())
    assert sum(s["customers"] for s in segs) == len(ids)
    assert sum(s["share"] for s in segs) == pytest.approx(1.0)
    for s in segs:
        assert s["clv_low"] < s["clv_total"] < s["clv_high"]
        assert sum(s["p_alive_histogram"]) == s["customers"]
    one = result.customers.iloc[0]
    row = small_stats.customers.iloc[0]
    value = customer_value(result.report, row["frequency"], row["recency"], row["T"], row["repeat_value"])
    assert value["clv"] == pytest.approx(one["clv"], rel=1e-9)
    assert value["p_alive"] == pytest.approx(one["p_alive"], rel=1e-12)
    assert value["clv_low"] <= value["clv"] <= value["clv_high"]


@pytest.fixture(scope="module")
def cdnow_stats():
    if not CDNOW.exists():
        pytest.skip(f"CDNOW log not present at {CDNOW}")
    return value_statistics(read_purchase_days(CDNOW), time_unit="week", calibration_end="1997-09-30")


def test_cdnow_statistics_against_pandas(cdnow_stats):
    raw = pd.read_csv(CDNOW, sep=r"\s+", dtype={"customer_id": "int64", "date": str})
    raw["day"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    cal = raw[raw["day"] <= "1997-09-30"].groupby(["customer_id", "day"], as_index=False)["dollar_value"].sum()
    g = cal.groupby("customer_id")
    first, last, n = g["day"].min(), g["day"].max(), g["day"].size()
    c = cdnow_stats.customers
    assert len(c) == 23_570
    np.testing.assert_array_equal(c["frequency"].to_numpy(), (n - 1).reindex(c.index).to_numpy())
    np.testing.assert_allclose(c["recency"], ((last - first).dt.days / 7).reindex(c.index))
    np.testing.assert_allclose(c["T"], ((pd.Timestamp("1997-09-30") - first).dt.days / 7).reindex(c.index))


def test_cdnow_fit_equals_lifetimes_optimum(cdnow_stats):
    lifetimes = pytest.importorskip("lifetimes")
    c = cdnow_stats.customers
    _, w, (cx, ctx, cT) = collapse(c["frequency"].to_numpy(), c["recency"].to_numpy(), c["T"].to_numpy())
    mine = bgnbd.fit(cx, ctx, cT, w)
    ref = lifetimes.BetaGeoFitter().fit(c["frequency"], c["recency"], c["T"])
    np.testing.assert_allclose(mine.params, [ref.params_[k] for k in ("r", "alpha", "a", "b")], rtol=1e-3)
    # the full file's optimum is near the published 1/10th-sample estimates
    np.testing.assert_allclose(mine.params, CDNOW_PARAMS, rtol=0.15)
    pos = c[(c["frequency"] > 0) & (c["monetary_value"] > 0)]
    spend = gammagamma.fit(pos["frequency"], pos["monetary_value"])
    ref_gg = lifetimes.GammaGammaFitter().fit(pos["frequency"], pos["monetary_value"])
    np.testing.assert_allclose(spend.params, [ref_gg.params_[k] for k in ("p", "q", "v")], rtol=1e-3)
    np.testing.assert_allclose(spend.params, CDNOW_SPEND, rtol=0.1)
    # lifetimes' own formula for the paper's customer at our fitted parameters
    ours = bgnbd.expected_purchases(mine.params, 39.0, np.array([2]), np.array([30.43]), np.array([38.86]))[0]
    ref.params_[:] = mine.params
    assert ours == pytest.approx(float(ref.conditional_expected_number_of_purchases_up_to_time(39, 2, 30.43, 38.86)),
                                 rel=1e-9)


def test_cdnow_holdout(cdnow_stats):
    result = compute_value(cdnow_stats, draws=0)
    hold = result.report["holdout"]
    assert hold["actual"] == float(cdnow_stats.customers["holdout_purchases"].sum())
    assert abs(hold["relative_error"]) < 0.25
    assert hold["by_frequency"][0]["frequency"] == "0" and hold["by_frequency"][-1]["frequency"] == "7+"
    assert len(hold["weekly"]) == 78
    weekly = hold["weekly"]
    assert all(a["actual"] <= b["actual"] for a, b in zip(weekly, weekly[1:]))
    assert "holdout" in hold["sentence"] and "nan" not in hold["sentence"]


def test_values_at_stored_parameters_equal_the_fit(small_stats):
    from core.value import values_at

    result = compute_value(small_stats, draws=0)
    c = small_stats.customers
    again = values_at(result.report, c["frequency"], c["recency"], c["T"], c["repeat_value"])
    for column in ("p_alive", "expected_purchases", "expected_spend", "clv"):
        np.testing.assert_allclose(again[column].to_numpy(), result.customers[column].to_numpy(), rtol=1e-12)


def test_value_audiences(small_stats):
    from core.campaigns.campaign import CampaignError, value_audience

    result = compute_value(small_stats, draws=0)
    table = result.customers.reset_index().assign(segment=lambda f: f["ID"] % 4)
    top = value_audience(table, "clv", top_n=200, holdout=0.1, seed=1)
    assert len(top) == 200 and (top["group"] == "holdout").sum() == 20
    assert top["clv"].min() >= table["clv"].nlargest(200).min()
    assert value_audience(table, "clv", top_n=200, holdout=0.1, seed=1).equals(top)  # same seed, same audience
    back = value_audience(table, "winback", p_alive_below=0.4, holdout=0.0)
    cut = np.quantile(table["total_value"], 0.8)
    expected = table[(table["total_value"] >= cut) & (table["p_alive"] < 0.4)]
    assert set(back["ID"]) == set(expected["ID"]) and (back["group"] == "target").all()
    with pytest.raises(CampaignError, match="top N"):
        value_audience(table, "clv")
    with pytest.raises(CampaignError, match="holdout"):
        value_audience(table, "clv", top_n=5, holdout=0.9)
    with pytest.raises(CampaignError, match="no customer matches"):
        value_audience(table, "winback", p_alive_below=1e-9)
