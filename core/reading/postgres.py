"""PostgreSQL in and out: customer tables and logs read from a database, segments written back.

Reading
    ``postgresql://user@host:5432/db?table=crm.customers`` (or the URL with a query) is
    streamed by ``COPY (SELECT ...) TO STDOUT`` into a temporary tab-separated file, which
    then goes through the same readers, column mapping, cleaning and streaming as a file
    (:func:`local_copy`). COPY was measured against a server-side cursor
    (``benchmarks/bench_postgres.py``): it is faster and its memory does not grow with the
    table. Dates and timestamps become ``yyyy-mm-dd`` (timestamps with a time zone are
    taken in UTC), booleans 0/1, NULL an empty cell.
Writing
    :func:`write_scores` loads ``id, segment, segment_name, confidence, model_version,
    scored_at`` into a staging table and, in the same transaction, swaps it in for the
    target (``replace``) or merges it into the target by ``id`` (``upsert``). Readers see
    the old table or the new one; a connection lost before the commit leaves the old table.
Credentials
    Never needed in the URL: libpq reads ``PGPASSWORD``, a service file (``PGSERVICEFILE``,
    ``service=`` in the URL) or ``~/.pgpass`` (``PGPASSFILE``); ``SEGMENTLENS_DB_SECRETS``
    names a secrets file in .pgpass format. A password given in a URL is used for the run but
    never stored: versions record :func:`safe_url`.

Every failure is a :class:`PostgresError` (a :class:`core.reading.loading.DataFileError`): one line
naming the host, table, query or column, and what was expected.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import pandas as pd

from core.reading.loading import DataFileError

__all__ = ["PostgresError", "PgSource", "is_url", "parse", "safe_url", "connect", "export", "local_copy",
           "write_scores", "read_scores_csv", "CONNECT_TIMEOUT", "SECRETS_ENV", "SYNC_ENV", "SCORE_COLUMNS",
           "MODES", "jdbc_options", "JDBC_DRIVER"]

#: Seconds libpq waits for a server; with start-up costs an unreachable host is reported within 5 s.
CONNECT_TIMEOUT = 4
#: Environment variable naming a secrets file in .pgpass format (``host:port:db:user:password`` lines).
SECRETS_ENV = "SEGMENTLENS_DB_SECRETS"
#: Environment variable with the table URL rewritten whenever a version is activated or rolled back.
SYNC_ENV = "SEGMENTLENS_SYNC_URL"
SCORE_COLUMNS = ("id", "segment", "segment_name", "confidence", "model_version", "scored_at")
MODES = ("replace", "upsert")
_SCHEMES = ("postgresql://", "postgres://")
_NAME = r"[A-Za-z_][A-Za-z0-9_$]*"
_TABLE_RE = re.compile(rf"^{_NAME}(\.{_NAME})?$")
_OWN_PARAMS = ("table",)
# OIDs of the types written in a form the file readers take.
_DATE_TYPES = {1082: "date", 1114: "timestamp", 1184: "timestamptz"}
_BOOL = 16
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_APP = "segmentlens"


class PostgresError(DataFileError):
    """A database source or target that cannot be used (one line, no password in it)."""


def is_url(text) -> bool:
    """True for a ``postgresql://`` or ``postgres://`` URL.

    Parameters
    ----------
    text : str or path-like or None

    Returns
    -------
    bool
    """
    return isinstance(text, str) and text.strip().lower().startswith(_SCHEMES)


def safe_url(url: str) -> str:
    """The URL without its password (what a version, the audit log and messages show).

    Parameters
    ----------
    url : str

    Returns
    -------
    str
    """
    parts = urlsplit(url.strip())
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}" if user else host
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass
class PgSource:
    """A parsed PostgreSQL URL.

    Parameters
    ----------
    conninfo : str
        The URL for libpq (without SegmentLens' own ``table``); not in the repr (it may hold a password).
    table : str or None
        ``schema.table`` or ``table``.
    query : str or None
        A SELECT to read instead of a table.
    display : str
        The URL without its password (plus the query, shortened).
    """

    conninfo: str = field(repr=False)
    table: str | None
    query: str | None
    display: str

    @property
    def file_name(self) -> str:
        """A name for the local copy (the table's, else ``query``)."""
        return f"{self.table or 'query'}.tsv"

    def relation(self):
        """The table as a :class:`psycopg.sql.Identifier` (schema-qualified when given)."""
        from psycopg import sql

        return sql.Identifier(*self.table.split("."))

    def select(self):
        """``SELECT * FROM`` the table, or the query, as a :class:`psycopg.sql.SQL`."""
        from psycopg import sql

        return sql.SQL("SELECT * FROM {}").format(self.relation()) if self.table else sql.SQL(self.query)

    def columns(self, cur) -> list[tuple[str, int]]:
        """The name and type OID of each column, read through the cursor ``cur`` (no rows)."""
        from psycopg import sql

        cur.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(self.select()))
        return [(d.name, d.type_code) for d in cur.description or []]


def parse(url: str, query: str | None = None, *, need_table: bool = False) -> PgSource:
    """Split a URL into what libpq reads and what SegmentLens reads (``table``).

    Parameters
    ----------
    url : str
    query : str, optional
        A SELECT (``--query``); then the URL names no table.
    need_table : bool, default False
        The URL must name a table (a write-back target).

    Returns
    -------
    PgSource

    Raises
    ------
    PostgresError
        No table and no query, both, or a table name that is not ``schema.table``.
    """
    if not is_url(url):
        raise PostgresError("expected a URL such as postgresql://user@host:5432/db?table=crm.customers")
    parts = urlsplit(url.strip())
    params = parse_qsl(parts.query, keep_blank_values=True)
    table = next((v for k, v in params if k == "table"), None)
    rest = [(k, v) for k, v in params if k not in _OWN_PARAMS]
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest, quote_via=quote), ""))
    shown = safe_url(url)
    if table is not None:
        table = unquote(table).strip()
        if not _TABLE_RE.match(table):
            raise PostgresError(f"{shown}: table {table!r} is not a name such as crm.customers or customers")
    if need_table and not table:
        raise PostgresError(f"{shown}: name the table to write, such as ?table=marketing.segments")
    if query is not None and not query.strip():
        raise PostgresError("--query is empty: expected a SELECT")
    if table and query:
        raise PostgresError(f"{shown}: give a table (?table=...) or --query, not both")
    if not need_table and not table and not query:
        raise PostgresError(f"{shown}: name a table (?table=crm.customers) or give --query \"SELECT ...\"")
    display = shown if not query else f"{shown} (query: {' '.join(query.split())[:80]})"
    return PgSource(conninfo, table, query.strip().rstrip(";") if query else None, display)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:200]
    return type(exc).__name__


def connect(source: PgSource, *, timeout: int = CONNECT_TIMEOUT, read_only: bool = False,
            application: str = _APP):
    """Open a connection (credentials from the environment, a service file, .pgpass or the secrets file).

    Parameters
    ----------
    source : PgSource
    timeout : int, default 4
        Seconds before an unreachable server is given up.
    read_only : bool, default False
        Every transaction of the connection is read-only (for reading sources).
    application : str
        ``application_name`` the server shows (pg_stat_activity).

    Returns
    -------
    psycopg.Connection

    Raises
    ------
    PostgresError
        Unreachable server, refused credentials, unknown database.
    """
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the package is a runtime requirement
        raise PostgresError("PostgreSQL sources need the psycopg package (pip install -r requirements.txt)") from None
    kwargs = {"connect_timeout": timeout, "application_name": application}
    secrets = os.environ.get(SECRETS_ENV)
    if secrets:
        if not Path(secrets).is_file():
            raise PostgresError(f"{SECRETS_ENV}={secrets}: no such file")
        kwargs["passfile"] = secrets
    if read_only:
        kwargs["options"] = "-c default_transaction_read_only=on"
    try:
        return psycopg.connect(source.conninfo, **kwargs)
    except psycopg.Error as exc:
        raise PostgresError(f"cannot connect to {safe_url(source.conninfo)}: {_connect_reason(exc)}") from None


def _connect_reason(exc: BaseException) -> str:
    line = _first_line(exc)
    # libpq prefixes "connection failed: connection to server at "h" (ip), port p failed: "; keep the reason.
    reason = line.rsplit(" failed: ", 1)[-1].replace("FATAL:", "").strip()
    if "timeout" in line.lower():
        return "the server did not answer (timeout)"
    return reason or line


def _readable_select(source: PgSource, columns: list[tuple[str, int]]):
    """``SELECT <each column in a form the readers take> FROM (...)``: dates as text, booleans 0/1."""
    from psycopg import sql

    exprs = []
    for name, oid in columns:
        ident = sql.Identifier(name)
        kind = _DATE_TYPES.get(oid)
        if kind == "timestamptz":
            expr = sql.SQL("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD')").format(ident)
        elif kind:
            expr = sql.SQL("to_char({}, 'YYYY-MM-DD')").format(ident)
        elif oid == _BOOL:
            expr = sql.SQL("{}::int").format(ident)
        else:
            expr = ident
        exprs.append(sql.SQL("{} AS {}").format(expr, ident))
    return sql.SQL("SELECT {} FROM ({}) AS q").format(sql.SQL(", ").join(exprs), source.select())


def _export_sql(source: PgSource, columns: list[tuple[str, int]], limit: int | None = None):
    """``COPY (SELECT <each column in a form the readers take>) TO STDOUT`` as tab-separated text."""
    from psycopg import sql

    select = _readable_select(source, columns)
    if limit is not None:
        select = sql.SQL("{} LIMIT {}").format(select, sql.Literal(int(limit)))
    return sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, NULL '')").format(select)


#: The PostgreSQL JDBC driver's class (Debian's libpostgresql-jdbc-java: /usr/share/java/postgresql.jar).
JDBC_DRIVER = "org.postgresql.Driver"


def jdbc_options(url: str, query: str | None = None) -> dict:
    """Options for Spark's JDBC reader of a table or query: the same rows, in the same forms, as :func:`export`.

    The credentials are libpq's (``PGPASSWORD``, ``.pgpass``, a service file or the secrets file): a
    connection is opened here first, which also checks the host, the password and the columns,
    and the password it used is handed to the JDBC driver (Spark redacts it in its plans and logs).

    Parameters
    ----------
    url : str
    query : str, optional

    Returns
    -------
    dict
        ``url`` (``jdbc:postgresql://host:port/db``), ``dbtable`` (a subquery), ``user``, ``password``,
        ``driver``, ``fetchsize``, ``sessionInitStatement`` (read-only, UTC).

    Raises
    ------
    PostgresError
        As :func:`export`: unreachable server, refused credentials, a missing table or column, a
        server reached through a unix socket (JDBC reads over TCP).
    """
    import psycopg

    source = parse(url, query)
    with connect(source, read_only=True) as conn:
        try:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                columns = source.columns(cur)
                select = _readable_select(source, columns).as_string(conn)
        except psycopg.Error as exc:
            raise _query_error(source, exc) from None
        info = conn.info
        host, port, dbname, user, password = info.host, info.port, info.dbname, info.user, info.password
    if host.startswith("/"):
        raise PostgresError(f"{source.display}: the Spark engine reads over TCP; give a host name, not a socket")
    return {"url": f"jdbc:postgresql://{host}:{port}/{quote(dbname, safe='')}", "dbtable": f"({select}) AS q",
            "user": user, "password": password or "", "driver": JDBC_DRIVER, "fetchsize": "10000",
            "sessionInitStatement": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET TIME ZONE 'UTC'"}


def _what(source: PgSource) -> str:
    return f"table {source.table}" if source.table else "the query"


def _query_error(source: PgSource, exc: BaseException) -> PostgresError:
    line = _first_line(exc)
    return PostgresError(f"{source.display}: {_what(source)} cannot be read: {line}")


def export(source: PgSource, path, *, limit: int | None = None) -> int:
    """Stream a table or query into a tab-separated file (header line first) by COPY.

    Parameters
    ----------
    source : PgSource
    path : path-like
        The file to write.
    limit : int, optional
        Only the first rows (the head a layout is detected from).

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    PostgresError
        Missing table or column, a query that fails or returns no rows, a column with no name.
    """
    import psycopg

    with connect(source, read_only=True) as conn:
        try:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                columns = source.columns(cur)
                unnamed = [i + 1 for i, (n, _) in enumerate(columns) if not n or n == "?column?"]
                if unnamed:
                    raise PostgresError(f"{source.display}: column {unnamed[0]} of the query has no name; "
                                        "name it with AS")
                if len({n for n, _ in columns}) != len(columns):
                    raise PostgresError(f"{source.display}: two columns of {_what(source)} have the same name")
                with open(path, "wb") as out, cur.copy(_export_sql(source, columns, limit)) as copy:
                    for block in copy:
                        out.write(block)
                rows = cur.rowcount
        except PostgresError:
            raise
        except psycopg.OperationalError as exc:
            raise PostgresError(f"{source.display}: the connection was lost while reading "
                                f"({_first_line(exc)})") from None
        except psycopg.Error as exc:
            raise _query_error(source, exc) from None
    if rows == 0:
        raise PostgresError(f"{source.display}: {_what(source)} returned no rows")
    return int(rows)


@dataclass
class LocalCopy:
    """A database source copied to a temporary file for the file readers.

    Parameters
    ----------
    path : pathlib.Path
    rows : int
    display : str
        The source without its password.
    """

    path: Path
    rows: int
    display: str


@contextlib.contextmanager
def local_copy(url: str, query: str | None = None, *, folder=None) -> Iterator[LocalCopy]:
    """Copy a table or query to a temporary tab-separated file, removed on exit.

    Parameters
    ----------
    url : str
    query : str, optional
    folder : path-like, optional
        Where the temporary folder goes (default: the system's).

    Yields
    ------
    LocalCopy
    """
    source = parse(url, query)
    with tempfile.TemporaryDirectory(prefix="segmentlens-pg-", dir=folder) as tmp:
        path = Path(tmp) / source.file_name
        rows = export(source, path)
        yield LocalCopy(path, rows, source.display)


# ------------------------------------------------------------------------------------ writing
def _unescape(value):
    """Undo the CSV export's formula guard (a quote before a leading =, +, -, @)."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1] in _FORMULA_START:
        return value[1:]
    return value


def read_scores_csv(path, chunk_rows: int = 200_000) -> Iterator[pd.DataFrame]:
    """The rows of a score CSV (``python -m core score --out``) in chunks: ID, segment, segment_name, confidence.

    Parameters
    ----------
    path : path-like
    chunk_rows : int, default 200000

    Yields
    ------
    pandas.DataFrame
    """
    reader = pd.read_csv(path, dtype={"ID": str, "segment_name": str}, keep_default_na=False,
                         usecols=["ID", "segment", "segment_name", "confidence"], chunksize=chunk_rows)
    for chunk in reader:
        chunk["ID"] = chunk["ID"].map(_unescape)
        chunk["segment_name"] = chunk["segment_name"].map(_unescape)
        yield chunk


def write_scores(url: str, chunks: Iterable[pd.DataFrame], *, model_version: str, mode: str = "replace",
                 scored_at: str | None = None, connection=None) -> int:
    """Write scored customers to a table atomically: a staging table swapped in (or merged) in one transaction.

    Parameters
    ----------
    url : str
        ``postgresql://...?table=schema.table``.
    chunks : iterable of pandas.DataFrame
        Columns ``ID``, ``segment``, ``segment_name``, ``confidence``.
    model_version : str
    mode : {"replace", "upsert"}
        ``replace``: the table becomes exactly these rows. ``upsert``: rows with a new ``id``
        are added, rows with a known one updated, others kept (the table needs ``id`` as its
        primary key or unique, as ``replace`` creates it).
    scored_at : str, optional
        ISO time (default: now, UTC).
    connection : psycopg.Connection, optional
        An open connection to use (its transaction state must be idle); one is opened otherwise.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    PostgresError
        Unreachable server, no permission, missing schema, a lost connection (then nothing
        changed), an upsert into a table without a unique ``id``.
    """
    import psycopg
    from psycopg import sql

    if mode not in MODES:
        raise PostgresError(f"--mode must be replace or upsert, got {mode!r}")
    target = parse(url, need_table=True)
    scored_at = scored_at or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts = target.table.split(".")
    schema, name = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    staging_name = f"{name[:40]}__staging_{uuid.uuid4().hex[:8]}"
    staging = sql.Identifier(*( [schema] if schema else []), staging_name)
    own = connection is None
    conn = connect(target, application=f"{_APP}-write") if own else connection
    rows = 0
    try:
        with conn.transaction(), conn.cursor() as cur:
            temp = sql.SQL("TEMP ") if mode == "upsert" else sql.SQL("")
            table_for_staging = sql.Identifier(staging_name) if mode == "upsert" else staging
            cur.execute(sql.SQL("CREATE {}TABLE {} (id text NOT NULL, segment integer NOT NULL, segment_name text, "
                                "confidence double precision, model_version text NOT NULL, "
                                "scored_at timestamptz NOT NULL)").format(temp, table_for_staging))
            with cur.copy(sql.SQL("COPY {} (id, segment, segment_name, confidence, model_version, scored_at) "
                                  "FROM STDIN").format(table_for_staging)) as copy:
                for chunk in chunks:
                    for row in zip(chunk["ID"].astype(str), chunk["segment"].astype(int),
                                   chunk["segment_name"].astype(str), chunk["confidence"].astype(float)):
                        copy.write_row((*row, model_version, scored_at))
                    rows += len(chunk)
            if rows == 0:
                raise PostgresError(f"{target.display}: no scored rows to write")
            cur.execute(sql.SQL("SELECT bool_and(id ~ '^-?[0-9]{{1,18}}$') FROM {}").format(table_for_staging))
            numeric = bool(cur.fetchone()[0])
            if numeric:
                cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN id TYPE bigint USING id::bigint")
                            .format(table_for_staging))
            if mode == "replace":
                cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(staging))
                # The swap: one short exclusive lock at the end; readers see the old or the new table.
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target.relation()))
                cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(staging, sql.Identifier(name)))
            else:
                id_type = sql.SQL("bigint" if numeric else "text")
                cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (id {} PRIMARY KEY, segment integer NOT NULL, "
                                    "segment_name text, confidence double precision, model_version text NOT NULL, "
                                    "scored_at timestamptz NOT NULL)").format(target.relation(), id_type))
                updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                             for c in SCORE_COLUMNS[1:])
                cols = sql.SQL(", ").join(sql.Identifier(c) for c in SCORE_COLUMNS)
                cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (id) DO UPDATE SET {}")
                            .format(target.relation(), cols, cols, table_for_staging, updates))
                cur.execute(sql.SQL("DROP TABLE {}").format(table_for_staging))
    except PostgresError:
        raise
    except psycopg.errors.InvalidColumnReference:
        raise PostgresError(f"{target.display}: upsert needs id to be the primary key (or unique) of table "
                            f"{target.table}; write it once with --mode replace") from None
    except psycopg.errors.UniqueViolation:
        raise PostgresError(f"{target.display}: a customer ID appears twice in the scores") from None
    except psycopg.OperationalError as exc:
        raise PostgresError(f"{target.display}: the connection was lost while writing; table {target.table} is "
                            f"unchanged ({_first_line(exc)})") from None
    except psycopg.Error as exc:
        raise PostgresError(f"{target.display}: cannot write table {target.table}: {_first_line(exc)}") from None
    finally:
        if own:
            conn.close()
    return rows
