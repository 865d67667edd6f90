"""Running segment SQL safely: read-only, bounded in time, errors a person can read.

PostgreSQL: a transaction (a savepoint when one is already open) with
``SET LOCAL transaction_read_only = on`` and ``SET LOCAL statement_timeout``, always rolled
back, so nothing the query does can persist and the settings never leak.
SQLite: ``PRAGMA query_only`` plus a progress handler that interrupts the query after the
timeout (SQLite has no statement timeout).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from segments.compiler import CompiledSQL


class SegmentQueryError(Exception):
    """The database refused or interrupted a segment query; the message says why."""


def timeout_ms() -> int:
    return int(getattr(settings, "SEGMENT_QUERY_TIMEOUT_MS", 30_000))


@contextmanager
def readonly_cursor(timeout: int | None = None, *, chunked: bool = False) -> Iterator[Any]:
    limit = timeout or timeout_ms()
    try:
        if connection.vendor == "postgresql":
            with transaction.atomic():
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL transaction_read_only = on")
                        cursor.execute(f"SET LOCAL statement_timeout = {int(limit)}")
                    with connection.chunked_cursor() if chunked else connection.cursor() as cur:
                        yield cur
                finally:
                    transaction.set_rollback(True)
        else:
            connection.ensure_connection()
            raw = connection.connection
            deadline = time.monotonic() + limit / 1000
            raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 20_000)
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA query_only = ON")
            try:
                with connection.cursor() as cur:
                    yield cur
            finally:
                raw.set_progress_handler(None, 0)
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA query_only = OFF")
    except DatabaseError as exc:
        raise SegmentQueryError(_explain(exc, limit)) from exc


def _explain(exc: DatabaseError, limit: int) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "statement timeout" in text or "interrupted" in text:
        return f"The query took longer than {limit / 1000:g} s and was stopped."
    if "read-only" in text or "readonly" in text:
        return "The query tried to change data; segments only read."
    return f"The database refused the query: {text}"


def fetch_all(compiled: CompiledSQL, timeout: int | None = None) -> list[tuple]:
    with readonly_cursor(timeout) as cursor:
        cursor.execute(compiled.sql, compiled.params)
        return list(cursor.fetchall())


def fetch_one(compiled: CompiledSQL, timeout: int | None = None) -> tuple:
    rows = fetch_all(compiled, timeout)
    return rows[0] if rows else ()


def stream_rows(compiled: CompiledSQL, chunk_size: int = 2000) -> Iterator[tuple]:
    """Rows of a query, fetched in chunks (server-side cursor on PostgreSQL)."""
    with readonly_cursor(chunked=True) as cursor:
        cursor.execute(compiled.sql, compiled.params)
        while rows := cursor.fetchmany(chunk_size):
            yield from rows
