from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns import services
from campaigns.models import CampaignEvent, CampaignStatus
from campaigns.services import CampaignStateError, CampaignValidationError
from destinations.models import DestinationStatus
from segments.models import SegmentStatus

pytestmark = pytest.mark.django_db


def test_new_campaign_has_remaining_group_with_default_90_10_split(campaign):
    remaining = campaign.sub_audiences.get()
    assert remaining.is_remaining
    splits = {t.name: (t.is_control, t.split_bp) for t in remaining.treatments.all()}
    assert splits == {"Treatment A": (False, 9000), "Control group": (True, 1000)}
    assert campaign.events.filter(kind="created").exists()


def test_names_are_unique_among_live_campaigns(campaign, user):
    with pytest.raises(CampaignValidationError) as err:
        services.campaign_create(user=user, name="  spring ")
    assert "already called" in err.value.errors["name"][0]
    campaign.status = CampaignStatus.ARCHIVED
    campaign.save()
    assert services.campaign_create(user=user, name="Spring").pk != campaign.pk


def test_only_active_segments_and_at_most_ten(campaign, user, segment):
    draft = segment("CA", status=SegmentStatus.DRAFT)
    with pytest.raises(CampaignValidationError) as err:
        services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[draft.pk])
    assert err.value.errors == {"audience": ["Only Active segments can be used."]}
    many = [segment(f"S{i}").pk for i in range(11)]
    with pytest.raises(CampaignValidationError):
        services.campaign_update_exclusions(campaign=campaign, user=user, segment_ids=many)


def test_schedule_reports_each_problem_at_its_step(campaign, user):
    services.treatment_update(
        treatment=campaign.sub_audiences.get().treatments.get(is_control=True),
        user=user, split="5",
    )  # fmt: skip
    services.campaign_update_timing(
        campaign=campaign, user=user, timing_mode="one_time",
        run_at=timezone.now() - dt.timedelta(hours=1),
    )  # fmt: skip
    with pytest.raises(CampaignValidationError) as err:
        services.campaign_schedule(campaign=campaign, user=user)
    errors = err.value.errors
    assert set(errors) == {"audience", "sub_audiences", "destinations", "timing"}
    assert "95.00%" in errors["sub_audiences"][0]
    assert errors["timing"] == ["The delivery time is in the past."]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_splits_accept_two_decimals_only(campaign, user):
    treatment = campaign.sub_audiences.get().treatments.first()
    services.treatment_update(treatment=treatment, user=user, split="33.33")
    assert treatment.split_bp == 3333
    for bad in ("33.333", "-1", "101", "abc"):
        with pytest.raises(CampaignValidationError):
            services.treatment_update(treatment=treatment, user=user, split=bad)


def test_destination_must_be_connected_at_schedule(ready_campaign, user, destination):
    destination.status = DestinationStatus.NEEDS_REAUTH
    destination.save()
    with pytest.raises(CampaignValidationError) as err:
        services.campaign_schedule(campaign=ready_campaign, user=user)
    assert "needs reauthorization" in err.value.errors["destinations"][0]


def test_attribute_mapping_needs_an_identifier(ready_campaign, user):
    link = ready_campaign.campaign_destinations.get()
    assert [r["destination_attribute"] for r in link.attribute_mapping if r["enabled"]] == [
        "EMAIL", "PHONE",
    ]  # fmt: skip
    rows = [dict(r, enabled=False) for r in link.attribute_mapping]
    with pytest.raises(CampaignValidationError) as err:
        services.campaign_destination_update(campaign_destination=link, user=user, mapping=rows)
    assert "at least one identifier" in err.value.errors["attributes"][0]
    rows = [dict(r, enabled=r["destination_attribute"] == "IDFA") for r in link.attribute_mapping]
    services.campaign_destination_update(campaign_destination=link, user=user, mapping=rows)
    link.refresh_from_db()
    assert [r["destination_attribute"] for r in link.attribute_mapping if r["enabled"]] == ["IDFA"]


def test_control_groups_are_not_sent(ready_campaign, user, destination):
    control = ready_campaign.sub_audiences.get().treatments.get(is_control=True)
    with pytest.raises(CampaignValidationError):
        services.treatment_set_destinations(
            treatment=control, user=user, destination_ids=[destination.pk]
        )


def test_recurring_end_must_come_after_start(ready_campaign, user):
    services.campaign_update_timing(
        campaign=ready_campaign, user=user, end_mode="on_date",
        end_date=ready_campaign.start_date - dt.timedelta(days=1),
    )  # fmt: skip
    with pytest.raises(CampaignValidationError) as err:
        services.campaign_schedule(campaign=ready_campaign, user=user)
    assert "end date" in err.value.errors["timing"][0]


def test_schedule_then_unschedule_then_edit(ready_campaign, user):
    campaign = services.campaign_schedule(campaign=ready_campaign, user=user)
    assert campaign.status == CampaignStatus.SCHEDULED
    assert campaign.next_run_at is not None
    with pytest.raises(CampaignStateError):
        services.campaign_update_name(campaign=campaign, user=user, name="Other")
    services.campaign_unschedule(campaign=campaign, user=user)
    assert campaign.status == CampaignStatus.DRAFT and campaign.next_run_at is None
    services.campaign_update_name(campaign=campaign, user=user, name="Other")
    kinds = list(CampaignEvent.objects.filter(campaign=campaign).values_list("kind", flat=True))
    assert {"scheduled", "unscheduled", "changed", "created"} <= set(kinds)


def test_run_claims_once_and_recurring_goes_back_to_scheduled_until_its_end(ready_campaign, user):
    campaign = services.campaign_schedule(campaign=ready_campaign, user=user)
    first = campaign.next_run_at
    services.campaign_start_run(campaign)
    with pytest.raises(CampaignStateError):
        services.campaign_start_run(campaign)  # a second worker
    with pytest.raises(CampaignStateError):
        services.campaign_unschedule(campaign=campaign, user=user)
    with pytest.raises(CampaignStateError):
        services.campaign_delete(campaign=campaign, user=user)
    services.campaign_finish_run(campaign, ok=True, now=first)
    assert campaign.status == CampaignStatus.SCHEDULED
    assert campaign.next_run_at > first and campaign.deliveries_done == 1
    for _ in range(2):
        services.campaign_start_run(campaign)
        services.campaign_finish_run(campaign, ok=True, now=campaign.next_run_at)
    assert campaign.status == CampaignStatus.DELIVERED
    assert campaign.deliveries_done == 3 and campaign.next_run_at is None
    services.campaign_archive(campaign=campaign, user=user)
    assert campaign.status == CampaignStatus.ARCHIVED


def test_failed_run_goes_to_error_with_reason(ready_campaign, user):
    campaign = services.campaign_schedule(campaign=ready_campaign, user=user)
    services.campaign_start_run(campaign)
    services.campaign_finish_run(campaign, ok=False, reason="TikTok refused the advertiser")
    assert campaign.status == CampaignStatus.ERROR
    assert campaign.error_reason == "TikTok refused the advertiser"
    with pytest.raises(CampaignStateError):
        services.campaign_finish_run(campaign, ok=True)
    services.campaign_unschedule(campaign=campaign, user=user)
    assert campaign.status == CampaignStatus.DRAFT


def test_one_time_asap_is_delivered_after_one_run(campaign, user, ready_campaign):
    services.campaign_update_timing(campaign=campaign, user=user, timing_mode="one_time", asap=True)
    services.campaign_schedule(campaign=campaign, user=user)
    assert campaign.next_run_at <= timezone.now()
    services.campaign_start_run(campaign)
    services.campaign_finish_run(campaign, ok=True)
    assert campaign.status == CampaignStatus.DELIVERED


def test_illegal_moves_raise_state_errors(campaign, user):
    with pytest.raises(CampaignStateError):
        services.campaign_archive(campaign=campaign, user=user)
    with pytest.raises(CampaignStateError):
        services.campaign_unschedule(campaign=campaign, user=user)
    with pytest.raises(CampaignStateError):
        services.campaign_start_run(campaign)
    with pytest.raises(CampaignStateError):
        services.campaign_finish_run(campaign, ok=True)
    services.campaign_delete(campaign=campaign, user=user)


def test_duplicate_copies_everything_as_a_draft(ready_campaign, user):
    services.campaign_schedule(campaign=ready_campaign, user=user)
    copy = services.campaign_duplicate(campaign=ready_campaign, user=user)
    assert copy.status == CampaignStatus.DRAFT and copy.name == "Copy of Spring"
    assert list(copy.include_segments.all()) == list(ready_campaign.include_segments.all())
    treatment = copy.sub_audiences.get().treatments.get(is_control=False)
    link = copy.campaign_destinations.get()
    assert link.treatment_links.get().treatment_id == treatment.pk
    assert copy.weekdays == [0, 3] and copy.next_run_at is None
    assert services.campaign_duplicate(campaign=ready_campaign, user=user).name == (
        "Copy of Spring (2)"
    )
