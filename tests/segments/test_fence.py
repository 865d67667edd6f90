"""The database fence around SQL segments (segments.fence), on SQLite and PostgreSQL.

The check in ``sqlcheck`` is bypassed on purpose here (``_run_pg`` / ``_run_sqlite`` take
the query as it would run): the fence must hold by itself. Data is committed
(``transaction=True``) because on PostgreSQL the fence is a login of its own.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django.db import connection, transaction

from accounts.models import User
from segments import fence
from segments.fence import SegmentQueryError
from segments.models import SqlResult
from segments.runner import fetch_all
from tests.factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db(transaction=True)

ON_PG = connection.vendor == "postgresql"


@pytest.fixture
def store():
    people = [
        CustomerFactory(customer_id=f"P{i}", state=state, loyalty_tier=tier)
        for i, (state, tier) in enumerate(
            [("CA", "Gold"), ("NY", "Gold"), ("CA", "Silver"), ("TX", "Bronze"), ("CA", "Gold")]
        )
    ]
    OrderFactory(customer=people[1])
    User.objects.create_user(username="secret-admin", password="hunter2-but-longer")
    return people


def members(result_id: int) -> set[str]:
    return {row[0] for row in fetch_all(fence_query(result_id))}


def fence_query(result_id: int):
    from segments.compiler import CompiledSQL

    return CompiledSQL(fence.members_query(result_id), [])


def run_raw(query: str) -> int:
    """Run ``query`` behind the fence without the friendly check, as an attacker who got
    past the parser would."""
    with transaction.atomic():
        result = SqlResult.objects.create(sql_hash="raw", created_at=fence.timezone.now())
        try:
            if ON_PG:
                fence._run_pg(query, result.pk, 5_000)
            else:
                fence._run_sqlite(query, result.pk, 5_000)
        except Exception as exc:
            from segments.sql_errors import explain_database_error

            message, line, column = explain_database_error(
                exc, sql=query, vendor=connection.vendor, timeout_ms=5_000
            )
            raise SegmentQueryError(message, line, column) from None
    return result.pk


def test_evaluate_selects_exactly_the_matching_customers(store):
    expected = {c.customer_id for c in store if c.state == "CA" and c.loyalty_tier == "Gold"}
    result_id = fence.evaluate(
        "SELECT customer_id FROM customers WHERE state = 'CA' AND loyalty_tier = 'Gold'"
    )
    assert members(result_id) == expected == {"P0", "P4"}
    assert SqlResult.objects.get(pk=result_id).size == 2


def test_evaluate_joins_the_store_tables_and_drops_duplicates_and_nulls(store):
    result_id = fence.evaluate(
        "SELECT c.customer_id FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
        "UNION ALL SELECT customer_id FROM customers WHERE state = 'NY' "
        "UNION ALL SELECT NULL"
    )
    assert members(result_id) == {"P1"}


def test_an_unchanged_query_is_reused_for_a_while_but_a_delivery_runs_it_again(store):
    sql = "SELECT customer_id FROM customers WHERE state = 'TX'"
    first = fence.evaluate(sql)
    assert fence.evaluate(sql) == first
    with fence.fresh_results():
        again = fence.evaluate(sql)
    assert again != first and members(again) == {"P3"}


@pytest.mark.parametrize(
    "query",
    [
        "SELECT username FROM accounts_user",
        "SELECT session_key FROM django_session",
        "SELECT c.customer_id FROM customers c WHERE EXISTS (SELECT 1 FROM accounts_user)",
        "WITH django_session AS (SELECT * FROM django_session) "
        "SELECT customer_id FROM customers WHERE (SELECT COUNT(*) FROM django_session) >= 0",
        "SELECT customer_id FROM segments_sql_result_member",
        "SELECT CAST(id AS TEXT) FROM segments_segment",
    ],
)
def test_the_fence_refuses_every_table_outside_the_store(store, query):
    with pytest.raises(SegmentQueryError) as refused:
        run_raw(query)
    message = str(refused.value)
    assert "secret-admin" not in message and "hunter2" not in message
    assert not SqlResult.objects.filter(sql_hash="raw").exists()


@pytest.mark.skipif(ON_PG, reason="SQLite's authorizer: functions outside the plain list")
@pytest.mark.parametrize(
    "query",
    [
        "SELECT load_extension('x') FROM customers",
        "SELECT customer_id FROM customers WHERE length(randomblob(10)) > 0",
        "SELECT customer_id FROM customers WHERE sqlite_version() <> ''",
        "SELECT customer_id FROM customers, pragma_table_info('accounts_user')",
        "SELECT customer_id FROM customers WHERE customer_id REGEXP '.*'",
    ],
)
def test_sqlite_authorizer_refuses_functions_and_pragmas(store, query):
    with pytest.raises(SegmentQueryError):
        run_raw(query)


@pytest.mark.skipif(not ON_PG, reason="PostgreSQL login")
def test_the_segment_login_reads_only_the_store_and_cannot_write_or_escalate(store):
    import psycopg

    with fence._pg_fence() as cursor:
        cursor.execute("SELECT current_user, session_user")
        assert cursor.fetchone() == (settings.SEGMENT_DB_USER, settings.SEGMENT_DB_USER)
        cursor.execute("SELECT COUNT(*) FROM customers")
        assert cursor.fetchone() == (5,)
    for statement in (
        "SELECT * FROM django_session",
        "SELECT * FROM accounts_user",
        "SELECT * FROM destinations_destination",
        "UPDATE customers SET state = 'XX'",
        "SET ROLE postgres",
        "SELECT set_config('role', 'postgres', false); SELECT * FROM accounts_user",
        "CREATE TABLE evil (x int)",
        "SELECT pg_read_file('/etc/passwd')",
    ):
        with fence._pg_fence() as cursor, pytest.raises(psycopg.Error):
            cursor.execute(statement)
    assert set(CustomerFactory._meta.model.objects.values_list("state", flat=True)) <= {
        "CA",
        "NY",
        "TX",
    }


def test_a_live_query_is_stopped_at_the_short_timeout(store, settings):
    settings.SEGMENT_LIVE_TIMEOUT_MS = 300
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
        "SELECT c.customer_id FROM customers c WHERE (SELECT COUNT(*) FROM n) < 0"
    )
    started = time.monotonic()
    with fence.live_queries(1), pytest.raises(SegmentQueryError) as stopped:
        fence.evaluate(slow)
    assert time.monotonic() - started < 5
    assert "took longer" in str(stopped.value) or "stopped" in str(stopped.value)


def test_a_new_live_query_of_the_same_person_cancels_the_old_one(store, settings):
    settings.SEGMENT_LIVE_TIMEOUT_MS = 20_000
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000000) "
        "SELECT c.customer_id FROM customers c WHERE (SELECT COUNT(*) FROM n) < 0"
    )
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            with fence.live_queries(7):
                fence.evaluate(slow)
            outcome["first"] = "finished"
        except SegmentQueryError as exc:
            outcome["first"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    started = time.monotonic()
    thread.start()
    time.sleep(1.0)
    with fence.live_queries(7):
        quick = fence.evaluate("SELECT customer_id FROM customers WHERE state = 'NY'")
    thread.join(15)
    assert not thread.is_alive()
    assert isinstance(outcome["first"], SegmentQueryError)
    assert time.monotonic() - started < 10
    assert members(quick) == {"P1"}


def test_old_results_are_deleted_with_their_members(store):
    result_id = fence.evaluate("SELECT customer_id FROM customers")
    SqlResult.objects.filter(pk=result_id).update(
        created_at=fence.timezone.now() - fence.timedelta(days=2)
    )
    assert fence.delete_old_results() == 1
    assert members(result_id) == set()
    assert not SqlResult.objects.filter(pk=result_id).exists()


def test_a_missing_column_is_named_with_its_line_and_column_and_no_data(store):
    sql = "SELECT customer_id\nFROM customers\nWHERE no_such_column > 1"
    with pytest.raises(SegmentQueryError) as refused:
        fence.evaluate(sql)
    error = refused.value
    assert "no_such_column" in error.message
    assert (error.line, error.column) == (3, 7)
    assert "example.com" not in str(error)


@pytest.mark.skipif(not ON_PG, reason="SQLite casts any text to a number without an error")
def test_a_type_mismatch_never_shows_the_value_that_failed(store):
    with pytest.raises(SegmentQueryError) as refused:
        fence.evaluate("SELECT customer_id FROM customers WHERE CAST(email AS INTEGER) = 1")
    assert "@" not in str(refused.value) and "example.com" not in str(refused.value)
    assert "number" in str(refused.value) or "type" in str(refused.value)


def test_saving_sql_that_does_not_run_is_refused_with_its_position(store, make_client):
    from django.urls import reverse

    from segments.models import Segment, SegmentKind

    client = make_client()
    segment = Segment.objects.create(
        name="By SQL", kind=SegmentKind.SQL, sql="SELECT customer_id FROM customers"
    )
    answer = client.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": "By SQL", "sql": "SELECT customer_id\nFROM customers WHERE tierr = 'Gold'"},
    )
    body = answer.content.decode()
    assert answer.status_code == 400
    assert "tierr" in body and "Line 2, column 22" in body
    segment.refresh_from_db()
    assert segment.sql == "SELECT customer_id FROM customers"
