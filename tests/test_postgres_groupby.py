"""A transaction log in PostgreSQL aggregated by one GROUP BY on the server (core.pg_aggregate) equals the
pandas path on the same rows copied out, row for row; logs it cannot take exactly are left to pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.reading import pg_aggregate
from core.reading import postgres
from core.reading.transactions import TransactionColumns, aggregate
from tests.test_postgres import CDNOW, conn, server, url  # noqa: F401  (fixtures)

FIELDS = ("rows_read", "rows_used", "unreadable", "nonpositive", "first_date", "latest_date", "date_format", "notes")


def pandas_path(url, table, cols, tmp_path):  # noqa: F811
    """Today's path: every row copied out by COPY, then aggregated by pandas."""
    with postgres.local_copy(f"{url}?table={table}", folder=tmp_path) as copy:
        return aggregate(copy.path, cols, sep="\t", engine="pandas")


def assert_same(ref, pushed):
    assert pushed.engine == "postgresql" and ref.engine == "pandas"
    pd.testing.assert_frame_equal(pushed.customers, ref.customers, check_exact=True)
    for name in FIELDS:
        assert getattr(pushed, name) == getattr(ref, name), name
    assert pushed.total_amount == pytest.approx(ref.total_amount, rel=1e-12)


def load(conn, table, frame, types):  # noqa: F811
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} (" + ", ".join(f'"{c}" {types[c]}' for c in frame.columns) + ")")
    with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        for row in frame.itertuples(index=False):
            copy.write_row([None if v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v for v in row])


@pytest.mark.skipif(not CDNOW.exists(), reason="../shared/data/cdnow_transactions.txt is not here")
def test_cdnow_grouped_on_the_server_equals_pandas(url, conn, tmp_path):  # noqa: F811
    log = pd.read_csv(CDNOW, sep=r"\s+", dtype=str)
    log["customer_id"] = log["customer_id"].astype(int)
    load(conn, "public.cdnow_int", log, {"customer_id": "integer", "date": "date", "number_of_cds": "integer",
                                         "dollar_value": "numeric(10,2)"})
    cols = TransactionColumns("customer_id", "date", "dollar_value", quantity="number_of_cds")
    pushed, why = pg_aggregate.aggregate(f"{url}?table=public.cdnow_int", cols)
    assert why == "" and len(pushed.customers) == 23570
    ref = pandas_path(url, "public.cdnow_int", cols, tmp_path)
    assert_same(ref, pushed)
    row = pushed.customers.set_index("ID").loc[1]
    assert (row["Frequency"], row["Monetary"]) == (1, 11.77)


def synthetic(n=30_000, seed=3, text_ids=True):
    rng = np.random.default_rng(seed)
    cust = rng.integers(1, 4_000, n)
    when = pd.Timestamp("2023-01-01 22:30", tz="UTC") + pd.to_timedelta(rng.integers(0, 600 * 24, n), unit="h")
    qty = pd.array(rng.integers(1, 5, n), dtype="Int64")
    qty[rng.random(n) < 0.05] = pd.NA  # a NULL quantity counts as none, as in pandas
    return pd.DataFrame({
        "order_no": [f"SO-{o:07d}" for o in np.arange(n) // 3],
        "customer": [f"  C{c:05d}" for c in cust] if text_ids else cust,
        "ordered_at": when,
        "qty": qty,
        "amount": np.round(rng.gamma(2.0, 20.0, n) * np.where(rng.random(n) < 0.03, -1, 1), 2),
    })


@pytest.mark.parametrize("text_ids,amount_type", [(True, "double precision"), (False, "numeric(12,2)")])
def test_text_ids_orders_and_timestamptz_equal_pandas(url, conn, tmp_path, text_ids, amount_type):  # noqa: F811
    frame = synthetic(text_ids=text_ids)
    load(conn, "public.orders_x", frame, {"order_no": "text", "customer": "text" if text_ids else "bigint",
                                          "ordered_at": "timestamptz", "qty": "integer", "amount": amount_type})
    for cols in (TransactionColumns("customer", "ordered_at", "amount", quantity="qty", order_id="order_no"),
                 TransactionColumns("customer", "ordered_at", "amount")):
        pushed, why = pg_aggregate.aggregate(f"{url}?table=public.orders_x", cols)
        assert why == ""
        assert_same(pandas_path(url, "public.orders_x", cols, tmp_path), pushed)
        if cols.order_id:
            # Orders per customer, not rows.
            assert pushed.customers["Frequency"].sum() == len(frame[["customer", "order_no"]].drop_duplicates())
            assert pushed.customers["Frequency"].sum() < len(frame)
    if text_ids:
        assert pushed.customers["ID"].iloc[0] == "C00001"  # stripped, as pandas strips


def test_a_query_is_grouped_too(url, conn, tmp_path):  # noqa: F811
    frame = synthetic(n=5_000, text_ids=False)
    load(conn, "public.orders_q", frame, {"order_no": "text", "customer": "bigint", "ordered_at": "timestamptz",
                                          "qty": "integer", "amount": "numeric(12,2)"})
    cols = TransactionColumns("customer", "ordered_at", "amount")
    pushed, why = pg_aggregate.aggregate(url, cols, query="SELECT * FROM public.orders_q WHERE amount > 0")
    assert why == ""
    with postgres.local_copy(url, "SELECT * FROM public.orders_q WHERE amount > 0", folder=tmp_path) as copy:
        ref = aggregate(copy.path, cols, sep="\t", engine="pandas")
    assert_same(ref, pushed)
    assert pushed.nonpositive == 0


@pytest.mark.parametrize("change,why", [
    ("UPDATE public.orders_bad SET amount = NULL WHERE customer = 7", "empty ID, date, amount"),
    ("UPDATE public.orders_bad SET order_no = '' WHERE customer = 7", "empty ID, date, amount"),
    ("ALTER TABLE public.orders_bad ALTER COLUMN ordered_at TYPE text", "not a date or timestamp"),
    ("ALTER TABLE public.orders_bad ALTER COLUMN amount TYPE real", "not an integer, numeric"),
    ("UPDATE public.orders_bad SET order_no = '12' WHERE customer = 7", "pandas reads otherwise"),
])
def test_logs_the_server_cannot_group_exactly_go_to_pandas(url, conn, change, why):  # noqa: F811
    frame = synthetic(n=2_000, text_ids=False)
    load(conn, "public.orders_bad", frame, {"order_no": "text", "customer": "bigint", "ordered_at": "timestamptz",
                                            "qty": "integer", "amount": "numeric(12,2)"})
    conn.execute(change)
    cols = TransactionColumns("customer", "ordered_at", "amount", order_id="order_no")
    pushed, reason = pg_aggregate.aggregate(f"{url}?table=public.orders_bad", cols)
    assert pushed is None and why in reason


def test_numeric_looking_text_ids_and_a_missing_table(url, conn):  # noqa: F811
    conn.execute("DROP TABLE IF EXISTS public.orders_t")
    conn.execute("CREATE TABLE public.orders_t (cid text, day date, amount numeric)")
    conn.execute("INSERT INTO public.orders_t VALUES ('00001', '2024-01-01', 5), ('00002', '2024-01-02', 7)")
    cols = TransactionColumns("cid", "day", "amount")
    pushed, reason = pg_aggregate.aggregate(f"{url}?table=public.orders_t", cols)
    assert pushed is None and "pandas reads otherwise" in reason
    with pytest.raises(postgres.PostgresError, match='relation "public.nope" does not exist'):
        pg_aggregate.aggregate(f"{url}?table=public.nope", cols)
