"""Streaming CSV load into the customer store: validate, stage, then upsert in SQL.

The file is cut into units of work (_Source): runs of whole lines without quote characters
go to worker processes as raw bytes (they decode, parse, validate and normalize them);
around quoted fields, which may span lines, this process parses the records itself. A
reader thread keeps the workers fed while this process waits on the database. Good rows
are staged in a temporary table (PostgreSQL: COPY; SQLite: batched executemany), bad rows
go to the error report. Memory is bounded by the units in flight, whatever the file size.
The last row wins when a key appears twice in a file.

PostgreSQL upserts as it reads: every BATCH_ROWS staged rows become one INSERT ... ON
CONFLICT DO UPDATE, all inside the import's one transaction, so the database works while
Python parses the next rows, and a file found malformed halfway still changes nothing
(the transaction rolls back). Each batch's keys go to an unindexed temporary table; at the
end one GROUP BY tells whether a key came back in a later batch (not needed when the
batches arrived in ascending key order). Then "last row wins" and the inserted/updated/
unchanged counts need the whole file at once: the import rolls back and runs again staged.

Staged (SQLite, and that PostgreSQL rerun): phase 1 stages the whole file and changes
nothing in the store; phase 2 upserts the staged rows with one INSERT ... SELECT ... ON
CONFLICT DO UPDATE in one transaction.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import heapq
import io
import multiprocessing
import os
import queue
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config import csvsafe
from customers.csv_columns import (
    SPECS,
    ChunkResult,
    ImportKind,
    RowError,
    RowProcessor,
    Spec,
    copy_text,
)

CHUNK_ROWS = 2_000  # rows per unit of work where the reader parses (around quoted fields)
BLOCK_BYTES = 256 * 1024  # bytes of whole lines per unit of work elsewhere
BATCH_ROWS = 20_000  # PostgreSQL: rows per upsert statement while reading
IN_FLIGHT_PER_WORKER = 16  # units of work queued or in progress per worker (about 1 MB each)
SNIFF_BYTES = 64 * 1024
PARALLEL_MIN_BYTES = 4 * 1024 * 1024
ERROR_HEADER = ["row", "column", "value", "reason"]
# Reasons for rows that cannot be read at all; the report shows no value for them.
UNBALANCED_QUOTES = (
    'unbalanced quotes: a quoted field is not closed, or has text after its closing quote (")'
)
FIELD_TOO_LONG = "a field is longer than {limit:,} characters"
NUL_BYTE = "contains a NUL byte (binary data)"

Progress = Callable[[str, int, int], None]  # (phase, percent, rows read so far)


class MalformedFile(Exception):
    """The file as a whole cannot be imported; nothing was changed."""


@dataclass
class LoadResult:
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    error_rows: int = 0
    error_count: int = 0
    rows_deleted: int = 0  # devices removed by a replace import
    ignored_columns: list[str] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)

    @property
    def rows_loaded(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_unchanged


def _sql_types(spec: Spec) -> dict[str, str]:
    types = {"row_no": "bigint"}
    typed = {
        "birthdate": "date",
        "created_at": "timestamptz",
        "ordered_at": "timestamptz",
        "email_opt_in": "boolean",
        "sms_opt_in": "boolean",
        "is_return": "boolean",
        "quantity": "integer",
        "amount": "numeric(12,2)",
    }
    for name in spec.staging[1:]:
        types[name] = typed.get(name, "text")
    return types


def staging_table(spec: Spec) -> str:
    return f"import_staging_{spec.kind.value}"


# ---------------------------------------------------------------- reading and checking


def _open_text(path: Path) -> io.TextIOWrapper:
    return io.TextIOWrapper(open(path, "rb"), encoding="utf-8-sig", errors="strict", newline="")  # noqa: SIM115


def read_header(path: Path, spec: Spec) -> tuple[list[str], list[str]]:
    """The lowercased header and the columns this import ignores; MalformedFile if unusable."""
    with open(path, "rb") as raw:
        head = raw.read(SNIFF_BYTES)
    if not head.strip():
        raise MalformedFile("The file is empty.")
    # A text header with a NUL byte is no CSV (UTF-16, a spreadsheet, an image...); a NUL in
    # a later row only makes that row bad.
    if b"\x00" in _LINE_END.split(head, maxsplit=1)[0]:
        raise MalformedFile("This is not a CSV text file (it contains binary data).")
    try:
        # The block may end inside a multi-byte character: decode it as a stream's start.
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
        decoder.decode(head, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError as exc:
        raise MalformedFile(_encoding_message(exc)) from None
    with _open_text(path) as text:
        try:
            header = next(csv.reader(text), [])
        except (csv.Error, UnicodeDecodeError) as exc:
            raise MalformedFile(f"This is not a readable CSV file: {exc}") from None
    header = [name.strip().lower() for name in header]
    if not any(header):
        raise MalformedFile("The first line must be a header naming the columns.")
    duplicates = sorted({n for n in header if header.count(n) > 1 and n})
    if duplicates:
        raise MalformedFile(f"The header repeats column(s): {', '.join(duplicates)}.")
    missing = [name for name in spec.required if name not in header]
    if missing:
        raise MalformedFile(
            f"Missing required column(s): {', '.join(missing)}. "
            f"A {spec.kind.value} file needs {', '.join(spec.required)} in its header "
            f"(found: {', '.join(n for n in header if n) or 'nothing'})."
        )
    ignored = [n for n in header if n and n not in spec.column_names]
    return header, ignored


def _encoding_message(exc: UnicodeDecodeError) -> str:
    return (
        "The file is not UTF-8 text (invalid byte "
        f"0x{exc.object[exc.start]:02x} at byte {exc.start}). "
        "Save it as 'CSV UTF-8' and upload it again."
    )


def _malformed_decoding(row_no: int) -> MalformedFile:
    return MalformedFile(
        f"The file is not UTF-8 text (invalid byte near row {row_no}). "
        "Save it as 'CSV UTF-8' and upload it again."
    )


def _unreadable(row_no: int, exc: csv.Error) -> RowError:
    """The error-report line of a row csv cannot read; its text is not repeated."""
    if "field larger than field limit" in str(exc):
        return (row_no, "", "", FIELD_TOO_LONG.format(limit=csv.field_size_limit()))
    return (row_no, "", "", UNBALANCED_QUOTES)


class UnreadableRow(Exception):
    """A record csv cannot read, or one holding a NUL byte: a bad row, not a bad file."""

    def __init__(self, error: RowError) -> None:
        super().__init__(error[3])
        self.error = error


def _line_ends(data: bytes) -> int:
    """Line ends as csv.reader sees them: "\r\n", "\r" or "\n"."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


# A unit of work: whole lines of the file without any '"' (a worker parses them), or rows the
# reader parsed itself (around quoted fields, which may hold line breaks).
Lines = tuple[bytes, int]  # (the bytes, the row number of the first line)
Rows = list[tuple[int, list[str]]]


@dataclass
class ParsedRows:
    rows: Rows = field(default_factory=list)
    bad: list[RowError] = field(default_factory=list)  # rows that could not be read


Work = Lines | ParsedRows

_LINE_END = re.compile(rb"\r\n|\r|\n")
_TEXT_LINE_END = re.compile(r"\r\n|\r|\n")


class _Source:
    """Splits a CSV file into Work. The header is row 1 and is skipped.

    Most of a file is handed out as raw runs of whole lines: without quote characters, each
    line is one record, so row numbers are known by counting line ends and the workers can
    decode and parse the lines themselves. A run holding a '"' is parsed here, record by
    record with csv.reader, as far as the end of that run (further when a quoted field goes
    on), so the next run starts on a record boundary again.

    A quote that is never closed would swallow every line after it into one field: the
    reader is strict, and a record it cannot read is reported as one bad row, its first
    line, and reading starts again on the line after that one.
    """

    def __init__(self, path: Path, block: int) -> None:
        self.raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.block = block
        self.buffer = b""
        self.pos = 0  # in buffer: the next record starts here
        self.done_bytes = 0  # file offset of buffer[0]
        self.eof = False
        self.row_no = 0  # the last record handed out
        self.nul = False  # a line read since the current record began held a NUL byte
        self._fill()
        if self.buffer.startswith(codecs.BOM_UTF8):
            self.pos = len(codecs.BOM_UTF8)
        self.reader = csv.reader(self._lines(), strict=True)

    @property
    def bytes_read(self) -> int:
        return self.done_bytes + self.pos

    def close(self) -> None:
        self.raw.close()

    def _fill(self) -> bool:
        """Read another block; False at the end of the file."""
        if self.eof:
            return False
        data = self.raw.read(self.block)
        if not data:
            self.eof = True
            return False
        self.buffer = self.buffer[self.pos :] + data
        self.done_bytes += self.pos
        self.pos = 0
        return True

    def _lines(self) -> Iterator[str]:
        """Decoded lines from `pos` on, for csv.reader; `pos` follows what it consumed."""
        while True:
            end = _LINE_END.search(self.buffer, self.pos)
            # A line end must be seen whole: "\r" at the end of the buffer may be "\r\n".
            if end is None or (end.end() == len(self.buffer) and end.group() == b"\r"):
                if self._fill():
                    continue
                if self.pos >= len(self.buffer):
                    return
                stop = len(self.buffer)
            else:
                stop = end.end()
            line = self.buffer[self.pos : stop]
            self.pos = stop
            if b"\x00" in line:
                self.nul = True
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed_decoding(self.row_no + 1) from None

    def _record(self) -> list[str] | None:
        """The next record, None at the end; UnreadableRow for a record that is not usable."""
        start = self.done_bytes + self.pos  # the reader took exactly the earlier records' lines
        self.nul = False
        try:
            cells = next(self.reader, None)
        except csv.Error as exc:
            self.row_no += 1
            self._restart_after_line(start)
            raise UnreadableRow(_unreadable(self.row_no, exc)) from None
        if cells is not None:
            self.row_no += 1
            if self.nul:
                raise UnreadableRow((self.row_no, "", "", NUL_BYTE))
        return cells

    def _restart_after_line(self, start: int) -> None:
        """Read on from the line after the one at file offset `start`, with a new reader."""
        self.raw.seek(start)
        self.buffer, self.pos, self.done_bytes, self.eof = b"", 0, start, False
        while True:
            end = _LINE_END.search(self.buffer, self.pos)
            if end is not None and not (end.end() == len(self.buffer) and end.group() == b"\r"):
                self.pos = end.end()
                break
            # No whole line end yet: forget what was looked at, except a "\r" that may be
            # the start of "\r\n", so a very long line never fills memory.
            self.pos = len(self.buffer) - (1 if self.buffer.endswith(b"\r") else 0)
            if not self._fill():
                self.pos = len(self.buffer)
                break
        self.reader = csv.reader(self._lines(), strict=True)

    def work(self, rows_per_chunk: int) -> Iterator[Work]:
        try:
            header = self._record()
        except UnreadableRow as exc:
            raise MalformedFile(f"This is not a readable CSV file: the header has {exc}.") from None
        if header is None:
            return
        while True:
            if len(self.buffer) - self.pos < self.block and not self.eof:
                self._fill()
            cut = self.buffer.rfind(b"\n", self.pos) + 1
            whole_lines = cut > 0 or self.eof
            if cut == 0:  # no "\n" ahead: read on, but not forever ("\r" line ends)
                if not self.eof and len(self.buffer) - self.pos <= self.block:
                    self._fill()
                    continue
                cut = len(self.buffer)
            if cut == self.pos:
                return
            run = self.buffer[self.pos : cut]
            if whole_lines and b'"' not in run:
                first = self.row_no + 1
                # Without quotes every line is one record (the last may lack its line end).
                self.row_no += _line_ends(run) + (0 if run.endswith((b"\n", b"\r")) else 1)
                self.pos = cut
                yield (run, first)
                continue
            end = self.done_bytes + cut  # parse records here until past the run
            chunk = ParsedRows()
            while self.bytes_read < end:
                try:
                    cells = self._record()
                except UnreadableRow as exc:
                    chunk.bad.append(exc.error)
                    continue
                if cells is None:
                    break
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank line
                chunk.rows.append((self.row_no, cells))
                if len(chunk.rows) + len(chunk.bad) >= rows_per_chunk:
                    yield chunk
                    chunk = ParsedRows()
            if chunk.rows or chunk.bad:
                yield chunk


def _rows_of(work: Work) -> tuple[Rows, list[RowError]]:
    """The rows of a unit of work, and the errors of rows that cannot be read at all.

    Raw lines are decoded and parsed here; they hold no quote, so each line is one record.
    """
    if isinstance(work, ParsedRows):
        return work.rows, work.bad
    data, first = work
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed_decoding(first + _line_ends(data[: exc.start])) from None
    bad: list[RowError] = []
    try:
        rows = _parse_lines(csv.reader(io.StringIO(text, newline="")), first)
    except csv.Error:  # a field over csv's size limit: find its line, read the others
        rows = []
        lines = _TEXT_LINE_END.split(text)
        if lines[-1] == "":
            lines.pop()  # the text ended with a line end
        for row_no, line in enumerate(lines, start=first):
            try:
                rows += _parse_lines(csv.reader([line]), row_no)
            except csv.Error as exc:
                bad.append(_unreadable(row_no, exc))
    if b"\x00" in data:
        with_nul = {row_no for row_no, cells in rows if any("\x00" in c for c in cells)}
        rows = [row for row in rows if row[0] not in with_nul]
        bad = sorted([*bad, *((row_no, "", "", NUL_BYTE) for row_no in with_nul)])
    return rows, bad


def _parse_lines(records: Iterator[list[str]], first: int) -> Rows:
    """The records of lines numbered from `first`, one record per line, blank lines left out."""
    rows: Rows = []
    for row_no, cells in enumerate(records, start=first):
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank line
        rows.append((row_no, cells))
    return rows


# ------------------------------------------------------------------- worker processes

_worker: RowProcessor | None = None
_worker_copy = False


def _worker_init(kind: str, header: list[str], region: str, as_copy: bool) -> None:
    global _worker, _worker_copy
    _worker = RowProcessor(SPECS[ImportKind(kind)], header, region)
    _worker_copy = as_copy


def _worker_process(work: Work) -> ChunkResult:
    assert _worker is not None
    return _process(_worker, work, _worker_copy)


def _process(processor: RowProcessor, work: Work, as_copy: bool) -> ChunkResult:
    rows, unreadable = _rows_of(work)
    result = processor.process(rows)
    if unreadable:
        result.rows += len(unreadable)
        result.error_rows += len(unreadable)
        result.errors = sorted([*result.errors, *unreadable], key=lambda error: error[0])
    if as_copy:
        result.payload = copy_text(result.records)
        result.records = []
    return result


def worker_count(file_size: int) -> int:
    """Processes that validate rows besides this one: 0 for small files and daemons."""
    configured = getattr(settings, "IMPORT_WORKERS", None)
    wanted = configured if configured is not None else min(os.cpu_count() or 1, 4)
    if wanted < 2 or file_size < PARALLEL_MIN_BYTES:
        return 0
    if multiprocessing.current_process().daemon:
        return 0
    return wanted


def _processed_chunks(
    chunks: Iterator[Work],
    kind: ImportKind,
    header: list[str],
    workers: int,
    as_copy: bool,
) -> Iterator[ChunkResult]:
    """Processed chunks in file order; with workers, a reader thread keeps them busy."""
    region = settings.DEFAULT_PHONE_REGION
    if workers == 0:
        processor = RowProcessor(SPECS[kind], header, region)
        for chunk in chunks:
            yield _process(processor, chunk, as_copy)
        return
    method = "fork" if sys.platform != "win32" else "spawn"
    context = multiprocessing.get_context(method)
    gc.freeze()  # forked workers share this process's objects: keep their collector off them
    pool = context.Pool(workers, _worker_init, (kind.value, header, region, as_copy))
    gc.unfreeze()
    with pool:
        # The queue bounds the chunks in flight, so memory stays flat; the thread reads the
        # file and hands chunks out while this thread waits on the database.
        pending: queue.Queue = queue.Queue(maxsize=IN_FLIGHT_PER_WORKER * workers)
        stop = threading.Event()

        def feed() -> None:
            try:
                for chunk in chunks:
                    if stop.is_set():
                        return
                    pending.put(pool.apply_async(_worker_process, (chunk,)))
                pending.put(None)
            except BaseException as exc:  # handed to the consuming thread, raised there
                pending.put(exc)

        reader = threading.Thread(target=feed, name="import-reader", daemon=True)
        reader.start()
        try:
            while (item := pending.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item.get()
        finally:
            stop.set()
            while reader.is_alive():  # unblock a reader waiting for room, then let it end
                with contextlib.suppress(queue.Empty):
                    pending.get(timeout=0.05)
            reader.join()


# ------------------------------------------------------------------------- the loader


@dataclass(frozen=True)
class Upsert:
    """The INSERT ... SELECT ... ON CONFLICT statement for a staging table."""

    sql: str  # with {where} to fill in
    params: list


def _upsert(spec: Spec, source: str, present: set[str], postgres: bool) -> Upsert:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    columns = [c for c in spec.staging if c != "row_no"]
    select = [f"s.{c}" for c in columns]
    insert = list(columns)
    if spec.kind == ImportKind.CUSTOMERS:
        i = insert.index("created_at")
        select[i] = "COALESCE(s.created_at, %s)"
        insert.append("updated_at")
        select.append("%s")
        params: list = [now, now]
    else:
        params = []
    # Columns the file carries are updated; the ones it leaves out keep their values.
    updatable = [
        c
        for c in columns
        if c not in spec.key and c != "created_at" and (c in present or _derived_from(c) & present)
    ]
    distinct = "IS DISTINCT FROM" if postgres else "IS NOT"
    set_clause = ", ".join(f"{c} = EXCLUDED.{c}" for c in updatable)
    changed = " OR ".join(f"{spec.table}.{c} {distinct} EXCLUDED.{c}" for c in updatable)
    if spec.kind == ImportKind.CUSTOMERS and updatable:
        set_clause += ", updated_at = EXCLUDED.updated_at"
    conflict = f"DO UPDATE SET {set_clause} WHERE {changed}" if updatable else "DO NOTHING"
    sql = (
        f"INSERT INTO {spec.table} ({', '.join(insert)}) "
        f"SELECT {', '.join(select)} FROM {source} s WHERE {{where}} "
        f"ON CONFLICT ({', '.join(spec.key)}) {conflict}"
    )
    return Upsert(sql, params)


def _where_new(spec: Spec, source: str, duplicates: bool) -> str:
    """Rows to upsert: the last of each key, and for devices/orders, known customers only."""
    key = ", ".join(spec.key)
    where = (
        f"s.row_no IN (SELECT max(row_no) FROM {source} GROUP BY {key})" if duplicates else "1 = 1"
    )
    if spec.kind != ImportKind.CUSTOMERS:
        where += " AND EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = s.customer_id)"
    return where


def _unknown_customers(spec: Spec, source: str) -> Iterator[RowError]:
    """Staged devices/orders whose customer_id is not in the store, by row."""
    if spec.kind == ImportKind.CUSTOMERS:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.row_no, s.customer_id FROM {source} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM customers c WHERE c.customer_id = s.customer_id) "
            f"ORDER BY s.row_no"
        )
        while rows := cursor.fetchmany(2000):
            for row_no, customer_id in rows:
                yield (row_no, "customer_id", customer_id, "no customer with this id")


class Loader:
    """Stages the whole file, then upserts it with one statement (SQLite; PostgreSQL rerun)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.table = staging_table(spec)
        self.postgres = connection.vendor == "postgresql"
        types = _sql_types(spec)
        self._datetimes = [i for i, name in enumerate(spec.staging) if types[name] == "timestamptz"]

    def create_staging(self) -> None:
        _create_temporary(self.table, _sql_types(self.spec))

    def drop_staging(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")

    def stage(self, result: ChunkResult) -> None:
        if self.postgres:
            _copy(self.spec, self.table, result.payload)
            return
        if not result.records:
            return
        records = result.records
        if self._datetimes:
            # Django keeps SQLite date-times as naive UTC text; match it.
            adapt = connection.ops.adapt_datetimefield_value
            rows = [list(r) for r in records]
            for row in rows:
                for i in self._datetimes:
                    row[i] = adapt(row[i])
            records = [tuple(row) for row in rows]
        names = ", ".join(self.spec.staging)
        marks = ", ".join(["%s"] * len(self.spec.staging))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {self.table} ({names}) VALUES ({marks})", records)

    def unknown_customers(self) -> Iterator[RowError]:
        return _unknown_customers(self.spec, self.table)

    def upsert(self, present: set[str]) -> tuple[int, int, int]:
        """Upsert the staged rows; (inserted, updated, unchanged)."""
        spec = self.spec
        upsert = _upsert(spec, self.table, present, self.postgres)
        key = ", ".join(spec.key)
        with connection.cursor() as cursor:
            if self.postgres:
                cursor.execute(f"ANALYZE {self.table}")  # temp tables are never auto-analyzed
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {self.table} GROUP BY {key} HAVING count(*) > 1)"
            )
            duplicates = cursor.fetchone()[0]
        where_new = _where_new(spec, self.table, duplicates)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {spec.table}")
            before = cursor.fetchone()[0]
            cursor.execute(f"SELECT count(*) FROM {self.table} s WHERE {where_new}")
            distinct_rows = cursor.fetchone()[0]
            cursor.execute(upsert.sql.format(where=where_new), upsert.params)
            affected = cursor.rowcount
            cursor.execute(f"SELECT count(*) FROM {spec.table}")
            inserted = cursor.fetchone()[0] - before
        updated = affected - inserted
        return inserted, updated, distinct_rows - inserted - updated


class RepeatedKey(Exception):
    """A key came back in a later batch: the batched upsert cannot keep the file's semantics."""


class BatchLoader:
    """PostgreSQL: upserts every BATCH_ROWS staged rows, inside the caller's transaction."""

    def __init__(self, spec: Spec, present: set[str], unknown_out) -> None:
        self.spec = spec
        self.table = f"{staging_table(spec)}_batch"
        self.keys = f"import_keys_{spec.kind.value}"  # the keys of every batch, once each
        self.upsert = _upsert(spec, self.table, present, postgres=True)
        self.unknown_out = unknown_out  # csv writer for "no customer with this id" rows
        self.pending = 0
        self.batches = 0
        self.ascending = True  # so far, each batch's keys all above the previous batch's
        self._largest: str | None = None
        self.inserted = self.updated = self.unchanged = self.unknown = 0
        self._key = ", ".join(spec.key)
        # Which upserted rows were updates: PostgreSQL counts the tuples this transaction
        # updated per table (pg_stat_xact_user_tables), which is cheaper than returning a
        # row per upsert. Without track_counts, RETURNING tells (xmax is 0 only on an
        # inserted row).
        self._updates_so_far: int | None = None
        self._returning = (
            "WITH up AS ({sql} RETURNING (xmax = 0) AS inserted) "
            "SELECT count(*) FILTER (WHERE inserted), count(*) FROM up"
        )

    def create(self) -> None:
        _create_temporary(self.table, _sql_types(self.spec))
        # No index: appending is cheap, and finish() looks for repeats once.
        _create_temporary(self.keys, {name: "text" for name in self.spec.key})
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('track_counts')::boolean")
            if cursor.fetchone()[0]:
                self._updates_so_far = self._updates()

    def _updates(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_updated(%s::regclass)", [self.spec.table]
            )
            return cursor.fetchone()[0]

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}, {self.keys}")

    def stage(self, result: ChunkResult) -> None:
        _copy(self.spec, self.table, result.payload)
        self.pending += result.good_rows
        if self.pending >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        spec, table, key = self.spec, self.table, self._key
        with connection.cursor() as cursor:
            if len(spec.key) == 1:
                # Files are often sorted by their key: when every batch starts above the
                # previous one's largest key, no key can come back and finish() skips its
                # look over all keys. (PostgreSQL compares, in its own collation.)
                cursor.execute(
                    f"WITH k AS (INSERT INTO {self.keys} SELECT {key} FROM {table} "
                    f"GROUP BY {key} RETURNING {key}) "
                    f"SELECT count(*), %s::text IS NULL OR min({key}) > %s::text, max({key}) "
                    "FROM k",
                    [self._largest, self._largest],
                )
                distinct_keys, ascending, self._largest = cursor.fetchone()
                self.ascending = self.ascending and ascending
            else:
                cursor.execute(
                    f"WITH k AS (INSERT INTO {self.keys} SELECT {key} FROM {table} "
                    f"GROUP BY {key} RETURNING 1) SELECT count(*) FROM k"
                )
                distinct_keys = cursor.fetchone()[0]
                self.ascending = False
            duplicates = distinct_keys < self.pending  # a key repeats in this batch
            unknown = 0
            if spec.kind != ImportKind.CUSTOMERS:
                cursor.execute(f"ANALYZE {table}")  # for the joins with customers
                for error in _unknown_customers(spec, table):
                    self.unknown_out.writerow(error)
                    unknown += 1
            where_new = _where_new(spec, table, duplicates)
            if duplicates:
                cursor.execute(f"SELECT count(*) FROM {table} s WHERE {where_new}")
                distinct_rows = cursor.fetchone()[0]
            else:
                distinct_rows = self.pending - unknown
            sql = self.upsert.sql.format(where=where_new)
            if self._updates_so_far is not None:
                cursor.execute(sql, self.upsert.params)
                upserted = cursor.rowcount
                updates = self._updates()
                inserted = upserted - (updates - self._updates_so_far)
                self._updates_so_far = updates
            else:
                cursor.execute(self._returning.format(sql=sql), self.upsert.params)
                inserted, upserted = cursor.fetchone()
            cursor.execute(f"TRUNCATE {table}")
        self.unknown += unknown
        self.inserted += inserted
        self.updated += upserted - inserted
        self.unchanged += distinct_rows - upserted
        self.pending = 0
        self.batches += 1

    def finish(self) -> None:
        """Save the last rows; RepeatedKey when a key came back in a later batch."""
        self.flush()
        if self.batches < 2 or self.ascending:
            return
        key = self._key
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '64MB'")  # one hash of all keys, not on disk
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {self.keys} GROUP BY {key} HAVING count(*) > 1)"
            )
            if cursor.fetchone()[0]:
                raise RepeatedKey


def replace_listed_devices(keys: str) -> int:
    """Remove the devices of customers listed in `keys` (a table of customer_id, kind,
    raw_id: the file's good rows) that the file does not list; returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM devices WHERE customer_id IN (SELECT customer_id FROM {keys}) "
            f"AND NOT EXISTS (SELECT 1 FROM {keys} k WHERE k.customer_id = devices.customer_id "
            "AND k.kind = devices.kind AND k.raw_id = devices.raw_id)"
        )
        return cursor.rowcount


def _create_temporary(table: str, columns: dict[str, str], extra: str = "") -> None:
    definition = ", ".join(f"{name} {sql}" for name, sql in columns.items())
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TEMPORARY TABLE {table} ({definition}{extra})")


def _copy(spec: Spec, table: str, payload: bytes) -> None:
    if not payload:
        return
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({', '.join(spec.staging)}) FROM STDIN") as copy:
            copy.write(payload)


def _derived_from(column: str) -> set[str]:
    return {
        "email_normalized": {"email"},
        "email_sha256": {"email"},
        "phone_e164": {"phone", "country"},
        "phone_sha256": {"phone", "country"},
        "normalized_id": {"raw_id"},
        "sha256": {"raw_id"},
    }.get(column, set())


# ------------------------------------------------------------------------ entry point


def _write_errors(path: Path, *sorted_streams: Iterator[tuple]) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csvsafe.writer(out)  # people open the report in a spreadsheet
        writer.writerow(ERROR_HEADER)
        for error in heapq.merge(*sorted_streams, key=lambda e: e[0]):
            writer.writerow(error)
            count += 1
    return count


def _read_errors(path: Path) -> Iterator[tuple]:
    with open(path, newline="", encoding="utf-8") as f:
        for row_no, column, value, reason in csv.reader(f):
            yield (int(row_no), column, value, reason)


@dataclass
class _Run:
    """One pass over a file: what every mode shares."""

    kind: ImportKind
    path: Path
    header: list[str]
    workers: int
    error_report: Path
    progress: Progress | None
    result: LoadResult
    replace: bool = False  # devices: the file holds each listed customer's devices, all of them
    size: int = field(init=False)
    scratch: list[Path] = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.path.stat().st_size or 1
        self.scratch = [
            self.error_report.with_name(f"{self.error_report.name}.{n}.part") for n in (1, 2)
        ]

    def report(self, phase: str, percent: int) -> None:
        if self.progress:
            self.progress(phase, percent, self.result.rows_read)

    def read(self, stage: Callable[[ChunkResult], None], phase: str, until: int) -> None:
        """Process every chunk: `stage` the good rows, write the bad ones to scratch 1."""
        result = self.result
        source = _Source(self.path, BLOCK_BYTES)
        work = source.work(CHUNK_ROWS)
        postgres = connection.vendor == "postgresql"
        try:
            with open(self.scratch[0], "w", newline="", encoding="utf-8") as out:
                errors_out = csv.writer(out)
                chunks = _processed_chunks(work, self.kind, self.header, self.workers, postgres)
                for chunk in chunks:
                    stage(chunk)
                    result.rows_read += chunk.rows
                    result.error_rows += chunk.error_rows
                    errors_out.writerows(chunk.errors)
                    result.stats.update(chunk.stats)
                    done = min(source.bytes_read, self.size)
                    self.report(phase, min(until, until * done // self.size))
        finally:
            source.close()

    def write_report(self) -> None:
        self.result.error_count = _write_errors(
            self.error_report, _read_errors(self.scratch[0]), _read_errors(self.scratch[1])
        )

    def cleanup(self) -> None:
        for part in self.scratch:
            part.unlink(missing_ok=True)


def _load_staged(run: _Run) -> None:
    spec = SPECS[run.kind]
    loader = Loader(spec)
    result = run.result
    loader.create_staging()
    try:
        run.read(loader.stage, "Reading and checking rows", 90)
        run.report("Saving to the customer store", 92)
        with open(run.scratch[1], "w", newline="", encoding="utf-8") as out:
            unknown = csv.writer(out)
            for error in loader.unknown_customers():
                unknown.writerow(error)
                result.error_rows += 1
        run.write_report()
        with transaction.atomic():
            inserted, updated, unchanged = loader.upsert(set(run.header))
            if run.replace:
                result.rows_deleted = replace_listed_devices(loader.table)
        result.rows_inserted, result.rows_updated = inserted, updated
        result.rows_unchanged = unchanged
    finally:
        loader.drop_staging()


def _load_batched(run: _Run) -> None:
    """PostgreSQL: upsert while reading, in one transaction. RepeatedKey: nothing changed."""
    result = run.result
    with transaction.atomic():
        with open(run.scratch[1], "w", newline="", encoding="utf-8") as out:
            loader = BatchLoader(SPECS[run.kind], set(run.header), csv.writer(out))
            loader.create()
            run.read(loader.stage, "Reading, checking and saving rows", 98)
            loader.finish()
            if run.replace:
                result.rows_deleted = replace_listed_devices(loader.keys)
            loader.drop()
        result.error_rows += loader.unknown
        result.rows_inserted, result.rows_updated = loader.inserted, loader.updated
        result.rows_unchanged = loader.unchanged
        run.write_report()


def load_csv(
    kind: ImportKind,
    path: Path,
    *,
    error_report: Path,
    progress: Progress | None = None,
    workers: int | None = None,
    replace: bool = False,
) -> LoadResult:
    """Import one CSV file. Raises MalformedFile (nothing changed) for unusable files.

    `replace` (devices only): the devices of every customer the file lists are exactly the
    file's; their other devices are removed in the same transaction."""
    if replace and kind != ImportKind.DEVICES:
        raise ValueError("only a devices import can replace")
    spec = SPECS[kind]
    path = Path(path)
    header, ignored = read_header(path, spec)
    workers = worker_count(path.stat().st_size) if workers is None else workers

    def run() -> _Run:
        result = LoadResult(ignored_columns=ignored)
        return _Run(kind, path, header, workers, error_report, progress, result, replace)

    current = run()
    try:
        if connection.vendor == "postgresql":
            try:
                _load_batched(current)
            except RepeatedKey:
                current.report("A key repeats in the file: checking all rows before saving", 0)
                current = run()
                _load_staged(current)
        else:
            _load_staged(current)
        current.report("Done", 100)
    finally:
        current.cleanup()
    return current.result
