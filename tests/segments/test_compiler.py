"""The compiler, operator by operator, against real SQL (SQLite or PostgreSQL per DATABASE_URL)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from segments.compiler import (
    ATTRIBUTES,
    OPERATORS,
    DefinitionError,
    compile_definition,
    inline_params,
    validate_definition,
)
from segments.models import CustomerList, CustomerListMember, SegmentKind, SegmentStatus
from tests.segments.conftest import attr, one_section

ALL = {"ann", "bob", "cat", "dan", "eve"}

TEXT_CASES = [
    (attr("state", "is", "CA"), {"ann", "eve"}),
    (attr("state", "is_not", "CA"), {"bob", "cat", "dan"}),  # empty state counts as "not CA"
    (attr("city", "contains", "an"), {"ann"}),  # San Diego; case-insensitive below
    (attr("city", "contains", "AUS"), {"dan"}),
    (attr("city", "contains", "%"), {"cat"}),  # % is literal, not a wildcard
    (attr("city", "contains", "_"), {"bob"}),  # _ is literal too
    (attr("city", "not_contains", "E"), {"dan", "cat"}),
    (attr("city", "starts_with", "new"), {"bob"}),
    (attr("city", "ends_with", "NO"), {"eve"}),
    (attr("state", "in", ["CA", "TX"]), {"ann", "eve", "dan"}),
    (attr("state", "in", "CA, NY"), {"ann", "eve", "bob"}),  # comma-separated text is a list
    (attr("state", "not_in", ["CA", "TX"]), {"bob", "cat"}),
    (attr("state", "empty"), {"cat"}),
    (attr("state", "not_empty"), {"ann", "bob", "dan", "eve"}),
]

NUMBER_CASES = [
    (attr("lifetime_revenue", "eq", 150), {"ann"}),
    (attr("lifetime_revenue", "ne", 150), {"bob", "cat", "dan", "eve"}),
    (attr("lifetime_revenue", "lt", 30), {"cat", "dan", "eve"}),  # no orders = 0; returns ignored
    (attr("lifetime_revenue", "lte", 20), {"cat", "dan", "eve"}),
    (attr("lifetime_revenue", "gt", 100), {"ann", "bob"}),
    (attr("lifetime_revenue", "gte", 500), {"bob"}),
    (attr("lifetime_revenue", "between", 10, value2=200), {"ann", "dan"}),
    (attr("order_count", "in", [0, 2]), {"ann", "cat", "eve"}),
    (attr("order_count", "eq", 0), {"cat", "eve"}),
    (attr("order_count", "empty"), set()),
    (attr("order_count", "not_empty"), ALL),
    (attr("revenue_1y", "gt", 0), {"ann", "dan"}),
]

DATE_CASES = [
    (attr("birthdate", "is", "1990-05-01"), {"ann"}),
    (attr("birthdate", "before", "1985-07-07"), {"bob"}),
    (attr("birthdate", "on_or_before", "1985-07-07"), {"bob", "eve"}),
    (attr("birthdate", "after", "1985-07-07"), {"ann", "dan"}),
    (attr("birthdate", "on_or_after", "1985-07-07"), {"ann", "dan", "eve"}),
    (attr("birthdate", "between", "1980-01-01", value2="1995-01-01"), {"ann", "eve"}),
    (attr("birthdate", "more_than_ago", 45, unit="years"), {"bob"}),
    (attr("birthdate", "within_last", 45, unit="years"), {"ann", "dan", "eve"}),
    (attr("birthdate", "empty"), {"cat"}),
    (attr("birthdate", "not_empty"), {"ann", "bob", "dan", "eve"}),
    (attr("created_at", "within_last", 30, unit="days"), {"ann", "eve"}),
    (attr("created_at", "within_last", 2, unit="months"), {"ann", "eve", "cat"}),
    (attr("created_at", "more_than_ago", 1, unit="years"), {"bob", "dan"}),
    (attr("created_at", "after", {"ago": 30, "unit": "days"}), {"ann", "eve"}),
    (attr("created_at", "before", {"ago": 1, "unit": "years"}), {"bob", "dan"}),
    (attr("created_at", "on_or_after", {"ago": 0, "unit": "days"}), set()),
    (attr("last_order_date", "within_last", 30, unit="days"), {"ann", "dan"}),
    (attr("first_order_date", "more_than_ago", 40, unit="days"), {"ann", "bob"}),
    (attr("first_order_date", "empty"), {"cat", "eve"}),
    (attr("last_order_date", "not_empty"), {"ann", "bob", "dan"}),
]

BOOLEAN_CASES = [
    (attr("email_opt_in", "true"), {"ann"}),
    (attr("email_opt_in", "false"), {"bob"}),
    (attr("email_opt_in", "empty"), {"cat", "dan", "eve"}),
    (attr("active_1y", "true"), {"ann", "dan"}),
    (attr("active_1y", "false"), {"bob", "cat", "eve"}),
    (attr("active_1y", "empty"), set()),
]


def purchase(behaviour: str, **extra) -> dict:
    return {"type": "purchase", "behaviour": behaviour, **extra}


PURCHASE_CASES = [
    (purchase("has_purchased"), {"ann", "bob", "dan"}),
    (purchase("has_purchased", filters={"brand": ["Contoso"]}), {"bob", "dan"}),
    (purchase("has_purchased", filters={"channel": ["store"], "store": ["Boston"]}), {"bob"}),
    (purchase("has_purchased", filters={"product_category": ["Bags"]}), {"bob"}),
    (purchase("has_purchased", window={"kind": "last", "amount": 30, "unit": "days"}),
     {"ann", "dan"}),
    (purchase("has_not_purchased"), {"cat", "eve"}),
    (purchase("has_not_purchased", window={"kind": "last", "amount": 1, "unit": "years"}),
     {"bob", "cat", "eve"}),
    (purchase("first_purchase", window={"kind": "last", "amount": 30, "unit": "days"}), {"dan"}),
    (purchase("first_purchase", window={"kind": "last", "amount": 60, "unit": "days"}),
     {"ann", "dan"}),
    (purchase("repeat_purchase"), {"ann"}),  # dan's return is not a second purchase
    (purchase("total_value", operator="gte", value=100), {"ann", "bob"}),
    (purchase("total_value", operator="lt", value=100,
              window={"kind": "last", "amount": 1, "unit": "years"}),
     {"bob", "cat", "dan", "eve"}),
    (purchase("order_count", operator="eq", value=1), {"bob", "dan"}),
    (purchase("order_count", operator="between", value=1, value2=2,
              filters={"brand": ["Northwind"]}),
     {"ann"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("condition", "expected"),
    TEXT_CASES + NUMBER_CASES + DATE_CASES + BOOLEAN_CASES + PURCHASE_CASES,
    ids=lambda v: (
        f"{v.get('attribute') or v.get('behaviour')}-{v.get('operator')}"
        if isinstance(v, dict)
        else ""
    ),
)
def test_each_operator_selects_the_expected_customers(people, run, condition, expected):
    assert run(one_section(condition)) == expected


def test_purchase_window_between_two_dates(people, run):
    today = timezone.now().date()
    window = {
        "kind": "between",
        "start": (today - dt.timedelta(days=60)).isoformat(),
        "end": (today - dt.timedelta(days=10)).isoformat(),
    }
    assert run(one_section(purchase("has_purchased", window=window))) == {"ann", "dan"}


def test_every_operator_of_every_attribute_type_is_covered():
    covered = {
        (ATTRIBUTES[c["attribute"]].type.replace("datetime", "date"), c["operator"])
        for c, _ in TEXT_CASES + NUMBER_CASES + DATE_CASES + BOOLEAN_CASES
    }
    for kind in ("text", "number", "date", "boolean"):
        for op in OPERATORS[kind]:
            assert (kind, op) in covered, (kind, op)


def test_sections_combine_with_and_or_inside_and_between(people, run):
    ca_or_tx = {
        "combinator": "or",
        "conditions": [attr("state", "is", "CA"), attr("state", "is", "TX")],
    }
    gold = {"combinator": "and", "conditions": [attr("loyalty_tier", "is", "Gold")]}
    definition = {"version": 1, "combinator": "and", "sections": [ca_or_tx, gold]}
    assert run(definition) == {"ann", "dan"}
    definition["combinator"] = "or"
    assert run(definition) == {"ann", "dan", "eve"}


def test_exclusions_remove_customers_even_with_null_values(people, run):
    definition = one_section(
        exclusions=[attr("state", "is", "CA"), attr("birthdate", "before", "1980-01-01")]
    )
    # cat has no state and no birthdate: NULL-valued exclusions never remove her.
    assert run(definition) == {"cat", "dan"}


def test_an_empty_definition_selects_everyone_without_duplicates(people):
    compiled = compile_definition(one_section())
    from segments.runner import fetch_all

    rows = [r[0] for r in fetch_all(compiled)]
    assert sorted(rows) == sorted(ALL)


def test_in_another_active_segment_and_not_in(people, run):
    from segments.models import Segment

    gold = Segment.objects.create(
        name="Gold", status=SegmentStatus.ACTIVE,
        definition=one_section(attr("loyalty_tier", "is", "Gold")),
    )  # fmt: skip
    in_gold = {"type": "segment", "operator": "in", "segment_id": gold.pk}
    assert run(one_section(in_gold)) == {"ann", "dan"}
    assert run(one_section({**in_gold, "operator": "not_in"})) == {"bob", "cat", "eve"}


@pytest.mark.django_db(transaction=True)  # SQL segments run on their own login (segments.fence)
def test_in_an_sql_segment(people, run):
    from segments.models import Segment

    sql_seg = Segment.objects.create(
        name="NY by SQL", status=SegmentStatus.ACTIVE, kind=SegmentKind.SQL,
        sql="SELECT customer_id FROM customers WHERE state LIKE 'N%'",
    )  # fmt: skip
    assert run(one_section({"type": "segment", "operator": "in", "segment_id": sql_seg.pk})) == {
        "bob"
    }


def test_a_draft_segment_cannot_be_referenced(people):
    from segments.models import Segment

    draft = Segment.objects.create(name="Draft", definition=one_section())
    errors = validate_definition(
        one_section({"type": "segment", "operator": "in", "segment_id": draft.pk})
    )
    assert errors[0].path == "sections.0.conditions.0"
    assert "not Active" in errors[0].message


def test_cycles_between_segments_are_refused(people):
    from segments.models import Segment

    a = Segment.objects.create(name="A", status=SegmentStatus.ACTIVE, definition=one_section())
    b = Segment.objects.create(
        name="B", status=SegmentStatus.ACTIVE,
        definition=one_section({"type": "segment", "operator": "in", "segment_id": a.pk}),
    )  # fmt: skip
    a_refers_to_b = one_section({"type": "segment", "operator": "in", "segment_id": b.pk})
    with pytest.raises(DefinitionError) as err:
        compile_definition(a_refers_to_b, segment_id=a.pk)
    assert "itself" in str(err.value)


def test_uploaded_id_list_in_and_not_in(people, run):
    ids = CustomerList.objects.create(name="VIP")
    CustomerListMember.objects.bulk_create(
        [CustomerListMember(customer_list=ids, customer_id=c) for c in ("ann", "eve", "zed")]
    )
    cond = {"type": "id_list", "operator": "in", "list_id": ids.pk}
    assert run(one_section(cond)) == {"ann", "eve"}
    assert run(one_section({**cond, "operator": "not_in"})) == {"bob", "cat", "dan"}


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"type": "nope"}, "Unknown condition type"),
        (attr("shoe_size", "is", "9"), "Choose an attribute"),
        (attr("state", "gt", "9"), "Choose an operator"),
        (attr("state", "is", ""), "Enter a value"),
        (attr("state", "in", []), "at least one value"),
        (attr("lifetime_revenue", "gt", "lots"), "not a number"),
        (attr("lifetime_revenue", "between", 10, value2=5), "greater than"),
        (attr("birthdate", "is", "31/12/1990"), "not a date"),
        (attr("birthdate", "within_last", 3, unit="weeks"), "days, months or years"),
        (attr("birthdate", "within_last", -3, unit="days"), "whole number"),
        (attr("birthdate", "between", "2000-01-01", value2="1990-01-01"), "after the end"),
        (purchase("teleported"), "purchase behaviour"),
        (purchase("total_value", operator="~", value=1), "comparison"),
        (purchase("has_purchased", filters={"colour": ["red"]}), "Unknown order filter"),
        (purchase("has_purchased", window={"kind": "last", "amount": 0, "unit": "days"}),
         "at least 1"),
        ({"type": "segment", "operator": "in", "segment_id": 999999}, "no longer exists"),
        ({"type": "id_list", "operator": "in", "list_id": "x"}, "uploaded list"),
    ],
)  # fmt: skip
def test_invalid_conditions_are_reported_at_their_path(db, condition, message):
    definition = one_section(attr("state", "is", "CA"), condition)
    errors = validate_definition(definition)
    assert [e.path for e in errors] == ["sections.0.conditions.1"]
    assert message in errors[0].message
    with pytest.raises(DefinitionError):
        compile_definition(definition)


def test_malformed_definitions_are_refused(db):
    assert validate_definition("nope")[0].message.startswith("A definition")
    assert validate_definition({"sections": []})[0].path == "version"
    assert validate_definition({"version": 1, "combinator": "xor", "sections": []})[0].path == (
        "combinator"
    )
    errors = validate_definition(
        {"version": 1, "sections": [], "exclusions": {"conditions": [{"type": "attribute"}]}}
    )
    assert errors[0].path == "exclusions.conditions.0"


def test_relative_dates_are_sql_expressions_evaluated_when_the_query_runs(db):
    compiled = compile_definition(one_section(attr("created_at", "within_last", 7, unit="days")))
    text = inline_params(compiled)
    if connection.vendor == "postgresql":
        assert "CURRENT_TIMESTAMP - 7 * INTERVAL '1 day'" in text
    else:
        assert "datetime('now', '-7 days')" in text
    assert str(timezone.now().year) not in text  # no frozen date


def test_values_never_reach_the_sql_text(db):
    evil = "x'); DROP TABLE customers; --"
    compiled = compile_definition(one_section(attr("state", "is", evil)))
    assert evil not in compiled.sql
    assert compiled.params == [evil]


@pytest.mark.parametrize(
    ("operator", "value", "keep"),
    [
        ("is", "gold", lambda tier: tier.lower() == "gold"),
        ("is", "GOLD", lambda tier: tier.lower() == "gold"),
        ("is_not", "gOLD", lambda tier: tier.lower() != "gold"),
        ("in", ["silver", "GOLD"], lambda tier: tier.lower() in ("silver", "gold")),
        ("not_in", ["sIlVeR"], lambda tier: tier.lower() != "silver"),
        ("contains", "OL", lambda tier: "ol" in tier.lower()),
        ("starts_with", "g", lambda tier: tier.lower().startswith("g")),
    ],
)
def test_text_comparisons_ignore_case(people, run, operator, value, keep):
    from customers.models import Customer

    expected = {c.customer_id for c in Customer.objects.all() if keep(c.loyalty_tier or "")}
    assert expected  # the fixture has tiers written in mixed case
    assert run(one_section(attr("loyalty_tier", operator, value))) == expected
