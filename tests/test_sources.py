"""Chunked reading, cleaning and features (core.reading.sources) give the one-shot path's rows and report."""
import numpy as np
import pandas as pd
import pytest

from core.reading.loading import DataFileError
from core.versions.pipeline import prepare
from core.reading.sources import DataSource, is_parquet, open_source
from core.reading.synth import generate_customers, write_parquet


def _chunked(path, rows):
    src = DataSource(path)
    return src, pd.concat(list(src.iter_chunks(rows)))


def _assert_same(path, rows):
    one = prepare(path)
    src, frame = _chunked(path, rows)
    pd.testing.assert_frame_equal(one.frame, frame)
    assert src.scan().report.to_dict() == one.report.to_dict()
    assert src.scan().info.to_dict() == one.info.to_dict()
    return one, src


@pytest.mark.parametrize("rows", [97, 1000])
def test_chunked_equals_one_shot_on_the_sample(sample_path, rows):
    one, _ = _assert_same(sample_path, rows)
    assert one.report.dropped["missing_income"] > 0  # the sample's quirks are in play


def test_parquet_file_and_folder_equal_the_text_file(tmp_path, sample_path):
    path = tmp_path / "customers.parquet"
    write_parquet(path, 2240, 7)  # the same customers as the committed sample
    assert is_parquet(path) and not is_parquet(sample_path)
    one, _ = _assert_same(path, 300)
    text = prepare(sample_path)
    columns = ["ID", "Age", "Income", "Total_Spending", "Customer_since", "Marital_Status"]
    pd.testing.assert_frame_equal(one.frame[columns], text.frame[columns])
    assert one.report.dropped == text.report.dropped
    # A folder of part files reads as one table, in file-name order.
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(table.slice(0, 1000), folder / "part-0000.parquet")
    pq.write_table(table.slice(1000), folder / "part-0001.parquet")
    _, frame = _chunked(folder, 400)
    pd.testing.assert_frame_equal(frame, one.frame)


def test_rules_that_need_the_whole_file_span_chunks(tmp_path):
    """Repeated IDs and records, the income fence and the date format are decided on the whole file."""
    frame = generate_customers(600, seed=3)
    dates = pd.to_datetime(frame["Dt_Customer"], format="%d-%m-%Y")
    # Days <= 12 in the first 150 rows: that chunk alone could be day-first; the file is month-first.
    early = dates.iloc[:150].apply(lambda d: d.replace(day=min(d.day, 12)))
    dates = pd.concat([early, dates.iloc[150:]])
    frame["Dt_Customer"] = dates.dt.strftime("%m/%d/%Y")
    frame.loc[550, "ID"] = frame.loc[5, "ID"]                        # repeated ID, chunks apart
    frame.loc[580, [c for c in frame.columns if c != "ID"]] = frame.loc[10, [c for c in frame.columns if c != "ID"]]
    frame["Income"] = frame["Income"].astype(object)
    frame.loc[420, "Income"] = "$1,234,567.00"                       # above the fence once read
    frame.loc[430, "Income"] = "lots"                                # unreadable
    path = tmp_path / "tricky.tsv"
    frame.to_csv(path, sep="\t", index=False)
    one, src = _assert_same(path, 100)
    report = one.report.to_dict()
    assert one.info.date_order == "month-first"
    assert report["dropped"]["duplicate_id"] == 1 and report["dropped"]["unreadable_values"] == 1
    assert report["dropped"]["extreme_income"] >= 1 and report["flagged"]["duplicate_record"] >= 1
    assert src.scan().info.currency_income


@pytest.mark.real_data
def test_chunked_equals_one_shot_on_the_real_file(real_data_path):
    one, _ = _assert_same(real_data_path, 500)
    assert one.report.flagged["duplicate_record"] == 183  # spans the whole file


def test_unreadable_parquet_and_missing_column_are_one_line_errors(tmp_path):
    import pyarrow.parquet as pq

    good = tmp_path / "good.parquet"
    write_parquet(good, 300, 1)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(good.read_bytes()[:500])
    with pytest.raises(DataFileError, match=r"^bad\.parquet: could not be read as Parquet") as err:
        open_source(bad)
    assert "\n" not in str(err.value)
    pq.write_table(pq.read_table(good).drop_columns(["Income"]), tmp_path / "no_income.parquet")
    with pytest.raises(DataFileError, match=r"no_income\.parquet: missing required column\(s\) Income"):
        open_source(tmp_path / "no_income.parquet")
    with pytest.raises(DataFileError, match="no such file"):
        open_source(tmp_path / "absent.parquet")


def test_feature_file_gives_the_features_of_the_chunks(sample_path):
    features = ["Age", "Income", "Customer_since", "Total_Spending"]
    with DataSource(sample_path) as src:
        src.scan(300, features=features)
        cached = np.concatenate(list(src.iter_features(features, 250)))
        frame = pd.concat(list(src.iter_chunks(300)))
    np.testing.assert_array_equal(cached, frame[features].to_numpy(dtype=float))
