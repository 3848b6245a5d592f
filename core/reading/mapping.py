"""Column mappings: which column of a user's file plays which role, suggested, checked and saved.

Three kinds of input are recognised without options (:func:`detect_kind`):

``canonical``
    the public 29-column customer file (everything else in ``core`` was built on it);
    it goes through :func:`core.versions.pipeline.prepare` exactly as before.
``customers``
    any customer table, one row per customer: columns are mapped to the roles of
    :data:`CUSTOMER_ROLES` (ID, age or birth year, income, spend per category, purchases
    per channel, web visits, recency, enrolment date, campaign responses, any other
    numeric column as a custom feature).
``transactions``
    a transaction log, several rows per customer with a date and an amount
    (:data:`TRANSACTION_ROLES`); it is aggregated to customers by :mod:`core.reading.transactions`.

A :class:`Mapping` is suggested from the columns' names, types and values
(:func:`suggest`), shown to the user to confirm or change, checked (:func:`validate`:
a message names the column and what was expected) and saved with the model version
as its ``mapping`` artifact (JSON, see docs/model-versions.md). :func:`prepare_input`
turns any input into the :class:`core.versions.pipeline.Prepared` every other step uses, and
:func:`core.versions.pipeline.make_version` trains and registers a model on it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.reading import schema

__all__ = [
    "KINDS", "CUSTOMER_ROLES", "TRANSACTION_ROLES", "SINGLE_ROLES", "Mapping", "Sniffed", "sniff", "read_head",
    "detect_kind", "suggest", "validate", "prepare_input", "default_features", "parse_features",
    "feature_ranges", "input_summary", "rfm_names", "accepted_range", "accepted_fields", "mapped_request",
    "mapped_schema", "LOG_SUFFIX", "roles_for", "user_columns",
]

KINDS = ("canonical", "customers", "transactions")
LOG_SUFFIX = "_log"
SCHEMA_VERSION = 1

# role -> what the column should hold (shown in menus and messages).
CUSTOMER_ROLES: dict[str, str] = {
    "id": "customer ID (one per row)",
    "age": "age in years, such as 45",
    "birth_year": "year of birth, such as 1975",
    "income": "yearly income, such as 58138",
    "spend": "spend on one product category, such as 635",
    "purchases": "number of purchases in one channel, such as 8",
    "web_visits": "web visits per month, such as 4",
    "recency": "days since the last purchase, such as 58",
    "enrolment_date": "date the customer joined, such as 2014-06-29",
    "campaign": "campaign response, 0 or 1",
    "feature": "any other number (custom feature)",
    "category": "text with a few distinct values, such as a region (a categorical feature for k-prototypes)",
    "ignore": "not used",
}
TRANSACTION_ROLES: dict[str, str] = {
    "customer_id": "customer ID (repeats on each of a customer's rows)",
    "date": "purchase date, such as 19970101 or 1997-01-01",
    "amount": "amount paid, such as 29.33 (zero or negative for returns)",
    "quantity": "quantity bought, such as 2",
    "order_id": "order ID (rows of one order share it)",
    "category": "product category (text)",
    "channel": "sales channel (text)",
    "ignore": "not used",
}
SINGLE_ROLES = {"id", "age", "birth_year", "income", "web_visits", "recency", "enrolment_date",
                "customer_id", "date", "amount", "quantity", "order_id", "category", "channel"}
_REQUIRED = {"customers": ("id",), "transactions": ("customer_id", "date", "amount")}
_NUMERIC_ROLES = {"age", "birth_year", "income", "spend", "purchases", "web_visits", "recency", "campaign",
                  "feature", "amount", "quantity"}
# Frame column of each single customer role (canonical names, so profiles and personas use them).
_ROLE_COLUMN = {"id": "ID", "age": "Age", "birth_year": "Year_Birth", "income": "Income",
                "web_visits": "NumWebVisitsMonth", "recency": "Recency", "enrolment_date": "Dt_Customer"}
_DEFAULT_YEAR = 2026
# Skewness above which a money column is clustered on its log, when the log is less skewed.
_SKEW = 1.0


def roles_for(kind: str) -> dict[str, str]:
    """The roles of a kind of input (role -> what the column should hold).

    Parameters
    ----------
    kind : str
        ``"customers"`` or ``"transactions"``.

    Returns
    -------
    dict
    """
    return TRANSACTION_ROLES if kind == "transactions" else CUSTOMER_ROLES


@dataclass
class Mapping:
    """How a file's columns become customers and model features.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    columns : dict of str to str
        File column -> role (every column of the file; ``"ignore"`` for unused ones).
    features : list of str, optional
        Model features (frame columns); None until chosen (then :func:`default_features`).
    transforms : dict of str to str
        Frame column -> ``"log1p"`` when the model clusters on ``<column>_log``.
    ranges : dict of str to list
        Feature -> [observed min, observed max] (set at training).
    notes : list of str
        Why each suggestion was made or what could not be mapped (for people).
    """

    kind: str
    columns: dict = field(default_factory=dict)
    features: list | None = None
    transforms: dict = field(default_factory=dict)
    ranges: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON form saved as the ``mapping`` artifact (docs/model-versions.md).

        Returns
        -------
        dict
        """
        return {"schema": SCHEMA_VERSION, "input": self.kind, "columns": dict(self.columns),
                "features": list(self.features) if self.features is not None else None,
                "transforms": dict(self.transforms),
                "ranges": {k: [float(a), float(b)] for k, (a, b) in self.ranges.items()}}

    def to_json(self) -> bytes:
        """UTF-8 JSON bytes of :meth:`to_dict`.

        Returns
        -------
        bytes
        """
        return json.dumps(self.to_dict(), indent=2, sort_keys=False).encode("utf-8")

    def role_of(self, role: str) -> list[str]:
        """File columns mapped to ``role``, in file order.

        Parameters
        ----------
        role : str

        Returns
        -------
        list of str
        """
        return [c for c, r in self.columns.items() if r == role]

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "mapping") -> "Mapping":
        """Read and check a mapping (as saved, or written by hand for ``--map``).

        Parameters
        ----------
        data : dict
        where : str
            Name for messages (e.g. the file).

        Returns
        -------
        Mapping

        Raises
        ------
        ValueError
            Not a mapping: the message names the key and what was expected.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object with \"input\" and \"columns\"")
        kind = data.get("input", "customers")
        if kind not in KINDS:
            raise ValueError(f"{where}: \"input\" is {kind!r}; expected one of {', '.join(KINDS)}")
        columns = data.get("columns") or {}
        if not isinstance(columns, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in columns.items()):
            raise ValueError(f"{where}: \"columns\" must map column names to roles, e.g. "
                             "{\"cust\": \"customer_id\"}")
        if kind != "canonical":
            roles = roles_for(kind)
            for column, role in columns.items():
                if role not in roles:
                    raise ValueError(f"{where}: column {column!r} has role {role!r}; a {kind} file's roles are "
                                     f"{', '.join(roles)}")
        features = data.get("features")
        if features is not None and (not isinstance(features, list) or not all(isinstance(f, str) for f in features)):
            raise ValueError(f"{where}: \"features\" must be a list of column names")
        transforms = data.get("transforms") or {}
        if not isinstance(transforms, dict) or any(v != "log1p" for v in transforms.values()):
            raise ValueError(f"{where}: \"transforms\" maps a column to \"log1p\"")
        ranges = data.get("ranges") or {}
        try:
            ranges = {str(k): (float(v[0]), float(v[1])) for k, v in ranges.items()}
        except (TypeError, ValueError, IndexError, AttributeError):
            raise ValueError(f"{where}: \"ranges\" maps a feature to [min, max]") from None
        return cls(kind, dict(columns), list(features) if features is not None else None, dict(transforms), ranges)

    @classmethod
    def from_json(cls, text: bytes | str, *, where: str = "mapping") -> "Mapping":
        """Parse :meth:`to_json` output or a hand-written ``--map`` file.

        Parameters
        ----------
        text : bytes or str
        where : str

        Returns
        -------
        Mapping

        Raises
        ------
        ValueError
        """
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{where}: not valid JSON ({err})") from None
        return cls.from_dict(data, where=where)


# ------------------------------------------------------------------------------------ sniffing
@dataclass
class Sniffed:
    """What the first part of a file says: delimiter, encoding and headers.

    Parameters
    ----------
    sep : str
        ``"\\t"``, ``","``, ``";"`` or ``r"\\s+"`` (whitespace-separated).
    encoding : str
    headers : list of str
    name : str
    """

    sep: str
    encoding: str
    headers: list
    name: str


_HEAD_BYTES = 1 << 20


def _head_bytes(source: Any) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            return fh.read(_HEAD_BYTES)
    return bytes(source[:_HEAD_BYTES])


def sniff(source: Any, name: str = "file") -> Sniffed:
    """Find the delimiter (tab, comma, semicolon or whitespace), encoding and headers of a file.

    Parameters
    ----------
    source : path-like or bytes
    name : str
        Display name for messages.

    Returns
    -------
    Sniffed

    Raises
    ------
    core.reading.loading.DataFileError
        Binary or empty content.
    """
    from core.reading.parsing import DataFileError, decode, split_header

    head = _head_bytes(source).rstrip(b"\x1a")
    if not head.strip():
        raise DataFileError(f"{name} is empty: expected a header line and rows")
    cut = head.rfind(b"\n")
    text, encoding, _bom = decode(head[:cut] if 0 < cut < len(head) - 1 and len(head) == _HEAD_BYTES else head, name)
    lines = [ln for ln in re.split(r"\r\n|\r|\n", text) if ln.strip(" \t\ufeff")]
    if not lines:
        raise DataFileError(f"{name} is empty: expected a header line and rows")
    header = lines[0].replace("\ufeff", "")
    best = None
    for rank, sep in enumerate(("\t", ",", ";")):
        fields = split_header(header, sep)
        counts = [len(split_header(ln, sep)) for ln in lines[1:50]]
        consistent = bool(counts) and all(c == len(fields) for c in counts)
        score = (len(fields) > 1 and consistent, len(fields), -rank)
        if best is None or score > best[0]:
            best = (score, sep, fields)
    sep, fields = best[1], best[2]
    if not best[0][0] or len(fields) == 1:
        words = header.split()
        counts = [len(ln.split()) for ln in lines[1:50]]
        if len(words) > 1 and counts and all(c == len(words) for c in counts):
            sep, fields = r"\s+", words
    return Sniffed(sep, encoding, [f.strip() for f in fields], name)


def read_head(source: Any, sniffed: Sniffed, rows: int = 2000) -> pd.DataFrame:
    """The first rows of a file, every cell as text (for suggestions and checks).

    Parameters
    ----------
    source : path-like or bytes
    sniffed : Sniffed
    rows : int, default 2000

    Returns
    -------
    pandas.DataFrame
    """
    from core.reading.loading import DataFileError

    handle = source if isinstance(source, (str, os.PathLike)) else io.BytesIO(bytes(source))
    try:
        frame = pd.read_csv(handle, sep=sniffed.sep, dtype=str, nrows=rows, encoding=sniffed.encoding,
                            keep_default_na=False, skip_blank_lines=True, engine="c")
    except (ValueError, pd.errors.ParserError) as err:
        raise DataFileError(f"{sniffed.name}: could not be read as a table ({str(err).splitlines()[0][:120]})") \
            from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


# ------------------------------------------------------------------------------------ suggestion
def _norm(name: str) -> str:
    return schema.normalise_header(name)


def _numeric_share(values: pd.Series) -> float:
    text = values.astype(str).str.strip()
    text = text[text != ""]
    if not len(text):
        return 0.0
    plain = text.str.replace(r"^[$€£]|[,\s]", "", regex=True)
    return float(pd.to_numeric(plain, errors="coerce").notna().mean())


def _date_share(values: pd.Series) -> float:
    from core.reading.transactions import choose_date_format

    text = values.astype(str).str.strip()
    text = text[text != ""]
    if not len(text):
        return 0.0
    fmt, share = choose_date_format(text)
    if fmt in ("%Y%m%d", "%y%m%d"):
        # Eight digits are a date only when they look like one (not an ID such as 10000001).
        nums = pd.to_numeric(text, errors="coerce")
        if fmt == "%y%m%d" or not bool(nums.between(19000101, 21001231).mean() > 0.95):
            return 0.0
    return share


def _is_flag(values: pd.Series) -> bool:
    text = values.astype(str).str.strip().str.lower()
    text = text[text != ""]
    return bool(len(text)) and bool(text.isin(["0", "1", "0.0", "1.0", "true", "false", "yes", "no"]).all())


_ID_NAMES = {"id", "customerid", "custid", "customer", "clientid", "client", "memberid", "userid", "accountid",
             "customerno", "customernumber", "custno", "cid", "shopperid", "buyerid", "householdid"}


def _has(n: str, *words: str) -> bool:
    return any(w in n for w in words)


def _customer_role(column: str, values: pd.Series, numeric: bool, date: bool) -> str:
    n = _norm(column)
    canon = schema.canonical_name(column)
    if canon == "ID" or n in _ID_NAMES or re.search(r"(?:^|[_\s.-])id$|[a-z]ID$", str(column).strip(), re.I if
                                                        "_" in str(column) else 0):
        return "id"
    if canon in schema.SPEND_COLUMNS:
        return "spend"
    if canon in schema.PURCHASE_COLUMNS:
        return "purchases"
    if canon in schema.CAMPAIGN_COLUMNS:
        return "campaign"
    if canon in _ROLE_COLUMN.values():
        return {v: k for k, v in _ROLE_COLUMN.items()}[canon]
    if date and _has(n, "date", "joined", "since", "signup", "enrol", "enroll", "registered", "created", "dt", "first"):
        return "enrolment_date"
    if not numeric:
        return "enrolment_date" if date else "ignore"
    if _has(n, "birth", "yob", "born"):
        return "birth_year"
    if n == "age" or n.startswith("age"):
        return "age"
    if _has(n, "income", "salary", "earning", "wage"):
        return "income"
    if _is_flag(values) and _has(n, "accept", "response", "respond", "cmp", "campaign", "offer", "promo"):
        return "campaign"
    if _has(n, "recency", "dayssince", "lastpurchase", "lastorder", "daysago"):
        return "recency"
    if _has(n, "visit", "session"):
        return "web_visits"
    if _has(n, "purchase", "orders", "numorder", "transactions", "buys", "deals"):
        return "purchases"
    if n.startswith("mnt") or _has(n, "spend", "spent", "amount", "sales", "revenue", "expenditure"):
        return "spend"
    if _is_flag(values):
        return "ignore"
    return "feature"


def _transaction_role(column: str, values: pd.Series, numeric: bool, date: bool, taken: set) -> str:
    n = _norm(column)
    if "customer_id" not in taken and (n in _ID_NAMES or _has(n, "customer", "client", "member", "user", "shopper")):
        return "customer_id"
    if "date" not in taken and date:  # before order IDs: "order_date" is a date
        return "date"
    if "order_id" not in taken and _has(n, "order", "invoice", "receipt", "transaction", "basket", "ticket"):
        return "order_id"
    if numeric and "amount" not in taken and _has(n, "amount", "value", "revenue", "sales", "total", "spend", "dollar",
                                                  "paid", "price", "net", "gross", "sum", "euro", "pound"):
        return "amount"
    if numeric and "quantity" not in taken and _has(n, "qty", "quantity", "units", "items", "number", "count", "cds",
                                                    "pieces"):
        return "quantity"
    if not numeric and "category" not in taken and _has(n, "category", "product", "department", "genre", "type",
                                                        "class", "group", "family", "sku"):
        return "category"
    if not numeric and "channel" not in taken and _has(n, "channel", "source", "store", "medium", "platform", "shop",
                                                       "device"):
        return "channel"
    return "ignore"


def detect_kind(headers: list, head: pd.DataFrame) -> str:
    """Which kind of input a file is: canonical, a customer table or a transaction log.

    Parameters
    ----------
    headers : list of str
    head : pandas.DataFrame
        The first rows, as text.

    Returns
    -------
    str
        ``"canonical"`` when every required canonical column is recognised or every column has a
        canonical name; ``"transactions"``
        when a customer-ID-like column repeats and a date and a numeric amount column exist;
        otherwise ``"customers"``.
    """
    recognised = [schema.canonical_name(h) for h in headers]
    if all(c in recognised for c in schema.REQUIRED_COLUMNS) or (headers and None not in recognised):
        # Every column named as in the canonical file: read as that file, so a file that lacks some of
        # its columns gets the loader's "missing required column(s)" (``--input customers`` maps it instead).
        return "canonical"
    guess = _suggest_transactions(head)
    ids = guess.role_of("customer_id")
    if ids and guess.role_of("date") and guess.role_of("amount"):
        values = head[ids[0]].astype(str).str.strip()
        if len(values) > 1 and values.nunique() < len(values):
            return "transactions"
    return "customers"


def _profile(head: pd.DataFrame) -> dict:
    out = {}
    for column in head.columns:
        values = head[column]
        numeric = _numeric_share(values) >= 0.9
        date = _date_share(values) >= 0.9 if not numeric or values.astype(str).str.len().median() == 8 else False
        if date:
            numeric = False
        out[column] = (numeric, date)
    return out


def _suggest_transactions(head: pd.DataFrame) -> Mapping:
    prof = _profile(head)
    columns, taken, notes = {}, set(), []
    for column in head.columns:
        numeric, date = prof[column]
        role = _transaction_role(column, head[column], numeric, date, taken)
        if role != "ignore":
            taken.add(role)
        columns[column] = role
    if "customer_id" not in taken:
        # The first column whose values repeat is the likeliest customer ID.
        for column in head.columns:
            if columns[column] == "ignore" and not prof[column][1] and head[column].nunique() < len(head):
                columns[column] = "customer_id"
                taken.add("customer_id")
                notes.append(f"{column}: taken as the customer ID (values repeat across rows)")
                break
    if "amount" not in taken:
        for column in reversed(list(head.columns)):
            if columns[column] in ("ignore", "quantity") and prof[column][0] and not _is_flag(head[column]):
                if columns[column] == "quantity":
                    taken.discard("quantity")
                columns[column] = "amount"
                taken.add("amount")
                notes.append(f"{column}: taken as the amount (the last numeric column)")
                break
    return Mapping("transactions", columns, notes=notes)


def _suggest_customers(head: pd.DataFrame) -> Mapping:
    prof = _profile(head)
    columns, notes, used = {}, [], set()
    for column in head.columns:
        numeric, date = prof[column]
        role = _customer_role(column, head[column], numeric, date)
        if role in SINGLE_ROLES and role in used:
            notes.append(f"{column}: looks like {role.replace('_', ' ')} too, but another column already has that role;"
                         " kept as a custom feature" if numeric else f"{column}: not used")
            role = "feature" if numeric else "ignore"
        if role == "id" and not (head[column].astype(str).str.strip().nunique() == len(head)):
            notes.append(f"{column}: looks like an ID but its values repeat; a customer table has one row per "
                         "customer (is it a transaction log?)")
        used.add(role)
        columns[column] = role
    if "id" not in used:
        for column in head.columns:
            values = head[column].astype(str).str.strip()
            if columns[column] in ("feature", "ignore") and values.nunique() == len(values) and values.ne("").all():
                columns[column] = "id"
                notes.append(f"{column}: taken as the customer ID (every value is different)")
                break
    from core.algorithms.categorical import suggest_categorical

    for column in suggest_categorical(head[[c for c, role in columns.items() if role == "ignore"]]):
        columns[column] = "category"
        notes.append(f"{column}: text with few distinct values, kept as a categorical feature "
                     "(clustered by --algorithm kprototypes)")
    for column, role in columns.items():
        if role == "ignore" and not prof[column][0]:
            notes.append(f"{column}: text, not used (segments are built on numbers)")
    return Mapping("customers", columns, notes=notes)


def suggest(head: pd.DataFrame, kind: str | None = None) -> Mapping:
    """Suggest a mapping from the columns' names, types and values.

    Parameters
    ----------
    head : pandas.DataFrame
        The first rows of the file, as text (:func:`read_head`).
    kind : str, optional
        Force a kind (``--input``); detected when None.

    Returns
    -------
    Mapping
        ``features`` left None (chosen from what the data has at preparation).
    """
    kind = kind or detect_kind(list(head.columns), head)
    if kind == "canonical":
        return Mapping("canonical", {c: (schema.canonical_name(c) or "ignore") for c in head.columns})
    return _suggest_transactions(head) if kind == "transactions" else _suggest_customers(head)


def validate(mapping: Mapping, head: pd.DataFrame, name: str = "file") -> None:
    """Check a mapping against the file; raise with every problem named.

    Parameters
    ----------
    mapping : Mapping
    head : pandas.DataFrame
        The first rows, as text.
    name : str

    Raises
    ------
    core.reading.loading.DataFileError
        One line: each column that cannot play its role (and what was expected) or each role
        a kind of input needs that no column plays.
    """
    from core.reading.loading import DataFileError

    if mapping.kind == "canonical":
        return
    roles = roles_for(mapping.kind)
    problems = []
    unknown = [c for c in mapping.columns if c not in head.columns]
    if unknown:
        problems.append(f"the mapping names column(s) {', '.join(map(repr, unknown))}, which the file does not have "
                        f"(its columns: {', '.join(map(str, list(head.columns)[:12]))})")
    for role in _REQUIRED[mapping.kind]:
        if not mapping.role_of(role):
            problems.append(f"no column is the {role.replace('_', ' ')}: expected a column of {roles[role]}")
    for role in SINGLE_ROLES:
        cols = mapping.role_of(role)
        if len(cols) > 1:
            problems.append(f"columns {', '.join(map(repr, cols))} are all mapped to {role.replace('_', ' ')}; "
                            "keep one")
    for column, role in mapping.columns.items():
        if column not in head.columns or role == "ignore":
            continue
        values = head[column].astype(str).str.strip()
        present = values[values != ""]
        if role in _NUMERIC_ROLES and len(present):
            share = _numeric_share(present)
            if role == "campaign" and not _is_flag(present):
                problems.append(f"column {column!r} is mapped to campaign, but holds {present.iloc[0]!r}; "
                                "expected 0 or 1")
            elif share < 0.5:
                bad = present[pd.to_numeric(present.str.replace(r"^[$€£]|[,\s]", "", regex=True),
                                            errors="coerce").isna()]
                problems.append(f"column {column!r} is mapped to {role.replace('_', ' ')}, but "
                                f"{len(bad)} of {len(present)} values are not numbers (e.g. {bad.iloc[0][:30]!r}); "
                                f"expected {roles[role]}")
        if role in ("date", "enrolment_date") and len(present) and _date_share(present) < 0.5:
            problems.append(f"column {column!r} is mapped to {role.replace('_', ' ')}, but {present.iloc[0][:30]!r} "
                            f"is not a date; expected {roles[role]}")
        if role == "id" and len(present) and present.nunique() < len(present):
            dup = present[present.duplicated()].iloc[0]
            problems.append(f"column {column!r} is mapped to the customer ID, but {dup[:30]!r} appears on several "
                            "rows; a customer table has one row per customer (for a transaction log choose "
                            "--input transactions)")
    if mapping.kind == "customers" and not problems:
        numeric = [c for c, r in mapping.columns.items() if r not in ("id", "ignore", "enrolment_date", "category")]
        if not numeric and not mapping.role_of("enrolment_date"):
            problems.append("no column holds a number to segment on: map at least one column to income, spend, "
                            "purchases, recency or a custom feature")
    if problems:
        raise DataFileError(f"{name}: " + "; ".join(problems))


# ------------------------------------------------------------------------------------ preparation
def _safe(name: str, taken: set) -> str:
    base = re.sub(r"[^0-9A-Za-z]+", "_", str(name)).strip("_") or "column"
    if base[0].isdigit():
        base = "c_" + base
    out, i = base, 2
    while out in taken:
        out, i = f"{base}_{i}", i + 1
    taken.add(out)
    return out


def _report(rows_read: int, rows_used: int, rules: list):
    from core.reading.cleaning import CleaningReport, RuleResult

    return CleaningReport(rows_read, rows_used, [RuleResult(*r) for r in rules])


def _customers_frame(raw: pd.DataFrame, mapping: Mapping, name: str):
    """Customer table + mapping -> (frame with canonical role columns, cleaning report)."""
    from core.reading.parsing import DataFileError, number_values
    from core.reading.transactions import days_since_epoch, choose_date_format

    n = len(raw)
    taken = {"ID", "Age", "Year_Birth", "Income", "NumWebVisitsMonth", "Recency", "Dt_Customer", "Customer_since",
             "Total_Spending", "Total_Purchases", "Campaigns_Accepted"}
    out: dict[str, Any] = {}
    unreadable = np.zeros(n, bool)
    missing = np.zeros(n, bool)
    negative = np.zeros(n, bool)
    groups: dict[str, list[str]] = {"spend": [], "purchases": [], "campaign": []}
    features = []
    aliases: dict[str, str] = {}  # canonical name -> the user's column holding it
    for column, role in mapping.columns.items():
        if role == "ignore":
            continue
        cells = raw[column].astype(str).str.strip()
        empty = (cells == "").to_numpy()
        if role == "category":  # kept as text; a missing value is a missing category, not a dropped customer
            out[column] = cells.where(~empty, None).to_numpy(dtype=object)
            continue
        if role == "id":
            ids = pd.to_numeric(cells, errors="coerce")
            whole = ids.notna() & (ids == ids.round())
            if bool(whole[~empty].all()):
                out["ID"] = ids.fillna(-1).astype("int64").to_numpy()
            else:
                out["ID"] = cells.to_numpy(dtype=object)
            missing |= empty
            continue
        if role == "enrolment_date":
            fmt, _share = choose_date_format(cells[~empty])
            days = days_since_epoch(cells, fmt) if fmt else np.full(n, np.nan)
            unreadable |= ~empty & np.isnan(days)
            missing |= empty
            out["Dt_Customer"] = (np.datetime64("1970-01-01", "D") + np.nan_to_num(days).astype("int64")).astype(
                "datetime64[ns]")
            out["Customer_since"] = np.nanmax(days) - days
            continue
        values, is_empty, _ = number_values(cells, role == "campaign")
        bad = ~is_empty & np.isnan(values)
        if bad.sum() * 2 > max(int((~is_empty).sum()), 1):
            first = int(np.flatnonzero(bad)[0])
            raise DataFileError(f"{name}: column {column!r} is mapped to {role.replace('_', ' ')}, but "
                                f"{int(bad.sum())} of {int((~is_empty).sum())} values are not numbers (line "
                                f"{first + 2}: {cells.iloc[first][:30]!r}); expected {CUSTOMER_ROLES[role]}")
        unreadable |= bad
        missing |= is_empty
        # The column keeps the user's name (issue 30); a role with a canonical meaning also gets that
        # name as an alias, which personas and profiles read and people never see or choose.
        canonical = _ROLE_COLUMN.get(role)
        target = canonical if canonical == _safe(column, set()) else _safe(column, taken)
        out[target] = values
        if canonical and canonical != target:
            out[canonical] = values
            aliases[canonical] = target
        if role in ("spend", "purchases", "web_visits", "recency", "income", "campaign"):
            negative |= np.nan_to_num(values) < 0
        if role in groups:
            groups[role].append(target)
        if role == "feature":
            features.append(target)
    frame = pd.DataFrame(out, index=pd.RangeIndex(n))
    if "Year_Birth" in frame and "Age" not in frame:
        frame["Age"] = _DEFAULT_YEAR - frame["Year_Birth"]
    if groups["spend"]:
        frame["Total_Spending"] = frame[groups["spend"]].sum(axis=1)
    if groups["purchases"]:
        frame["Total_Purchases"] = frame[groups["purchases"]].sum(axis=1)
    if groups["campaign"]:
        frame["Campaigns_Accepted"] = frame[groups["campaign"]].sum(axis=1)
    age = frame["Age"].to_numpy(dtype=float) if "Age" in frame else np.full(n, 40.0)
    implausible = (age < 16) | (age > 100)
    alive = np.ones(n, bool)
    rules = []

    def record(rule, action, mask, description):
        mask = mask & alive if action == "dropped" else mask
        ids = frame.loc[mask, "ID"].head(5).tolist() if "ID" in frame else []
        rules.append((rule, action, int(mask.sum()), description, [str(i) for i in ids]))
        if action == "dropped":
            alive[mask] = False

    record("unreadable_values", "dropped", unreadable, "a mapped column held a value that could not be read")
    record("duplicate_id", "dropped", frame["ID"].duplicated(keep="first").to_numpy(),
           "the ID appeared on an earlier row (the first row is kept)")
    record("missing_required", "dropped", missing, "a mapped column was empty")
    record("implausible_birth_year", "dropped", implausible, "age outside 16-100")
    record("out_of_range", "dropped", negative, "a count, spend, income or recency below zero")
    cleaned = frame.loc[alive]
    cleaned.attrs["aliases"] = aliases
    return cleaned, _report(n, int(alive.sum()), rules), groups, features


def user_columns(frame: pd.DataFrame) -> dict:
    """Canonical name -> the user's column it aliases, in customers prepared from a customer table.

    A role tells SegmentLens what a column means; the column keeps its name (``visits``) and the
    canonical name (``NumWebVisitsMonth``) is a hidden copy for personas and profiles.

    Parameters
    ----------
    frame : pandas.DataFrame
        Prepared customers.

    Returns
    -------
    dict
        Empty for the canonical file and transaction logs.
    """
    return dict(frame.attrs.get("aliases") or {})


def default_features(kind: str, frame: pd.DataFrame, mapping: Mapping | None = None) -> list[str]:
    """The features a model uses when none are chosen: what the data has.

    Parameters
    ----------
    kind : str
    frame : pandas.DataFrame
        Prepared customers.
    mapping : Mapping, optional
        Its ``transforms`` say which columns are clustered on their log.

    Returns
    -------
    list of str
        Canonical: the seed's seven. Transactions: Recency, Frequency, Monetary, Tenure. Customers:
        every mapped numeric column (age, income, total spend, purchases per channel, web visits,
        recency, days as a customer, custom features). A column in ``transforms`` is replaced by its
        ``_log`` column.
    """
    if kind == "canonical":
        return list(schema.DEFAULT_FEATURES)
    if kind == "transactions":
        base = ["Recency", "Frequency", "Monetary", "Tenure"]
    else:
        base = [c for c in ("Age", "Income", "Total_Spending") if c in frame]
        base += list(frame.attrs.get("purchases", [])) + [c for c in ("NumWebVisitsMonth", "Recency",
                                                                       "Customer_since") if c in frame]
        base += list(frame.attrs.get("features", []))
        if not base:
            base = list(frame.attrs.get("spend", []))
        base = [user_columns(frame).get(c, c) for c in base]  # the user's own column names
    transforms = mapping.transforms if mapping else {}
    return [f"{c}{LOG_SUFFIX}" if c in transforms else c for c in dict.fromkeys(base)]


def _skew(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    if len(v) < 3 or v.std() == 0:
        return 0.0
    return float(((v - v.mean()) ** 3).mean() / v.std() ** 3)


def _signed_log(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return np.sign(v) * np.log1p(np.abs(v))


def _choose_transforms(frame: pd.DataFrame, candidates: list[str]) -> dict:
    """Money (and order-count) columns clustered on their log when skewed and the log is less skewed."""
    out = {}
    for column in candidates:
        if column not in frame:
            continue
        values = frame[column].to_numpy(dtype=float)
        raw = _skew(values)
        if raw > _SKEW and abs(_skew(_signed_log(values))) < abs(raw):
            out[column] = "log1p"
    return out


def _fingerprint(source: Any) -> str:
    h = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    else:
        h.update(bytes(source))
    return h.hexdigest()[:16]


def prepare_input(source: Any, *, name: str | None = None, kind: str | None = None, mapping: Mapping | None = None,
                  progress=None, chunk_rows: int | None = None, database=None):
    """Load any kind of input into customers with features, as :func:`core.versions.pipeline.prepare` does.

    Parameters
    ----------
    source : path-like or bytes
        A transaction log given as a path is streamed from disk in chunks.
    name : str, optional
        Display name (never used as a path).
    kind : str, optional
        ``canonical``, ``customers`` or ``transactions``; detected when None (and taken from
        ``mapping`` when given).
    mapping : Mapping, optional
        Suggested from the file when None.
    progress : callable, optional
        Called with each step name (load, clean, features).
    chunk_rows : int, optional
        Rows per chunk when aggregating a transaction log.
    database : core.reading.postgres.PgSource, optional
        What ``source`` holds the head of: a log is grouped on its server, another input copied out whole.

    Returns
    -------
    prepared : core.versions.pipeline.Prepared
    mapping : Mapping

    Raises
    ------
    core.reading.loading.DataFileError
        The file or the mapping cannot be used; the message names the column and what was expected.
    """
    from core.reading.loading import DataFileError, LoadInfo, read_source
    from core.reading.prepared import Prepared, prepare

    step = progress or (lambda _m: None)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"--input must be one of {', '.join(KINDS)}, got {kind!r}")
    is_path = isinstance(source, (str, os.PathLike))
    print_of = source  # what the version's data fingerprint is taken of
    shown = name or (Path(source).name if is_path else "upload")
    if is_path and not Path(source).is_file():
        read_source(source, name)  # the loader's message for a missing file or a folder
    kind = kind or (mapping.kind if mapping is not None else None)
    sniffed = sniff(source, shown)
    head = read_head(source, sniffed)
    if kind is None:
        kind = detect_kind(list(head.columns), head)
    if database is not None and kind != "transactions":  # only a log is grouped on the server
        from core.reading.postgres import export

        export(database, source)
    if kind == "canonical":
        prepared = prepare(source, name=name, progress=progress)
        used = Mapping("canonical", dict(prepared.info.column_mapping), list(schema.DEFAULT_FEATURES))
        return prepared, used
    if mapping is None:
        mapping = suggest(head, kind)
    elif mapping.kind != kind:
        mapping = Mapping(kind, mapping.columns, mapping.features, mapping.transforms, mapping.ranges, mapping.notes)
    # Columns the mapping does not mention are unused.
    mapping.columns = {c: mapping.columns.get(c, "ignore") for c in dict.fromkeys([*head.columns, *mapping.columns])}
    validate(mapping, head, shown)
    step("load")
    if kind == "transactions":
        from core.reading.pg_aggregate import aggregate_log
        from core.reading.transactions import TransactionColumns

        cols = TransactionColumns(**{role: (mapping.role_of(role) or [None])[0]
                                     for role in ("customer_id", "date", "amount", "quantity", "order_id",
                                                  "category", "channel")})
        data = source if is_path else read_source(source, name)[0]
        agg = aggregate_log(data, cols, sep=sniffed.sep, encoding=sniffed.encoding, name=shown, database=database,
                            **({"chunk_rows": chunk_rows} if chunk_rows else {}))
        step("clean")
        frame = agg.customers.copy()
        if agg.engine == "postgresql":
            # Only the log's head was copied out: the version's fingerprint is its customers' (the same log
            # gives the same customers), not the head's, which another log could share.
            print_of = pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()
        # The canonical names of the same facts, so profiles, personas and comparisons read them.
        frame["Total_Spending"] = frame["Monetary"]
        frame["Total_Purchases"] = frame["Frequency"]
        frame["Customer_since"] = frame["Tenure"]
        from core.reading.transactions import rfm_scores

        frame = frame.join(rfm_scores(frame))
        dropped = sum(agg.unreadable.values())
        rules = [("unreadable_values", "dropped", dropped,
                  "a row whose customer ID, date or amount could not be read",
                  [e for v in agg.examples.values() for e in v][:5]),
                 ("nonpositive_amount", "flagged", agg.nonpositive,
                  "amount of zero or less (returns, free items): kept, counted in Frequency and summed in Monetary",
                  [])]
        report = _report(agg.rows_read, agg.rows_used, rules)
        info = LoadInfo(source=shown, delimiter="whitespace" if sniffed.sep == r"\s+" else sniffed.sep,
                        encoding=sniffed.encoding, date_order="year-first" if agg.date_format.startswith("%Y")
                        else "day-first", date_format=agg.date_format,
                        date_note=f"purchase dates {agg.first_date} to {agg.latest_date}; Recency and Tenure count "
                                  f"days to {agg.latest_date}",
                        column_mapping=dict(mapping.columns), rows=agg.rows_read)
        money = ["Monetary", "Avg_order_value", "Frequency"] + [c for c in frame if c.startswith("Spend_")]
        frame.attrs["summary"] = {"customers": int(len(frame)), "transactions": agg.rows_read,
                                  "total_amount": round(agg.total_amount, 2), "latest_date": agg.latest_date,
                                  "first_date": agg.first_date, "nonpositive": agg.nonpositive, "notes": agg.notes,
                                  "engine": agg.engine, **({"engine_note": agg.engine_note} if agg.engine_note else {})}
    else:
        data = read_source(source, name)[0]
        full = read_head(data, sniffed, rows=None)
        step("clean")
        frame, report, groups, features = _customers_frame(full, mapping, shown)
        if not len(frame):
            raise DataFileError(f"{shown}: no customer rows left after cleaning (dropped: "
                                + ", ".join(f"{k} {v}" for k, v in report.dropped.items() if v) + ")")
        frame.attrs.update(purchases=groups["purchases"], spend=groups["spend"], features=features)
        dates = mapping.role_of("enrolment_date")
        info = LoadInfo(source=shown, delimiter="whitespace" if sniffed.sep == r"\s+" else sniffed.sep,
                        encoding=sniffed.encoding, column_mapping=dict(mapping.columns), rows=len(full),
                        date_format="", date_order="",
                        date_note=f"enrolment dates from column {dates[0]!r}" if dates else "no date column mapped")
        money = [user_columns(frame).get("Income", "Income"), "Total_Spending"] + groups["spend"]
    step("features")
    if not mapping.transforms:
        mapping.transforms = _choose_transforms(frame, money)
    for column in mapping.transforms:
        if column in frame:
            frame[f"{column}{LOG_SUFFIX}"] = _signed_log(frame[column])
    if mapping.features is None:
        mapping.features = default_features(kind, frame, mapping)
    mapping.kind = kind
    if report.rows_used == 0:
        raise DataFileError(f"{shown}: no rows left after cleaning")
    return Prepared(frame, info, report, _fingerprint(print_of), shown), mapping


def parse_features(text: str | None, prepared, mapping: Mapping) -> list[str]:
    """Features for a model on prepared data: the mapping's (default), or a comma-separated choice checked.

    Parameters
    ----------
    text : str or None
    prepared : core.versions.pipeline.Prepared
    mapping : Mapping

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        A name that is not a numeric column of the prepared customers (naming it and the choices),
        a repeated name, or a column with empty values.
    """
    frame = prepared.frame
    if not text:
        names = list(mapping.features or [])
    else:
        names = [t.strip() for t in text.split(",") if t.strip()] if isinstance(text, str) else list(text)
    hidden = set(user_columns(frame))  # canonical aliases of the user's columns are not choices
    numeric = [c for c in frame.columns if c != "ID" and c not in hidden and pd.api.types.is_numeric_dtype(frame[c])]
    unknown = [n for n in names if n not in numeric]
    if unknown:
        raise ValueError(f"unknown feature(s) {', '.join(unknown)}; choose from {', '.join(numeric)}")
    if len(set(names)) != len(names):
        raise ValueError("a feature is listed twice")
    if not names:
        raise ValueError("no features given")
    for n in names:
        empty = int(frame[n].isna().sum())
        if empty:
            raise ValueError(f"feature {n} is empty for {empty:,} customers (e.g. Interpurchase_days for customers "
                             "with one order); choose another")
    return names


def feature_ranges(frame: pd.DataFrame, features: list[str]) -> dict:
    """Observed [min, max] of each feature (what the what-if form and the API accept).

    Parameters
    ----------
    frame : pandas.DataFrame
    features : list of str

    Returns
    -------
    dict
    """
    return {f: (float(np.nanmin(frame[f])), float(np.nanmax(frame[f]))) for f in features}


def input_summary(prepared, labels, mapping: Mapping) -> dict:
    """What a version keeps about its input besides the mapping artifact (JSON-ready).

    Parameters
    ----------
    prepared : core.versions.pipeline.Prepared
    labels : array-like of int
        The model's segment of each prepared customer.
    mapping : Mapping

    Returns
    -------
    dict
        ``input`` (the kind), ``transforms``; for transaction logs ``transactions`` (counts and
        totals) and ``rfm`` (``groups``: customers per RFM group; ``crosstab``: per segment).
    """
    out: dict[str, Any] = {"input": mapping.kind, "transforms": dict(mapping.transforms)}
    frame = prepared.frame
    if user_columns(frame):
        out["aliases"] = dict(user_columns(frame))  # canonical name -> the user's column (labels on pages)
    if mapping.kind == "transactions" and "RFM_group" in frame:
        from core.reading.transactions import crosstab

        table = crosstab(labels, frame["RFM_group"].to_numpy())
        out["transactions"] = dict(frame.attrs.get("summary") or {})
        out["rfm"] = {"groups": {str(g): int(n) for g, n in frame["RFM_group"].value_counts().items()},
                      "crosstab": {"columns": [str(c) for c in table.columns],
                                   "rows": {str(int(s)): [int(v) for v in table.loc[s]] for s in table.index}}}
        out["segment_names"], out["segment_descriptions"] = rfm_names(table)
    return out


def rfm_names(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Segment names from the RFM groups their customers fall in (a transaction log's personas).

    Each segment is named after its most common RFM group; a second segment led by the same group
    takes "<group> / <its second group>", then a number. The description gives the shares.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`core.reading.transactions.crosstab` (segments x RFM groups).

    Returns
    -------
    names, descriptions : list of str
    """
    total = max(int(table.to_numpy().sum()), 1)
    names, descriptions, taken = [], [], set()
    for seg in table.index:
        row = table.loc[seg].sort_values(ascending=False, kind="stable")
        n = max(int(row.sum()), 1)
        top = [str(g) for g in row.index[:2] if row[g] > 0]
        name = top[0] if top else "Customers"
        if name in taken and len(top) > 1:
            name = f"{top[0]} / {top[1]}"
        base, i = name, 2
        while name in taken:
            name, i = f"{base} ({i})", i + 1
        taken.add(name)
        names.append(name)
        parts = ", ".join(f"{g} {row[g] / n:.0%}" for g in row.index[:3] if row[g] > 0)
        descriptions.append(f"{n / total:.0%} of customers; RFM groups: {parts}.")
    return names, descriptions


# ------------------------------------------------------------------------------------ scoring mapped models
def accepted_range(low: float, high: float) -> tuple[float, float]:
    """What a what-if form or the API accepts for a feature observed between ``low`` and ``high``.

    From 0 (or, when the data has negatives, the minimum less one observed span) to the maximum
    plus one span: a what-if may go beyond the data, not to absurd numbers.

    Parameters
    ----------
    low, high : float

    Returns
    -------
    (float, float)
    """
    low, high = float(low), float(high)
    span = (high - low) or max(abs(high), 1.0)
    return (0.0 if low >= 0 else low - span), high + span


def accepted_fields(saved: dict | None, features) -> dict | None:
    """Fields a mapped model's customers are given in, with their accepted ranges (None for canonical models).

    A feature clustered on a log scale (``Monetary_log``) may also be given in the data's own units
    (``Monetary``).

    Parameters
    ----------
    saved : dict or None
        The version's ``mapping`` artifact.
    features : sequence of str

    Returns
    -------
    dict or None
        Field -> (low, high); None when the model's fields are the canonical ones.
    """
    if not saved or saved.get("input") in (None, "canonical"):
        return None
    ranges = saved.get("ranges") or {}
    out = {}
    for feature in features:
        if feature not in ranges:
            continue
        out[feature] = accepted_range(*ranges[feature])
        if feature.endswith(LOG_SUFFIX):
            lo, hi = (float(np.sign(v) * np.expm1(abs(v))) for v in ranges[feature])
            out[feature[:-len(LOG_SUFFIX)]] = accepted_range(lo, hi)
    return out


def _customer(fields, features, bounds: dict, index):
    from core.versions.scoring import check_id

    def error(field_name, message):
        out = {"field": field_name, "message": message}
        return out if index is None else {"index": index, **out}

    if not isinstance(fields, dict):
        where = "customer" if index is None else f"customers[{index}]"
        return None, [error(where, f"must be an object with the customer's fields, got {type(fields).__name__}")]
    errors, good = [], {}
    for name, value in fields.items():
        if name in bounds:
            low, high = bounds[name]
            if type(value) not in (int, float):
                errors.append(error(name, f"must be a number, got {type(value).__name__}"))
            elif not np.isfinite(value) or not low <= value <= high:
                errors.append(error(name, f"must be between {low:g} and {high:g}, got {value}"))
            else:
                good[name] = float(value)
        elif name == "ID":
            message = check_id(value)
            if message:
                errors.append(error("ID", message))
    values = []
    for feature in features:
        base = feature[:-len(LOG_SUFFIX)] if feature.endswith(LOG_SUFFIX) else None
        if feature in good:
            values.append(good[feature])
        elif base and base in good:
            values.append(float(_signed_log(good[base])))
        elif feature not in fields and not (base and base in fields):
            errors.append(error(feature, "is required" + (f" (or {base})" if base else "")))
    return (None if errors else values), errors


def mapped_request(body, features, bounds: dict, max_batch: int = 10_000):
    """Validate a prediction request for a mapped model, like :func:`core.versions.scoring.parse_request`.

    Parameters
    ----------
    body : object
        Decoded JSON: one customer, or ``{"customers": [...]}``.
    features : sequence of str
    bounds : dict
        :func:`accepted_fields`.
    max_batch : int

    Returns
    -------
    rows, ids, batch
        As :func:`core.versions.scoring.parse_request`.

    Raises
    ------
    core.versions.scoring.ValidationFailed
    """
    from core.versions.scoring import ValidationFailed

    if not isinstance(body, dict):
        raise ValidationFailed([{"field": "body", "message": f"must be a JSON object, got {type(body).__name__}"}])
    if "customers" in body:
        customers = body["customers"]
        if not isinstance(customers, list):
            raise ValidationFailed([{"field": "customers", "message": "must be a list"}])
        if len(customers) > max_batch:
            raise ValidationFailed([{"field": "customers", "message": f"at most {max_batch:,} customers per "
                                                                      f"request, got {len(customers):,}"}])
        rows, ids, errors = [], [], []
        for i, customer in enumerate(customers):
            values, errs = _customer(customer, features, bounds, i)
            if errs:
                errors.extend(errs)
            else:
                rows.append(values)
                ids.append(customer.get("ID"))
        if errors:
            raise ValidationFailed(errors)
        return rows, ids, True
    values, errors = _customer(body, features, bounds, None)
    if errors:
        raise ValidationFailed(errors)
    return [values], [body.get("ID")], False


def mapped_schema(features, bounds: dict) -> dict:
    """JSON Schema of one customer of a mapped model (what :func:`mapped_request` accepts).

    Parameters
    ----------
    features : sequence of str
    bounds : dict
        :func:`accepted_fields`.

    Returns
    -------
    dict
    """
    properties = {name: {"type": "number", "minimum": low, "maximum": high,
                         "description": schema.FEATURE_LABELS.get(name, name.replace("_", " "))}
                  for name, (low, high) in bounds.items()}
    properties["ID"] = {"description": "Optional; echoed back in the prediction",
                        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 64}]}
    required = []
    for feature in features:
        base = feature[:-len(LOG_SUFFIX)] if feature.endswith(LOG_SUFFIX) else None
        required.append({"anyOf": [{"required": [feature]}, {"required": [base]}]} if base in bounds
                        else {"required": [feature]})
    return {"type": "object", "properties": properties, "additionalProperties": True, "allOf": required}
