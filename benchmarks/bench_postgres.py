"""Benchmark PostgreSQL sources and the DuckDB log path against their peers, in one run.

Run: ``python benchmarks/bench_postgres.py [--customers 1000000,5000000] [--log-rows 10000000] [--repeats 1]``.
Starts its own PostgreSQL server (Debian's binaries, a temporary folder, a free port; removed afterwards).
Every measured step runs in a fresh process: seconds (median over repeats) and peak memory (VmHWM).

1. Reading a table: ``COPY ... TO STDOUT`` into a file vs a server-side cursor (``fetchmany``) into a file,
   on the largest customer table (the choice made in core/reading/postgres.py).
2. Training (``python -m core train``) on N customers from Parquet vs from the same rows in a PostgreSQL
   table (``--data postgresql://...?table=...``), for each N of ``--customers``.
3. A transaction log of ``--log-rows`` rows (1 customer per 10 rows; order IDs, quantity, amount): customers
   by today's chunked pandas path vs DuckDB (file), and from a PostgreSQL table (COPY out + the same path)
   vs one GROUP BY on the server (core.reading.pg_aggregate), whose customers must equal pandas' (checked).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
USER, PASSWORD, DB = "bench", "bench-pw", "bench"

_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
{setup}
start = time.perf_counter()
{body}
print("@@" + json.dumps({{"seconds": time.perf_counter() - start, "peak_mb": hwm(), **extra}}))
"""


def child(body: str, env: dict | None = None, setup: str = "") -> dict:
    """Run ``body`` in a fresh Python (after ``setup``, not timed); it sets ``extra`` (a dict).

    Returns seconds, peak_mb (of the whole process) and extra.
    """
    code = _CHILD.format(root=str(ROOT), body=body, setup=setup)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **(env or {})})
    lines = [ln[ln.index("@@"):] for ln in done.stdout.splitlines() if "@@" in ln]
    if done.returncode != 0 or not lines:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                           else f"child failed (exit {done.returncode})")
    return json.loads(lines[-1][2:])


def median_of(body: str, repeats: int, env: dict | None = None, setup: str = "") -> dict:
    runs = [child(body, env, setup) for _ in range(repeats)]
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "peak_mb": statistics.median(r["peak_mb"] for r in runs), **{k: v for k, v in runs[-1].items()
                                                                         if k not in ("seconds", "peak_mb")}}


class Server:
    """A throwaway PostgreSQL server (as the tests start it)."""

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = Path(found[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="segmentlens-pgbench-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def _owner(self, cmd):
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def __enter__(self):
        import psycopg

        pw = self.root / "pw"
        pw.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(pw, "postgres")
        data = self.root / "data"
        subprocess.run(self._owner([str(self.bin / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pw}",
                                    "--auth-host=scram-sha-256", "--no-sync"]), check=True, capture_output=True)
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(self._owner([str(self.bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                    str(self.root / "log"), "-w", "start"]), check=True, capture_output=True)
        os.environ["PGPASSWORD"] = PASSWORD
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB}")
        return self

    def url(self, db: str = DB) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def __exit__(self, *exc):
        subprocess.run(self._owner([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "stop"]),
                       capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def copy_in(url: str, table: str, create: str, path: Path, sep: str = "\t", date_style: str = "ISO, DMY") -> float:
    """Load a delimited file with a header into a new table (client-side COPY); returns seconds."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(create)
        conn.execute(f"SET DateStyle = '{date_style}'")
        delim = "E'\\t'" if sep == "\t" else f"'{sep}'"
        with conn.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT csv, DELIMITER {delim}, HEADER true)") as cp, \
                open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                cp.write(block)
        conn.execute(f"ANALYZE {table}")
    return time.perf_counter() - start


def customers_table(url: str, parquet: Path, tmp: Path) -> str:
    """The Parquet customers as a typed table ``customers_<n>`` (through a TSV written in blocks)."""
    import pyarrow.parquet as pq

    tsv = tmp / "customers.tsv"
    pf = pq.ParquetFile(parquet)
    first = True
    with open(tsv, "w") as fh:
        for batch in pf.iter_batches(batch_size=200_000):
            frame = batch.to_pandas()
            frame.to_csv(fh, sep="\t", index=False, header=first)
            first = False
    names = pf.schema_arrow.names
    types = {c: "bigint" for c in names}
    types.update(Education="text", Marital_Status="text", Income="numeric(12,2)", Dt_Customer="date")
    table = f"customers_{pf.metadata.num_rows}"
    create = f"CREATE TABLE {table} (" + ", ".join(f'"{c}" {types.get(c, "bigint")}' for c in names) + ")"
    date_style = "ISO, DMY"
    sample = pd.read_csv(tsv, sep="\t", nrows=5, dtype=str)["Dt_Customer"].iloc[0]
    if len(sample) == 10 and sample[4] == "-":
        date_style = "ISO, YMD"
    copy_in(url, table, create, tsv, date_style=date_style)
    tsv.unlink()
    return table


def read_methods(url: str, table: str, tmp: Path, repeats: int) -> None:
    body_copy = f"""
from core.reading.postgres import export, parse
extra = {{"rows": export(parse({url + '?table=' + table!r}), {str(tmp / 'copy.tsv')!r})}}
"""
    body_cursor = f"""
import csv, psycopg
rows = 0
with psycopg.connect({url!r}) as conn, conn.cursor(name="c") as cur, open({str(tmp / 'cursor.tsv')!r}, "w") as fh:
    cur.itersize = 50000
    cur.execute("SELECT * FROM {table}")
    w = csv.writer(fh, delimiter="\\t")
    while True:
        block = cur.fetchmany(50000)
        if not block:
            break
        w.writerows(block)
        rows += len(block)
extra = {{"rows": rows}}
"""
    setup = "import csv, psycopg, pandas\nfrom core.reading.postgres import export, parse"
    a = median_of(body_copy, repeats, setup=setup)
    b = median_of(body_cursor, repeats, setup=setup)
    print(f"read {a['rows']:,} rows to a file: COPY {a['seconds']:.1f} s, {a['peak_mb']:.0f} MB peak; "
          f"server-side cursor {b['seconds']:.1f} s, {b['peak_mb']:.0f} MB (COPY/cursor time "
          f"{a['seconds'] / b['seconds']:.2f})")


def train_compare(url: str, sizes: list[int], tmp: Path, repeats: int) -> str | None:
    from core.reading.synth import write_parquet

    last = None
    for n in sizes:
        parquet = tmp / f"customers_{n}.parquet"
        write_parquet(parquet, n=n, seed=7)
        start = time.perf_counter()
        table = customers_table(url, parquet, tmp)
        load = time.perf_counter() - start
        results = {}
        for name, data in (("parquet", str(parquet)), ("postgres", f"{url}?table={table}")):
            body = f"""
import shutil, tempfile
from core.cli.commands import main
models = tempfile.mkdtemp()
rc = main(["train", "--data", {data!r}, "--models", models, "--quiet", "--json"])
shutil.rmtree(models)
extra = {{"rc": rc}}
"""
            results[name] = median_of(body, repeats, setup="import pandas, sklearn, psycopg, pyarrow")
        p, g = results["parquet"], results["postgres"]
        print(f"train {n:,} customers: Parquet {p['seconds']:.1f} s, {p['peak_mb']:.0f} MB peak; PostgreSQL "
              f"{g['seconds']:.1f} s, {g['peak_mb']:.0f} MB peak (ratio time {g['seconds'] / p['seconds']:.2f}, "
              f"memory {g['peak_mb'] / p['peak_mb']:.2f}); table loaded in {load:.1f} s", flush=True)
        parquet.unlink()
        last = table
    return last


def write_log(path: Path, rows: int, seed: int = 11) -> None:
    """A log without category: order IDs (2 rows each), customer, yyyymmdd date, quantity, amount."""
    rng = np.random.default_rng(seed)
    customers = max(rows // 10, 1)
    block = 1_000_000
    start = np.datetime64("2022-01-01")
    with open(path, "w") as fh:
        fh.write("order_id,customer_id,date,quantity,amount\n")
        for first in range(0, rows, block):
            n = min(block, rows - first)
            frame = pd.DataFrame({"order_id": (first + np.arange(n)) // 2,
                                  "customer_id": rng.integers(1, customers + 1, n),
                                  "date": pd.Series(start + rng.integers(0, 730, n).astype("timedelta64[D]"))
                                  .dt.strftime("%Y%m%d"),
                                  "quantity": rng.integers(1, 4, n),
                                  "amount": np.round(rng.gamma(2.0, 15.0, n) * np.where(rng.random(n) < .01, -1, 1),
                                                     2)})
            frame.to_csv(fh, header=False, index=False)


def log_compare(url: str, rows: int, tmp: Path, repeats: int) -> None:
    path = tmp / "log.csv"
    write_log(path, rows)
    size = path.stat().st_size / 1e6
    cols = 'TransactionColumns("customer_id", "date", "amount", quantity="quantity", order_id="order_id")'
    results = {}
    for engine in ("pandas", "duckdb"):
        body = f"""
from core.reading.transactions import TransactionColumns, aggregate
agg = aggregate({str(path)!r}, {cols}, sep=",", engine={engine!r})
extra = {{"customers": len(agg.customers), "engine": agg.engine,
          "check": float(agg.customers["Monetary"].sum()) + float(agg.customers["Frequency"].sum())}}
"""
        results[engine] = median_of(body, repeats, setup="import duckdb, pandas, core.reading.transactions, core.reading.duck")
    results["peer"] = median_of(_PEER.format(path=str(path), limit=PEER_MEMORY), repeats, setup="import duckdb, pandas")
    p, d, q = results["pandas"], results["duckdb"], results["peer"]
    assert p["check"] == d["check"] and p["customers"] == d["customers"] == q["customers"]
    assert abs(q["check"] - p["check"]) <= 1e-9 * abs(p["check"]), "the peer's R, F, M, T differ from ours"
    print(f"log of {rows:,} rows ({size:.0f} MB, {p['customers']:,} customers), file, load {os.getloadavg()[0]:.1f}:\n"
          f"  peer (one DuckDB query, memory_limit {PEER_MEMORY}): {q['seconds']:.1f} s, {q['peak_mb']:.0f} MB peak\n"
          f"  ours, DuckDB path: {d['seconds']:.1f} s, {d['peak_mb']:.0f} MB peak (x{d['seconds'] / q['seconds']:.2f} "
          f"the peer's time, x{d['peak_mb'] / q['peak_mb']:.2f} its memory)\n"
          f"  ours, pandas path: {p['seconds']:.1f} s, {p['peak_mb']:.0f} MB peak (x{p['seconds'] / q['seconds']:.2f} "
          f"the peer's time, x{p['peak_mb'] / q['peak_mb']:.2f} its memory; DuckDB/pandas time "
          f"{d['seconds'] / p['seconds']:.2f})", flush=True)
    load = copy_in(url, "log", "CREATE TABLE log (order_id bigint, customer_id bigint, date text, quantity integer, "
                   "amount numeric(12,2))", path, sep=",")
    path.unlink()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # a typed date column, as a real orders table has
        conn.execute("ALTER TABLE log ALTER COLUMN date TYPE date USING to_date(date, 'YYYYMMDD')")
        conn.execute("VACUUM ANALYZE log")
    out = {}
    for engine in ("pandas", "duckdb"):
        body = f"""
from core.reading.postgres import local_copy
from core.reading.transactions import TransactionColumns, aggregate
with local_copy({url + '?table=log'!r}) as copy:
    agg = aggregate(copy.path, {cols}, sep="\\t", engine={engine!r})
extra = {{"customers": len(agg.customers), "engine": agg.engine, "digest": digest(agg.customers)}}
"""
        out[engine] = r = median_of(body, repeats, setup=_DIGEST + "import duckdb, pandas, psycopg, core.reading.transactions, "
                                                                 "core.reading.postgres")
        print(f"log of {rows:,} rows from PostgreSQL (COPY out + {engine}): {r['seconds']:.1f} s, "
              f"{r['peak_mb']:.0f} MB peak (table loaded in {load:.1f} s)", flush=True)
    body = f"""
from core.reading.pg_aggregate import aggregate
from core.reading.transactions import TransactionColumns
agg, why = aggregate({url + '?table=log'!r}, {cols})
extra = {{"customers": len(agg.customers), "engine": agg.engine, "digest": digest(agg.customers)}}
"""
    g = median_of(body, repeats, setup=_DIGEST + "import pandas, psycopg, core.reading.transactions, core.reading.pg_aggregate")
    assert g["digest"] == out["pandas"]["digest"], "GROUP BY customers differ from pandas'"
    base = out["pandas"]
    print(f"log of {rows:,} rows from PostgreSQL, GROUP BY on the server: {g['seconds']:.1f} s, {g['peak_mb']:.0f} MB "
          f"peak, customers equal to pandas' (GROUP BY / COPY+pandas time {g['seconds'] / base['seconds']:.2f}, "
          f"/ DuckDB file {g['seconds'] / d['seconds']:.2f})", flush=True)


#: The peer of issue 27 item 4: Recency, Frequency, Monetary and Tenure per customer as ONE plain DuckDB query
#: on the file (types detected by DuckDB, dates read by the CSV reader), with a memory limit; no checks.
PEER_MEMORY = "1GB"
_PEER = """
con = duckdb.connect()
con.execute("SET memory_limit = '{limit}'")
t = con.execute(\"\"\"
    SELECT customer_id,
           datediff('day', max(date), max(max(date)) OVER ()) AS recency,
           count(DISTINCT order_id) AS frequency,
           sum(amount) AS monetary,
           datediff('day', min(date), max(max(date)) OVER ()) AS tenure
    FROM read_csv('{path}', types={{'date': 'DATE'}}, dateformat='%Y%m%d')
    GROUP BY customer_id\"\"\").df()
extra = {{"customers": len(t), "check": float(t["monetary"].sum()) + float(t["frequency"].sum())}}
"""


# The customers as one hash (every column, every row), to check two paths agree without shipping them.
_DIGEST = """
import hashlib
def digest(frame):
    return hashlib.sha256(pandas.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()
import pandas
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", default="1000000,5000000")
    parser.add_argument("--log-rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-log", action="store_true")
    parser.add_argument("--read-rows", type=int, default=0,
                        help="only compare COPY with a server-side cursor on a table of this many customers")
    args = parser.parse_args()
    sizes = [int(s) for s in args.customers.split(",") if s]
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with Server() as server, tempfile.TemporaryDirectory(prefix="segmentlens-bench-") as tmp:
        tmp = Path(tmp)
        if args.read_rows:
            from core.reading.synth import write_parquet

            write_parquet(tmp / "c.parquet", n=args.read_rows, seed=7)
            read_methods(server.url(), customers_table(server.url(), tmp / "c.parquet", tmp), tmp, args.repeats)
            return
        if not args.skip_log:
            log_compare(server.url(), args.log_rows, tmp, args.repeats)
        if not args.skip_train:
            table = train_compare(server.url(), sizes, tmp, args.repeats)
            if table:
                read_methods(server.url(), table, tmp, args.repeats)


if __name__ == "__main__":
    main()
