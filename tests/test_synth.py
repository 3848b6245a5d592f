"""Tests of the synthetic sample generator (core.reading.synth) and the committed sample file."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.reading import schema
from core.reading.synth import SAMPLE_FILE, generate_customers, write_customers, write_sample

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PATH = ROOT / "data" / SAMPLE_FILE
REAL_PATH = ROOT.parent / "shared" / "data" / "marketing_campaign.csv"

ODD_STATUSES = {"Alone": 3, "Absurd": 2, "YOLO": 2}
CAMPAIGN_FLAGS = ["AcceptedCmp1", "AcceptedCmp2", "AcceptedCmp3", "AcceptedCmp4", "AcceptedCmp5"]


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """The default sample, as the dashboard shows it."""
    return generate_customers(2240, 7)


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    """A larger sample, for rates and correlations with little sampling noise."""
    return generate_customers(20_000, 11)


def with_totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Add Total_Spending, children and accepted campaigns; drop missing/extreme incomes."""
    out = frame.assign(
        Total=frame[schema.SPEND_COLUMNS].sum(axis=1),
        Children=frame["Kidhome"] + frame["Teenhome"],
        Accepted=frame[CAMPAIGN_FLAGS].sum(axis=1),
    )
    return out[out["Income"].notna() & (out["Income"] < 200_000)]


# --- shape and types ----------------------------------------------------------------

def test_columns_are_exactly_canonical(sample):
    assert list(sample.columns) == schema.CANONICAL_COLUMNS
    assert len(sample) == 2240


def test_dtypes(sample):
    for name in schema.INTEGER_COLUMNS:
        assert sample[name].dtype == np.int64, name
    assert sample["Income"].dtype == np.float64
    for name in ("Education", "Marital_Status", "Dt_Customer"):
        assert pd.api.types.is_string_dtype(sample[name].dtype), name
        assert sample[name].notna().all(), name


@pytest.mark.parametrize("n", [0, 1, 7, 499, 500])
def test_small_sizes(n):
    frame = generate_customers(n, 3)
    assert list(frame.columns) == schema.CANONICAL_COLUMNS
    assert len(frame) == n
    assert frame["ID"].is_unique
    # The one extreme income is planted only from 500 rows on.
    assert (frame["Income"] == 666666).sum() == (1 if n >= 500 else 0)


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2.5, TypeError), (True, TypeError), ("10", TypeError)])
def test_rejects_bad_n(bad, error):
    with pytest.raises(error):
        generate_customers(bad)


# --- values ---------------------------------------------------------------------------

def test_value_ranges(sample):
    s = sample
    assert s["ID"].is_unique and s["ID"].min() >= 0 and s["ID"].max() < 11192
    # IDs are shuffled, not in order, like the real file's.
    assert not s["ID"].is_monotonic_increasing
    ordinary_years = s["Year_Birth"][s["Year_Birth"] > 1900]
    assert ordinary_years.between(1940, 1996).all()
    assert 1966 <= s["Year_Birth"].mean() <= 1972
    income = s["Income"][s["Income"] != 666666].dropna()
    assert income.between(1700, 163_000).all()
    assert (income == income.round()).all()
    assert 47_000 <= income.mean() <= 57_000 and 17_000 <= income.std() <= 26_000
    assert set(s["Kidhome"]) <= {0, 1, 2} and set(s["Teenhome"]) <= {0, 1, 2}
    assert s["Recency"].between(0, 99).all() and s["Recency"].nunique() == 100
    bounds = {
        "NumDealsPurchases": 15, "NumWebPurchases": 27, "NumCatalogPurchases": 28,
        "NumStorePurchases": 13, "NumWebVisitsMonth": 20,
    }
    for name, high in bounds.items():
        assert s[name].between(0, high).all(), name
    for name in schema.SPEND_COLUMNS:
        assert (s[name] >= 0).all(), name
    assert (s[schema.SPEND_COLUMNS].sum(axis=1) >= 5).all()
    for name in schema.CAMPAIGN_COLUMNS + ["Complain"]:
        assert set(s[name]) <= {0, 1}, name
    assert (s["Z_CostContact"] == 3).all() and (s["Z_Revenue"] == 11).all()


def test_dates(sample):
    assert sample["Dt_Customer"].str.fullmatch(r"\d{2}-\d{2}-\d{4}").all()
    dates = pd.to_datetime(sample["Dt_Customer"], format="%d-%m-%Y")
    assert dates.min() >= pd.Timestamp("2012-07-30") and dates.max() <= pd.Timestamp("2014-06-29")
    # Spread over the whole span, not bunched.
    assert dates.dt.year.value_counts().to_dict().keys() == {2012, 2013, 2014}


def test_spend_skew_and_sizes(large):
    means = large[schema.SPEND_COLUMNS].mean()
    assert means.idxmax() == "MntWines" and means.nlargest(2).index[1] == "MntMeatProducts"
    for name in schema.SPEND_COLUMNS:
        # Right-skewed like the real file: mean well above the median.
        assert large[name].mean() > 1.2 * large[name].median(), name
    assert 0.10 <= (large["MntFruits"] == 0).mean() <= 0.25


def test_categories(sample):
    education = sample["Education"].value_counts(normalize=True)
    assert set(education.index) == {"Graduation", "PhD", "Master", "2n Cycle", "Basic"}
    assert education.idxmax() == "Graduation" and 0.45 <= education["Graduation"] <= 0.56
    marital = sample["Marital_Status"].value_counts(normalize=True)
    assert set(marital.index) == {"Married", "Together", "Single", "Divorced", "Widow", *ODD_STATUSES}
    assert marital.idxmax() == "Married"


def test_campaign_rates(large):
    rates = large[schema.CAMPAIGN_COLUMNS + ["Complain"]].mean()
    assert 0.12 <= rates["Response"] <= 0.18
    for name in ("AcceptedCmp1", "AcceptedCmp3", "AcceptedCmp4", "AcceptedCmp5"):
        assert 0.045 <= rates[name] <= 0.095, name
    assert 0.005 <= rates["AcceptedCmp2"] <= 0.025
    assert 0.004 <= rates["Complain"] <= 0.016


# --- quirks -----------------------------------------------------------------------------

def test_quirks_in_the_default_sample(sample):
    assert sample["Income"].isna().sum() == 24
    assert sorted(sample["Year_Birth"][sample["Year_Birth"] < 1901]) == [1893, 1899, 1900]
    assert (sample["Income"] == 666666).sum() == 1
    assert sample["Income"].drop(sample.index[sample["Income"] == 666666]).max() < 165_000
    counts = sample["Marital_Status"].value_counts()
    for status, expected in ODD_STATUSES.items():
        assert counts[status] == expected, status
    # A few odd purchase records, as in the real file.
    assert (sample["NumWebVisitsMonth"] >= 13).sum() >= 2
    assert (sample["NumStorePurchases"] <= 1).sum() >= 5


def test_quirks_scale_with_size():
    frame = generate_customers(22_400, 5)
    assert frame["Income"].isna().sum() == 240
    assert (frame["Year_Birth"] < 1901).sum() == 30
    assert (frame["Income"] == 666666).sum() == 1   # exactly one, whatever the size
    assert frame["ID"].is_unique


# --- reproducibility -------------------------------------------------------------------------

def test_same_seed_same_frame():
    pd.testing.assert_frame_equal(generate_customers(1000, 42), generate_customers(1000, 42))


def test_different_seed_different_frame():
    a, b = generate_customers(1000, 1), generate_customers(1000, 2)
    assert not a.equals(b)
    assert not a["Income"].equals(b["Income"])


# --- relationships -----------------------------------------------------------------------

@pytest.mark.parametrize("which", ["sample", "large"])
def test_correlation_signs(which, request):
    d = with_totals(request.getfixturevalue(which))
    corr = d[["Income", "Total", "Children", "NumWebVisitsMonth", "Accepted", "Response", "Recency",
              "NumStorePurchases", "NumCatalogPurchases", "NumDealsPurchases"]].corr()
    assert corr.loc["Income", "Total"] > 0.6
    assert corr.loc["Income", "NumWebVisitsMonth"] < -0.4
    assert corr.loc["Children", "Total"] < -0.3
    assert corr.loc["Total", "Accepted"] > 0.25
    assert corr.loc["Total", "Response"] > 0.1
    assert corr.loc["Recency", "Response"] < -0.1
    assert corr.loc["Income", "NumStorePurchases"] > 0.4
    assert corr.loc["Income", "NumCatalogPurchases"] > 0.4
    assert corr.loc["Children", "NumDealsPurchases"] > 0.2


def test_segments_are_visible(large):
    d = with_totals(large)
    top, bottom = d[d["Income"] >= d["Income"].quantile(0.75)], d[d["Income"] <= d["Income"].quantile(0.25)]
    assert top["Total"].mean() > 8 * bottom["Total"].mean()
    assert top["NumWebVisitsMonth"].mean() < bottom["NumWebVisitsMonth"].mean() - 2
    no_kids, small_kids = d[d["Children"] == 0], d[d["Kidhome"] > 0]
    assert no_kids["Total"].mean() > 3 * small_kids["Total"].mean()


# --- writing -------------------------------------------------------------------------------

def test_committed_sample_is_reproducible(tmp_path, sample):
    assert SAMPLE_PATH.exists(), f"{SAMPLE_PATH} is missing"
    fresh = tmp_path / SAMPLE_FILE
    write_customers(sample, fresh)
    assert SAMPLE_PATH.read_bytes() == fresh.read_bytes(), (
        "data/synthetic_customers.tsv differs from generate_customers(2240, 7): regenerate it with "
        "`python -m core synth --n 2240 --seed 7 --out data/synthetic_customers.tsv`"
    )


def test_written_text_format(tmp_path, sample):
    path = tmp_path / "out.tsv"
    write_customers(sample, path)
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw and b'"' not in raw
    assert raw.endswith(b"\n")
    lines = raw.decode("utf-8").split("\n")[:-1]
    assert lines[0] == "\t".join(schema.CANONICAL_COLUMNS)
    assert len(lines) == 2241
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(row) == 29 for row in rows)
    numeric = [i for i, c in enumerate(schema.CANONICAL_COLUMNS) if c in schema.INTEGER_COLUMNS or c == "Income"]
    income = schema.CANONICAL_COLUMNS.index("Income")
    for row in rows:
        for i in numeric:
            if i == income and row[i] == "":
                continue
            assert row[i].isdigit(), (schema.CANONICAL_COLUMNS[i], row[i])
    assert sum(row[income] == "" for row in rows) == 24
    assert any(row[income] == "666666" for row in rows)


def test_round_trip(tmp_path, sample):
    path = tmp_path / "out.tsv"
    write_customers(sample, path)
    back = pd.read_csv(path, sep="\t")
    pd.testing.assert_frame_equal(back, sample)


def test_write_income_with_cents_and_missing_values(tmp_path):
    frame = generate_customers(3, 1)
    frame["Income"] = [58138.0, 58138.5, np.nan]
    frame = frame.assign(Age=40)   # extra columns are not written
    path = tmp_path / "cents.tsv"
    write_customers(frame, path)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0].split("\t") == schema.CANONICAL_COLUMNS
    incomes = [line.split("\t")[4] for line in lines[1:4]]
    assert incomes == ["58138", "58138.5", ""]


def test_write_float_integer_columns_without_decimal_point(tmp_path):
    frame = generate_customers(4, 1)
    frame["Recency"] = frame["Recency"].astype(float)
    frame.loc[0, "Response"] = np.nan
    path = tmp_path / "floats.tsv"
    write_customers(frame, path)
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").split("\n")[1:-1]]
    recency = schema.CANONICAL_COLUMNS.index("Recency")
    assert all(row[recency].isdigit() for row in rows)
    assert rows[0][-1] == "" and all(row[-1] in {"0", "1"} for row in rows[1:])


def test_write_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "customers.tsv"
    path.write_text("old contents\n")
    write_customers(generate_customers(10, 1), path)
    assert path.read_text().startswith("ID\tYear_Birth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.tsv"]


def test_write_missing_column_fails_cleanly(tmp_path):
    path = tmp_path / "customers.tsv"
    with pytest.raises(ValueError, match="Income"):
        write_customers(generate_customers(5, 1).drop(columns=["Income"]), path)
    assert list(tmp_path.iterdir()) == []


def test_write_sample(tmp_path):
    path = tmp_path / SAMPLE_FILE
    frame = write_sample(path, n=50, seed=3)
    pd.testing.assert_frame_equal(frame, generate_customers(50, 3))
    pd.testing.assert_frame_equal(pd.read_csv(path, sep="\t"), frame)


# --- implementation constraints --------------------------------------------------------------------

def test_imports_only_numpy_and_pandas():
    tree = ast.parse((ROOT / "core" / "synth.py").read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    # pyarrow: `synth --out FILE.parquet` (issue 10), imported inside write_parquet only.
    assert modules <= {"__future__", "csv", "os", "tempfile", "dataclasses", "pathlib", "numpy", "pandas", "core",
                       "pyarrow"}


def test_large_n_keeps_ids_unique():
    # Speed is measured in benchmarks/, not here.
    frame = generate_customers(200_000, 1)
    assert frame["ID"].is_unique and len(frame) == 200_000


# --- against the real file (skipped when it is absent) ---------------------------------------

real_only = pytest.mark.real_data


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    """The real file, read only to compare distributions; skips when it is absent."""
    if not REAL_PATH.exists():
        pytest.skip(f"real data set not present at {REAL_PATH}")
    return pd.read_csv(REAL_PATH, sep="\t")


@real_only
def test_marginals_close_to_real(real, sample):
    r, s = with_totals(real), with_totals(sample)
    assert abs(r["Year_Birth"].mean() - s["Year_Birth"].mean()) < 1.5
    assert abs(r["Income"].mean() / s["Income"].mean() - 1) < 0.06
    assert abs(r["Income"].std() / s["Income"].std() - 1) < 0.15
    assert abs(r["Total"].mean() / s["Total"].mean() - 1) < 0.12
    for name in schema.SPEND_COLUMNS:
        assert abs(r[name].mean() / s[name].mean() - 1) < 0.25, name
    for name in ["Kidhome", "Teenhome"]:
        assert abs(r[name].mean() - s[name].mean()) < 0.06, name
    for name in schema.PURCHASE_COLUMNS + ["NumWebVisitsMonth"]:
        assert abs(r[name].mean() / s[name].mean() - 1) < 0.12, name
    for name in schema.CAMPAIGN_COLUMNS + ["Complain"]:
        assert abs(real[name].mean() - sample[name].mean()) < 0.025, name
    for column in schema.CATEGORY_COLUMNS:
        rf, sf = real[column].value_counts(normalize=True), sample[column].value_counts(normalize=True)
        assert set(rf.index) == set(sf.index), column
        assert (rf - sf).abs().max() < 0.04, column


@real_only
def test_correlations_close_to_real(real, sample):
    cols = ["Income", "Total", "Children", "NumWebVisitsMonth", "NumStorePurchases", "NumCatalogPurchases"]
    rc, sc = with_totals(real)[cols].corr(), with_totals(sample)[cols].corr()
    assert (rc - sc).abs().to_numpy().max() < 0.15


@real_only
def test_no_real_row_is_copied(real, sample):
    columns = [c for c in schema.CANONICAL_COLUMNS if c != "ID"]
    shared = sample[columns].merge(real[columns].drop_duplicates(), how="inner", on=columns)
    assert shared.empty


def test_write_parquet_holds_the_generated_customers_and_unique_ids_across_blocks(tmp_path):
    import pyarrow.parquet as pq

    from core.reading.synth import generate_customers, write_parquet

    small = tmp_path / "small.parquet"
    assert write_parquet(small, n=400, seed=2) == 400
    table = pq.read_table(small)
    assert table.schema.names == list(generate_customers(1).columns) and str(table.schema.field("Dt_Customer").type) == "date32[day]"
    back = table.to_pandas()
    expected = generate_customers(400, seed=2)
    np.testing.assert_array_equal(back["ID"].to_numpy(), expected["ID"].to_numpy())
    np.testing.assert_array_equal(back["Income"].to_numpy(), expected["Income"].to_numpy())
    assert (pd.to_datetime(back["Dt_Customer"]).dt.strftime("%d-%m-%Y") == expected["Dt_Customer"]).all()
    big = tmp_path / "blocks.parquet"
    write_parquet(big, n=2500, seed=2, block=1000)  # three generated blocks
    ids = pq.read_table(big, columns=["ID"]).column("ID").to_numpy()
    assert len(ids) == 2500 and len(np.unique(ids)) == 2500 and pq.ParquetFile(big).metadata.num_row_groups == 3
