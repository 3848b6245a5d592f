"""Categorical columns as integer codes, the same way at fit and for new customers.

A version stores each column's category labels (``encode_categories``' second result, a list of
strings: JSON-able); new customers are encoded against those labels, so a category first seen
after the fit gets -1 (treated as missing by k-prototypes) instead of shifting other codes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["encode_categories", "suggest_categorical", "MAX_DISTINCT"]

MAX_DISTINCT = 12
"""Most distinct values a text column may have to be suggested as categorical."""


def _as_text(values: pd.Series) -> pd.Series:
    """Trimmed text with missing (NaN, None, empty) as NA; labels compare as text."""
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def encode_categories(frame: pd.DataFrame, columns, categories=None):
    """Integer codes of categorical columns.

    Parameters
    ----------
    frame : DataFrame
    columns : list of str
        Columns to encode, in order.
    categories : list of list of str, optional
        Labels per column from an earlier call (a stored version). Without it the labels are the
        column's distinct values, sorted as text, so the same data always gives the same codes.

    Returns
    -------
    codes : ndarray of int64, shape (n, len(columns))
        Position of each value among its column's labels; -1 for missing or (with ``categories``)
        a value not among them.
    categories : list of list of str
        Labels per column.

    Raises
    ------
    KeyError
        A column is missing from ``frame``; the message names it.
    ValueError
        ``categories`` does not have one list per column.
    """
    columns = list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"missing categorical column(s): {', '.join(map(str, missing))}")
    if categories is not None and len(categories) != len(columns):
        raise ValueError(f"expected category labels for {len(columns)} column(s), got {len(categories)}")
    codes = np.full((len(frame), len(columns)), -1, dtype=np.int64)
    labels_out = []
    for j, column in enumerate(columns):
        text = _as_text(frame[column])
        if categories is None:
            labels = sorted(text.dropna().unique().tolist())
        else:
            labels = [str(label) for label in categories[j]]
        position = pd.Index(labels).get_indexer(text.fillna("").to_numpy(dtype=object))
        # get_indexer gives -1 for anything not among the labels, missing included ("" is never a label).
        codes[:, j] = position
        labels_out.append(labels)
    return codes, labels_out


def suggest_categorical(frame: pd.DataFrame, max_distinct: int = MAX_DISTINCT) -> list[str]:
    """Text columns that look categorical: 2 to ``max_distinct`` distinct values, not numbers or dates.

    Parameters
    ----------
    frame : DataFrame
        Customers (or the head of a file).
    max_distinct : int, default 12
        Most distinct values (missing not counted).

    Returns
    -------
    list of str
        Column names, in the frame's order.
    """
    out = []
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)
                or isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(values)):
            continue
        text = _as_text(values).dropna()
        if text.empty:
            continue
        distinct = text.nunique()
        if not 2 <= distinct <= max_distinct:
            continue
        # Numbers stored as text (codes such as "1", "2") or dates are not what the mapping asks for here.
        if pd.to_numeric(text, errors="coerce").notna().all():
            continue
        if _looks_like_dates(text):
            continue
        out.append(str(column))
    return out


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text.head(50)
    if not sample.str.contains(r"\d", regex=True).all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().all())
