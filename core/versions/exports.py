"""Spreadsheet-safe CSV text (no formula injection), with customer IDs written as whole numbers."""
from __future__ import annotations

import pandas as pd

__all__ = ["escape_formula", "integer_ids", "safe_frame", "to_safe_csv", "ID_COLUMNS"]

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Columns holding customer IDs: whole numbers in every export.
ID_COLUMNS = ("ID",)


def integer_ids(frame: pd.DataFrame, columns=ID_COLUMNS) -> pd.DataFrame:
    """Return ``frame`` with its ID column(s) as whole numbers (pandas ``Int64``; an empty cell stays empty).

    The loader reads IDs as floats when any ID in the file was unreadable (the cleaning drops
    those rows, but the column keeps its float type), which would export ``5524.0``.

    Parameters
    ----------
    frame : pandas.DataFrame
    columns : sequence of str, default ("ID",)

    Returns
    -------
    pandas.DataFrame
        A copy when a column was converted, else ``frame`` itself.

    Raises
    ------
    ValueError
        An ID that is not a whole number; the message names its row (1-based, as in the export).
    """
    out = frame
    for column in columns:
        if column not in frame.columns or pd.api.types.is_integer_dtype(frame[column]):
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = (values.isna() & frame[column].notna()) | (values.notna() & (values % 1 != 0))
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(f"{column} in row {row + 1:,} of the export is not a whole number "
                             f"({str(frame[column].iloc[row])[:20]!r})")
        if out is frame:
            out = frame.copy()
        out[column] = values.round().astype("Int64")
    return out


def escape_formula(value):
    """Prefix a text cell that a spreadsheet would run as a formula with a single quote.

    Parameters
    ----------
    value : object
        Numbers pass unchanged (a negative number is data, not a formula).

    Returns
    -------
    object
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with every text cell and header escaped.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame
        ID columns are whole numbers (:func:`integer_ids`).
    """
    out = integer_ids(frame)
    out = out.copy() if out is frame else out
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].map(escape_formula)
    out.columns = [escape_formula(str(c)) for c in out.columns]
    return out


def to_safe_csv(frame: pd.DataFrame, *, index: bool = False) -> str:
    """CSV text of ``frame`` that is safe to open in a spreadsheet.

    Parameters
    ----------
    frame : pandas.DataFrame
    index : bool, default False

    Returns
    -------
    str
    """
    return safe_frame(frame).to_csv(index=index, lineterminator="\n")
