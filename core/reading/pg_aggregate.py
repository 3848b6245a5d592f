"""A transaction log in PostgreSQL aggregated to customers by one ``GROUP BY`` on the server.

Instead of copying every order row out (COPY, then :func:`core.reading.transactions.aggregate`), the
server sums each customer's rows and only one row per customer comes back (by COPY, into a
temporary file). The customers are those of the pandas path row for row: the same per-customer
totals go through :func:`core.reading.transactions.from_totals`. The pushdown takes a *clean, typed* log:

- customer ID: an integer column, or a text column whose values are not numbers (pandas would
  read those as numbers) and never empty;
- date: ``date``, ``timestamp`` or ``timestamptz`` (taken in UTC, as the export does);
- amount and quantity: integer, ``numeric`` or ``double precision`` (``real`` prints differently
  from its value and stays with pandas); order ID: integer, or text that is not a number.

Any NULL customer ID, date or amount, a NaN or infinite amount, an empty order ID, or another
type: :func:`aggregate` returns ``None`` with the reason and the caller copies the log out, so
pandas' rules (and messages) for such rows stay the reference.

A database source travels as a :class:`core.reading.postgres.PgSource`: ``python -m core`` copies
only the first rows out (:data:`HEAD_ROWS`, enough to detect the layout and suggest the mapping) and
hands the source to the input stage (:func:`core.reading.mapping.prepare_input`), whose
:func:`aggregate_log` groups the log on the server, or copies the whole log over the head and
aggregates the file when the server cannot take it exactly.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from core.reading import postgres
from core.reading.transactions import Aggregated, TransactionColumns, choose_date_format, from_totals
from core.reading.transactions import aggregate as aggregate_file

__all__ = ["aggregate", "aggregate_log", "ENGINE", "HEAD_ROWS"]

#: Rows copied out first to detect the layout (the mapping reads 2,000).
HEAD_ROWS = 5000

#: ``Aggregated.engine`` of a log aggregated on the server.
ENGINE = "postgresql"
_INTS = {20, 21, 23}  # bigint, smallint, integer
_NUMBERS = _INTS | {701, 1700}  # double precision, numeric
_TEXTS = {25, 1042, 1043}  # text, char(n), varchar
_DAY = {1082: "({} - DATE '1970-01-01')", 1114: "({}::date - DATE '1970-01-01')",
        1184: "(({} AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"}
# Text pandas would read as a number (then IDs or order IDs are numbers there): left to the pandas path.
_NUMBER_LIKE = r"^\s*[-+]?(\d|\.\d|inf|nan)"


def _plan(types: dict[str, int], columns: TransactionColumns) -> str | None:
    """Why the log cannot be aggregated on the server (None when it can)."""
    if columns.category or columns.channel:
        return "a category or channel column is mapped"
    for role in ("customer_id", "date", "amount", "quantity", "order_id"):
        name = getattr(columns, role)
        if name and name not in types:
            return f"no column {name}"
    if types[columns.customer_id] not in _INTS | _TEXTS:
        return f"customer ID column {columns.customer_id} is neither integer nor text"
    if types[columns.date] not in _DAY:
        return f"date column {columns.date} is not a date or timestamp"
    for role in ("amount", "quantity"):
        name = getattr(columns, role)
        if name and types[name] not in _NUMBERS:
            return f"{role} column {name} is not an integer, numeric or double precision"
    if columns.order_id and types[columns.order_id] not in _INTS | _TEXTS:
        return f"order ID column {columns.order_id} is neither integer nor text"
    return None


def _sql(types: dict[str, int], columns: TransactionColumns, select):
    from psycopg import sql

    col = {r: sql.Identifier(getattr(columns, r)) for r in ("customer_id", "date", "amount", "quantity", "order_id")
           if getattr(columns, r)}
    text_id = types[columns.customer_id] in _TEXTS
    cid = sql.SQL("btrim({}, E' \\t\\r\\n')").format(col["customer_id"]) if text_id else col["customer_id"]
    a = sql.SQL("{}::float8").format(col["amount"]) if types[columns.amount] == 701 else col["amount"]
    problem = [sql.SQL("{} IS NULL").format(col["customer_id"]), sql.SQL("{} IS NULL").format(col["date"]),
               sql.SQL("{} IS NULL").format(col["amount"])]
    if text_id:
        problem += [sql.SQL("{} = ''").format(cid), sql.SQL("{} ~* {}").format(cid, sql.Literal(_NUMBER_LIKE))]
    if types[columns.amount] in (701, 1700):
        problem.append(sql.SQL("{} IN ('NaN', 'Infinity', '-Infinity')").format(col["amount"]))
    if "quantity" in col and types[columns.quantity] in (701, 1700):
        problem.append(sql.SQL("{} IN ('NaN', 'Infinity', '-Infinity')").format(col["quantity"]))
    orders = sql.SQL("count(*)")
    if "order_id" in col:
        if types[columns.order_id] in _TEXTS:
            order = sql.SQL("btrim({}, E' \\t\\r\\n')").format(col["order_id"])
            problem += [sql.SQL("{} IS NULL").format(col["order_id"]), sql.SQL("{} = ''").format(order),
                        sql.SQL("{} ~* {}").format(order, sql.Literal(_NUMBER_LIKE))]
        else:
            order = col["order_id"]
            problem.append(sql.SQL("{} IS NULL").format(col["order_id"]))
        orders = sql.SQL("count(DISTINCT {})").format(order)
    day = sql.SQL(_DAY[types[columns.date]]).format(col["date"])
    parts = [sql.SQL("{} AS id").format(cid), sql.SQL("count(*) AS rows"),
             sql.SQL("sum(({})::int) AS nbad").format(sql.SQL(" OR ").join(problem)),
             sql.SQL("min({}) AS first").format(day), sql.SQL("max({}) AS last").format(day),
             sql.SQL("sum({})::float8 AS monetary").format(a),
             sql.SQL("sum(({} <= 0)::int) AS nonpos").format(col["amount"]), sql.SQL("{} AS orders").format(orders),
             # The exact sum of the amounts (numeric), for the log's total.
             sql.SQL("sum({}::numeric) AS exact").format(col["amount"]) if types[columns.amount] != 701
             else sql.SQL("sum({}) AS exact").format(a)]
    if "quantity" in col:
        parts.append(sql.SQL("sum(coalesce({}, 0))::float8 AS quantity").format(col["quantity"]))
    return sql.SQL("COPY (SELECT {} FROM ({}) AS q GROUP BY 1) TO STDOUT WITH (FORMAT csv, HEADER true)").format(
        sql.SQL(", ").join(parts), select), text_id


def aggregate(url, columns: TransactionColumns, query: str | None = None, *, folder=None):
    """A log's customers by one ``GROUP BY`` on the server, or ``(None, reason)`` when pandas must do it.

    Parameters
    ----------
    url : str or core.reading.postgres.PgSource
        ``postgresql://...?table=schema.orders`` (or the URL with ``query``), or the parsed source.
    columns : TransactionColumns
        The table's column of each role.
    query : str, optional
        A SELECT instead of the table.
    folder : path-like, optional
        Where the per-customer rows are spooled (default: the system's temporary folder).

    Returns
    -------
    (core.reading.transactions.Aggregated or None, str)
        The customers (``engine`` ``"postgresql"``) and ``""``; or None and why the server cannot
        aggregate this log exactly as the pandas path does.

    Raises
    ------
    core.reading.postgres.PostgresError
        The server cannot be reached, the table or query cannot be read, or it has no rows.
    """
    import psycopg

    source = url if isinstance(url, postgres.PgSource) else postgres.parse(url, query)
    with tempfile.TemporaryDirectory(prefix="segmentlens-pgagg-", dir=folder) as tmp:
        path = Path(tmp) / "totals.csv"
        with postgres.connect(source, read_only=True) as conn:
            try:
                with conn.cursor() as cur:
                    cur.execute("SET TIME ZONE 'UTC'")
                    types, select = dict(source.columns(cur)), source.select()
                    why = _plan(types, columns)
                    if why:
                        return None, why
                    statement, text_id = _sql(types, columns, select)
                    with open(path, "wb") as out, cur.copy(statement) as copy:
                        for block in copy:
                            out.write(block)
            except psycopg.OperationalError as exc:
                raise postgres.PostgresError(f"{source.display}: the connection was lost while reading "
                                             f"({str(exc).strip().splitlines()[0][:200]})") from None
            except psycopg.Error as exc:
                raise postgres.PostgresError(f"{source.display}: the log cannot be aggregated: "
                                             f"{str(exc).strip().splitlines()[0][:200]}") from None
        floats = {n: "float64" for n in ("rows", "nbad", "first", "last", "monetary", "nonpos", "orders", "quantity")}
        table = pd.read_csv(path, dtype=dict(floats, id=str if text_id else "Int64", exact=str),
                            keep_default_na=False, na_values={n: [""] for n in ["id", *floats]})
    if not len(table):
        raise postgres.PostgresError(f"{source.display}: the log returned no rows")
    if int(table["nbad"].sum()) or table["id"].isna().any():
        return None, "some rows have an empty ID, date, amount or order ID, or a value pandas reads otherwise"
    ids = table["id"].to_numpy(dtype="int64") if not text_id else table["id"].to_numpy(dtype=object)
    names = ["first", "last", "rows", "monetary", "nonpos", "orders"] + (["quantity"] if columns.quantity else [])
    base = pd.DataFrame({n: table[n].to_numpy(dtype="float64") for n in names}, index=pd.Index(ids))
    fmt, _ = choose_date_format(pd.Series(["1970-01-31"]))  # what the pandas path reads exported dates with
    total = float(sum(float(x) for x in table["exact"]))
    return from_totals(base, columns, rows=int(table["rows"].sum()), nonpositive=int(table["nonpos"].sum()),
                       total=total, date_format=fmt, engine=ENGINE), ""


def aggregate_log(source, columns: TransactionColumns, *, sep: str, encoding: str = "utf-8", name: str = "file",
                  database: postgres.PgSource | None = None, **options) -> Aggregated:
    """A log's customers: grouped on the server when ``source`` is the head of ``database``, else from the file.

    Parameters
    ----------
    source : path-like or bytes
        The log, or the first rows of ``database`` (a path then).
    columns : TransactionColumns
    sep, encoding, name
        As :func:`core.reading.transactions.aggregate`.
    database : core.reading.postgres.PgSource, optional
        The table or query ``source`` holds the head of.
    **options
        Passed on to :func:`core.reading.transactions.aggregate` (``chunk_rows``, ``engine``...).

    Returns
    -------
    core.reading.transactions.Aggregated
        ``engine`` says which path ran (``postgresql``, ``duckdb`` or ``pandas``); ``engine_note``
        why a database log was copied out instead.

    Raises
    ------
    core.reading.loading.DataFileError
        As the file path; a :class:`core.reading.postgres.PostgresError` for the database.
    """
    if database is None:
        return aggregate_file(source, columns, sep=sep, encoding=encoding, name=name, **options)
    pushed, why = aggregate(database, columns, folder=Path(source).parent)
    if pushed is not None:
        return pushed
    postgres.export(database, source)  # the whole log over the head, as a file
    result = aggregate_file(source, columns, sep="\t", encoding="utf-8", name=name, **options)
    result.engine_note = f"aggregated after copying every row out: {why}"
    return result
