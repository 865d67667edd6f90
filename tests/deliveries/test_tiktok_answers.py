"""Deliveries against TikTok answers the product must understand (issue 11): a batch size
TikTok refuses (40061), a duplicated request (40050), a partial success (20001), a create
whose answer was lost, and audiences TikTok no longer knows when matching is polled.

Expected members are computed from the raw values `make_customers` wrote (lowercase email,
E.164 phone, SHA-256 here), not from the product's snapshot or store.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.utils import timezone

from deliveries.models import Delivery, DeliveryStatus, DeliveryTarget, TargetStatus
from deliveries.services import delivery_poll_audiences, delivery_schedule_due
from deliveries.tasks import run_delivery
from destinations.tiktok.client import TikTokClient
from tests.deliveries.conftest import ADVERTISER, make_customers

pytestmark = pytest.mark.django_db


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def raw_expected(count: int) -> dict[str, set[str]]:
    """Customers C0000000.. as make_customers writes them, every one sent (no control)."""
    return {
        "EMAIL_SHA256": {sha(f"c{i:07d}@example.com") for i in range(count)},
        "PHONE_SHA256": {sha(f"+1213373{i % 10000:04d}") for i in range(count)},
    }


def run_due() -> list[Delivery]:
    ids = delivery_schedule_due()
    for delivery_id in ids:
        assert run_delivery(delivery_id) in {"delivered", "failed"}
    return list(Delivery.objects.filter(pk__in=ids).order_by("pk"))


def held(sandbox, target: DeliveryTarget) -> dict[str, set[str]]:
    members = sandbox.audience_members(ADVERTISER, target.audience_id)
    return {k: v for k, v in members.items() if v}


def audiences_named(sandbox, name: str) -> list[str]:
    return [a["audience_id"] for a in sandbox.audiences(ADVERTISER) if a["name"] == name]


def mapping_log(sandbox) -> list[dict]:
    return [r for r in sandbox.request_log() if r["path"].endswith("segment/mapping/")]


def test_a_batch_size_tiktok_refuses_with_40061_is_split_and_delivered_exactly(
    sandbox, destination, make_campaign
):
    make_customers(250)
    make_campaign(destination, name="Split 40061", control_bp=0)
    sandbox.control(batch_limit=30, batch_limit_code=40061)
    [delivery] = run_due()
    assert delivery.status == DeliveryStatus.SUCCEEDED, delivery.error
    [target] = delivery.targets.all()
    assert held(sandbox, target) == raw_expected(250)
    codes = [r["code"] for r in mapping_log(sandbox)]
    assert 40061 in codes and codes[-1] == 0


def test_a_mapping_refused_as_a_duplicate_after_its_answer_was_lost_counts_as_done(
    sandbox, destination, make_campaign
):
    make_customers(240)
    make_campaign(destination, name="Duplicate", control_bp=0)
    sandbox.control(
        drop_answer_rate=1.0,
        fault_endpoints=["segment/mapping/"],
        fault_limit=1,
        duplicate_window_s=120,
    )
    [delivery] = run_due()
    assert delivery.status == DeliveryStatus.SUCCEEDED, delivery.error
    [target] = delivery.targets.all()
    assert held(sandbox, target) == raw_expected(240)
    log = mapping_log(sandbox)
    assert [r.get("fault") for r in log].count("drop_answer") == 1
    assert [r["code"] for r in log].count(40050) == 1
    assert target.status == TargetStatus.SENT and target.batches_done == target.batches_total


def test_partial_successes_are_successes(sandbox, destination, make_campaign):
    make_customers(150)
    make_campaign(destination, name="Partial", control_bp=0)
    sandbox.control(partial_ok_rate=1.0, fault_endpoints=["segment/audience/", "segment/mapping/"])
    [delivery] = run_due()
    assert delivery.status == DeliveryStatus.SUCCEEDED, delivery.error
    [target] = delivery.targets.all()
    assert target.retries == 0
    assert held(sandbox, target) == raw_expected(150)
    assert {r["code"] for r in mapping_log(sandbox)} == {20001}


def test_a_create_answer_lost_after_tiktok_created_the_audience_leaves_one_audience(
    sandbox, destination, make_campaign
):
    make_customers(130)
    make_campaign(destination, name="Lost in transit", control_bp=0)
    sandbox.control(drop_answer_rate=1.0, fault_endpoints=["segment/audience/"], fault_limit=1)
    [delivery] = run_due()
    assert delivery.status == DeliveryStatus.SUCCEEDED, delivery.error
    [target] = delivery.targets.all()
    assert audiences_named(sandbox, "Lost in transit") == [target.audience_id]
    assert held(sandbox, target) == raw_expected(130)


def test_an_audience_tiktok_no_longer_knows_fails_its_target_and_the_others_are_polled(
    sandbox, destination, make_campaign
):
    make_customers(120)
    make_campaign(destination, name="Kept", control_bp=0)
    make_campaign(destination, name="Deleted", control_bp=0)
    deliveries = run_due()
    assert all(d.status == DeliveryStatus.SUCCEEDED for d in deliveries)
    targets = {t.audience_name: t for t in DeliveryTarget.objects.all()}
    TikTokClient(destination.access_token).delete_audience(
        ADVERTISER, targets["Deleted"].audience_id
    )

    assert delivery_poll_audiences() == 1
    kept = DeliveryTarget.objects.get(pk=targets["Kept"].pk)
    gone = DeliveryTarget.objects.get(pk=targets["Deleted"].pk)
    assert kept.ready_at is not None and kept.matched is not None
    assert gone.status == TargetStatus.FAILED and not gone.is_polling
    assert "no longer knows" in gone.what_to_do and gone.error
    assert targets["Deleted"].audience_id not in gone.what_to_do  # no data values echoed
    # Nothing left to poll: a second round asks TikTok nothing.
    sandbox.reset()
    assert delivery_poll_audiences() == 0
    assert not [r for r in sandbox.request_log() if "custom_audience/get" in r["path"]]


def test_polling_reaches_the_72_hour_note_even_while_tiktok_keeps_failing(
    sandbox, destination, make_campaign
):
    make_customers(110)
    make_campaign(destination, name="Flaky polling", control_bp=0)
    [delivery] = run_due()
    sandbox.control(error_rate=1.0, fault_endpoints=["dmp/custom_audience/get/"])
    assert delivery_poll_audiences() == 0
    target = delivery.targets.get()
    assert target.is_polling
    delivery_poll_audiences(now=timezone.now() + dt.timedelta(hours=73))
    target.refresh_from_db()
    assert not target.is_polling and "72 hours" in target.poll_note
