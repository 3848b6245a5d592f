"""Parsing in the open: cells, headers, dates and delimiters of a customer file, and the one-line error.

Used by the in-memory loader (:mod:`core.reading.loading`), the chunked reader (:mod:`core.reading.sources`), the
readers of other inputs (:mod:`core.reading.mapping`, :mod:`core.reading.transactions`) and the Spark rules
(:mod:`core.reading.spark_cleaning`), so a cell means the same thing whichever reads it.
"""
from __future__ import annotations

import csv
import io
import re
from types import MappingProxyType

import numpy as np
import pandas as pd

from core.reading.schema import (
    CAMPAIGN_COLUMNS,
    REQUIRED_COLUMNS,
    canonical_name,
)

__all__ = [
    "DATE_COLUMN", "DataFileError", "file_line", "EU_EVIDENCE_RE", "LINE_SPLIT_RE", "NA_TOKENS", "SAMPLE_CHARS",
    "TEXT_COLUMNS", "US_EVIDENCE_RE", "UTF8_BOM", "check_first_row", "choose_delimiter", "date_column", "decode",
    "map_headers", "number_values", "numeric_column", "parser_message", "short", "split_header", "text_column",
]

# Delimiters tried on the header line, in order of preference when tied.
_DELIMITERS = ("\t", ",", ";")

# Cell texts that mean "no value". Deliberately short: "None" is left out because
# it could be a real category value, and pandas' long default list includes "n/a"
# spellings we do want but also "-nan" style tokens nobody writes by hand.
NA_TOKENS = ("", "NA", "N/A", "n/a", "na", "NaN", "nan", "NULL", "null", "#N/A", "#NA")

TEXT_COLUMNS = ("Education", "Marital_Status")
DATE_COLUMN = "Dt_Customer"
# 0/1 flags that spreadsheets sometimes re-save as TRUE/FALSE or yes/no.
_FLAG_COLUMNS = tuple(CAMPAIGN_COLUMNS) + ("Complain",)
_FLAG_WORDS = (("true", 1.0), ("false", 0.0), ("yes", 1.0), ("no", 0.0), ("y", 1.0), ("n", 0.0))

# What a column should hold, for the "mostly unreadable" message.
_EXPECTED = MappingProxyType({
    "ID": "a whole number such as 5524",
    "Income": "a number such as 58138 or $58,138.00",
    "Year_Birth": "a year such as 1957",
    "Recency": "a number of days such as 58",
})
_EXPECTED_FLAG = "0 or 1"
_EXPECTED_DEFAULT = "a number such as 3"

_ACCEPTED_DATE_FORMS = (
    "dd-mm-yyyy, d/m/yyyy, m/d/yyyy, dd.mm.yyyy, yyyy-mm-dd, yyyy/mm/dd, d-Mon-yy "
    "(two-digit years and a time such as 00:00:00 are accepted too)"
)

# Magic numbers of files people upload by mistake.
_ZIP_MAGIC = b"PK"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls / .doc
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF8_BOM = b"\xef\xbb\xbf"

# How much of the file is inspected for the header and the binary heuristic.
SAMPLE_CHARS = 65536
# Share of control characters above which decoded "text" is really binary data:
# random bytes give ~12 %, real text files essentially 0 %.
_CONTROL_SHARE = 0.01
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
LINE_SPLIT_RE = re.compile(r"\r\n|\r|\n")

# A time part after a date, as spreadsheets add when re-saving ("2012-09-04 00:00:00").
_TIME_PART_RE = r"^(.*?\S)(?:[ T]+)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?$"

# Numbers as currency: symbols/codes stripped anywhere, then grouped digits.
_CURRENCY_RE = r"(?i)[$€£¥]|\b(?:usd|eur|gbp)\b"
_US_NUMBER_RE = r"^[+-]?(?:\d{1,3}(?:[, ']\d{3})+|\d+)(?:\.\d+)?$"
_EU_NUMBER_RE = r"^[+-]?(?:\d{1,3}(?:[. ']\d{3})+|\d+)(?:,\d+)?$"
# Values that can only be read one way: evidence for the column's convention.
EU_EVIDENCE_RE = r"^[+-]?(?:\d{1,3}(?:\.\d{3})+,\d*|\d+,\d{1,2}|\d{1,3}(?:\.\d{3}){2,})$"
US_EVIDENCE_RE = r"^[+-]?(?:\d{1,3}(?:,\d{3})+\.\d*|\d{1,3}(?:,\d{3}){2,})$"




def file_line(position: int) -> int:
    """Return the 1-based file line of a frame position (the header is line 1).

    Parameters
    ----------
    position : int
        0-based position of a row in the loaded frame.

    Returns
    -------
    int
        The line number to quote in messages. Assumes one line per row (no
        blank lines or line breaks inside quoted fields before that row).
    """
    return int(position) + 2


# --------------------------------------------------------------------------- input


class DataFileError(ValueError):
    """A file that cannot be used.

    ``str(err)`` is one line naming the file and the column or line at fault and
    what was expected, fit to show to the user as is.
    """




def _not_text(name: str, hint: str = "") -> DataFileError:
    msg = (f"{name} is not a text file (binary content); "
           "expected a tab-, comma- or semicolon-separated text file")
    return DataFileError(msg + hint)


def decode(data: bytes, name: str) -> tuple[str, str, bool]:
    """Return (text, encoding, bom) or raise for binary content.

    Parameters
    ----------
    data : bytes
        The whole file.
    name : str
        Display name for messages.

    Returns
    -------
    tuple
        The decoded text (BOM removed), the encoding name to give pandas and
        whether a byte-order mark was present.
    """
    if data.startswith(_ZIP_MAGIC):
        raise _not_text(name, " (it looks like an Excel .xlsx workbook or a zip archive: "
                              "save it as CSV first)")
    if data.startswith(_OLE_MAGIC):
        raise _not_text(name, " (it looks like an Excel .xls workbook: save it as CSV first)")
    if data.startswith(_UTF16_BOMS):
        # Excel's "Unicode text" export: UTF-16 with a BOM (and so with NUL bytes).
        try:
            text, encoding, bom = data.decode("utf-16"), "utf-16", True
        except UnicodeDecodeError:
            raise _not_text(name) from None
        text = text.lstrip("\ufeff")
    else:
        if b"\x00" in data:
            raise _not_text(name)
        bom = data.startswith(UTF8_BOM)
        try:
            text = data.decode("utf-8-sig" if bom else "utf-8")
            encoding = "utf-8-sig" if bom else "utf-8"
        except UnicodeDecodeError:
            # Not UTF-8: spreadsheets on Windows write cp1252; latin-1 decodes anything.
            try:
                text, encoding = data.decode("cp1252"), "cp1252"
            except UnicodeDecodeError:
                text, encoding = data.decode("latin-1"), "latin-1"
    sample = text[:SAMPLE_CHARS]
    if len(_CONTROL_RE.findall(sample)) > max(2, _CONTROL_SHARE * len(sample)):
        raise _not_text(name)
    return text, encoding, bom


# -------------------------------------------------------------------------- header


def split_header(line: str, delimiter: str) -> list[str]:
    """Split the header line like the CSV parser will (quotes respected)."""
    try:
        return next(csv.reader([line], delimiter=delimiter, quotechar='"'))
    except (csv.Error, StopIteration):
        return line.split(delimiter)


def choose_delimiter(line: str) -> tuple[str, list[str]]:
    """Return the delimiter giving the most recognised column names, and the headers."""
    best: tuple[tuple[int, int, int], str, list[str]] | None = None
    for rank, delim in enumerate(_DELIMITERS):
        headers = [h.replace("\ufeff", "") for h in split_header(line, delim)]
        known = sum(canonical_name(h) is not None for h in headers)
        # Ties: more fields, then the preference order of _DELIMITERS.
        score = (known, len(headers), -rank)
        if best is None or score > best[0]:
            best = (score, delim, headers)
    assert best is not None
    words = line.replace("\ufeff", "").split()
    if len(best[2]) == 1 and len(words) > 1:
        # Whitespace-separated (columns aligned with spaces): pandas reads it with sep=r"\s+".
        return r"\s+", words
    return best[1], best[2]


def short(text: str, limit: int = 40) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def map_headers(headers: list[str], name: str
                 ) -> tuple[list[str], dict[str, str], list[str]]:
    """Give every header a unique frame name and check the required columns.

    Returns
    -------
    tuple
        Frame names (one per header, in file order), the mapping of recognised
        headers to canonical names and the extra (unrecognised) names.
    """
    names: list[str] = []
    mapping: dict[str, str] = {}
    extras: list[str] = []
    first_seen: dict[str, tuple[int, str]] = {}
    used: set[str] = set()
    for i, header in enumerate(headers):
        canon = canonical_name(header)
        if canon is not None:
            if canon in first_seen:
                j, other = first_seen[canon]
                raise DataFileError(
                    f"{name}: columns {other!r} (column {j + 1}) and {header!r} (column {i + 1}) "
                    f"both mean {canon}; keep only one of them"
                )
            first_seen[canon] = (i, header)
            mapping[header] = canon
            names.append(canon)
            used.add(canon)
            continue
        # Unrecognised: keep under its own name, made unique the way pandas would.
        base = header.strip() or f"Unnamed: {i}"
        extra, k = base, 0
        while extra in used:
            k += 1
            extra = f"{base}.{k}"
        used.add(extra)
        names.append(extra)
        extras.append(extra)
    missing = [c for c in REQUIRED_COLUMNS if c not in first_seen]
    if missing:
        shown = ", ".join(short(h) or "(empty)" for h in headers[:10])
        if len(headers) > 10:
            shown += f", ... ({len(headers)} in all)"
        hint = ""
        if len(headers) == 1:
            hint = ("; the header has a single column: is the file separated by something "
                    "other than tab, comma or semicolon?")
        raise DataFileError(
            f"{name}: missing required column(s) {', '.join(missing)}; found columns: {shown}"
            f"{hint}; see data/README.md for the expected format"
        )
    return names, mapping, extras


# ------------------------------------------------------------------------- numbers


def number_values(uniques: pd.Series, is_flag: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse distinct cell texts as numbers.

    Parameters
    ----------
    uniques : pandas.Series
        Distinct cell texts (object or str dtype, no missing values).
    is_flag : bool
        Also read true/false and yes/no as 1/0.

    Returns
    -------
    tuple of numpy.ndarray
        Values (float64, NaN where empty or unreadable), an "empty" mask and a
        "read as currency/grouped number" mask, all aligned with ``uniques``.
    """
    text = uniques.astype(object).map(str).str.strip()
    empty = text.isin(NA_TOKENS).to_numpy(dtype=bool)
    values = pd.to_numeric(text.where(~empty, np.nan), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan, copy=True
    )
    currency = np.zeros(len(text), dtype=bool)
    plain_ok = ~np.isnan(values)
    todo = ~empty & ~plain_ok

    def cleaned(mask: np.ndarray) -> pd.Series:
        rest = text[mask].str.replace(_CURRENCY_RE, "", regex=True).str.strip()
        return rest.str.replace(r"[\s\u00a0\u202f]+", " ", regex=True)

    if todo.any():
        rest = cleaned(todo)
        # Decide the column's convention from values that can be read one way
        # only, so "84.835" is 84835 in a column that also holds "1.234,50".
        is_eu = bool(rest.str.match(EU_EVIDENCE_RE).any()) and not bool(
            rest.str.match(US_EVIDENCE_RE).any()
        )
        if is_eu:
            # The plain first pass read "84.835" as 84.835: re-read every value.
            todo = ~empty
            rest = cleaned(todo)
            ok = rest.str.match(_EU_NUMBER_RE)
            plain = rest.str.replace(r"[. ']", "", regex=True).str.replace(",", ".", regex=False)
        else:
            ok = rest.str.match(_US_NUMBER_RE)
            plain = rest.str.replace(r"[, ']", "", regex=True)
        parsed = pd.to_numeric(plain.where(ok, np.nan), errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
        idx = np.flatnonzero(todo)
        values[idx] = parsed
        currency[idx] = ~np.isnan(parsed) & ~plain_ok[idx]
        if is_flag:
            lower = text[todo].str.lower().to_numpy(dtype=object)
            for word, number in _FLAG_WORDS:
                hit = lower == word
                values[idx[hit]] = number
    # inf/-inf parse as floats but are no usable value.
    values[~np.isfinite(values)] = np.nan
    return values, empty, currency


def numeric_column(raw: pd.Series, column: str, name: str, check: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Convert one numeric column; raise when it is mostly unreadable.

    ``check=False`` skips that test: the chunked reader (core.reading.sources) makes it once over
    the whole file instead of once per chunk.

    Returns
    -------
    tuple
        float64 values, a mask of unreadable cells and whether currency-style
        numbers were met.
    """
    n_rows = len(raw)
    if raw.dtype.kind in "iufb":
        # Fast path: the C parser already read every cell as a number.
        # copy=True: under copy-on-write the array may be a read-only view.
        values = raw.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        nonempty = ~np.isnan(values)
        bad = np.isinf(values)
        values[bad] = np.nan
        currency = False
    else:
        codes, uniq = pd.factorize(raw, use_na_sentinel=True)
        uniq_series = pd.Series(np.asarray(uniq, dtype=object), dtype=object)
        u_values, u_empty, u_currency = number_values(uniq_series, column in _FLAG_COLUMNS)
        present = codes >= 0
        safe = np.where(present, codes, 0)
        values = np.where(present, u_values[safe] if len(uniq) else np.nan, np.nan)
        nonempty = present & ~(u_empty[safe] if len(uniq) else np.zeros(n_rows, bool))
        bad = nonempty & np.isnan(values)
        currency = bool(u_currency.any()) if len(uniq) else False
    if column == "ID":
        # Every ID must be a whole number; an empty ID is as unusable as a bad one.
        whole = np.isfinite(values) & (np.floor(values) == values)
        bad = ~whole
        values = np.where(whole, values, np.nan)
        nonempty = np.ones(n_rows, dtype=bool)
    n_bad = int(bad.sum())
    n_nonempty = int(nonempty.sum())
    if check and n_bad and n_bad * 2 > n_nonempty:
        first = int(np.flatnonzero(bad)[0])
        cell = raw.iloc[first]
        cell = "" if pd.isna(cell) else str(cell)
        what = "whole numbers" if column == "ID" else "numbers"
        expected = _EXPECTED.get(column) or (
            _EXPECTED_FLAG if column in _FLAG_COLUMNS else _EXPECTED_DEFAULT
        )
        raise DataFileError(
            f"{name}: column {column}: {n_bad} of {n_nonempty} values are not {what} "
            f"(line {file_line(first)}: {short(cell.strip())!r}); expected {expected}"
        )
    return values, bad, currency


# --------------------------------------------------------------------------- dates


def _date_formats() -> tuple[tuple[str, str], ...]:
    """Return candidate (strptime format, order) pairs in order of preference."""
    seps = ("-", "/", ".")
    out: list[tuple[str, str]] = [(f"%Y{s}%m{s}%d", "year-first") for s in seps]
    for year in ("%Y", "%y"):
        for s in seps:
            # Day-first before month-first: when both fit, the canonical file's order wins.
            out.append((f"%d{s}%m{s}{year}", "day-first"))
            out.append((f"%m{s}%d{s}{year}", "month-first"))
    for s in ("-", " ", "/"):
        for month in ("%b", "%B"):
            for year in ("%y", "%Y"):
                out.append((f"%d{s}{month}{s}{year}", "day-first"))
    for month in ("%b", "%B"):
        out.append((f"{month} %d, %Y", "month-first"))
        out.append((f"{month} %d %Y", "month-first"))
    out.append(("%Y%m%d", "year-first"))  # 19970101, as shop systems export; tried last
    return tuple(out)


_DATE_FORMATS = _date_formats()


def _pattern_words(fmt: str) -> str:
    """``"%d-%m-%Y"`` -> ``"dd-mm-yyyy"``."""
    for code, word in (("%d", "dd"), ("%m", "mm"), ("%Y", "yyyy"), ("%y", "yy"),
                       ("%b", "Mon"), ("%B", "Month")):
        fmt = fmt.replace(code, word)
    return fmt


def _swap_day_month(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def _parse_dates(uniq: pd.Series, fmt: str) -> np.ndarray:
    parsed = pd.to_datetime(uniq, format=fmt, errors="coerce")
    return parsed.to_numpy(dtype="datetime64[ns]")


def date_column(raw: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray, str, str, str]:
    """Convert the date column, choosing one format from all its values.

    Returns
    -------
    tuple
        datetime64[ns] values, unreadable mask, order, format and note.
    """
    n_rows = len(raw)
    codes, uniq = pd.factorize(raw, use_na_sentinel=True)
    # Work on distinct values: a few hundred dates even in a million rows.
    text = pd.Series(np.asarray(uniq, dtype=object), dtype=object).map(str).str.strip()
    has_time = bool(text.str.contains(":", regex=False).any())
    if has_time:
        text = text.str.replace(_TIME_PART_RE, r"\1", regex=True)
    u_empty = (text == "").to_numpy(dtype=bool)
    present = codes >= 0
    safe = np.where(present, codes, 0)
    nonempty_rows = present & (~u_empty[safe] if len(text) else False)
    n_nonempty = int(nonempty_rows.sum())
    nat = np.full(n_rows, np.datetime64("NaT"), dtype="datetime64[ns]")
    if n_nonempty == 0:
        return nat, np.zeros(n_rows, bool), "day-first", "", "no dates: Dt_Customer is empty in every row"

    cand_text = text[~u_empty]
    # Only formats whose separators occur in the values are worth trying.
    sample = cand_text.iloc[:200].tolist()
    seen_chars = set("".join(re.sub(r"[0-9A-Za-z]", "", v) for v in sample))
    has_letters = any(re.search(r"[A-Za-z]", v) for v in sample)
    # Month-name formats only when some value has letters; numeric ones always,
    # so one stray word ("unknown") cannot hide the column's real format.
    candidates = [
        (fmt, order) for fmt, order in _DATE_FORMATS
        if set(re.sub(r"%[a-zA-Z]", "", fmt)) <= seen_chars
        and (has_letters or not ("%b" in fmt or "%B" in fmt))
    ]
    # Count parsed values over rows, not distinct texts, so the best partial
    # format is the one that reads most customers.
    weights = np.bincount(codes[present], minlength=len(text))[~u_empty]
    chosen: tuple[str, str, np.ndarray] | None = None
    best: tuple[int, str, str, np.ndarray] | None = None
    for fmt, order in candidates:
        parsed = _parse_dates(cand_text, fmt)
        ok = ~np.isnat(parsed)
        if ok.all():
            chosen = (fmt, order, parsed)
            break
        score = int(weights[ok].sum())
        if best is None or score > best[0]:
            best = (score, fmt, order, parsed)

    note_tail = "; the time of day was ignored" if has_time else ""
    if chosen is not None:
        fmt, order, parsed = chosen
        words = _pattern_words(fmt)
        if "%b" in fmt or "%B" in fmt:
            note = f"{words} (month written as a name)"
        elif order == "year-first":
            note = f"{words} (year-first)"
        elif order == "day-first":
            swapped = _parse_dates(cand_text, _swap_day_month(fmt))
            if (~np.isnat(swapped)).all():
                note = ("ambiguous: every day is <= 12; assumed day-first as in the canonical "
                        f"file ({words})")
            else:
                note = f"{words} (day-first: 'days' above 12 appear in the first position)"
        else:
            note = f"{words} (month-first: 'days' above 12 appear in the second position)"
    else:
        score = best[0] if best is not None else 0
        n_bad = n_nonempty - score
        if best is None or n_bad * 2 > n_nonempty:
            bad_u = np.ones(len(cand_text), bool) if best is None else np.isnat(best[3])
            # The first row (in file order) holding a value the best format cannot read.
            bad_codes = np.flatnonzero(~u_empty)[bad_u]
            first = int(np.flatnonzero(np.isin(codes, bad_codes))[0])
            raw_cell = str(raw.iloc[first]).strip()
            raise DataFileError(
                f"{name}: column {DATE_COLUMN}: {n_bad} of {n_nonempty} values are not dates "
                f"in one accepted format (line {file_line(first)}: {short(raw_cell)!r}); "
                f"accepted formats: {_ACCEPTED_DATE_FORMS}"
            )
        _, fmt, order, parsed = best
        words = _pattern_words(fmt)
        note = (f"{words} ({order}); {n_bad} value(s) in another form could not be read")
    full = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    full[~u_empty] = parsed
    values = np.where(present, full[safe], np.datetime64("NaT"))
    values = values.astype("datetime64[ns]")
    bad = nonempty_rows & np.isnat(values)
    return values, bad, order, fmt, note + note_tail


# ---------------------------------------------------------------------------- text


def text_column(raw: pd.Series) -> pd.Series:
    """Stripped Python ``str`` objects, NaN when empty (object dtype)."""
    # read_csv gave this column dtype=str, so every cell is a str or missing.
    out = raw.astype("str").str.strip().astype(object)
    return out.where(out != "", np.nan)


# ---------------------------------------------------------------------------- main


def parser_message(err: Exception, name: str) -> str:
    """Turn a pandas parser error into a one-line user message."""
    text = str(err)
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        expected, line, seen = m.groups()
        return (f"{name}: line {line} has {seen} fields, expected {expected} "
                "(check the delimiter and quoting)")
    m = re.search(r"EOF inside string starting at row (\d+)", text)
    if m:
        # pandas counts rows from 0 with the header as row 0.
        return (f"{name}: a quoted field starting on line {int(m.group(1)) + 1} is never closed "
                "(check the quoting)")
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return f"{name}: could not be read as a delimited text file ({short(first, 120)})"


def check_first_row(lines: list[str], header_index: int, delimiter: str, n_fields: int,
                     name: str) -> None:
    """Raise when the first customer row has more fields than the header.

    pandas reports later rows like that, but for the first one it silently
    drops the surplus (or takes the first column as an index), so check it here.
    """
    if len(delimiter) != 1:  # whitespace-separated: pandas' own field count check applies
        return
    reader = csv.reader(io.StringIO("\n".join(lines[header_index:])), delimiter=delimiter,
                        quotechar='"')
    try:
        next(reader)
        for row in reader:
            if not row:
                continue
            if len(row) > n_fields:
                raise DataFileError(
                    f"{name}: line {header_index + reader.line_num} has {len(row)} fields, "
                    f"expected {n_fields} (check the delimiter and quoting)"
                )
            return
    except csv.Error:
        # Malformed quoting: leave it to the C parser, whose message names the line.
        return


