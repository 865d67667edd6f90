"""Faults with a real worker: a broker outage mid-delivery, a snapshot slower than the stale
period, a segment that breaks after the campaign was scheduled.

Each test runs its own Redis server (never the machine's shared one) so it can stop and
start it. Expected members come from the raw values the customers were made of
(``raw_expected``), not from the product's snapshot or store.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import CampaignEvent, CampaignStatus
from config.celery import app as celery_app
from customers.models import Customer
from deliveries.models import Delivery, DeliveryStatus, DeliveryTarget
from deliveries.services import delivery_retry
from deliveries.tasks import schedule_deliveries
from notifications.models import Notification
from segments.models import Segment, SegmentKind
from tests.deliveries.conftest import (
    ADVERTISER,
    ROOT,
    WorkerProcess,
    delivery_of,
    make_customers,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


# ---- an independent oracle ---------------------------------------------------------------


def raw_expected(first: int, count: int, *, treatment_share: int = 10_000) -> dict[str, set]:
    """The hashes TikTok must hold for customers C{first}..C{first+count-1} made by
    ``make_customers`` with no faults: SHA-256 of the lowercase email and of the E.164
    phone, computed here from the values the test wrote. (Campaigns here send everyone:
    no control group.)"""
    assert treatment_share == 10_000
    emails, phones = set(), set()
    for i in range(first, first + count):
        cid = f"C{i:07d}"
        emails.add(hashlib.sha256(f"{cid.lower()}@example.com".encode()).hexdigest())
        phones.add(hashlib.sha256(f"+1213373{i % 10000:04d}".encode()).hexdigest())
    return {"EMAIL_SHA256": emails, "PHONE_SHA256": phones}


def held(sandbox, target: DeliveryTarget) -> dict[str, set]:
    members = sandbox.audience_members(ADVERTISER, target.audience_id)
    return {k: set(v) for k, v in members.items() if v}


def audience_names(sandbox) -> list[str]:
    return [a["name"] for a in sandbox.audiences(ADVERTISER)]


# ---- a private Redis ---------------------------------------------------------------------


class PrivateRedis:
    """redis-server on a free loopback port, without persistence: stopping it loses every
    queued message, as a crashed or restarted broker without persistence does."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            shutil.which("redis-server") or "redis-server", "--port", str(self.port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path, settings, monkeypatch) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    # This process (the scheduler's stand-in) and the worker both use it. Celery reads
    # the environment variable before its configuration.
    settings.CELERY_BROKER_URL = server.url
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    broker_before = celery_app.conf.broker_url
    celery_app.conf.broker_url = server.url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    try:
        yield server
    finally:
        server.stop()
        monkeypatch.undo()
        celery_app.conf.broker_url = broker_before  # later tests enqueue on the usual broker
        celery_app._pool = None
        celery_app.amqp._producer_pool = None


class ProductionWorker(WorkerProcess):
    """The worker as the Procfile and docker compose run it: with gossip, mingle and
    events heartbeats (their broadcast channels are what a broker outage breaks)."""

    def start(self) -> None:
        command = [
            str(ROOT / ".venv" / "bin" / "celery"), "-A", "config", "worker",
            "-Q", self.queue, "-n", f"{self.queue}@%h", "--pool", "prefork",
            "--concurrency", "2", "--loglevel", "INFO",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


@pytest.fixture
def production_worker(worker, tmp_path) -> Iterator[WorkerProcess]:
    worker.stop()  # the same environment, run the production way
    handle = ProductionWorker(worker.env, worker.queue, tmp_path / "production-worker.log")
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def assert_worker_alive(worker: WorkerProcess) -> None:
    assert worker.process is not None and worker.process.poll() is None, worker.log()
    assert "Unrecoverable error" not in worker.log_path.read_text(errors="replace")


# ---- the broker goes away mid-delivery -----------------------------------------------------


def test_the_worker_outlives_a_30_s_broker_outage_and_both_deliveries_finish_exact(
    private_redis, sandbox, destination, make_campaign, production_worker
):
    worker = production_worker
    if connection.vendor != "postgresql":
        pytest.skip("real-worker tests run on PostgreSQL")
    make_customers(3000)
    first = make_campaign(destination, name="Outage", control_bp=0, sql_segments=True)
    sandbox.control(latency_ms=150)  # about 5 s of sending: Redis stops in the middle
    assert len(schedule_deliveries()["created"]) == 1
    wait_for(
        lambda: DeliveryTarget.objects.filter(batches_done__gte=3).exists(),
        what="three batches",
        worker=worker,
    )
    private_redis.stop()
    outage_started = time.monotonic()

    # A campaign scheduled during the outage: its delivery is created, but its message
    # cannot be sent (nor would it survive: the broker keeps nothing).
    make_customers(200, start=7000, tier="Silver")
    second = make_campaign(destination, name="During the outage", control_bp=0, sql_segments=True)
    Segment.objects.filter(name="During the outage audience").update(
        kind=SegmentKind.SQL, sql="SELECT customer_id FROM customers WHERE loyalty_tier = 'Silver'"
    )
    Segment.objects.filter(name="Outage audience").update(
        kind=SegmentKind.SQL, sql="SELECT customer_id FROM customers WHERE loyalty_tier = 'Gold'"
    )
    created = schedule_deliveries()["created"]  # must not hang or raise on a dead broker
    assert len(created) == 1
    time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
    assert_worker_alive(worker)
    private_redis.start()

    def both_done() -> bool:
        schedule_deliveries()  # the beat: the watchdog enqueues the lost message again
        return all(
            (d := delivery_of(c)) is not None and d.status == DeliveryStatus.SUCCEEDED
            for c in (first, second)
        )

    wait_for(both_done, timeout=120, what="both deliveries after the outage", worker=worker)
    sandbox.control(latency_ms=0)
    assert_worker_alive(worker)
    a, b = delivery_of(first), delivery_of(second)
    assert a.runs == 1  # carried on through the outage, never run twice
    assert held(sandbox, a.targets.get()) == raw_expected(0, 3000)
    assert held(sandbox, b.targets.get()) == raw_expected(7000, 200)
    names = audience_names(sandbox)
    assert names.count("Outage") == 1 and names.count("During the outage") == 1


# ---- a slow snapshot -------------------------------------------------------------------


def test_a_snapshot_slower_than_the_stale_period_runs_once(
    private_redis, sandbox, destination, make_campaign, worker, tmp_path
):
    """The customers table is locked while the snapshot runs, so the segment takes three
    stale periods; a second worker is ready to take the delivery over and the watchdog
    ticks all along. The heartbeat keeps the lease: one run, no takeover."""
    import psycopg

    make_customers(500)
    campaign = make_campaign(destination, name="Slow", control_bp=0, sql_segments=True)
    second = WorkerProcess(worker.env, worker.queue, tmp_path / "worker2.log")
    second.start()
    db = connection.settings_dict
    locker = psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"] or "postgres",
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        password=db.get("PASSWORD") or None,
    )
    try:
        locker.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        schedule_deliveries()
        delivery = wait_for(
            lambda: (d := delivery_of(campaign)) and d.status == DeliveryStatus.RUNNING and d,
            what="the delivery to start",
            worker=worker,
        )
        hold_until = time.monotonic() + 3 * 4  # three stale periods (DELIVERY_STALE_SECONDS=4)
        while time.monotonic() < hold_until:
            schedule_deliveries()  # the watchdog, ticking
            delivery.refresh_from_db()
            assert delivery.status == DeliveryStatus.RUNNING and delivery.snapshot_at is None
            assert delivery.runs == 1
            time.sleep(0.5)
        locker.rollback()  # the segment can finish now
        wait_for(
            lambda: delivery_of(campaign).status == DeliveryStatus.SUCCEEDED,
            what="the slow delivery",
            worker=worker,
        )
    finally:
        locker.close()
        second.stop()
    delivery = delivery_of(campaign)
    assert delivery.runs == 1
    assert not CampaignEvent.objects.filter(campaign=campaign, kind="delivery_requeued").exists()
    assert held(sandbox, delivery.targets.get()) == raw_expected(0, 500)
    assert audience_names(sandbox).count("Slow") == 1


# ---- a segment that breaks after scheduling ---------------------------------------------------


def test_a_segment_broken_after_scheduling_ends_the_delivery_as_error_within_a_tick(
    private_redis, sandbox, destination, make_campaign, worker, settings
):
    make_customers(300)
    campaign = make_campaign(destination, name="Broken", control_bp=0, sql_segments=True)
    segment = Segment.objects.get(name="Broken audience")
    good_sql = segment.sql
    # Changed underneath the scheduled campaign: the column does not exist.
    Segment.objects.filter(pk=segment.pk).update(
        kind=SegmentKind.SQL, sql="SELECT customer_id FROM customers WHERE loyalty_level <> 'Gone'"
    )
    tick = time.monotonic()
    schedule_deliveries()
    delivery = wait_for(
        lambda: (d := delivery_of(campaign)) and d.status == DeliveryStatus.FAILED and d,
        timeout=30,
        what="the delivery to fail",
        worker=worker,
    )
    assert time.monotonic() - tick < settings.DELIVERY_SCHEDULER_SECONDS
    assert "“Broken audience”" in delivery.error and "loyalty_level" in delivery.error
    assert "Retry" in delivery.what_to_do
    assert "Traceback" not in delivery.error
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ERROR
    assert Notification.objects.filter(title__contains="Broken").exists()

    # Fixed, then Retry: the delivery takes its snapshot again and sends exactly.
    Segment.objects.filter(pk=segment.pk).update(sql=good_sql)
    delivery_retry(delivery=delivery, user=None)
    wait_for(
        lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED,
        what="the retried delivery",
        worker=worker,
    )
    delivery.refresh_from_db()
    assert held(sandbox, delivery.targets.get()) == raw_expected(0, 300)
    assert Customer.objects.count() == 300
    assert delivery.finished_at is not None and delivery.finished_at <= timezone.now()
