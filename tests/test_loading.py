"""Tests for core.reading.loading: every shape of customer file users have, and every way it can be broken.

Variant files are generated into tmp_path from a small canonical frame (and from the
real data file when it is present; those tests skip otherwise).
"""
from __future__ import annotations

import io
import json
import time
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from core.reading.loading import DataFileError, LoadInfo, LoadResult, file_line, load_customers
from core.reading.schema import CANONICAL_COLUMNS, OPTIONAL_COLUMNS

REAL_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "marketing_campaign.csv"
needs_real = pytest.mark.skipif(not REAL_FILE.is_file(), reason="real data file not present")

# Dates with days above 12, so day-first/month-first is decidable from the values.
DATES = [
    date(2012, 7, 30), date(2012, 9, 4), date(2013, 1, 5), date(2013, 3, 18), date(2014, 6, 29),
    date(2012, 12, 1), date(2013, 8, 21), date(2014, 2, 14), date(2013, 11, 9), date(2012, 10, 31),
]
# Every day and month <= 12: cannot be decided.
AMBIGUOUS_DATES = [
    date(2012, 9, 4), date(2013, 1, 5), date(2014, 6, 12), date(2012, 12, 1), date(2013, 3, 7),
    date(2013, 8, 2), date(2014, 2, 11), date(2013, 11, 9), date(2012, 10, 10), date(2013, 5, 6),
]
N_ROWS = len(DATES)


# ----------------------------------------------------------------------------- helpers


def canonical_frame(dates: list[date] = DATES) -> pd.DataFrame:
    """A small customer frame in exactly the form load_customers must return."""
    rng = np.random.default_rng(7)
    n = len(dates)
    data: dict[str, object] = {}
    for col in CANONICAL_COLUMNS:
        if col == "ID":
            data[col] = np.arange(1000, 1000 + n, dtype="int64") * 7
        elif col == "Year_Birth":
            data[col] = rng.integers(1945, 2000, n).astype("float64")
        elif col == "Education":
            data[col] = pd.Series(["Graduation", "PhD", "Master", "Basic", "2n Cycle"] * (n // 5 + 1),
                                  dtype=object)[:n].to_numpy()
        elif col == "Marital_Status":
            data[col] = pd.Series(["Single", "Together", "Married", "Divorced", "Widow"] * (n // 5 + 1),
                                  dtype=object)[:n].to_numpy()
        elif col == "Income":
            inc = rng.integers(15000, 120000, n).astype("float64")
            inc[1] = 84835.0
            inc[2] = 58138.5  # cents survive every format
            inc[5] = np.nan   # empty income, as in 24 rows of the real file
            inc[6] = 1234567.0  # two thousands groups
            data[col] = inc
        elif col == "Dt_Customer":
            data[col] = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[ns]")
        elif col in ("Z_CostContact",):
            data[col] = np.full(n, 3.0)
        elif col in ("Z_Revenue",):
            data[col] = np.full(n, 11.0)
        elif col.startswith("Accepted") or col in ("Complain", "Response"):
            data[col] = rng.integers(0, 2, n).astype("float64")
        else:
            data[col] = rng.integers(0, 500, n).astype("float64")
    frame = pd.DataFrame(data)
    frame["Education"] = frame["Education"].astype(object)
    frame["Marital_Status"] = frame["Marital_Status"].astype(object)
    return frame


def _plain(value: object) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def write_text(
    frame: pd.DataFrame,
    *,
    sep: str = "\t",
    date_fmt: str | Callable[[pd.Timestamp], str] = "%d-%m-%Y",
    income: Callable[[float], str] | None = None,
    headers: dict[str, str] | None = None,
    newline: str = "\n",
    quote_all_income: bool = False,
) -> str:
    """Render ``frame`` as a delimited text file, quoting only where needed."""
    headers = headers or {}

    def field(text: str, force: bool = False) -> str:
        if force or sep in text or '"' in text or "\n" in text:
            return '"' + text.replace('"', '""') + '"'
        return text

    lines = [sep.join(field(headers.get(c, c)) for c in frame.columns)]
    for _, row in frame.iterrows():
        cells = []
        for col in frame.columns:
            v = row[col]
            if col == "Dt_Customer":
                if pd.isna(v):
                    text = ""
                else:
                    text = date_fmt(v) if callable(date_fmt) else v.strftime(date_fmt)
            elif col == "Income" and income is not None:
                text = "" if pd.isna(v) else income(v)
            elif isinstance(v, (int, np.integer)):
                text = str(int(v))
            else:
                text = _plain(v if not isinstance(v, np.floating) else float(v))
            cells.append(field(text, force=quote_all_income and col == "Income"))
        lines.append(sep.join(cells))
    return newline.join(lines) + newline


def write_file(tmp_path: Path, text: str | bytes, name: str = "customers.csv",
               encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return path


def check_one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and "\r" not in msg
    return msg


@pytest.fixture
def frame() -> pd.DataFrame:
    return canonical_frame()


@pytest.fixture
def canonical_path(tmp_path: Path, frame: pd.DataFrame) -> Path:
    return write_file(tmp_path, write_text(frame))


# -------------------------------------------------------------------- canonical & API


def test_canonical_file_round_trips(canonical_path: Path, frame: pd.DataFrame) -> None:
    result = load_customers(canonical_path)
    assert isinstance(result, LoadResult) and isinstance(result.info, LoadInfo)
    pd.testing.assert_frame_equal(result.frame, frame)
    assert isinstance(result.frame.index, pd.RangeIndex)
    assert result.frame["ID"].dtype == np.int64
    assert result.frame["Dt_Customer"].dtype == "datetime64[ns]"
    assert result.frame["Education"].dtype == object
    assert all(type(v) is str for v in result.frame["Education"])
    info = result.info
    assert info.source == "customers.csv"
    assert (info.delimiter, info.encoding, info.bom, info.line_endings) == ("\t", "utf-8", False, "LF")
    assert (info.date_order, info.date_format) == ("day-first", "%d-%m-%Y")
    assert "day-first" in info.date_note and "ambiguous" not in info.date_note
    assert info.column_mapping == {c: c for c in CANONICAL_COLUMNS}
    assert info.extra_columns == [] and info.missing_optional == []
    assert info.unreadable == {} and info.currency_income is False
    assert info.rows == N_ROWS


def test_info_to_dict_is_json(tmp_path: Path, frame: pd.DataFrame) -> None:
    lines = write_text(frame).splitlines()
    cells = lines[3].split("\t")
    cells[4] = "abc"
    lines[3] = "\t".join(cells)
    info = load_customers(write_file(tmp_path, "\n".join(lines) + "\n")).info
    out = info.to_dict()
    assert json.loads(json.dumps(out)) == out
    assert out["unreadable"] == {"Income": [2]} and out["rows"] == N_ROWS


def test_file_line() -> None:
    assert file_line(0) == 2
    assert file_line(41) == 43


# ------------------------------------------------------------------ delimiters, encodings


@pytest.mark.parametrize("sep", [",", ";"])
def test_other_delimiters(tmp_path: Path, frame: pd.DataFrame, sep: str) -> None:
    result = load_customers(write_file(tmp_path, write_text(frame, sep=sep)))
    pd.testing.assert_frame_equal(result.frame, frame)
    assert result.info.delimiter == sep


def test_bom(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = write_file(tmp_path, write_text(frame, sep=","), encoding="utf-8-sig")
    result = load_customers(path)
    pd.testing.assert_frame_equal(result.frame, frame)
    assert result.info.bom is True and result.info.encoding == "utf-8-sig"
    assert "ID" in result.info.column_mapping  # not "\ufeffID"


def test_crlf(tmp_path: Path, frame: pd.DataFrame) -> None:
    result = load_customers(write_file(tmp_path, write_text(frame, newline="\r\n")))
    pd.testing.assert_frame_equal(result.frame, frame)
    assert result.info.line_endings == "CRLF"


def test_cp1252_fallback(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame.loc[0, "Marital_Status"] = "Célibataire"
    result = load_customers(write_file(tmp_path, write_text(frame, sep=";"), encoding="cp1252"))
    assert result.info.encoding == "cp1252"
    pd.testing.assert_frame_equal(result.frame, frame)


def test_latin1_fallback(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame).encode("latin-1").replace(b"Basic", b"Basic\x81")
    result = load_customers(write_file(tmp_path, text))
    assert result.info.encoding == "latin-1"
    assert result.frame.loc[3, "Education"] == "Basic\x81"


def test_utf16_unicode_text_export(tmp_path: Path, frame: pd.DataFrame) -> None:
    result = load_customers(write_file(tmp_path, write_text(frame, newline="\r\n"), encoding="utf-16"))
    pd.testing.assert_frame_equal(result.frame, frame)
    assert result.info.encoding == "utf-16" and result.info.bom is True


# ----------------------------------------------------------------------------- dates


def _day_mon_yy(ts: pd.Timestamp) -> str:
    return f"{ts.day}-{ts.strftime('%b')}-{ts.strftime('%y')}"


def _m_d_yyyy(ts: pd.Timestamp) -> str:
    return f"{ts.month}/{ts.day}/{ts.year}"


def _d_m_yyyy(ts: pd.Timestamp) -> str:
    return f"{ts.day}/{ts.month}/{ts.year}"


@pytest.mark.parametrize(
    ("writer", "order", "fmt"),
    [
        ("%d-%m-%Y", "day-first", "%d-%m-%Y"),
        ("%Y-%m-%d", "year-first", "%Y-%m-%d"),
        (_day_mon_yy, "day-first", "%d-%b-%y"),
        (_m_d_yyyy, "month-first", "%m/%d/%Y"),
        (_d_m_yyyy, "day-first", "%d/%m/%Y"),
        ("%d.%m.%Y", "day-first", "%d.%m.%Y"),
        ("%Y/%m/%d", "year-first", "%Y/%m/%d"),
        ("%d-%m-%y", "day-first", "%d-%m-%y"),
        ("%m/%d/%y", "month-first", "%m/%d/%y"),
        ("%Y-%m-%d 00:00:00", "year-first", "%Y-%m-%d"),
        ("%d/%m/%Y 00:00", "day-first", "%d/%m/%Y"),
    ],
    ids=["dd-mm-yyyy", "yyyy-mm-dd", "d-Mon-yy", "m/d/yyyy", "d/m/yyyy", "dd.mm.yyyy",
         "yyyy/mm/dd", "dd-mm-yy", "mm/dd/yy", "iso-with-time", "dmy-with-time"],
)
def test_date_forms(tmp_path: Path, frame: pd.DataFrame, writer, order: str, fmt: str) -> None:
    result = load_customers(write_file(tmp_path, write_text(frame, sep=",", date_fmt=writer)))
    pd.testing.assert_series_equal(result.frame["Dt_Customer"], frame["Dt_Customer"])
    assert result.info.date_order == order
    assert result.info.date_format == fmt
    assert "ambiguous" not in result.info.date_note
    assert order.split("-")[0] in result.info.date_note or "name" in result.info.date_note
    if isinstance(writer, str) and ":" in writer:
        assert "time of day was ignored" in result.info.date_note


def test_month_first_note(tmp_path: Path, frame: pd.DataFrame) -> None:
    info = load_customers(write_file(tmp_path, write_text(frame, date_fmt="%m/%d/%Y"))).info
    assert info.date_note.startswith("mm/dd/yyyy (month-first")


def test_ambiguous_dates_assume_day_first(tmp_path: Path) -> None:
    frame = canonical_frame(AMBIGUOUS_DATES)
    result = load_customers(write_file(tmp_path, write_text(frame, date_fmt="%d/%m/%Y")))
    pd.testing.assert_series_equal(result.frame["Dt_Customer"], frame["Dt_Customer"])
    assert result.info.date_order == "day-first"
    assert result.info.date_format == "%d/%m/%Y"
    assert "ambiguous" in result.info.date_note
    assert "assumed day-first" in result.info.date_note


def test_empty_date_cell_is_nat_not_unreadable(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame.loc[4, "Dt_Customer"] = pd.NaT
    result = load_customers(write_file(tmp_path, write_text(frame)))
    pd.testing.assert_frame_equal(result.frame, frame)
    assert result.info.unreadable == {}


def test_one_unreadable_date_is_listed(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame).replace("21-08-2013", "2013-08-21")
    result = load_customers(write_file(tmp_path, text))
    assert result.info.unreadable == {"Dt_Customer": [6]}
    assert pd.isna(result.frame.loc[6, "Dt_Customer"])
    assert result.info.date_order == "day-first"
    assert "could not be read" in result.info.date_note


def test_stray_word_in_date_column(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame).replace("30-07-2012", "unknown")
    result = load_customers(write_file(tmp_path, text))
    assert result.info.unreadable == {"Dt_Customer": [0]}
    assert result.info.date_format == "%d-%m-%Y"
    pd.testing.assert_series_equal(result.frame["Dt_Customer"].iloc[1:], frame["Dt_Customer"].iloc[1:])


# ---------------------------------------------------------------------------- incomes


@pytest.mark.parametrize(
    ("sep", "income", "currency"),
    [
        (",", lambda v: f"${v:,.2f} ", True),     # "$84,835.00 ", quoted because of the commas
        (",", lambda v: f"{v:,.10g}", True),       # "84,835"
        ("\t", lambda v: f"${v:,.2f}", True),
        (";", lambda v: "€ " + f"{v:,.2f}".replace(",", "X").replace(".", ",").replace("X", "."), True),
        ("\t", lambda v: f" {v:.10g} ", False),    # " 58138 "
    ],
    ids=["dollar-quoted", "grouped", "dollar-tab", "euro", "spaces"],
)
def test_currency_incomes(tmp_path: Path, frame: pd.DataFrame, sep: str, income, currency: bool) -> None:
    text = write_text(frame, sep=sep, income=income)
    if sep == ",":
        assert '"' in text  # the grouped incomes had to be quoted
    result = load_customers(write_file(tmp_path, text))
    pd.testing.assert_frame_equal(result.frame, frame)
    assert result.info.currency_income is currency
    assert result.info.unreadable == {}


def test_european_convention_decided_per_column(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame.loc[0, "Income"] = 84835.0   # written "84.835": thousands, not 84.835
    frame.loc[3, "Income"] = 58138.5   # written "58138,5"
    def income(v: float) -> str:
        return {84835.0: "84.835", 58138.5: "58138,5", 1234567.0: "1.234.567"}.get(v, f"{v:.10g}")
    result = load_customers(write_file(tmp_path, write_text(frame, sep=";", income=income)))
    pd.testing.assert_series_equal(result.frame["Income"], frame["Income"])
    assert result.info.currency_income is True


def test_na_tokens_are_empty_not_unreadable(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame, income=lambda v: f"{v:.10g}")
    lines = text.splitlines()
    for row, token in ((1, "NA"), (2, "n/a"), (3, "   ")):
        cells = lines[row].split("\t")
        cells[4] = token
        lines[row] = "\t".join(cells)
    result = load_customers(write_file(tmp_path, "\n".join(lines) + "\n"))
    assert result.frame["Income"].iloc[:3].isna().all()
    assert result.info.unreadable == {}


def test_one_unreadable_income_is_listed_not_an_error(tmp_path: Path, frame: pd.DataFrame) -> None:
    lines = write_text(frame).splitlines()
    cells = lines[4].split("\t")  # frame position 3
    cells[4] = "abc"
    lines[4] = "\t".join(cells)
    result = load_customers(write_file(tmp_path, "\n".join(lines) + "\n"))
    assert result.info.unreadable == {"Income": [3]}
    assert np.isnan(result.frame.loc[3, "Income"])
    expected = frame["Income"].copy()
    expected[3] = np.nan
    pd.testing.assert_series_equal(result.frame["Income"], expected)


def test_half_unreadable_loads_more_than_half_fails(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame.loc[5, "Income"] = 1.0  # no empties: 10 non-empty values
    def with_bad(k: int) -> str:
        lines = write_text(frame).splitlines()
        for row in range(1, k + 1):
            cells = lines[row].split("\t")
            cells[4] = "unknown"
            lines[row] = "\t".join(cells)
        return "\n".join(lines) + "\n"
    ok = load_customers(write_file(tmp_path, with_bad(5), "half.csv"))
    assert ok.info.unreadable == {"Income": [0, 1, 2, 3, 4]}
    with pytest.raises(DataFileError, match=r"^many\.csv: column Income: 6 of 10 values are not numbers"):
        load_customers(write_file(tmp_path, with_bad(6), "many.csv"))


def test_non_numeric_incomes_error(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame = frame.fillna({"Income": 1.0})
    text = write_text(frame, income=lambda v: "abc")
    with pytest.raises(DataFileError) as err:
        load_customers(write_file(tmp_path, text))
    msg = check_one_line(err)
    assert msg == (f"customers.csv: column Income: {N_ROWS} of {N_ROWS} values are not numbers "
                   "(line 2: 'abc'); expected a number such as 58138 or $58,138.00")


def test_unreadable_id_keeps_float(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame).replace("\n7021\t", "\nX-17\t")
    result = load_customers(write_file(tmp_path, text))
    assert result.frame["ID"].dtype == np.float64
    assert result.info.unreadable == {"ID": [3]}
    assert np.isnan(result.frame.loc[3, "ID"])


def test_flags_written_as_booleans(tmp_path: Path, frame: pd.DataFrame) -> None:
    frame = frame.copy()
    text = write_text(frame)
    lines = text.splitlines()
    col = list(frame.columns).index("Response")
    for row in range(1, len(lines)):
        cells = lines[row].split("\t")
        cells[col] = "TRUE" if cells[col] == "1" else "FALSE"
        if row == 2:
            cells[col] = ""
        lines[row] = "\t".join(cells)
    result = load_customers(write_file(tmp_path, "\n".join(lines) + "\n"))
    expected = frame["Response"].copy()
    expected[1] = np.nan
    pd.testing.assert_series_equal(result.frame["Response"], expected)


def test_text_columns_stripped(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame).replace("\tPhD\t", "\t PhD \t", 1).replace("\tWidow\t", "\t\t", 1)
    result = load_customers(write_file(tmp_path, text))
    assert result.frame.loc[1, "Education"] == "PhD"
    assert pd.isna(result.frame.loc[4, "Marital_Status"])
    assert result.frame["Marital_Status"].dtype == object


# --------------------------------------------------------------------------- headers


def test_header_spellings(tmp_path: Path, frame: pd.DataFrame) -> None:
    spelled = {"Year_Birth": "YearBirth", "Marital_Status": "MaritalStatus",
               "Dt_Customer": "DtCustomer", "MntGoldProds": "MntGoldProducts",
               "ID": "id", "Income": " Income "}
    result = load_customers(write_file(tmp_path, write_text(frame, sep=",", headers=spelled)))
    pd.testing.assert_frame_equal(result.frame, frame)
    for written, canon in ((v, k) for k, v in spelled.items()):
        assert result.info.column_mapping[written] == canon
    assert result.info.extra_columns == []


def test_columns_in_other_order(tmp_path: Path, frame: pd.DataFrame) -> None:
    shuffled = frame[list(reversed(frame.columns))]
    result = load_customers(write_file(tmp_path, write_text(shuffled)))
    pd.testing.assert_frame_equal(result.frame, frame)


def test_extra_columns_kept_at_the_end(tmp_path: Path, frame: pd.DataFrame) -> None:
    wide = frame.copy()
    wide.insert(3, "Segment", ["a", "b"] * (N_ROWS // 2))
    wide.insert(0, "Store code", np.arange(N_ROWS) + 100)
    result = load_customers(write_file(tmp_path, write_text(wide, sep=",")))
    assert list(result.frame.columns) == CANONICAL_COLUMNS + ["Store code", "Segment"]
    assert result.info.extra_columns == ["Store code", "Segment"]
    assert list(result.frame["Segment"]) == ["a", "b"] * (N_ROWS // 2)
    pd.testing.assert_frame_equal(result.frame[CANONICAL_COLUMNS], frame)


def test_optional_columns_absent(tmp_path: Path, frame: pd.DataFrame) -> None:
    slim = frame.drop(columns=OPTIONAL_COLUMNS)
    result = load_customers(write_file(tmp_path, write_text(slim)))
    pd.testing.assert_frame_equal(result.frame, slim)
    assert result.info.missing_optional == [c for c in CANONICAL_COLUMNS if c in OPTIONAL_COLUMNS]
    assert not set(OPTIONAL_COLUMNS) & set(result.frame.columns)


def test_pandas_index_column_kept_as_extra(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = frame.assign(Dt_Customer=frame["Dt_Customer"].dt.strftime("%d-%m-%Y")).to_csv()
    result = load_customers(write_file(tmp_path, text))
    assert result.info.extra_columns == ["Unnamed: 0"]
    pd.testing.assert_frame_equal(result.frame[CANONICAL_COLUMNS], frame)


def test_same_header_twice(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame.assign(extra=frame["Income"]), headers={"extra": "Income"})
    with pytest.raises(DataFileError, match=r"columns 'Income' \(column 5\) and 'Income' \(column 30\)"):
        load_customers(write_file(tmp_path, text))


# ------------------------------------------------------------------------ other sources


def test_from_bytes_with_upload_name(canonical_path: Path, frame: pd.DataFrame) -> None:
    data = canonical_path.read_bytes()
    result = load_customers(data, name="C:\\fakepath\\my customers.csv")
    assert result.info.source == "my customers.csv"
    pd.testing.assert_frame_equal(result.frame, frame)
    assert load_customers(data).info.source == "upload"


def test_from_file_objects(canonical_path: Path, frame: pd.DataFrame) -> None:
    result = load_customers(io.BytesIO(canonical_path.read_bytes()), name="/tmp/up/x.csv")
    assert result.info.source == "x.csv"
    pd.testing.assert_frame_equal(result.frame, frame)
    with canonical_path.open("rb") as fh:
        result = load_customers(fh)
    assert result.info.source == "customers.csv"
    pd.testing.assert_frame_equal(result.frame, frame)


def test_from_str_path(canonical_path: Path) -> None:
    assert load_customers(str(canonical_path)).info.rows == N_ROWS


# ------------------------------------------------------------------------ broken files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataFileError, match=r"^no such file: .*nope\.csv$"):
        load_customers(path)


@pytest.mark.parametrize("content", [b"", b"  \n\r\n\t ", b"\xef\xbb\xbf\n"], ids=["0-bytes", "blank", "bom"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(DataFileError, match=r"^customers\.csv is empty: expected a header line and customer rows$"):
        load_customers(write_file(tmp_path, content))


def test_header_only(tmp_path: Path, frame: pd.DataFrame) -> None:
    header = write_text(frame).splitlines()[0] + "\n\n"
    with pytest.raises(DataFileError, match=r"^customers\.csv has a header but no customer rows$"):
        load_customers(write_file(tmp_path, header))


BINARY_MSG = (r"^customers\.csv is not a text file \(binary content\); "
              r"expected a tab-, comma- or semicolon-separated text file")


def test_binary_png(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    with pytest.raises(DataFileError, match=BINARY_MSG):
        load_customers(write_file(tmp_path, png))


def test_binary_garbage_without_nul(tmp_path: Path) -> None:
    garbage = bytes(np.random.default_rng(1).integers(1, 256, 4000, dtype=np.uint8))
    with pytest.raises(DataFileError, match=BINARY_MSG):
        load_customers(write_file(tmp_path, garbage))


def test_xlsx_bytes(tmp_path: Path) -> None:
    xlsx = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + b"[Content_Types].xml" + bytes(200)
    with pytest.raises(DataFileError, match=BINARY_MSG + r".*xlsx.*save it as CSV first"):
        load_customers(write_file(tmp_path, xlsx, "customers.csv"))


def test_required_columns_missing(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame.drop(columns=["Income", "Dt_Customer"]))
    with pytest.raises(DataFileError) as err:
        load_customers(write_file(tmp_path, text))
    msg = check_one_line(err)
    assert msg.startswith("customers.csv: missing required column(s) Income, Dt_Customer; found columns: "
                          "ID, Year_Birth, Education, Marital_Status, Kidhome, Teenhome, Recency, ")
    assert "(27 in all)" in msg and msg.endswith("; see data/README.md for the expected format")


def test_unknown_delimiter_hint(tmp_path: Path, frame: pd.DataFrame) -> None:
    with pytest.raises(DataFileError, match=r"missing required column\(s\) ID, Year_Birth.*single column"):
        load_customers(write_file(tmp_path, write_text(frame, sep="|")))


def test_duplicate_columns(tmp_path: Path, frame: pd.DataFrame) -> None:
    dup = frame.copy()
    dup["YearBirth"] = dup["Year_Birth"]
    with pytest.raises(DataFileError,
                       match=r"^customers\.csv: columns 'Year_Birth' \(column 2\) and 'YearBirth' "
                             r"\(column 30\) both mean Year_Birth"):
        load_customers(write_file(tmp_path, write_text(dup)))


def test_too_many_fields(tmp_path: Path, frame: pd.DataFrame) -> None:
    lines = write_text(frame).splitlines()
    lines[3] += "\textra"
    with pytest.raises(DataFileError) as err:
        load_customers(write_file(tmp_path, "\n".join(lines) + "\n"))
    assert check_one_line(err) == ("customers.csv: line 4 has 30 fields, expected 29 "
                                   "(check the delimiter and quoting)")


def test_unquoted_currency_in_comma_file(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame, sep=",")
    lines = text.splitlines()
    cells = lines[1].split(",")
    cells[4] = "$1,000.00"  # the comma splits the field in two
    lines[1] = ",".join(cells)
    with pytest.raises(DataFileError, match=r"^customers\.csv: line 2 has 30 fields, expected 29"):
        load_customers(write_file(tmp_path, "\n".join(lines) + "\n"))


def test_unclosed_quote(tmp_path: Path, frame: pd.DataFrame) -> None:
    lines = write_text(frame).splitlines()
    lines[2] = lines[2].replace("\tPhD\t", '\t"PhD\t')
    with pytest.raises(DataFileError, match=r"^customers\.csv: a quoted field starting on line 3 is never closed"):
        load_customers(write_file(tmp_path, "\n".join(lines) + "\n"))


def test_dates_in_no_format(tmp_path: Path, frame: pd.DataFrame) -> None:
    text = write_text(frame, date_fmt=lambda ts: "soon")
    with pytest.raises(DataFileError) as err:
        load_customers(write_file(tmp_path, text))
    msg = check_one_line(err)
    assert msg.startswith(f"customers.csv: column Dt_Customer: {N_ROWS} of {N_ROWS} values are not dates")
    assert "(line 2: 'soon')" in msg
    assert "accepted formats: dd-mm-yyyy" in msg and "yyyy-mm-dd" in msg and "d-Mon-yy" in msg


def test_mixed_date_formats_half_readable_still_loads(tmp_path: Path, frame: pd.DataFrame) -> None:
    def writer(ts: pd.Timestamp) -> str:
        return ts.strftime("%Y-%m-%d") if ts.month % 2 else ts.strftime("%d.%m.%Y")
    # 5 odd-month dates and 5 even: the best format reads half, which is still a load.
    result = load_customers(write_file(tmp_path, write_text(frame, date_fmt=writer)))
    assert len(result.info.unreadable["Dt_Customer"]) == 5


# -------------------------------------------------------------------------- real file


@pytest.fixture(scope="module")
def real() -> LoadResult:
    if not REAL_FILE.is_file():
        pytest.skip("real data file not present")
    return load_customers(REAL_FILE)


@needs_real
def test_real_file(real: LoadResult) -> None:
    f, info = real.frame, real.info
    assert f.shape == (2240, 29)
    assert list(f.columns) == CANONICAL_COLUMNS
    assert int(f["Income"].isna().sum()) == 24
    assert f["Dt_Customer"].min() == pd.Timestamp("2012-07-30")
    assert f["Dt_Customer"].max() == pd.Timestamp("2014-06-29")
    assert (info.delimiter, info.date_order, info.date_format) == ("\t", "day-first", "%d-%m-%Y")
    assert info.unreadable == {} and info.rows == 2240
    assert f["ID"].dtype == np.int64
    assert {"Alone", "Absurd", "YOLO"} <= set(f["Marital_Status"])
    assert info.source == "marketing_campaign.csv"


@needs_real
def test_real_file_is_fast() -> None:
    best = min(_timed(lambda: load_customers(REAL_FILE)) for _ in range(3))
    assert best < 0.5  # typically ~10 ms; generous for slow CI machines


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@needs_real
def test_real_file_resaved_by_a_spreadsheet(tmp_path: Path, real: LoadResult) -> None:
    """Comma-separated, BOM, CRLF, ISO dates with a time, "$84,835.00 " incomes, other headers."""
    text = write_text(
        real.frame, sep=",", date_fmt="%Y-%m-%d 00:00:00", income=lambda v: f"${v:,.2f} ",
        headers={"Year_Birth": "YearBirth", "MntGoldProds": "MntGoldProducts"}, newline="\r\n",
    )
    path = write_file(tmp_path, text, "resaved.csv", encoding="utf-8-sig")
    result = load_customers(path)
    pd.testing.assert_frame_equal(result.frame, real.frame)
    info = result.info
    assert (info.delimiter, info.bom, info.line_endings, info.date_order) == (",", True, "CRLF", "year-first")
    assert info.currency_income is True


@needs_real
def test_real_file_semicolon_month_first(tmp_path: Path, real: LoadResult) -> None:
    text = write_text(real.frame, sep=";", date_fmt=_m_d_yyyy)
    result = load_customers(write_file(tmp_path, text))
    pd.testing.assert_frame_equal(result.frame, real.frame)
    assert result.info.date_order == "month-first"


@needs_real
def test_real_file_from_bytes_and_file_object(real: LoadResult) -> None:
    data = REAL_FILE.read_bytes()
    pd.testing.assert_frame_equal(load_customers(data, name="marketing_campaign.csv").frame, real.frame)
    with REAL_FILE.open("rb") as fh:
        pd.testing.assert_frame_equal(load_customers(fh).frame, real.frame)


# ----------------------------------------------------------------- whitespace-separated, yyyymmdd (issue 18)


def test_whitespace_separated_file_with_yyyymmdd_dates():
    frame = canonical_frame()
    frame["Dt_Customer"] = [d.strftime("%Y%m%d") for d in DATES]
    frame["Education"] = frame["Education"].str.replace(" ", "_")
    text = frame.to_string(index=False)  # columns aligned with spaces, as fixed-width exports are
    result = load_customers(text.encode(), name="aligned.txt")
    assert result.info.delimiter == r"\s+"
    assert result.info.date_format == "%Y%m%d"
    assert [pd.Timestamp(d).date() for d in result.frame["Dt_Customer"]] == DATES
    assert result.frame["ID"].tolist() == frame["ID"].tolist()
