"""Sufficient statistics of a transaction log for the purchase and spend models, streamed.

Per customer (times measured in whole days, then divided by the time unit, never rounded):

``frequency`` x
    repeat purchases: distinct purchase *days* after the first (several purchases on one
    day are one purchase of their total value).
``recency`` t_x
    first to last purchase day in the calibration period.
``T``
    first purchase day to the end of the calibration period (its last day).
``repeat_value``
    total value of the repeat purchase days (the first day excluded, as in the literature).

The log is read in chunks (text through pandas, Parquet through pyarrow's record batches);
each chunk is reduced to distinct (customer, day) pairs with their value, so memory grows
with purchase days, never with rows or with the width of the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["UNIT_DAYS", "ValueInputError", "ValueData", "read_purchase_days", "value_statistics", "collapse",
           "LOG_NEEDED", "PurchaseDays"]

# A month is a twelfth of the mean Gregorian year; a week is 7 days.
UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12}
LOG_NEEDED = "value needs a transaction log (customer, date, amount)"
_EPOCH = np.datetime64("1970-01-01", "D")
_CHUNK_ROWS = 500_000  # small chunks: the raw rows of one chunk are the transient part of the peak


class ValueInputError(ValueError):
    """Input the value models cannot use: one line for people (exit 2, a note on the page)."""


@dataclass
class PurchaseDays:
    """Distinct (customer, day) purchases of a log and their value.

    Parameters
    ----------
    ids : numpy.ndarray
        Customer ID of each distinct customer (int64 or text), index = customer code.
    code : numpy.ndarray
        Customer code of each purchase day.
    day : numpy.ndarray
        Day (days since 1970-01-01, int32) of each purchase day.
    amount : numpy.ndarray
        Total value bought that day.
    rows_read, rows_used : int
    source : str
    """

    ids: np.ndarray
    code: np.ndarray
    day: np.ndarray
    amount: np.ndarray
    rows_read: int
    rows_used: int
    source: str

    @property
    def first_date(self) -> str:
        return str(_EPOCH + int(self.day.min()))

    @property
    def latest_date(self) -> str:
        return str(_EPOCH + int(self.day.max()))


@dataclass
class ValueData:
    """Per-customer statistics for the value models, and the holdout when a calibration end is given.

    Parameters
    ----------
    customers : pandas.DataFrame
        Index ``ID``; ``frequency``, ``recency``, ``T`` (time units), ``repeat_value``,
        ``monetary_value`` (mean value of a repeat purchase day; NaN when x = 0), ``total_value``
        (calibration period, first day included), ``first_day`` (int, days since 1970-01-01) and,
        with a calibration end, ``holdout_purchases`` and ``holdout_value``.
    time_unit : str
    unit_days : float
    first_date, latest_date, end_date : str
        ``yyyy-mm-dd``; ``end_date`` is the last day of the calibration period.
    calibration : bool
        True when a calibration end splits the log.
    holdout_days : float
    weekly_actual : numpy.ndarray
        Repeat purchase days per week since the first date of the log (whole log).
    rows_read, rows_used : int
    source : str
    notes : list of str
    """

    customers: pd.DataFrame
    time_unit: str
    unit_days: float
    first_date: str
    latest_date: str
    end_date: str
    calibration: bool
    holdout_days: float
    weekly_actual: np.ndarray
    rows_read: int
    rows_used: int
    source: str
    notes: list = field(default_factory=list)


# ------------------------------------------------------------------------------------ reading
def _parse_days(values: pd.Series, fmt: str | None) -> tuple[np.ndarray, str | None]:
    """Days since 1970-01-01 (float, NaN when unreadable), parsing each distinct value once."""
    from core.reading.transactions import choose_date_format

    if pd.api.types.is_datetime64_any_dtype(values):
        out = values.to_numpy(dtype="datetime64[D]")
        days = (out - _EPOCH).astype("float64")
        days[np.isnat(out)] = np.nan
        return days, fmt
    codes, uniq = pd.factorize(values, use_na_sentinel=True)
    texts = pd.Series(np.asarray(uniq), dtype=object)
    if values.dtype.kind in "iuf":  # 19970101 read as a number
        texts = texts.map(lambda v: str(int(v)) if v == v and float(v).is_integer() else str(v))
    texts = texts.astype(str).str.strip().str.replace(r"[ T]\d{1,2}:\d{2}.*$", "", regex=True)
    if fmt is None:
        fmt, share = choose_date_format(texts)
        if fmt is None or share < 0.5:
            return np.full(len(values), np.nan), None
    parsed = pd.to_datetime(texts, format=fmt, errors="coerce").to_numpy(dtype="datetime64[D]")
    days = (parsed - _EPOCH).astype("float64")
    days[np.isnat(parsed)] = np.nan
    if not len(days):
        return np.full(len(values), np.nan), fmt
    return np.where(codes >= 0, days[np.maximum(codes, 0)], np.nan), fmt


def _parse_amounts(values: pd.Series) -> np.ndarray:
    if values.dtype.kind in "iuf":
        out = values.to_numpy(dtype="float64", na_value=np.nan, copy=True)
    else:
        codes, uniq = pd.factorize(values, use_na_sentinel=True)
        text = pd.Series(np.asarray(uniq), dtype=object).astype(str).str.strip()
        # Currency signs and thousands separators ("$1,234.50"); a leading minus or brackets for returns.
        neg = text.str.startswith("(") & text.str.endswith(")")
        clean = text.str.replace(r"[^0-9.\-eE+]", "", regex=True)
        parsed = pd.to_numeric(clean, errors="coerce").to_numpy(dtype="float64")
        parsed = np.where(neg.to_numpy(), -np.abs(parsed), parsed)
        out = np.where(codes >= 0, parsed[np.maximum(codes, 0)] if len(parsed) else np.nan, np.nan)
    out = np.array(out, dtype="float64")
    out[~np.isfinite(out)] = np.nan
    return out


def _roles(source: Any, mapping, name: str):
    """(reader kind, sep, encoding, customer column, date column, amount column) of a log."""
    from core.reading.mapping import detect_kind, read_head, sniff, suggest, validate

    if _is_parquet(source):
        import pyarrow.parquet as pq

        table = next(pq.ParquetFile(source).iter_batches(batch_size=2000)).to_pandas()
        head = table.astype(str)
        sep = encoding = None
    else:
        sniffed = sniff(source, name)
        head = read_head(source, sniffed)
        sep, encoding = sniffed.sep, sniffed.encoding
    if mapping is not None and mapping.kind != "transactions":
        raise ValueInputError(f"{name}: {LOG_NEEDED}; the mapping says {mapping.kind!r}")
    if mapping is None:
        if detect_kind(list(head.columns), head) != "transactions":
            raise ValueInputError(f"{name}: {LOG_NEEDED}; this looks like a customer table (one row per customer)")
        mapping = suggest(head, "transactions")
    mapping.columns = {c: mapping.columns.get(c, "ignore") for c in dict.fromkeys([*head.columns, *mapping.columns])}
    validate(mapping, head, name)
    cols = [(mapping.role_of(role) or [None])[0] for role in ("customer_id", "date", "amount")]
    if None in cols:
        raise ValueInputError(f"{name}: {LOG_NEEDED}")
    return sep, encoding, cols


def _is_parquet(source: Any) -> bool:
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in (".parquet", ".pq")


def _chunks(source: Any, sep, encoding, cols: list[str], chunk_rows: int):
    if _is_parquet(source):
        import pyarrow.parquet as pq

        import pyarrow as pa

        pool = pa.default_memory_pool()
        for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk_rows, columns=cols):
            frame = batch.to_pandas()
            del batch
            yield frame
            pool.release_unused()  # Arrow's pool keeps freed batches otherwise: hundreds of MB at 10M customers
        return
    import io

    handle = source if isinstance(source, (str, os.PathLike)) else io.BytesIO(bytes(source))
    yield from pd.read_csv(handle, sep=sep, header=0, usecols=cols, chunksize=chunk_rows, encoding=encoding,
                           engine="c", skip_blank_lines=True, keep_default_na=False,
                           na_values=["", "NA", "N/A", "NaN", "nan", "NULL", "null"])


def read_purchase_days(source: Any, *, mapping=None, name: str | None = None,
                       chunk_rows: int = _CHUNK_ROWS) -> PurchaseDays:
    """Stream a transaction log into distinct (customer, day) purchases with their value.

    Parameters
    ----------
    source : path-like or bytes
        Text log (tab, comma, semicolon or whitespace separated) or a ``.parquet`` file.
    mapping : core.reading.mapping.Mapping, optional
        Column roles (``customer_id``, ``date``, ``amount``); suggested from the file when None.
    name : str, optional
        Display name for messages.
    chunk_rows : int, default 500,000

    Returns
    -------
    PurchaseDays

    Raises
    ------
    ValueInputError
        Not a transaction log, or no readable row.
    core.reading.loading.DataFileError
        The file cannot be read (the loader's message).
    """
    from core.reading.loading import DataFileError

    shown = name or (Path(source).name if isinstance(source, (str, os.PathLike)) else "upload")
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
        raise DataFileError(f"{shown}: no such file")
    sep, encoding, (c_id, c_date, c_amount) = _roles(source, mapping, shown)
    fmt = None
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
    rows_read = rows_used = 0
    try:
        for chunk in _chunks(source, sep, encoding, list(dict.fromkeys([c_id, c_date, c_amount])), chunk_rows):
            rows_read += len(chunk)
            day, fmt = _parse_days(chunk[c_date], fmt)
            amount = _parse_amounts(chunk[c_amount])
            ids = chunk[c_id]
            if ids.dtype.kind not in "iu":
                ids = ids.astype(str).str.strip().where(ids.notna(), "")
                bad_id = (ids == "").to_numpy()
            else:
                bad_id = np.zeros(len(ids), bool)
            keep = ~(np.isnan(day) | np.isnan(amount) | bad_id)
            ids = np.asarray(ids.to_numpy())
            del chunk  # the raw rows go as soon as the chunk is reduced to its purchase days
            if not keep.any():
                continue
            rows_used += int(keep.sum())
            parts.append(_chunk_days(ids[keep], day[keep].astype(np.int32), amount[keep]))
            del ids, day, amount, keep
    except (ValueError, pd.errors.ParserError) as err:
        if isinstance(err, ValueInputError):
            raise
        raise DataFileError(f"{shown}: could not be read as a transaction log ({str(err).splitlines()[0][:120]})") \
            from None
    if not rows_used:
        raise ValueInputError(f"{shown}: no row with a readable customer ID, date and amount ({LOG_NEEDED})")
    code, uniq = _codes(parts)
    columns = [code, _concat([p[1] for p in parts]), _concat([p[2] for p in parts])]
    del code
    parts.clear()
    return PurchaseDays(uniq, *_purchase_days(columns), rows_read, rows_used, shown)


def _concat(arrays: list) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _chunk_days(ids: np.ndarray, day: np.ndarray, amount: np.ndarray):
    """One chunk's distinct (customer, day) pairs, sorted, with their value: (ids or local codes, day, amount, uniq).

    Whole-number IDs are kept as they are (``uniq`` None); other IDs become int32 codes into this
    chunk's ``uniq``, so each text ID is held once per chunk, not once per row.
    """
    uniq = None
    if ids.dtype.kind in "iu":
        lo, hi = int(ids.min()), int(ids.max())
        local = ids - lo if hi - lo < 2**31 else pd.factorize(ids)[0]
    else:
        local, uniq = pd.factorize(ids)
        uniq = np.asarray(uniq)
    d0 = int(day.min())
    span = int(day.max()) - d0 + 1
    key = local.astype(np.int64) * span + (day - d0)
    order = np.argsort(key, kind="stable")  # stable: a day's value is summed in the file's order
    key, amount = key[order], amount[order]
    new = np.empty(len(key), dtype=bool)
    new[:1] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    if len(starts) < len(key):
        amount = np.add.reduceat(amount, starts)
    first = order[starts]
    day = day[first]
    ids = ids[first] if uniq is None else local[first].astype(np.int32)
    return ids, day, amount, uniq


def _codes(parts: list) -> tuple[np.ndarray, np.ndarray]:
    """int32 customer code of each purchase day of the chunks (0..n-1 in ID order) and the IDs.

    Whole-number IDs in a range at most a few times the number of purchase days are coded by
    direct indexing (no hashing: about ten times faster on millions of rows); other IDs by
    factorizing. Each chunk's IDs are released as soon as they are coded.
    """
    if parts[0][3] is None:
        total = sum(len(p[0]) for p in parts)
        lo = min(int(p[0].min()) for p in parts)
        hi = max(int(p[0].max()) for p in parts)
        if hi - lo <= 4 * total + 1_000_000:
            present = np.zeros(hi - lo + 1, dtype=bool)
            for p in parts:
                present[p[0] - lo] = True
            position = (np.cumsum(present, dtype=np.int64) - 1).astype(np.int32)
            codes = []
            for i, p in enumerate(parts):
                codes.append(position[p[0] - lo])
                parts[i] = (None, *p[1:])
            return _concat(codes), (np.flatnonzero(present) + lo).astype(np.int64)
        code, uniq = pd.factorize(_concat([p[0] for p in parts]), sort=True)
        return code.astype(np.int32), np.asarray(uniq)
    mapping, uniq = pd.factorize(_concat([p[3] for p in parts]), sort=True)
    mapping = mapping.astype(np.int32)
    codes, offset = [], 0
    for p in parts:
        codes.append(mapping[offset + p[0]])
        offset += len(p[3])
    return _concat(codes), np.asarray(uniq)


def _purchase_days(columns: list):
    """Distinct (customer, day) pairs sorted by customer then day, each with its total value.

    ``columns`` (code, day, amount) is emptied so each array is freed once used. Chunks arrive
    already reduced and sorted, so the stable sort merges their runs; a log sorted by customer and
    date skips it.
    """
    code, day, amount = columns
    columns.clear()
    d0 = int(day.min())
    span = int(day.max()) - d0 + 1
    key = code.astype(np.int64)
    del code
    key *= span
    key += day
    key -= d0
    del day
    if len(key) > 1 and not bool(np.all(key[1:] >= key[:-1])):
        order = np.argsort(key, kind="stable")
        key = key[order]
        amount = amount[order]
        del order
    new = np.empty(len(key), dtype=bool)
    new[:1] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    del new
    amount = np.add.reduceat(amount, starts) if len(starts) < len(key) else amount
    key = key[starts] if len(starts) < len(key) else key
    del starts
    day = (key % span + d0).astype(np.int32)
    key //= span
    return key.astype(np.int32), day, amount


# ------------------------------------------------------------------------------------ statistics
def _day_of(text: str, what: str) -> int:
    try:
        return int((np.datetime64(pd.Timestamp(text).date(), "D") - _EPOCH).astype("int64"))
    except (ValueError, TypeError):
        raise ValueInputError(f"{what} {text!r} is not a date; expected YYYY-MM-DD") from None


def value_statistics(days: PurchaseDays, *, time_unit: str = "week", calibration_end: str | None = None) -> ValueData:
    """Per-customer frequency, recency, T and repeat value; the holdout after a calibration end.

    Parameters
    ----------
    days : PurchaseDays
    time_unit : {"day", "week", "month"}
    calibration_end : str, optional
        ``YYYY-MM-DD``, the last day of the calibration period; purchases after it form the holdout.
        Customers whose first purchase is after it are not in the calibration cohort.

    Returns
    -------
    ValueData

    Raises
    ------
    ValueInputError
        An unknown time unit, a calibration end outside the data's dates, or a log where
        nobody bought on two different days.
    """
    if time_unit not in UNIT_DAYS:
        raise ValueInputError(f"time unit must be one of {', '.join(UNIT_DAYS)}, got {time_unit!r}")
    unit = UNIT_DAYS[time_unit]
    first_all, last_all = int(days.day.min()), int(days.day.max())
    n = len(days.ids)
    code, day, amount = days.code, days.day, days.amount  # int32 codes and days: half the memory of int64
    if calibration_end is not None:
        end = _day_of(calibration_end, "calibration end")
        if not first_all <= end < last_all:
            raise ValueInputError(
                f"calibration end {calibration_end} is outside the data's dates: it must be on or after "
                f"{days.first_date} and before {days.latest_date}, so that a holdout period remains")
    else:
        end = last_all
    count = np.bincount(code, minlength=n)
    starts = np.cumsum(count) - count  # pairs are sorted by customer, then day
    first = day[starts].astype(np.int64)
    cohort = first <= end
    value_all = np.bincount(code, weights=amount, minlength=n)
    if calibration_end is None:  # every day is in the calibration period: no masked copies of the days
        n_cal, value_cal = count, value_all
    else:
        cal = day <= end
        n_cal = np.bincount(code[cal], minlength=n)
        value_cal = np.bincount(code[cal], weights=amount[cal], minlength=n)
        del cal
    last_cal = day[starts + np.maximum(n_cal - 1, 0)].astype(np.int64)  # calibration days come first within a customer
    last_cal -= first
    # Columns are added one at a time (each its own block) so the frame never holds a second copy.
    customers = pd.DataFrame(index=pd.Index(days.ids, name="ID"))
    customers["frequency"] = np.maximum(n_cal - 1, 0)
    customers["recency"] = last_cal / unit
    del last_cal
    customers["T"] = (end - first) / unit
    customers["repeat_value"] = value_cal - amount[starts]
    customers["total_value"] = value_cal
    customers["first_day"] = first
    del first
    customers["monetary_value"] = (customers["repeat_value"] / customers["frequency"]).where(customers["frequency"] > 0)
    if calibration_end is not None:
        customers["holdout_purchases"] = count - n_cal
        customers["holdout_value"] = value_all - value_cal
    del count, n_cal, value_all, value_cal
    notes = []
    dropped = int((~cohort).sum())
    if dropped:
        notes.append(f"{dropped:,} customers first bought after the calibration end and are not in the fit")
        customers = customers[cohort]
    if not (customers["frequency"] > 0).any():
        raise ValueInputError(f"{days.source}: nobody bought on two different days"
                              + (" in the calibration period" if calibration_end else "")
                              + "; the purchase model needs repeat purchases")
    weeks = (last_all - first_all) // 7 + 1
    weekly = np.zeros(weeks, dtype=np.int64)
    first_of_customer = np.zeros(len(day), dtype=bool)
    first_of_customer[starts] = True
    del starts
    step = 1 << 22  # repeat purchase days counted a slice at a time: no full-length temporaries
    for lo in range(0, len(day), step):
        part = slice(lo, lo + step)
        repeat = ~first_of_customer[part] & cohort[code[part]]
        weekly += np.bincount((day[part][repeat] - first_all) // 7, minlength=weeks)
    return ValueData(customers=customers, time_unit=time_unit, unit_days=unit, first_date=days.first_date,
                     latest_date=days.latest_date, end_date=str(_EPOCH + end), calibration=calibration_end is not None,
                     holdout_days=float(last_all - end), weekly_actual=weekly.astype("int64"),
                     rows_read=days.rows_read, rows_used=days.rows_used, source=days.source, notes=notes)


def collapse(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Distinct rows of equal-length columns, with how many customers share each.

    Parameters
    ----------
    *columns : numpy.ndarray

    Returns
    -------
    inverse : numpy.ndarray
        Row -> index of its distinct combination.
    weights : numpy.ndarray
        Customers per combination.
    values : list of numpy.ndarray
        The distinct values of each column, aligned with ``weights``.
    """
    key = np.zeros(len(columns[0]), dtype="int64")
    for column in columns:  # one int64 key: codes of each column in mixed radix
        codes, uniq = pd.factorize(column, sort=False)
        key = key * max(len(uniq), 1) + codes
    inverse, ukey = pd.factorize(key, sort=False)
    first = np.empty(len(ukey), dtype="int64")
    first[inverse[::-1]] = np.arange(len(key) - 1, -1, -1)  # the last write per combination is its first row
    weights = np.bincount(inverse, minlength=len(first)).astype("float64")
    return inverse, weights, [np.asarray(c)[first] for c in columns]
