"""PostgreSQL upserts while it reads (batches in one transaction); the results must be those of
staging the whole file first. On SQLite every import is staged, so these tests pass trivially
there; CI runs them on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction

import customers.loading as loading
from customers.csv_columns import ImportKind
from customers.loading import MalformedFile, RepeatedKey
from customers.models import Customer, Device, Order
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
BEFORE = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of a few rows, so a small file crosses many batch boundaries."""
    monkeypatch.setattr(loading, "CHUNK_ROWS", 2)
    monkeypatch.setattr(loading, "BLOCK_BYTES", 8)  # a line or two per unit of work
    monkeypatch.setattr(loading, "BATCH_ROWS", 3)
    monkeypatch.setattr(loading.timezone, "now", lambda: NOW)


@pytest.fixture
def store():
    CustomerFactory(customer_id="K1", state="CA", email="k1@example.com", given_name="Kay")
    CustomerFactory(customer_id="K2", state="NY", email="k2@example.com", given_name="Lee")
    CustomerFactory(customer_id="K3", state="TX", email="", given_name="Max")
    Customer.objects.update(created_at=BEFORE, updated_at=BEFORE)


def snapshot():
    customers = list(
        Customer.objects.order_by("customer_id").values_list(
            "customer_id", "given_name", "state", "email", "email_sha256", "phone_e164",
            "created_at", "updated_at",
        )
    )  # fmt: skip
    devices = list(Device.objects.order_by("customer_id", "raw_id").values_list())
    orders = list(Order.objects.order_by("order_id").values_list("order_id", "customer_id"))
    return customers, [d[1:] for d in devices], orders


def both_ways(monkeypatch, run_import, kind, path):
    """(result, errors, tables) of the normal import and of the staged one, from one state."""
    point = transaction.savepoint()
    normal = run_import(kind, path)
    normal_tables = snapshot()
    transaction.savepoint_rollback(point)

    def refuse(run):
        raise RepeatedKey

    monkeypatch.setattr(loading, "_load_batched", refuse)  # forces the staged rerun
    staged = run_import(kind, path)
    return (normal, normal_tables), (staged, snapshot())


def counts(result):
    return (
        result.rows_read,
        result.rows_inserted,
        result.rows_updated,
        result.rows_unchanged,
        result.error_rows,
        result.error_count,
    )


CUSTOMERS = (
    "customer_id,given_name,state,email,phone,country,created_at\n"
    "K1,Kay,CA,k1@example.com,+12133734253,US,\n"  # unchanged
    "K2,Lee,WA,k2@example.com,+12133734253,US,\n"  # updated
    "N1,New,OR,n1@example.com,(415) 555-2671,US,2020-01-01T00:00:00Z\n"  # inserted
    "N2,,,bad email,,,\n"  # inserted, unusable email
    "X1,,,,,USA,\n"  # bad country
    "N3,Neo,,,+44 20 7946 0958,GB,\n"
    ",,,,,,\n"  # missing id
    "K3,Max,TX,,+12133734253,US,\n"  # unchanged
    "N4,Nia,ID,,,US,2021-05-05\n"
)


@pytest.fixture(params=["track_counts", "no_track_counts"])
def counting(request):
    """Updates are counted from PostgreSQL's per-transaction statistics, or from RETURNING
    when the server does not keep them."""
    if request.param == "no_track_counts":
        if connection.vendor != "postgresql":
            pytest.skip("PostgreSQL setting")
        with connection.cursor() as cursor:
            cursor.execute("SET track_counts = off")  # undone with the test's transaction


def test_batches_give_the_counts_rows_and_report_of_a_staged_import(
    store, small_batches, counting, monkeypatch, write_csv, run_import
):
    path = write_csv(CUSTOMERS)
    (normal, tables), (staged, staged_tables) = both_ways(
        monkeypatch, run_import, ImportKind.CUSTOMERS, path
    )
    assert counts(normal[0]) == counts(staged[0]) == (9, 4, 1, 2, 2, 2)
    assert normal[1] == staged[1] and [e[0] for e in normal[1]] == ["6", "8"]
    assert tables == staged_tables
    by_id = {c[0]: c for c in tables[0]}
    assert by_id["K1"][-1] == BEFORE, "an unchanged row keeps its updated_at"
    assert by_id["K2"][2] == "WA" and by_id["K2"][-1] == NOW


def test_a_key_repeated_across_batches_keeps_the_last_row_like_a_staged_import(
    store, small_batches, monkeypatch, write_csv, run_import
):
    # K1 changes then changes back (staged: unchanged), N1 comes twice with different dates.
    path = write_csv(
        "customer_id,state,created_at\n"
        "K1,ZZ,\n"
        "N1,OR,2020-01-01T00:00:00Z\n"
        "K2,NY,\n"
        "K3,TX,\n"
        "N2,WA,\n"
        "K1,CA,\n"
        "N1,OR,2022-02-02T00:00:00Z\n"
    )
    (normal, tables), (staged, staged_tables) = both_ways(
        monkeypatch, run_import, ImportKind.CUSTOMERS, path
    )
    assert counts(normal[0]) == counts(staged[0]) == (7, 2, 0, 3, 0, 0)
    assert tables == staged_tables
    by_id = {c[0]: c for c in tables[0]}
    assert by_id["K1"][2] == "CA" and by_id["K1"][-1] == BEFORE
    assert by_id["N1"][-2] == dt.datetime(2022, 2, 2, tzinfo=dt.UTC)


def test_a_key_repeated_inside_one_batch_is_upserted_once(
    store, small_batches, monkeypatch, write_csv, run_import
):
    monkeypatch.setattr(loading, "BATCH_ROWS", 100)
    path = write_csv("customer_id,state\nN1,OR\nK1,ZZ\nN1,WA\nK1,CA\n")
    (normal, tables), (staged, staged_tables) = both_ways(
        monkeypatch, run_import, ImportKind.CUSTOMERS, path
    )
    assert counts(normal[0]) == counts(staged[0]) == (4, 1, 0, 1, 0, 0)
    assert tables == staged_tables


def test_devices_and_orders_of_unknown_customers_are_reported_in_row_order_across_batches(
    store, small_batches, monkeypatch, write_csv, run_import
):
    devices = write_csv(
        "customer_id,kind,raw_id\n"
        "K1,IDFA,6D92078A8246460BA3A0A1A5B0C6B27B\n"
        "Z9,IDFA,6D92078A8246460BA3A0A1A5B0C6B27C\n"
        "K2,AAID,bad\n"
        "K2,FAX,x\n"
        "Z8,AAID,6d92078a-8246-460b-a3a0-a1a5b0c6b27d\n"
        "K3,AAID,6d92078a-8246-460b-a3a0-a1a5b0c6b27e\n"
        "K1,IDFA,6D92078A8246460BA3A0A1A5B0C6B27B\n"
    )
    (normal, tables), (staged, staged_tables) = both_ways(
        monkeypatch, run_import, ImportKind.DEVICES, devices
    )
    assert normal[1] == staged[1]
    assert [e[:2] for e in normal[1]] == [["3", "customer_id"], ["5", "kind"], ["6", "customer_id"]]
    assert counts(normal[0]) == counts(staged[0]) == (7, 3, 0, 0, 3, 3)
    assert tables == staged_tables

    monkeypatch.undo()
    monkeypatch.setattr(loading, "BLOCK_BYTES", 8)
    monkeypatch.setattr(loading, "BATCH_ROWS", 3)
    orders = write_csv(
        "order_id,customer_id,ordered_at,channel,amount\n"
        + "".join(f"O{n},{'K1' if n % 3 else 'Z1'},2024-05-0{n},web,{n}.50\n" for n in range(1, 8)),
        "orders.csv",
    )
    (normal, tables), (staged, staged_tables) = both_ways(
        monkeypatch, run_import, ImportKind.ORDERS, orders
    )
    assert normal[1] == staged[1] and [e[0] for e in normal[1]] == ["4", "7"]
    assert counts(normal[0]) == counts(staged[0])
    assert tables == staged_tables


def test_a_file_found_malformed_after_batches_were_saved_changes_nothing(
    store, small_batches, write_csv, run_import
):
    before = snapshot()
    good = "".join(f"N{n},WA\n" for n in range(50)).encode()
    path = write_csv(b"customer_id,state\nK1,ZZ\n" + good + b"N99,\xff\n")
    with pytest.raises(MalformedFile, match="not UTF-8"):
        run_import(ImportKind.CUSTOMERS, path)
    assert snapshot() == before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="batches are PostgreSQL's")
def test_postgresql_saves_batches_while_reading(store, small_batches, monkeypatch, write_csv):
    flushed = []
    real = loading.BatchLoader.flush

    def counting(self):
        flushed.append(self.pending)
        real(self)

    monkeypatch.setattr(loading.BatchLoader, "flush", counting)
    path = write_csv("customer_id,state\n" + "".join(f"N{n},WA\n" for n in range(10)))
    loading.load_csv(ImportKind.CUSTOMERS, path, error_report=path.with_suffix(".err"))
    assert len([n for n in flushed if n]) >= 3


def test_a_file_sorted_by_key_needs_no_look_over_all_keys_and_still_agrees(
    store, small_batches, monkeypatch, write_csv, run_import
):
    looked = []
    real = loading.BatchLoader.finish

    def spying(self):
        real(self)
        looked.append(self.ascending)

    monkeypatch.setattr(loading.BatchLoader, "finish", spying)
    rows = "".join(f"K{n},WA\n" for n in range(1, 4)) + "".join(f"N{n},OR\n" for n in range(10))
    path = write_csv("customer_id,state\n" + rows)
    (normal, tables), (staged, staged_tables) = both_ways(
        monkeypatch, run_import, ImportKind.CUSTOMERS, path
    )
    assert counts(normal[0]) == counts(staged[0]) == (13, 10, 3, 0, 0, 0)
    assert tables == staged_tables
    if connection.vendor == "postgresql":
        assert looked == [True]
