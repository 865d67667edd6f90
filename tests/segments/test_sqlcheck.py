"""SQL segments: refused before anything runs, with the problem and its position."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connection

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
