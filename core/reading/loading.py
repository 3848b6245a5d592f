"""Read a customer file as users actually have it.

The canonical file is tab-separated with dd-mm-yyyy dates, but copies come
comma- or semicolon-separated, re-saved by spreadsheets (byte-order mark, CRLF,
other date forms, currency-formatted incomes) and with other header spellings.
``load_customers`` accepts every form that is unambiguous, reports what it
detected in a ``LoadInfo``, and turns every problem with the file into a
one-line ``DataFileError`` that names the file, the column or line and what was
expected.

Cells that are present but cannot be parsed do not stop the load: they become
NaN/NaT and are listed in ``LoadInfo.unreadable`` so that the cleaning step can
drop and report those rows. Only a column that is mostly unreadable is an error,
because then the file (not a few rows) is wrong.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.errors import ParserError

from core.reading.schema import (
    CANONICAL_COLUMNS,
    OPTIONAL_COLUMNS,
)

from core.reading.parsing import (
    DATE_COLUMN, LINE_SPLIT_RE, NA_TOKENS, SAMPLE_CHARS, TEXT_COLUMNS, UTF8_BOM, DataFileError, check_first_row,
    choose_delimiter, date_column, decode, file_line, map_headers, numeric_column, parser_message, short, text_column,
)

# DataFileError and file_line live in core.reading.parsing; they are named here too, where most callers look for them.
__all__ = ["DataFileError", "LoadInfo", "LoadResult", "load_customers", "read_source", "file_line"]

@dataclass
class LoadInfo:
    """What ``load_customers`` detected about a file.

    Attributes
    ----------
    source : str
        Display name of the file (never a full path from an upload).
    delimiter : str
        ``"\\t"``, ``","`` or ``";"``.
    encoding : str
        ``"utf-8"``, ``"utf-8-sig"``, ``"utf-16"``, ``"cp1252"`` or ``"latin-1"``.
    bom : bool
        True when the file starts with a byte-order mark.
    line_endings : str
        ``"LF"``, ``"CRLF"`` (or ``"CR"`` for old Mac files).
    date_order : str
        ``"day-first"``, ``"month-first"`` or ``"year-first"``.
    date_format : str
        The strptime format of the date part, e.g. ``"%d-%m-%Y"`` ("" when no dates).
    date_note : str
        The choice in plain words, including whether it was ambiguous.
    column_mapping : dict of str to str
        Header as written in the file -> canonical name (recognised headers only).
    extra_columns : list of str
        Headers not recognised, kept in the frame under these names.
    missing_optional : list of str
        Optional canonical columns the file lacks.
    currency_income : bool
        True when incomes were written as currency or with digit grouping.
    unreadable : dict of str to list of int
        Canonical column -> frame positions of non-empty cells that could not be parsed.
    rows : int
        Number of customer rows.
    """

    source: str
    delimiter: str = "\t"
    encoding: str = "utf-8"
    bom: bool = False
    line_endings: str = "LF"
    date_order: str = "day-first"
    date_format: str = "%d-%m-%Y"
    date_note: str = ""
    column_mapping: dict[str, str] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)
    currency_income: bool = False
    unreadable: dict[str, list[int]] = field(default_factory=dict)
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the information as plain JSON-serialisable values.

        Returns
        -------
        dict
            Field name -> value; positions are plain ``int``.
        """
        out = asdict(self)
        out["unreadable"] = {k: [int(p) for p in v] for k, v in self.unreadable.items()}
        out["rows"] = int(self.rows)
        return out


@dataclass
class LoadResult:
    """A loaded customer frame and what was detected while loading it.

    Attributes
    ----------
    frame : pandas.DataFrame
        Canonical columns present (schema order), then extra columns.
    info : LoadInfo
        Detection results and unreadable cells.
    """

    frame: pd.DataFrame
    info: LoadInfo


def _display_name(name: str) -> str:
    """Strip any folder part (browsers may send ``C:\\fakepath\\x.csv``)."""
    base = re.split(r"[\\/]", str(name).strip())[-1]
    return base or "upload"


def read_source(source: Any, name: str | None = None) -> tuple[bytes, str]:
    """Read a customer file's raw bytes, with the name to show for it.

    Parameters
    ----------
    source : str, path-like, bytes or binary file-like
    name : str, optional
        Display name; any folder part is dropped (never used as a path).

    Returns
    -------
    data : bytes
    shown : str

    Raises
    ------
    DataFileError
        Missing file, a folder, or unreadable.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        shown = _display_name(name) if name else path.name or str(path)
        try:
            return path.read_bytes(), shown
        except FileNotFoundError:
            raise DataFileError(f"no such file: {source}") from None
        except IsADirectoryError:
            raise DataFileError(f"not a file but a folder: {source}") from None
        except PermissionError:
            raise DataFileError(f"{shown} cannot be read: permission denied") from None
        except OSError as err:
            raise DataFileError(f"{shown} cannot be read: {err.strerror or err}") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), _display_name(name) if name else "upload"
    if hasattr(source, "read"):
        own = getattr(source, "name", None)
        shown = _display_name(name) if name else (
            _display_name(own) if isinstance(own, str) and own else "upload"
        )
        try:
            data = source.read()
        except OSError as err:
            raise DataFileError(f"{shown} cannot be read: {err}") from None
        if isinstance(data, str):
            # A text-mode handle: its text is already decoded; re-encode losslessly.
            data = data.encode("utf-8")
        return bytes(data), shown
    raise TypeError(
        f"load_customers expects a path, bytes or a binary file object, not {type(source).__name__}"
    )



def load_customers(source: Any, *, name: str | None = None) -> LoadResult:
    """Read a customer file in any of the shapes users have it.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file-like
        A path to the file, the bytes of an upload or an open binary file.
    name : str, optional
        Display name used in ``LoadInfo.source`` and messages; defaults to the
        path's file name (or ``"upload"`` for bytes without a name). Any folder
        part is removed.

    Returns
    -------
    LoadResult
        The frame (canonical columns present in schema order, then extra columns;
        RangeIndex in file order) and the ``LoadInfo``.

    Raises
    ------
    DataFileError
        When the file cannot be used; the message is one line.
    """
    data, shown = read_source(source, name)
    # Old DOS tools end text files with Ctrl-Z; it is not part of the last row.
    data = data.rstrip(b"\x1a")
    try:
        return _load(data, shown)
    except DataFileError:
        raise
    except (ValueError, TypeError, UnicodeError, OverflowError, IndexError, KeyError) as err:
        # Never let a library exception reach the user for a bad file.
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataFileError(f"{shown}: could not be read ({short(first, 120)})") from err


def _load(data: bytes, name: str) -> LoadResult:
    """Do the work of ``load_customers`` on the raw bytes."""
    if not data.strip() or not data.replace(UTF8_BOM, b"").strip():
        raise DataFileError(f"{name} is empty: expected a header line and customer rows")
    text, encoding, bom = decode(data, name)
    if not text.strip():
        raise DataFileError(f"{name} is empty: expected a header line and customer rows")

    sample = text[:SAMPLE_CHARS]
    lf = sample.find("\n")
    if lf > 0 and sample[lf - 1] == "\r":
        line_endings = "CRLF"
    elif lf < 0 and "\r" in sample:
        line_endings = "CR"
    else:
        line_endings = "LF"
    lines = LINE_SPLIT_RE.split(sample)
    header_index = next(i for i, line in enumerate(lines) if line.strip(" \t\ufeff"))
    header_line = lines[header_index]
    del text, sample

    delimiter, headers = choose_delimiter(header_line)
    names, mapping, extras = map_headers(headers, name)
    check_first_row(lines, header_index, delimiter, len(names), name)
    del lines
    dtypes = {c: str for c in (*TEXT_COLUMNS, DATE_COLUMN) if c in names}

    read_kwargs: dict[str, Any] = dict(
        sep=delimiter, header=0, names=names, index_col=False, dtype=dtypes,
        na_values=list(NA_TOKENS), keep_default_na=False, engine="c", quotechar='"',
        encoding=encoding, low_memory=False, skip_blank_lines=True,
    )
    if header_index:
        read_kwargs["skiprows"] = header_index
    try:
        raw = pd.read_csv(io.BytesIO(data), **read_kwargs)
    except ParserError as err:
        raise DataFileError(parser_message(err, name)) from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{name} is empty: expected a header line and customer rows") from None
    if len(raw) == 0:
        raise DataFileError(f"{name} has a header but no customer rows")

    columns: dict[str, Any] = {}
    unreadable: dict[str, list[int]] = {}
    currency_income = False
    date_order, date_format, date_note = "day-first", "", ""
    present = set(mapping.values())
    for column in CANONICAL_COLUMNS:
        if column not in present:
            continue
        series = raw[column]
        if column in TEXT_COLUMNS:
            columns[column] = text_column(series)
            continue
        if column == DATE_COLUMN:
            values, bad, date_order, date_format, date_note = date_column(series, name)
        else:
            values, bad, currency = numeric_column(series, column, name)
            if column == "Income":
                currency_income = currency
            if column == "ID" and not bad.any():
                values = values.astype("int64")
        columns[column] = values
        if bad.any():
            unreadable[column] = [int(p) for p in np.flatnonzero(bad)]
    for extra in extras:
        columns[extra] = raw[extra]

    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(raw)))
    info = LoadInfo(
        source=name,
        delimiter=delimiter,
        encoding=encoding,
        bom=bom,
        line_endings=line_endings,
        date_order=date_order,
        date_format=date_format,
        date_note=date_note,
        column_mapping=dict(mapping),
        extra_columns=list(extras),
        missing_optional=[
            c for c in CANONICAL_COLUMNS if c in OPTIONAL_COLUMNS and c not in present
        ],
        currency_income=currency_income,
        unreadable=unreadable,
        rows=len(frame),
    )
    return LoadResult(frame=frame, info=info)
