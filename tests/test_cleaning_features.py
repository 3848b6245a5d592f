"""Cleaning rules (each counted) and engineered features."""
import numpy as np
import pandas as pd
import pytest

from core.reading.cleaning import RULES, CleaningReport, clean
from core.reading.features import CHANNEL_COLUMNS, SHARE_COLUMNS, add_features
from tests.helpers import raw_frame


def test_clean_counts_every_rule_and_keeps_the_rest():
    df = raw_frame(60)
    df.loc[3, "Income"] = np.nan
    df.loc[4, "Year_Birth"] = 1893
    df.loc[5, "Income"] = 666666
    df.loc[6, "ID"] = df.loc[7, "ID"]               # repeated ID: the later row goes
    df.loc[8, "Marital_Status"] = "YOLO"
    df.loc[9, "Marital_Status"] = "Alone"
    df.loc[10, "MntWines"] = -5                      # impossible spend
    df.loc[12] = df.loc[11].copy()
    df.loc[12, "ID"] = 99999                        # same record, another ID: flagged, kept
    cleaned, report = clean(df, unreadable={"Recency": [2]})
    assert report.rows_read == 60
    assert report.dropped == {"unreadable_values": 1, "duplicate_id": 1, "missing_required": 0,
                              "missing_income": 1, "implausible_birth_year": 1, "out_of_range": 1,
                              "extreme_income": 1}
    assert report.changed == {"odd_marital_status": 2}
    assert report.flagged == {"duplicate_record": 1}
    assert report.rows_used == 60 - 6 == len(cleaned)
    assert [r.name for r in report.rules] == list(RULES)
    assert cleaned.loc[8, "Marital_Status"] == "Unknown" and cleaned.loc[9, "Marital_Status"] == "Single"
    assert 12 in cleaned.index and 7 not in cleaned.index and 6 in cleaned.index
    # Examples name the customers by ID.
    income_rule = next(r for r in report.rules if r.name == "missing_income")
    assert income_rule.examples == [int(df.loc[3, "ID"])]


def test_report_round_trips_through_dict():
    _, report = clean(raw_frame(30))
    again = CleaningReport.from_dict(report.to_dict())
    assert again == report
    assert set(report.to_dict()) >= {"rows_read", "rows_used", "dropped", "changed", "flagged", "rules"}


def test_a_row_is_counted_once_even_when_several_rules_apply():
    df = raw_frame(40)
    df.loc[0, "Income"] = np.nan
    df.loc[0, "Year_Birth"] = 1890
    _, report = clean(df)
    assert report.dropped["missing_income"] == 1 and report.dropped["implausible_birth_year"] == 0


def test_features_values():
    df = raw_frame(5)
    df.loc[0, ["Year_Birth", "Kidhome", "Teenhome"]] = [1980, 1, 2]
    df.loc[0, ["MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts", "MntGoldProds"]] = [
        100, 0, 50, 0, 0, 50]
    df.loc[0, ["NumWebPurchases", "NumCatalogPurchases", "NumStorePurchases", "NumDealsPurchases"]] = [2, 0, 6, 1]
    f = add_features(df, reference_year=2026)
    row = f.loc[0]
    assert row["Age"] == 46 and row["Total_Children"] == 3 and row["Total_Spending"] == 200
    assert row["Total_Purchases"] == 9
    assert row["Share_Wines"] == pytest.approx(0.5) and row["Share_GoldProds"] == pytest.approx(0.25)
    assert row["Channel_Store"] == pytest.approx(0.75) and row["Channel_Web"] == pytest.approx(0.25)
    latest = df["Dt_Customer"].max()
    assert f["Customer_since"].min() == 0
    assert row["Customer_since"] == (latest - df.loc[0, "Dt_Customer"]).days
    assert f[SHARE_COLUMNS].sum(axis=1).round(9).isin([0.0, 1.0]).all()
    assert set(CHANNEL_COLUMNS) <= set(f.columns)


def test_features_without_spend_have_zero_shares_not_nan():
    df = raw_frame(3)
    df.loc[1, ["MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts", "MntGoldProds"]] = 0
    f = add_features(df)
    assert not f[SHARE_COLUMNS].isna().any().any()
    assert (f.loc[1, SHARE_COLUMNS] == 0).all()


def test_campaigns_accepted_when_flags_absent():
    df = raw_frame(4).drop(columns=["AcceptedCmp1", "AcceptedCmp2", "AcceptedCmp3", "AcceptedCmp4", "AcceptedCmp5"])
    f = add_features(df)
    assert (f["Campaigns_Accepted"] == 0).all()


def test_age_reference_year_is_configurable():
    df = raw_frame(3)
    assert (add_features(df, reference_year=2030)["Age"] - add_features(df)["Age"] == 4).all()


def test_features_do_not_change_input():
    df = raw_frame(5)
    before = df.copy()
    add_features(df)
    pd.testing.assert_frame_equal(df, before)
