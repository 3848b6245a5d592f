"""Transaction logs to customers: RFM, tenure, inter-purchase time, category and channel mix.

A transaction log has several rows per customer, each with a date and an amount
(optionally a quantity, an order ID, a product category and a sales channel).
:func:`aggregate` streams it in chunks, so memory is bounded by the number of
customers (and, when order IDs are given, of distinct orders), never by the
number of rows: a 50M-row log aggregates like a 50K-row one, only slower.

Per customer (days are whole days; "latest date" is the latest date in the file):

``Recency``
    days from the customer's last purchase to the latest date.
``Frequency``
    number of orders: distinct order IDs when an order column is mapped, else rows.
``Monetary``
    total amount. Zero and negative amounts (returns, free items) stay in: Frequency
    counts those rows, Monetary sums them, and the cleaning report counts them.
``Tenure``
    days from the first purchase to the latest date.
``Avg_order_value``
    Monetary / Frequency.
``Interpurchase_days``
    (last - first purchase) / (Frequency - 1); empty for one-order customers.

RFM scores are quintile scores 1-5 (5 best: most recent, most frequent, highest
spend) of each customer's position among all customers; tied customers share the
lower score, so two customers with the same value always get the same score. The
named RFM groups follow the widely used R x FM grid (FM = the rounded-up mean of the
F and M scores): Champions, Loyal customers, Potential loyalists, New customers,
Promising, Need attention, About to sleep, At risk, Can't lose them, Hibernating.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "TransactionColumns", "Aggregated", "aggregate", "rfm_scores", "rfm_group", "RFM_GROUPS",
    "RFM_COLUMNS", "CUSTOMER_COLUMNS", "crosstab", "DEFAULT_CHUNK_ROWS", "MAX_CATEGORIES", "LogChunk", "read_log",
    "log_engine", "from_totals",
]

DEFAULT_CHUNK_ROWS = 500_000
# Spend columns made from a category column: the largest categories by amount, the rest as "Other".
MAX_CATEGORIES = 12
RFM_COLUMNS = ["Recency", "Frequency", "Monetary", "Tenure"]
CUSTOMER_COLUMNS = ["ID", *RFM_COLUMNS, "Avg_order_value", "Interpurchase_days", "Returns_or_free",
                    "First_purchase", "Last_purchase"]

# (R scores, FM scores) -> group; covers all 25 cells of the grid.
RFM_GROUPS: list[tuple[str, str, str]] = [
    ("Champions", "5", "45"),
    ("Loyal customers", "34", "45"),
    ("Potential loyalists", "45", "23"),
    ("New customers", "5", "1"),
    ("Promising", "4", "1"),
    ("Need attention", "3", "3"),
    ("About to sleep", "3", "12"),
    ("Can't lose them", "12", "5"),
    ("At risk", "12", "34"),
    ("Hibernating", "12", "12"),
]
_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass
class TransactionColumns:
    """Which file column plays which transaction role (file column names; None when absent).

    Parameters
    ----------
    customer_id, date, amount : str
    quantity, order_id, category, channel : str, optional
    """

    customer_id: str
    date: str
    amount: str
    quantity: str | None = None
    order_id: str | None = None
    category: str | None = None
    channel: str | None = None


@dataclass
class Aggregated:
    """Customers derived from a transaction log, and what happened to the rows.

    Parameters
    ----------
    customers : pandas.DataFrame
        One row per customer: :data:`CUSTOMER_COLUMNS`, then ``Quantity`` (when mapped),
        ``Spend_<category>`` and ``Channel_<channel>`` (share of the customer's orders when order IDs are
        mapped, else of rows) columns.
    rows_read : int
    rows_used : int
    unreadable : dict of str to int
        Role -> rows dropped because that cell could not be read (or was empty).
    nonpositive : int
        Rows with an amount of zero or less (kept).
    total_amount : float
        Sum of the amounts of the rows used.
    first_date, latest_date : str
        ``yyyy-mm-dd``.
    date_format : str
    notes : list of str
    engine : str
        ``"duckdb"``, ``"pandas"`` or ``"postgresql"``: which path aggregated the log (same customers
        either way).
    engine_note : str
        Why a faster path was not taken, when that is worth saying ("" otherwise).
    """

    customers: pd.DataFrame
    rows_read: int
    rows_used: int
    unreadable: dict = field(default_factory=dict)
    nonpositive: int = 0
    total_amount: float = 0.0
    first_date: str = ""
    latest_date: str = ""
    date_format: str = ""
    notes: list = field(default_factory=list)
    examples: dict = field(default_factory=dict)
    engine: str = "pandas"
    engine_note: str = ""


# ------------------------------------------------------------------------------------ parsing
_DATE_CANDIDATES = ("%Y%m%d", "%Y-%m-%d", "%Y/%m/%d", "%d-%m-%Y", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y",
                    "%m-%d-%Y", "%d-%b-%y", "%d-%b-%Y", "%d %b %Y", "%b %d, %Y", "%y%m%d")
_TIME_RE = r"^(.*?\S)(?:[ T]+)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?(?:Z|[+-]\d{2}:?\d{2})?$"


def _date_text(values: pd.Series) -> pd.Series:
    text = values.astype(str).str.strip()
    return text.str.replace(_TIME_RE, r"\1", regex=True)


def choose_date_format(values: pd.Series) -> tuple[str | None, float]:
    """The strptime format that reads most of ``values`` (distinct texts), and the share it reads.

    Parameters
    ----------
    values : pandas.Series
        Date cells as text.

    Returns
    -------
    (str or None, float)
        When two formats read every value (day <= 12 everywhere), the earlier of
        :data:`_DATE_CANDIDATES` wins (year-first, then day-first as in the canonical file).
    """
    text = _date_text(pd.Series(pd.unique(values.dropna().astype(str))))
    text = text[text != ""]
    if not len(text):
        return None, 0.0
    sample = text.iloc[:2000]
    best, share = None, 0.0
    for fmt in _DATE_CANDIDATES:
        ok = float(pd.to_datetime(sample, format=fmt, errors="coerce").notna().mean())
        if ok > share:
            best, share = fmt, ok
        if ok == 1.0:
            break
    return best, share


def days_since_epoch(values: pd.Series, fmt: str) -> np.ndarray:
    """Dates as days since 1970-01-01 (float, NaN when unreadable), parsing each distinct text once."""
    # Factorize the raw cells first (a few hundred distinct dates even in millions of rows), then parse those.
    codes, uniq = pd.factorize(values, use_na_sentinel=True)
    texts = pd.Series(np.asarray(uniq), dtype=object)
    if values.dtype.kind == "f":  # 19970101.0 when a column with empty cells was read as numbers
        texts = texts.map(lambda v: str(int(v)) if v == v and float(v).is_integer() else str(v))
    parsed = pd.to_datetime(_date_text(texts.astype(str)), format=fmt, errors="coerce")
    days = (parsed.to_numpy(dtype="datetime64[D]") - _EPOCH).astype("float64")
    days[np.isnat(parsed.to_numpy())] = np.nan
    out = np.where(codes >= 0, days[np.where(codes >= 0, codes, 0)] if len(days) else np.nan, np.nan)
    return out.astype("float64")


def _amounts(values: pd.Series) -> np.ndarray:
    """Amounts as floats: plain numbers fast, currency text ("$1,234.50") through the loader's reader."""
    if values.dtype.kind in "iuf":
        out = values.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        out[~np.isfinite(out)] = np.nan
        return out
    from core.reading.parsing import number_values

    codes, uniq = pd.factorize(values, use_na_sentinel=True)
    parsed, _, _ = number_values(pd.Series(np.asarray(uniq), dtype=object).astype(str), False)
    return np.where(codes >= 0, parsed[np.where(codes >= 0, codes, 0)] if len(parsed) else np.nan, np.nan)


def _labels(values: pd.Series) -> np.ndarray:
    """Category or channel labels as stripped text ("(none)" when empty), converting each distinct value once."""
    codes, uniq = pd.factorize(values, use_na_sentinel=True)
    names = np.array([str(u).strip() or "(none)" for u in uniq] + ["(none)"], dtype=object)
    return names[np.where(codes >= 0, codes, len(uniq))]


def _ids(values: pd.Series, numeric: bool) -> tuple[pd.Series, np.ndarray]:
    """Customer IDs (int64 when the file's IDs are whole numbers, else stripped text) and a bad mask."""
    if numeric:
        nums = pd.to_numeric(values.astype(str).str.strip(), errors="coerce") if values.dtype.kind not in "iuf" \
            else values.astype("float64")
        arr = nums.to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isfinite(arr) | (np.floor(arr) != arr)
        return pd.Series(np.where(bad, 0, arr).astype("int64")), bad
    text = values.astype(str).str.strip()
    bad = (values.isna() | (text == "")).to_numpy()
    return text.reset_index(drop=True), bad


# ------------------------------------------------------------------------------------ reading
def _reader(source: Any, sep: str, encoding: str, usecols: list[str], chunk_rows: int, dtypes: dict):
    kwargs = dict(sep=sep, header=0, usecols=usecols, dtype=dtypes, chunksize=chunk_rows, encoding=encoding,
                  engine="c", skip_blank_lines=True, na_values=["", "NA", "N/A", "NaN", "nan", "NULL", "null"],
                  keep_default_na=False)
    handle = source if isinstance(source, (str, os.PathLike)) else io.BytesIO(bytes(source))
    return pd.read_csv(handle, **kwargs)


class _Accumulator:
    """Per-customer running totals in arrays that grow with the customers, never with the rows.

    Each chunk is reduced per customer (numpy bincount / pandas groupby) and folded into arrays
    indexed by a customer's position in :attr:`ids`. Distinct orders are kept as a sorted array of
    64-bit hashes of (customer, order ID): 8 bytes per order.
    """

    _MAX_KEPT_CATEGORIES = 200  # beyond this many distinct categories the rest go to "Other" at once

    def __init__(self, has_qty: bool):
        self.ids: pd.Index | None = None
        self.cap = 0
        names = ["first", "last", "rows", "monetary", "nonpos", "orders"] + (["quantity"] if has_qty else [])
        self.arrays = {name: np.empty(0) for name in names}
        self.categories: dict = {}
        self.cat_sum = np.zeros((0, 0))
        self.channels: dict = {}
        self.chan_n = np.zeros((0, 0))
        self.seen = np.empty(0, dtype=np.uint64)
        self.seen_channel = np.empty(0, dtype=np.uint64)

    @property
    def n(self) -> int:
        return 0 if self.ids is None else len(self.ids)

    def _grow(self, need: int) -> None:
        if need <= self.cap:
            return
        cap = max(need, 2 * self.cap, 1024)
        for name, arr in self.arrays.items():
            fill = np.inf if name == "first" else -np.inf if name == "last" else 0.0
            grown = np.full(cap, fill)
            grown[:len(arr)] = arr
            self.arrays[name] = grown
        for attr in ("cat_sum", "chan_n"):
            old = getattr(self, attr)
            grown = np.zeros((cap, old.shape[1]))
            grown[:old.shape[0]] = old
            setattr(self, attr, grown)
        self.cap = cap

    def _positions(self, uniq) -> np.ndarray:
        uniq = pd.Index(uniq)
        if self.ids is None:
            self.ids = uniq
            pos = np.arange(len(uniq))
        else:
            pos = self.ids.get_indexer(uniq)
            new = pos < 0
            if new.any():
                start = len(self.ids)
                self.ids = self.ids.append(uniq[new])
                pos[new] = start + np.arange(int(new.sum()))
        self._grow(self.n)
        return pos

    def _columns(self, attr: str, table: dict, values: pd.Series, codes: np.ndarray, k: int, weights,
                 keep=None) -> np.ndarray:
        local, names = pd.factorize(values, use_na_sentinel=False)
        cols = []
        for name in names:
            if name not in table:
                width = len(set(table.values()))
                if width < self._MAX_KEPT_CATEGORIES:
                    table[name] = width
                else:  # one column for the rest (its first key, "\0other", names it "Other")
                    table.setdefault("\0other", width)
                    table[name] = table["\0other"]
            cols.append(table[name])
        width = len(set(table.values()))
        old = getattr(self, attr)
        if old.shape[1] < width:
            grown = np.zeros((old.shape[0], width))
            grown[:, :old.shape[1]] = old
            setattr(self, attr, grown)
        gcol = np.asarray(cols, dtype=np.int64)[local]
        flat = codes * width + gcol
        if keep is not None:
            flat, weights = flat[keep], (None if weights is None else weights[keep])
        return np.bincount(flat, weights=weights, minlength=k * width).reshape(k, width)

    def add(self, frame: pd.DataFrame) -> None:
        codes, uniq = pd.factorize(frame["id"], sort=False)
        k = len(uniq)
        pos = self._positions(np.asarray(uniq))
        a = self.arrays
        g = pd.Series(frame["day"].to_numpy()).groupby(codes, sort=True)
        a["first"][pos] = np.minimum(a["first"][pos], g.min().to_numpy())
        a["last"][pos] = np.maximum(a["last"][pos], g.max().to_numpy())
        a["rows"][pos] += np.bincount(codes, minlength=k)
        a["monetary"][pos] += np.bincount(codes, weights=frame["amount"].to_numpy(), minlength=k)
        a["nonpos"][pos] += np.bincount(codes, weights=frame["nonpos"].to_numpy(), minlength=k)
        if "quantity" in a:
            a["quantity"][pos] += np.bincount(codes, weights=frame["quantity"].to_numpy(), minlength=k)
        if "category" in frame:
            sums = self._columns("cat_sum", self.categories, frame["category"], codes, k, frame["amount"].to_numpy())
            self.cat_sum[pos, :sums.shape[1]] += sums
        if "order" in frame:
            first, self.seen = self._fresh(frame[["id", "order"]], self.seen)
            a["orders"][pos] += np.bincount(codes[first], minlength=k)
        if "channel" in frame:
            keep = None
            if "order" in frame:  # share of orders: each (customer, channel, order) once
                keep, self.seen_channel = self._fresh(frame[["id", "channel", "order"]], self.seen_channel)
            sums = self._columns("chan_n", self.channels, frame["channel"], codes, k, None, keep)
            self.chan_n[pos, :sums.shape[1]] += sums

    @staticmethod
    def _fresh(keys: pd.DataFrame, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose key was not met before (first row of each), and the seen hashes with theirs added."""
        hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        uh, first = np.unique(hashed, return_index=True)
        at = np.searchsorted(seen, uh)
        known = (seen[np.minimum(at, len(seen) - 1)] == uh) & (at < len(seen)) if len(seen) else np.zeros(len(uh), bool)
        fresh = ~known
        return first[fresh], np.insert(seen, at[fresh], uh[fresh])

    def frames(self):
        """(base per customer, spend per category, purchases per channel) as DataFrames indexed by ID."""
        n = self.n
        base = pd.DataFrame({name: arr[:n] for name, arr in self.arrays.items()}, index=self.ids)
        spend = counts = None
        if self.categories:
            names = {}
            for name, col in self.categories.items():
                names.setdefault(col, "Other" if name == "\0other" else name)
            spend = pd.DataFrame(self.cat_sum[:n, :len(names)], index=self.ids,
                                 columns=[names[c] for c in range(len(names))])
        if self.channels:
            names = {}
            for name, col in self.channels.items():
                names.setdefault(col, name)
            counts = pd.DataFrame(self.chan_n[:n, :len(names)], index=self.ids,
                                  columns=[names[c] for c in range(len(names))])
        return base, spend, counts


def _column_name(prefix: str, value) -> str:
    text = re.sub(r"[^0-9A-Za-z]+", "_", str(value)).strip("_") or "blank"
    return f"{prefix}_{text}"[:60]



@dataclass
class LogChunk:
    """One chunk of a transaction log, parsed: the readable rows and what was dropped.

    Parameters
    ----------
    frame : pandas.DataFrame
        Readable rows: ``id``, ``day`` (days since 1970-01-01), ``amount``, ``nonpos`` (1 when the amount
        is zero or less), then ``quantity``, ``order``, ``category``, ``channel`` when mapped.
    rows : int
        Rows read in this chunk (readable or not).
    unreadable : dict of str to int
        Role -> rows dropped in this chunk because that cell could not be read.
    examples : dict of str to list
        Role -> up to five ``"line N"`` of dropped rows.
    date_format : str
    """

    frame: pd.DataFrame
    rows: int
    unreadable: dict
    examples: dict
    date_format: str


def read_log(source: Any, columns: TransactionColumns, *, sep: str, encoding: str = "utf-8", name: str = "file",
             chunk_rows: int = DEFAULT_CHUNK_ROWS, date_format: str | None = None):
    """Read a transaction log in chunks, parsed the way :func:`aggregate` reads it (it uses this).

    Parameters
    ----------
    source, columns, sep, encoding, name, chunk_rows, date_format
        As :func:`aggregate`.

    Yields
    ------
    LogChunk

    Raises
    ------
    core.reading.loading.DataFileError
        A mapped column is missing, or mostly unreadable (the message names it and what was expected).
    """
    from core.reading.loading import DataFileError

    roles = {k: v for k, v in vars(columns).items() if v}
    usecols = list(dict.fromkeys(roles.values()))
    # IDs, dates and order IDs are left to the parser (whole numbers read as int64, the fast path);
    # text columns stay text.
    dtypes = {}
    for role in ("category", "channel"):
        if roles.get(role):
            dtypes[roles[role]] = "category"  # few distinct values: parsed once each, grouped by code
    rows_read = 0
    numeric_ids: bool | None = None
    fmt = date_format
    try:
        reader = _reader(source, sep, encoding, usecols, chunk_rows, dtypes)
        for chunk in reader:
            n = len(chunk)
            if numeric_ids is None:
                sample = chunk[columns.customer_id].dropna().astype(str).str.strip().head(5000)
                numeric_ids = bool(len(sample)) and bool(sample.str.fullmatch(r"[+-]?\d+(\.0+)?").mean() > 0.9)
            if fmt is None:
                fmt, share = choose_date_format(chunk[columns.date])
                if fmt is None or share < 0.5:
                    first = chunk[columns.date].dropna().astype(str).head(1).tolist()
                    raise DataFileError(
                        f"{name}: column {columns.date!r} is mapped to the purchase date, but its values are not "
                        f"dates in one accepted format (e.g. {first[0] if first else ''!r}); expected dates such as "
                        "19970101 (yyyymmdd), 1997-01-01 or 01/02/1997")
            ids, bad_id = _ids(chunk[columns.customer_id].reset_index(drop=True), numeric_ids)
            day = days_since_epoch(chunk[columns.date].reset_index(drop=True), fmt)
            amount = _amounts(chunk[columns.amount].reset_index(drop=True))
            bad_day, bad_amount = np.isnan(day), np.isnan(amount)
            if rows_read == 0:
                for role, bad, col in (("customer_id", bad_id, columns.customer_id), ("date", bad_day, columns.date),
                                       ("amount", bad_amount, columns.amount)):
                    if n and bad.mean() > 0.5:
                        cell = chunk[col].iloc[int(np.flatnonzero(bad)[0])]
                        expected = {"customer_id": "a customer ID such as 00001 or C-123",
                                    "date": "a date such as 19970101",
                                    "amount": "an amount such as 29.33 or $1,234.50"}[role]
                        raise DataFileError(f"{name}: column {col!r} is mapped to {role.replace('_', ' ')}, but "
                                            f"{int(bad.sum())} of {n} values in the first rows cannot be read "
                                            f"(line {int(np.flatnonzero(bad)[0]) + 2}: {str(cell)[:30]!r}); "
                                            f"expected {expected}")
            bad_any = bad_id | bad_day | bad_amount
            unreadable, examples = {}, {}
            # Each dropped row is counted once, under the first of its unreadable roles.
            firsts = (("customer_id", bad_id), ("date", bad_day & ~bad_id), ("amount", bad_amount & ~bad_id & ~bad_day))
            for role, only in firsts:
                unreadable[role] = int(only.sum())
                if only.any():
                    examples[role] = [f"line {rows_read + int(p) + 2}" for p in np.flatnonzero(only)[:5]]
            keep = ~bad_any
            frame = pd.DataFrame({"id": ids[keep].to_numpy(), "day": day[keep], "amount": amount[keep]})
            frame["nonpos"] = (frame["amount"] <= 0).astype("int64")
            if columns.quantity:
                q = _amounts(chunk[columns.quantity].reset_index(drop=True))[keep]
                frame["quantity"] = np.nan_to_num(q)
            if columns.order_id:
                frame["order"] = chunk[columns.order_id].astype(str).str.strip().to_numpy()[keep]
            if columns.category:
                frame["category"] = _labels(chunk[columns.category])[keep]
            if columns.channel:
                frame["channel"] = _labels(chunk[columns.channel])[keep]
            rows_read += n
            yield LogChunk(frame, n, unreadable, examples, fmt or "")
    except DataFileError:
        raise
    except ValueError as err:  # usecols naming a column the file lacks, a parser error
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        missing = [c for c in usecols if f"'{c}'" in text or c in text] if "Usecols" in text or "columns" in text \
            else []
        if missing:
            raise DataFileError(f"{name}: the mapping names column(s) {', '.join(map(repr, missing))}, which the "
                                "file does not have") from None
        raise DataFileError(f"{name}: could not be read as a transaction log ({text[:120]})") from None


def aggregate(source: Any, columns: TransactionColumns, *, sep: str, encoding: str = "utf-8", name: str = "file",
              chunk_rows: int = DEFAULT_CHUNK_ROWS, date_format: str | None = None, progress=None,
              engine: str = "auto") -> Aggregated:
    """Aggregate a transaction log to one row per customer, reading it in chunks.

    Parameters
    ----------
    source : path-like or bytes
        The log (a path is streamed from disk; bytes from memory).
    columns : TransactionColumns
        File column of each role.
    sep : str
        Delimiter (``"\\t"``, ``","``, ``";"``) or ``r"\\s+"`` for whitespace-separated files.
    encoding : str, default "utf-8"
    name : str
        Display name for messages.
    chunk_rows : int, default 500,000
    date_format : str, optional
        strptime format of the dates; chosen from the first chunk when not given.
    progress : callable, optional
        ``progress(rows_read_so_far)`` after each chunk.
    engine : {"auto", "duckdb", "pandas"}, default "auto"
        ``duckdb`` aggregates a clean log file (every customer ID, date and amount readable as
        plain values, no category or channel mapped) by one DuckDB query (:mod:`core.reading.duck`) and
        any other log with pandas; both give the same customers. ``pandas`` is the reference
        path. ``auto`` is :func:`log_engine` (``SEGMENTLENS_LOG_ENGINE``, else by core count).

    Returns
    -------
    Aggregated

    Raises
    ------
    core.reading.loading.DataFileError
        A mapped column is missing, or mostly unreadable (the message names it and what was expected).
    """
    from core.reading.loading import DataFileError

    if engine not in ("auto", "duckdb", "pandas"):
        raise ValueError(f"engine must be auto, duckdb or pandas, got {engine!r}")
    strict = engine == "duckdb"
    if engine == "auto":
        engine = log_engine()
    if engine != "pandas":
        fast, why = _aggregate_duckdb(source, columns, sep=sep, encoding=encoding, chunk_rows=chunk_rows,
                                      date_format=date_format)
        if fast is not None:
            return fast
        if strict:
            raise ValueError(f"{name}: DuckDB cannot aggregate this log exactly as pandas does ({why})")
    acc = _Accumulator(bool(columns.quantity))
    rows_read = rows_used = nonpositive = 0
    total = 0.0
    unreadable = {"customer_id": 0, "date": 0, "amount": 0}
    examples: dict[str, list] = {}
    fmt = date_format
    for chunk in read_log(source, columns, sep=sep, encoding=encoding, name=name, chunk_rows=chunk_rows,
                          date_format=date_format):
        frame = chunk.frame
        fmt = chunk.date_format
        for role, count in chunk.unreadable.items():
            unreadable[role] += count
        for role, lines in chunk.examples.items():
            if len(examples.setdefault(role, [])) < 5:
                examples[role] += lines
        if len(frame):
            acc.add(frame)
        rows_read += chunk.rows
        rows_used += len(frame)
        nonpositive += int(frame["nonpos"].sum())
        total += float(frame["amount"].sum())
        if progress is not None:
            progress(rows_read)
    if rows_read == 0:
        raise DataFileError(f"{name} has a header but no transaction rows")
    if not acc.n:
        raise DataFileError(f"{name}: no transaction row could be read (customer ID, date and amount are needed)")
    base, spend, counts = acc.frames()
    return _result(base, spend, counts, columns, rows_read=rows_read, rows_used=rows_used,
                   unreadable={k: v for k, v in unreadable.items() if v}, nonpositive=nonpositive, total=total,
                   fmt=fmt, examples=examples)


def log_engine() -> str:
    """The engine ``aggregate(engine="auto")`` uses: ``SEGMENTLENS_LOG_ENGINE`` when set, else by core count.

    DuckDB's query spreads over cores, pandas' chunks do not. On two busy cores (load 14, 2M-row
    log, ``benchmarks/bench_postgres.py``) the DuckDB path took 1.5x pandas' time: every cell is
    read as text and checked as pandas would read it, which costs more than the grouping (a plain
    DuckDB query without the checks took half pandas' time). So with fewer than four cores pandas
    aggregates; with four or more, DuckDB (not measured on this machine).

    Returns
    -------
    str
        ``"duckdb"`` or ``"pandas"``.
    """
    chosen = os.environ.get("SEGMENTLENS_LOG_ENGINE", "auto").strip().lower()
    if chosen in ("duckdb", "pandas"):
        return chosen
    return "duckdb" if (os.cpu_count() or 1) >= 4 else "pandas"


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_chunk_decisions(source, columns: TransactionColumns, sep: str, encoding: str, chunk_rows: int,
                           date_format: str | None) -> tuple[bool, str | None]:
    """Whether IDs are numbers and the date format, decided on the first chunk as the pandas path does."""
    chunk = next(iter(_reader(source, sep, encoding, [columns.customer_id, columns.date], chunk_rows, {})))
    sample = chunk[columns.customer_id].dropna().astype(str).str.strip().head(5000)
    numeric_ids = bool(len(sample)) and bool(sample.str.fullmatch(r"[+-]?\d+(\.0+)?").mean() > 0.9)
    fmt = date_format
    if fmt is None:
        fmt, share = choose_date_format(chunk[columns.date])
        if fmt is None or share < 0.5:
            return numeric_ids, None
    return numeric_ids, fmt


def _aggregate_duckdb(source: Any, columns: TransactionColumns, *, sep: str, encoding: str, chunk_rows: int,
                      date_format: str | None) -> tuple[Aggregated | None, str]:
    """The per-customer totals of a clean log file by one DuckDB query; (None, reason) when pandas must do it.

    Decisions stay those of the pandas path: numeric IDs and the date format from the first chunk,
    each distinct date text parsed by :func:`_days`. Any unreadable ID, date or amount, an amount
    or quantity that is not a plain number (currency text), an empty or mixed-type order ID
    sends the log to pandas, whose rules (and messages) for such rows are the reference.
    """
    from core.reading import duck

    if not isinstance(source, (str, os.PathLike)):
        return None, "not a file"
    if sep not in ("\t", ",", ";"):
        return None, "whitespace-separated columns (splitting them in DuckDB is slower than pandas)"
    if columns.category or columns.channel:
        return None, "a category or channel column is mapped"
    if encoding.replace("_", "-").lower() not in ("utf-8", "ascii") or not duck.available():
        return None, f"encoding {encoding}" if duck.available() else "duckdb is not installed"
    with open(source, "rb") as handle:
        first_line = handle.readline()
    if not first_line.strip() or first_line.startswith(b"\xef\xbb\xbf"):
        return None, "the header is not on the first line"
    try:
        headers = [str(c) for c in pd.read_csv(source, sep=sep, nrows=0, encoding=encoding, engine="c").columns]
        numeric_ids, fmt = _first_chunk_decisions(source, columns, sep, encoding, chunk_rows, date_format)
    except (ValueError, StopIteration, pd.errors.ParserError, UnicodeDecodeError):
        return None, "the first rows need the pandas reader"
    if fmt is None:
        return None, "dates in no accepted format"
    roles = {k: v for k, v in vars(columns).items() if v}
    try:
        with duck.LogFile(source, sep, headers, list(dict.fromkeys(roles.values()))) as log:
            col = log.column
            dates = log.frame(f"SELECT DISTINCT {col[columns.date]} AS t FROM log WHERE {col[columns.date]} IS NOT NULL")
            dates["day"] = days_since_epoch(dates["t"].astype(object), fmt)
            log.register("dmap", dates)
            # DuckDB's strptime where it reads every distinct date exactly as pandas did (no join per row).
            inline = f"datediff('day', DATE '1970-01-01', CAST(try_strptime(d, {_sql_text(fmt)}) AS DATE))"
            same = log.frame(f"SELECT count(*) AS n FROM dmap WHERE {inline.replace('(d,', '(t,')} "
                             "IS DISTINCT FROM (CASE WHEN isnan(day) THEN NULL ELSE day END)")
            day_sql, join = (inline, "") if not int(same["n"].iloc[0]) else ("m.day", "LEFT JOIN dmap m ON m.t = v.d")
            roles_sql = {"cid": columns.customer_id, "d": columns.date, "am": columns.amount,
                         "q": columns.quantity, "o": columns.order_id}
            cells = ", ".join(f"{col[c]} AS {r}" for r, c in roles_sql.items() if c)
            white = "' \t\r\n'"
            if numeric_ids:
                first = ["TRY_CAST(cid AS DOUBLE) AS idn", "contains(cid, '_') AS id_us"]
                # DuckDB reads 1_000 as a number; pandas does not (nor 0x10, which both refuse).
                bad_id = ("(idn IS NULL OR NOT isfinite(idn) OR idn <> floor(idn) OR abs(idn) > 9e18 "
                          "OR id_us)")
                key = f"CASE WHEN {bad_id} THEN NULL ELSE CAST(idn AS BIGINT) END"
            else:
                first = [f"trim(cid, {white}) AS idt"]
                bad_id = "(idt IS NULL OR idt = '')"
                key = f"CASE WHEN {bad_id} THEN NULL ELSE idt END"
            first += [f"{day_sql} AS day", "TRY_CAST(am AS DOUBLE) AS a", "contains(am, '_') AS a_us"]
            # Any row pandas would drop or read by other rules (currency text, an unreadable quantity,
            # an empty or decimal order ID) counts as a problem: then pandas aggregates the log.
            problem = ["k IS NULL", "day IS NULL", "a IS NULL", "NOT isfinite(a)", "a_us"]
            inner = []
            if columns.quantity:
                first += ["TRY_CAST(q AS DOUBLE) AS qn", "q IS NOT NULL AS q_given", "contains(q, '_') AS q_us"]
                problem += ["(q_given AND qn IS NULL)", "q_us"]
                inner.append("sum(CASE WHEN isfinite(qn) THEN qn ELSE 0 END) AS quantity")
            orders = "0.0"
            if columns.order_id:
                # An order ID that is a whole number is keyed by its value (pandas reads 007 and 7 as 7);
                # other IDs by a hash of their text, as the pandas path does. "Whole number" is the text
                # [+-]?[0-9]+ (spaces around): read alike as BIGINT and DOUBLE, no '.', exponent or '_'
                # (cheaper than a regular expression on every row; DuckDB's casts alone accept 1.5 or 0x10).
                first += [f"trim(o, {white}) AS ot",
                          "CASE WHEN TRY_CAST(o AS BIGINT) = TRY_CAST(o AS DOUBLE) AND NOT (contains(o, '.') "
                          "OR contains(o, 'e') OR contains(o, 'E') OR contains(o, '_')) THEN TRY_CAST(o AS BIGINT) "
                          "END AS oi"]
                problem += ["ot IS NULL", "(oi IS NULL AND TRY_CAST(ot AS DOUBLE) IS NOT NULL)"]
                inner.append("sum((oi IS NULL)::INT) AS o_text")
                # Numbers and text never mix here (such a log goes to pandas below), so one BIGINT key each.
                orders = "count(DISTINCT CASE WHEN oi IS NULL THEN (hash(ot) >> 1)::BIGINT ELSE oi END)"
            extra = "".join(", " + e for e in inner)
            # One GROUP BY per customer (distinct orders by DuckDB's DISTINCT aggregate): measured faster
            # than grouping (customer, order) first and customers second.
            sql = f"""
                WITH v AS (SELECT {cells} FROM log),
                r AS (SELECT {", ".join(first)} FROM v {join}),
                s AS (SELECT *, {key} AS k FROM r)
                SELECT k AS id, count(*)::DOUBLE AS rows, sum(({" OR ".join(problem)})::INT) AS nbad,
                       min(day) AS first, max(day) AS last, sum(a) AS monetary,
                       sum((a <= 0)::INT) AS nonpos, {orders}::DOUBLE AS orders{extra}
                FROM s GROUP BY 1"""
            table = log.frame(sql)
    except duck.Unsupported as exc:
        return None, str(exc)
    totals = table.sum(numeric_only=True)
    if not len(table) or int(totals["nbad"]) or table["id"].isna().any():
        return None, "some rows have an unreadable or non-plain ID, date, amount, quantity or order ID"
    if columns.order_id and int(totals["o_text"]) not in (0, int(totals["rows"])):
        return None, "order IDs mix numbers and text"
    ids = table["id"].to_numpy(dtype="int64") if numeric_ids else np.asarray(table["id"], dtype=object)
    names = ["first", "last", "rows", "monetary", "nonpos", "orders"] + (["quantity"] if columns.quantity else [])
    base = pd.DataFrame({n: table[n].to_numpy(dtype="float64") for n in names}, index=pd.Index(ids))
    rows_read = int(totals["rows"])
    result = _result(base, None, None, columns, rows_read=rows_read, rows_used=rows_read, unreadable={},
                     nonpositive=int(totals["nonpos"]), total=float(totals["monetary"]), fmt=fmt, examples={})
    result.engine = "duckdb"
    return result, ""


def from_totals(base: pd.DataFrame, columns: TransactionColumns, *, rows: int, nonpositive: int, total: float,
                date_format: str, engine: str) -> Aggregated:
    """Customers from per-customer totals computed elsewhere (a database's ``GROUP BY``) on a clean log.

    The same construction as the pandas and DuckDB paths (one place), for a log with no unreadable
    row and no category or channel mapped.

    Parameters
    ----------
    base : pandas.DataFrame
        ``first``, ``last`` (days since 1970-01-01), ``rows``, ``monetary``, ``nonpos``, ``orders`` and,
        with a quantity column, ``quantity``; floats indexed by customer ID.
    columns : TransactionColumns
    rows : int
        Rows of the log.
    nonpositive : int
    total : float
    date_format : str
        The format the pandas path would have chosen for the same dates.
    engine : str
        Which path aggregated (``Aggregated.engine``).

    Returns
    -------
    Aggregated
    """
    result = _result(base, None, None, columns, rows_read=rows, rows_used=rows, unreadable={},
                     nonpositive=nonpositive, total=total, fmt=date_format, examples={})
    result.engine = engine
    return result


def _result(base: pd.DataFrame, spend, counts, columns: TransactionColumns, *, rows_read: int, rows_used: int,
            unreadable: dict, nonpositive: int, total: float, fmt: str | None, examples: dict) -> Aggregated:
    """Customers from the per-customer totals (``first``, ``last``, ``rows``, ``monetary``, ``nonpos``,
    ``orders``, ``quantity`` as floats indexed by ID): one place for both the pandas and the DuckDB path."""
    latest = float(base["last"].max())
    first_day = float(base["first"].min())
    freq = base["orders"] if columns.order_id else base["rows"]
    out = pd.DataFrame(index=base.index)
    out["Recency"] = latest - base["last"]
    out["Frequency"] = freq.astype("int64")
    out["Monetary"] = base["monetary"].round(6)
    out["Tenure"] = latest - base["first"]
    out["Avg_order_value"] = (out["Monetary"] / out["Frequency"].replace(0, np.nan)).round(6)
    span = base["last"] - base["first"]
    out["Interpurchase_days"] = (span / (out["Frequency"] - 1).where(out["Frequency"] > 1)).round(6)
    out["Returns_or_free"] = base["nonpos"].astype("int64")
    out["First_purchase"] = (_EPOCH + base["first"].to_numpy().astype("int64")).astype(str)
    out["Last_purchase"] = (_EPOCH + base["last"].to_numpy().astype("int64")).astype(str)
    notes = []
    if "quantity" in base:
        out["Quantity"] = base["quantity"]
    if spend is not None:
        order = spend.sum().sort_values(ascending=False).index.tolist()
        if len(order) > MAX_CATEGORIES:
            notes.append(f"{len(order)} categories: the {MAX_CATEGORIES - 1} largest by amount have their own spend "
                         "column, the rest are summed as Spend_Other")
            top, rest = order[:MAX_CATEGORIES - 1], order[MAX_CATEGORIES - 1:]
            spend = spend[top].assign(Other=spend[rest].sum(axis=1))
        else:
            spend = spend[order]
        spend.columns = [_column_name("Spend", c) for c in spend.columns]
        out = out.join(spend.reindex(out.index).fillna(0.0))
    if counts is not None:
        shares = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0).round(6)
        shares.columns = [_column_name("Channel", c) for c in shares.columns]
        out = out.join(shares.reindex(out.index).fillna(0.0))
    out.index.name = "ID"
    out = out.sort_index().reset_index()
    return Aggregated(
        customers=out, rows_read=rows_read, rows_used=rows_used,
        unreadable=unreadable, nonpositive=nonpositive, total_amount=total,
        first_date=str(_EPOCH + int(first_day)), latest_date=str(_EPOCH + int(latest)), date_format=fmt or "",
        notes=notes, examples=examples)


# ------------------------------------------------------------------------------------ RFM
def _quintile(values: pd.Series, higher_is_better: bool = True) -> np.ndarray:
    """Quintile score 1-5 of each value's position; tied values share the lower score."""
    v = values.astype(float)
    rank = (v if higher_is_better else -v).rank(method="min").to_numpy()
    n = max(len(v), 1)
    return (1 + np.floor(5 * (rank - 1) / n)).clip(1, 5).astype("int64")


def rfm_group(r: int, fm: int) -> str:
    """The named RFM group of an R score and an FM score (1-5 each).

    Parameters
    ----------
    r, fm : int

    Returns
    -------
    str
    """
    for name, rs, fms in RFM_GROUPS:
        if str(int(r)) in rs and str(int(fm)) in fms:
            return name
    return "Hibernating"


def rfm_scores(customers: pd.DataFrame) -> pd.DataFrame:
    """R, F and M quintile scores (1-5), the three-digit RFM code and the named RFM group.

    Parameters
    ----------
    customers : pandas.DataFrame
        With ``Recency``, ``Frequency`` and ``Monetary``.

    Returns
    -------
    pandas.DataFrame
        Same index; ``R_score``, ``F_score``, ``M_score``, ``RFM_score`` (e.g. ``"545"``) and ``RFM_group``.
    """
    r = _quintile(customers["Recency"], higher_is_better=False)
    f = _quintile(customers["Frequency"])
    m = _quintile(customers["Monetary"])
    fm = np.ceil((f + m) / 2).astype("int64")
    groups = np.empty(len(r), dtype=object)
    table = {(ri, fi): rfm_group(ri, fi) for ri in range(1, 6) for fi in range(1, 6)}
    for i, (ri, fi) in enumerate(zip(r, fm)):
        groups[i] = table[(int(ri), int(fi))]
    return pd.DataFrame({"R_score": r, "F_score": f, "M_score": m,
                         "RFM_score": [f"{a}{b}{c}" for a, b, c in zip(r, f, m)], "RFM_group": groups},
                        index=customers.index)


def crosstab(labels, groups) -> pd.DataFrame:
    """How k-means segments and RFM groups relate: customers per (segment, group).

    Parameters
    ----------
    labels : array-like of int
    groups : array-like of str

    Returns
    -------
    pandas.DataFrame
        Index ``segment``; one column per RFM group present (in :data:`RFM_GROUPS` order).
    """
    table = pd.crosstab(pd.Series(np.asarray(labels), name="segment"), pd.Series(np.asarray(groups), name="group"))
    order = [g for g, _, _ in RFM_GROUPS if g in table.columns]
    return table[order]
