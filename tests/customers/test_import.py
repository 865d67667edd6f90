from __future__ import annotations

import pytest

from customers.csv_columns import ImportKind
from customers.loading import MalformedFile, load_csv
from customers.models import Customer, Device, Order
from destinations.tiktok.normalize import normalize_email, normalize_phone
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

CUSTOMERS_HEADER = "customer_id,given_name,email,phone,country,birthdate,email_opt_in,state\n"


def test_good_rows_load_and_each_bad_row_is_reported_with_row_column_value_reason(
    write_csv, run_import
):
    path = write_csv(
        CUSTOMERS_HEADER
        + "C1,Ann,ann@example.com,(415) 555-2671,US,1990-02-03,yes,CA\n"
        + "C2,Bob,bob@example.com,,GB,1985-13-01,no,\n"  # bad date
        + "C3,Cy,cy@example.com,,DE,,maybe,\n"  # bad boolean
        + ",No,x@example.com,,,,,\n"  # missing id
        + "C5,Di,di@example.com,,USA,,,\n"  # bad country
        + "C6,Ed,ed@example.com,,US\n"  # too few fields
        + f"C7,{'x' * 101},e@example.com,,US,,,\n"  # too long
        + "C8,Flo,flo@example.com,,US,1988-01-01,0,TX\n"
    )
    result, errors = run_import(ImportKind.CUSTOMERS, path)
    assert sorted(Customer.objects.values_list("customer_id", flat=True)) == ["C1", "C8"]
    assert result.rows_read == 8 and result.rows_inserted == 2 and result.error_rows == 6
    assert errors == [
        ["3", "birthdate", "1985-13-01", "not a date: use YYYY-MM-DD"],
        ["4", "email_opt_in", "maybe", "not a boolean: use true/false, 1/0 or yes/no"],
        ["5", "customer_id", "", "required value is empty"],
        ["6", "country", "USA", "not a two-letter ISO 3166 country code"],
        ["7", "", "", "expected 8 fields, found 5"],
        ["8", "given_name", "x" * 101, "longer than 100 characters"],
    ]


def test_identity_columns_are_computed_with_the_rows_country_as_phone_region(write_csv, run_import):
    path = write_csv(
        CUSTOMERS_HEADER
        + "C1,Ann, ANN@Example.COM ,(415) 555-2671,US,,,\n"
        + "C2,Bob,not-an-email,020 7946 0958,GB,,,\n"
        + "C3,Cy,,030 12345678,,,,\n"  # no country: DEFAULT_PHONE_REGION (US) -> invalid
    )
    result, errors = run_import(ImportKind.CUSTOMERS, path)
    assert errors == []
    ann, bob, cy = Customer.objects.order_by("customer_id")
    assert (ann.email_normalized, ann.email_sha256) == normalize_email("ann@example.com")
    assert (ann.phone_e164, ann.phone_sha256) == normalize_phone("+14155552671")
    assert bob.email == "not-an-email" and bob.email_sha256 == ""
    assert bob.phone_e164 == "+442079460958"
    assert cy.phone == "030 12345678" and cy.phone_e164 == ""
    assert result.stats["unusable_emails"] == 1 and result.stats["unusable_phones"] == 1


def test_importing_twice_updates_values_without_duplicates(write_csv, run_import):
    first = write_csv(CUSTOMERS_HEADER + "C1,Ann,ann@example.com,,US,,,CA\nC2,Bob,,,US,,,NY\n")
    run_import(ImportKind.CUSTOMERS, first)
    created = Customer.objects.get(customer_id="C1").created_at
    second = write_csv(
        "customer_id,email,state\nC1,new@example.com,TX\nC2,,NY\nC3,c@example.com,WA\n",
        "second.csv",
    )
    result, _ = run_import(ImportKind.CUSTOMERS, second)
    assert Customer.objects.count() == 3
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (1, 1, 1)
    ann = Customer.objects.get(customer_id="C1")
    assert ann.email == "new@example.com" and ann.state == "TX"
    assert ann.email_sha256 == normalize_email("new@example.com").sha256
    assert ann.given_name == "Ann", "a column the file leaves out keeps its value"
    assert ann.created_at == created


def test_a_key_repeated_in_one_file_keeps_the_last_row(write_csv, run_import):
    path = write_csv("customer_id,state\nC1,CA\nC1,NY\n")
    result, _ = run_import(ImportKind.CUSTOMERS, path)
    assert Customer.objects.get().state == "NY" and result.rows_inserted == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00binary", "binary"),
        ("customer_id,email\nC9,caf\xe9@example.com\n".encode("latin-1"), "not UTF-8"),
        (b"email,phone\nx@example.com,1\n", r"Missing required column\(s\): customer_id"),
        (b"customer_id,email,email\nC9,a,b\n", "repeats"),
        (b'{"customers": [1, 2]}', "Missing required column"),
    ],
)
def test_malformed_files_are_rejected_and_change_nothing(write_csv, run_import, content, message):
    CustomerFactory(customer_id="C1", state="CA")
    with pytest.raises(MalformedFile, match=message):
        run_import(ImportKind.CUSTOMERS, write_csv(content))
    assert list(Customer.objects.values_list("customer_id", "state")) == [("C1", "CA")]


def test_bad_encoding_late_in_a_big_file_changes_nothing(write_csv, run_import):
    good = "".join(f"C{n},CA\n" for n in range(20_000)).encode()
    path = write_csv(b"customer_id,state\n" + good + b"C99,\xff\xfe\n")
    with pytest.raises(MalformedFile, match="not UTF-8"):
        run_import(ImportKind.CUSTOMERS, path)
    assert Customer.objects.count() == 0


def test_devices_of_unknown_customers_are_row_errors_and_ids_are_normalized(write_csv, run_import):
    CustomerFactory(customer_id="C1")
    path = write_csv(
        "customer_id,kind,raw_id\n"
        "C1,idfa,6D92078A8246460BA3A0A1A5B0C6B27B\n"
        "C1,AAID,00000000-0000-0000-0000-000000000000\n"
        "C9,IDFA,6d92078a-8246-460b-a3a0-a1a5b0c6b27c\n"
        "C1,PHONE,abc\n"
    )
    result, errors = run_import(ImportKind.DEVICES, path)
    assert errors == [
        ["4", "customer_id", "C9", "no customer with this id"],
        ["5", "kind", "PHONE", "must be one of IDFA, AAID"],
    ]
    idfa = Device.objects.get(kind="IDFA")
    assert idfa.normalized_id == "6d92078a-8246-460b-a3a0-a1a5b0c6b27b"
    assert Device.objects.get(kind="AAID").sha256 == "", "all-zero ids are kept, not sendable"
    run_import(ImportKind.DEVICES, path)
    assert Device.objects.count() == 2


def test_orders_validate_values_and_reject_unknown_customers(write_csv, run_import):
    CustomerFactory(customer_id="C1")
    path = write_csv(
        "order_id,customer_id,ordered_at,channel,amount,quantity,is_return\n"
        "O1,C1,2024-05-01T10:00:00Z,web,59.90,2,false\n"
        "O2,C1,2024-05-02,Store,-10,,yes\n"
        "O3,C9,2024-05-02,web,10,,\n"
        "O4,C1,yesterday,fax,1.234,x,\n"
    )
    result, errors = run_import(ImportKind.ORDERS, path)
    assert [e[:2] for e in errors] == [
        ["4", "customer_id"],
        ["5", "ordered_at"],
        ["5", "channel"],
        ["5", "quantity"],
        ["5", "amount"],
    ]
    assert result.error_rows == 2 and result.rows_inserted == 2
    o2 = Order.objects.get(order_id="O2")
    assert (o2.channel, str(o2.amount), o2.is_return, o2.quantity) == ("store", "-10.00", True, 1)
    assert Order.objects.get(order_id="O1").ordered_at.isoformat() == "2024-05-01T10:00:00+00:00"


def test_parallel_workers_give_the_same_result_as_in_process(write_csv):
    rows = "".join(f"C{n},a{n}@example.com,(415) 555-{n % 10000:04d},US\n" for n in range(12_000))
    path = write_csv("customer_id,email,phone,country\n" + rows + ",bad,,\n")
    report = path.with_suffix(".err")
    parallel = load_csv(ImportKind.CUSTOMERS, path, error_report=report, workers=2)
    snapshot = list(
        Customer.objects.order_by("customer_id").values_list("customer_id", "phone_e164")
    )
    Customer.objects.all().delete()
    serial = load_csv(ImportKind.CUSTOMERS, path, error_report=report, workers=0)
    assert parallel.rows_inserted == serial.rows_inserted == 12_000
    assert parallel.error_rows == serial.error_rows == 1
    assert snapshot == list(
        Customer.objects.order_by("customer_id").values_list("customer_id", "phone_e164")
    )
