"""Bad input gets a clear 4xx answer and changes nothing; nothing stored can break a page."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Role
from campaigns.models import Campaign, CampaignEvent, SubAudience
from customers.models import ImportJob
from segments.inputs import MAX_DEPTH
from segments.models import CustomerList, Segment, SegmentVersion
from tests.factories import CampaignFactory, SegmentFactory, state_definition

pytestmark = pytest.mark.django_db


def nested(depth: int) -> dict:
    """A definition whose first condition's value sits `depth` levels deep in total."""
    value: object = "CA"
    for _ in range(depth - 5):  # definition, sections, section, conditions, condition
        value = [value]
    definition = state_definition("CA")
    definition["sections"][0]["conditions"][0]["value"] = value
    return definition


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def segment_state(segment: Segment) -> tuple:
    segment.refresh_from_db()
    return (segment.name, segment.definition, segment.sql, segment.versions.count())


@pytest.fixture
def marketer(make_client):
    return make_client(Role.MARKETER)


@pytest.fixture
def segment(db):
    return SegmentFactory(status="draft")


# -- deeply nested definitions -----------------------------------------------------------


def test_the_depth_helper_counts_levels():
    assert depth_of(nested(MAX_DEPTH + 1)) == MAX_DEPTH + 1
    assert depth_of(nested(MAX_DEPTH)) == MAX_DEPTH


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000])
def test_a_too_deep_definition_is_refused_before_compiling(marketer, segment, depth):
    before = segment_state(segment)
    raw = json.dumps(nested(depth)) if depth < 900 else (
        '{"version": 1, "sections": ' + "[" * depth + "]" * depth + "}"
    )  # fmt: skip
    response = marketer.post(
        reverse("segments:edit", args=[segment.pk]), {"name": "x", "definition": raw}
    )
    assert response.status_code == 400
    assert "nested too deeply" in response.content.decode()
    assert segment_state(segment) == before
    insights = marketer.post(reverse("segments:insights"), {"definition": raw})
    assert insights.status_code == 400 and "nested too deeply" in insights.content.decode()
    editor = marketer.post(reverse("segments:editor"), {"definition": raw, "op": "refresh"})
    assert editor.status_code == 400 and "nested too deeply" in editor.content.decode()


def test_a_definition_at_the_depth_limit_is_checked_normally(marketer, segment):
    # At the limit the shape is accepted and the compiler gives its own, per-condition error.
    response = marketer.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": segment.name, "definition": json.dumps(nested(MAX_DEPTH))},
    )
    assert response.status_code == 400
    assert "nested too deeply" not in response.content.decode()
    assert "need fixing" in response.content.decode()


def test_a_too_deep_sub_audience_criteria_is_refused(marketer):
    campaign = CampaignFactory(created_by=marketer.user)
    response = marketer.post(
        reverse("campaigns:sub_add", args=[campaign.pk]),
        {"name": "Deep", "kind": "criteria", "criteria": json.dumps(nested(MAX_DEPTH + 5))},
    )
    assert response.status_code == 422
    assert "nested too deeply" in response.content.decode()
    assert not SubAudience.objects.filter(campaign=campaign, name="Deep").exists()


# -- NUL bytes, lone surrogates, huge numbers, wrong types --------------------------------


@pytest.mark.parametrize(
    "value",
    ["C\x00A", "\ud800", 1e308 * 10, 10**16, "1e999999", "0.0000001", "1" * 5000],
    ids=["nul", "surrogate", "infinity", "huge-int", "huge-exponent", "tiny", "5000-digits"],
)
def test_unusable_values_in_a_definition_are_refused(marketer, segment, value):
    definition = state_definition("CA")
    condition = definition["sections"][0]["conditions"][0]
    if isinstance(value, str) and value[:1].isdigit():
        condition.update(attribute="lifetime_revenue", operator="gte", value=value)
    else:
        condition["value"] = [value]
    raw = json.dumps(definition)
    if value == "1" * 5000:
        raw = raw.replace('"' + value + '"', value)  # a bare 5,000-digit JSON number
    before = segment_state(segment)
    response = marketer.post(
        reverse("segments:edit", args=[segment.pk]), {"name": segment.name, "definition": raw}
    )
    assert response.status_code == 400
    assert segment_state(segment) == before
    insights = marketer.post(reverse("segments:insights"), {"definition": raw})
    assert insights.status_code in (200, 400)
    assert "unique-count" not in insights.content.decode()


@pytest.mark.parametrize(
    "raw",
    [
        "[]",
        "5",
        '"text"',
        '{"version": 1, "sections": "x"}',
        '{"version": 1, "sections": [{"conditions": 5}]}',
        '{"version": 1, "sections": [{"conditions": [{"type": "attribute", "value": {}}]}]}',
        '{"version": "1", "sections": []}',
        '{"version": 1, "sections": [], "exclusions": 5}',
        '{"version": 1, "sections": [{"conditions": [{"type": "segment", "segment_id": 1e30}]}]}',
        "{not json",
    ],
)
def test_wrong_types_in_a_definition_are_refused(marketer, segment, raw):
    before = segment_state(segment)
    response = marketer.post(
        reverse("segments:edit", args=[segment.pk]), {"name": segment.name, "definition": raw}
    )
    assert response.status_code == 400
    assert segment_state(segment) == before
    assert marketer.post(reverse("segments:insights"), {"definition": raw}).status_code < 500


def test_a_nul_in_a_segment_name_or_sql_is_refused(marketer, segment):
    before = segment_state(segment)
    response = marketer.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": "Gold\x00", "definition": json.dumps(segment.definition)},
    )
    assert response.status_code == 400 and "NUL" in response.content.decode()
    assert segment_state(segment) == before
    created = marketer.post(reverse("segments:new"), {"name": "a\x00b", "kind": "visual"})
    assert created.status_code == 400
    assert not Segment.objects.filter(name__contains="a").exclude(pk=segment.pk).exists()
    sql = SegmentFactory(kind="sql", sql="SELECT customer_id FROM customers", definition={})
    before_sql = segment_state(sql)
    response = marketer.post(
        reverse("segments:edit", args=[sql.pk]),
        {"name": sql.name, "sql": "SELECT customer_id FROM customers WHERE state = 'C\x00A'"},
    )
    assert response.status_code == 400 and "NUL" in response.content.decode()
    assert segment_state(sql) == before_sql
    preview = marketer.post(
        reverse("segments:insights"), {"sql": "SELECT customer_id FROM customers -- \x00"}
    )
    assert preview.status_code == 400 and "NUL" in preview.content.decode()


def test_a_nul_in_campaign_names_is_refused(marketer):
    campaign = CampaignFactory(created_by=marketer.user)
    events = CampaignEvent.objects.filter(campaign=campaign).count()
    response = marketer.post(reverse("campaigns:name", args=[campaign.pk]), {"name": "Sp\x00ring"})
    assert response.status_code == 422
    campaign.refresh_from_db()
    assert "\x00" not in campaign.name
    assert CampaignEvent.objects.filter(campaign=campaign).count() == events
    treatment = campaign.sub_audiences.get().treatments.first()
    response = marketer.post(
        reverse("campaigns:treatment_update", args=[campaign.pk, treatment.pk]),
        {"name": "A\x00"},
    )
    assert response.status_code == 422
    treatment.refresh_from_db()
    assert "\x00" not in treatment.name


def test_a_customer_list_with_a_nul_or_bad_bytes_is_refused(marketer):
    for content in (b"customer_id\nC1\x00\n", b"customer_id\n\xff\xfe\xfa\n"):
        upload = SimpleUploadedFile("ids.csv", content, content_type="text/csv")
        response = marketer.post(reverse("segments:lists"), {"name": "L", "file": upload})
        assert response.status_code == 400
    assert not CustomerList.objects.exists()


# -- dates out of range ------------------------------------------------------------------


def timing(run_date: str, tz: str = "UTC") -> dict:
    return {
        "timing_mode": "one_time",
        "asap": "0",
        "run_date": run_date,
        "run_time": "23:00",
        "timezone": tz,
    }


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Pacific/Kiritimati"])
def test_a_year_9999_delivery_date_is_refused_and_changes_nothing(marketer, tz):
    campaign = CampaignFactory(created_by=marketer.user)
    before = Campaign.objects.values().get(pk=campaign.pk)
    response = marketer.post(
        reverse("campaigns:timing", args=[campaign.pk]), timing("9999-12-31", tz)
    )
    assert response.status_code == 422
    assert "must be between 2000-01-01 and 2099-12-31" in response.content.decode()
    after = Campaign.objects.values().get(pk=campaign.pk)
    assert after == before
    assert marketer.get(reverse("campaigns:edit", args=[campaign.pk])).status_code == 200


def test_far_future_recurring_and_launch_dates_are_refused(marketer):
    campaign = CampaignFactory(created_by=marketer.user)
    recurring = {
        "timing_mode": "recurring", "cadence": "daily", "time_of_day": "09:00",
        "timezone": "UTC", "start_date": "9999-12-30", "end_mode": "never",
    }  # fmt: skip
    response = marketer.post(reverse("campaigns:timing", args=[campaign.pk]), recurring)
    assert response.status_code == 422
    campaign.refresh_from_db()
    assert campaign.start_date is None
    launch = {"launch_date": "9999-12-31", "launch_time": "23:59"}
    response = marketer.post(reverse("campaigns:launch", args=[campaign.pk]), launch)
    assert response.status_code == 422
    campaign.refresh_from_db()
    assert campaign.launch_at is None


def test_a_year_9999_date_already_stored_does_not_break_the_campaign_page(make_client):
    campaign = CampaignFactory()
    late = dt.datetime(9999, 12, 31, 23, 30, tzinfo=dt.UTC)
    Campaign.objects.filter(pk=campaign.pk).update(run_at=late, asap=False, timezone="UTC")
    for role in (Role.VIEWER, Role.MARKETER):
        client = make_client(role)
        response = client.get(reverse("campaigns:edit", args=[campaign.pk]))
        assert response.status_code == 200
        assert "must be between 2000-01-01 and 2099-12-31" in response.content.decode()
        assert client.get(reverse("campaigns:list")).status_code == 200
    # Another time zone would push the stored moment past year 9999.
    Campaign.objects.filter(pk=campaign.pk).update(timezone="Asia/Tokyo", launch_at=late)
    assert (
        make_client(Role.VIEWER).get(reverse("campaigns:edit", args=[campaign.pk])).status_code
        == 200
    )
    scheduled = make_client(Role.MARKETER).post(reverse("campaigns:schedule", args=[campaign.pk]))
    assert scheduled.status_code == 422
    campaign.refresh_from_db()
    assert campaign.status == "draft"


# -- uploads -----------------------------------------------------------------------------


def test_a_1000_character_upload_file_name_is_handled(make_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    operator = make_client(Role.OPERATOR)
    name = "a" * 996 + ".csv"
    upload = SimpleUploadedFile(name, b"customer_id,email\nC1,a@example.com\n")
    response = operator.post(
        reverse("customers:import_upload"), {"kind": "customers", "file": upload}
    )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert len(job.original_name) <= 255 and job.original_name.endswith(".csv")
    assert operator.get(reverse("customers:overview")).status_code == 200


def test_a_non_utf8_upload_is_refused_and_changes_nothing(make_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    operator = make_client(Role.OPERATOR)
    upload = SimpleUploadedFile("x.csv", b"customer_id,email\n\xff\xfe,\xc3\x28\n")
    response = operator.post(
        reverse("customers:import_upload"), {"kind": "customers", "file": upload}, follow=True
    )
    assert response.status_code == 200
    assert "was not imported" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_non_utf8_form_bytes_get_no_500(marketer, segment):
    before = segment_state(segment)
    response = marketer.generic(
        "POST",
        reverse("segments:edit", args=[segment.pk]),
        b"name=%ff%fe&definition=%7b%ff",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert segment_state(segment) == before


def test_versions_are_not_written_for_refused_input(marketer, segment):
    count = SegmentVersion.objects.count()
    marketer.post(
        reverse("segments:edit", args=[segment.pk]),
        {"name": "x", "definition": json.dumps(nested(100))},
    )
    assert SegmentVersion.objects.count() == count
