"""End to end: a real `celery worker` process, the broker from settings, the sandbox.

The test process plays the scheduler (it calls the beat task's function); the worker
snapshots and sends. The sandbox's inspection endpoint must hold exactly the expected
hashed ids per audience.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from deliveries.models import DeliveryStatus, DeliveryTarget
from deliveries.tasks import schedule_deliveries
from destinations.models import DestinationStatus
from tests.deliveries.conftest import (
    ADVERTISER,
    delivery_of,
    expected_members,
    make_customers,
    people_sent,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def finished(campaign, worker, *, timeout: float = 120):
    def done():
        delivery = delivery_of(campaign)
        return delivery if delivery and delivery.status in (
            DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED
        ) else None  # fmt: skip

    delivery = wait_for(done, timeout=timeout, what="the delivery to finish", worker=worker)
    assert delivery.status == DeliveryStatus.SUCCEEDED, (delivery.error, worker.log())
    return delivery


def assert_exact(sandbox, delivery) -> None:
    for target in delivery.targets.select_related("treatment"):
        members = sandbox.audience_members(ADVERTISER, target.audience_id)
        assert {k: v for k, v in members.items() if v} == expected_members(target)
    names = [a["name"] for a in sandbox.audiences(ADVERTISER)]
    for target in delivery.targets.all():
        assert names.count(target.audience_name) == 1


def test_a_real_worker_delivers_exact_members_despite_faults_and_a_low_rate_limit(
    sandbox, destination, make_campaign, worker
):
    make_customers(2500, bad_email_every=9, no_phone_every=4)
    campaign = make_campaign(destination, name="Faulty Weather", groups=("Gold",))
    make_customers(1000, start=5000, tier="Silver")
    sandbox.control(error_rate=0.1, html_502_rate=0.1, drop_rate=0.1, qps=3)
    assert len(schedule_deliveries()["created"]) == 1
    delivery = finished(campaign, worker, timeout=150)
    sandbox.control(error_rate=0, html_502_rate=0, drop_rate=0)
    faults = [r for r in sandbox.request_log() if r.get("fault") or r.get("code") == 40100]
    assert len(faults) > 5
    assert_exact(sandbox, delivery)


def test_a_worker_killed_mid_delivery_resumes_with_no_duplicate_audience(
    sandbox, destination, make_campaign, worker
):
    make_customers(4000)
    campaign = make_campaign(destination, name="Crash Test", control_bp=0)
    sandbox.control(latency_ms=150)
    schedule_deliveries()
    wait_for(
        lambda: DeliveryTarget.objects.filter(batches_done__gte=5).exists(),
        what="five batches",
        worker=worker,
    )
    worker.kill()
    target = DeliveryTarget.objects.get()
    assert target.status == "sending" and 5 <= target.batches_done < 40
    sandbox.control(latency_ms=0)
    worker.start()

    def resumed():
        schedule_deliveries()  # the beat: re-enqueues the delivery once its heartbeat is stale
        delivery = delivery_of(campaign)
        return delivery.status == DeliveryStatus.SUCCEEDED

    wait_for(resumed, timeout=90, what="the resumed delivery", worker=worker)
    delivery = delivery_of(campaign)
    assert delivery.runs == 2
    assert_exact(sandbox, delivery)


def test_a_token_revoked_mid_delivery_pauses_it_until_reauthorization(
    sandbox, destination, make_campaign, worker
):
    make_customers(3000)
    campaign = make_campaign(destination, name="Revoked", control_bp=0)
    sandbox.control(latency_ms=100)
    schedule_deliveries()
    wait_for(
        lambda: DeliveryTarget.objects.filter(batches_done__gte=3).exists(),
        what="three batches",
        worker=worker,
    )
    sandbox.revoke_advertiser(ADVERTISER)
    wait_for(
        lambda: delivery_of(campaign).status == DeliveryStatus.WAITING_FOR_REAUTH,
        what="the pause",
        worker=worker,
    )
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.NEEDS_REAUTH
    done_before = DeliveryTarget.objects.get().batches_done
    sandbox.control(latency_ms=0)
    sandbox.reset()

    destination.access_token = sandbox.issue_token([ADVERTISER])
    destination.status = DestinationStatus.CONNECTED
    destination.needs_reauth_since = None
    destination.save()
    assert schedule_deliveries()["resumed"] == [delivery_of(campaign).pk]
    delivery = finished(campaign, worker)
    target = delivery.targets.get()
    # Only the batches not finished before the pause (plus at most the one in flight).
    assert target.batches_done == 30
    resent = people_sent(sandbox, "add")
    assert 3000 - done_before * 100 <= resent <= 3000 - (done_before - 1) * 100
    assert_exact(sandbox, delivery)


def test_sync_mode_second_delivery_sends_only_the_difference_through_the_worker(
    sandbox, destination, make_campaign, worker
):
    from customers.models import Customer

    make_customers(2000)
    campaign = make_campaign(destination, name="Sync", recurring=True, control_bp=0)
    schedule_deliveries()
    first = finished(campaign, worker)
    Customer.objects.filter(customer_id__in=[f"C{i:07d}" for i in range(0, 2000, 20)]).update(
        loyalty_tier="Gone"
    )
    make_customers(40, start=9000)
    campaign.refresh_from_db()
    campaign.next_run_at = timezone.now()
    campaign.save(update_fields=["next_run_at"])
    sandbox.reset()
    schedule_deliveries()
    second = wait_for(
        lambda: (d := delivery_of(campaign)) != first and d.status == "succeeded" and d,
        what="the second delivery",
        worker=worker,
    )
    assert people_sent(sandbox, "add") == 40 and people_sent(sandbox, "delete") == 100
    assert second.targets.get().audience_id == first.targets.get().audience_id
    assert_exact(sandbox, second)
