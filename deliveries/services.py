"""Writes for deliveries: scheduling, the snapshot, sending with checkpoints, pausing for
reauthorization, polling TikTok's matching, notifications.

Exactly once, safe to interrupt:

- A due campaign gets one ``Delivery`` per slot (unique (campaign, scheduled_for)), created
  in the same transaction as the campaign's SCHEDULED → RUNNING claim; the task is
  enqueued after commit.
- A worker runs a delivery only under a lease (a conditional UPDATE); every checkpoint is
  a heartbeat conditional on that lease, so a stalled worker that wakes up after another
  took over stops at its next batch.
- The snapshot is one transaction: it either exists whole or not at all.
- Each target records its audience-create intent before calling TikTok and the audience
  id right after; a run that finds the intent but no id looks the audience up by name.
- Batches are consecutive runs of the ordered snapshot; the checkpoint is the last
  customer id TikTok acknowledged. Re-sending the batch in flight is harmless (TikTok's
  add and delete are idempotent); no batch is ever skipped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, Literal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from campaigns.assignment import AssignmentError, assignment_sql
from campaigns.models import (
    Campaign,
    CampaignStatus,
    RefreshMode,
    SubAudience,
    TimingMode,
    TreatmentDestination,
)
from campaigns.services import (
    STEPS,
    CampaignStateError,
    campaign_finish_run,
    campaign_segment_problems,
    campaign_start_run,
)
from deliveries.ledger import Batch, audience_for, ledger_apply, next_batch, target_diff
from deliveries.models import (
    Delivery,
    DeliveryStatus,
    DeliveryTarget,
    DeliveryTreatment,
    DestinationAudience,
    TargetPhase,
    TargetStatus,
)
from deliveries.selectors import target_summary
from destinations.models import Destination, DestinationStatus
from destinations.services import destination_client
from destinations.tiktok.adapter import (
    AudienceAdapter,
    GaveUp,
    MappingProblem,
    audience_name_for,
    id_schema_for,
)
from destinations.tiktok.client import AudienceLookup
from destinations.tiktok.errors import (
    AppConfigurationError,
    NotFoundError,
    ReauthorizationRequired,
    TikTokError,
)
from notifications.models import NotificationLevel
from notifications.services import notify
from segments.compiler import DefinitionError
from segments.fence import fresh_results
from segments.runner import SegmentQueryError
from segments.sqlcheck import SqlSegmentError

logger = logging.getLogger(__name__)

MAX_RUNS_AFTER_CRASH = 5


class DeliveryError(Exception):
    """A delivery action is not possible now; the message says why."""


class LeaseLost(Exception):
    """Another worker took this delivery over (this one had stalled)."""


class SnapshotProblem(Exception):
    """The campaign's audience cannot be computed; the message says what to fix."""


# ---- scheduling -------------------------------------------------------------------------


def _enqueue(delivery_id: int) -> None:
    """Hand the delivery to a worker. A broker that cannot be reached is logged, not
    raised: the row is committed, and the watchdog (delivery_requeue_stalled) enqueues it
    again once the broker is back."""
    from deliveries.tasks import run_delivery

    try:
        run_delivery.apply_async(args=[delivery_id], queue=settings.DELIVERY_QUEUE)
    except Exception:
        logger.warning(
            "could not enqueue delivery %s (broker unreachable?); the watchdog retries it",
            delivery_id,
            exc_info=True,
        )


def delivery_schedule_due(*, now: dt.datetime | None = None, limit: int = 100) -> list[int]:
    """Create and enqueue a delivery for every campaign whose next_run_at has come.

    Safe to run in several schedulers at once: the campaign claim is a conditional UPDATE
    and the delivery row is unique per slot; whoever loses simply skips the campaign.
    A missed slot yields one delivery; the campaign's next slot is computed from now.
    """
    now = now or timezone.now()
    due = list(
        Campaign.objects.filter(status=CampaignStatus.SCHEDULED, next_run_at__lte=now)
        .order_by("next_run_at")
        .values_list("pk", flat=True)[:limit]
    )
    created = []
    for campaign_id in due:
        try:
            with transaction.atomic():
                campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
                if (
                    campaign.status != CampaignStatus.SCHEDULED
                    or campaign.next_run_at is None
                    or campaign.next_run_at > now
                ):
                    continue
                delivery = Delivery.objects.create(
                    campaign=campaign, scheduled_for=campaign.next_run_at, enqueued_at=now
                )
                campaign_start_run(campaign, now=now)
                transaction.on_commit(partial(_enqueue, delivery.pk))
        except (IntegrityError, CampaignStateError):
            logger.info("campaign %s was claimed by another scheduler", campaign_id)
            continue
        created.append(delivery.pk)
    return created


def delivery_requeue_stalled(*, now: dt.datetime | None = None) -> list[int]:
    """The watchdog (every scheduler tick): no delivery stays Running without a live worker.

    A running delivery's worker beats its heartbeat every few seconds while it is alive
    (``Run.keepalive``), also during a long snapshot. Once the heartbeat is older than
    DELIVERY_STALE_SECONDS the worker is gone (killed, out of memory, its machine lost):
    the delivery is queued again to continue from its checkpoints, or, after
    MAX_RUNS_AFTER_CRASH runs, it fails with Retry, so a delivery that kills its worker
    does not loop forever. Both are written where people see them: the delivery's note on
    the campaign page and the campaign's history.

    Queued deliveries whose message was lost (broker outage, a broker restarted without its
    data) are enqueued again. Each at most once per stale period, so a long outage of the
    workers does not pile up messages. Returns the deliveries enqueued again.
    """
    now = now or timezone.now()
    stale_seconds = settings.DELIVERY_STALE_SECONDS
    stale = now - dt.timedelta(seconds=stale_seconds)
    not_recently_enqueued = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    dead = Q(status=DeliveryStatus.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at=None))
    requeued: list[int] = []
    failed: list[int] = []
    for delivery in (
        Delivery.objects.filter(dead).filter(not_recently_enqueued).select_related("campaign")
    ):
        last = (
            timezone.localtime(delivery.heartbeat_at).strftime("%H:%M:%S")
            if delivery.heartbeat_at
            else "never"
        )
        if delivery.runs >= MAX_RUNS_AFTER_CRASH:
            if _watchdog_fail(delivery, last):
                failed.append(delivery.pk)
            continue
        note = (
            f"The worker running this delivery stopped (last sign of life: {last}); the "
            f"watchdog queued it again (run {delivery.runs} of at most "
            f"{MAX_RUNS_AFTER_CRASH}). It continues where it stopped: batches TikTok "
            "acknowledged are not sent again."
        )
        with transaction.atomic():
            if not (
                Delivery.objects.filter(pk=delivery.pk, lease=delivery.lease)
                .filter(dead)
                .filter(not_recently_enqueued)
                .update(status=DeliveryStatus.QUEUED, lease="", enqueued_at=now, error=note)
            ):
                continue  # a worker claimed it meanwhile
            _event(
                delivery.campaign,
                None,
                "delivery_requeued",
                f"Watchdog: delivery {delivery.pk} had no live worker (last sign of life "
                f"{last}); queued again, run {delivery.runs + 1} of at most "
                f"{MAX_RUNS_AFTER_CRASH}",
            )
            transaction.on_commit(partial(_enqueue, delivery.pk))
        requeued.append(delivery.pk)
    lost = Delivery.objects.filter(status=DeliveryStatus.QUEUED).filter(not_recently_enqueued)
    for delivery_id in lost.values_list("pk", flat=True):
        with transaction.atomic():
            if (
                Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.QUEUED)
                .filter(not_recently_enqueued)
                .update(enqueued_at=now)
            ):
                transaction.on_commit(partial(_enqueue, delivery_id))
                requeued.append(delivery_id)
    if requeued:
        logger.warning("watchdog: enqueued again deliveries %s", requeued)
    if failed:
        logger.warning("watchdog: failed deliveries %s (their worker kept dying)", failed)
    return requeued


def _watchdog_fail(delivery: Delivery, last: str) -> bool:
    """End a delivery whose worker died MAX_RUNS_AFTER_CRASH times as failed (Retry)."""
    run = Run(delivery, delivery.lease)
    try:
        _finish(
            run,
            failure=(
                f"The worker running this delivery stopped {delivery.runs} times before it "
                f"finished (last sign of life: {last}); the watchdog ended it.",
                "Press Retry: it continues where it stopped and batches TikTok acknowledged "
                "are not sent again. If it stops again, ask an administrator to look at the "
                "worker's log (a crash or running out of memory).",
            ),
        )
    except LeaseLost:
        return False  # a worker claimed it meanwhile
    return True


def delivery_resume_reauthorized(*, now: dt.datetime | None = None) -> list[int]:
    """Deliveries paused for reauthorization go on once every destination they wait for
    is connected again; targets whose destination was disconnected fail instead."""
    now = now or timezone.now()
    resumed = []
    for delivery in Delivery.objects.filter(status=DeliveryStatus.WAITING_FOR_REAUTH):
        waiting = list(
            delivery.targets.filter(status=TargetStatus.WAITING_FOR_REAUTH).select_related(
                "destination"
            )
        )
        statuses = {t.destination.status for t in waiting}
        if DestinationStatus.NEEDS_REAUTH in statuses:
            continue
        with transaction.atomic():
            if not Delivery.objects.filter(
                pk=delivery.pk, status=DeliveryStatus.WAITING_FOR_REAUTH
            ).update(status=DeliveryStatus.QUEUED, enqueued_at=now, lease=""):
                continue
            for target in waiting:
                if target.destination.status == DestinationStatus.DISCONNECTED:
                    _target_fail(
                        target,
                        f"Destination “{target.destination_name}” was disconnected while "
                        "this delivery waited for its reauthorization.",
                        "Connect the TikTok account again, then deliver the campaign again.",
                    )
                else:
                    DeliveryTarget.objects.filter(pk=target.pk).update(
                        status=TargetStatus.SENDING, error="", what_to_do=""
                    )
            transaction.on_commit(partial(_enqueue, delivery.pk))
        resumed.append(delivery.pk)
    return resumed


def delivery_retry(*, delivery: Delivery, user: Any) -> Delivery:
    """Send a failed delivery's unfinished targets again, from their checkpoints."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=delivery.campaign_id)
        if delivery.status != DeliveryStatus.FAILED:
            raise DeliveryError("Only a failed delivery can be retried.")
        if Delivery.objects.filter(
            campaign=campaign,
            status__in=[
                DeliveryStatus.QUEUED,
                DeliveryStatus.RUNNING,
                DeliveryStatus.WAITING_FOR_REAUTH,
            ],
        ).exists():
            raise DeliveryError("Another delivery of this campaign is in progress.")
        if campaign.status != CampaignStatus.ERROR:
            raise DeliveryError(
                "The campaign is no longer in error (it was rescheduled or edited); "
                "its next delivery sends everything anew."
            )
        Campaign.objects.filter(pk=campaign.pk).update(
            status=CampaignStatus.RUNNING, error_reason=""
        )
        failed = delivery.targets.filter(status=TargetStatus.FAILED)
        failed.filter(audience_id="", batches_done=0).update(
            status=TargetStatus.PENDING, error="", what_to_do=""
        )
        failed.update(status=TargetStatus.SENDING, error="", what_to_do="")
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.QUEUED,
            enqueued_at=timezone.now(),
            finished_at=None,
            error="",
            what_to_do="",
            lease="",
        )
        _event(campaign, user, "delivery_retried", f"Delivery {delivery.pk} retried")
        transaction.on_commit(partial(_enqueue, delivery.pk))
    delivery.refresh_from_db()
    return delivery


def audience_reconcile(*, audience: DestinationAudience, user: Any) -> Delivery:
    """Bring a keep-in-sync audience back to the campaign's current state: deliver the
    campaign now. Its snapshot is taken anew, and the difference against each audience's
    ledger adds what is missing and removes what should not be there."""
    now = timezone.now()
    with transaction.atomic():
        if audience.campaign_id is None or audience.treatment_id is None:
            raise DeliveryError("The campaign of this audience was deleted: nothing to match.")
        campaign = Campaign.objects.select_for_update().get(pk=audience.campaign_id)
        if not TreatmentDestination.objects.filter(
            treatment_id=audience.treatment_id,
            campaign_destination__destination_id=audience.destination_id,
            campaign_destination__refresh_mode=RefreshMode.SYNC,
        ).exists():
            raise DeliveryError(
                "The campaign no longer keeps this audience in sync (its treatment or "
                "destination changed, or it creates a new audience each delivery)."
            )
        return _deliver_now(
            campaign,
            user,
            now=now,
            kind="audience_reconciled",
            message=f"Reconcile of TikTok audience {audience.audience_id}",
        )


def campaign_run_now(*, campaign: Campaign, user: Any) -> Delivery:
    """Deliver a recurring campaign now ("Run now"), without changing its schedule: the
    next delivery after this one is the next slot of the same recurrence."""
    now = timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.timing_mode != TimingMode.RECURRING:
            raise DeliveryError("Run now is for recurring campaigns; schedule this one ASAP.")
        return _deliver_now(campaign, user, now=now, kind="run_now", message="Run now")


def _deliver_now(
    campaign: Campaign, user: Any, *, now: dt.datetime, kind: str, message: str
) -> Delivery:
    """A delivery of ``campaign`` now (the caller holds its row lock): refused while one is
    in progress or when the campaign is not scheduled or delivered."""
    if Delivery.objects.filter(
        campaign=campaign,
        status__in=[
            DeliveryStatus.QUEUED,
            DeliveryStatus.RUNNING,
            DeliveryStatus.WAITING_FOR_REAUTH,
        ],
    ).exists():
        raise DeliveryError(
            "A delivery of this campaign is in progress; it brings the audience up to date "
            "when it finishes."
        )
    if campaign.status not in (
        CampaignStatus.SCHEDULED,
        CampaignStatus.DELIVERED,
        CampaignStatus.ERROR,
    ):
        raise DeliveryError(
            f"A {campaign.get_status_display().lower()} campaign is not delivered; "
            "schedule it first."
        )
    # The campaign's own run machinery: SCHEDULED → RUNNING now → its usual end state.
    # A recurring campaign's next slot is computed from now again when this one ends.
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SCHEDULED, next_run_at=now, error_reason=""
    )
    campaign.refresh_from_db()
    delivery = Delivery.objects.create(campaign=campaign, scheduled_for=now, enqueued_at=now)
    campaign_start_run(campaign, now=now)
    _event(campaign, user, kind, f"{message}: delivery {delivery.pk}")
    transaction.on_commit(partial(_enqueue, delivery.pk))
    return delivery


def _event(campaign: Campaign, user: Any, kind: str, message: str) -> None:
    from campaigns.models import CampaignEvent

    CampaignEvent.objects.create(campaign=campaign, actor=user, kind=kind, message=message)


# ---- running ----------------------------------------------------------------------------


def _claim(delivery_id: int, now: dt.datetime) -> str | None:
    lease = uuid.uuid4().hex
    stale = now - dt.timedelta(seconds=settings.DELIVERY_STALE_SECONDS)
    claimed = (
        Delivery.objects.filter(pk=delivery_id)
        .filter(
            Q(status=DeliveryStatus.QUEUED)
            | Q(status=DeliveryStatus.RUNNING, heartbeat_at__lt=stale)
            | Q(status=DeliveryStatus.RUNNING, heartbeat_at=None)
        )
        .update(
            status=DeliveryStatus.RUNNING,
            lease=lease,
            heartbeat_at=now,
            runs=F("runs") + 1,
        )
    )
    return lease if claimed else None


class Run:
    """One worker's turn at a delivery: the lease, the heartbeat, interruptible waits.

    While the run is alive, ``keepalive`` beats the heartbeat from a thread of its own (on
    its own database connection), so a lease is never taken over while its holder lives,
    however long one step takes (a slow segment in the snapshot, a long TikTok backoff).
    Only a dead worker's heartbeat goes stale.
    """

    def __init__(self, delivery: Delivery, lease: str) -> None:
        self.delivery = delivery
        self.lease = lease
        self.lost = threading.Event()

    def beat(self) -> None:
        if self.lost.is_set() or not Delivery.objects.filter(
            pk=self.delivery.pk, lease=self.lease, status=DeliveryStatus.RUNNING
        ).update(heartbeat_at=timezone.now()):
            self.lost.set()
            raise LeaseLost(f"delivery {self.delivery.pk} was taken over by another worker")

    @contextlib.contextmanager
    def keepalive(self) -> Iterator[None]:
        if connection.in_atomic_block:
            # Another connection could not see this transaction's rows (tests, a caller's
            # transaction): the checkpoints' own beats are all there is.
            yield
            return
        interval = heartbeat_interval()
        stop = threading.Event()

        def beat_until_stopped() -> None:
            try:
                while not stop.wait(interval):
                    try:
                        alive = Delivery.objects.filter(
                            pk=self.delivery.pk, lease=self.lease, status=DeliveryStatus.RUNNING
                        ).update(heartbeat_at=timezone.now())
                    except DatabaseError:
                        # The database is unreachable for now; the run itself will notice.
                        logger.warning("delivery %s: heartbeat failed", self.delivery.pk)
                        continue
                    if not alive:
                        self.lost.set()
                        return
            finally:
                connections.close_all()

        beater = threading.Thread(
            target=beat_until_stopped, name=f"delivery-{self.delivery.pk}-heartbeat", daemon=True
        )
        beater.start()
        try:
            yield
        finally:
            stop.set()
            beater.join(timeout=interval + 10)

    def sleep(self, seconds: float) -> None:
        """Wait, keeping the heartbeat fresh (backoff waits can be long)."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 5.0))
            if left > 5.0:
                self.beat()


def heartbeat_interval() -> float:
    """Several beats per stale period, so one slow UPDATE never makes a live run stale."""
    return max(0.2, min(settings.DELIVERY_STALE_SECONDS / 4, 10.0))


SNAPSHOT_WHAT_TO_DO = (
    "Fix the segment named above (or unschedule the campaign and choose another one), then "
    "press Retry."
)


def delivery_run(*, delivery_id: int) -> str:
    """Do (or continue) one delivery. Returns what happened, for the task's log.

    Nothing hangs: a problem with the campaign's audience (a segment whose SQL no longer
    runs, a statement timeout) or any unexpected error ends the delivery as failed, with
    the reason, what to do, a notification and Retry. Only a lost database connection is
    left to the watchdog, which runs it again (at most MAX_RUNS_AFTER_CRASH times).
    """
    now = timezone.now()
    lease = _claim(delivery_id, now)
    if lease is None:
        return "not claimed: finished, paused, or running in another worker"
    delivery = Delivery.objects.select_related("campaign").get(pk=delivery_id)
    if delivery.started_at is None:
        Delivery.objects.filter(pk=delivery.pk).update(started_at=now)
    run = Run(delivery, lease)
    try:
        with run.keepalive():
            if delivery.snapshot_at is None:
                try:
                    delivery_snapshot(delivery=delivery)
                except SnapshotProblem as exc:
                    run.beat()  # a run whose lease was taken over reports nothing
                    _finish(run, failure=(str(exc), SNAPSHOT_WHAT_TO_DO))
                    return "failed: snapshot"
                run.beat()
            for target in delivery.targets.filter(
                status__in=[TargetStatus.PENDING, TargetStatus.SENDING]
            ).select_related("treatment", "destination", "previous"):
                _send_target(run, target)
            return _finish(run)
    except LeaseLost as exc:
        logger.warning("%s", exc)
        return "lease lost"
    except Exception as exc:
        if _connection_lost(exc):
            raise  # the watchdog queues it again once its heartbeat is stale
        logger.exception("delivery %s stopped on an unexpected error", delivery_id)
        with contextlib.suppress(LeaseLost):
            _finish(
                run,
                failure=(
                    f"The delivery stopped on an unexpected error ({type(exc).__name__}).",
                    "Press Retry: it continues where it stopped and batches TikTok "
                    "acknowledged are not sent again. If it happens again, ask an "
                    "administrator to look at the worker's log.",
                ),
            )
        return "failed: unexpected error"


def _connection_lost(exc: BaseException) -> bool:
    """A lost database connection (restart, network), not a query the database refused."""
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, OperationalError):
        if connection.vendor == "sqlite":
            return "locked" in str(exc)  # busy, not lost; an interrupted query is not either
        state = getattr(exc.__cause__, "sqlstate", None) or ""
        # 08: connection exception; 57P0x: admin/crash shutdown; None: no answer at all.
        return not state or state.startswith(("08", "57P"))
    return False


def _ordered_groups(campaign: Campaign) -> list[SubAudience]:
    return list(campaign.sub_audiences.prefetch_related("treatments"))


def delivery_snapshot(*, delivery: Delivery) -> None:
    """Record who is in which sub-audience and treatment (one INSERT … SELECT), the
    treatments as they are now, and one target per treatment × destination with its
    delivery summary. All in one transaction."""
    campaign = delivery.campaign
    try:
        with fresh_results():  # SQL segments are evaluated again, behind their fence
            compiled = assignment_sql(campaign)
        _write_snapshot(delivery, campaign, compiled)
    except SnapshotProblem:
        raise
    except AssignmentError as exc:
        raise SnapshotProblem(f"The campaign's audience cannot be computed: {exc}") from exc
    except (SegmentQueryError, SqlSegmentError, DefinitionError) as exc:
        raise SnapshotProblem(_segment_problem(campaign, str(exc))) from exc
    except DatabaseError as exc:
        if _connection_lost(exc):
            raise
        if _timed_out(exc):
            seconds = _snapshot_timeout_ms() / 1000
            raise SnapshotProblem(
                f"Taking the audience snapshot took longer than {seconds:g} s and was stopped."
                " Make the campaign's segments simpler, or ask an administrator "
                "to raise SEGMENT_QUERY_TIMEOUT_MS."
            ) from exc
        logger.warning("delivery %s: snapshot refused by the database: %s", delivery.pk, exc)
        raise SnapshotProblem(
            _segment_problem(campaign, "the database refused the audience query")
        ) from exc


def _snapshot_timeout_ms() -> int:
    return int(settings.SEGMENT_QUERY_TIMEOUT_MS)


def _timed_out(exc: DatabaseError) -> bool:
    state = getattr(exc.__cause__, "sqlstate", None) or ""
    return state == "57014" or "interrupted" in str(exc)  # PostgreSQL / SQLite


def _segment_problem(campaign: Campaign, fallback: str) -> str:
    """Name the segment that cannot run, and the step using it (the Schedule check), so
    the message says what to fix; the database's raw text never reaches people."""
    try:
        problems = campaign_segment_problems(campaign)
    except DatabaseError:
        problems = {}
    if not problems:
        return f"The campaign's audience could not be computed: {fallback}."
    titles = dict(STEPS)
    return " ".join(
        f"{titles.get(step, step)}: {message}" for step, messages in problems.items()
        for message in messages
    )  # fmt: skip


@contextlib.contextmanager
def _statement_timeout(limit_ms: int) -> Iterator[None]:
    """Bound every statement of the snapshot's transaction (PostgreSQL: SET LOCAL; SQLite:
    a progress handler, since it has no statement timeout)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(limit_ms)}")
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    deadline = time.monotonic() + limit_ms / 1000
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 20_000)
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)


def _write_snapshot(delivery: Delivery, campaign: Campaign, compiled: Any) -> None:
    with transaction.atomic(), _statement_timeout(_snapshot_timeout_ms()):
        delivery.targets.all().delete()
        delivery.treatments.all().delete()
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM delivery_recipients WHERE delivery_id = %s", [delivery.pk])
            # A customer whose group's splits do not reach 100 % has no treatment: the
            # (NOT NULL) key gets minus the group's id, counted below and rolled back.
            insert = (
                "INSERT INTO delivery_recipients "
                "(delivery_id, customer_id, sub_audience_id, treatment_id, is_control) "
                "SELECT %s, a.customer_id, a.sub_audience_id, "
                "COALESCE(a.treatment_id, -a.sub_audience_id), a.is_control "
                f"FROM ({compiled.sql}) a"
            )
            params = [delivery.pk, *compiled.params]
            if connection.vendor == "postgresql":
                # Counted as inserted, instead of reading a million rows back.
                cursor.execute(
                    f"WITH ins AS ({insert} RETURNING treatment_id) "
                    "SELECT treatment_id, COUNT(*) FROM ins GROUP BY treatment_id",
                    params,
                )
            else:  # SQLite has no INSERT inside WITH
                cursor.execute(insert, params)
                cursor.execute(
                    "SELECT treatment_id, COUNT(*) FROM delivery_recipients "
                    "WHERE delivery_id = %s GROUP BY treatment_id",
                    [delivery.pk],
                )
            counts = dict(cursor.fetchall())
            if campaign.first_match_only:  # one row per customer
                customers = sum(counts.values())
            else:
                cursor.execute(
                    "SELECT COUNT(DISTINCT customer_id) FROM delivery_recipients "
                    "WHERE delivery_id = %s",
                    [delivery.pk],
                )
                customers = int(cursor.fetchone()[0])
        if untreated := sum(n for treatment_id, n in counts.items() if treatment_id < 0):
            raise SnapshotProblem(
                "Some sub-audience's treatment splits do not add up to 100 %, so "
                f"{untreated} customers have no treatment."
            )
        groups = _ordered_groups(campaign)
        treatments: dict[int, DeliveryTreatment] = {}
        for group_pos, group in enumerate(groups):
            for treatment_pos, treatment in enumerate(group.treatments.all()):
                treatments[treatment.pk] = DeliveryTreatment.objects.create(
                    delivery=delivery,
                    sub_audience_id=group.pk,
                    sub_audience_name=group.name,
                    sub_audience_position=group_pos,
                    is_remaining=group.is_remaining,
                    treatment_id=treatment.pk,
                    treatment_name=treatment.name,
                    treatment_position=treatment_pos,
                    is_control=treatment.is_control,
                    customers=int(counts.get(treatment.pk, 0)),
                )
        _create_targets(delivery, campaign, treatments)
        Delivery.objects.filter(pk=delivery.pk).update(
            snapshot_at=timezone.now(), customers=customers
        )
        delivery.snapshot_at = timezone.now()
        delivery.customers = customers


def _create_targets(
    delivery: Delivery, campaign: Campaign, treatments: dict[int, DeliveryTreatment]
) -> None:
    links = list(
        TreatmentDestination.objects.filter(treatment__sub_audience__campaign=campaign)
        .select_related("treatment", "campaign_destination__destination")
        .order_by("treatment__sub_audience__position", "treatment__position", "id")
    )
    links = [link for link in links if link.treatment_id in treatments]
    sent_groups = {treatments[link.treatment_id].sub_audience_id for link in links}
    sent_per_group: dict[int, set[int]] = {}
    for link in links:
        sent_per_group.setdefault(treatments[link.treatment_id].sub_audience_id, set()).add(
            link.treatment_id
        )
    batch_size = settings.TIKTOK_BATCH_SIZE
    for link in links:
        treatment = treatments[link.treatment_id]
        cd = link.campaign_destination
        destination = cd.destination
        target = DeliveryTarget(
            delivery=delivery,
            treatment=treatment,
            destination=destination,
            destination_name=destination.name,
            advertiser_id=destination.advertiser_id,
            refresh_mode=cd.refresh_mode,
            mapping=cd.attribute_mapping,
            audience_name=audience_name_for(
                campaign.name,
                treatment.sub_audience_name,
                treatment.treatment_name,
                one_group=len(sent_groups) <= 1,
                one_treatment=len(sent_per_group[treatment.sub_audience_id]) <= 1,
            ),
        )
        try:
            target.id_schema = id_schema_for(cd.attribute_mapping)
        except MappingProblem as exc:
            target.status = TargetStatus.FAILED
            target.error = str(exc)
            target.what_to_do = "Correct the attribute mapping, then schedule the campaign again."
            target.customers = treatment.customers
            target.save()
            continue
        if cd.refresh_mode == RefreshMode.SYNC:
            # The audience of the last target that had one, sent or not: its ledger says
            # what TikTok acknowledged, so a delivery that failed halfway is repaired by
            # this one instead of leaving its audience orphaned.
            previous = (
                DeliveryTarget.objects.filter(
                    delivery__campaign=campaign,
                    treatment__treatment_id=treatment.treatment_id,
                    destination=destination,
                )
                .exclude(audience_id="")
                .exclude(delivery=delivery)
                .order_by("-delivery__scheduled_for", "-id")
                .first()
            )
            if previous is not None:
                target.previous = previous
                target.audience_id = previous.audience_id
                target.destination_audience_id = previous.destination_audience_id
        # What to add and remove is the difference against the audience's ledger, computed
        # right before the first batch (deliveries.ledger.target_diff); the delivery summary
        # once the target is sent (_record_summary). Until then, an estimate for progress.
        target.customers = treatment.customers
        target.batches_total = math.ceil(treatment.customers / batch_size)
        target.save()


def _known_audience_ids(advertiser_id: str) -> set[str]:
    return set(
        DeliveryTarget.objects.filter(advertiser_id=advertiser_id)
        .exclude(audience_id="")
        .values_list("audience_id", flat=True)
    )


def _target_fail(target: DeliveryTarget, error: str, what_to_do: str) -> None:
    DeliveryTarget.objects.filter(pk=target.pk).update(
        status=TargetStatus.FAILED, error=error[:4000], what_to_do=what_to_do
    )


def _target_wait(target: DeliveryTarget, reason: str) -> None:
    DeliveryTarget.objects.filter(pk=target.pk).update(
        status=TargetStatus.WAITING_FOR_REAUTH,
        error=reason[:4000],
        what_to_do=(
            f"An operator must reauthorize the TikTok destination “{target.destination_name}” "
            "(Destinations → Reauthorize). The delivery then resumes where it stopped, "
            "without sending finished batches again."
        ),
    )


def _send_target(run: Run, target: DeliveryTarget) -> None:
    destination = Destination.objects.get(pk=target.destination_id)
    if destination.status == DestinationStatus.NEEDS_REAUTH:
        _target_wait(target, destination.last_error or "TikTok no longer accepts the token.")
        return
    if destination.status == DestinationStatus.DISCONNECTED:
        _target_fail(
            target,
            f"Destination “{destination.name}” is disconnected.",
            "Connect the TikTok account again, then deliver the campaign again.",
        )
        return
    if not target.id_schema:
        _target_fail(
            target,
            "The attribute mapping sends no usable identifier.",
            "Correct the attribute mapping, then schedule the campaign again.",
        )
        return
    adapter = AudienceAdapter(
        destination_client(destination), target.advertiser_id, sleep=run.sleep
    )
    if target.status == TargetStatus.PENDING:
        DeliveryTarget.objects.filter(pk=target.pk).update(
            status=TargetStatus.SENDING, started_at=timezone.now()
        )
    try:
        _send_target_batches(run, target, adapter)
    except ReauthorizationRequired as exc:
        # destination_client's hook has flagged the destination and told the operators.
        _target_wait(target, str(exc))
    except GaveUp as exc:
        _target_fail(
            target,
            str(exc),
            "TikTok kept failing or rate-limiting. Check TikTok's status, then press Retry: "
            "finished batches are not sent again.",
        )
    except MappingProblem as exc:
        _target_fail(target, str(exc), "Correct the attribute mapping, then press Retry.")
    except NotFoundError as exc:
        _target_fail(
            target,
            str(exc),
            "The audience or advertiser no longer exists in TikTok. If the audience was "
            "deleted in TikTok Ads Manager, switch the destination's refresh mode to "
            "“New audience each delivery” or deliver again.",
        )
    except AppConfigurationError as exc:
        _target_fail(target, str(exc), "Check the TikTok app settings (TIKTOK_*), then Retry.")
    except TikTokError as exc:
        _target_fail(target, str(exc), exc.hint or "Correct the problem TikTok names, then Retry.")
    finally:
        stats = adapter.stats
        DeliveryTarget.objects.filter(pk=target.pk).update(
            requests=F("requests") + stats.requests,
            retries=F("retries") + stats.retries,
            rate_limited=F("rate_limited") + stats.rate_limited,
        )
    _record_summary(target)


def _record_summary(target: DeliveryTarget) -> None:
    summary = target_summary(target.delivery_id, target.treatment.treatment_id, target.id_schema)
    DeliveryTarget.objects.filter(pk=target.pk).update(
        customers=summary.customers,
        rows=summary.rows,
        shrink=summary.shrink,
        expansion=summary.expansion,
        invalid=summary.invalid,
    )


def _ensure_audience(run: Run, target: DeliveryTarget, adapter: AudienceAdapter) -> bool:
    """Make sure the target has its audience id; False when there is nothing to send."""
    if target.audience_id:
        return True
    if not target.changes.get(TargetPhase.ADD):
        return False
    found = None
    if target.create_requested_at is not None:
        found = adapter.find_audience(
            target.audience_name, exclude=_known_audience_ids(target.advertiser_id)
        )
    if found is None:
        now = timezone.now()
        DeliveryTarget.objects.filter(pk=target.pk).update(create_requested_at=now)
        target.create_requested_at = now
        run.beat()
        found = adapter.create_audience(
            target.audience_name, exclude=_known_audience_ids(target.advertiser_id)
        )
    else:
        logger.info("found audience %s, created by an interrupted run", found)
    DeliveryTarget.objects.filter(pk=target.pk).update(audience_id=found, audience_created=True)
    target.audience_id = found
    target.audience_created = True
    audience_for(target)  # the ledger's owner, shown in "What TikTok holds" from now on
    return True


def _next_phase(target: DeliveryTarget) -> str:
    if target.phase == TargetPhase.ADD and target.changes.get(TargetPhase.DELETE):
        return TargetPhase.DELETE
    return TargetPhase.DONE


def _send_target_batches(run: Run, target: DeliveryTarget, adapter: AudienceAdapter) -> None:
    if target.diff_at is None:
        target_diff(target)
        run.beat()
    if not _ensure_audience(run, target, adapter):
        now = timezone.now()
        DeliveryTarget.objects.filter(pk=target.pk).update(
            status=TargetStatus.SENT,
            phase=TargetPhase.DONE,
            sent_at=now,
            note="Nobody in this treatment has a usable identifier: no audience was created.",
        )
        return
    while target.phase != TargetPhase.DONE:
        for batch in _prefetched_batches(target):
            _send_batch(run, target, adapter, batch)
        target.phase, target.cursor = _next_phase(target), ""
        DeliveryTarget.objects.filter(pk=target.pk).update(phase=target.phase, cursor="")
    now = timezone.now()
    DeliveryTarget.objects.filter(pk=target.pk).update(
        status=TargetStatus.SENT,
        sent_at=now,
        batches_total=F("batches_done"),
        poll_until=now + dt.timedelta(hours=settings.DELIVERY_POLL_HOURS),
    )


def _prefetched_batches(target: DeliveryTarget) -> Iterator[Batch]:
    """The phase's batches after the checkpoint, read one ahead in a thread (with its own
    database connection) so the database works while TikTok answers the previous one."""
    size, phase = settings.TIKTOK_BATCH_SIZE, target.phase
    read_batch = partial(next_batch, target, phase, size=size, audience_ids=[target.audience_id])
    if connection.in_atomic_block:
        # Another connection could not see this transaction's rows: read in this thread.
        after = target.cursor
        while (batch := read_batch(after=after)).scanned:
            yield batch
            after = batch.last_customer_id
        return
    ahead: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def read() -> None:
        try:
            after = target.cursor
            while not stop.is_set():
                batch = read_batch(after=after)
                ahead.put(batch)
                if not batch.scanned:
                    return
                after = batch.last_customer_id
        except BaseException as exc:  # handed to the consumer, which raises it
            ahead.put(exc)
        finally:
            connections.close_all()

    reader = threading.Thread(target=read, name=f"delivery-target-{target.pk}", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if isinstance(item, BaseException):
                raise item
            if not item.scanned:
                return
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            ahead.get_nowait()  # unblock a reader waiting to put
        reader.join(timeout=30)


def _send_batch(run: Run, target: DeliveryTarget, adapter: AudienceAdapter, batch: Batch) -> None:
    action: Literal["add", "delete"] = "delete" if target.phase == TargetPhase.DELETE else "add"
    if batch.rows:
        adapter.send_members(batch.schema, batch.rows, action)
    counted = "people_removed" if action == "delete" else "people_sent"
    # The checkpoint: only after TikTok acknowledged every row of the batch, and only
    # while this worker holds the lease (one commit for both, with the ledger: it holds
    # exactly what TikTok acknowledged). A worker that lost its lease leaves the
    # checkpoint to the one that took over.
    with transaction.atomic():
        run.beat()
        ledger_apply(target, target.phase, upto=batch.last_customer_id)
        DeliveryTarget.objects.filter(pk=target.pk).update(
            cursor=batch.last_customer_id,
            batches_done=F("batches_done") + 1,
            rows_sent=F("rows_sent") + len(batch.rows),
            **{counted: F(counted) + batch.people},
        )
    target.cursor = batch.last_customer_id


# ---- finishing --------------------------------------------------------------------------


def _recipients(campaign: Campaign) -> list:
    users = [u for u in (campaign.created_by, campaign.updated_by) if u is not None]
    return list({u.pk: u for u in users if u.is_active}.values())


def _notify(campaign: Campaign, **kwargs: Any) -> None:
    users = _recipients(campaign)
    if users:
        notify(users=users, **kwargs)
    else:
        notify(role=Role.MARKETER, **kwargs)


def _finish(run: Run, failure: tuple[str, str] | None = None) -> str:
    delivery = run.delivery
    campaign = Campaign.objects.get(pk=delivery.campaign_id)
    url = reverse("deliveries:detail", args=[delivery.pk])
    targets = list(delivery.targets.all())
    statuses = {t.status for t in targets}
    if failure is None and TargetStatus.WAITING_FOR_REAUTH in statuses:
        with transaction.atomic():
            if not Delivery.objects.filter(
                pk=delivery.pk, lease=run.lease, status=DeliveryStatus.RUNNING
            ).update(status=DeliveryStatus.WAITING_FOR_REAUTH, lease="", heartbeat_at=None):
                raise LeaseLost(f"delivery {delivery.pk} was taken over")
            names = sorted(
                {t.destination_name for t in targets if t.status == TargetStatus.WAITING_FOR_REAUTH}
            )
            _event(campaign, None, "delivery_waiting", f"Delivery waits for reauthorization of "
                   f"{', '.join(names)}")  # fmt: skip
            _notify(
                campaign,
                level=NotificationLevel.WARNING,
                title=f"“{campaign.name}” waits for TikTok reauthorization",
                body=(
                    f"TikTok no longer accepts the token of {', '.join(names)}. The delivery "
                    "is paused and resumes by itself once an operator reauthorizes the "
                    "destination; batches already sent are not sent again."
                ),
                url=url,
            )
        return "waiting for reauthorization"
    failed = [t for t in targets if t.status == TargetStatus.FAILED]
    if failure is None and failed:
        failure = (
            "; ".join(f"{t.audience_name} → {t.destination_name}: {t.error}" for t in failed),
            " ".join(dict.fromkeys(t.what_to_do for t in failed if t.what_to_do)),
        )
    now = timezone.now()
    with transaction.atomic():
        if not Delivery.objects.filter(
            pk=delivery.pk, lease=run.lease, status=DeliveryStatus.RUNNING
        ).update(
            status=DeliveryStatus.FAILED if failure else DeliveryStatus.SUCCEEDED,
            finished_at=now,
            error=failure[0][:4000] if failure else "",
            what_to_do=failure[1] if failure else "",
            lease="",
        ):
            raise LeaseLost(f"delivery {delivery.pk} was taken over")
        try:
            campaign_finish_run(
                campaign, ok=failure is None, reason=failure[0][:1000] if failure else "", now=now
            )
        except CampaignStateError:
            logger.warning("campaign %s was not running when delivery %s ended", campaign.pk,
                           delivery.pk)  # fmt: skip
        if failure:
            _notify(
                campaign,
                level=NotificationLevel.ERROR,
                title=f"Delivery of “{campaign.name}” failed",
                body=f"{failure[0]}\n\nWhat to do: {failure[1]}",
                url=url,
            )
        else:
            sent = sum(t.people_sent for t in targets)
            _notify(
                campaign,
                level=NotificationLevel.SUCCESS,
                title=f"Delivery of “{campaign.name}” finished",
                body=(
                    f"{sent:,} people sent to {len(targets)} TikTok audience(s). TikTok now "
                    "matches them to its users; you are told when the audiences are ready."
                ),
                url=url,
            )
    return "failed" if failure else "delivered"


# ---- after sending: TikTok's matching ------------------------------------------------------


def delivery_poll_audiences(*, now: dt.datetime | None = None) -> int:
    """Ask TikTok how far each sent audience is; record matched size and match rate once
    it is ready, or a note after DELIVERY_POLL_HOURS. Returns audiences that became ready."""
    now = now or timezone.now()
    pending = list(
        DeliveryTarget.objects.filter(status=TargetStatus.SENT, ready_at=None, poll_note="")
        .exclude(audience_id="")
        .select_related("destination")
    )
    by_destination: dict[int, list[DeliveryTarget]] = {}
    for target in pending:
        by_destination.setdefault(target.destination_id, []).append(target)
    became_ready = 0
    for targets in by_destination.values():
        destination = targets[0].destination
        if destination.status != DestinationStatus.CONNECTED:
            continue
        client = destination_client(destination)
        for start in range(0, len(targets), 100):
            chunk = targets[start : start + 100]
            try:
                # One audience TikTok no longer knows fails only its own target.
                lookup = client.audience_statuses(
                    destination.advertiser_id, sorted({t.audience_id for t in chunk})
                )
            except TikTokError as exc:
                # Not a reason to skip the targets: their deadline below still applies.
                logger.info("polling audiences of %s: %s", destination, exc)
                lookup = AudienceLookup()
            for target in chunk:
                gone = lookup.unknown.get(target.audience_id)
                if gone is not None:
                    DeliveryTarget.objects.filter(pk=target.pk).update(
                        status=TargetStatus.FAILED,
                        polled_at=now,
                        error=str(gone)[:4000],
                        what_to_do=(
                            "TikTok no longer knows this audience (deleted in TikTok Ads "
                            "Manager, or expired). Deliver the campaign again to create it anew."
                        ),
                        poll_note="TikTok no longer knows this audience; we stopped checking.",
                    )
                    continue
                answer = lookup.found.get(target.audience_id)
                if answer is not None and answer.is_valid and answer.cover_num is not None:
                    people = max(target.people_in_audience, 0)
                    DeliveryTarget.objects.filter(pk=target.pk).update(
                        ready_at=now,
                        polled_at=now,
                        matched=answer.cover_num,
                        match_rate=(answer.cover_num / people) if people else None,
                    )
                    became_ready += 1
                elif target.poll_until and now >= target.poll_until:
                    DeliveryTarget.objects.filter(pk=target.pk).update(
                        polled_at=now,
                        poll_note=(
                            f"TikTok had not finished matching after "
                            f"{settings.DELIVERY_POLL_HOURS} hours; we stopped checking. Look "
                            "at the audience in TikTok Ads Manager (Assets → Audiences)."
                        ),
                    )
                else:
                    DeliveryTarget.objects.filter(pk=target.pk).update(polled_at=now)
    _notify_ready(
        {t.delivery_id for t in pending},
    )
    return became_ready


def _notify_ready(delivery_ids: Iterable[int]) -> None:
    for delivery in Delivery.objects.filter(
        pk__in=list(delivery_ids), ready_notified=False, status=DeliveryStatus.SUCCEEDED
    ).select_related("campaign"):
        targets = [t for t in delivery.targets.all() if t.audience_id]
        if any(t.is_polling for t in targets):
            continue
        if not Delivery.objects.filter(pk=delivery.pk, ready_notified=False).update(
            ready_notified=True
        ):
            continue
        ready = [t for t in targets if t.ready_at]
        lines = [
            f"{t.audience_name}: {t.matched:,} matched"
            + (f" ({t.match_rate:.0%})" if t.match_rate is not None else "")
            for t in ready
        ]
        lines += [f"{t.audience_name}: {t.poll_note}" for t in targets if t.poll_note]
        _notify(
            delivery.campaign,
            level=NotificationLevel.SUCCESS
            if len(ready) == len(targets)
            else NotificationLevel.WARNING,
            title=f"Audiences of “{delivery.campaign.name}” are ready in TikTok",
            body="\n".join(lines)
            + "\n\nFind them in TikTok Ads Manager under Assets → Audiences. Keep an audience "
            "stable until its ad group has about 50 conversions (learning phase).",
            url=reverse("deliveries:detail", args=[delivery.pk]),
        )
