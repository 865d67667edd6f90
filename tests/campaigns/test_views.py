from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Role
from campaigns import services
from campaigns.models import Campaign, CampaignStatus
from tests.campaigns.conftest import add_customers

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def url(name: str, campaign: Campaign, *args) -> str:
    return reverse(f"campaigns:{name}", args=[campaign.pk, *args])


def test_marketer_creates_and_opens_the_editor(marketer_client):
    response = marketer_client.post(reverse("campaigns:new"), {"name": "Summer"})
    campaign = Campaign.objects.get(name="Summer")
    assert response.url == url("edit", campaign)
    page = marketer_client.get(url("edit", campaign)).content.decode()
    assert "EDIT CAMPAIGN" in page.upper() and 'id="deliveries"' in page
    for n in range(1, 10):
        assert f">{n}. " in page


def test_each_step_saves_on_post_and_reports_its_own_error(marketer_client, segment):
    campaign = services.campaign_create(user=marketer_client.user, name="Summer")
    seg = segment("CA")
    r = marketer_client.post(
        url("audience", campaign), {"include_present": "1", "include": [seg.pk]}, **HX
    )
    assert r.status_code == 200 and list(campaign.include_segments.all()) == [seg]
    r = marketer_client.post(url("name", campaign), {"name": ""}, **HX)
    assert r.status_code == 422 and "Give the campaign a name." in r.content.decode()
    treatment = campaign.sub_audiences.get().treatments.get(is_control=False)
    data = {"name": "Big", "split": "101", "control_present": "1"}
    r = marketer_client.post(url("treatment_update", campaign, treatment.pk), data, **HX)
    assert r.status_code == 422 and "between 0 and 100" in r.content.decode()
    r = marketer_client.post(url("timing", campaign), {
        "timing_mode": "recurring", "cadence": "weekly", "weekdays": ["1", "3"],
        "time_of_day": "09:30", "timezone": "Europe/Paris", "start_date": "2031-01-06",
        "end_mode": "after_n", "end_count": "4",
    }, **HX)  # fmt: skip
    assert r.status_code == 200
    campaign.refresh_from_db()
    assert campaign.weekdays == [1, 3] and campaign.end_count == 4
    assert "weekly on Tue, Thu at 09:30" in r.content.decode()


def test_counts_fill_every_placeholder(marketer_client, segment):
    add_customers("ca", 30, state="CA")
    add_customers("ny", 10, state="NY")
    campaign = services.campaign_create(user=marketer_client.user, name="Summer")
    services.campaign_update_audience(campaign=campaign, user=marketer_client.user,
                                      segment_ids=[segment("CA", "NY").pk])  # fmt: skip
    services.campaign_update_exclusions(campaign=campaign, user=marketer_client.user,
                                        segment_ids=[segment("NY").pk])  # fmt: skip
    body = marketer_client.get(url("counts", campaign), **HX).content.decode()
    assert 'id="count-inclusions" hx-swap-oob="true">40<' in body
    assert 'id="count-exclusions" hx-swap-oob="true">−10<' in body
    assert 'id="count-total" hx-swap-oob="true">30<' in body


def test_viewer_reads_but_every_write_is_forbidden(viewer_client, marketer_client, segment):
    campaign = services.campaign_create(user=marketer_client.user, name="Summer")
    page = viewer_client.get(url("edit", campaign))
    assert page.status_code == 200 and "marketers edit it" in page.content.decode()
    sub = campaign.sub_audiences.get()
    treatment = sub.treatments.first()
    writes = [
        url("name", campaign), url("audience", campaign), url("first_match", campaign),
        url("sub_add", campaign), url("sub_reorder", campaign), url("timing", campaign),
        url("launch", campaign), url("schedule", campaign), url("unschedule", campaign),
        url("delete", campaign), url("archive", campaign), url("duplicate", campaign),
        url("treatment_add", campaign, sub.pk), url("treatment_update", campaign, treatment.pk),
        url("treatment_remove", campaign, treatment.pk), url("attributes", campaign),
    ]  # fmt: skip
    for write in writes:
        assert viewer_client.post(write, {"name": "x"}).status_code == 403, write
    assert viewer_client.post(reverse("campaigns:new"), {"name": "x"}).status_code == 403
    campaign.refresh_from_db()
    assert campaign.name == "Summer" and Campaign.objects.count() == 1


def test_scheduled_campaign_is_read_only_until_unscheduled(marketer_client, ready_campaign):
    services.campaign_schedule(campaign=ready_campaign, user=marketer_client.user)
    r = marketer_client.post(url("name", ready_campaign), {"name": "Other"}, **HX)
    assert r.status_code == 409 and "unschedule it before editing" in r.content.decode()
    page = marketer_client.get(url("edit", ready_campaign)).content.decode()
    assert "Unschedule to edit" in page and '<fieldset class="cmp-steps" disabled' in page
    marketer_client.post(url("unschedule", ready_campaign))
    ready_campaign.refresh_from_db()
    assert ready_campaign.status == CampaignStatus.DRAFT


def test_schedule_shows_problems_at_their_steps(marketer_client):
    campaign = services.campaign_create(user=marketer_client.user, name="Summer")
    r = marketer_client.post(url("schedule", campaign), **HX)
    body = r.content.decode()
    assert r.status_code == 422
    assert "Include at least one Active segment." in body
    assert "Send at least one non-control treatment to a destination." in body
    assert "Not scheduled yet" in body


def test_attribute_modal_saves_the_mapping(marketer_client, ready_campaign):
    link = ready_campaign.campaign_destinations.get()
    page = marketer_client.get(url("attributes", ready_campaign), **HX).content.decode()
    assert "Edit campaign attributes" in page and "IDFA" in page
    data = {"destination": link.pk, "close": "1",
            "attribute": ["EMAIL", "PHONE", "IDFA", "AAID"],
            "table_EMAIL": "customers", "column_EMAIL": "email", "enabled_EMAIL": "on",
            "table_PHONE": "customers", "column_PHONE": "phone",
            "table_IDFA": "devices", "column_IDFA": "raw_id", "enabled_IDFA": "on",
            "table_AAID": "devices", "column_AAID": "raw_id"}  # fmt: skip
    r = marketer_client.post(url("attributes", ready_campaign), data, **HX)
    assert r.status_code == 200 and r["HX-Retarget"] == "#editor"
    link.refresh_from_db()
    assert [a["destination_attribute"] for a in link.attribute_mapping if a["enabled"]] == [
        "EMAIL", "IDFA"]  # fmt: skip
    data.pop("enabled_EMAIL"), data.pop("enabled_IDFA")
    r = marketer_client.post(url("attributes", ready_campaign), data, **HX)
    assert r.status_code == 422 and "at least one identifier" in r.content.decode()


def test_list_filters_by_status_cadence_destination_and_author(make_client, ready_campaign,
                                                               destination):  # fmt: skip
    other = make_client(Role.MARKETER)
    services.campaign_create(user=other.user, name="Other one")
    services.campaign_schedule(campaign=ready_campaign, user=ready_campaign.created_by)
    lst = reverse("campaigns:list")
    assert "Spring" in other.get(lst, {"status": "scheduled"}).content.decode()
    assert "Other one" not in other.get(lst, {"status": "scheduled"}).content.decode()
    assert "Other one" not in other.get(lst, {"cadence": "weekly"}).content.decode()
    assert "Spring" not in other.get(lst, {"cadence": "one_time"}).content.decode()
    assert "Other one" not in other.get(lst, {"destination": destination.pk}).content.decode()
    body = other.get(lst, {"author": other.user.pk}).content.decode()
    assert "Other one" in body and "Spring" not in body


def test_restricted_pii_users_see_no_raw_identifiers(make_client, ready_campaign):
    add_customers("ca", 5, state="CA", email="secret.person@example.com", phone="+12133734253")
    client = make_client(Role.MARKETER, restricted_pii=True)
    for name in ("edit", "counts", "attributes", "history"):
        body = client.get(url(name, ready_campaign)).content.decode()
        assert "secret.person" not in body and "2133734253" not in body


def test_history_lists_every_change(marketer_client, ready_campaign):
    body = marketer_client.get(url("history", ready_campaign), **HX).content.decode()
    assert "Created “Spring”" in body and "Timing: recurring weekly" in body
