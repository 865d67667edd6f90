"""Delivery of a 1,000,000-person audience: PostgreSQL + Redis + a real worker + the sandbox.

    DEBUG=true .venv/bin/python bench/delivery.py            # create data if missing, run
    DEBUG=true .venv/bin/python bench/delivery.py --rebuild  # regenerate the customers
    DEBUG=true .venv/bin/python bench/delivery.py --runs 3   # repeat; best and median
    DEBUG=true .venv/bin/python bench/delivery.py --sync-diff --runs 3  # keep-in-sync diff only

Uses its own database ``bench_delivery`` (``BENCH_DB`` overrides; migrated on first run;
1,000,000 customers, each with a hashed email and phone, from ``generate_series``, then
VACUUM ANALYZE as autovacuum would have done) and Redis db 5 as the broker
(``CELERY_BROKER_URL`` overrides). Each run, with ``--runs N`` repeated N times:

1. the floor: a minimal script that reads the same hashed ids with COPY and posts the same
   10,000-person batches, one after another, to a fresh sandbox;
2. the product: a fresh sandbox (no QPS limit, 10,000-person batch limit, so the figure is
   the product's own cost) and one fresh Celery worker (concurrency 1); one campaign whose
   single treatment holds every customer is launched: the scheduler tick creates the
   delivery and enqueues it, the worker snapshots and sends. Measured: wall time from
   launch to the last batch acknowledged, people per second, the worker's peak memory
   (VmHWM of its processes);
3. the floor again. The ratio is to the faster of the two floors (machine load changes
   during a run; the slower floor would flatter the product).

Prints each run with the load average before and after it, then the best and the median.

Targets (issue 7): <= 30 s end to end, <= 1.5x the floor, worker peak memory < 300 MB.

``--sync-diff`` times only the keep-in-sync difference (``deliveries.ledger.target_diff``):
a target of all customers against a ledger of their email and phone hashes with 1 % churn
(0.5 % changed email, 0.25 % left, 0.25 % joined). Target (issue 11): <= 5 s at 1,000,000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = os.environ.get("BENCH_DB", "bench_delivery")
BASE = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/5")
os.environ["DATABASE_URL"] = f"{BASE}/{DB}"
os.environ["CELERY_BROKER_URL"] = BROKER
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", 1_000_000))
BATCH = 10_000
ADVERTISER = "7000000000000000001"
APP_ID, SECRET = "7300000000000000001", "sandbox-demo-secret"

GENERATE = f"""
TRUNCATE delivery_recipients, orders, devices, customers CASCADE;
INSERT INTO customers (customer_id, given_name, surname, email, phone, street, city, state,
  postal_code, country, gender, loyalty_tier, created_at, updated_at,
  email_normalized, email_sha256, phone_e164, phone_sha256)
SELECT 'C' || lpad(i::text, 8, '0'), '', '', 'user' || i || '@example.com',
  '+1213' || lpad(i::text, 7, '0'), '', '', 'CA', '', 'US', '', 'Gold', now(), now(),
  'user' || i || '@example.com',
  encode(sha256(convert_to('user' || i || '@example.com', 'UTF8')), 'hex'),
  '+1213' || lpad(i::text, 7, '0'),
  encode(sha256(convert_to('+1213' || lpad(i::text, 7, '0'), 'UTF8')), 'hex')
FROM generate_series(1, {CUSTOMERS}) AS i;
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_database(rebuild: bool) -> None:
    import psycopg

    with psycopg.connect(f"{BASE}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{DB}"')
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"], check=True, cwd=ROOT
    )
    with psycopg.connect(f"{BASE}/{DB}", autocommit=True) as conn:
        [count] = conn.execute("SELECT COUNT(*) FROM customers").fetchone() or [0]
        if rebuild or count != CUSTOMERS:
            print(f"generating {CUSTOMERS:,} customers ...", flush=True)
            conn.execute(GENERATE)
    # A store in use has been vacuumed (visibility map set, statistics current); so has
    # the snapshot table once earlier runs' snapshots were deleted.
    vacuum("customers")
    vacuum("delivery_recipients")


def start_sandbox(workdir: Path) -> tuple[subprocess.Popen, str, str]:
    import requests

    port, key = free_port(), secrets.token_hex(8)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sandbox.json"
    config.write_text(json.dumps({"qps": 0, "batch_limit": BATCH, "processing_delay_s": 0}))
    process = subprocess.Popen(
        [sys.executable, "-m", "tiktok_sandbox", "--port", str(port), "--data-dir",
         str(workdir / "sandbox"), "--config", str(config), "--quiet",
         "--enable-control", "--control-key", key],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(url + "/_sandbox/health/", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.05)
    token = requests.post(
        f"{url}/_sandbox/control/token",
        json={"app_id": APP_ID, "advertiser_ids": [ADVERTISER]},
        headers={"X-Sandbox-Control": key},
        timeout=10,
    ).json()["access_token"]
    return process, url + "/open_api/v1.3/", token


def start_worker(api: str, queue: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        TIKTOK_API_BASE_URL=api, TIKTOK_APP_ID=APP_ID, TIKTOK_APP_SECRET=SECRET,
        TIKTOK_BATCH_SIZE=str(BATCH), LOG_LEVEL="WARNING",
    )  # fmt: skip
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "-Q", queue,
         "-n", f"{queue}@%h", "--concurrency", "1", "--loglevel", "INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "ready" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"the worker did not start:\n{log.read_text()}")
        time.sleep(0.2)
    return process


def peak_rss_mb(pgid: int) -> float:
    """Largest VmHWM (peak resident memory) among the worker's processes."""
    peak = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            if os.getpgid(int(status.parent.name)) != pgid:
                continue
        except (OSError, ProcessLookupError):
            continue
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak / 1024


def make_campaign(token: str):
    from django.utils import timezone

    from campaigns.models import (
        Campaign,
        CampaignDestination,
        CampaignStatus,
        SubAudience,
        Treatment,
        TreatmentDestination,
    )  # fmt: skip
    from destinations.models import Destination
    from segments.models import Segment, SegmentKind, SegmentStatus

    Campaign.objects.all().delete()
    Destination.objects.filter(advertiser_id=ADVERTISER).update(status="disconnected")
    destination = Destination.objects.create(
        name=f"Bench {time.time():.0f}", advertiser_id=ADVERTISER, access_token=token
    )
    segment = Segment.objects.create(
        name=f"Everyone {time.time():.0f}", status=SegmentStatus.ACTIVE, kind=SegmentKind.SQL,
        sql="SELECT customer_id FROM customers",
    )  # fmt: skip
    campaign = Campaign.objects.create(
        name=f"Bench {time.time():.0f}", status=CampaignStatus.SCHEDULED, asap=True,
        next_run_at=timezone.now(),
    )  # fmt: skip
    campaign.include_segments.add(segment)
    group = SubAudience.objects.create(
        campaign=campaign, name="Remaining audience members", is_remaining=True
    )
    treatment = Treatment.objects.create(sub_audience=group, name="Treatment", split_bp=10_000)
    link = CampaignDestination.objects.create(
        campaign=campaign, destination=destination, refresh_mode="new",
        attribute_mapping=[
            {"destination_attribute": "EMAIL", "source_table": "customers",
             "source_attribute": "email", "enabled": True},
            {"destination_attribute": "PHONE", "source_table": "customers",
             "source_attribute": "phone", "enabled": True},
        ],
    )  # fmt: skip
    TreatmentDestination.objects.create(treatment=treatment, campaign_destination=link)
    return campaign


def floor(api: str, token: str) -> float:
    """Read the hashed ids with COPY and post the same batches, nothing else."""
    import psycopg
    import requests

    session = requests.Session()
    session.headers.update({"Access-Token": token})
    start = time.perf_counter()
    audience = session.post(
        api + "segment/audience/",
        json={"advertiser_id": ADVERTISER, "action": "create",
              "custom_audience_name": "floor", "id_type": "EMAIL_SHA256"},
    ).json()["data"]["audience_id"]  # fmt: skip
    ids = [audience]

    def post(batch: list) -> None:
        body = {"advertiser_ids": [ADVERTISER], "action": "add",
                "id_schema": ["EMAIL_SHA256", "PHONE_SHA256"], "batch_data": batch}  # fmt: skip
        answer = session.post(api + "segment/mapping/", json=body).json()
        assert answer["code"] == 0, answer

    with psycopg.connect(f"{BASE}/{DB}") as conn, conn.cursor() as cur:
        batch: list = []
        with cur.copy(
            "COPY (SELECT email_sha256, phone_sha256 FROM customers ORDER BY customer_id) TO STDOUT"
        ) as copy:
            for email, phone in copy.rows():
                batch.append(
                    [{"id": email, "audience_ids": ids}, {"id": phone, "audience_ids": ids}]
                )
                if len(batch) == BATCH:
                    post(batch)
                    batch = []
        if batch:
            post(batch)
    return time.perf_counter() - start


def delivery_once(workdir: Path) -> dict[str, float]:
    """One campaign delivered by a fresh worker to a fresh sandbox; its figures."""
    from django.conf import settings
    from django.utils import timezone

    from deliveries.models import Delivery, DeliveryStatus
    from deliveries.services import delivery_schedule_due

    queue = f"bench-deliveries-{secrets.token_hex(4)}"
    settings.DELIVERY_QUEUE = queue
    sandbox, api, token = start_sandbox(workdir)
    worker = start_worker(api, queue, workdir / "worker.log")
    try:
        campaign = make_campaign(token)
        launched = time.perf_counter()
        [delivery_id] = delivery_schedule_due()
        while True:
            delivery = Delivery.objects.get(pk=delivery_id)
            if delivery.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED):
                break
            if time.perf_counter() - launched > 600:
                raise SystemExit("the delivery did not finish within 10 minutes")
            time.sleep(0.05)
        # The wall clock of the bench and the worker's sent_at are the same machine's.
        target = delivery.targets.get()
        assert target.sent_at and delivery.snapshot_at and delivery.started_at
        lag = (timezone.now() - target.sent_at).total_seconds()
        wall = time.perf_counter() - launched - lag
        if delivery.status != DeliveryStatus.SUCCEEDED:
            raise SystemExit(f"delivery failed: {delivery.error}")
        figures = {
            "wall": wall,
            "snapshot": (delivery.snapshot_at - delivery.started_at).total_seconds(),
            "sending": (target.sent_at - delivery.snapshot_at).total_seconds(),
            "rss": peak_rss_mb(worker.pid),
            "people": target.people_sent,
            "batches": target.batches_done,
        }
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        sandbox.terminate()
        sandbox.wait(timeout=30)
    campaign.delete()
    vacuum("delivery_recipients")  # what autovacuum does after the snapshot's deletion
    return figures


def vacuum(table: str) -> None:
    import psycopg

    with psycopg.connect(f"{BASE}/{DB}", autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}")


def floor_once(workdir: Path) -> float:
    """The floor against its own fresh sandbox, as the delivery had."""
    sandbox, api, token = start_sandbox(workdir)
    try:
        return floor(api, token)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)


def describe(run: dict[str, float]) -> str:
    return (
        f"launch → last batch acknowledged {run['wall']:.1f} s (snapshot "
        f"{run['snapshot']:.1f} s, sending {run['sending']:.1f} s), "
        f"{run['people'] / run['wall']:,.0f} people/s, worker peak {run['rss']:.0f} MB, "
        f"floor {run['floor']:.1f} s, ratio {run['ratio']:.2f}x"
    )


CHURN_SQL = """
-- The audience as a previous delivery left it: every customer's email and phone hash.
INSERT INTO audience_ledger (audience_id, id_type, sha256, customer_id)
SELECT %(audience)s, 'EMAIL_SHA256', email_sha256, customer_id FROM customers
UNION ALL
SELECT %(audience)s, 'PHONE_SHA256', phone_sha256, customer_id FROM customers;
ANALYZE audience_ledger;
-- 1 % churn since then: 0.5 % changed their email (the ledger holds the old hash),
-- 0.25 % left the treatment, 0.25 % joined (not in the ledger yet).
UPDATE audience_ledger l SET sha256 = md5(l.sha256) || md5(l.customer_id)
FROM (SELECT customer_id FROM customers ORDER BY customer_id LIMIT %(changed)s) c
WHERE l.audience_id = %(audience)s AND l.id_type = 'EMAIL_SHA256'
  AND l.customer_id = c.customer_id;
INSERT INTO delivery_recipients (delivery_id, treatment_id, customer_id, sub_audience_id,
  is_control)
SELECT %(delivery)s, %(treatment)s, customer_id, 0, FALSE FROM customers
ORDER BY customer_id OFFSET %(left)s;
DELETE FROM audience_ledger l USING
  (SELECT customer_id FROM customers ORDER BY customer_id DESC LIMIT %(joined)s) j
WHERE l.audience_id = %(audience)s AND l.customer_id = j.customer_id;
"""


def sync_diff_once() -> dict[str, float]:
    """Time ``deliveries.ledger.target_diff`` for a keep-in-sync target of every customer
    against a ledger of the whole audience with 1 % churn (PostgreSQL, in-process)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from deliveries.ledger import target_diff
    from deliveries.models import (
        Delivery,
        DeliveryTarget,
        DeliveryTreatment,
        DestinationAudience,
    )  # fmt: skip
    from destinations.models import Destination

    campaign = make_campaign("bench-token")
    destination = Destination.objects.get(name__startswith="Bench", status="connected")
    audience = DestinationAudience.objects.create(
        destination=destination, audience_id=f"{int(time.time() * 1000)}"[-19:],
        name="Bench sync", campaign=campaign, refresh_mode="sync",
    )  # fmt: skip
    delivery = Delivery.objects.create(campaign=campaign, scheduled_for=timezone.now())
    treatment = DeliveryTreatment.objects.create(
        delivery=delivery, sub_audience_id=0, sub_audience_name="All", treatment_id=1,
        treatment_name="Treatment",
    )  # fmt: skip
    target = DeliveryTarget.objects.create(
        delivery=delivery, treatment=treatment, destination=destination,
        destination_name=destination.name, advertiser_id=ADVERTISER, refresh_mode="sync",
        id_schema=["EMAIL_SHA256", "PHONE_SHA256"], audience_name="Bench sync",
        audience_id=audience.audience_id, destination_audience=audience,
    )  # fmt: skip
    churn = CUSTOMERS // 100
    params = {"audience": audience.pk, "delivery": delivery.pk, "treatment": 1,
              "changed": churn // 2, "left": churn // 4, "joined": churn // 4}  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in filter(str.strip, CHURN_SQL.split(";")):
            lines = [ln for ln in statement.splitlines() if not ln.startswith("--")]
            cursor.execute("\n".join(lines), params)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audience_ledger")
        cursor.execute("ANALYZE delivery_recipients")
    target = DeliveryTarget.objects.select_related("treatment", "destination_audience").get(
        pk=target.pk
    )
    started = time.perf_counter()
    target_diff(target)
    seconds = time.perf_counter() - started
    target.refresh_from_db()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM delivery_changes WHERE target_id = %s", [target.pk])
        cursor.execute("DELETE FROM audience_ledger WHERE audience_id = %s", [audience.pk])
        cursor.execute("DELETE FROM delivery_recipients WHERE delivery_id = %s", [delivery.pk])
        delivery.delete()
        audience.delete()
    return {
        "seconds": seconds,
        "adds": sum(sum(r.values()) for r in target.changes.get("add", {}).values()),
        "removes": sum(sum(r.values()) for r in target.changes.get("delete", {}).values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--runs", type=int, default=1, help="repeat, then report best and median")
    parser.add_argument(
        "--sync-diff",
        action="store_true",
        help="time only the keep-in-sync difference against the ledger (1 %% churn)",
    )
    args = parser.parse_args()
    ensure_database(args.rebuild)

    import django

    django.setup()
    if args.sync_diff:
        times = []
        for n in range(1, args.runs + 1):
            load = os.getloadavg()[0]
            run = sync_diff_once()
            times.append(run["seconds"])
            print(
                f"sync diff {n}: load {load:.1f}; {CUSTOMERS:,} people, "
                f"{run['adds']:,.0f} ids to add, {run['removes']:,.0f} to remove: "
                f"{run['seconds']:.2f} s",
                flush=True,
            )
        times.sort()
        print(f"best {times[0]:.2f} s, median {times[(len(times) - 1) // 2]:.2f} s; target <= 5 s")
        return

    python = platform.python_version()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {python}")
    runs = []
    for n in range(1, args.runs + 1):
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
            # The floor runs before and after the delivery; the ratio is to the faster one.
            before = floor_once(Path(tmp) / "floor-before")
            run = delivery_once(Path(tmp) / "delivery")
            after = floor_once(Path(tmp) / "floor-after")
        run["floor"] = min(before, after)
        run["ratio"] = run["wall"] / run["floor"]
        runs.append(run)
        print(
            f"run {n}: load {load:.1f}→{os.getloadavg()[0]:.1f}; {run['people']:,.0f} people "
            f"(email + phone), {run['batches']:.0f} batches of {BATCH:,}; {describe(run)} "
            f"(floor {before:.1f} s before, {after:.1f} s after)",
            flush=True,
        )
    ranked = sorted(runs, key=lambda r: r["ratio"])
    print(f"best: {describe(ranked[0])}")
    print(f"median: {describe(ranked[(len(ranked) - 1) // 2])}")
    print("targets: <= 30 s, <= 1.5x the floor, < 300 MB")


if __name__ == "__main__":
    main()
