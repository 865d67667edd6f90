"""Database errors from segment SQL, explained without the data in them.

Every error here is a real one: raised by SQLite (in memory) and by PostgreSQL (a throwaway
schema, dropped afterwards) running bad queries over a ``customers`` table whose values are
recognisable. No message may contain any of those values.
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, connection

from segments.sql_errors import GENERIC, explain_database_error

ROWS = [
    ("cust-0001", "alice.zq7@example.com", "+14155550123", "Alice", "91234"),
    ("cust-0002", "bob.zq7@example.org", "+442071838750", "Bob", "not-a-number"),
]
DATA_VALUES = {value for row in ROWS for value in row}
TIMEOUT_MS = 4_000


def where(sql: str, word: str, nth: int = 0) -> tuple[int, int]:
    """Line and column of the nth occurrence of ``word`` (found by plain string search)."""
    index = -1
    for _ in range(nth + 1):
        index = sql.index(word, index + 1)
    line = sql.count("\n", 0, index) + 1
    column = index - (sql.rfind("\n", 0, index) + 1) + 1
    return line, column


def assert_no_data(message: str) -> None:
    for value in DATA_VALUES:
        assert value.lower() not in message.lower(), f"{value!r} leaked into {message!r}"
    assert "@" not in message
    assert not re.search(r"\d{5,}", message), message


# (SQL, words the message must contain, the word the position must point at or None).
# All run on PostgreSQL; SQLITE_CASES are the ones SQLite refuses too (its dynamic typing
# runs casts, comparisons of mixed types and division by zero without an error).
CASES: list[tuple[str, tuple[str, ...], str | None]] = [
    (
        "SELECT customer_id FROM customers WHERE CAST(email AS int) = 1",
        ("type mismatch",),
        None,
    ),
    (
        "SELECT customer_id FROM customers WHERE CAST(zip AS integer) > 0",
        ("type mismatch",),
        None,
    ),
    (
        "SELECT customer_id FROM customers\nWHERE emial = 'x'",
        ("column “emial” does not exist",),
        "emial",
    ),
    (
        "SELECT c.customer_id FROM customers c\n  WHERE c.phnoe LIKE '+1%'",
        ("c.phnoe",),
        "c.phnoe",
    ),
    ("SELECT customer_id FROM custmers", ("table “custmers” does not exist",), "custmers"),
    (
        "SELECT customer_id FROM customers WHERE frobnicate(email) = 1",
        ("frobnicate()",),
        "frobnicate",
    ),
    (
        "SELECT customer_id FROM customers c JOIN orders o ON o.customer_id = c.customer_id",
        ("“customer_id” is ambiguous",),
        "customer_id",
    ),
    (
        "SELECT customer_id FROM customers WHERE COUNT(*) > 1",
        ("aggregate",),
        None,
    ),
    ("SELECT customer_id FROM customers WHERE 1 / 0 = 1", ("divides by zero",), None),
    (
        "SELECT customer_id FROM customers WHERE CAST('99999999999' AS int) = 1",
        ("out of range",),
        None,
    ),
    (
        "SELECT customer_id FROM customers WHERE (SELECT email FROM customers) = 'x'",
        ("more than one row",),
        None,
    ),
    (
        "SELECT customer_id FROM customers WHERE CAST(email AS date) IS NULL",
        ("date",),
        None,
    ),
    ("SELECT customer_id FROM customers WHERE email > 5", ("type mismatch",), None),
    ("SELECT customer_id FROM customers WHERE", ("syntax error",), None),
    (
        "SELECT customer_id FROM customers WHERE CAST((SELECT string_agg(email || '|' || phone,"
        " ',') FROM customers) AS int) = 1",
        ("type mismatch",),
        None,
    ),
]


SQLITE_CASES = [
    case
    for case in CASES
    if any(
        w in case[1][0]
        for w in ("does not exist", "frobnicate", "ambiguous", "aggregate", "syntax")
    )
]


def _sqlite() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE customers (customer_id TEXT, email TEXT, phone TEXT, given_name TEXT,"
        " zip TEXT)"
    )
    db.execute("CREATE TABLE orders (order_id TEXT, customer_id TEXT)")
    db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", ROWS)
    db.execute("INSERT INTO orders VALUES ('o1', 'cust-0001')")
    return db


def _postgres_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return url.rsplit("/", 1)[0] + "/postgres"
    return "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(_postgres_url(), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not reachable")
    schema = f"sqlsec_errors_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        conn.execute(f"SET search_path = {schema}")
        conn.execute(
            "CREATE TABLE customers (customer_id text, email text, phone text, given_name text,"
            " zip text)"
        )
        conn.execute("CREATE TABLE orders (order_id text, customer_id text)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO customers VALUES (%s, %s, %s, %s, %s)", ROWS)
        conn.execute("INSERT INTO orders VALUES ('o1', 'cust-0001')")
        conn.schema = schema  # type: ignore[attr-defined]
        yield conn
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def _sqlite_error(sql: str) -> sqlite3.Error | None:
    db = _sqlite()
    try:
        db.execute(sql).fetchall()
    except sqlite3.Error as exc:
        return exc
    finally:
        db.close()
    return None


@pytest.mark.parametrize(("sql", "says", "at"), SQLITE_CASES, ids=[c[0][:50] for c in SQLITE_CASES])
def test_sqlite_errors_are_explained_without_data(sql, says, at):
    error = _sqlite_error(sql)
    assert error is not None
    message, line, column = explain_database_error(
        error, sql=sql, vendor="sqlite", timeout_ms=TIMEOUT_MS
    )
    assert_no_data(message)
    assert str(error) not in message
    for words in says:
        assert words.lower() in message.lower()
    if at is not None:
        assert (line, column) == where(sql, at)


@pytest.mark.parametrize(("sql", "says", "at"), CASES, ids=[c[0][:50] for c in CASES])
def test_postgresql_errors_are_explained_without_data(pg, sql, says, at):
    import psycopg

    prefix = "SELECT COUNT(*) FROM (\n"
    with pytest.raises(psycopg.Error) as err:
        pg.execute(prefix + sql + "\n) m").fetchall()
    message, line, column = explain_database_error(
        err.value,
        sql=sql,
        vendor="postgresql",
        timeout_ms=TIMEOUT_MS,
        ran=sql,
        offset=len(prefix),
    )
    assert_no_data(message)
    assert str(err.value).splitlines()[0] not in message
    for words in says:
        assert words.lower() in message.lower()
    if at is not None:
        assert (line, column) == where(sql, at)


def test_postgresql_positions_map_through_the_rerendered_query(pg):
    """The statement ran the checked re-rendering; the position still lands in the SQL the
    person typed (here: different spacing, case and a comment)."""
    import psycopg

    typed = "select c.customer_id   -- the ids\n  from customers c\n  where c.emial = 'x'"
    rendered = "SELECT c.customer_id FROM customers AS c WHERE c.emial = 'x'"
    prefix = "WITH q(customer_id) AS ("
    with pytest.raises(psycopg.Error) as err:
        pg.execute(prefix + rendered + ") SELECT DISTINCT q.customer_id FROM q").fetchall()
    message, line, column = explain_database_error(
        err.value,
        sql=typed,
        vendor="postgresql",
        timeout_ms=TIMEOUT_MS,
        ran=rendered,
        offset=len(prefix),
    )
    assert "c.emial" in message
    assert (line, column) == where(typed, "c.emial")


def test_a_position_in_the_wrapper_is_not_reported_as_the_persons(pg):
    import psycopg

    sql = "SELECT customer_id FROM customers"
    with pytest.raises(psycopg.Error) as err:
        pg.execute(f"SELECT nosuchcolumn FROM ({sql}) m").fetchall()
    message, line, column = explain_database_error(
        err.value, sql=sql, vendor="postgresql", timeout_ms=TIMEOUT_MS, ran=sql, offset=26
    )
    assert message == "A column in the query does not exist (check spelling and tables)."
    assert (line, column) == (None, None)


def test_a_name_the_person_did_not_write_is_never_quoted(pg):
    """The error names a column only the database wrote (here: through a quoted value that
    became an identifier on the database side); the message names no column."""
    import psycopg

    with pytest.raises(psycopg.Error) as err:
        pg.execute('SELECT "alice.zq7@example.com" FROM customers').fetchall()
    message, _, _ = explain_database_error(
        err.value, sql="SELECT customer_id FROM customers", vendor="postgresql", timeout_ms=1
    )
    assert_no_data(message)
    assert "does not exist" in message


def test_postgresql_timeout_read_only_and_privilege(pg):
    import psycopg

    with pg.transaction():
        pg.execute("SET LOCAL statement_timeout = 50")
        with pytest.raises(psycopg.Error) as err:
            pg.execute("SELECT pg_sleep(2)")
    message, _, _ = explain_database_error(err.value, sql="", vendor="postgresql", timeout_ms=50)
    assert message == "The query took longer than 0.05 s and was stopped."

    with pytest.raises(psycopg.Error) as err, pg.transaction():
        pg.execute("SET TRANSACTION READ ONLY")
        pg.execute("DELETE FROM customers")
    message, _, _ = explain_database_error(err.value, sql="", vendor="postgresql", timeout_ms=1)
    assert "only read" in message

    role = f"sqlsec_nobody_{uuid.uuid4().hex[:8]}"
    pg.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        pg.execute(f"GRANT USAGE ON SCHEMA {pg.schema} TO {role}")
        with pytest.raises(psycopg.Error) as err, pg.transaction():
            pg.execute(f"SET LOCAL ROLE {role}")
            pg.execute("SELECT email FROM customers").fetchall()
        message, _, _ = explain_database_error(err.value, sql="", vendor="postgresql", timeout_ms=1)
        assert message.startswith("The query reads something segments may not read")
    finally:
        pg.execute(f"REVOKE ALL ON SCHEMA {pg.schema} FROM {role}")
        pg.execute(f"DROP ROLE {role}")


def test_sqlite_timeout_read_only_and_authorizer():
    db = _sqlite()
    db.set_progress_handler(lambda: 1, 1)
    with pytest.raises(sqlite3.Error) as err:
        db.execute("SELECT COUNT(*) FROM customers a, customers b").fetchall()
    db.set_progress_handler(None, 0)
    message, _, _ = explain_database_error(err.value, sql="", vendor="sqlite", timeout_ms=1500)
    assert message == "The query took longer than 1.5 s and was stopped."

    db.execute("PRAGMA query_only = ON")
    with pytest.raises(sqlite3.Error) as err:
        db.execute("DELETE FROM customers")
    message, _, _ = explain_database_error(err.value, sql="", vendor="sqlite", timeout_ms=1)
    assert "only read" in message
    db.execute("PRAGMA query_only = OFF")

    def deny_email(action: int, arg1: Any, arg2: Any, *_: Any) -> int:
        if action == sqlite3.SQLITE_READ and arg2 == "email":
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_READ and arg1 == "orders":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    db.set_authorizer(deny_email)
    for sql in ("SELECT email FROM customers", "SELECT customer_id FROM orders"):
        with pytest.raises(sqlite3.Error) as err:
            db.execute(sql).fetchall()
        message, _, _ = explain_database_error(err.value, sql=sql, vendor="sqlite", timeout_ms=1)
        assert message.startswith("The query reads something segments may not read")
        assert_no_data(message)


def test_sqlite_syntax_errors_quote_only_the_persons_own_words():
    sql = "SELECT customer_id FROM customers WHERE email LIKE 'a%' ORDER"
    error = _sqlite_error(sql)
    assert error is not None
    message, _, _ = explain_database_error(error, sql=sql, vendor="sqlite", timeout_ms=1)
    assert message.lower().startswith("syntax error")
    assert_no_data(message)


def test_an_unknown_error_gets_the_generic_message():
    class Strange(Exception):
        pass

    message, line, column = explain_database_error(
        Strange("value alice.zq7@example.com broke"), sql="x", vendor="sqlite", timeout_ms=1
    )
    assert (message, line, column) == (GENERIC, None, None)


@pytest.mark.django_db
def test_djangos_wrapped_errors_are_unwrapped_on_the_test_database():
    """Through Django's DatabaseError wrapper, on whichever database the suite runs on."""
    sql = "SELECT customer_id FROM customers WHERE emial = 'x'"
    with pytest.raises(DatabaseError) as err, connection.cursor() as cursor:
        cursor.execute(sql)
    message, line, column = explain_database_error(
        err.value, sql=sql, vendor=connection.vendor, timeout_ms=1
    )
    assert message.startswith("Column “emial” does not exist")
    assert (line, column) == where(sql, "emial")


def test_a_name_is_quoted_as_the_person_wrote_it(pg):
    """PostgreSQL folds the unquoted name to lower case in its text; the message does not."""
    import psycopg

    sql = "SELECT customer_id FROM customers WHERE Given_Nmae = 'x'"
    with pytest.raises(psycopg.Error) as err:
        pg.execute(sql).fetchall()
    assert "given_nmae" in str(err.value)
    message, line, column = explain_database_error(
        err.value, sql=sql, vendor="postgresql", timeout_ms=1, ran=sql
    )
    assert "“Given_Nmae”" in message
    assert (line, column) == where(sql, "Given_Nmae")


def test_without_ran_the_reported_offset_is_not_trusted(pg):
    """The caller did not say where the person's SQL sits in the statement: the offset could
    point anywhere, so the position comes from the named column instead."""
    import psycopg

    sql = "SELECT customer_id FROM customers\nWHERE emial = 'x'"
    with pytest.raises(psycopg.Error) as err:
        pg.execute("SELECT 1 AS padding_padding_padding, m.* FROM (" + sql + ") m").fetchall()
    message, line, column = explain_database_error(
        err.value, sql=sql, vendor="postgresql", timeout_ms=1
    )
    assert "“emial”" in message
    assert (line, column) == where(sql, "emial")
