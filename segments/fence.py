"""The database fence around SQL segments: the person's SQL runs only where the database
itself limits it to the customer store.

``sqlcheck`` is the first, friendly layer (it explains what is not allowed). This module is
the fence that holds even if a query slips past the parser:

- **PostgreSQL**: the query runs on a connection of its own that logs in as a dedicated role
  (``SEGMENT_DB_USER``, made by ``segments.roles``) holding ``SELECT`` on ``customers``,
  ``devices`` and ``orders`` and nothing else, in a read-only transaction with a statement
  timeout. It is not ``SET ROLE`` on a privileged session, which SQL could undo. Its rows
  are streamed with ``COPY (...) TO STDOUT`` into ``segments_sql_result_member`` over the
  default connection.
- **SQLite**: the same rule through SQLite's authorizer callback
  (``sqlite3.Connection.set_authorizer``) while one ``INSERT INTO
  segments_sql_result_member SELECT ... FROM (<query>)`` runs: reads of any table but the
  store, every function outside a short list of plain ones, pragmas, attaching and every
  other write are denied.

Everything else (insights, campaign counts, the delivery snapshot) reads the evaluated
members (``SqlResult``), never the person's SQL. An evaluation of the same checked query
is reused for ``SEGMENT_SQL_REUSE_SECONDS`` by interactive pages; ``fresh_results()`` makes
the delivery snapshot evaluate again.

Live queries (``live_queries(user)``, the editor's insights) use a short timeout and at
most one runs per person: starting one cancels the one before.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from segments.models import SqlResult
from segments.sqlcheck import check_sql

logger = logging.getLogger(__name__)

STORE_TABLES = frozenset({"customers", "devices", "orders"})
MEMBER_TABLE = "segments_sql_result_member"

# Plain scalar, aggregate and window functions of SQLite core; anything else is denied.
SQLITE_FUNCTIONS = frozenset(
    [
        "abs",
        "avg",
        "ceil",
        "ceiling",
        "char",
        "coalesce",
        "concat",
        "concat_ws",
        "count",
        "cume_dist",
        "date",
        "datetime",
        "dense_rank",
        "exp",
        "first_value",
        "floor",
        "format",
        "glob",
        "group_concat",
        "hex",
        "ifnull",
        "iif",
        "instr",
        "julianday",
        "lag",
        "last_value",
        "lead",
        "length",
        "like",
        "likelihood",
        "likely",
        "ln",
        "log",
        "log10",
        "log2",
        "lower",
        "ltrim",
        "max",
        "min",
        "mod",
        "nth_value",
        "ntile",
        "nullif",
        "octet_length",
        "percent_rank",
        "pi",
        "pow",
        "power",
        "printf",
        "quote",
        "random",
        "rank",
        "replace",
        "round",
        "row_number",
        "rtrim",
        "sign",
        "sqrt",
        "strftime",
        "string_agg",
        "substr",
        "substring",
        "sum",
        "time",
        "timediff",
        "total",
        "trim",
        "trunc",
        "typeof",
        "unicode",
        "unixepoch",
        "unlikely",
        "upper",
    ]
)


class SegmentQueryError(Exception):
    """The database refused or interrupted a segment query; the message is in a person's
    words and never carries a value from the data. ``line``/``column`` point into the
    person's SQL when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.message, self.line, self.column = message, line, column
        where = f" (line {line}, column {column})" if line else ""
        super().__init__(f"{message}{where}")


# -- live queries: short timeout, one per person -------------------------------------------

_live_tag: ContextVar[str | None] = ContextVar("segments_live_tag", default=None)
_live_events: dict[str, threading.Event] = {}
_live_lock = threading.Lock()


def live_tag() -> str | None:
    """The tag of the live query running in this context (``None`` outside one)."""
    return _live_tag.get()


def live_cancelled() -> threading.Event | None:
    tag = _live_tag.get()
    return _live_events.get(tag) if tag else None


def timeout_ms(timeout: int | None = None) -> int:
    limit = timeout or int(settings.SEGMENT_QUERY_TIMEOUT_MS)
    if _live_tag.get() is not None:
        limit = min(limit, int(settings.SEGMENT_LIVE_TIMEOUT_MS))
    return limit


@contextmanager
def live_queries(user_id: int) -> Iterator[None]:
    """Queries in this block are a person's live preview: a short timeout, and a new
    block for the same person cancels the queries of the one before."""
    tag = f"segments-live-{int(user_id)}"
    event = threading.Event()
    with _live_lock:
        previous = _live_events.get(tag)
        _live_events[tag] = event
    if previous is not None:
        previous.set()  # SQLite: the progress handler interrupts it
    if connection.vendor == "postgresql":
        _cancel_pg(tag)
    token = _live_tag.set(tag)
    try:
        yield
    finally:
        _live_tag.reset(token)
        with _live_lock:
            if _live_events.get(tag) is event:
                del _live_events[tag]


def _cancel_pg(tag: str) -> None:
    """Cancel running queries tagged ``tag`` (by application_name), on both logins: each
    role may signal only its own backends."""
    sql = (
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
        "AND state = 'active' AND pid <> pg_backend_pid() AND datname = current_database()"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, [tag])
        with _pg_fence() as fence:
            fence.execute(sql, [tag])
    except Exception:  # cancelling is best effort; the new query runs regardless
        logger.warning("could not cancel the previous live segment query", exc_info=True)


# -- evaluation ----------------------------------------------------------------------------

_fresh: ContextVar[bool] = ContextVar("segments_fresh_results", default=False)


@contextmanager
def fresh_results() -> Iterator[None]:
    """SQL segments compiled in this block are evaluated again (the delivery snapshot)."""
    token = _fresh.set(True)
    try:
        yield
    finally:
        _fresh.reset(token)


def members_query(result_id: int) -> str:
    """SQL over the evaluated members (one column ``customer_id``); the id is ours, an int."""
    return f"SELECT r.customer_id FROM {MEMBER_TABLE} r WHERE r.result_id = {int(result_id)}"


def evaluate(sql: str, *, timeout: int | None = None) -> int:
    """Check ``sql``, run it behind the fence and return the id of its ``SqlResult``.

    Raises ``SqlSegmentError`` (refused by the check) or ``SegmentQueryError`` (refused or
    interrupted by the database), both in a person's words.
    """
    checked = check_sql(sql, vendor=connection.vendor)
    digest = hashlib.sha256(f"{connection.vendor}\n{checked.query}".encode()).hexdigest()
    reuse = int(settings.SEGMENT_SQL_REUSE_SECONDS)
    if reuse and not _fresh.get():
        recent = (
            SqlResult.objects.filter(
                sql_hash=digest, created_at__gte=timezone.now() - timedelta(seconds=reuse)
            )
            .order_by("-created_at")
            .values_list("pk", flat=True)
            .first()
        )
        if recent is not None:
            return recent
    limit = timeout_ms(timeout)
    with transaction.atomic():
        result = SqlResult.objects.create(sql_hash=digest, created_at=timezone.now())
        try:
            if connection.vendor == "postgresql":
                size = _run_pg(checked.query, result.pk, limit)
            else:
                size = _run_sqlite(checked.query, result.pk, limit)
        except (DatabaseError, sqlite3.Error, _PgError) as exc:
            from segments.sql_errors import explain_database_error

            on_pg = connection.vendor == "postgresql"
            message, line, column = explain_database_error(
                exc,
                sql=sql,
                vendor=connection.vendor,
                timeout_ms=limit,
                ran=checked.query if on_pg else None,
                offset=len(_pg_prefix(result.pk)) if on_pg else 0,
            )
            raise SegmentQueryError(message, line, column) from None
        SqlResult.objects.filter(pk=result.pk).update(size=size)
    return result.pk


# -- PostgreSQL: a login of its own --------------------------------------------------------

try:
    import psycopg

    _PgError: type[BaseException] = psycopg.Error
except ImportError:  # pragma: no cover - the PostgreSQL driver is a dependency
    psycopg = None  # type: ignore[assignment]
    _PgError = DatabaseError

_local = threading.local()
_open: weakref.WeakSet[Any] = weakref.WeakSet()
_open_lock = threading.Lock()


def close_connections() -> None:
    """Close every thread's fenced connection (tests, before dropping their database)."""
    with _open_lock:
        conns = list(_open)
        _open.clear()
    for conn in conns:
        try:
            conn.close()
        except Exception:  # closing a connection another thread uses: it reconnects
            logger.debug("closing a fenced connection failed", exc_info=True)


def _pg_params() -> dict[str, Any]:
    s = connection.settings_dict
    params: dict[str, Any] = {
        "dbname": s["NAME"],
        "user": settings.SEGMENT_DB_USER,
        "connect_timeout": 10,
        "application_name": "segments-fence",
        "autocommit": False,
    }
    if s.get("HOST"):
        params["host"] = s["HOST"]
    if s.get("PORT"):
        params["port"] = s["PORT"]
    if settings.SEGMENT_DB_PASSWORD:
        params["password"] = settings.SEGMENT_DB_PASSWORD
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
        if key in (s.get("OPTIONS") or {}):
            params[key] = s["OPTIONS"][key]
    return params


@contextmanager
def _pg_fence() -> Iterator[Any]:
    """This thread's cursor on the fenced login, (re)connected when needed; the connection
    is left idle (rolled back) whatever happens."""
    params = _pg_params()
    conn = getattr(_local, "conn", None)
    if conn is not None and getattr(_local, "params", None) != params:
        conn.close()
    if conn is not None and not conn.closed:
        try:  # a health check, as CONN_HEALTH_CHECKS does for Django's connections
            conn.execute("SELECT 1")
            conn.rollback()
        except psycopg.Error:
            conn.close()
    if conn is None or conn.closed:
        try:
            conn = psycopg.connect(**params)
        except psycopg.OperationalError as exc:
            logger.error("segment SQL login %r failed: %s", params["user"], exc)
            raise SegmentQueryError(
                "SQL segments cannot run: the database login for segment SQL is not set up. "
                "An administrator runs “manage.py segment_role”."
            ) from None
        _local.conn, _local.params = conn, params
        with _open_lock:
            _open.add(conn)
    try:
        with conn.cursor() as cursor:
            yield cursor
    finally:
        if not conn.closed:
            try:
                conn.rollback()
            except psycopg.Error:
                conn.close()


def _pg_prefix(result_id: int) -> str:
    """What precedes the person's (checked) query in the statement that runs, so an error
    position can be mapped back into their SQL."""
    return f"COPY (SELECT DISTINCT {int(result_id)}, CAST(q.customer_id AS varchar(64)) FROM ("


def _run_pg(query: str, result_id: int, limit: int) -> int:
    tag = _live_tag.get() or "segments-fence"
    copy_out = (
        _pg_prefix(result_id)
        + f"{query}) AS q(customer_id) WHERE q.customer_id IS NOT NULL) TO STDOUT"
    )
    size = 0
    with _pg_fence() as fence, connection.cursor() as cursor:
        fence.execute("SET LOCAL transaction_read_only = on")
        fence.execute(f"SET LOCAL statement_timeout = {int(limit)}")
        fence.execute("SELECT set_config('application_name', %s, true)", [tag])
        raw = cursor.cursor  # the default connection's psycopg cursor
        with (
            fence.copy(copy_out) as source,
            raw.copy(f"COPY {MEMBER_TABLE} (result_id, customer_id) FROM STDIN") as sink,
        ):
            for chunk in source:
                sink.write(chunk)
                size += bytes(chunk).count(b"\n")
    return size


# -- SQLite: the authorizer ----------------------------------------------------------------


def _sqlite_authorizer(action: int, arg1: Any, arg2: Any, db: Any, _source: Any) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_READ and (
        (arg1 in STORE_TABLES and db == "main") or db is None  # None: a CTE, not a table
    ):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and str(arg2).lower() in SQLITE_FUNCTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_INSERT and arg1 == MEMBER_TABLE:
        return sqlite3.SQLITE_OK  # our own INSERT: SQLite has no DML inside a SELECT
    return sqlite3.SQLITE_DENY


@contextmanager
def sqlite_guard(
    raw: sqlite3.Connection, limit_ms: int, authorizer: Callable | None
) -> Iterator[None]:
    """A deadline (and the live-query cancel flag) through the progress handler, and an
    optional authorizer, both removed afterwards."""
    deadline = time.monotonic() + limit_ms / 1000
    cancelled = live_cancelled()

    def progress() -> int:
        return int(time.monotonic() > deadline or (cancelled is not None and cancelled.is_set()))

    raw.set_progress_handler(progress, 20_000)
    if authorizer is not None:
        raw.set_authorizer(authorizer)
    try:
        yield
    finally:
        if authorizer is not None:
            raw.set_authorizer(None)
        raw.set_progress_handler(None, 0)


def _run_sqlite(query: str, result_id: int, limit: int) -> int:
    connection.ensure_connection()
    raw = connection.connection
    # SQLite has no column list on a subquery alias: the CTE names the one column.
    statement = (
        f"WITH fenced(customer_id) AS ({query}) "
        f"INSERT INTO {MEMBER_TABLE} (result_id, customer_id) "
        f"SELECT DISTINCT {int(result_id)}, CAST(f.customer_id AS TEXT) FROM fenced f "
        "WHERE f.customer_id IS NOT NULL"
    )
    cursor = raw.cursor()
    roots = dict(cursor.execute("SELECT rootpage, tbl_name FROM sqlite_master WHERE rootpage > 0"))
    before = raw.total_changes
    try:
        with sqlite_guard(raw, limit, _sqlite_authorizer):
            # The authorizer sees column reads only (`EXISTS (SELECT 1 FROM t)` reads no
            # column), so the compiled program is checked too: every b-tree it opens.
            program = cursor.execute("EXPLAIN " + statement).fetchall()
            _check_sqlite_program(roots, program)
            cursor.execute(statement)
    finally:
        cursor.close()
    return int(raw.total_changes - before)


def _check_sqlite_program(roots: dict[int, str], program: list[tuple]) -> None:
    """Refuse a program that opens any b-tree but the store's (to read) and the members
    table's (to write), in the main database only."""
    opened = {
        (str(row[1]), int(row[3]), int(row[4]))  # opcode, root page, database index
        for row in program
        if row[1] in ("OpenRead", "OpenWrite", "ReopenIdx", "OpenDup")
    }
    for opcode, root, database in opened:
        table = roots.get(root) if database == 0 else None
        allowed = MEMBER_TABLE if opcode == "OpenWrite" else None
        if table is None or (table not in STORE_TABLES and table != allowed):
            raise sqlite3.DatabaseError("not authorized")


# -- housekeeping --------------------------------------------------------------------------


def delete_old_results(*, older_than: timedelta = timedelta(hours=6)) -> int:
    """Delete evaluations older than ``older_than`` (members first, in one statement)."""
    cutoff = timezone.now() - older_than
    ids = list(SqlResult.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        with transaction.atomic(), connection.cursor() as cursor:
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {MEMBER_TABLE} WHERE result_id IN ({marks})", chunk)
            SqlResult.objects.filter(pk__in=chunk).delete()
    return len(ids)


def live_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: the view's segment queries are the person's live preview
    (``live_queries``)."""

    @wraps(view)
    def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
        with live_queries(request.user.pk):
            return view(request, *args, **kwargs)

    return wrapper
