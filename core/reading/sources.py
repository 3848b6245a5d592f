"""Customer data sources read in chunks: delimited text files and Parquet files or folders.

A :class:`DataSource` reads a file larger than memory chunk by chunk and gives the same
cleaned, feature-engineered rows and the same :class:`~core.reading.cleaning.CleaningReport` as the
one-shot path (:func:`core.reading.loading.load_customers` + :func:`core.reading.cleaning.clean` +
:func:`core.reading.features.add_features`). Four things need the whole file, so the chunked path
reads it in passes before it yields anything (:meth:`DataSource.scan`):

pass 0 (the ID and Dt_Customer columns only)
    The date format is chosen from every value of the file (as the loader does), the
    "mostly unreadable" checks of ID and the dates are made once, and repeated IDs are
    found with one stable sort of all IDs (8 bytes per row).
pass 1 (every column)
    The per-row rules run chunk by chunk; the incomes, enrolment dates and content hashes
    of the rows kept so far are collected (24 bytes per row) to compute the income fence
    (a quantile), repeated records and the reference date of ``Customer_since``.

After that, :meth:`DataSource.iter_chunks` reads the file again as often as a consumer
needs, applying the decisions per chunk. Numbers are read per chunk with the loader's
rules; a column whose currency convention (1.234,50 vs 1,234.50) is only evident in some
chunks could be read differently than in one piece (the one-shot path stays for such files).

Parquet columns are matched to the schema by the same header rules as text files; typed
columns are taken as they are, text columns go through the loader's parsers.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.reading import cleaning
from core.reading import loading
from core.reading import parsing
from core.reading.cleaning import CleaningReport
from core.reading.features import DEFAULT_REFERENCE_YEAR, add_features
from core.reading.loading import DataFileError, LoadInfo, LoadResult
from core.reading.schema import CANONICAL_COLUMNS, OPTIONAL_COLUMNS

__all__ = ["DataSource", "ScanResult", "open_source", "is_parquet", "DEFAULT_CHUNK_ROWS", "STREAM_ROWS",
           "load_parquet"]

# Rows per chunk: a chunk of every column, cleaned and with features, costs about 1.5 KB a row in pandas.
DEFAULT_CHUNK_ROWS = 100_000
# Above this many (estimated) customers, training streams the file instead of loading it whole:
# in one piece 1M rows from a TSV already peak at 1.2 GB.
STREAM_ROWS = 1_500_000
_PARQUET_MAGIC = b"PAR1"
_PROVISIONAL = pd.Timestamp("2000-01-01")
_HEAD_BYTES = 65536


def is_parquet(path) -> bool:
    """True for a Parquet file (by name or magic number) or a folder of them.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    bool
    """
    path = Path(path)
    if path.is_dir():
        return any(p.suffix.lower() in (".parquet", ".pq") or p.name.startswith("part-")
                   for p in path.rglob("*") if p.is_file())
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == _PARQUET_MAGIC
    except OSError:
        return False


@dataclass
class ScanResult:
    """The whole-file facts the chunked path computed before yielding rows.

    Attributes
    ----------
    rows : int
        Customer rows in the file.
    info : LoadInfo
    report : CleaningReport
    keep : ndarray of bool
        Rows every rule kept, by position in the file.
    odd : ndarray of bool
        Kept rows whose marital status is changed.
    reference_date : pandas.Timestamp
        Latest enrolment date of the kept rows (``Customer_since`` counts back from it).
    id_int : bool
        Every ID was readable, so IDs are whole numbers (int64) as in the one-shot path.
    """

    rows: int
    info: LoadInfo
    report: CleaningReport
    keep: np.ndarray = field(repr=False)
    odd: np.ndarray = field(repr=False)
    reference_date: pd.Timestamp | None
    id_int: bool
    date_map: dict = field(repr=False, default_factory=dict)
    features: list[str] | None = None
    cache_keep: np.ndarray | None = field(repr=False, default=None)


class DataSource:
    """A customer file read in chunks.

    Parameters
    ----------
    path : path-like
        A delimited text file (tab, comma or semicolon; the loader's rules) or a Parquet
        file or folder of Parquet files.
    name : str, optional
        Display name (default: the file name).
    reference_year : int, default 2026
    """

    def __init__(self, path, *, name: str | None = None, reference_year: int = DEFAULT_REFERENCE_YEAR):
        self.path = Path(path)
        if not self.path.exists():
            raise DataFileError(f"no such file: {path}")
        self.name = name or self.path.name or str(self.path)
        self.kind = "parquet" if is_parquet(self.path) else "delimited"
        self.reference_year = reference_year
        self._scan: ScanResult | None = None
        self._layout = None
        self._cache = None  # anonymous temporary file of feature values (see scan)

    def close(self) -> None:
        """Delete the temporary feature file, if any (also done when the source is garbage-collected)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> "DataSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ facts
    def __repr__(self) -> str:
        return f"DataSource({str(self.path)!r}, kind={self.kind!r})"

    @property
    def size_bytes(self) -> int:
        """Bytes on disk (all files of a Parquet folder)."""
        return sum(p.stat().st_size for p in self._files())

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            files = sorted(p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
            if not files:
                raise DataFileError(f"{self.name}: the folder holds no Parquet files")
            return files
        return [self.path]

    def estimated_rows(self) -> int:
        """Customer rows: exact for Parquet (from its metadata), estimated from the first lines otherwise.

        Returns
        -------
        int
        """
        if self._scan is not None:
            return self._scan.rows
        if self.kind == "parquet":
            return int(self._dataset().count_rows())
        with open(self.path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
        lines = max(head.count(b"\n"), 1)
        return int(self.size_bytes / max(len(head) / lines, 1.0))

    def fingerprint(self) -> str:
        """Short SHA-256 of the file's bytes (of every file, in name order, for a folder).

        The same as :func:`core.versions.pipeline.fingerprint` of a single file's bytes.

        Returns
        -------
        str
            16 hex digits.
        """
        digest = hashlib.sha256()
        files = self._files()
        for p in files:
            if len(files) > 1:
                digest.update(str(p.relative_to(self.path)).encode("utf-8") + b"\0")
            with open(p, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()[:16]

    # ------------------------------------------------------------------ raw reading
    def _dataset(self):
        import pyarrow.dataset as pads

        try:
            return pads.dataset(str(self.path), format="parquet")
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataFileError(f"{self.name}: could not be read as Parquet ({_first_line(exc)})") from None

    def _header(self):
        """Column names, mapping to the schema and reading options (once per source)."""
        if self._layout is not None:
            return self._layout
        if self.kind == "parquet":
            names_in_file = list(self._dataset().schema.names)
            names, mapping, extras = parsing.map_headers(names_in_file, self.name)
            self._layout = {"names": names, "file_names": names_in_file, "mapping": mapping, "extras": extras,
                            "info": {}}
            return self._layout
        with open(self.path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
        head = head.rstrip(b"\x1a")
        if not head.strip() or not head.replace(parsing.UTF8_BOM, b"").strip():
            raise DataFileError(f"{self.name} is empty: expected a header line and customer rows")
        if len(head) == _HEAD_BYTES:
            # Cut at the last line break so a multi-byte character is never split.
            cut = head.rfind(b"\n")
            head = head[:cut + 1] if cut > 0 else head
        text, encoding, bom = parsing.decode(head, self.name)
        sample = text[:parsing.SAMPLE_CHARS]
        lf = sample.find("\n")
        if lf > 0 and sample[lf - 1] == "\r":
            endings = "CRLF"
        elif lf < 0 and "\r" in sample:
            endings = "CR"
        else:
            endings = "LF"
        lines = parsing.LINE_SPLIT_RE.split(sample)
        header_index = next((i for i, line in enumerate(lines) if line.strip(" \t\ufeff")), None)
        if header_index is None:
            raise DataFileError(f"{self.name} is empty: expected a header line and customer rows")
        delimiter, headers = parsing.choose_delimiter(lines[header_index])
        names, mapping, extras = parsing.map_headers(headers, self.name)
        parsing.check_first_row(lines, header_index, delimiter, len(names), self.name)
        kwargs = dict(sep=delimiter, header=0, names=names, index_col=False,
                      na_values=list(parsing.NA_TOKENS), keep_default_na=False, engine="c", quotechar='"',
                      encoding=encoding, skip_blank_lines=True)
        if header_index:
            kwargs["skiprows"] = header_index
        self._layout = {"names": names, "mapping": mapping, "extras": extras, "kwargs": kwargs,
                        "info": {"delimiter": delimiter, "encoding": encoding, "bom": bom, "line_endings": endings}}
        return self._layout

    def _raw_chunks(self, chunk_rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """Raw frames (frame names as columns, cells as read) of ``chunk_rows`` rows at most."""
        layout = self._header()
        if self.kind == "parquet":
            by_name = dict(zip(layout["names"], layout["file_names"]))
            wanted = columns or layout["names"]
            try:
                # No read-ahead: pyarrow's default buffers 16 batches, which is most of the memory at 10M rows.
                batches = self._dataset().to_batches(columns=[by_name[c] for c in wanted], batch_size=chunk_rows,
                                                     batch_readahead=0, fragment_readahead=0)
                for batch in batches:
                    frame = batch.to_pandas(date_as_object=False)
                    frame.columns = wanted
                    yield frame
            except DataFileError:
                raise
            except Exception as exc:
                raise DataFileError(f"{self.name}: could not be read as Parquet ({_first_line(exc)})") from None
            return
        kwargs = dict(layout["kwargs"])
        text_like = (*parsing.TEXT_COLUMNS, parsing.DATE_COLUMN)
        kwargs["dtype"] = {c: str for c in text_like if c in layout["names"] and (columns is None or c in columns)}
        if columns is not None:
            kwargs["usecols"] = columns
        try:
            reader = pd.read_csv(self.path, chunksize=chunk_rows, **kwargs)
            for frame in reader:
                yield frame if columns is None else frame[columns]
        except pd.errors.ParserError as err:
            raise DataFileError(parsing.parser_message(err, self.name)) from None
        except pd.errors.EmptyDataError:
            raise DataFileError(f"{self.name} has a header but no customer rows") from None
        except UnicodeDecodeError:
            raise DataFileError(f"{self.name}: text further down is not {kwargs['encoding']} like its first "
                                "lines; save the file as UTF-8") from None

    # ------------------------------------------------------------------ conversion
    def _convert(self, raw: pd.DataFrame, date_map: dict, id_int: bool | None, stats: dict | None
                 ) -> tuple[pd.DataFrame, dict, bool]:
        """Canonical columns of one raw chunk; unreadable cells by position within the chunk."""
        layout = self._header()
        present = set(layout["mapping"].values()) if self.kind == "delimited" else {
            c for c in layout["names"] if c in CANONICAL_COLUMNS}
        columns: dict = {}
        unreadable: dict[str, list[int]] = {}
        currency_income = False
        n = len(raw)
        raw = raw.reset_index(drop=True)  # the reader numbers rows from the file's start
        for column in CANONICAL_COLUMNS:
            if column not in present or column not in raw:
                continue
            series = raw[column]
            if column in parsing.TEXT_COLUMNS:
                columns[column] = parsing.text_column(_as_text(series) if self.kind == "parquet" else series)
                continue
            if column == parsing.DATE_COLUMN:
                values, bad = _map_dates(series, date_map)
            else:
                if self.kind == "parquet":
                    series = _maybe_text(series)
                values, bad, currency = parsing.numeric_column(series, column, self.name, check=False)
                if column == "Income":
                    currency_income = currency
                if stats is not None:
                    _count_bad(stats, column, values, bad, series, column == "ID")
                if column == "ID" and id_int:
                    values = values.astype("int64")
            columns[column] = values
            if bad.any():
                unreadable[column] = [int(p) for p in np.flatnonzero(bad)]
        for extra in layout["extras"]:
            if extra in raw:
                columns[extra] = raw[extra].to_numpy()
        frame = pd.DataFrame(columns, index=pd.RangeIndex(n))
        return frame, unreadable, currency_income

    # ------------------------------------------------------------------ whole-file passes
    def scan(self, chunk_rows: int = DEFAULT_CHUNK_ROWS, *, features: list[str] | None = None) -> ScanResult:
        """Make the whole-file decisions (passes 0 and 1); cached on the source.

        Parameters
        ----------
        chunk_rows : int
        features : list of str, optional
            Model features to keep, while pass 1 computes them anyway, in an anonymous
            temporary file (8 bytes per value, read back by :meth:`iter_features` without
            parsing the file again; it leaves the process's memory alone).

        Returns
        -------
        ScanResult

        Raises
        ------
        DataFileError
            The file cannot be used (one line, as the loader's messages).
        """
        if self._scan is not None:
            return self._scan
        layout = self._header()
        names = layout["names"]
        date_col = parsing.DATE_COLUMN
        # Pass 0: IDs and enrolment dates of the whole file.
        id_parts, date_codes, date_uniques = [], [], {}
        id_stats: dict = {}
        for raw in self._raw_chunks(chunk_rows, ["ID", date_col]):
            id_raw = _maybe_text(raw["ID"]) if self.kind == "parquet" else raw["ID"]
            values, bad, _ = parsing.numeric_column(id_raw, "ID", self.name, check=False)
            _count_bad(id_stats, "ID", values, bad, raw["ID"], True)
            id_parts.append(values)
            codes, uniq = pd.factorize(raw[date_col], use_na_sentinel=True)
            lookup = np.array([date_uniques.setdefault(u, len(date_uniques)) for u in uniq], dtype=np.int32)
            date_codes.append(np.where(codes >= 0, lookup[np.maximum(codes, 0)] if len(lookup) else -1, -1)
                              .astype(np.int32))
        ids = np.concatenate(id_parts) if id_parts else np.empty(0)
        del id_parts
        n = len(ids)
        if n == 0:
            raise DataFileError(f"{self.name} has a header but no customer rows")
        _raise_mostly_unreadable(id_stats, self.name)
        id_int = not id_stats.get("ID", {}).get("bad", 0)
        dup_id = cleaning.duplicate_ids(ids)
        date_map, date_info = self._date_decision(date_uniques, date_codes)
        del date_codes

        # Pass 1: the per-row rules, and what the whole-file rules need.
        num_stats: dict = {}
        parts: list[list] = []
        unreadable_all: dict[str, list[int]] = {}
        alive1 = np.zeros(n, dtype=bool)
        incomes, dates, hashes, odd_parts = [], [], [], []
        currency_income = False
        offset = 0
        if features:
            import tempfile

            self.close()
            self._cache = tempfile.TemporaryFile(prefix="segmentlens-features-")
        for raw in self._raw_chunks(chunk_rows):
            frame, unreadable, currency = self._convert(raw, date_map, id_int, num_stats)
            currency_income |= currency
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            for column, positions in unreadable.items():
                unreadable_all.setdefault(column, []).extend(p + offset for p in positions)
            bad = cleaning.unreadable_mask(frame, unreadable)
            results, alive = cleaning.early_rules(frame, bad, dup_id[offset:offset + len(frame)],
                                                  reference_year=self.reference_year)
            parts.append(results)
            alive1[offset:offset + len(frame)] = alive
            kept = frame.loc[alive]
            odd = cleaning.odd_marital(kept)
            cleaning.fix_marital(kept, odd)
            # Copies: a view would keep the chunk's whole block of columns alive (250 bytes a row).
            incomes.append(np.array(kept["Income"].to_numpy(dtype=float), copy=True))
            dates.append(np.array(kept[date_col].to_numpy(dtype="datetime64[ns]"), copy=True))
            hashes.append(cleaning.content_hashes(kept))
            odd_parts.append(odd)
            if features and len(kept):
                provisional = add_features(kept, reference_year=self.reference_year, reference_date=_PROVISIONAL)
                self._cache.write(np.ascontiguousarray(provisional[features].to_numpy(dtype=np.float64)).data)
            offset += len(frame)
        if offset != n:
            raise DataFileError(f"{self.name} changed while it was being read ({n:,} rows, then {offset:,})")
        num_stats.pop("ID", None)
        _raise_mostly_unreadable(num_stats, self.name)

        # One whole-file array at a time, each list freed as it is joined (memory peaks at 10M rows).
        incomes = np.concatenate(incomes)
        fence = cleaning.income_fence(incomes)
        extreme = (incomes > fence) if fence is not None else np.zeros(len(incomes), dtype=bool)
        del incomes
        dates = np.concatenate(dates)
        kept_dates = dates[~extreme] if extreme.any() else dates
        reference_date = pd.Timestamp(kept_dates.max()) if len(kept_dates) else None
        del kept_dates
        del dates
        positions = np.flatnonzero(alive1)
        hashes = np.concatenate(hashes)
        if extreme.any():
            hashes = hashes[~extreme]
        odd1 = np.concatenate(odd_parts)
        keep_positions = positions[~extreme]
        keep = np.zeros(n, dtype=bool)
        keep[keep_positions] = True
        odd = np.zeros(n, dtype=bool)
        odd[positions[odd1 & ~extreme]] = True
        dup_record = keep_positions[cleaning.repeats(hashes)]
        del hashes

        def examples(rows: np.ndarray) -> list:
            return [int(ids[p]) if np.isfinite(ids[p]) else f"line {parsing.file_line(p)}" for p in rows[:5]]

        results = cleaning.merge_results(parts)
        results.append(cleaning.rule_result("extreme_income", int(extreme.sum()), examples(positions[extreme])))
        results.append(cleaning.rule_result("odd_marital_status", int(odd.sum()), examples(np.flatnonzero(odd))))
        results.append(cleaning.rule_result("duplicate_record", len(dup_record), examples(dup_record)))
        report = CleaningReport(rows_read=n, rows_used=int(keep.sum()), rules=results)
        info = LoadInfo(
            source=self.name, column_mapping=dict(layout["mapping"]), extra_columns=list(layout["extras"]),
            missing_optional=[c for c in CANONICAL_COLUMNS if c in OPTIONAL_COLUMNS and c not in names],
            currency_income=currency_income, unreadable=unreadable_all, rows=n, **date_info, **layout["info"])
        if self.kind == "parquet":
            info.delimiter, info.encoding, info.line_endings = "parquet", "parquet", ""
        self._scan = ScanResult(rows=n, info=info, report=report, keep=keep, odd=odd,
                                reference_date=reference_date, id_int=id_int, date_map=date_map,
                                features=list(features) if features else None, cache_keep=~extreme)
        return self._scan

    def iter_features(self, features: list[str], chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[np.ndarray]:
        """Feature values of the kept customers, chunk by chunk, in file order.

        From the temporary file :meth:`scan` wrote when it was given these features, else by
        preparing the chunks again (:meth:`iter_chunks`).

        Parameters
        ----------
        features : list of str
        chunk_rows : int, default 100000

        Yields
        ------
        ndarray of shape (m, len(features))
        """
        scan = self.scan(chunk_rows, features=features)
        if self._cache is None or scan.features != list(features):
            for chunk in self.iter_chunks(chunk_rows):
                yield chunk[list(features)].to_numpy(dtype=np.float64)
            return
        d = len(features)
        since = features.index("Customer_since") if "Customer_since" in features else None
        # Customer_since was computed back from a provisional date; shift it to the real one (whole days).
        shift = float((scan.reference_date - _PROVISIONAL).days) if scan.reference_date is not None else 0.0
        total = len(scan.cache_keep)
        self._cache.seek(0)
        pos = 0
        while pos < total:
            m = min(chunk_rows, total - pos)
            X = np.fromfile(self._cache, dtype=np.float64, count=m * d).reshape(m, d)
            keep = scan.cache_keep[pos:pos + m]
            pos += m
            if not keep.all():
                X = X[keep]
            if since is not None:
                X[:, since] += shift
            if len(X):
                yield X

    def _date_decision(self, uniques: dict, code_parts: list) -> tuple[dict, dict]:
        """Choose the date format from every value of the file, as the loader does; map value -> date."""
        texts = list(uniques)
        shown = [_date_text(t) for t in texts]
        if texts:
            # Usually one format reads every distinct value: then the loader chooses it from the distinct
            # values alone (in order of first appearance, as from the whole column) and no per-row array is built.
            try:
                values, bad, order, fmt, note = parsing.date_column(pd.Series(shown, dtype=object), self.name)
            except DataFileError:
                bad = np.ones(1, dtype=bool)
            if not bad.any():
                return ({t: (values[i], False) for i, t in enumerate(texts)},
                        {"date_order": order, "date_format": fmt, "date_note": note})
        codes = np.concatenate(code_parts) if code_parts else np.empty(0, dtype=np.int32)
        # One text per row (pointers to the few distinct texts): the loader's own chooser then sees
        # every value of the file with its row count and first line, as in the one-shot path.
        cells = np.asarray(shown + [np.nan], dtype=object)[codes]
        values, bad, order, fmt, note = parsing.date_column(pd.Series(cells, dtype=object), self.name)
        del cells
        if not texts:
            return {}, {"date_order": order, "date_format": fmt, "date_note": note}
        first = np.full(len(texts), -1, dtype=np.int64)
        valid = codes >= 0
        first_pos = np.flatnonzero(valid)
        seen_codes, idx = np.unique(codes[valid], return_index=True)
        first[seen_codes] = first_pos[idx]
        date_map = {t: (values[first[i]], bool(bad[first[i]])) for i, t in enumerate(texts) if first[i] >= 0}
        return date_map, {"date_order": order, "date_format": fmt, "date_note": note}

    # ------------------------------------------------------------------ prepared rows
    def iter_chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """Cleaned customers with every engineered feature, chunk by chunk, in file order.

        The same rows and values as the one-shot path (index = position in the file).

        Parameters
        ----------
        chunk_rows : int, default 100000
            Rows read at a time (a yielded chunk has its kept rows, so usually a few less).

        Yields
        ------
        pandas.DataFrame
        """
        scan = self.scan(chunk_rows)
        offset = 0
        for raw in self._raw_chunks(chunk_rows):
            frame, _, _ = self._convert(raw, scan.date_map, scan.id_int, None)
            stop = offset + len(frame)
            frame.index = pd.RangeIndex(offset, stop)
            keep = scan.keep[offset:stop]
            odd = scan.odd[offset:stop][keep]
            offset = stop
            frame = frame.loc[keep]
            if not len(frame):
                continue
            if odd.any():
                cleaning.fix_marital(frame, odd)
            yield add_features(frame, reference_year=self.reference_year, reference_date=scan.reference_date)

    def load(self) -> LoadResult:
        """The whole file in one frame, as :func:`core.reading.loading.load_customers` gives it.

        Returns
        -------
        LoadResult
        """
        if self.kind == "delimited":
            return loading.load_customers(self.path, name=self.name)
        return load_parquet(self)


def load_parquet(source: DataSource) -> LoadResult:
    """Read a whole Parquet source into one canonical frame (the one-shot path for Parquet).

    Parameters
    ----------
    source : DataSource

    Returns
    -------
    LoadResult
    """
    layout = source._header()
    chunks = list(source._raw_chunks(1 << 30))
    raw = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=layout["names"])
    if not len(raw):
        raise DataFileError(f"{source.name} has a header but no customer rows")
    columns, unreadable, currency_income = {}, {}, False
    date_info = {"date_order": "day-first", "date_format": "", "date_note": ""}
    for column in CANONICAL_COLUMNS:
        if column not in raw:
            continue
        series = raw[column]
        if column in parsing.TEXT_COLUMNS:
            columns[column] = parsing.text_column(_as_text(series))
            continue
        if column == parsing.DATE_COLUMN:
            texts = series.astype(object).map(_date_text, na_action="ignore")
            values, bad, order, fmt, note = parsing.date_column(texts, source.name)
            date_info = {"date_order": order, "date_format": fmt, "date_note": note}
        else:
            values, bad, currency = parsing.numeric_column(_maybe_text(series), column, source.name)
            currency_income |= currency and column == "Income"
            if column == "ID" and not bad.any():
                values = values.astype("int64")
        columns[column] = values
        if bad.any():
            unreadable[column] = [int(p) for p in np.flatnonzero(bad)]
    for extra in layout["extras"]:
        columns[extra] = raw[extra].to_numpy()
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(raw)))
    info = LoadInfo(source=source.name, delimiter="parquet", encoding="parquet", line_endings="",
                    column_mapping=dict(layout["mapping"]), extra_columns=list(layout["extras"]),
                    missing_optional=[c for c in CANONICAL_COLUMNS if c in OPTIONAL_COLUMNS and c not in raw],
                    currency_income=currency_income, unreadable=unreadable, rows=len(frame), **date_info)
    return LoadResult(frame=frame, info=info)


def open_source(path, *, name: str | None = None, reference_year: int = DEFAULT_REFERENCE_YEAR) -> DataSource:
    """A :class:`DataSource` for ``path`` (a one-line :class:`DataFileError` when it cannot be used).

    Parameters
    ----------
    path : path-like
    name : str, optional
    reference_year : int, default 2026

    Returns
    -------
    DataSource
    """
    source = DataSource(path, name=name, reference_year=reference_year)
    source._header()  # fail early: unreadable file, missing required column
    return source


# ---------------------------------------------------------------------------- helpers
def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 120 else line[:117] + "..."


def _as_text(series: pd.Series) -> pd.Series:
    """Cells as Python text or NaN (Parquet gives None, categoricals, dates or typed strings)."""
    if isinstance(series.dtype, pd.StringDtype):
        return series
    values = series.astype(object)
    return values.where(values.notna(), np.nan).map(lambda v: v if isinstance(v, str) else str(v),
                                                    na_action="ignore").astype(object)


def _maybe_text(series: pd.Series) -> pd.Series:
    if series.dtype.kind in "iufb":
        return series
    return _as_text(series)


def _date_text(value) -> str:
    """A date cell as the text the loader's date parser reads (Parquet dates become yyyy-mm-dd)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (pd.Timestamp, np.datetime64)) or hasattr(value, "isoformat"):
        stamp = pd.Timestamp(value)
        return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat(sep=" ")
    return str(value)


def _map_dates(series: pd.Series, date_map: dict) -> tuple[np.ndarray, np.ndarray]:
    codes, uniq = pd.factorize(series, use_na_sentinel=True)
    values = np.full(len(uniq) + 1, np.datetime64("NaT"), dtype="datetime64[ns]")
    bad = np.zeros(len(uniq) + 1, dtype=bool)
    for i, u in enumerate(uniq):
        value, is_bad = date_map.get(u, (np.datetime64("NaT"), True))
        values[i], bad[i] = value, is_bad
    return values[codes], bad[codes]  # code -1 picks the last entry: NaT, not bad


def _count_bad(stats: dict, column: str, values: np.ndarray, bad: np.ndarray, raw: pd.Series, is_id: bool
               ) -> None:
    """Add one chunk's unreadable and non-empty cells of a numeric column to the whole-file counts."""
    entry = stats.setdefault(column, {"bad": 0, "nonempty": 0, "first": None, "rows": 0})
    nonempty = np.ones(len(values), dtype=bool) if is_id else (~np.isnan(values) | bad)
    entry["bad"] += int(bad.sum())
    entry["nonempty"] += int(nonempty.sum())
    if entry["first"] is None and bad.any():
        pos = int(np.flatnonzero(bad)[0])
        cell = raw.iloc[pos]
        entry["first"] = (entry["rows"] + pos, "" if pd.isna(cell) else str(cell))
    entry["rows"] += len(values)


def _raise_mostly_unreadable(stats: dict, name: str) -> None:
    """The loader's "column mostly unreadable" error, decided on the whole file."""
    for column in CANONICAL_COLUMNS:
        entry = stats.get(column)
        if not entry or not entry["bad"] or entry["bad"] * 2 <= entry["nonempty"]:
            continue
        line, cell = entry["first"]
        what = "whole numbers" if column == "ID" else "numbers"
        expected = parsing.EXPECTED.get(column) or (
            parsing.EXPECTED_FLAG if column in parsing.FLAG_COLUMNS else parsing.EXPECTED_DEFAULT)
        raise DataFileError(
            f"{name}: column {column}: {entry['bad']} of {entry['nonempty']} values are not {what} "
            f"(line {parsing.file_line(line)}: {parsing.short(cell.strip())!r}); expected {expected}")

