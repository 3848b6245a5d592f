"""DuckDB, the embedded query engine that aggregates a transaction log file to customers.

:func:`core.reading.transactions.aggregate` reads a log with pandas in chunks (the reference path). For
a clean log the same per-customer totals come out of one DuckDB ``GROUP BY`` spread over the
cores, with a memory limit so DuckDB spills to a temporary folder rather than grow (how it
compares with pandas and with a plain DuckDB query: ``benchmarks/bench_postgres.py``). This module only runs the SQL: which values count as unreadable, how
dates are read and how the totals become customers stay in :mod:`core.reading.transactions`, so both
paths give the same customers row for row.

Every cell is read as text (``all VARCHAR``); the caller converts. A file DuckDB cannot read
the way pandas does (another encoding, quoting it rejects) raises :class:`Unsupported`, and
the caller falls back to pandas.
"""
from __future__ import annotations

import os
import tempfile

import pandas as pd

__all__ = ["Unsupported", "LogFile", "available", "MEMORY_LIMIT", "NA_TOKENS"]

#: DuckDB's memory limit (it spills to a temporary folder beyond it); ``SEGMENTLENS_DUCKDB_MEMORY`` overrides.
MEMORY_LIMIT = "1GB"
#: Cells read as empty, as by the pandas reader of :mod:`core.reading.transactions`.
NA_TOKENS = ("", "NA", "N/A", "NaN", "nan", "NULL", "null")
_SEPARATORS = {"\t": "\\t", ",": ",", ";": ";"}


class Unsupported(Exception):
    """DuckDB cannot read this file exactly as the pandas reader does (the caller uses pandas)."""


def available() -> bool:
    """True when the ``duckdb`` package is installed.

    Returns
    -------
    bool
    """
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


def _literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


class LogFile:
    """One delimited log file as a DuckDB view ``log`` of text columns ``c0, c1, ...``.

    Parameters
    ----------
    path : path-like
        The file (UTF-8).
    sep : str
        ``"\\t"``, ``","``, ``";"`` or ``r"\\s+"`` (runs of whitespace).
    headers : list of str
        The file's column names in order (from its first line).
    wanted : list of str
        Columns to read; ``self.column[name]`` is the SQL of each (text, NULL for an empty cell).
    memory_limit : str, optional
        Default: ``SEGMENTLENS_DUCKDB_MEMORY`` or :data:`MEMORY_LIMIT`.
    threads : int, optional
        Default: ``SEGMENTLENS_DUCKDB_THREADS``, else the machine's cores.
    """

    def __init__(self, path, sep: str, headers: list, wanted: list, memory_limit: str | None = None,
                 threads: int | None = None):
        import duckdb

        if sep not in _SEPARATORS and sep != r"\s+":
            raise Unsupported(f"separator {sep!r}")
        self.con = duckdb.connect(":memory:")
        limit = memory_limit or os.environ.get("SEGMENTLENS_DUCKDB_MEMORY") or MEMORY_LIMIT
        self.con.execute(f"SET memory_limit = {_literal(limit)}")
        threads = threads or int(os.environ.get("SEGMENTLENS_DUCKDB_THREADS") or 0) or os.cpu_count() or 1
        self.con.execute(f"SET threads = {max(1, int(threads))}")
        # Beyond the limit DuckDB spills to disk: to the system's temporary folder, never the working directory.
        self._spill = tempfile.TemporaryDirectory(prefix="segmentlens-duckdb-")
        self.con.execute(f"SET temp_directory = {_literal(self._spill.name)}")
        self.con.execute("SET preserve_insertion_order = false")  # aggregates only: no order to keep
        self.con.execute("SET enable_progress_bar = false")  # it would write into the CLI's stdout
        positions = {name: i for i, name in enumerate(headers)}
        missing = [w for w in wanted if w not in positions]
        if missing:
            raise Unsupported(f"columns {missing}")
        na = ", ".join(_literal(t) for t in NA_TOKENS)
        if sep == r"\s+":
            # One text column per line, split on runs of whitespace as pandas' delim_whitespace does.
            source = (f"read_csv({_literal(str(path))}, columns={{'line': 'VARCHAR'}}, delim='\\x1f', quote='', "
                      "escape='', header=false, skip=1, auto_detect=false, nullstr='\\x1e')")
            cells = "string_split_regex(trim(line, ' \\t\\r'), '[ \\t]+')"
            select = ", ".join(f"{cells}[{positions[w] + 1}] AS c{positions[w]}" for w in wanted)
            body = f"SELECT {select} FROM {source} WHERE trim(line, ' \\t\\r') <> ''"
        else:
            types = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(headers)))
            # The empty tokens are NULL as the file is parsed (cheaper than a CASE on every cell).
            source = (f"read_csv({_literal(str(path))}, columns={{{types}}}, delim='{_SEPARATORS[sep]}', quote='\"', "
                      "escape='\"', header=false, skip=1, auto_detect=false, null_padding=true, "
                      f"nullstr=[{na}])")
            body = f"SELECT {', '.join(f'c{positions[w]}' for w in wanted)} FROM {source}"
        self.con.execute(f"CREATE VIEW log AS {body}")
        self.column = {w: f"(CASE WHEN c{positions[w]} IN ({na}) THEN NULL ELSE c{positions[w]} END)"
                       if sep == r"\s+" else f"c{positions[w]}" for w in wanted}

    def frame(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Run a query and return its result as a DataFrame (read errors become :class:`Unsupported`).

        Parameters
        ----------
        sql : str
        params : list, optional

        Returns
        -------
        pandas.DataFrame
        """
        import duckdb

        try:
            return self.con.execute(sql, params or []).df()
        except duckdb.Error as exc:  # a line pandas reads differently (or rejects with its own message)
            raise Unsupported(str(exc).splitlines()[0][:200]) from None

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make a DataFrame a table of the connection.

        Parameters
        ----------
        name : str
        frame : pandas.DataFrame
        """
        self.con.register(name, frame)

    def close(self) -> None:
        """Close the connection (and remove what it spilled)."""
        self.con.close()
        self._spill.cleanup()

    def __enter__(self) -> "LogFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
