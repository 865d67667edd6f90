"""Delivery services and tasks called directly (no worker, no eager mode) against the sandbox."""

from __future__ import annotations

import datetime as dt
import math
from unittest import mock

import pytest
from django.utils import timezone

from campaigns.models import CampaignStatus, RefreshMode
from customers.models import Customer
from deliveries import services
from deliveries.models import (
    Delivery,
    DeliveryRecipient,
    DeliveryStatus,
    DeliveryTarget,
    TargetStatus,
)
from deliveries.services import (
    delivery_poll_audiences,
    delivery_requeue_stalled,
    delivery_resume_reauthorized,
    delivery_run,
    delivery_schedule_due,
)
from deliveries.tasks import poll_audiences, run_delivery, schedule_deliveries
from destinations.models import DestinationStatus
from destinations.tiktok.adapter import AudienceAdapter
from notifications.models import Notification
from tests.deliveries.conftest import (
    ADVERTISER,
    expected_members,
    make_customers,
    mapping_requests,
    people_sent,
)

pytestmark = pytest.mark.django_db


def schedule_and_run(campaign) -> Delivery:
    [delivery_id] = delivery_schedule_due()
    assert run_delivery(delivery_id) in {"delivered", "failed", "waiting for reauthorization"}
    return Delivery.objects.get(pk=delivery_id)


def members_of(sandbox, target: DeliveryTarget) -> dict[str, set[str]]:
    return {k: v for k, v in sandbox.audience_members(ADVERTISER, target.audience_id).items() if v}


def test_the_scheduler_creates_one_delivery_per_due_slot_and_enqueues_it_after_commit(
    destination, make_campaign, django_capture_on_commit_callbacks
):
    campaign = make_campaign(destination)
    with (
        mock.patch.object(services, "_enqueue") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        first = delivery_schedule_due()
        second = delivery_schedule_due()
    assert len(first) == 1 and second == []
    enqueue.assert_called_once_with(first[0])
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING
    assert Delivery.objects.get().scheduled_for == campaign.next_run_at


def test_a_campaign_not_yet_due_is_left_alone(destination, make_campaign):
    campaign = make_campaign(destination)
    campaign.next_run_at = timezone.now() + dt.timedelta(minutes=5)
    campaign.save()
    assert delivery_schedule_due() == []
    assert not Delivery.objects.exists()


def test_a_delivery_sends_exactly_the_snapshot_members_to_one_new_audience(
    sandbox, destination, make_campaign
):
    make_customers(450, bad_email_every=7, no_phone_every=5, nothing_every=50)
    campaign = make_campaign(destination, name="Spring Sale")
    delivery = schedule_and_run(campaign)

    assert delivery.status == DeliveryStatus.SUCCEEDED
    [target] = delivery.targets.all()
    assert target.status == TargetStatus.SENT
    assert target.audience_name == "Spring Sale"  # one group, one sent treatment
    assert members_of(sandbox, target) == expected_members(target)
    names = [a["name"] for a in sandbox.audiences(ADVERTISER)]
    assert names.count("Spring Sale") == 1
    # Summary: about 90 % of customers in the sent treatment; the "nothing" ones shrink.
    snapshot = Customer.objects.filter(
        customer_id__in=DeliveryRecipient.objects.filter(
            delivery=delivery, treatment_id=target.treatment.treatment_id
        ).values("customer_id")
    )
    assert 350 < target.customers == snapshot.count() < 450
    assert target.shrink == snapshot.filter(email_sha256="", phone_sha256="").count() > 0
    assert target.people_sent == target.customers - target.shrink
    assert target.invalid == {
        "EMAIL": snapshot.exclude(email="").filter(email_sha256="").count(),
        "PHONE": 0,
    }
    assert target.invalid["EMAIL"] > 0
    # Batches carry the people with something to add: the shrink has nothing.
    assert (
        target.batches_done
        == target.batches_total
        == math.ceil((target.customers - target.shrink) / 100)
    )
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DELIVERED
    assert Notification.objects.filter(title__contains="finished").exists()


def test_the_summary_counts_shrink_expansion_and_invalid_values_per_identifier(
    sandbox, destination, make_campaign
):
    make_customers(200, devices=2, nothing_every=10, bad_email_every=4)
    campaign = make_campaign(destination, idfa=True, control_bp=0)
    delivery = schedule_and_run(campaign)
    [target] = delivery.targets.all()
    assert target.customers == 200
    # Customers with nothing usable still have two devices: no one shrinks.
    assert target.shrink == 0
    assert target.rows == 400 and target.expansion == 200
    # Every 4th email is invalid, except every 20th customer, who has no email at all.
    assert target.invalid == {"EMAIL": 40, "PHONE": 0, "IDFA": 0}
    assert target.id_schema == ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256"]
    assert members_of(sandbox, target) == expected_members(target)
    assert len(members_of(sandbox, target)["IDFA_SHA256"]) == 400


def test_sub_audiences_get_their_own_audiences_named_by_group(sandbox, destination, make_campaign):
    make_customers(150, tier="Gold")
    make_customers(150, start=150, tier="Silver")
    campaign = make_campaign(destination, name="Tiered", groups=("Gold",))
    delivery = schedule_and_run(campaign)
    names = sorted(t.audience_name for t in delivery.targets.all())
    assert names == ["Tiered_Gold", "Tiered_Remaining audience members"]
    for target in delivery.targets.all():
        assert members_of(sandbox, target) == expected_members(target)


def test_a_missed_recurring_slot_runs_once_and_the_next_slot_is_in_the_future(
    sandbox, destination, make_campaign
):
    make_customers(120)
    campaign = make_campaign(destination, recurring=True)
    campaign.next_run_at = timezone.now() - dt.timedelta(days=3, minutes=5)
    campaign.start_date = (timezone.now() - dt.timedelta(days=10)).date()
    campaign.save()
    schedule_and_run(campaign)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED
    assert campaign.next_run_at > timezone.now()
    assert delivery_schedule_due() == []
    assert Delivery.objects.count() == 1


def test_an_interrupted_delivery_resumes_after_its_checkpoint_without_a_second_audience(
    sandbox, destination, make_campaign, settings
):
    make_customers(800)
    make_campaign(destination, control_bp=0)
    [delivery_id] = delivery_schedule_due()
    real_send = AudienceAdapter.send_members
    calls = {"n": 0}

    def crash_on_fourth(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise SystemExit("worker killed")  # not an Exception: nothing is cleaned up
        return real_send(self, *args, **kwargs)

    with (
        mock.patch.object(AudienceAdapter, "send_members", crash_on_fourth),
        pytest.raises(SystemExit),
    ):
        delivery_run(delivery_id=delivery_id)
    target = DeliveryTarget.objects.get()
    assert target.batches_done == 3 and target.status == TargetStatus.SENDING

    # Another worker may not take it over while the heartbeat is fresh...
    assert delivery_run(delivery_id=delivery_id).startswith("not claimed")
    # ...but once it is stale the scheduler re-enqueues it and a worker continues.
    Delivery.objects.filter(pk=delivery_id).update(
        heartbeat_at=timezone.now() - dt.timedelta(seconds=settings.DELIVERY_STALE_SECONDS + 1),
        enqueued_at=timezone.now() - dt.timedelta(hours=1),
    )
    assert delivery_requeue_stalled() == [delivery_id]
    sandbox.reset()  # clears the request log
    assert delivery_run(delivery_id=delivery_id) == "delivered"

    target.refresh_from_db()
    assert target.batches_done == 8
    assert len(mapping_requests(sandbox, "add")) == 5  # batches 4..8 only, none resent
    assert [a["name"] for a in sandbox.audiences(ADVERTISER)].count("Spring") == 1
    assert members_of(sandbox, target) == expected_members(target)


def test_a_lost_create_answer_is_recovered_by_looking_the_audience_up_by_name(
    sandbox, destination, make_campaign
):
    make_customers(150)
    make_campaign(destination, name="Lost Answer", control_bp=0)
    [delivery_id] = delivery_schedule_due()
    real_create = AudienceAdapter.create_audience

    def created_then_crashed(self, name, **kwargs):
        real_create(self, name, **kwargs)  # TikTok created it...
        raise SystemExit("...but the worker died before saving the id")

    with (
        mock.patch.object(AudienceAdapter, "create_audience", created_then_crashed),
        pytest.raises(SystemExit),
    ):
        delivery_run(delivery_id=delivery_id)
    target = DeliveryTarget.objects.get()
    assert target.create_requested_at is not None and target.audience_id == ""

    Delivery.objects.filter(pk=delivery_id).update(heartbeat_at=None)
    assert delivery_run(delivery_id=delivery_id) == "delivered"
    target.refresh_from_db()
    assert [a["name"] for a in sandbox.audiences(ADVERTISER)].count("Lost Answer") == 1
    assert members_of(sandbox, target) == expected_members(target)


def test_transient_faults_and_a_low_rate_limit_still_deliver_exact_members(
    sandbox, destination, make_campaign
):
    make_customers(1200)
    campaign = make_campaign(destination, control_bp=0)
    sandbox.control(error_rate=0.12, html_502_rate=0.1, drop_rate=0.08, qps=4)
    delivery = schedule_and_run(campaign)
    sandbox.reset()
    assert delivery.status == DeliveryStatus.SUCCEEDED, delivery.error
    [target] = delivery.targets.all()
    assert target.retries > 0 and target.rate_limited > 0
    assert members_of(sandbox, target) == expected_members(target)


def test_a_batch_tiktok_finds_too_large_is_split_and_sent(sandbox, destination, make_campaign):
    make_customers(300)
    campaign = make_campaign(destination, control_bp=0)
    sandbox.control(batch_limit=40)
    delivery = schedule_and_run(campaign)
    [target] = delivery.targets.all()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert target.batches_done == 3
    assert members_of(sandbox, target) == expected_members(target)


def test_a_permanent_error_fails_the_destination_with_a_reason_and_what_to_do(
    sandbox, destination, make_campaign
):
    make_customers(120)
    campaign = make_campaign(destination)
    sandbox.control(read_only_advertisers=[ADVERTISER])
    delivery = schedule_and_run(campaign)
    [target] = delivery.targets.all()
    assert delivery.status == DeliveryStatus.FAILED
    assert target.status == TargetStatus.FAILED and "40001" in target.error
    assert "Operator or Admin role" in target.what_to_do
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ERROR and campaign.error_reason
    assert Notification.objects.filter(title__contains="failed").exists()


def test_a_revoked_token_pauses_the_delivery_and_reauthorization_completes_it(
    sandbox, destination, make_campaign
):
    make_customers(600)
    campaign = make_campaign(destination, control_bp=0)
    [delivery_id] = delivery_schedule_due()
    real_send = AudienceAdapter.send_members
    calls = {"n": 0}

    def revoke_after_two(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            sandbox.revoke_advertiser(ADVERTISER)
        return real_send(self, *args, **kwargs)

    with mock.patch.object(AudienceAdapter, "send_members", revoke_after_two):
        assert delivery_run(delivery_id=delivery_id) == "waiting for reauthorization"
    delivery = Delivery.objects.get(pk=delivery_id)
    target = delivery.targets.get()
    destination.refresh_from_db()
    assert delivery.status == DeliveryStatus.WAITING_FOR_REAUTH
    assert target.status == TargetStatus.WAITING_FOR_REAUTH and target.batches_done == 2
    assert destination.status == DestinationStatus.NEEDS_REAUTH
    assert delivery_resume_reauthorized() == []  # still not reauthorized

    # An operator reauthorizes: a new token, the destination connected again.
    destination.access_token = sandbox.issue_token([ADVERTISER])
    destination.status = DestinationStatus.CONNECTED
    destination.save()
    sandbox.reset()
    assert delivery_resume_reauthorized() == [delivery_id]
    assert run_delivery(delivery_id) == "delivered"
    target.refresh_from_db()
    assert len(mapping_requests(sandbox, "add")) == 4  # batches 3..6: none of the first two
    assert members_of(sandbox, target) == expected_members(target)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DELIVERED


def test_sync_mode_sends_only_additions_and_removals_to_the_same_audience(
    sandbox, destination, make_campaign
):
    make_customers(500)
    campaign = make_campaign(destination, recurring=True, control_bp=0)
    first = schedule_and_run(campaign)
    [first_target] = first.targets.all()

    Customer.objects.filter(customer_id__in=[f"C{i:07d}" for i in range(0, 500, 10)]).update(
        loyalty_tier="Gone"
    )
    make_customers(30, start=1000)
    campaign.refresh_from_db()
    campaign.next_run_at = timezone.now()
    campaign.save()
    sandbox.reset()
    second = schedule_and_run(campaign)
    [target] = second.targets.all()

    assert target.audience_id == first_target.audience_id and not target.audience_created
    assert (target.people_to_add, target.people_to_remove) == (30, 50)
    assert (people_sent(sandbox, "add"), people_sent(sandbox, "delete")) == (30, 50)
    assert members_of(sandbox, target) == expected_members(target)


def test_new_audience_mode_creates_a_new_audience_each_delivery(
    sandbox, destination, make_campaign
):
    make_customers(150)
    campaign = make_campaign(
        destination, name="Weekly New", recurring=True, refresh_mode=RefreshMode.NEW
    )
    first = schedule_and_run(campaign)
    campaign.refresh_from_db()
    campaign.next_run_at = timezone.now()
    campaign.save()
    second = schedule_and_run(campaign)
    ids = {first.targets.get().audience_id, second.targets.get().audience_id}
    assert len(ids) == 2
    for delivery in (first, second):
        target = delivery.targets.get()
        assert members_of(sandbox, target) == expected_members(target)


def test_polling_records_matched_size_and_match_rate_and_tells_the_owner(
    sandbox, destination, make_campaign
):
    make_customers(300)
    campaign = make_campaign(destination, control_bp=0)
    delivery = schedule_and_run(campaign)
    assert poll_audiences() == 1
    target = delivery.targets.get()
    assert target.ready_at is not None and target.matched and 0.5 < target.match_rate < 0.9
    assert target.match_rate == pytest.approx(target.matched / 300)
    assert Notification.objects.filter(
        title__contains="ready in TikTok", user=campaign.created_by
    ).exists()


def test_polling_stops_after_the_deadline_with_a_note(sandbox, destination, make_campaign):
    make_customers(120)
    campaign = make_campaign(destination, control_bp=0)
    delivery = schedule_and_run(campaign)
    sandbox.control(processing_delay_s=3600)
    assert delivery_poll_audiences() == 0
    target = delivery.targets.get()
    assert target.is_polling
    delivery_poll_audiences(now=timezone.now() + dt.timedelta(hours=73))
    target.refresh_from_db()
    assert not target.is_polling and "72 hours" in target.poll_note


def test_the_scheduler_task_creates_requeues_and_resumes(destination, make_campaign):
    make_campaign(destination)
    with mock.patch.object(services, "_enqueue"):
        result = schedule_deliveries()
    assert len(result["created"]) == 1 and result["requeued"] == [] and result["resumed"] == []


def test_a_treatment_without_usable_identifiers_creates_no_audience(
    sandbox, destination, make_campaign
):
    make_customers(20, nothing_every=1)
    campaign = make_campaign(destination, control_bp=0)
    delivery = schedule_and_run(campaign)
    target = delivery.targets.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert target.audience_id == "" and "no audience was created" in target.note
    assert sandbox.audiences(ADVERTISER) == []
