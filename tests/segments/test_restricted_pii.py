"""Restricted-PII users: no SQL segments, no value conditions on raw identifiers, and the
results of segments that read raw identifiers are hidden from them everywhere."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from accounts.models import Role
from campaigns.models import SubAudience
from segments import services
from segments.models import Segment
from segments.pii import PiiRestricted
from tests.factories import CampaignFactory, CustomerFactory, SegmentFactory, state_definition

pytestmark = pytest.mark.django_db


def email_definition(operator: str, value: str = "") -> dict:
    definition = state_definition("CA")
    definition["sections"][0]["conditions"] = [
        {"type": "attribute", "attribute": "email", "operator": operator, "value": value}
    ]
    return definition


@pytest.fixture
def restricted(make_client):
    return make_client(Role.MARKETER, restricted_pii=True)


@pytest.fixture
def people(db):
    # Three customers in CA whose emails start with c000000…; the hidden counts must not
    # appear anywhere for restricted users.
    return [CustomerFactory(state="CA") for _ in range(3)]


@pytest.fixture
def raw_segment(db):
    return SegmentFactory(name="Starts with c", definition=email_definition("starts_with", "c"))


@pytest.fixture
def sql_segment(db):
    return SegmentFactory(
        name="SQL one", kind="sql", definition={}, sql="SELECT customer_id FROM customers"
    )


# -- authoring, in the service layer -----------------------------------------------------


def test_the_services_refuse_sql_segments_from_restricted_users(restricted, raw_segment):
    user = restricted.user
    with pytest.raises(PiiRestricted):
        services.segment_create(user=user, name="Mine", kind="sql")
    with pytest.raises(PiiRestricted):
        services.segment_convert_to_sql(segment=SegmentFactory(), user=user)
    with pytest.raises(PiiRestricted):
        services.segment_duplicate(segment=raw_segment, user=user)
    assert Segment.objects.count() == 2


@pytest.mark.parametrize("operator", ["is", "is_not", "contains", "starts_with", "ends_with"])
def test_value_conditions_on_raw_identifiers_are_refused(restricted, operator):
    segment = SegmentFactory(status="draft")
    before = segment.definition
    with pytest.raises(PiiRestricted):
        services.segment_update(
            segment=segment, user=restricted.user, definition=email_definition(operator, "j")
        )
    response = restricted.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": segment.name, "definition": json.dumps(email_definition(operator, "j"))},
    )
    assert response.status_code == 403
    assert "restricted PII access" in response.content.decode()
    segment.refresh_from_db()
    assert segment.definition == before


@pytest.mark.parametrize("operator", ["empty", "not_empty"])
def test_presence_conditions_on_raw_identifiers_are_allowed(restricted, operator):
    segment = SegmentFactory(status="draft")
    response = restricted.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": segment.name, "definition": json.dumps(email_definition(operator))},
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.definition["sections"][0]["conditions"][0]["operator"] == operator


def test_an_unrestricted_marketer_may_use_raw_conditions_and_sql(marketer_client):
    segment = SegmentFactory(status="draft")
    response = marketer_client.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": segment.name, "definition": json.dumps(email_definition("starts_with", "j"))},
    )
    assert response.status_code == 302
    created = marketer_client.post(reverse("segments:new"), {"name": "S", "kind": "sql"})
    assert created.status_code == 302


def test_new_sql_segment_page_refuses_restricted_users(restricted):
    response = restricted.post(reverse("segments:new"), {"name": "Mine", "kind": "sql"})
    assert response.status_code == 403
    assert "cannot write SQL segments" in response.content.decode()
    assert not Segment.objects.filter(name="Mine").exists()
    assert 'value="sql"' not in restricted.get(reverse("segments:new")).content.decode()


def test_referring_to_a_raw_segment_is_refused(restricted, raw_segment):
    definition = state_definition("CA")
    definition["sections"][0]["conditions"] = [
        {"type": "segment", "operator": "in", "segment_id": raw_segment.pk}
    ]
    segment = SegmentFactory(status="draft")
    response = restricted.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": segment.name, "definition": json.dumps(definition)},
    )
    assert response.status_code == 403


def test_sub_audience_criteria_follow_the_same_rule(restricted):
    campaign = CampaignFactory(created_by=restricted.user)
    response = restricted.post(
        reverse("campaigns:sub_add", args=[campaign.pk]),
        {"name": "Js", "kind": "criteria", "criteria": json.dumps(email_definition("is", "j"))},
    )
    assert response.status_code == 422
    assert "restricted PII access" in response.content.decode()
    assert not SubAudience.objects.filter(name="Js").exists()


def test_the_editor_offers_only_presence_operators_on_raw_identifiers(restricted):
    response = restricted.post(
        reverse("segments:editor"),
        {"definition": json.dumps(email_definition("is", "j")), "op": "refresh"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'value="not_empty" selected' in body
    assert 'value="starts_with"' not in body


# -- previews (insights) -----------------------------------------------------------------


def test_insights_refuse_sql_for_viewers_and_restricted_users(make_client, restricted, people):
    sql = "SELECT customer_id FROM customers"
    viewer = make_client(Role.VIEWER)
    assert viewer.post(reverse("segments:insights"), {"sql": sql}).status_code == 403
    response = restricted.post(reverse("segments:insights"), {"sql": sql})
    assert response.status_code == 403 and "unique-count" not in response.content.decode()
    allowed = make_client(Role.MARKETER).post(reverse("segments:insights"), {"sql": sql})
    assert allowed.status_code == 200


def test_insights_refuse_raw_value_conditions_for_restricted_users(restricted, people):
    response = restricted.post(
        reverse("segments:insights"),
        {"definition": json.dumps(email_definition("starts_with", "c"))},
    )
    assert response.status_code == 403
    assert "unique-count" not in response.content.decode()


# -- results of segments that read raw identifiers ---------------------------------------


@pytest.mark.parametrize("which", ["raw_segment", "sql_segment"])
def test_results_are_hidden_from_restricted_users(request, restricted, people, which):
    segment = request.getfixturevalue(which)
    Segment.objects.filter(pk=segment.pk).update(last_count=3)
    detail = restricted.get(reverse("segments:detail", args=[segment.pk]))
    body = detail.content.decode()
    assert detail.status_code == 200
    assert 'data-testid="results-hidden"' in body and "Unique customers" not in body
    breakdowns = restricted.get(reverse("segments:breakdowns", args=[segment.pk]))
    assert breakdowns.status_code == 403
    assert restricted.get(reverse("segments:members_csv", args=[segment.pk])).status_code == 403
    listing = restricted.get(reverse("segments:list")).content.decode()
    assert ">hidden<" in listing
    other = SegmentFactory(name="Plain")
    compare = restricted.get(reverse("segments:compare"), {"ids": [segment.pk, other.pk]})
    text = compare.content.decode()
    assert compare.status_code == 200 and "Left out" in text and segment.name in text


# Committed data: on PostgreSQL an SQL segment runs on its own (fenced) connection, which
# cannot see rows a test transaction has not committed.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("which", ["raw_segment", "sql_segment"])
def test_unrestricted_users_see_the_same_results(request, make_client, people, which):
    segment = request.getfixturevalue(which)
    viewer = make_client(Role.VIEWER)
    body = viewer.get(reverse("segments:detail", args=[segment.pk])).content.decode()
    assert "results-hidden" not in body and "Unique customers" in body
    response = viewer.get(reverse("segments:members_csv", args=[segment.pk]))
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert len(lines) == 1 + 3  # header + the three customers (all match both segments)


def test_plain_segments_stay_visible_but_masked_for_restricted_users(restricted, people):
    segment = SegmentFactory(name="CA")
    body = restricted.get(reverse("segments:detail", args=[segment.pk])).content.decode()
    assert "Unique customers" in body
    response = restricted.get(reverse("segments:members_csv", args=[segment.pk]))
    text = b"".join(response.streaming_content).decode()
    for person in people:
        assert person.email not in text
        assert f"{person.email[0]}***@example.com" in text


def test_an_admin_cannot_lift_their_own_pii_restriction(make_client):
    admin = make_client(Role.ADMIN, restricted_pii=True)
    me = admin.user
    response = admin.post(
        reverse("accounts:user_edit", args=[me.pk]), {"role": Role.ADMIN, "is_active": "on"}
    )
    assert response.status_code == 400
    assert "ask another admin" in response.content.decode()
    me.refresh_from_db()
    assert me.restricted_pii
