"""Running the product's own segment SQL safely: read-only, bounded in time, errors a person
can read.

This runs SQL the product compiled (visual segments, campaign counts, insights over an SQL
segment's evaluated members). A person's SQL never runs here: ``segments.fence`` evaluates
it behind the database's own fence first.

PostgreSQL: a transaction (a savepoint when one is already open) with
``SET LOCAL transaction_read_only = on`` and ``SET LOCAL statement_timeout``, always rolled
back, so nothing the query does can persist and the settings never leak.
SQLite: ``PRAGMA query_only`` plus a progress handler that interrupts the query after the
timeout (SQLite has no statement timeout). Inside ``fence.live_queries`` the timeout is the
short live one and a newer live query of the same person cancels this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connection, transaction

from segments import fence
from segments.compiler import CompiledSQL
from segments.fence import SegmentQueryError

__all__ = ["SegmentQueryError", "fetch_all", "fetch_one", "readonly_cursor", "stream_rows"]


def timeout_ms() -> int:
    return fence.timeout_ms()


@contextmanager
def readonly_cursor(timeout: int | None = None, *, chunked: bool = False) -> Iterator[Any]:
    limit = fence.timeout_ms(timeout)
    try:
        if connection.vendor == "postgresql":
            with transaction.atomic():
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL transaction_read_only = on")
                        cursor.execute(f"SET LOCAL statement_timeout = {int(limit)}")
                        if tag := fence.live_tag():
                            cursor.execute("SELECT set_config('application_name', %s, true)", [tag])
                    with connection.chunked_cursor() if chunked else connection.cursor() as cur:
                        yield cur
                finally:
                    transaction.set_rollback(True)
        else:
            connection.ensure_connection()
            raw = connection.connection
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA query_only = ON")
            try:
                with fence.sqlite_guard(raw, limit, None), connection.cursor() as cur:
                    yield cur
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA query_only = OFF")
    except DatabaseError as exc:
        from segments.sql_errors import explain_database_error

        message, line, column = explain_database_error(
            exc, sql="", vendor=connection.vendor, timeout_ms=limit
        )
        raise SegmentQueryError(message, line, column) from exc


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
