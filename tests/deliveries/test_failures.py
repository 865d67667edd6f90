"""Nothing hangs: every failure before or during sending ends the delivery with a reason,
what to do, a notification and Retry; the watchdog queues again or fails deliveries whose
worker died; a live worker keeps its lease; Schedule refuses segments that cannot run."""

from __future__ import annotations

import datetime as dt
import time
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone

from campaigns.models import CampaignEvent, CampaignStatus
from campaigns.services import CampaignValidationError, campaign_schedule
from deliveries import services
from deliveries.models import Delivery, DeliveryStatus
from deliveries.services import (
    MAX_RUNS_AFTER_CRASH,
    Run,
    delivery_requeue_stalled,
    delivery_retry,
    delivery_run,
    delivery_schedule_due,
)
from deliveries.tasks import run_delivery
from notifications.models import Notification
from segments.models import Segment, SegmentKind
from tests.deliveries.conftest import make_customers

MISSING_COLUMN_SQL = "SELECT customer_id FROM customers WHERE loyalty_level <> 'Gone'"


def stale_time() -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=settings.DELIVERY_STALE_SECONDS + 5)


def a_running_delivery(campaign, *, runs: int) -> Delivery:
    with mock.patch.object(run_delivery, "apply_async"):
        [delivery_id] = delivery_schedule_due()
    Delivery.objects.filter(pk=delivery_id).update(
        status=DeliveryStatus.RUNNING,
        lease="dead-worker",
        runs=runs,
        heartbeat_at=stale_time(),
        enqueued_at=stale_time(),
        started_at=stale_time(),
    )
    return Delivery.objects.get(pk=delivery_id)


# ---- the watchdog ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_watchdog_queues_again_a_delivery_whose_worker_died_and_says_so(
    destination, make_campaign, django_capture_on_commit_callbacks
):
    campaign = make_campaign(destination, control_bp=0)
    delivery = a_running_delivery(campaign, runs=1)

    with (
        mock.patch.object(run_delivery, "apply_async") as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert delivery_requeue_stalled() == [delivery.pk]
    enqueue.assert_called_once()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED and delivery.lease == ""
    assert "watchdog queued it again" in delivery.error
    event = CampaignEvent.objects.get(campaign=campaign, kind="delivery_requeued")
    assert "no live worker" in event.message
    # Not twice within a stale period.
    assert delivery_requeue_stalled() == []


@pytest.mark.django_db
def test_a_delivery_whose_worker_keeps_dying_fails_with_a_reason_a_notification_and_retry(
    destination, make_campaign
):
    campaign = make_campaign(destination, name="Crashy", control_bp=0)
    delivery = a_running_delivery(campaign, runs=MAX_RUNS_AFTER_CRASH)

    assert delivery_requeue_stalled() == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert f"stopped {MAX_RUNS_AFTER_CRASH} times" in delivery.error
    assert "Retry" in delivery.what_to_do
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ERROR
    assert Notification.objects.filter(title="Delivery of “Crashy” failed").exists()

    with mock.patch.object(run_delivery, "apply_async"):
        delivery_retry(delivery=delivery, user=None)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED and delivery.error == ""


@pytest.mark.django_db(transaction=True)
def test_a_live_worker_keeps_its_lease_however_long_a_step_takes(
    destination, make_campaign, settings
):
    settings.DELIVERY_STALE_SECONDS = 1
    campaign = make_campaign(destination, control_bp=0)
    with mock.patch.object(run_delivery, "apply_async"):
        [delivery_id] = delivery_schedule_due()
    lease = services._claim(delivery_id, timezone.now())
    assert lease is not None
    run = Run(Delivery.objects.get(pk=delivery_id), lease)
    with run.keepalive():
        end = time.monotonic() + 3  # three stale periods in one step
        while time.monotonic() < end:
            assert services._claim(delivery_id, timezone.now()) is None
            assert delivery_requeue_stalled() == []
            time.sleep(0.25)
        run.beat()  # still its own
    time.sleep(1.5)  # its worker is gone now: the heartbeat goes stale
    with mock.patch.object(run_delivery, "apply_async"):
        assert delivery_requeue_stalled() == [delivery_id]
    assert Delivery.objects.get(pk=delivery_id).runs == 1
    assert campaign.events.filter(kind="delivery_requeued").count() == 1


# ---- failures in the run ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_segment_that_no_longer_runs_ends_the_delivery_with_the_segment_named(
    destination, make_campaign
):
    make_customers(50)
    campaign = make_campaign(destination, name="Broken SQL", control_bp=0)
    Segment.objects.filter(name="Broken SQL audience").update(
        kind=SegmentKind.SQL, sql=MISSING_COLUMN_SQL
    )
    with mock.patch.object(run_delivery, "apply_async"):
        [delivery_id] = delivery_schedule_due()

    assert delivery_run(delivery_id=delivery_id) == "failed: snapshot"
    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.status == DeliveryStatus.FAILED
    assert "“Broken SQL audience”" in delivery.error and "loyalty_level" in delivery.error
    assert delivery.error.startswith("Audience:")
    assert "press Retry" in delivery.what_to_do
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ERROR
    assert Notification.objects.filter(title="Delivery of “Broken SQL” failed").exists()


@pytest.mark.django_db
def test_an_unexpected_error_ends_the_delivery_instead_of_leaving_it_running(
    destination, make_campaign
):
    make_customers(20)
    make_campaign(destination, control_bp=0)
    with mock.patch.object(run_delivery, "apply_async"):
        [delivery_id] = delivery_schedule_due()
    with mock.patch.object(services, "_send_target", side_effect=KeyError("boom")):
        assert delivery_run(delivery_id=delivery_id) == "failed: unexpected error"
    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.error == "The delivery stopped on an unexpected error (KeyError)."
    assert "boom" not in delivery.error + delivery.what_to_do


# ---- Schedule -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_schedule_refuses_a_campaign_whose_segment_cannot_run_at_the_step_using_it(
    destination, make_campaign
):
    make_customers(10)
    campaign = make_campaign(destination, name="Refused", groups=("Gold",), control_bp=0)
    type(campaign).objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.DRAFT, next_run_at=None
    )
    campaign.refresh_from_db()
    Segment.objects.filter(name="Refused Gold").update(
        kind=SegmentKind.SQL, sql="SELECT customer_id FROM customers WHERE no_such_column = 1"
    )
    with pytest.raises(CampaignValidationError) as refused:
        campaign_schedule(campaign=campaign, user=campaign.created_by)
    assert list(refused.value.errors) == ["sub_audiences"]
    [message] = refused.value.errors["sub_audiences"]
    assert "“Refused Gold”" in message and "no_such_column" in message
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT

    # Fixed, it schedules.
    Segment.objects.filter(name="Refused Gold").update(
        kind=SegmentKind.SQL, sql="SELECT customer_id FROM customers WHERE loyalty_tier = 'Gold'"
    )
    campaign_schedule(campaign=campaign, user=campaign.created_by)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_over_the_statement_timeout_fails_with_the_reason(
    destination, make_campaign, settings
):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("holds a PostgreSQL table lock from a second connection")
    import psycopg

    make_customers(20)
    make_campaign(destination, name="Too slow", control_bp=0)
    with mock.patch.object(run_delivery, "apply_async"):
        [delivery_id] = delivery_schedule_due()
    settings.SEGMENT_QUERY_TIMEOUT_MS = 300
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"] or "postgres",
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        password=db.get("PASSWORD") or None,
    ) as locker:
        locker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        assert delivery_run(delivery_id=delivery_id) == "failed: snapshot"
        assert time.monotonic() - started < 5
        locker.rollback()
    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.status == DeliveryStatus.FAILED
    assert "took longer than 0.3 s" in delivery.error
