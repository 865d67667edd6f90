"""Fixtures for delivery tests: a customer store, a scheduled campaign sending to a TikTok
destination connected to the sandbox, expectations read from the snapshot, and a real
Celery worker process."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import (
    Campaign,
    CampaignDestination,
    CampaignStatus,
    RefreshMode,
    SubAudience,
    TimingMode,
    Treatment,
    TreatmentDestination,
)
from customers.models import Customer, Device
from deliveries.models import Delivery, DeliveryRecipient, DeliveryTarget
from destinations.models import DefaultAttribute, Destination
from destinations.services import tiktok_default_attributes
from segments.models import Segment, SegmentKind, SegmentStatus
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]
ADVERTISER = "7000000000000000001"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def make_customers(
    count: int,
    *,
    start: int = 0,
    tier: str = "Gold",
    devices: int = 0,
    bad_email_every: int = 0,
    no_phone_every: int = 0,
    nothing_every: int = 0,
) -> list[Customer]:
    """Customers C0000000… with hashed identifiers as the import computes them.

    Every n-th customer can have an invalid email (raw value, no hash), no phone, or
    nothing usable at all (shrink); `devices` IDFA devices each."""
    now = timezone.now()
    customers, device_rows = [], []
    for i in range(start, start + count):
        cid = f"C{i:07d}"
        email = f"{cid.lower()}@example.com"
        phone = f"+1213373{i % 10000:04d}"
        email_hash, phone_hash = sha(email), sha(phone)
        if bad_email_every and i % bad_email_every == 0:
            email, email_hash = f"{cid.lower()}-at-example.com", ""
        if no_phone_every and i % no_phone_every == 0:
            phone, phone_hash = "", ""
        if nothing_every and i % nothing_every == 0:
            email, email_hash, phone, phone_hash = "", "", "", ""
        customers.append(
            Customer(
                customer_id=cid,
                email=email,
                email_normalized=email if email_hash else "",
                email_sha256=email_hash,
                phone=phone,
                phone_e164=phone if phone_hash else "",
                phone_sha256=phone_hash,
                country="US",
                loyalty_tier=tier,
                created_at=now,
                updated_at=now,
            )
        )
        for d in range(devices):
            raw = str(uuid.UUID(int=i * 10 + d + 1))
            device_rows.append(
                Device(customer_id=cid, kind="IDFA", raw_id=raw, normalized_id=raw, sha256=sha(raw))
            )
    Customer.objects.bulk_create(customers, batch_size=2000)
    Device.objects.bulk_create(device_rows, batch_size=2000)
    return customers


@pytest.fixture
def tiktok_settings(settings, sandbox):
    settings.TIKTOK_API_BASE_URL = sandbox.api_base_url
    settings.TIKTOK_AUTH_URL = sandbox.auth_url
    settings.TIKTOK_APP_ID = sandbox.app_id
    settings.TIKTOK_APP_SECRET = sandbox.secret
    settings.TIKTOK_BATCH_SIZE = 100
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 0.01
    settings.DELIVERY_BACKOFF_MAX_SECONDS = 0.2
    settings.DELIVERY_MAX_ATTEMPTS = 30
    settings.DELIVERY_RATE_LIMIT_PATIENCE_SECONDS = 60
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings


@pytest.fixture
def destination(db, sandbox, tiktok_settings) -> Destination:
    sandbox.wipe()  # audience names repeat from test to test
    token = sandbox.issue_token([ADVERTISER])
    dest = Destination.objects.create(
        name="Northwind TikTok",
        advertiser_id=ADVERTISER,
        advertiser_name="Northwind Outdoor Co.",
        access_token=token,
    )
    DefaultAttribute.objects.bulk_create(tiktok_default_attributes(dest))
    return dest


def default_mapping(*, idfa: bool = False) -> list[dict]:
    return [
        {"destination_attribute": "EMAIL", "source_table": "customers",
         "source_attribute": "email", "enabled": True},
        {"destination_attribute": "PHONE", "source_table": "customers",
         "source_attribute": "phone", "enabled": True},
        {"destination_attribute": "IDFA", "source_table": "devices",
         "source_attribute": "raw_id", "enabled": idfa},
    ]  # fmt: skip


@pytest.fixture
def make_campaign(db) -> Callable[..., Campaign]:
    """A SCHEDULED campaign due now: segment = customers whose loyalty tier is not 'Gone';
    optional sub-audiences by tier; each group 90 % "Treatment" (sent) / 10 % "Control"."""

    def _make(
        destination: Destination,
        *,
        name: str = "Spring",
        groups: tuple[str, ...] = (),
        recurring: bool = False,
        refresh_mode: str = RefreshMode.SYNC,
        idfa: bool = False,
        control_bp: int = 1000,
        sql_segments: bool = False,
    ) -> Campaign:
        """``sql_segments``: the same audience written as SQL segments. They run on the
        fenced login (segments.fence), which on PostgreSQL sees committed rows only, so
        tests using them are transactional."""
        user = UserFactory()

        def tier_segment(segment_name: str, operator: str, tier: str) -> Segment:
            if sql_segments:
                comparison = "<>" if operator == "is_not" else "="
                return Segment.objects.create(
                    name=segment_name,
                    status=SegmentStatus.ACTIVE,
                    kind=SegmentKind.SQL,
                    sql=f"SELECT customer_id FROM customers WHERE loyalty_tier {comparison} "
                    f"'{tier}' AND loyalty_tier IS NOT NULL",
                )
            condition = {"type": "attribute", "attribute": "loyalty_tier",
                         "operator": operator, "value": tier}  # fmt: skip
            return Segment.objects.create(
                name=segment_name,
                status=SegmentStatus.ACTIVE,
                definition={
                    "version": 1,
                    "combinator": "and",
                    "sections": [{"combinator": "and", "conditions": [condition]}],
                    "exclusions": {"combinator": "or", "conditions": []},
                },
            )

        segment = tier_segment(f"{name} audience", "is_not", "Gone")
        campaign = Campaign.objects.create(
            name=name,
            status=CampaignStatus.SCHEDULED,
            timing_mode=TimingMode.RECURRING if recurring else TimingMode.ONE_TIME,
            asap=not recurring,
            cadence="daily",
            time_of_day=timezone.now().time().replace(microsecond=0),
            start_date=timezone.now().date(),
            timezone="UTC",
            next_run_at=timezone.now(),
            created_by=user,
            updated_by=user,
        )
        campaign.include_segments.add(segment)
        cd = CampaignDestination.objects.create(
            campaign=campaign,
            destination=destination,
            refresh_mode=refresh_mode,
            attribute_mapping=default_mapping(idfa=idfa),
        )
        subs = []
        for position, tier in enumerate(groups):
            subs.append(
                SubAudience.objects.create(
                    campaign=campaign,
                    position=position,
                    name=tier,
                    kind="segment",
                    segment=tier_segment(f"{name} {tier}", "is", tier),
                )  # fmt: skip
            )
        subs.append(
            SubAudience.objects.create(
                campaign=campaign,
                position=len(groups),
                name="Remaining audience members",
                is_remaining=True,
            )  # fmt: skip
        )
        for sub in subs:
            treatment = Treatment.objects.create(
                sub_audience=sub, position=0, name="Treatment", split_bp=10_000 - control_bp
            )
            if control_bp:
                Treatment.objects.create(
                    sub_audience=sub, position=1, name="Control", is_control=True,
                    split_bp=control_bp,
                )  # fmt: skip
            TreatmentDestination.objects.create(treatment=treatment, campaign_destination=cd)
        return campaign

    return _make


def expected_members(target: DeliveryTarget) -> dict[str, set[str]]:
    """What the audience must hold: the hashed ids of the target's treatment in its
    delivery's snapshot, read straight from the customer store."""
    ids = DeliveryRecipient.objects.filter(
        delivery_id=target.delivery_id, treatment_id=target.treatment.treatment_id
    ).values_list("customer_id", flat=True)
    customers = Customer.objects.filter(customer_id__in=list(ids))
    members: dict[str, set[str]] = {
        "EMAIL_SHA256": {c.email_sha256 for c in customers if c.email_sha256},
        "PHONE_SHA256": {c.phone_sha256 for c in customers if c.phone_sha256},
    }
    if "IDFA_SHA256" in target.id_schema:
        members["IDFA_SHA256"] = set(
            Device.objects.filter(customer_id__in=list(ids), kind="IDFA").values_list(
                "sha256", flat=True
            )
        )
    return {k: v for k, v in members.items() if v}


def mapping_requests(sandbox, action: str | None = None) -> list[dict]:
    """segment/mapping/ requests TikTok accepted since the sandbox's last reset."""
    return [
        r
        for r in sandbox.request_log()
        if r.get("path", "").endswith("segment/mapping/")
        and r.get("code") == 0
        and (action is None or r.get("action") == action)
    ]


def people_sent(sandbox, action: str) -> int:
    return sum(r["counts"]["people"] for r in mapping_requests(sandbox, action))


# ---- a real Celery worker --------------------------------------------------------------


class WorkerProcess:
    """`celery -A config worker` on its own queue, seeing the test database."""

    def __init__(self, env: dict[str, str], queue: str, log_path: Path) -> None:
        self.env, self.queue, self.log_path = env, queue, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            str(ROOT / ".venv" / "bin" / "celery"), "-A", "config", "worker",
            "-Q", self.queue, "-n", f"{self.queue}@%h", "--pool", "prefork",
            "--concurrency", "1", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and its pool child, no cleanup."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def worker(settings, sandbox, tiktok_settings, tmp_path) -> Iterator[WorkerProcess]:
    if connection.vendor != "postgresql":
        pytest.skip(
            "real-worker tests start their worker against PostgreSQL only (a second process "
            "writing SQLite while the test holds it fights over the file lock); CI runs them"
        )
    queue = f"deliveries-test-{uuid.uuid4().hex[:8]}"
    settings.DELIVERY_QUEUE = queue
    # A killed worker's delivery is taken over once its heartbeat is this old.
    settings.DELIVERY_STALE_SECONDS = 4
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}"
    if db.get("PASSWORD"):
        url += f":{db['PASSWORD']}"
    url += f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ)
    env.update(
        DEBUG="true",
        DATABASE_URL=url,
        DELIVERY_QUEUE=queue,
        VAR_DIR=str(settings.VAR_DIR),
        SECRET_KEY=settings.SECRET_KEY,
        FIELD_ENCRYPTION_KEYS=",".join(settings.FIELD_ENCRYPTION_KEYS),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        TIKTOK_API_BASE_URL=sandbox.api_base_url,
        TIKTOK_AUTH_URL=sandbox.auth_url,
        TIKTOK_APP_ID=sandbox.app_id,
        TIKTOK_APP_SECRET=sandbox.secret,
        TIKTOK_BATCH_SIZE=str(settings.TIKTOK_BATCH_SIZE),
        TIKTOK_HTTP_TIMEOUT="5",
        DELIVERY_BACKOFF_BASE_MS="10",
        DELIVERY_BACKOFF_MAX_SECONDS="1",
        DELIVERY_MAX_ATTEMPTS="30",
        DELIVERY_STALE_SECONDS=str(settings.DELIVERY_STALE_SECONDS),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        LOG_LEVEL="INFO",
    )
    handle = WorkerProcess(env, queue, tmp_path / "worker.log")
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def wait_for(
    predicate: Callable[[], object], *, timeout: float = 90, what: str = "", worker=None
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    message = f"timed out after {timeout} s waiting for {what}"
    if worker is not None:
        message += f"\n--- worker log ---\n{worker.log()}"
    raise AssertionError(message)


def delivery_of(campaign: Campaign) -> Delivery:
    return Delivery.objects.filter(campaign=campaign).order_by("-id").first()
