"""Segments over time on a transaction log: as-of snapshots, migration between them, and movers.

A customer table has one moment; a transaction log has real time. For a version trained on a
log, each customer's features are recomputed *as of* a series of dates (month or quarter ends,
or given dates): only purchases on or before the date count, Recency and Tenure are measured to
the date, and customers who had not bought yet are absent. Every snapshot is scored with the
version's own model (its scaler, centroids and log transforms), so segment 3 means the same
thing at every date. The last snapshot, at the log's latest date, is the version's own
segmentation: the same features as :func:`core.reading.transactions.aggregate` gives.

One pass over the log
    The log is read once (:func:`core.reading.transactions.read_log`, the parser training used). Each
    row falls in the first snapshot period that contains it; each chunk is reduced to one record
    per (customer, period) (orders, amount, first and last day, returns, quantity), so memory
    follows customers x periods they bought in, never rows. The snapshots are then swept in date
    order with running per-customer state (orders, amount, last purchase so far): a snapshot
    costs the customers present in it, not another pass over the log. With order IDs mapped, an
    order counts from the date of its first row (64-bit hashes of customer and order, as
    :func:`~core.reading.transactions.aggregate` counts distinct orders).

Between consecutive snapshots
    Customers only arrive (a lapsed customer stays, with a growing Recency, and usually moves
    to a sleepier segment), so the transition matrix has one row per segment plus ``new``
    (first purchase in the period); ``share`` is the part of the row's customers. Per segment
    and period: customers in (from other segments and new), out, net; per snapshot: size, share
    and value (spend to date and in the period just ended).
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.campaigns.campaign import AUDIENCE_COLUMNS, assign_holdout
from core.versions.exports import to_safe_csv
from core.reading.mapping import LOG_SUFFIX, Mapping, sniff
from core.fitting.model import SegmentationModel
from core.reading.transactions import DEFAULT_CHUNK_ROWS, TransactionColumns, read_log, rfm_scores

__all__ = [
    "MigrationError", "NotALogError", "Migration", "EVERY", "snapshot_dates", "migration", "snapshot_features", "movers",
    "movers_csv", "movers_audience", "parse_date", "parse_segment_pair", "log_columns", "SUPPORTED_FEATURES",
    "NEW", "MAX_SNAPSHOTS", "period_label", "version_log", "run_for_version", "stored", "store", "rename", "transition_table",
]

EVERY = ("month", "quarter")
MAX_SNAPSHOTS = 240
NEW = "new"
_EPOCH = np.datetime64("1970-01-01", "D")
_BASE = ["Recency", "Frequency", "Monetary", "Tenure", "Avg_order_value", "Interpurchase_days", "Returns_or_free",
         "Quantity", "Total_Spending", "Total_Purchases", "Customer_since", "R_score", "F_score", "M_score"]
# What a snapshot can recompute; a version clustering on anything else (spend per category,
# channel shares) cannot be followed over time here, and says so.
SUPPORTED_FEATURES = tuple(_BASE + [f"{c}{LOG_SUFFIX}" for c in _BASE])
_COMPACT_ROWS = 4_000_000  # per-period records kept before they are re-reduced (bounds memory)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class MigrationError(ValueError):
    """Input that migration cannot use; the message says what and what was expected."""


class NotALogError(MigrationError):
    """The version was trained on a customer table: it has no purchase dates to follow."""


# ------------------------------------------------------------------------------------ dates
def parse_date(text, what: str = "date") -> np.datetime64:
    """A ``yyyy-mm-dd`` date (``what`` names the field in the message).

    Parameters
    ----------
    text : str
    what : str

    Returns
    -------
    numpy.datetime64
        Day precision.

    Raises
    ------
    MigrationError
    """
    try:
        return np.datetime64(_dt.date.fromisoformat(str(text).strip()), "D")
    except ValueError:
        raise MigrationError(f"{what}: expected a date such as 1997-09-30 (yyyy-mm-dd), got {str(text)[:30]!r}") \
            from None


def _day(d: np.datetime64) -> int:
    return int((np.datetime64(d, "D") - _EPOCH).astype(int))


def _text(day: int) -> str:
    return str(_EPOCH + int(day))


def snapshot_dates(first: str, latest: str, *, every: str = "month", start: str | None = None,
                   end: str | None = None, dates=None) -> list[str]:
    """The snapshot dates for a log whose purchases run from ``first`` to ``latest``.

    Month (or quarter) ends from ``start`` (default: the first purchase) up to ``end`` (default:
    the latest date), with ``start`` (when given) and ``end`` themselves: the last snapshot is the
    log's latest date unless an earlier end is asked for. Given ``dates`` replace the series. A
    date before the first purchase is a snapshot where nobody had bought yet (empty, with a note);
    a date after the latest one is outside the log.

    Parameters
    ----------
    first, latest : str
        ``yyyy-mm-dd``: the log's first and latest purchase dates.
    every : {"month", "quarter"}
    start, end : str, optional
    dates : list of str, optional

    Returns
    -------
    list of str
        Increasing, at least two.

    Raises
    ------
    MigrationError
        A date after the log's latest date, an end before its first purchase, ``start`` not before
        ``end``, an unknown ``every``, fewer than two or more than :data:`MAX_SNAPSHOTS` dates.
    """
    lo, hi = parse_date(first, "first date"), parse_date(latest, "latest date")
    span = f"the log runs from {first} to {latest}"
    if dates is not None:
        days = sorted({parse_date(d, "dates") for d in dates})
        for d in days:
            if d > hi:
                raise MigrationError(f"dates: {d} is after the log's latest date ({span})")
        if days and days[-1] < lo:
            raise MigrationError(f"dates: nobody had bought by {days[-1]}, the last date given ({span})")
        if len(days) < 2:
            raise MigrationError("dates: give at least two different dates")
        out = days
    else:
        if every not in EVERY:
            raise MigrationError(f"every: expected month or quarter, got {str(every)[:20]!r}")
        a = parse_date(start, "from") if start else lo
        b = parse_date(end, "to") if end else hi
        if a > hi:
            raise MigrationError(f"from: {a} is after the log's latest date ({span})")
        if b > hi:
            raise MigrationError(f"to: {b} is after the log's latest date ({span})")
        if b < lo:
            raise MigrationError(f"to: {b} is before the log's first purchase ({span}); nobody had bought by then")
        if a >= b:
            raise MigrationError(f"from: {a} must be before to ({b})")
        ends = pd.date_range(str(a), str(b), freq="ME" if every == "month" else "QE").to_numpy(dtype="datetime64[D]")
        # An explicit start is a snapshot of its own (the base of the first transition); the end always is.
        out = sorted({*(d for d in ends if a <= d <= b), *([a] if start else []), b})
        if len(out) < 2:
            raise MigrationError(f"from/to: {a} to {b} holds fewer than two snapshot dates; widen the range")
    if len(out) > MAX_SNAPSHOTS:
        raise MigrationError(f"{len(out)} snapshot dates asked for; at most {MAX_SNAPSHOTS} (choose quarter, "
                             "or a shorter range with from/to)")
    return [str(d) for d in out]


def period_label(from_date: str, to_date: str, every: str | None) -> str:
    """How a sentence names the period between two snapshots ("in Q3 1997", "in Sep 1997", "from ... to ...")."""
    a, b = pd.Timestamp(from_date), pd.Timestamp(to_date)
    if every == "quarter" and b.is_quarter_end and (b - a).days <= 92 and a.is_quarter_end:
        return f"in Q{b.quarter} {b.year}"
    if every == "month" and b.is_month_end and a.is_month_end and (b - a).days <= 31:
        return f"in {_MONTHS[b.month - 1]} {b.year}"
    return f"from {from_date} to {to_date}"


# ------------------------------------------------------------------------------------ reading
def log_columns(mapping: Mapping) -> TransactionColumns:
    """The transaction roles of a version's mapping (its ``mapping`` artifact).

    Parameters
    ----------
    mapping : core.reading.mapping.Mapping

    Returns
    -------
    core.reading.transactions.TransactionColumns

    Raises
    ------
    MigrationError
        The version was not trained on a transaction log.
    """
    if mapping is None or mapping.kind != "transactions":
        kind = "the canonical customer file" if mapping is None or mapping.kind == "canonical" else "a customer table"
        raise NotALogError(f"this version was trained on {kind}, which has no purchase dates; segments over time "
                             "need a transaction log (customer ID, date, amount per row)")
    return TransactionColumns(**{role: (mapping.role_of(role) or [None])[0]
                                 for role in ("customer_id", "date", "amount", "quantity", "order_id")})


@dataclass
class _History:
    """Per (customer, period) records, sorted by period, and each customer's first purchase day."""

    ids: np.ndarray
    first: np.ndarray
    customer: np.ndarray
    period: np.ndarray
    orders: np.ndarray
    amount: np.ndarray
    last: np.ndarray
    nonpos: np.ndarray
    quantity: np.ndarray | None
    latest: int
    first_day: int
    rows: int


_HOW = {"orders": np.add, "amount": np.add, "nonpos": np.add, "quantity": np.add, "last": np.maximum}


def _reduce(key: np.ndarray, cols: dict) -> tuple[np.ndarray, dict]:
    """One record per distinct ``key``: columns summed, the last purchase day its maximum (sorted by key)."""
    order = np.argsort(key, kind="stable")  # stable: amounts add up in file order
    k = key[order]
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1]))) if len(k) else np.zeros(0, np.int64)
    return k[starts], {c: _HOW[c].reduceat(v[order], starts) if len(k) else v[:0] for c, v in cols.items()}


def _reduce_parts(parts: list) -> tuple[np.ndarray, dict]:
    """:func:`_reduce` over reduced chunks, one column at a time, emptying ``parts`` as it goes (bounds memory)."""
    key = np.concatenate([p[0] for p in parts])
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1]))) if len(key) else np.zeros(0, np.int64)
    out = {}
    for c in list(parts[0][1]):
        column = np.concatenate([p[1].pop(c) for p in parts])[order]
        out[c] = _HOW[c].reduceat(column, starts) if len(key) else column
    parts.clear()
    return key[starts], out


def _first_of_orders(parts: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order hash, customer position, first day) per distinct order from per-chunk triples."""
    h = np.concatenate([p[0] for p in parts])
    pos = np.concatenate([p[1] for p in parts])
    day = np.concatenate([p[2] for p in parts])
    order = np.argsort(h, kind="stable")
    hs = h[order]
    starts = np.flatnonzero(np.concatenate(([True], hs[1:] != hs[:-1]))) if len(hs) else np.zeros(0, np.int64)
    return hs[starts], pos[order][starts], np.minimum.reduceat(day[order], starts) if len(hs) else day[:0]


class _Customers:
    """Customer IDs -> positions in order of first appearance (grows with the customers, never the rows)."""

    def __init__(self):
        self.index: pd.Index | None = None

    def positions(self, values: np.ndarray) -> np.ndarray:
        codes, uniq = pd.factorize(values)
        uniq = pd.Index(uniq)
        if self.index is None:
            self.index, pos = uniq, np.arange(len(uniq))
        else:
            pos = self.index.get_indexer(uniq)
            new = pos < 0
            if new.any():
                pos[new] = len(self.index) + np.arange(int(new.sum()))
                self.index = self.index.append(uniq[new])
        return pos[codes].astype(np.int64)


def _read(source, columns: TransactionColumns, bounds: np.ndarray, *, name: str, chunk_rows: int) -> _History:
    """One pass over the log: records per (customer, period), periods cut at ``bounds`` (days, inclusive).

    Each chunk is reduced to one record per (customer, period) key with numpy (sort + reduceat);
    the reduced chunks are re-reduced when they grow, so memory follows the records, not the rows.
    """
    sniffed = sniff(source, name)
    periods = len(bounds)
    customers = _Customers()
    parts: list = []
    orders: list = []
    kept = kept_orders = rows = 0
    # Re-reduce when the kept records double since the last time: amortised, never once per chunk.
    limit = limit_orders = _COMPACT_ROWS
    first = np.zeros(0, dtype=np.int64)
    latest, first_day = -np.inf, np.inf
    by_order = columns.order_id is not None
    for chunk in read_log(source, columns, sep=sniffed.sep, encoding=sniffed.encoding, name=name,
                          chunk_rows=chunk_rows):
        rows += chunk.rows
        f = chunk.frame
        if not len(f):
            continue
        day = f["day"].to_numpy()
        latest, first_day = max(latest, float(day.max())), min(first_day, float(day.min()))
        period = np.searchsorted(bounds, day, side="left")  # first snapshot on or after the purchase
        inside = period < periods
        if not inside.any():
            continue
        pos = customers.positions(f["id"].to_numpy()[inside])
        d = day[inside].astype(np.int64)
        if len(customers.index) > len(first):  # each customer's first purchase: one number per customer
            first = np.concatenate([first, np.full(len(customers.index) - len(first), np.iinfo(np.int64).max)])
        np.minimum.at(first, pos, d)
        key = pos * periods + period[inside]
        cols = {"orders": np.ones(len(key), dtype=np.int32), "amount": f["amount"].to_numpy()[inside],
                "last": d.astype(np.int32), "nonpos": f["nonpos"].to_numpy()[inside].astype(np.int32)}
        if "quantity" in f:
            cols["quantity"] = f["quantity"].to_numpy()[inside].astype(np.float64)
        parts.append(_reduce(key, cols))
        kept += len(parts[-1][0])
        if kept > limit and len(parts) > 1:
            parts = [_reduce_parts(parts)]
            kept = len(parts[0][0])
            limit = max(_COMPACT_ROWS, 2 * kept)
        if by_order:  # an order counts once, from its first row's date (hashes as aggregate's)
            h = pd.util.hash_pandas_object(f[["id", "order"]], index=False).to_numpy()[inside]
            orders.append(_first_of_orders([(h, pos, d.astype(np.int32))]))
            kept_orders += len(orders[-1][0])
            if kept_orders > limit_orders and len(orders) > 1:
                orders = [_first_of_orders(orders)]
                kept_orders = len(orders[0][0])
                limit_orders = max(_COMPACT_ROWS, 2 * kept_orders)
    if not parts:
        raise MigrationError(f"{name}: no purchase on or before {_text(int(bounds[-1]))} could be read")
    key, cols = _reduce_parts(parts) if len(parts) > 1 else parts[0]
    del parts
    if by_order:
        _, pos, day = _first_of_orders(orders)
        del orders
        okey, counts = np.unique(pos * periods + np.searchsorted(bounds, day, side="left"), return_counts=True)
        cols["orders"] = np.zeros(len(key), dtype=np.int32)
        cols["orders"][np.searchsorted(key, okey)] = counts  # every order's first row is a record of its key
    # Customers in ID order (as aggregate sorts them), records by period for the sweep.
    raw = np.asarray(customers.index)
    rank = np.empty(len(raw), dtype=np.int64)
    by_id = np.argsort(raw, kind="stable")
    rank[by_id] = np.arange(len(raw))
    customer, period = rank[key // periods], key % periods
    order = np.argsort(period, kind="stable")
    return _History(ids=raw[by_id], first=first[by_id], customer=customer[order], period=period[order],
                    orders=cols["orders"][order].astype(np.int64), amount=cols["amount"][order].astype(np.float64),
                    last=cols["last"][order].astype(np.int64), nonpos=cols["nonpos"][order].astype(np.int64),
                    quantity=cols["quantity"][order] if "quantity" in cols else None,
                    latest=int(latest), first_day=int(first_day), rows=rows)


def _signed_log(values) -> np.ndarray:
    # The same transform the mapping applies at training (sign(v) * log1p(|v|)).
    v = np.asarray(values, dtype=float)
    return np.sign(v) * np.log1p(np.abs(v))


def snapshot_features(ids, first, orders, amount, last, nonpos, quantity, day: int, transforms: dict,
                      features=None) -> pd.DataFrame:
    """The customer features of one snapshot from running per-customer state, as aggregate computes them.

    Parameters
    ----------
    ids : array-like
        Customers present (bought on or before ``day``).
    first, orders, amount, last, nonpos : numpy.ndarray
        Their first purchase day, orders, amount, last purchase day and zero-or-negative rows so far.
    quantity : numpy.ndarray or None
    day : int
        The snapshot date, in days since 1970-01-01.
    transforms : dict
        The mapping's log transforms (column -> "log1p"), applied as ``<column>_log``.
    features : list of str, optional
        The model's features: only the columns they need are computed (all of them when None).

    Returns
    -------
    pandas.DataFrame
        ``ID``, Recency, Frequency, Monetary, Tenure, Avg_order_value, Interpurchase_days,
        Returns_or_free (and Quantity), the canonical aliases and the ``_log`` columns.
    """
    freq = np.asarray(orders, dtype=np.int64)
    money = np.round(np.asarray(amount, dtype=np.float64), 6)
    cols = {"ID": ids, "Recency": (day - last).astype(np.float64), "Frequency": freq, "Monetary": money,
            "Tenure": (day - first).astype(np.float64)}
    wanted = None if features is None else {f.removesuffix(LOG_SUFFIX) for f in features} | set(cols)
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = {
            "Avg_order_value": lambda: np.round(np.where(freq > 0, money / np.where(freq > 0, freq, 1), np.nan), 6),
            "Interpurchase_days": lambda: np.round(np.where(freq > 1, (last - first) / np.maximum(freq - 1, 1),
                                                            np.nan), 6),
            "Returns_or_free": lambda: np.asarray(nonpos, dtype=np.int64),
        }
        for column, make in extra.items():
            if wanted is None or column in wanted:
                cols[column] = make()
    if quantity is not None and (wanted is None or "Quantity" in wanted):
        cols["Quantity"] = quantity
    cols["Total_Spending"], cols["Total_Purchases"], cols["Customer_since"] = money, freq, cols["Tenure"]
    for column in transforms:
        if column in cols and (features is None or f"{column}{LOG_SUFFIX}" in features):
            cols[f"{column}{LOG_SUFFIX}"] = _signed_log(cols[column])
    out = pd.DataFrame(cols)
    needed = set(features or [])
    if needed & {"R_score", "F_score", "M_score", f"R_score{LOG_SUFFIX}", f"F_score{LOG_SUFFIX}",
                 f"M_score{LOG_SUFFIX}"}:
        out = out.join(rfm_scores(out)[["R_score", "F_score", "M_score"]])
        for column in ("R_score", "F_score", "M_score"):
            if f"{column}{LOG_SUFFIX}" in needed:
                out[f"{column}{LOG_SUFFIX}"] = _signed_log(out[column])
    return out


def _sweep(history: _History, bounds: np.ndarray, transforms: dict, features: list, full=()) -> Iterator[tuple]:
    """(snapshot index, present positions, features frame) per snapshot, with running per-customer state."""
    n = len(history.ids)
    orders = np.zeros(n, dtype=np.int64)
    amount = np.zeros(n, dtype=np.float64)
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    nonpos = np.zeros(n, dtype=np.int64)
    quantity = np.zeros(n) if history.quantity is not None else None
    cuts = np.searchsorted(history.period, np.arange(len(bounds) + 1), side="left")
    present = np.zeros(n, dtype=bool)
    for s in range(len(bounds)):
        sl = slice(cuts[s], cuts[s + 1])
        c = history.customer[sl]  # one record per customer per period: plain fancy-index updates suffice
        orders[c] += history.orders[sl]
        amount[c] += history.amount[sl]
        last[c] = np.maximum(last[c], history.last[sl])
        nonpos[c] += history.nonpos[sl]
        if quantity is not None:
            quantity[c] += history.quantity[sl]
        present[c] = True
        pos = np.flatnonzero(present)
        frame = snapshot_features(history.ids[pos], history.first[pos], orders[pos], amount[pos], last[pos],
                                  nonpos[pos], None if quantity is None else quantity[pos], int(bounds[s]),
                                  transforms, None if s in full else features)
        yield s, pos, frame


_PREDICT_ROWS = 200_000


def _predict(model: SegmentationModel, frame: pd.DataFrame) -> np.ndarray:
    """Segments in blocks: predict's distances are customers x segments x features, too big at once at 1M."""
    out = np.zeros(len(frame), dtype=np.int16)
    for start in range(0, len(frame), _PREDICT_ROWS):
        out[start:start + _PREDICT_ROWS] = model.predict(frame.iloc[start:start + _PREDICT_ROWS])
    return out


def _check_features(model: SegmentationModel) -> None:
    odd = [f for f in model.features if f not in SUPPORTED_FEATURES]
    if odd:
        raise MigrationError(f"this version clusters on {', '.join(odd)}, which snapshots cannot recompute; "
                             f"segments over time follow Recency, Frequency, Monetary, Tenure and the like")


def _bounds(dates: list[str], open_end: bool) -> np.ndarray:
    days = np.array([_day(parse_date(d)) for d in dates], dtype=np.int64)
    if open_end:  # the last snapshot is the log's latest date, whatever the file holds now
        days[-1] = np.iinfo(np.int32).max
    return days


# ------------------------------------------------------------------------------------ migration
@dataclass
class Migration:
    """Snapshots of a log's customers scored with one version, and the flows between them.

    Parameters
    ----------
    dates : list of str
    snapshots : list of dict
        ``date``, ``customers``, ``sizes`` / ``shares`` / ``value`` / ``period_value`` per segment
        number (as text keys, for JSON), ``note`` when nobody had bought yet.
    transitions : list of dict
        ``from_date``, ``to_date``, ``from`` (segment number or ``"new"``), ``from_name``, ``to``,
        ``to_name``, ``customers``, ``share`` (of the ``from`` row).
    flows : list of dict
        Per period and segment: ``new``, ``in``, ``out``, ``net``.
    headlines : list of str
        The largest moves in plain words.
    names : list of str
    every : str or None
    notes : list of str
    features : dict
        Snapshot date -> features frame (with ``segment``) for the dates asked to be kept (movers).
    """

    dates: list
    snapshots: list
    transitions: list
    flows: list
    headlines: list
    names: list
    every: str | None = None
    notes: list = field(default_factory=list)
    rows: int = 0
    features: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready (without the kept features)."""
        return {"dates": list(self.dates), "every": self.every,
                "segments": [{"segment": i, "name": n} for i, n in enumerate(self.names)],
                "snapshots": self.snapshots, "transitions": self.transitions, "flows": self.flows,
                "headlines": self.headlines, "notes": self.notes, "rows": self.rows}


def _transitions(prev: np.ndarray, cur: np.ndarray, k: int) -> np.ndarray:
    """(k + 1) x k counts: rows are the previous segment (row k: new), columns the current one."""
    frm = np.where(prev < 0, k, prev)
    return np.bincount(frm * k + cur, minlength=(k + 1) * k).reshape(k + 1, k)


def _ratio_words(n: int, before: int, unit: str) -> str:
    if before <= 0:
        return f"none the {unit} before"
    r = n / before
    if 0.9 <= r <= 1.1:
        return f"about as many as the {unit} before"
    if 1.9 <= r <= 2.1:
        return f"twice the {unit} before"
    if 2.9 <= r <= 3.1:
        return f"three times the {unit} before"
    if r > 1:
        return f"{r:.1f} times the {unit} before ({before:,})" if r < 10 else f"{r:.0f} times the {unit} before ({before:,})"
    return f"down from {before:,} the {unit} before"


def _headlines(matrices: list, dates: list, names: list, every: str | None, limit: int = 5) -> list[str]:
    """The largest moves between segments in plain words, compared with the same move a period before."""
    unit = every or "period"
    found = []
    for t, m in enumerate(matrices):
        k = m.shape[1]
        for i in range(k):
            for j in range(k):
                if i != j and m[i, j] > 0:
                    found.append((int(m[i, j]), t, i, j))
    found.sort(key=lambda x: (-x[0], x[1], x[2], x[3]))
    out = []
    for n, t, i, j in found[:limit]:
        text = f"{n:,} customers went from {names[i]} to {names[j]} {period_label(dates[t], dates[t + 1], every)}"
        if t > 0:
            text += f", {_ratio_words(n, int(matrices[t - 1][i, j]), unit)}"
        out.append(text + ".")
    return out


def migration(source, mapping: Mapping, model: SegmentationModel, names: list, *, every: str = "month",
              start: str | None = None, end: str | None = None, dates=None, first_date: str | None = None,
              latest_date: str | None = None, keep=(), name: str = "log",
              chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Migration:
    """Snapshots of a version's transaction log and the migration between consecutive ones.

    Parameters
    ----------
    source : path-like or bytes
        The log the version was trained on.
    mapping : core.reading.mapping.Mapping
        The version's mapping (roles and log transforms).
    model : core.fitting.model.SegmentationModel
    names : list of str
        The version's segment names.
    every : {"month", "quarter"}
    start, end : str, optional
        ``yyyy-mm-dd`` range of snapshot dates (default: the whole log).
    dates : list of str, optional
        Snapshot dates instead of the series.
    first_date, latest_date : str, optional
        The log's first and latest purchase dates (the version's metadata has them); when not
        given, the log is read once more to find them.
    keep : iterable of str
        Snapshot dates whose customers' segments and features are kept (for movers).
    name : str
        Display name in messages.
    chunk_rows : int

    Returns
    -------
    Migration

    Raises
    ------
    MigrationError
        Not a log version, a date outside the log, features snapshots cannot recompute.
    core.reading.loading.DataFileError
        The log cannot be read.
    """
    columns = log_columns(mapping)
    _check_features(model)
    if first_date is None or latest_date is None:
        first_date, latest_date = _log_range(source, columns, name, chunk_rows)
    chosen = snapshot_dates(first_date, latest_date, every=every, start=start, end=end, dates=dates)
    open_end = dates is None and end is None
    bounds = _bounds(chosen, open_end)
    history = _read(source, columns, bounds, name=name, chunk_rows=chunk_rows)
    notes = []
    if open_end:
        actual = _text(history.latest)
        if actual != chosen[-1]:
            notes.append(f"the log now ends on {actual} (the version's ended on {chosen[-1]}); the last snapshot "
                         "is the log's latest date")
            chosen[-1] = actual
        bounds[-1] = history.latest
    k = int(model.k)
    keep = {str(d) for d in keep}
    snaps, transitions, flows, matrices = [], [], [], []
    prev = None
    kept: dict = {}
    full = {i for i, d in enumerate(chosen) if d in keep}
    for s, pos, frame in _sweep(history, bounds, dict(mapping.transforms), list(model.features), full):
        date = chosen[s]
        labels = _predict(model, frame)
        sizes = np.bincount(labels, minlength=k)
        value = np.bincount(labels, weights=frame["Monetary"].to_numpy(), minlength=k) if len(frame) else np.zeros(k)
        # Spend in the period just ended, by the segment the customer is in at its end.
        per_amount = np.zeros(len(history.ids))
        sl = slice(*np.searchsorted(history.period, [s, s + 1], side="left"))
        np.add.at(per_amount, history.customer[sl], history.amount[sl])
        period_value = np.bincount(labels, weights=per_amount[pos], minlength=k) if len(frame) else np.zeros(k)
        total = int(len(frame))
        snap = {"date": date, "customers": total,
                "sizes": {str(i): int(sizes[i]) for i in range(k)},
                "shares": {str(i): round(float(sizes[i]) / total, 6) if total else 0.0 for i in range(k)},
                "value": {str(i): round(float(value[i]), 2) for i in range(k)},
                "period_value": {str(i): round(float(period_value[i]), 2) for i in range(k)}}
        if not total:
            snap["note"] = f"nobody had bought by {date}"
            notes.append(f"{date}: nobody had bought yet; the snapshot is empty")
        snaps.append(snap)
        current = np.full(len(history.ids), -1, dtype=np.int16)
        current[pos] = labels
        if prev is not None:
            m = _transitions(prev[pos], labels.astype(np.int64), k)
            matrices.append(m)
            rows_total = m.sum(axis=1)
            for i in range(k + 1):
                for j in range(k):
                    if m[i, j]:
                        transitions.append({
                            "from_date": chosen[s - 1], "to_date": date, "from": NEW if i == k else i,
                            "from_name": NEW if i == k else names[i], "to": j, "to_name": names[j],
                            "customers": int(m[i, j]), "share": round(float(m[i, j] / rows_total[i]), 6)})
            for j in range(k):
                inflow = int(m[:, j].sum() - m[j, j])
                outflow = int(m[j, :].sum() - m[j, j])
                flows.append({"from_date": chosen[s - 1], "to_date": date, "segment": j, "name": names[j],
                              "new": int(m[k, j]), "in": inflow, "out": outflow, "net": inflow - outflow})
        if date in keep:
            kept[date] = frame.assign(segment=labels.astype(np.int64))
        prev = current
    return Migration(dates=chosen, snapshots=snaps, transitions=transitions, flows=flows,
                     headlines=_headlines(matrices, chosen, names, every if dates is None else None),
                     names=list(names), every=every if dates is None else None, notes=notes, rows=history.rows,
                     features=kept)


def _log_range(source, columns: TransactionColumns, name: str, chunk_rows: int) -> tuple[str, str]:
    """First and latest purchase dates of a log (one extra read, for versions without them in metadata)."""
    sniffed = sniff(source, name)
    lo, hi = np.inf, -np.inf
    for chunk in read_log(source, columns, sep=sniffed.sep, encoding=sniffed.encoding, name=name,
                          chunk_rows=chunk_rows):
        if len(chunk.frame):
            lo, hi = min(lo, chunk.frame["day"].min()), max(hi, chunk.frame["day"].max())
    if not np.isfinite(lo):
        raise MigrationError(f"{name}: no purchase could be read")
    return _text(int(lo)), _text(int(hi))


# ------------------------------------------------------------------------------------ movers
def parse_segment_pair(text: str, names: list) -> tuple[int | str | None, int | None]:
    """``FROM:TO`` (segment numbers, names, ``new`` or ``*`` / empty for any) checked against the names.

    Parameters
    ----------
    text : str
    names : list of str

    Returns
    -------
    (int, "new" or None), (int or None)

    Raises
    ------
    MigrationError
    """
    parts = str(text).split(":")
    if len(parts) != 2:
        raise MigrationError(f"movers: expected FROM:TO such as 1:3 or new:0 (a side may be * for any), "
                             f"got {str(text)[:40]!r}")

    def one(part: str, side: str):
        p = part.strip()
        if p in ("", "*", "any"):
            return None
        if side == "from" and p.lower() == NEW:
            return NEW
        if p.lstrip("-").isdigit():
            i = int(p)
            if 0 <= i < len(names):
                return i
            raise MigrationError(f"movers: {side} segment {i} does not exist (0 to {len(names) - 1})")
        lowered = [n.lower() for n in names]
        if p.lower() in lowered:
            return lowered.index(p.lower())
        raise MigrationError(f"movers: {side} segment {p[:40]!r} is neither a number (0 to {len(names) - 1}) "
                             "nor a segment name")
    return one(parts[0], "from"), one(parts[1], "to")


_MOVER_FEATURES = ["Recency", "Frequency", "Monetary", "Tenure"]


def movers(result: Migration, from_date: str, to_date: str, *, from_segment=None, to_segment=None,
           changed_only: bool = True) -> pd.DataFrame:
    """Customers who moved between two kept snapshots, with their features before and after.

    Parameters
    ----------
    result : Migration
        Computed with ``keep=[from_date, to_date]``.
    from_date, to_date : str
    from_segment : int or "new", optional
        Segment at ``from_date`` (``"new"``: had not bought yet).
    to_segment : int, optional
    changed_only : bool, default True
        Only customers whose segment changed (unless both segments are given).

    Returns
    -------
    pandas.DataFrame
        ``ID``, ``from_segment`` (-1 for new), ``from_name``, ``to_segment``, ``to_name`` and
        ``<feature>_before`` / ``<feature>_after`` for Recency, Frequency, Monetary, Tenure.
    """
    for d in (from_date, to_date):
        if d not in result.features:
            raise MigrationError(f"movers: {d} is not a computed snapshot date")
    if parse_date(from_date) >= parse_date(to_date):
        raise MigrationError(f"movers: from date {from_date} must be before to date {to_date}")
    before = result.features[from_date].set_index("ID")
    after = result.features[to_date].set_index("ID")
    names = result.names
    frame = pd.DataFrame({"ID": after.index.to_numpy(), "to_segment": after["segment"].to_numpy()})
    frame["from_segment"] = before["segment"].reindex(after.index).fillna(-1).astype(np.int64).to_numpy()
    mask = np.ones(len(frame), dtype=bool)
    if from_segment is not None:
        mask &= frame["from_segment"].to_numpy() == (-1 if from_segment == NEW else int(from_segment))
    if to_segment is not None:
        mask &= frame["to_segment"].to_numpy() == int(to_segment)
    if changed_only and (from_segment is None or to_segment is None):
        mask &= frame["from_segment"].to_numpy() != frame["to_segment"].to_numpy()
    frame = frame[mask]
    out = pd.DataFrame({"ID": frame["ID"].to_numpy(), "from_segment": frame["from_segment"].to_numpy(),
                        "from_name": [NEW if s < 0 else names[s] for s in frame["from_segment"]],
                        "to_segment": frame["to_segment"].to_numpy(),
                        "to_name": [names[s] for s in frame["to_segment"]]})
    for f in _MOVER_FEATURES:
        out[f"{f}_before"] = before[f].reindex(frame["ID"]).to_numpy()
        out[f"{f}_after"] = after[f].reindex(frame["ID"]).to_numpy()
    return out.sort_values("ID", kind="stable").reset_index(drop=True)


def movers_csv(frame: pd.DataFrame) -> str:
    """Movers as spreadsheet-safe CSV (no cell can run as a formula)."""
    return to_safe_csv(frame)


def movers_audience(frame: pd.DataFrame, *, holdout: float = 0.1, seed: int = 42) -> pd.DataFrame:
    """Movers as a campaign audience (``core.campaigns.campaign.AUDIENCE_COLUMNS``), with a seeded holdout.

    ``segment`` is the segment the customer moved to; ``propensity`` is 0: no response model
    scored them (a log has no campaign responses), the move chose them. Measure the campaign with ``python -m core campaign
    results`` as for a planned audience.

    Parameters
    ----------
    frame : pandas.DataFrame
        From :func:`movers`.
    holdout : float, default 0.1
        Share kept as an uncontacted control group, stratified by segment.
    seed : int, default 42

    Returns
    -------
    pandas.DataFrame
    """
    if not 0 <= holdout <= 0.5:
        raise MigrationError(f"holdout: expected a share between 0 and 0.5, got {holdout}")
    seg = frame["to_segment"].to_numpy(dtype=np.int64)
    hold = assign_holdout(seg, holdout, seed)
    out = pd.DataFrame({"ID": frame["ID"].to_numpy(), "segment": seg,
                        "group": np.where(hold, "holdout", "target"), "propensity": 0.0})
    return out[AUDIENCE_COLUMNS]


# ------------------------------------------------------------------------------------ versions
def _names(meta: dict, k: int) -> list[str]:
    names = [str(n) for n in list(meta.get("segment_names") or [])[:k]]
    return names + [f"Segment {i}" for i in range(len(names), k)]


def _file_state(path) -> dict:
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "bytes": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def version_log(registry, version: str | None = None, source=None) -> dict:
    """What migration needs of a version: model, names, mapping, the log and its date range.

    Parameters
    ----------
    registry : core.versions.registry.Registry
    version : str, optional
        Default: the active version.
    source : path-like, optional
        The log to follow (default: the file the version was trained on).

    Returns
    -------
    dict
        ``version``, ``model``, ``meta``, ``names``, ``mapping``, ``path``, ``name``, ``own``
        (the version's own log), ``first_date`` / ``latest_date`` (None when not known).

    Raises
    ------
    MigrationError
        No model, a version not trained on a log, or its log is gone.
    """
    version = version or registry.active_version()
    if version is None:
        raise MigrationError(f"no model in {registry.root}; train one on an order log first "
                             "(`python -m core train --data LOG`)")
    model, meta = registry.load(version)
    saved = registry.artifact_json(version, "mapping")
    mapping = Mapping.from_dict(saved, where=f"{version} mapping") if saved else None
    log_columns(mapping)  # refuses a customer table with its message
    trained_on = meta.get("data_path")
    if source is None:
        if not trained_on:
            raise MigrationError(f"the log of version {version} was an upload that was not kept; give the log "
                                 "with --data")
        if not Path(trained_on).is_file():
            raise MigrationError(f"the log of version {version} is gone ({trained_on}); give it with --data")
        source = trained_on
    if not Path(source).is_file():
        raise MigrationError(f"data: no file {source}")
    own = bool(trained_on) and Path(source).resolve() == Path(trained_on).resolve()
    summary = meta.get("transactions") or {}
    return {"version": meta.get("version", version), "model": model, "meta": meta,
            "names": _names(meta, int(model.k)), "mapping": mapping, "path": str(source),
            "name": meta.get("data_source") if own and meta.get("data_source") else Path(source).name, "own": own,
            "first_date": summary.get("first_date") if own else None,
            "latest_date": summary.get("latest_date") if own else None}


def run_for_version(log: dict, **kwargs) -> Migration:
    """:func:`migration` on what :func:`version_log` returned (``kwargs``: every, start, end, dates, keep)."""
    return migration(log["path"], log["mapping"], log["model"], log["names"], first_date=log["first_date"],
                     latest_date=log["latest_date"], name=log["name"], **kwargs)


def stored(registry, log: dict, every: str) -> dict | None:
    """The version's stored migration for ``every`` when it describes the log as it is now (else None).

    Parameters
    ----------
    registry : core.versions.registry.Registry
    log : dict
        From :func:`version_log`.
    every : str

    Returns
    -------
    dict or None
        :meth:`Migration.to_dict` as stored (the current segment names applied).
    """
    saved = registry.artifact_json(log["version"], "migration") or {}
    run = (saved.get("runs") or {}).get(every)
    if not run or saved.get("source") != _file_state(log["path"]):
        return None
    return rename(run, log["names"])


def rename(run: dict, names: list) -> dict:
    """A stored migration with the version's current segment names (a segment renamed after it was stored)."""
    def name(i):
        return NEW if i == NEW else names[int(i)] if int(i) < len(names) else f"Segment {i}"
    out = dict(run)
    out["segments"] = [{"segment": s["segment"], "name": name(s["segment"])} for s in run.get("segments", [])]
    out["transitions"] = [{**t, "from_name": name(t["from"]), "to_name": name(t["to"])} for t in run["transitions"]]
    out["flows"] = [{**f, "name": name(f["segment"])} for f in run["flows"]]
    return out


def store(registry, log: dict, every: str, result: Migration) -> dict:
    """Keep a whole-log migration with the version (its ``migration`` artifact) so pages open at once.

    Parameters
    ----------
    registry : core.versions.registry.Registry
    log : dict
        From :func:`version_log`.
    every : str
    result : Migration
        Computed over the whole log (no from/to, no given dates).

    Returns
    -------
    dict
        The stored run.
    """
    import json

    state = _file_state(log["path"])
    saved = registry.artifact_json(log["version"], "migration") or {}
    runs = dict(saved.get("runs") or {}) if saved.get("source") == state else {}
    runs[every] = result.to_dict()
    blob = json.dumps({"source": state, "runs": runs}, separators=(",", ":")).encode()
    registry.put_artifact(log["version"], "migration", blob)
    return runs[every]


def transition_table(run: dict, from_date: str, to_date: str) -> pd.DataFrame:
    """The transition matrix of one period of a migration (``Migration.to_dict``) as a table.

    Parameters
    ----------
    run : dict
    from_date, to_date : str
        Consecutive snapshot dates of ``run``.

    Returns
    -------
    pandas.DataFrame
        One row per segment at ``from_date``, then ``new`` and ``total``; one column per segment at
        ``to_date`` and ``total``: customers.
    """
    segments = [s["segment"] for s in run["segments"]]
    rows = [*segments, NEW]
    table = pd.DataFrame(0, index=pd.Index(rows, dtype=object, name="from"), columns=segments, dtype=np.int64)
    for t in run["transitions"]:
        if t["from_date"] == from_date and t["to_date"] == to_date:
            table.loc[t["from"], t["to"]] = int(t["customers"])
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    return table
