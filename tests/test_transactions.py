"""Transaction logs to customers (core.reading.transactions): RFM by hand, streaming, RFM scores, CDNOW facts."""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli.commands import main
from core.reading.mapping import prepare_input
from core.reading.transactions import RFM_GROUPS, TransactionColumns, aggregate, crosstab, rfm_group, rfm_scores

CDNOW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdnow_transactions.txt"

LOG = """order,cust,day,qty,amount,category,channel
A1,7,2024-01-05,1,10.00,books,web
A1,7,2024-01-05,2,5.50,music,web
A2,7,2024-02-01,1,-5.50,music,store
A3,9,2024-01-20,1,0.00,books,store
A4,9,2024-03-01,3,"$1,200.00",books,web
A5,11,2024-03-31,1,40.00,books,web
A6,11,not a date,1,1.00,books,web
"""
COLS = TransactionColumns("cust", "day", "amount", quantity="qty", order_id="order", category="category",
                          channel="channel")


def test_small_log_by_hand():
    agg = aggregate(LOG.encode(), COLS, sep=",", name="log.csv")
    c = agg.customers.set_index("ID")
    assert list(c.index) == [7, 9, 11]
    # Latest date in the file: 2024-03-31.
    assert c.loc[7, "Recency"] == (date(2024, 3, 31) - date(2024, 2, 1)).days
    assert c.loc[7, "Tenure"] == (date(2024, 3, 31) - date(2024, 1, 5)).days
    assert c.loc[7, "Frequency"] == 2  # two distinct orders over three rows
    assert c.loc[7, "Monetary"] == pytest.approx(10.0)  # the return is summed in
    assert c.loc[7, "Avg_order_value"] == pytest.approx(5.0)
    assert c.loc[7, "Interpurchase_days"] == pytest.approx((date(2024, 2, 1) - date(2024, 1, 5)).days)
    assert c.loc[9, "Monetary"] == pytest.approx(1200.0)  # currency text read as a number
    assert c.loc[9, "Returns_or_free"] == 1
    assert c.loc[11, "Frequency"] == 1 and np.isnan(c.loc[11, "Interpurchase_days"])
    assert c.loc[7, "Spend_books"] == pytest.approx(10.0) and c.loc[7, "Spend_music"] == pytest.approx(0.0)
    assert c.loc[7, "Channel_web"] == pytest.approx(0.5) and c.loc[7, "Channel_store"] == pytest.approx(0.5)
    assert c.loc[7, "Quantity"] == 4
    assert agg.rows_read == 7 and agg.rows_used == 6
    assert agg.unreadable == {"date": 1}
    assert agg.nonpositive == 2  # the return and the free item stay in and are counted
    assert agg.total_amount == pytest.approx(10 + 5.5 - 5.5 + 0 + 1200 + 40)
    assert agg.latest_date == "2024-03-31"


def test_streaming_in_chunks_gives_the_same_customers():
    whole = aggregate(LOG.encode(), COLS, sep=",").customers
    chunked = aggregate(LOG.encode(), COLS, sep=",", chunk_rows=2).customers
    pd.testing.assert_frame_equal(whole, chunked)


def test_frequency_counts_rows_without_order_ids():
    cols = TransactionColumns("cust", "day", "amount")
    c = aggregate(LOG.encode(), cols, sep=",").customers.set_index("ID")
    assert c.loc[7, "Frequency"] == 3 and c.loc[9, "Frequency"] == 2


def test_rfm_scores_quintiles_ties_and_groups():
    frame = pd.DataFrame({"Recency": np.arange(10, 0, -1), "Frequency": [1] * 6 + [2, 3, 4, 5],
                          "Monetary": np.arange(10) * 10.0})
    s = rfm_scores(frame)
    assert s["R_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # most recent = 5
    assert s["F_score"].tolist()[:6] == [1] * 6  # ties share the lower score
    assert s["F_score"].tolist()[6:] == [4, 4, 5, 5]
    assert s["M_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert s.loc[9, "RFM_score"] == "555" and s.loc[9, "RFM_group"] == "Champions"
    assert s.loc[0, "RFM_group"] == "Hibernating"
    # Every cell of the 5 x 5 grid has exactly one group.
    for r in range(1, 6):
        for fm in range(1, 6):
            hits = [g for g, rs, fms in RFM_GROUPS if str(r) in rs and str(fm) in fms]
            assert len(hits) == 1, (r, fm, hits)
    assert rfm_group(1, 5) == "Can't lose them" and rfm_group(5, 1) == "New customers"
    table = crosstab([0, 0, 1], ["Champions", "At risk", "Champions"])
    assert table.loc[0, "Champions"] == 1 and table.loc[1, "At risk"] == 0
    assert list(table.columns) == ["Champions", "At risk"]


def test_unreadable_amount_column_is_named():
    from core.reading.loading import DataFileError

    bad = "cust,day,amount\n1,2024-01-01,abc\n1,2024-01-02,def\n2,2024-01-03,ghi\n"
    with pytest.raises(DataFileError, match=r"column 'amount' is mapped to amount.*expected an amount"):
        aggregate(bad.encode(), TransactionColumns("cust", "day", "amount"), sep=",", name="bad.csv")


# ------------------------------------------------------------------------------------ CDNOW
def _by_hand(path: Path):
    """Per customer: (dates, amounts), parsed line by line without pandas."""
    rows = defaultdict(list)
    with open(path) as fh:
        next(fh)
        for line in fh:
            parts = line.split()
            if parts:
                rows[int(parts[0])].append((parts[1], float(parts[3])))
    return rows


@pytest.fixture(scope="module")
def cdnow():
    if not CDNOW.is_file():
        pytest.skip(f"CDNOW log not present at {CDNOW}")
    prepared, mapping = prepare_input(CDNOW)
    return prepared, mapping, _by_hand(CDNOW)


@pytest.mark.real_data
def test_cdnow_customers_and_rfm_by_hand(cdnow):
    prepared, mapping, rows = cdnow
    frame = prepared.frame.set_index("ID")
    assert mapping.kind == "transactions"
    assert mapping.columns == {"customer_id": "customer_id", "date": "date", "number_of_cds": "quantity",
                               "dollar_value": "amount"}
    assert len(frame) == 23_570 == len(rows)
    latest = max(d for v in rows.values() for d, _ in v)
    assert latest == "19980630"

    def days(a, b):
        return (date(int(b[:4]), int(b[4:6]), int(b[6:])) - date(int(a[:4]), int(a[4:6]), int(a[6:]))).days

    for cid in (1, 2, 3, 4, 5, 100, 1234, 9999, 23570):
        purchases = rows[cid]
        assert frame.loc[cid, "Frequency"] == len(purchases)
        assert frame.loc[cid, "Monetary"] == pytest.approx(sum(a for _, a in purchases), abs=1e-6)
        assert frame.loc[cid, "Recency"] == days(max(d for d, _ in purchases), latest)
        assert frame.loc[cid, "Tenure"] == days(min(d for d, _ in purchases), latest)
    # Totals equal the file's.
    assert prepared.report.rows_read == prepared.report.rows_used == 69_659
    assert frame["Frequency"].sum() == 69_659
    assert frame["Monetary"].sum() == pytest.approx(sum(a for v in rows.values() for _, a in v), abs=1e-4)
    zero = sum(1 for v in rows.values() for _, a in v if a <= 0)
    assert prepared.report.flagged["nonpositive_amount"] == zero > 0
    assert frame.loc[2, "RFM_group"] in {g for g, _, _ in RFM_GROUPS}
    assert set(frame["R_score"]) == {1, 2, 3, 4, 5}


@pytest.mark.real_data
def test_cdnow_cli_customers_train_and_score(cdnow, tmp_path, capsys):
    out = tmp_path / "customers.csv"
    assert main(["customers", "--data", str(CDNOW), "--out", str(out), "--write-map", str(tmp_path / "m.json"),
                 "--quiet"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:5]) == ["ID", "Recency", "Frequency", "Monetary", "Tenure"]
    assert len(table) == 23_570
    models = tmp_path / "models"
    capsys.readouterr()
    assert main(["train", "--data", str(CDNOW), "--models", str(models), "--k", "5", "--json", "--quiet",
                 "--map", str(tmp_path / "m.json")]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["input"] == "transactions" and payload["n_customers"] == 23_570
    assert payload["features"] == ["Recency", "Frequency_log", "Monetary_log", "Tenure"]
    assert sum(payload["rfm"]["groups"].values()) == 23_570
    rows = payload["rfm"]["crosstab"]["rows"]
    assert sum(sum(v) for v in rows.values()) == 23_570 and len(rows) == 5
    from core.versions.registry import Registry

    registry = Registry(models)
    saved = registry.artifact_json(payload["model_version"], "mapping")
    assert saved["input"] == "transactions" and saved["features"] == payload["features"]
    assert set(saved["ranges"]) == set(payload["features"])
    scores = tmp_path / "scores.csv"
    assert main(["score", "--data", str(CDNOW), "--models", str(models), "--out", str(scores), "--quiet"]) == 0
    scored = pd.read_csv(scores)
    assert len(scored) == 23_570 and set(scored["segment"]) == set(range(5))
    assert "RFM_group" in scored


def test_scoring_a_log_with_a_canonical_version_is_one_line_not_a_traceback(cdnow, tmp_path, capsys):
    from tests.conftest import SAMPLE

    models = tmp_path / "models"
    assert main(["train", "--data", str(SAMPLE), "--models", str(models), "--quiet"]) == 0
    capsys.readouterr()
    # --input without --map, on a version that has no mapping: the log's roles are suggested, then its
    # customers are refused for lacking the version's features.
    code = main(["score", "--data", str(CDNOW), "--input", "transactions", "--models", str(models),
                 "--out", str(tmp_path / "s.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "s.csv").exists()
    assert err.strip().splitlines() == ["error: the file lacks the model's feature(s) Age, Income, NumWebPurchases, "
                                        "NumStorePurchases, NumWebVisitsMonth"]
