"""next_batch: the database writes each person-row as TikTok batch_data JSON, exactly as
the attribute mapping and the customer store say, one keyset window at a time. (Against an
empty ledger the target's changes are everything it should hold.)"""

from __future__ import annotations

import json
from unittest import mock

import pytest

from customers.models import Customer, Device
from deliveries.ledger import next_batch, target_diff
from deliveries.models import (
    Delivery,
    DeliveryRecipient,
    DeliveryStatus,
    DeliveryTarget,
    TargetPhase,
)
from deliveries.services import delivery_run, delivery_schedule_due, delivery_snapshot
from destinations.tiktok.adapter import AudienceAdapter
from tests.deliveries.conftest import make_customers, sha

pytestmark = pytest.mark.django_db

AUDIENCE = "1800000000000000042"
ALL_IDS = ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256"]


def expected_rows(target: DeliveryTarget, schema: list[str]) -> dict[str, list[list[dict]]]:
    """The reference, person by person in customer id order, written in plain Python."""
    ids = sorted(
        DeliveryRecipient.objects.filter(
            delivery_id=target.delivery_id, treatment_id=target.treatment.treatment_id
        ).values_list("customer_id", flat=True)
    )
    customers = {c.customer_id: c for c in Customer.objects.filter(customer_id__in=ids)}
    rows: dict[str, list[list[dict]]] = {}
    for cid in ids:
        c = customers[cid]
        base = {"EMAIL_SHA256": c.email_sha256, "PHONE_SHA256": c.phone_sha256}
        devices = {
            kind: sorted(
                Device.objects.filter(customer_id=cid, kind=kind)
                .exclude(sha256="")
                .values_list("sha256", flat=True)
            )
            for kind in ("IDFA", "AAID")
            if f"{kind}_SHA256" in schema
        }
        has_base = any(base.get(t) for t in schema)
        for i in range(max(int(has_base), *(len(v) for v in devices.values()), 0)):
            row = []
            for id_type in schema:
                if id_type in base:
                    value = base[id_type]
                else:
                    found = devices[id_type.removesuffix("_SHA256")]
                    value = found[i] if i < len(found) else ""
                row.append({"id": value, "audience_ids": [AUDIENCE]} if value else {})
            rows.setdefault(cid, []).append(row)
    return rows


@pytest.fixture
def target(destination, make_campaign) -> DeliveryTarget:
    make_customers(60, devices=2, bad_email_every=4, no_phone_every=5, nothing_every=7)
    # Uneven devices: some AAIDs, a third IDFA, an IDFA without a valid hash (skipped).
    for i in range(0, 60, 3):
        cid = f"C{i:07d}"
        Device.objects.create(customer_id=cid, kind="AAID", raw_id=f"a{i}", sha256=sha(f"a{i}"))
    Device.objects.create(customer_id="C0000010", kind="IDFA", raw_id="x", sha256=sha("x"))
    Device.objects.create(customer_id="C0000011", kind="IDFA", raw_id="bad", sha256="")
    Device.objects.filter(customer_id__in=["C0000014", "C0000021"]).delete()  # nothing at all
    campaign = make_campaign(destination, control_bp=0, idfa=True)
    [delivery_id] = delivery_schedule_due()
    delivery = campaign.deliveries.get(pk=delivery_id)
    delivery_snapshot(delivery=delivery)
    return delivery.targets.select_related("treatment", "delivery").get()


def with_schema(target: DeliveryTarget, schema: list[str]) -> DeliveryTarget:
    target.id_schema = schema
    target_diff(target)
    return target


def read_all(target: DeliveryTarget, size: int) -> tuple[list[list[dict]], int, int]:
    rows, people, scanned, after = [], 0, 0, ""
    while (batch := next_batch(target, TargetPhase.ADD, after=after, size=size,
                               audience_ids=[AUDIENCE])).scanned:  # fmt: skip
        assert batch.last_customer_id > after
        assert batch.scanned <= size
        rows += [json.loads(row) for row in batch.rows]
        people, scanned, after = (
            people + batch.people,
            scanned + batch.scanned,
            batch.last_customer_id,
        )
    return rows, people, scanned


@pytest.mark.parametrize(
    "schema",
    [
        ["EMAIL_SHA256", "PHONE_SHA256"],
        ["EMAIL_SHA256"],
        ["PHONE_SHA256"],
        ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256"],
        ALL_IDS,
        ["IDFA_SHA256", "AAID_SHA256"],
    ],
)
def test_batches_hold_one_json_entry_per_id_with_gaps_and_device_expansion(target, schema):
    with_schema(target, schema)
    expected = expected_rows(target, schema)
    for size in (7, 1000):
        rows, people, scanned = read_all(target, size)
        assert rows == [row for person in expected.values() for row in person]
        # Shrink: people without any id the schema sends have nothing to add: no row.
        assert people == scanned == len(expected)
    assert len(expected) < 60  # C0000014 and C0000021 have nothing: they shrink
    if "IDFA_SHA256" in schema:
        assert len(rows) > len(expected)  # expansion


def test_a_batch_resumes_right_after_the_checkpoint(target):
    with_schema(target, ["EMAIL_SHA256", "PHONE_SHA256"])
    expected = expected_rows(target, target.id_schema)
    first = next_batch(target, TargetPhase.ADD, after="", size=10, audience_ids=[AUDIENCE])
    rest = next_batch(
        target, TargetPhase.ADD, after=first.last_customer_id, size=1000, audience_ids=[AUDIENCE]
    )
    assert first.scanned == 10 and rest.scanned == len(expected) - 10
    assert first.last_customer_id == list(expected)[9]
    assert [json.loads(r) for r in first.rows + rest.rows] == [
        row for person in expected.values() for row in person
    ]
    empty = next_batch(
        target, TargetPhase.ADD, after=rest.last_customer_id, size=10, audience_ids=[AUDIENCE]
    )
    assert empty.scanned == 0 and empty.rows == []


def test_a_snapshot_with_customers_left_without_treatment_fails_and_keeps_no_rows(
    destination, make_campaign
):
    make_customers(40)
    campaign = make_campaign(destination, groups=("Gold",), control_bp=0)
    # The Gold group's only treatment covers half its buckets: half of Gold has none.
    campaign.sub_audiences.get(name="Gold").treatments.update(split_bp=5_000)
    [delivery_id] = delivery_schedule_due()
    assert delivery_run(delivery_id=delivery_id) == "failed: snapshot"
    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.status == DeliveryStatus.FAILED
    assert "do not add up to 100 %" in delivery.error
    assert delivery.snapshot_at is None
    assert not DeliveryRecipient.objects.filter(delivery_id=delivery_id).exists()


def test_a_worker_that_lost_its_lease_stops_without_checkpointing_the_batch_in_flight(
    sandbox, destination, make_campaign
):
    make_customers(500)
    make_campaign(destination, control_bp=0)
    [delivery_id] = delivery_schedule_due()
    real_send = AudienceAdapter.send_members
    calls = {"n": 0}

    def taken_over_during_second(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # another worker claims the delivery while this batch is sent
            Delivery.objects.filter(pk=delivery_id).update(lease="another-worker")
        return real_send(self, *args, **kwargs)

    with mock.patch.object(AudienceAdapter, "send_members", taken_over_during_second):
        assert delivery_run(delivery_id=delivery_id) == "lease lost"
    target = DeliveryTarget.objects.get()
    assert (target.batches_done, target.people_sent, target.cursor) == (1, 100, "C0000099")
