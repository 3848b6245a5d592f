"""Spreadsheet-safe CSV text (no formula injection)."""
from __future__ import annotations

import pandas as pd

__all__ = ["escape_formula", "safe_frame", "to_safe_csv"]

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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
    """
    out = frame.copy()
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
