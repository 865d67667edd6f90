"""Segment membership as a boolean predicate over `customers c` (one scan for many segments):
it must select exactly what the members query selects, and never be NULL."""

from __future__ import annotations

import pytest

from segments.compiler import (
    CompiledSQL,
    DefinitionError,
    compile_definition,
    definition_predicate,
    segment_predicate,
)
from segments.models import CustomerList, CustomerListMember, Segment, SegmentKind, SegmentStatus
from segments.runner import fetch_all
from segments.selectors import segment_members_sql
from segments.sqlcheck import SqlSegmentError
from tests.segments.conftest import attr, members, one_section
from tests.segments.test_compiler import (
    BOOLEAN_CASES,
    DATE_CASES,
    NUMBER_CASES,
    PURCHASE_CASES,
    TEXT_CASES,
)


def where(predicate: CompiledSQL) -> set[str]:
    """Customers for whom the predicate is TRUE; also checks it is never NULL."""
    nulls = fetch_all(
        CompiledSQL(
            f"SELECT COUNT(*) FROM customers c WHERE ({predicate.sql}) IS NULL", predicate.params
        )
    )
    assert nulls[0][0] == 0
    return members(
        CompiledSQL(
            f"SELECT c.customer_id FROM customers c WHERE {predicate.sql}", predicate.params
        )
    )


@pytest.mark.parametrize(
    "condition",
    [c for c, _ in TEXT_CASES + NUMBER_CASES + DATE_CASES + BOOLEAN_CASES + PURCHASE_CASES],
    ids=lambda v: f"{v.get('attribute') or v.get('behaviour')}-{v.get('operator')}",
)
def test_predicate_selects_what_the_members_query_selects(people, run, condition):
    definition = one_section(condition)
    assert where(definition_predicate(definition)) == run(definition)
    # …also as an exclusion, where NULL comparisons must not drop anyone
    excluding = one_section(exclusions=[condition])
    assert where(definition_predicate(excluding)) == run(excluding)


def test_predicate_of_sections_exclusions_and_nulls(people, run):
    definition = {
        "version": 1,
        "combinator": "or",
        "sections": [
            {"combinator": "and", "conditions": [attr("state", "is", "CA")]},
            {"combinator": "or", "conditions": [attr("loyalty_tier", "is", "Gold")]},
        ],
        "exclusions": {
            "combinator": "or",
            "conditions": [attr("birthdate", "before", "1980-01-01")],
        },
    }
    assert where(definition_predicate(definition)) == run(definition)


def test_a_definition_without_conditions_is_true_for_everyone(people):
    assert where(definition_predicate(one_section())) == {"ann", "bob", "cat", "dan", "eve"}


def test_segment_and_list_references_inline_as_subqueries(people, run):
    gold = Segment.objects.create(
        name="Gold", status=SegmentStatus.ACTIVE,
        definition=one_section(attr("loyalty_tier", "is", "Gold")),
    )  # fmt: skip
    vip = CustomerList.objects.create(name="VIP")
    CustomerListMember.objects.bulk_create(
        [CustomerListMember(customer_list=vip, customer_id=c) for c in ("ann", "eve", "zed")]
    )
    for operator in ("in", "not_in"):
        definition = one_section(
            {"type": "segment", "operator": operator, "segment_id": gold.pk},
            {"type": "id_list", "operator": operator, "list_id": vip.pk},
            combinator="or",
        )
        assert where(definition_predicate(definition)) == run(definition)


@pytest.mark.django_db(transaction=True)  # SQL segments run on their own login (segments.fence)
def test_segment_predicate_of_visual_and_sql_segments(people):
    visual = Segment.objects.create(
        name="CA", status=SegmentStatus.ACTIVE, definition=one_section(attr("state", "is", "CA"))
    )
    sql = Segment.objects.create(
        name="N states", status=SegmentStatus.ACTIVE, kind=SegmentKind.SQL,
        sql="SELECT customer_id AS who FROM customers WHERE state LIKE 'N%' "
            "UNION ALL SELECT NULL UNION ALL SELECT 'nobody'",
    )  # fmt: skip
    everyone = {"ann", "bob", "cat", "dan", "eve"}
    assert (
        where(segment_predicate(visual)) == members(segment_members_sql(visual)) == {"ann", "eve"}
    )
    # An SQL segment may return ids that are no customer (NULLs are dropped when it is
    # evaluated): the predicate, evaluated on customers, selects only the customers among them.
    assert members(segment_members_sql(sql)) == {"bob", "nobody"}
    assert where(segment_predicate(sql)) == members(segment_members_sql(sql)) & everyone == {"bob"}


def test_segment_predicate_refuses_what_the_members_query_refuses(db):
    cycle = Segment.objects.create(name="Self", status=SegmentStatus.ACTIVE)
    cycle.definition = one_section({"type": "segment", "operator": "in", "segment_id": cycle.pk})
    bad_sql = Segment(name="Bad", kind=SegmentKind.SQL, sql="DELETE FROM customers")
    for segment, error in ((cycle, DefinitionError), (bad_sql, SqlSegmentError)):
        with pytest.raises(error) as expected:
            segment_members_sql(segment)
        with pytest.raises(error) as got:
            segment_predicate(segment)
        assert str(got.value) == str(expected.value)


def test_adding_predicates_leaves_the_members_query_unchanged(db):
    definition = one_section(
        attr("state", "in", ["CA", "NY"]), exclusions=[attr("gender", "is", "F")]
    )
    before = compile_definition(definition)
    predicate = definition_predicate(definition)
    assert compile_definition(definition) == before
    assert predicate.sql.startswith("COALESCE((")
    assert before.sql.split(" WHERE ", 1)[1] in predicate.sql
    assert predicate.params == before.params
