"""Pages and actions: roles enforced on the server, in-use segments protected, PII masked."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from accounts.models import Role
from segments import usage
from segments.models import Segment, SegmentKind, SegmentStatus
from segments.services import segment_create
from tests.segments.conftest import attr, one_section


@pytest.fixture
def segment(people, marketer_client):
    return segment_create(
        user=marketer_client.user,
        name="<b>Californians</b>",
        definition=one_section(attr("state", "is", "CA")),
    )


def test_viewers_read_but_cannot_change(segment, viewer_client):
    for name in ("segments:detail", "segments:edit", "segments:history"):
        assert viewer_client.get(reverse(name, args=[segment.pk])).status_code == 200
    assert viewer_client.get(reverse("segments:list")).status_code == 200
    for action in ("rename", "duplicate", "delete", "activate", "convert", "refresh"):
        url = reverse("segments:action", args=[segment.pk, action])
        assert viewer_client.post(url, {"name": "x"}).status_code == 403
    edit = viewer_client.post(reverse("segments:edit", args=[segment.pk]), {"name": "x"})
    assert edit.status_code == 403
    assert viewer_client.post(reverse("segments:new"), {"name": "x"}).status_code == 403
    assert viewer_client.post(reverse("segments:editor"), {}).status_code == 403
    segment.refresh_from_db()
    assert segment.name == "<b>Californians</b>"


def test_viewers_see_the_editor_with_its_controls_disabled(segment, viewer_client, marketer_client):
    url = reverse("segments:edit", args=[segment.pk])
    viewer_page = viewer_client.get(url).content.decode()
    assert 'class="seg-editor"' in viewer_page
    assert "Viewers can read segments but not change them" in viewer_page
    marketer_page = marketer_client.get(url).content.decode()
    assert "Viewers can read segments but not change them" not in marketer_page


def test_anonymous_users_are_sent_to_login(segment, client):
    response = client.get(reverse("segments:detail", args=[segment.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_html_in_names_is_escaped(segment, viewer_client):
    body = viewer_client.get(reverse("segments:list")).content.decode()
    assert "&lt;b&gt;Californians&lt;/b&gt;" in body
    assert "<b>Californians</b>" not in body


def test_list_searches_and_sorts(people, marketer_client):
    for name in ("Alpha", "Beta", "Gamma"):
        segment_create(user=marketer_client.user, name=name)
    body = marketer_client.get(reverse("segments:list"), {"q": "et"}).content.decode()
    assert "Beta" in body and "Alpha" not in body
    body = marketer_client.get(reverse("segments:list"), {"sort": "-name"}).content.decode()
    assert body.index("Gamma") < body.index("Beta") < body.index("Alpha")
    partial = marketer_client.get(reverse("segments:list"), {"q": "Al"}, HTTP_HX_REQUEST="true")
    assert "<html" not in partial.content.decode() and "Alpha" in partial.content.decode()


def test_a_marketer_creates_saves_and_activates(people, marketer_client):
    response = marketer_client.post(reverse("segments:new"), {"name": "Gold", "kind": "visual"})
    segment = Segment.objects.get(name="Gold")
    assert response["Location"] == reverse("segments:edit", args=[segment.pk])
    definition = one_section(attr("loyalty_tier", "is", "Gold"))
    response = marketer_client.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": "Gold tier", "definition": json.dumps(definition)},
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "Gold tier" and segment.definition == definition
    marketer_client.post(reverse("segments:action", args=[segment.pk, "activate"]))
    segment.refresh_from_db()
    assert segment.status == SegmentStatus.ACTIVE
    assert [v.change for v in segment.versions.order_by("number")] == [
        "Created",
        "Changed renamed, conditions",
        "Activated",
    ]


def test_an_invalid_definition_is_not_saved_and_is_marked(segment, marketer_client):
    bad = one_section(attr("state", "is", "CA"), attr("lifetime_revenue", "gt", "lots"))
    response = marketer_client.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": segment.name, "definition": json.dumps(bad)},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "need fixing" in body and "is not a number" in body
    segment.refresh_from_db()
    assert segment.definition == one_section(attr("state", "is", "CA"))
    response = marketer_client.post(
        reverse("segments:edit", args=[segment.pk]), {"name": "x", "definition": "{nope"}
    )
    assert response.status_code == 400 and "not valid JSON" in response.content.decode()


@pytest.mark.django_db(transaction=True)  # SQL segments run on their own login (segments.fence)
def test_sql_segment_errors_show_line_and_column(people, marketer_client):
    sql_segment = segment_create(user=marketer_client.user, name="By SQL", kind=SegmentKind.SQL)
    response = marketer_client.post(
        reverse("segments:edit", args=[sql_segment.pk]),
        {"name": "By SQL", "sql": "SELECT customer_id\nFROM customers WHERE pg_sleep(1) IS NULL"},
    )
    assert response.status_code == 400
    assert "Line 2, column 22" in response.content.decode()
    ok = marketer_client.post(
        reverse("segments:edit", args=[sql_segment.pk]),
        {"name": "By SQL", "sql": "SELECT customer_id FROM customers WHERE state = 'CA'"},
    )
    assert ok.status_code == 302


def test_delete_is_refused_while_a_campaign_uses_the_segment(segment, marketer_client):
    def fake_campaigns(seg):
        if seg.pk == segment.pk:
            return [usage.Usage(label="Campaign: Summer sale", url="/campaigns/1/")]
        return []

    usage.USAGE_PROVIDERS.append(fake_campaigns)
    try:
        response = marketer_client.post(
            reverse("segments:action", args=[segment.pk, "delete"]), follow=True
        )
        assert "cannot be deleted while it is used by: Campaign: Summer sale" in (
            response.content.decode()
        )
        assert Segment.objects.filter(pk=segment.pk).exists()
        listing = marketer_client.get(reverse("segments:list")).content.decode()
        assert "Campaign: Summer sale" in listing
    finally:
        usage.USAGE_PROVIDERS.remove(fake_campaigns)
    marketer_client.post(reverse("segments:action", args=[segment.pk, "delete"]))
    assert not Segment.objects.filter(pk=segment.pk).exists()


def test_a_segment_referenced_by_another_cannot_be_deleted(segment, marketer_client):
    segment.status = SegmentStatus.ACTIVE
    segment.save()
    segment_create(
        user=marketer_client.user,
        name="Not CA",
        definition=one_section({"type": "segment", "operator": "not_in", "segment_id": segment.pk}),
    )
    marketer_client.post(reverse("segments:action", args=[segment.pk, "delete"]))
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_members_csv_is_streamed_and_masked_for_restricted_users(segment, make_client):
    full = make_client(Role.VIEWER)
    response = full.get(reverse("segments:members_csv", args=[segment.pk]))
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[0] == "customer_id,given_name,surname,email,phone"
    assert "ann@example.com" in body and len(body.splitlines()) == 3
    restricted = make_client(Role.MARKETER, restricted_pii=True)
    body = b"".join(
        restricted.get(reverse("segments:members_csv", args=[segment.pk])).streaming_content
    ).decode()
    assert "ann@example.com" not in body and "a***@example.com" in body
    assert "+12133734253" not in body


def test_editor_actions_add_and_remove_conditions(people, marketer_client):
    definition = one_section(attr("state", "is", "CA"))
    response = marketer_client.post(
        reverse("segments:editor"),
        {"definition": json.dumps(definition), "op": "add_condition",
         "path": "sections.0", "kind": "purchase"},
    )  # fmt: skip
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count("data-type=") == 2 and "has purchased" in body
    assert response["HX-Trigger-After-Settle"]
    response = marketer_client.post(
        reverse("segments:editor"),
        {"definition": json.dumps(definition), "op": "remove_condition",
         "path": "sections.9.conditions.0"},
    )  # fmt: skip
    assert response.status_code == 400


def test_live_insights_count_and_mark_invalid_conditions(people, viewer_client, marketer_client):
    definition = one_section(attr("state", "is", "CA"))
    response = viewer_client.post(
        reverse("segments:insights"), {"definition": json.dumps(definition)}
    )
    body = response.content.decode()
    assert 'data-testid="unique-count">2<' in body
    bad = one_section(attr("state", "is", "CA"), attr("birthdate", "is", "yesterday"))
    body = viewer_client.post(
        reverse("segments:insights"), {"definition": json.dumps(bad)}
    ).content.decode()
    assert 'id="err-sections-0-conditions-1"' in body and "is not a date" in body
    refused = viewer_client.post(reverse("segments:insights"), {"sql": "DELETE FROM customers"})
    assert refused.status_code == 403  # viewers run no ad hoc SQL
    body = marketer_client.post(
        reverse("segments:insights"), {"sql": "DELETE FROM customers"}
    ).content.decode()
    assert "read-only SELECT" in body


def test_detail_shows_insights_sql_and_charts(segment, viewer_client):
    body = viewer_client.get(reverse("segments:detail", args=[segment.pk])).content.decode()
    assert "Unique customers" in body and "View SQL" in body and "FROM customers" in body
    charts = viewer_client.get(reverse("segments:breakdowns", args=[segment.pk])).content.decode()
    for title in ("Loyalty tier", "State", "Gender", "Age band", "Purchase channel"):
        assert title in charts
    assert "<svg" in charts


@pytest.mark.django_db(transaction=True)  # SQL segments run on their own login (segments.fence)
def test_convert_to_sql_makes_an_equivalent_editable_sql_segment(segment, marketer_client):
    from segments.selectors import segment_count

    marketer_client.post(reverse("segments:action", args=[segment.pk, "convert"]))
    converted = Segment.objects.get(kind=SegmentKind.SQL)
    assert converted.status == SegmentStatus.DRAFT
    assert "customers" in converted.sql
    assert segment_count(converted) == segment_count(segment) == 2


def test_compare_shows_overlap_of_segments(people, marketer_client):
    ca = segment_create(
        user=marketer_client.user, name="CA", definition=one_section(attr("state", "is", "CA"))
    )
    gold = segment_create(user=marketer_client.user, name="Gold",
                          definition=one_section(attr("loyalty_tier", "is", "Gold")))  # fmt: skip
    response = marketer_client.get(reverse("segments:compare"), {"ids": [ca.pk, gold.pk]})
    overlap = response.context["overlap"]
    assert overlap.sizes == [2, 2] and overlap.pairs[(0, 1)] == 1 and overlap.union == 3


def test_uploaded_list_is_loaded_and_bad_files_change_nothing(people, marketer_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from segments.models import CustomerList

    ok = SimpleUploadedFile("ids.csv", b"customer_id\nann\nbob\nghost\n", "text/csv")
    marketer_client.post(reverse("segments:lists"), {"name": "VIP", "file": ok})
    vip = CustomerList.objects.get(name="VIP")
    assert (vip.size, vip.unknown_ids) == (3, 1)
    bad = SimpleUploadedFile("ids.csv", "ann\n".encode("utf-16"), "text/csv")
    response = marketer_client.post(reverse("segments:lists"), {"name": "Bad", "file": bad})
    assert response.status_code == 400 and "not UTF-8" in response.content.decode()
    assert not CustomerList.objects.filter(name="Bad").exists()
