"""The loader's parsing, the cleaning rules and the engineered features, expressed in Spark.

:mod:`core.reading.loading`, :mod:`core.reading.cleaning` and :mod:`core.reading.features` define what SegmentLens
does to a customer table; this module does the same with Spark DataFrame operations so that
a table too large for one machine is prepared where it lives. The tests compare both paths
on the committed sample (same CleaningReport, same cleaned rows, same features).

Exactness is bought by reuse rather than re-implementation where values are few: cells that
are not plain numbers (currency, ``1.234,50``, ``yes``/``no``) and enrolment dates are parsed
by the loader's own functions on their *distinct* texts, collected to the driver, and mapped
back with a broadcast join. Only a column with more than :data:`MAX_DISTINCT` distinct such
texts is refused (convert the table to plain numbers or Parquet).

Row order: ``_row`` is each row's position in the table (0-based; the file line is
``_row + 2`` for a delimited file with a header), computed from per-partition counts so that
"the first row is kept" means the same as in pandas.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.reading import schema
from core.reading.cleaning import PARAMETERS, RULES, CleaningReport, RuleResult
from core.reading.features import CHANNEL_COLUMNS, DEFAULT_REFERENCE_YEAR, SHARE_COLUMNS
from core.reading.parsing import NA_TOKENS, DataFileError, choose_delimiter, date_column, number_values

__all__ = ["MAX_DISTINCT", "SparkTable", "SparkPrepared", "read_table", "parse_table", "clean", "add_features",
           "prepare", "to_pandas"]

# Distinct non-plain texts of one column the driver maps with the loader's own parser.
MAX_DISTINCT = 200_000
_TEXT_COLUMNS = ("Education", "Marital_Status")
_DATE = "Dt_Customer"
_FLAGS = tuple(schema.CAMPAIGN_COLUMNS) + ("Complain",)
# Repeated IDs dropped by a broadcast anti-join (row numbers only) up to this many rows.
_BROADCAST_ROWS = 2_000_000
# pandas' str.strip() removes any whitespace; Spark's trim() only spaces.
_STRIP_RE = r"^\s+|\s+$"


def _F():
    from pyspark.sql import functions as F  # deferred: pyspark is an optional extra

    return F


@dataclass
class SparkTable:
    """A customer table as Spark read it, columns renamed to canonical names.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        Canonical columns present, then extra columns; ``_row`` = position in the table.
    source : str
        Display name (the path's last part or the URI).
    fmt : str
        ``"parquet"`` or ``"csv"``.
    delimiter : str or None
    column_mapping : dict
        Header as written -> canonical name.
    extra_columns : list of str
    rows : int
    """

    frame: object
    source: str
    fmt: str
    delimiter: str | None
    column_mapping: dict
    extra_columns: list
    rows: int


@dataclass
class SparkPrepared:
    """A table loaded, cleaned and with features, in Spark.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        Cleaned customers with engineered features and ``_row`` (cached).
    report : CleaningReport
    info : dict
        What the reader detected (format, delimiter, date format, column mapping, ...).
    source : str
    rows : int
        Customers after cleaning.
    """

    frame: object
    report: CleaningReport
    info: dict
    source: str
    rows: int
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- reading
def _display(uri: str) -> str:
    parts = [p for p in re.split(r"[\\/]", str(uri)) if p]
    return parts[-1] if parts else str(uri)


def _is_parquet(spark, uri: str) -> bool:
    text = str(uri).rstrip("/")
    if text.lower().endswith((".parquet", ".parq", ".pq")):
        return True
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) and not text.startswith("file://"):
        # A folder in a lake (s3a://, hdfs://, abfss://): Parquet unless it names a text file.
        return not text.lower().endswith((".csv", ".tsv", ".txt"))
    from pathlib import Path

    path = Path(text[7:] if text.startswith("file://") else text)
    if path.is_dir():
        return any(p.suffix.lower() in (".parquet", ".parq", ".pq") for p in path.rglob("*"))
    if path.is_file():
        with open(path, "rb") as handle:
            return handle.read(4) == b"PAR1"
    return False


def _header_line(spark, uri: str) -> str:
    from pathlib import Path

    text = str(uri)
    local = Path(text[7:] if text.startswith("file://") else text)
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) or text.startswith("file://"):
        if not local.exists():
            raise DataFileError(f"no such file: {uri}")
        with open(local, "rb") as handle:
            raw = handle.read(65536)
        if b"\x00" in raw:
            raise DataFileError(f"{_display(uri)} is neither a Parquet file nor a delimited text file")
        for line in re.split(r"\r\n|\r|\n", raw.decode("utf-8", errors="replace")):
            if line.strip(" \t\ufeff"):
                return line
        raise DataFileError(f"{_display(uri)} is empty: expected a header line and customer rows")
    first = spark.read.text(text).limit(1).collect()
    if not first:
        raise DataFileError(f"{_display(uri)} is empty: expected a header line and customer rows")
    return first[0][0]


def _rename(columns: list[str], name: str) -> tuple[list[str], dict, list]:
    names, mapping, extras, seen, used = [], {}, [], {}, set()
    for i, header in enumerate(columns):
        canon = schema.canonical_name(header)
        if canon is not None:
            if canon in seen:
                raise DataFileError(f"{name}: columns {seen[canon]!r} and {header!r} (column {i + 1}) both mean "
                                    f"{canon}; keep only one of them")
            seen[canon] = header
            mapping[header] = canon
            names.append(canon)
            used.add(canon)
            continue
        base = str(header).strip() or f"Unnamed: {i}"
        extra, n = base, 0
        while extra in used:
            n += 1
            extra = f"{base}.{n}"
        used.add(extra)
        names.append(extra)
        extras.append(extra)
    missing = [c for c in schema.REQUIRED_COLUMNS if c not in seen]
    if missing:
        shown = ", ".join(str(h)[:40] for h in columns[:10])
        raise DataFileError(f"{name}: missing required column(s) {', '.join(missing)}; found columns: {shown}; "
                            "see data/README.md for the expected format")
    return names, mapping, extras


def _with_positions(df):
    """Add ``_row``: the row's 0-based position in the table, in file order."""
    F = _F()
    df = df.withColumn("_mid", F.monotonically_increasing_id())
    df = df.withColumn("_pid", F.shiftright("_mid", 33))
    counts = sorted((int(r[0]), int(r[1])) for r in df.groupBy("_pid").count().collect())
    offsets, total = {}, 0
    for pid, n in counts:
        offsets[pid] = total
        total += n
    if not offsets:
        return df.withColumn("_row", F.lit(0).cast("long")).drop("_mid", "_pid"), 0
    offset = F.lit(0).cast("long")
    for pid, start in offsets.items():
        offset = F.when(F.col("_pid") == pid, F.lit(start).cast("long")).otherwise(offset)
    low = F.col("_mid").bitwiseAND(F.lit((1 << 33) - 1))
    return df.withColumn("_row", offset + low).drop("_mid", "_pid"), total


def read_table(spark, uri: str) -> SparkTable:
    """Read a Parquet file/folder or a delimited text file with Spark; canonical column names.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    uri : str
        Local path, ``file://``, or any URI the cluster reads (``s3a://``, ``hdfs://``, ...).

    Returns
    -------
    SparkTable

    Raises
    ------
    core.reading.loading.DataFileError
        Missing file, unreadable Parquet, missing required columns, no rows.
    """
    from pyspark.errors import PySparkException

    name = _display(uri)
    try:
        if _is_parquet(spark, uri):
            raw, fmt, delimiter = spark.read.parquet(str(uri)), "parquet", None
        else:
            delimiter, _ = choose_delimiter(_header_line(spark, uri))
            raw = (spark.read.option("header", True).option("sep", delimiter).option("quote", '"')
                   .option("escape", '"').option("inferSchema", False).option("mode", "PERMISSIVE")
                   .csv(str(uri)))
            fmt = "csv"
        names, mapping, extras = _rename(raw.columns, name)
        F = _F()
        renamed = dict(zip(names, raw.columns))
        # The loader's column order: canonical columns in schema order, then the extra ones.
        order = [c for c in schema.CANONICAL_COLUMNS if c in renamed] + list(extras)
        raw = raw.select([F.col(f"`{renamed[n]}`").alias(n) for n in order])
        frame, rows = _with_positions(raw)
    except DataFileError:
        raise
    except PySparkException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "PATH_NOT_FOUND" in first or "does not exist" in first:
            raise DataFileError(f"no such file: {uri}") from None
        raise DataFileError(f"{name} cannot be read by Spark ({first[:160]})") from None
    except Exception as exc:  # py4j errors while reading a corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataFileError(f"{name} cannot be read by Spark ({first[:160]})") from None
    if rows == 0:
        raise DataFileError(f"{name} has a header but no customer rows")
    return SparkTable(frame, name, fmt, delimiter, mapping, extras, rows)


# ---------------------------------------------------------------------------- parsing
def _text_of(column: str):
    F = _F()
    return F.regexp_replace(F.col(f"`{column}`").cast("string"), _STRIP_RE, "")


def _finite(value):
    F = _F()
    return value.isNotNull() & ~F.isnan(value) & (F.abs(value) != float("inf"))


def _lookup(spark, df, key, mapping: dict, value_type: str):
    """``mapping[key]`` as a column: a literal map when small, else a broadcast join on ``_key``."""
    F = _F()
    from pyspark.sql.types import DateType, DoubleType, StringType, StructField, StructType

    if len(mapping) <= 20_000:
        pairs = []
        for text, value in mapping.items():
            pairs += [F.lit(text), F.lit(value).cast(value_type)]
        return df, F.create_map(*pairs)[key] if pairs else F.lit(None).cast(value_type)
    kind = DoubleType() if value_type == "double" else DateType()
    table = spark.createDataFrame(list(mapping.items()), StructType([StructField("_key", StringType()),
                                                                     StructField("_val", kind)]))
    name = f"_val{len(df.columns)}"
    df = df.withColumn("_key", key).join(F.broadcast(table.withColumnRenamed("_val", name)), "_key", "left")
    return df.drop("_key"), F.col(name)


def _float_or_none(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def parse_table(spark, table: SparkTable):
    """Give every canonical column its type, as :func:`core.reading.loading.load_customers` does.

    Plain numbers are cast in Spark; the few distinct texts that are not (currency, decimal
    commas, yes/no flags) and the distinct enrolment dates go through the loader's own parsers
    on the driver and come back as a lookup, so both paths read every cell the same way.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    table : SparkTable

    Returns
    -------
    frame : pyspark.sql.DataFrame
        Numeric columns as double (null when empty or unreadable), ``Dt_Customer`` as date,
        text columns stripped (null when empty), extra columns as read, ``_row`` and
        ``_unreadable`` (a present field could not be read). Cached.
    info : dict
        Detected format, delimiter, date format and note, column mapping.

    Raises
    ------
    core.reading.loading.DataFileError
        A column that is mostly unreadable, or holding too many distinct odd values (naming it).
    """
    F = _F()
    from pyspark.sql.types import DateType, NumericType, TimestampNTZType, TimestampType

    from core.reading.parsing import EU_EVIDENCE_RE, US_EVIDENCE_RE

    df = table.frame
    name = table.source
    types = {f.name: f.dataType for f in df.schema.fields}
    present = [c for c in schema.CANONICAL_COLUMNS if c in types]
    numeric = [c for c in present if c not in _TEXT_COLUMNS and c != _DATE]
    text_numeric = [c for c in numeric if not isinstance(types[c], NumericType)]
    na = list(NA_TOKENS)

    # Staged projections: each expensive expression (strip, cast) is computed once as a column;
    # one projection holding them all inline outgrows Java's 64 KB method limit for codegen.
    stripped = set(text_numeric) | set(c for c in present if c in _TEXT_COLUMNS)
    if not isinstance(types.get(_DATE), (DateType, TimestampType, TimestampNTZType)):
        stripped.add(_DATE)
    df = df.select("*", *[_text_of(c).alias(f"_t_{c}") for c in sorted(stripped)])
    df = df.select("*", *[F.col(f"_t_{c}").try_cast("double").alias(f"_p_{c}") for c in text_numeric])
    # Distinct texts that are not plain numbers, of every text-typed numeric column, in one job.
    odd: dict[str, list[str]] = {c: [] for c in text_numeric}
    if text_numeric:
        tagged = [F.when(~(F.col(f"_t_{c}").isNull() | F.col(f"_t_{c}").isin(na)) & ~_finite(F.col(f"_p_{c}")),
                         F.struct(F.lit(c).alias("c"), F.col(f"_t_{c}").alias("t"))) for c in text_numeric]
        rows = (df.select(F.explode(F.array(*tagged)).alias("x")).where("x IS NOT NULL").select("x.c", "x.t")
                .distinct().limit(MAX_DISTINCT * 2 + 1).collect())
        for row in rows:
            odd[row["c"]].append(row["t"])
    mappings: dict[str, tuple[dict, bool]] = {}
    for column in text_numeric:
        texts = odd[column]
        if not texts:
            continue
        if len(texts) > MAX_DISTINCT:
            raise DataFileError(f"{name}: column {column}: more than {MAX_DISTINCT:,} distinct values that are not "
                                "plain numbers; the Spark engine maps such values on the driver: convert the column "
                                "to plain numbers (or Parquet) first")
        rest = pd.Series(texts, dtype=object).str.replace(r"(?i)[$€£¥]|\b(?:usd|eur|gbp)\b", "", regex=True)
        rest = rest.str.strip().str.replace(r"[\s\u00a0\u202f]+", " ", regex=True)
        eu = bool(rest.str.match(EU_EVIDENCE_RE).any()) and not bool(rest.str.match(US_EVIDENCE_RE).any())
        if eu:  # the loader re-reads *every* value of a column written the European way ("84.835")
            t = F.col(f"_t_{column}")
            texts = [r[0] for r in df.select(t.alias("t")).where(~(t.isNull() | t.isin(na))).distinct()
                     .limit(MAX_DISTINCT + 1).collect()]
            if len(texts) > MAX_DISTINCT:
                raise DataFileError(f"{name}: column {column}: more than {MAX_DISTINCT:,} distinct values with "
                                    "decimal commas; convert the column to plain numbers (or Parquet) first")
        values, _, _ = number_values(pd.Series(texts, dtype=object), column in _FLAGS)
        mappings[column] = ({t: _float_or_none(v) for t, v in zip(texts, values)}, eu)

    # Enrolment dates: one format chosen from every distinct value, as the loader does.
    date_kind = types.get(_DATE)
    date_info = {"date_order": "day-first", "date_format": "", "date_note": ""}
    date_map: dict | None = None
    if isinstance(date_kind, (DateType, TimestampType, TimestampNTZType)):
        date_info["date_note"] = "dates stored as dates"
    else:
        t = F.col(f"_t_{_DATE}")
        texts = [r[0] for r in df.select(t.alias("t")).where(~(t.isNull() | (t == "") | t.isin(na))).distinct()
                 .limit(MAX_DISTINCT + 1).collect()]
        if len(texts) > MAX_DISTINCT:
            raise DataFileError(f"{name}: column {_DATE}: more than {MAX_DISTINCT:,} distinct dates")
        if texts:
            try:
                values, _, order, fmt, note = date_column(pd.Series(texts, dtype=object), name)
            except DataFileError as exc:  # its line numbers count distinct values here, not file lines
                raise DataFileError(re.sub(r"\(line \d+: ", "(e.g. ", str(exc))) from None
            date_map = {t: (None if pd.isna(v) else pd.Timestamp(v).date()) for t, v in zip(texts, values)}
            date_info = {"date_order": order, "date_format": fmt, "date_note": note}
        else:
            date_map = {}
            date_info["date_note"] = "no dates: Dt_Customer is empty in every row"

    out, flags, nonempty = [], [], []
    for column in table.frame.columns:
        if column == "_row" or column not in present:
            out.append(F.col(f"`{column}`"))
            continue
        t = F.col(f"_t_{column}")
        if column in _TEXT_COLUMNS:
            out.append(F.when(t.isNull() | (t == "") | t.isin(na), None).otherwise(t).alias(column))
            continue
        if column == _DATE:
            if date_map is None:
                out.append(F.to_date(F.col(_DATE)).alias(_DATE))
            else:
                df, looked = _lookup(spark, df, t, date_map, "date")
                out.append(looked.alias(_DATE))
                out.append((~(t.isNull() | (t == "") | t.isin(na)) & looked.isNull()).alias(f"_b_{column}"))
                flags.append(column)
            continue
        if column in text_numeric:
            plain = F.col(f"_p_{column}")
            empty = t.isNull() | t.isin(na)
            value = F.when(_finite(plain), plain)
            if column in mappings:
                mapping, eu = mappings[column]
                df, looked = _lookup(spark, df, t, mapping, "double")
                value = looked if eu else F.coalesce(value, looked)
            value = F.when(~empty, value)
            is_nonempty = ~empty
        else:
            raw = F.col(column).cast("double")
            value = F.when(_finite(raw), raw)
            is_nonempty = raw.isNotNull()
        out.append(value.alias(f"_v_{column}"))
        out.append(is_nonempty.alias(f"_n_{column}"))
    df = df.select(*out)
    final, checks = [], []
    for column in table.frame.columns:
        if f"_v_{column}" not in df.columns:
            if column in df.columns:
                final.append(F.col(f"`{column}`"))
            continue
        value = F.col(f"_v_{column}")
        if column == "ID":
            whole = value.isNotNull() & (F.floor(value) == value)
            final += [F.when(whole, value).alias("ID"), (~whole).alias("_b_ID")]
            checks.append(("ID", F.col("_b_ID"), F.lit(True)))
        else:
            cell_bad = F.col(f"_n_{column}") & value.isNull()
            final += [value.alias(column), cell_bad.alias(f"_b_{column}"), F.col(f"_n_{column}")]
            checks.append((column, F.col(f"_b_{column}"), F.col(f"_n_{column}")))
        flags.append(column)
    final += [F.col(f"_b_{c}") for c in flags if c == _DATE]
    df = df.select(*final)
    bad = [F.col(f"_b_{c}") for c in flags]
    unreadable = F.greatest(*bad) if len(bad) > 1 else (bad[0] if bad else F.lit(False))
    staged = df.select(*[c for c in df.columns if not c.startswith(("_b_", "_n_"))], unreadable.alias("_unreadable"),
                       *[F.struct(b.cast("long"), n.cast("long")).alias(f"_chk_{i}")
                         for i, (_c, b, n) in enumerate(checks)])
    staged = _pin(staged)
    nonempty = [c for c, _b, _n in checks]
    if nonempty:
        row = staged.agg(*[F.sum(f"_chk_{i}.{field}") for i in range(len(nonempty))
                           for field in ("col1", "col2")]).collect()[0]
        for i, column in enumerate(nonempty):
            n_bad, n_nonempty = int(row[2 * i] or 0), int(row[2 * i + 1] or 0)
            if n_bad and n_bad * 2 > n_nonempty:
                what = "whole numbers" if column == "ID" else "numbers"
                raise DataFileError(f"{name}: column {column}: {n_bad:,} of {n_nonempty:,} values are not {what}")
    frame = staged.drop(*[f"_chk_{i}" for i in range(len(nonempty))])
    info = {"source": table.source, "format": table.fmt, "delimiter": table.delimiter,
            "column_mapping": dict(table.column_mapping), "extra_columns": list(table.extra_columns),
            "missing_optional": [c for c in schema.OPTIONAL_COLUMNS if c not in present], "rows": table.rows,
            **date_info}
    return frame, info


# ---------------------------------------------------------------------------- cleaning
def clean(df, *, reference_year: int = DEFAULT_REFERENCE_YEAR):
    """Apply every rule of :mod:`core.reading.cleaning`, in its order, with the same counts and examples.

    Rules that look at one row run in one projection; the whole-table rules (repeated IDs,
    the income fence, repeated records) run on a narrow frame of row number, ID, income,
    flags and a 64-bit hash of the record, so nothing wide is shuffled. Repeated records
    are found by that hash (xxhash64 of every value but the ID, plus which values are
    empty): two different records colliding has a probability of about n^2 / 2^65.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        From :func:`parse_table`.
    reference_year : int, default 2026

    Returns
    -------
    cleaned : pyspark.sql.DataFrame
        Kept rows (with ``_row``; marital statuses fixed).
    report : CleaningReport
    facts : dict
        ``latest_date`` (latest enrolment of the kept rows) and ``cached`` (frames to
        unpersist once ``cleaned`` is materialised).
    """
    F = _F()
    from pyspark.sql import Window

    cols = [c for c in df.columns if c != "_unreadable"]
    required = [c for c in schema.REQUIRED_COLUMNS if c != "Income" and c in cols]
    age = F.lit(float(reference_year)) - F.col("Year_Birth")
    # One flat greatest() of the bound checks, not a chain of 35 ORs: Spark Connect refuses plans
    # nested deeper than 100 messages.
    terms = [F.coalesce(F.col("Income") < 0, F.lit(False))]
    for column in schema.INTEGER_COLUMNS:
        if column in ("ID", "Year_Birth") or column not in cols:
            continue
        low, high = schema.BOUNDS.get(column, (None, None))
        if low is not None:
            terms.append(F.coalesce(F.col(column) < low, F.lit(False)))
        if high is not None:
            terms.append(F.coalesce(F.col(column) > high, F.lit(False)))
    local = {
        "unreadable_values": F.col("_unreadable"),
        "missing_required": F.greatest(*[F.col(f"`{c}`").isNull() for c in required]),
        "missing_income": F.col("Income").isNull(),
        "implausible_birth_year": F.coalesce((age < PARAMETERS.min_age) | (age > PARAMETERS.max_age), F.lit(False)),
        "out_of_range": F.greatest(*terms) if len(terms) > 1 else terms[0],
    }
    fixed = F.col("Marital_Status")
    for old, new in PARAMETERS.marital_fix.items():
        fixed = F.when(F.col("Marital_Status") == old, F.lit(new)).otherwise(fixed)
    content = [c for c in cols if c not in ("ID", "_row")]
    content_exprs = [fixed if c == "Marital_Status" else F.col(f"`{c}`") for c in content]
    nulls = F.concat(*[F.when(e.isNull(), F.lit("1")).otherwise(F.lit("0")) for e in content_exprs])
    date = F.col(_DATE) if _DATE in cols else F.lit(None).cast("date")
    narrow = df.select("_row", "ID", "Income", date.alias("_date"),
                       *[v.alias(f"_l_{k}") for k, v in local.items()],
                       F.coalesce(F.col("Marital_Status").isin(list(PARAMETERS.marital_fix)), F.lit(False)).alias("_odd"),
                       F.xxhash64(*content_exprs, nulls).alias("_hash"), nulls.alias("_nulls"))
    first_id = Window.partitionBy("ID").orderBy("_row")
    narrow = narrow.withColumn("_f_duplicate_id", (F.row_number().over(first_id) > 1) & F.col("ID").isNotNull())
    # Each dropping rule counts only rows no earlier rule dropped.
    alive = F.lit(True)
    drops = []
    for name in ("unreadable_values", "duplicate_id", "missing_required", "missing_income",
                 "implausible_birth_year", "out_of_range"):
        flag = F.col("_f_duplicate_id") if name == "duplicate_id" else F.col(f"_l_{name}")
        drops.append((flag & alive).alias(f"_d_{name}"))
        alive = alive & ~flag
    narrow = narrow.select("_row", "ID", "Income", "_date", "_odd", "_hash", "_nulls", *drops,
                           alive.alias("_alive0"))
    narrow = _pin(narrow)
    q = narrow.where("_alive0").agg(F.count("Income").alias("n"),
                                    F.percentile("Income", F.array(F.lit(0.25), F.lit(0.75))).alias("q")).collect()[0]
    fence = None
    if int(q["n"]) >= 20:  # a fence from a handful of rows would be noise
        q1, q3 = float(q["q"][0]), float(q["q"][1])
        fence = q3 + PARAMETERS.extreme_iqr * (q3 - q1)
    extreme = F.coalesce(F.col("Income") > fence, F.lit(False)) if fence is not None else F.lit(False)
    narrow = narrow.withColumn("_d_extreme_income", extreme & F.col("_alive0"))
    narrow = narrow.withColumn("_alive", F.col("_alive0") & ~F.col("_d_extreme_income"))
    narrow = narrow.withColumn("_d_odd_marital_status", F.col("_odd") & F.col("_alive"))
    same = Window.partitionBy("_alive", "_hash", "_nulls").orderBy("_row")
    narrow = narrow.withColumn("_d_duplicate_record", F.col("_alive") & (F.row_number().over(same) > 1))
    # Counts, examples (first five rows by position) and the latest enrolment date in one job:
    # every flagged row once per rule it meets, ranked within its rule.
    names = list(RULES)
    hits = F.filter(F.array(*[F.when(F.col(f"_d_{n}"), F.lit(i)) for i, n in enumerate(names)]),
                    lambda x: x.isNotNull())
    kept_date = F.max(F.when(F.col("_alive"), F.col("_date")))
    per_rule = Window.partitionBy("_rule")
    exploded = (narrow.select("_row", "ID", F.explode(hits).alias("_rule"))
                .withColumn("_n", F.count(F.lit(1)).over(per_rule))
                .withColumn("_rank", F.row_number().over(per_rule.orderBy("_row")))
                .where(F.col("_rank") <= PARAMETERS.examples))
    summary = narrow.agg(F.sum(F.col("_alive").cast("long")).alias("_used"), F.count(F.lit(1)).alias("_read"),
                         kept_date.alias("_latest"))
    flagged = exploded.select("_rule", "_n", "_rank", "_row", "ID").collect()
    totals = summary.collect()[0]
    by_rule: dict[int, list] = {}
    for row in flagged:
        by_rule.setdefault(int(row["_rule"]), []).append(row)
    results = []
    for i, name in enumerate(names):
        action, description = RULES[name]
        rows = sorted(by_rule.get(i, []), key=lambda r: r["_rank"])
        count = int(rows[0]["_n"]) if rows else 0
        examples = [int(r["ID"]) if r["ID"] is not None else f"line {int(r['_row']) + 2}" for r in rows]
        results.append(RuleResult(name, action, count, description, examples))
    report = CleaningReport(rows_read=int(totals["_read"]), rows_used=int(totals["_used"] or 0), rules=results)
    # Rows the row-local rules keep, minus repeated IDs and extreme incomes (a narrow anti-join).
    keep_local = F.lit(True)
    for name in local:
        keep_local = keep_local & ~local[name]
    if fence is not None:
        keep_local = keep_local & ~F.coalesce(F.col("Income") > fence, F.lit(False))
    repeated = narrow.where(F.col("_d_duplicate_id")).select("_row")
    if report.dropped.get("duplicate_id", 0) <= _BROADCAST_ROWS:
        # Spark cannot size the filtered cache beforehand and would shuffle every wide row to join.
        repeated = F.broadcast(repeated)
    cleaned = df.where(keep_local).join(repeated, "_row", "left_anti")
    cleaned = cleaned.select(*[fixed.alias("Marital_Status") if c == "Marital_Status" else F.col(f"`{c}`")
                               for c in cols])
    # The latest enrolment date is Customer_since's reference (no extra pass); the narrow frame stays
    # cached until the caller has materialised the cleaned rows.
    return cleaned, report, {"latest_date": totals["_latest"], "cached": [narrow]}


# ---------------------------------------------------------------------------- features
def add_features(df, *, reference_year: int = DEFAULT_REFERENCE_YEAR, reference_date=None):
    """Add every engineered column of :func:`core.reading.features.add_features`, with the same values.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Cleaned customers.
    reference_year : int, default 2026
    reference_date : datetime.date, optional
        Defaults to the latest ``Dt_Customer`` in ``df``.

    Returns
    -------
    frame : pyspark.sql.DataFrame
    reference_date : datetime.date or None
    """
    F = _F()
    cols = df.columns

    def total(columns):
        expr = F.lit(0.0)
        for c in columns:
            expr = expr + F.coalesce(F.col(c), F.lit(0.0))
        return expr

    if reference_date is None:
        reference_date = df.agg(F.max(_DATE)).collect()[0][0]
    spend = total(schema.SPEND_COLUMNS)
    channels = ["NumWebPurchases", "NumCatalogPurchases", "NumStorePurchases"]
    accepted = [c for c in schema.CAMPAIGN_COLUMNS if c != "Response" and c in cols]
    out = df.select(
        "*",
        (F.lit(float(reference_year)) - F.col("Year_Birth")).alias("Age"),
        (F.col("Kidhome") + F.col("Teenhome")).alias("Total_Children"),
        spend.alias("Total_Spending"),
        (F.datediff(F.lit(reference_date), F.col(_DATE)).cast("double") if reference_date is not None
         else F.lit(None).cast("double")).alias("Customer_since"),
        total(schema.PURCHASE_COLUMNS).alias("Total_Purchases"),
        (total(accepted) if accepted else F.lit(0.0)).alias("Campaigns_Accepted"),
    )
    bought = total(channels)
    shares = [F.when(F.col("Total_Spending") != 0, F.col(c) / F.col("Total_Spending")).otherwise(0.0).alias(s)
              for c, s in zip(schema.SPEND_COLUMNS, SHARE_COLUMNS)]
    shares += [F.when(bought != 0, F.col(c) / bought).otherwise(0.0).alias(s)
               for c, s in zip(channels, CHANNEL_COLUMNS)]
    return out.select("*", *shares), reference_date


def _pin(df):
    """``df`` kept on the cluster for the queries that follow: cached, or over Spark Connect checkpointed.

    Over Spark Connect every query sends its whole plan and the server analyses it again; the
    read-parse-clean-features plan is hundreds of expressions deep (seconds per round trip on a
    small table). A local checkpoint (eager) keeps the same rows on the server and the plan
    becomes one reference; a classic session analyses once per DataFrame and caches.
    """
    if type(df).__module__.startswith("pyspark.sql.connect"):
        return df.localCheckpoint(eager=True)
    return df.cache()


def prepare(spark, uri: str, *, reference_year: int = DEFAULT_REFERENCE_YEAR) -> SparkPrepared:
    """Read, parse, clean and engineer features of a customer table in Spark.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    uri : str
    reference_year : int, default 2026

    Returns
    -------
    SparkPrepared

    Raises
    ------
    core.reading.loading.DataFileError
    """
    table = read_table(spark, uri)
    parsed, info = parse_table(spark, table)
    cleaned, report, facts = clean(parsed, reference_year=reference_year)
    if report.rows_used == 0:
        raise DataFileError(f"{table.source}: no customer rows left after cleaning "
                            f"(dropped: {', '.join(f'{k} {v}' for k, v in report.dropped.items() if v)})")
    frame, reference_date = add_features(cleaned, reference_year=reference_year,
                                         reference_date=facts["latest_date"])
    frame = _pin(frame)
    rows = frame.count()  # materialise the cache before the staging copies are released
    for cached in [parsed, *facts["cached"]]:
        cached.unpersist()
    if rows != report.rows_used:  # pragma: no cover - the two computations must agree
        raise DataFileError(f"{table.source}: {rows} rows kept but the cleaning report says {report.rows_used}")
    info["reference_date"] = str(reference_date) if reference_date is not None else None
    return SparkPrepared(frame, report, info, table.source, report.rows_used)


def to_pandas(df) -> pd.DataFrame:
    """Collect a (small) Spark frame as pandas, ordered by ``_row`` and indexed by it (tests, samples).

    Parameters
    ----------
    df : pyspark.sql.DataFrame

    Returns
    -------
    pandas.DataFrame
    """
    out = df.orderBy("_row").toPandas()
    out.index = out.pop("_row").to_numpy()
    if _DATE in out:
        out[_DATE] = pd.to_datetime(out[_DATE])
    return out

