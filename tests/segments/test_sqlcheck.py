"""SQL segments: refused before anything runs, with the problem and its position."""

from __future__ import annotations

import re
from unittest import mock

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.compiler import CompiledSQL
from segments.runner import SegmentQueryError, fetch_all
from segments.sqlcheck import SqlSegmentError, check_sql

ATTACKS = [
    ("DROP TABLE customers", "read-only SELECT"),
    ("DELETE FROM customers", "read-only SELECT"),
    ("UPDATE customers SET state = 'x'", "read-only SELECT"),
    ("INSERT INTO customers (customer_id) VALUES ('x')", "read-only SELECT"),
    ("CREATE TABLE t AS SELECT customer_id FROM customers", "read-only SELECT"),
    ("SELECT customer_id FROM customers; DROP TABLE customers", "one statement"),
    ("SELECT customer_id FROM customers; SELECT 1", "one statement"),
    ("SELECT customer_id FROM customers /* ; DROP TABLE customers */", "comment"),
    ("SELECT customer_id FROM customers -- ; DELETE FROM orders\n", "comment"),
    ("SELECT customer_id FROM customers WHERE pg_sleep(10) IS NULL", "pg_sleep"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("SELECT customer_id FROM customers WHERE pg_ls_dir('.') IS NULL", "pg_ls_dir"),
    ("COPY customers TO '/tmp/x'", "read-only SELECT"),
    ("SELECT set_config('transaction_read_only', 'off', false)", "set_config"),
    ("SELECT current_setting('data_directory')", "current_setting"),
    ("SELECT dblink('host=evil', 'select 1')", "dblink"),
    ("SELECT lo_import('/etc/passwd')", "lo_import"),
    ("SELECT query_to_xml('delete from customers', true, true, '')", "query_to_xml"),
    ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
    ("SELECT usename FROM pg_user", "System catalog"),
    ("SELECT relname FROM pg_catalog.pg_class", "System catalog"),
    ("SELECT table_name FROM information_schema.tables", "System catalog"),
    ("SELECT name FROM sqlite_master", "System catalog"),
    ("SELECT username FROM accounts_user", "not allowed"),
    ("SELECT customer_id INTO stolen FROM customers", "INTO"),
    ("SELECT customer_id FROM customers FOR UPDATE", "not allowed"),
    (
        "WITH gone AS (DELETE FROM orders RETURNING customer_id) SELECT customer_id FROM gone",
        "not allowed",
    ),
    ("SELECT * FROM customers", "exactly one column"),
    ("SELECT customer_id, email FROM customers", "exactly one column"),
    ("SELECT customer_id FROM public.customers", "without a schema"),
    ("SELECT customer_id FRM customers", "Syntax error"),
    ("", "Write a SELECT"),
]


@pytest.mark.parametrize(("sql", "message"), ATTACKS, ids=[a[0][:40] for a in ATTACKS])
@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_dangerous_or_malformed_sql_is_refused_before_anything_runs(sql, message, vendor):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute") as execute:
        with pytest.raises(SqlSegmentError) as err:
            check_sql(sql, vendor=vendor)
        execute.assert_not_called()
    assert message.lower() in str(err.value).lower()


def test_errors_name_the_line_and_column():
    with pytest.raises(SqlSegmentError) as err:
        check_sql(
            "SELECT c.customer_id\nFROM customers c\nWHERE pg_sleep(5) IS NULL", vendor="postgresql"
        )
    assert (err.value.line, err.value.column) == (3, 7)
    with pytest.raises(SqlSegmentError) as err:
        check_sql("SELECT customer_id\nFROM secrets", vendor="sqlite")
    assert (err.value.line, err.value.column) == (2, 6)


def test_a_valid_query_with_joins_ctes_and_comments_is_accepted_and_rerendered():
    sql = """-- big spenders in CA
    WITH spend AS (SELECT o.customer_id, SUM(o.amount) AS total FROM orders o GROUP BY 1)
    SELECT c.customer_id FROM customers c JOIN spend s ON s.customer_id = c.customer_id
    LEFT JOIN devices d ON d.customer_id = c.customer_id
    WHERE c.state = 'CA' AND s.total > 100 AND c.email LIKE '%@gmail.com'"""
    checked = check_sql(sql, vendor="postgresql")
    assert "big spenders" not in checked.query  # comments are dropped before running
    assert checked.members_sql.startswith("WITH q(customer_id) AS (")
    assert "'%%@gmail.com'" in checked.members_sql


def test_an_accepted_query_runs_read_only(people):
    checked = check_sql(
        "SELECT customer_id FROM customers WHERE state = 'CA'", vendor=connection.vendor
    )
    rows = fetch_all(CompiledSQL(checked.members_sql, []))
    assert {r[0] for r in rows} == {"ann", "eve"}


def test_the_runner_refuses_writes_even_if_the_checker_were_fooled(people):
    with pytest.raises(SegmentQueryError) as err:
        fetch_all(CompiledSQL("DELETE FROM customers", []))
    assert "only read" in str(err.value) or "refused" in str(err.value)
    from customers.models import Customer

    assert Customer.objects.count() == 5


def test_a_slow_query_is_stopped_by_the_timeout(people):
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
        "SELECT COUNT(*) FROM n"
    )
    with pytest.raises(SegmentQueryError) as err:
        fetch_all(CompiledSQL(slow, []), timeout=200)
    assert "longer than" in str(err.value)


# -- WITH-query scoping ------------------------------------------------------------------------

SHADOW_LEAK = (
    "WITH django_session AS (SELECT * FROM django_session) "
    "SELECT customer_id FROM customers WHERE CAST((SELECT string_agg(session_key, ',') "
    "FROM django_session) AS int) = 1"
)

SCOPE_REFUSED = [
    # the attack review's query: inside its own (non-recursive) body the name is the table
    (SHADOW_LEAK, "django_session", 1),
    ("WITH x AS (SELECT customer_id FROM accounts_user) SELECT customer_id FROM x",
     "accounts_user", 0),
    # a WITH inside a subquery does not cover the outer query
    ("SELECT customer_id FROM django_session WHERE customer_id IN (WITH django_session AS "
     "(SELECT customer_id FROM customers) SELECT customer_id FROM django_session)",
     "django_session", 0),
    # nor a sibling subquery
    ("SELECT customer_id FROM customers WHERE customer_id IN (WITH t AS (SELECT customer_id "
     "FROM customers) SELECT customer_id FROM t) OR customer_id IN (SELECT customer_id FROM t)",
     "t)", 1),
    # a WITH query sees only the ones before it
    ("WITH a AS (SELECT customer_id FROM django_session), django_session AS (SELECT "
     "customer_id FROM customers) SELECT customer_id FROM a", "django_session", 0),
    # its own name in its own body, non-recursive, nested one level down
    ("WITH accounts_user AS (SELECT customer_id FROM customers WHERE customer_id IN "
     "(SELECT username FROM accounts_user)) SELECT customer_id FROM accounts_user",
     "accounts_user", 1),
    # a WITH query's name inside another WITH query's subquery WITH list
    ("WITH a AS (WITH b AS (SELECT customer_id FROM customers) SELECT customer_id FROM b) "
     "SELECT customer_id FROM b", "b", 2),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "word", "nth"), SCOPE_REFUSED, ids=[c[0][:40] for c in SCOPE_REFUSED]
)
@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_a_name_outside_its_with_querys_scope_is_a_real_table_and_refused(sql, word, nth, vendor):
    with pytest.raises(SqlSegmentError) as err:
        check_sql(sql, vendor=vendor)
    assert "not allowed" in err.value.message or "before it is defined" in err.value.message
    index = -1
    for _ in range(nth + 1):
        index = re.search(rf"\b{re.escape(word)}", sql[index + 1 :]).start() + index + 1  # type: ignore[union-attr]
    assert (err.value.line, err.value.column) == (1, index + 1)


SCOPE_ACCEPTED = [
    # shadowing a non-store table is fine where the name can only mean the WITH query
    "WITH django_session AS (SELECT customer_id FROM customers) "
    "SELECT customer_id FROM django_session",
    "WITH a AS (SELECT customer_id FROM customers), b AS (SELECT customer_id FROM a) "
    "SELECT customer_id FROM b",
    "WITH a AS (SELECT customer_id FROM customers) SELECT customer_id FROM orders WHERE "
    "customer_id IN (SELECT customer_id FROM a)",
    "SELECT customer_id FROM customers WHERE customer_id IN (WITH t AS (SELECT customer_id "
    "FROM orders) SELECT customer_id FROM t)",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
    "SELECT c.customer_id FROM customers c JOIN n ON n.i = 1",
    "WITH a AS (SELECT customer_id FROM customers) SELECT customer_id FROM a UNION "
    "SELECT customer_id FROM a",
    "SELECT c.customer_id FROM customers c CROSS JOIN LATERAL (SELECT COUNT(*) AS n FROM orders "
    "o WHERE o.customer_id = c.customer_id) s WHERE s.n > 1",
]


@pytest.mark.parametrize("sql", SCOPE_ACCEPTED, ids=[s[:40] for s in SCOPE_ACCEPTED])
@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_with_queries_are_usable_inside_their_scope(sql, vendor):
    assert check_sql(sql, vendor=vendor).query


def test_a_recursive_with_query_sees_itself_only_under_recursive():
    body = "n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3)"
    check_sql(f"WITH RECURSIVE {body} SELECT i FROM n", vendor="postgresql")
    with pytest.raises(SqlSegmentError) as err:
        check_sql(f"WITH {body} SELECT i FROM n", vendor="postgresql")
    assert "“n” is not allowed" in err.value.message


def test_names_compare_the_way_each_database_compares_them():
    """PostgreSQL keeps quoted names as written; SQLite ignores case even when quoted."""
    sql = (
        'WITH "Django_Session" AS (SELECT customer_id FROM customers) '
        "SELECT customer_id FROM django_session"
    )
    with pytest.raises(SqlSegmentError) as err:
        check_sql(sql, vendor="postgresql")
    assert "django_session" in err.value.message
    assert check_sql(sql, vendor="sqlite").query


@pytest.mark.parametrize("name", ["customers", "ORDERS", "Devices"])
def test_a_with_query_may_not_be_named_like_a_store_table(name):
    sql = f"WITH {name} AS (SELECT customer_id FROM orders) SELECT customer_id FROM {name}"
    with pytest.raises(SqlSegmentError) as err:
        check_sql(sql, vendor="postgresql")
    assert "store table" in err.value.message
    assert (err.value.line, err.value.column) == (1, 6)


# -- more of what a segment may not do ------------------------------------------------------------

MORE_REFUSED = [
    ('SELECT customer_id FROM U&"pg_class"', "Unicode escapes"),
    ("SELECT customer_id FROM customers WHERE email = U&'\\0061'", "Unicode escapes"),
    ('SELECT customer_id FROM "pg_authid"', "System catalog"),
    ('SELECT customer_id FROM "information_schema"."tables"', "System catalog"),
    ('SELECT customer_id FROM "SQLITE_MASTER"', "System catalog"),
    ("SELECT customer_id FROM customers WHERE 'django_session'::regclass IS NOT NULL",
     "system object types"),
    ("SELECT customer_id FROM customers WHERE pg_catalog.lower(email) = 'a'", "System catalog"),
    ("SELECT customer_id FROM customers WHERE public.lower(email) = 'a'", "without a schema"),
    ('SELECT customer_id FROM customers WHERE "pg_sleep"(1) IS NULL', "pg_sleep"),
    ("SELECT customer_id FROM customers WHERE current_setting('is_superuser') = 'on'",
     "current_setting"),
    ("SELECT customer_id FROM customers WHERE set_config('role', 'postgres', true) = ''",
     "set_config"),
    ("SELECT customer_id FROM customers WHERE ts_stat('SELECT 1') IS NULL", "ts_stat"),
    ("SELECT customer_id FROM customers WHERE loread(1, 1) IS NULL", "loread"),
    ("SELECT customer_id FROM customers WHERE table_to_xml('django_session', true, true, '')"
     " IS NULL", "table_to_xml"),
    ("SELECT customer_id FROM customers WHERE current_user = 'postgres'", "current_user"),
    ("SELECT c.customer_id FROM customers c, LATERAL pg_ls_dir('.') f", "pg_ls_dir"),
    ("SELECT customer_id FROM customers WHERE session_user = 'postgres'", "database session"),
    ("SELECT customer_id FROM customers WHERE state = user", "database session"),
    ("SELECT customer_id FROM customers WHERE CAST('x' AS regclass) IS NULL",
     "system object types"),
    ("SELECT c.customer_id FROM customers c, json_each('[1]') j", "Table functions"),
    ("SELECT customer_id FROM customers WHERE customer_id IN (SELECT customer_id FROM "
     "customers FOR SHARE)", "FOR UPDATE / FOR SHARE"),
    ("WITH x AS (INSERT INTO orders (order_id) VALUES ('o') RETURNING customer_id) "
     "SELECT customer_id FROM x", "INSERT is not allowed"),
    ("WITH x AS (UPDATE customers SET state = 'x' RETURNING customer_id) SELECT customer_id "
     "FROM x", "UPDATE is not allowed"),
    ("SELECT customer_id FROM customers WHERE customer_id IN (SELECT customer_id INTO TEMP t "
     "FROM customers)", "INTO is not allowed"),
    ("SELECT customer_id FROM customers /* ; */", "comment"),
    ("SELECT customer_id FROM customers; COPY customers TO STDOUT", "one statement"),
    ("WITH a AS (SELECT 1), a AS (SELECT 2) SELECT customer_id FROM customers", "Two WITH"),
    (f"SELECT customer_id FROM customers {'x' * 64}", "longer than 63"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "message"), MORE_REFUSED, ids=[m[0][:40] for m in MORE_REFUSED])
def test_more_server_reaching_sql_is_refused(sql, message):
    with pytest.raises(SqlSegmentError) as err:
        check_sql(sql, vendor="postgresql")
    assert message.lower() in str(err.value).lower()
    assert err.value.line is not None


def test_generate_series_and_unnest_may_stand_for_a_table():
    check_sql(
        "SELECT c.customer_id FROM customers c CROSS JOIN generate_series(1, 3) g",
        vendor="postgresql",
    )
    check_sql(
        "SELECT c.customer_id FROM customers c, LATERAL unnest(ARRAY[1, 2]) u",
        vendor="postgresql",
    )


# -- refusals in a person's words ------------------------------------------------------------------

PARSE_ERRORS = [
    ("SELECT customer_id FROM customers WHERE state >", "incomplete after “>”", ">"),
    ("SELECT customer_id\nFROM customers\nWHERE", "WHERE needs a condition", "WHERE"),
    ("SELECT customer_id FROM customers WHERE (state = 'CA'", "“(” is not closed", "'CA'"),
    ("SELECT customer_id FRM customers", "Unexpected word", "customers"),
    ("SELECT customer_id FROM customers ORDER BY", "ORDER BY needs", "ORDER"),
    ("SELECT customer_id FROM customers WHERE a BETWEEN 1", "BETWEEN needs", "1"),
    ("SELECT customer_id FROM customers WHERE CASE WHEN a THEN 1", "CASE needs END", "1"),
    ("SELECT CAST(a AS ) FROM customers", "CAST(value AS type)", ")"),
    ("WITH AS (SELECT 1) SELECT 1", "needs a name", "("),
    ("SELECT customer_id FROM customers WHERE state = 'CA", "single quotes is not closed", "'CA"),
    ('SELECT "customer_id FROM customers', "double quotes is not closed", '"customer_id'),
    ("SELECT customer_id FROM customers\n /* note", "comment “/*” is not closed", "/*"),
]


@pytest.mark.parametrize(("sql", "says", "at"), PARSE_ERRORS, ids=[p[0][:40] for p in PARSE_ERRORS])
@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_syntax_errors_read_in_a_persons_words_with_line_and_column(sql, says, at, vendor):
    with pytest.raises(SqlSegmentError) as err:
        check_sql(sql, vendor=vendor)
    message = str(err.value)
    assert says in message
    for internal in ("Required keyword", "<class", "sqlglot", "Token", "Expecting", "missing for"):
        assert internal not in message
    index = sql.rindex(at) if at in (">", "1", ")") else sql.index(at)
    line = sql.count("\n", 0, index) + 1
    assert (err.value.line, err.value.column) == (line, index - (sql.rfind("\n", 0, index) + 1) + 1)


def test_a_syntax_error_quotes_only_the_persons_sql_near_it():
    sql = "SELECT customer_id FROM customers WHERE email = 'secret@example.com' AND AND x"
    with pytest.raises(SqlSegmentError) as err:
        check_sql(sql, vendor="postgresql")
    quoted = re.findall(r"“([^”]*)”", err.value.message)
    assert quoted
    for text in quoted:
        assert text in sql
        assert "secret@example.com" not in text


SQL_WORDS = st.sampled_from(
    ["SELECT", "customer_id", "FROM", "customers", "WHERE", "(", ")", "'x'", '"y"', ",", "=",
     ">", "AND", "OR", "WITH", "AS", "UNION", "JOIN", "ON", "CAST", "1", ";", "/*", "*/",
     "--", "\n", "CASE", "WHEN", "END", "IN", "NOT", "::", "[", "]", "$$", "U&", "%"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SQL_WORDS, max_size=25).map(" ".join) | st.text(max_size=80))
def test_any_text_is_checked_or_refused_in_plain_words(text):
    for vendor in ("postgresql", "sqlite"):
        try:
            check_sql(text, vendor=vendor)
        except SqlSegmentError as exc:
            for internal in ("Required keyword", "<class", "sqlglot", "Token", "missing for"):
                assert internal not in exc.message
            assert exc.line is None or exc.line >= 1
            assert exc.column is None or exc.column >= 1
