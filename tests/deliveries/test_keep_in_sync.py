"""Keep-in-sync end to end: customer changes re-imported from CSV, a real worker, the
sandbox. After every delivery the audience holds exactly the campaign's current ids per type.

The oracle is independent of the product: the expected hashes are computed here from the
raw values written to the CSV files, with a small reference normalization (checked against
the shared vectors below), never read from the product's snapshot, store or ledger.
"""

from __future__ import annotations

import csv
import hashlib
import re
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from campaigns.models import CampaignDestination, CampaignStatus
from customers.csv_columns import ImportKind
from customers.services import customers_delete, customers_import_file
from deliveries.models import DeliveryStatus, DeliveryTarget
from deliveries.tasks import schedule_deliveries
from tests.deliveries.conftest import ADVERTISER, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

VECTORS = Path(__file__).resolve().parents[1] / "testdata" / "normalization_vectors.csv"
_EMAIL = re.compile(r"^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$")
_UUID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")


# ---- the reference ---------------------------------------------------------------------


def ref_hash(kind: str, raw: str) -> str | None:
    """TikTok's normalization for the inputs these tests write: emails trimmed and
    lowercased; phones written "+<country> <digits with separators>"; device ids as UUIDs,
    trimmed and lowercased."""
    value = raw.strip()
    if kind == "email":
        value = value.lower()
        if not _EMAIL.match(value):
            return None
    elif kind == "phone":
        if not value.startswith("+"):
            return None
        value = "+" + re.sub(r"\D", "", value)
    else:
        value = value.lower()
        if not _UUID.match(value) or set(value) <= {"0", "-"}:
            return None
    return hashlib.sha256(value.encode()).hexdigest()


def test_the_reference_agrees_with_the_shared_vectors_it_covers():
    rows = list(csv.DictReader(VECTORS.open(encoding="utf-8")))

    def covered(row: dict) -> bool:
        kind, value = row["kind"], row["input"]
        if re.fullmatch(r"[0-9A-Fa-f]{64}", value):  # already hashed: not written here
            return False
        if kind == "email":
            return True
        if kind == "phone":  # "+<country> ..." without a national trunk prefix
            return value.startswith("+") and "(0)" not in value
        return "-" in value  # device ids written as UUIDs

    covered_rows = [r for r in rows if covered(r)]
    assert len(covered_rows) >= 12
    for row in covered_rows:
        assert ref_hash(row["kind"], row["input"]) == (row["sha256"] or None), row


# ---- a customer store described by its raw CSV values -------------------------------------


class Store:
    """The raw values the tests import, and what TikTok must hold for them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.people: dict[str, dict] = {}
        self.files = 0

    def _write(self, name: str, header: list[str], rows: list[list[str]]) -> Path:
        self.files += 1
        path = self.tmp / f"{self.files:02d}-{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows(rows)
        return path

    def import_customers(self, changes: dict[str, dict]) -> None:
        for cid, values in changes.items():
            self.people.setdefault(cid, {"devices": set()}).update(values)
        path = self._write(
            "customers",
            ["customer_id", "email", "phone", "loyalty_tier", "country"],
            [[cid, v["email"], v["phone"], v["tier"], "US"] for cid, v in
             ((c, self.people[c]) for c in changes)],
        )  # fmt: skip
        result = customers_import_file(
            kind=ImportKind.CUSTOMERS, path=path, error_report=path.with_suffix(".err")
        )
        assert result.error_rows == 0

    def import_devices(self, devices: dict[str, set[tuple[str, str]]], *, replace: bool) -> None:
        for cid, listed in devices.items():
            person = self.people[cid]
            person["devices"] = set(listed) if replace else person["devices"] | listed
        path = self._write(
            "devices",
            ["customer_id", "kind", "raw_id"],
            [[cid, kind, raw] for cid, listed in devices.items() for kind, raw in sorted(listed)],
        )
        result = customers_import_file(
            kind=ImportKind.DEVICES, path=path, error_report=path.with_suffix(".err"),
            replace=replace,
        )  # fmt: skip
        assert result.error_rows == 0

    def delete(self, *ids: str) -> None:
        assert customers_delete(customer_ids=ids).deleted == len(ids)
        for cid in ids:
            del self.people[cid]

    def expected(self) -> dict[str, set[str]]:
        held: dict[str, set[str]] = {}
        for person in self.people.values():
            if person["tier"] == "Gone":
                continue
            for id_type, kind, raw in [
                ("EMAIL_SHA256", "email", person["email"]),
                ("PHONE_SHA256", "phone", person["phone"]),
                *((f"{k}_SHA256", k.lower(), r) for k, r in person["devices"]),
            ]:
                if (digest := ref_hash(kind, raw)) is not None:
                    held.setdefault(id_type, set()).add(digest)
        return held


def device(n: int) -> str:
    return str(uuid.UUID(int=(n + 1) * 7919)).upper()


def populate(store: Store, count: int) -> None:
    store.import_customers(
        {
            f"K{i:04d}": {
                "email": f"k{i}-at-example.com" if i % 11 == 0 else f"k{i}@example.com",
                "phone": f"+1 213-373-{i:04d}",
                "tier": "Gold",
            }
            for i in range(count)
        }
    )
    devices: dict[str, set[tuple[str, str]]] = {}
    for i in range(count):
        listed = set()
        if i % 3 == 0:
            listed.add(("IDFA", device(i)))
        if i % 10 == 0:
            listed.add(("IDFA", device(i + 5000)))
        if i % 4 == 0:
            listed.add(("AAID", device(i + 9000).lower()))
        if listed:
            devices[f"K{i:04d}"] = listed
    store.import_devices(devices, replace=False)


def every_change_class(store: Store) -> None:
    """Email changed, invalid → valid, valid → invalid, removed and changed, case and
    padding only, device added, device removed, left, customer deleted, phone changed."""
    p = store.people
    store.import_customers(
        {
            "K0001": {**p["K0001"], "email": "k1.new@example.com"},
            "K0011": {**p["K0011"], "email": "k11@example.com"},  # was invalid
            "K0002": {**p["K0002"], "email": "k2-at-example.com"},  # now invalid
            "K0003": {**p["K0003"], "tier": "Gone", "email": "k3.moved@example.com"},
            "K0004": {**p["K0004"], "email": "  K4@Example.COM "},  # the same hash
            "K0008": {**p["K0008"], "tier": "Gone"},  # leaves (rejoins later)
            "K0010": {**p["K0010"], "phone": "+1 213-373-9999"},
        }
    )
    store.import_devices({"K0005": {("IDFA", device(7005))}}, replace=False)  # added
    # K0012 had an IDFA and an AAID: the file lists only the AAID, so the IDFA goes.
    store.import_devices(
        {"K0012": {d for d in p["K0012"]["devices"] if d[0] == "AAID"}}, replace=True
    )
    store.delete("K0009")


def many_changes(store: Store, start: int, stop: int, tag: str) -> None:
    store.import_customers(
        {
            f"K{i:04d}": {**store.people[f"K{i:04d}"], "email": f"k{i}.{tag}@example.com"}
            for i in range(start, stop)
            if f"K{i:04d}" in store.people
        }
    )


# ---- running deliveries --------------------------------------------------------------------


def sync_campaign(destination, make_campaign):
    campaign = make_campaign(destination, name="Kept", recurring=True, control_bp=0, idfa=True)
    cd = CampaignDestination.objects.get(campaign=campaign)
    cd.attribute_mapping = [*cd.attribute_mapping, {
        "destination_attribute": "AAID", "source_table": "devices",
        "source_attribute": "raw_id", "enabled": True,
    }]  # fmt: skip
    cd.save(update_fields=["attribute_mapping"])
    return campaign


def deliver(campaign, worker, *, expect=DeliveryStatus.SUCCEEDED, timeout: float = 150):
    campaign.refresh_from_db()
    if campaign.status != CampaignStatus.SCHEDULED or campaign.next_run_at > timezone.now():
        campaign.status = CampaignStatus.SCHEDULED
        campaign.next_run_at = timezone.now()
        campaign.save(update_fields=["status", "next_run_at"])
    known = set(campaign.deliveries.values_list("pk", flat=True))
    [created] = schedule_deliveries()["created"]
    assert created not in known
    return wait_done(campaign, created, worker, expect=expect, timeout=timeout)


def start_sync(campaign, worker, *, batches: int) -> int:
    """Make the campaign due, let the scheduler create its delivery, and wait until the
    worker has sent `batches` batches of it; returns the delivery's id."""
    campaign.refresh_from_db()
    campaign.next_run_at = timezone.now()
    campaign.save(update_fields=["next_run_at"])
    [delivery_id] = schedule_deliveries()["created"]
    wait_for(
        lambda: DeliveryTarget.objects.filter(
            delivery_id=delivery_id, batches_done__gte=batches
        ).exists(),
        what=f"{batches} batches of the sync",
        worker=worker,
    )
    return delivery_id


def wait_done(campaign, delivery_id, worker, *, expect, timeout: float = 150):
    def done():
        schedule_deliveries()  # the beat: re-enqueues a delivery whose worker died
        delivery = campaign.deliveries.get(pk=delivery_id)
        finished = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)
        return delivery if delivery.status in finished else None

    delivery = wait_for(done, timeout=timeout, what="the delivery to finish", worker=worker)
    assert delivery.status == expect, (delivery.error, worker.log())
    return delivery


def held(sandbox, target: DeliveryTarget) -> dict[str, set[str]]:
    members = sandbox.audience_members(ADVERTISER, target.audience_id)
    return {k: v for k, v in members.items() if v}


def assert_exact(sandbox, delivery, store: Store) -> DeliveryTarget:
    target = delivery.targets.get()
    assert held(sandbox, target) == store.expected()
    assert [a["name"] for a in sandbox.audiences(ADVERTISER)].count(target.audience_name) == 1
    return target


def changed_counts(target: DeliveryTarget, action: str) -> dict[str, int]:
    return {t: sum(reasons.values()) for t, reasons in target.changes.get(action, {}).items()}


def difference(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, int]:
    return {
        t: n for t in sorted(set(before) | set(after))
        if (n := len(after.get(t, set()) - before.get(t, set())))
    }  # fmt: skip


@pytest.fixture
def small_batches(tiktok_settings):
    tiktok_settings.TIKTOK_BATCH_SIZE = 20
    return tiktok_settings


# ---- the tests --------------------------------------------------------------------------


def test_every_change_class_leaves_the_audience_exact_after_each_delivery(
    sandbox, destination, make_campaign, worker, tmp_path
):
    store = Store(tmp_path)
    populate(store, 240)
    campaign = sync_campaign(destination, make_campaign)
    first = assert_exact(sandbox, deliver(campaign, worker), store)
    before = store.expected()

    every_change_class(store)
    second = assert_exact(sandbox, deliver(campaign, worker), store)
    after = store.expected()
    assert second.audience_id == first.audience_id and not second.audience_created
    # What the summary says was added and removed per type is the oracle's difference.
    assert changed_counts(second, "add") == difference(before, after)
    assert changed_counts(second, "delete") == difference(after, before)
    reasons = second.changes
    assert reasons["add"]["EMAIL_SHA256"] == {"changed": 2}  # K0001 new, K0011 now valid
    assert reasons["delete"]["EMAIL_SHA256"] == {"changed": 2, "left": 3}  # K1, K2 / K3, K8, K9
    assert reasons["add"]["IDFA_SHA256"] == {"changed": 1}  # K0005's new device
    assert reasons["delete"]["IDFA_SHA256"] == {"changed": 1, "left": 2}  # K12 / K3, K9

    store.import_customers({"K0008": {**store.people["K0008"], "tier": "Gold"}})
    third = assert_exact(sandbox, deliver(campaign, worker), store)
    rejoined = ("EMAIL_SHA256", "PHONE_SHA256", "AAID_SHA256")  # K0008: email, phone, AAID
    assert third.changes == {"add": {t: {"joined": 1} for t in rejoined}}


def test_the_audience_ends_exact_under_thirty_percent_faults(
    sandbox, destination, make_campaign, small_batches, worker, tmp_path
):
    store = Store(tmp_path)
    populate(store, 240)
    campaign = sync_campaign(destination, make_campaign)
    assert_exact(sandbox, deliver(campaign, worker), store)
    every_change_class(store)
    many_changes(store, 20, 200, "faulty")
    sandbox.control(error_rate=0.1, html_502_rate=0.1, drop_rate=0.1)
    delivery = deliver(campaign, worker, timeout=240)
    sandbox.control(error_rate=0, html_502_rate=0, drop_rate=0)
    faults = [r for r in sandbox.request_log() if r.get("fault")]
    assert faults, sandbox.request_log()[-5:]
    assert_exact(sandbox, delivery, store)


def test_a_worker_killed_mid_sync_resumes_and_ends_exact(
    sandbox, destination, make_campaign, small_batches, worker, tmp_path
):
    store = Store(tmp_path)
    populate(store, 200)
    campaign = sync_campaign(destination, make_campaign)
    assert_exact(sandbox, deliver(campaign, worker), store)
    every_change_class(store)
    many_changes(store, 20, 180, "moved")
    sandbox.control(latency_ms=150)
    delivery_id = start_sync(campaign, worker, batches=3)
    worker.kill()
    target = DeliveryTarget.objects.get(delivery_id=delivery_id)
    assert target.status == "sending" and target.batches_done < target.batches_total
    sandbox.control(latency_ms=0)
    worker.start()
    delivery = wait_done(campaign, delivery_id, worker, expect=DeliveryStatus.SUCCEEDED)
    assert delivery.runs == 2
    assert_exact(sandbox, delivery, store)


def test_a_sync_that_failed_halfway_is_repaired_by_the_next_delivery(
    sandbox, destination, make_campaign, small_batches, worker, tmp_path
):
    store = Store(tmp_path)
    populate(store, 200)
    campaign = sync_campaign(destination, make_campaign)
    assert_exact(sandbox, deliver(campaign, worker), store)
    every_change_class(store)
    many_changes(store, 20, 180, "halfway")
    sandbox.control(latency_ms=100)
    delivery_id = start_sync(campaign, worker, batches=2)
    sandbox.control(error_rate=1.0, latency_ms=0)  # every call fails from now on: it gives up
    failed = wait_done(campaign, delivery_id, worker, expect=DeliveryStatus.FAILED, timeout=240)
    target = failed.targets.get()
    assert 2 <= target.batches_done < target.batches_total
    assert held(sandbox, target) != store.expected()  # halfway: neither before nor after

    sandbox.control(error_rate=0)
    store.import_customers({"K0008": {**store.people["K0008"], "tier": "Gold"}})
    many_changes(store, 100, 120, "again")
    assert_exact(sandbox, deliver(campaign, worker), store)
