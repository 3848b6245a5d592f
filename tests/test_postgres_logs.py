"""Transaction logs aggregated by DuckDB (core.reading.duck via core.reading.transactions.aggregate) equal pandas' row for row."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.reading.transactions import TransactionColumns, aggregate

pytest.importorskip("duckdb")

CDNOW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdnow_transactions.txt"


def both(path, cols, sep=",", strict=True):
    """pandas' customers and DuckDB's (``strict``) or auto's (which falls back to pandas)."""
    ref = aggregate(path, cols, sep=sep, engine="pandas")
    fast = aggregate(path, cols, sep=sep, engine="duckdb" if strict else "auto")
    return ref, fast


def assert_same(ref, fast):
    pd.testing.assert_frame_equal(fast.customers, ref.customers, check_exact=True)
    for name in ("rows_read", "rows_used", "unreadable", "nonpositive", "first_date", "latest_date", "date_format",
                 "notes"):
        assert getattr(fast, name) == getattr(ref, name), name
    assert fast.total_amount == pytest.approx(ref.total_amount, rel=1e-12)


def write_log(path: Path, n: int = 20_000, seed: int = 5, text_ids: bool = False, text_orders: bool = False,
              sep: str = ",") -> None:
    rng = np.random.default_rng(seed)
    cust = rng.integers(1, 3_000, n)
    frame = pd.DataFrame({
        "order": [f"O{o:06d}" for o in np.arange(n) // 2] if text_orders else np.arange(n) // 2,
        "cust": [f" C{c:05d}" for c in cust] if text_ids else cust,
        "day": (np.datetime64("2023-01-01") + rng.integers(0, 500, n).astype("timedelta64[D]")).astype(str),
        "qty": rng.integers(1, 5, n),
        "amount": np.round(rng.gamma(2.0, 20.0, n) * np.where(rng.random(n) < 0.02, -1, 1), 2),
    })
    frame.loc[rng.random(n) < 0.01, "amount"] = 0.0
    frame.to_csv(path, sep=sep, index=False)


@pytest.mark.parametrize("text_ids,text_orders,sep", [(False, False, ","), (True, True, "\t"), (False, True, ";")])
def test_duckdb_equals_pandas_row_for_row(tmp_path, text_ids, text_orders, sep):
    path = tmp_path / "log.csv"
    write_log(path, text_ids=text_ids, text_orders=text_orders, sep=sep)
    with_orders = TransactionColumns("cust", "day", "amount", quantity="qty", order_id="order")
    for cols in (with_orders, TransactionColumns("cust", "day", "amount")):
        ref, fast = both(path, cols, sep=sep)
        assert fast.engine == "duckdb" and ref.engine == "pandas"
        assert_same(ref, fast)
        if cols is with_orders:
            assert fast.customers["Frequency"].sum() < ref.rows_read  # orders, not rows
    if text_ids:
        assert fast.customers["ID"].iloc[0] == "C00001"  # stripped as pandas strips


def test_order_ids_that_only_look_like_numbers_go_to_pandas(tmp_path):
    path = tmp_path / "log.csv"
    cols = TransactionColumns("cust", "day", "amount", order_id="order")
    for odd in (".5", "1e3", "1E3", "0x10", "0b1", "1_0", "1.0", "7.", "inf"):
        path.write_text(f"order,cust,day,amount\n{odd},1,2024-01-01,5\n1,1,2024-01-02,6\n2,2,2024-01-02,2\n")
        ref, fast = both(path, cols, strict=False)
        assert_same(ref, fast)
        with pytest.raises(ValueError, match="DuckDB cannot"):
            aggregate(path, cols, sep=",", engine="duckdb")


def test_order_ids_read_as_numbers_like_pandas(tmp_path):
    # 007 and 7 are one order for pandas (it reads whole numbers as numbers): the same for DuckDB.
    path = tmp_path / "log.csv"
    path.write_text("order,cust,day,amount\n007,1,2024-01-01,5\n7,1,2024-01-01,6\n+8,1,2024-01-03,1\n8,1,2024-01-03,1\n"
                    "9,2,2024-01-02,2\n-0,2,2024-01-02,2\n0,2,2024-01-02,2\n")
    cols = TransactionColumns("cust", "day", "amount", order_id="order")
    ref, fast = both(path, cols)
    assert fast.engine == "duckdb"
    assert_same(ref, fast)
    assert fast.customers.set_index("ID").loc[1, "Frequency"] == 2
    assert fast.customers.set_index("ID").loc[2, "Frequency"] == 2  # -0 and 0 are one order


@pytest.mark.parametrize("body,why", [
    ("1,2024-01-01,\"$1,200.00\"\n2,2024-01-02,3\n", "currency text"),
    ("1,2024-01-01,5\n2,not a date,3\n3,2024-01-03,4\n", "an unreadable date"),
    ("1,2024-01-01,5\n,2024-01-02,3\n", "an empty customer ID"),
    # Among whole-number IDs (so IDs are numbers), one DuckDB would read as a number and pandas not.
    ("1_000,2024-01-01,5\n" + "".join(f"{i},2024-01-02,3\n" for i in range(2, 40)), "an ID with _"),
    ("1,2024-01-01,1_000\n2,2024-01-02,3\n", "an amount DuckDB would read as a number, pandas not"),
])
def test_logs_duckdb_cannot_read_exactly_go_to_pandas(tmp_path, body, why, monkeypatch):
    monkeypatch.setenv("SEGMENTLENS_LOG_ENGINE", "duckdb")  # auto tries DuckDB first, whatever the cores
    path = tmp_path / "log.csv"
    path.write_text("cust,day,amount\n" + body)
    cols = TransactionColumns("cust", "day", "amount")
    ref, fast = both(path, cols, strict=False)
    assert fast.engine == "pandas", why
    assert_same(ref, fast)
    with pytest.raises(ValueError, match="DuckDB cannot aggregate"):
        aggregate(path, cols, sep=",", engine="duckdb")


def test_auto_follows_the_setting(tmp_path, monkeypatch):
    from core.reading.transactions import log_engine

    path = tmp_path / "log.csv"
    write_log(path, n=500)
    cols = TransactionColumns("cust", "day", "amount")
    for chosen in ("duckdb", "pandas"):
        monkeypatch.setenv("SEGMENTLENS_LOG_ENGINE", chosen)
        assert log_engine() == chosen and aggregate(path, cols, sep=",").engine == chosen


def test_category_and_channel_stay_on_pandas(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("cust,day,amount,category\n1,2024-01-01,5,books\n2,2024-01-02,3,music\n")
    with pytest.raises(ValueError, match="category or channel"):
        aggregate(path, TransactionColumns("cust", "day", "amount", category="category"), sep=",", engine="duckdb")


@pytest.mark.skipif(not CDNOW.exists(), reason="../shared/data/cdnow_transactions.txt is not here")
def test_cdnow_as_csv_equal(tmp_path):
    log = pd.read_csv(CDNOW, sep=r"\s+", dtype=str)
    path = tmp_path / "cdnow.csv"
    log.to_csv(path, index=False)
    cols = TransactionColumns("customer_id", "date", "dollar_value", quantity="number_of_cds")
    ref, fast = both(path, cols)
    assert fast.engine == "duckdb" and len(fast.customers) == 23570
    assert_same(ref, fast)
