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
from django.db import IntegrityError, connection, connections, transaction
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
    TreatmentDestination,
)
from campaigns.services import CampaignStateError, campaign_finish_run, campaign_start_run
from deliveries.models import (
    Delivery,
    DeliveryStatus,
    DeliveryTarget,
    DeliveryTreatment,
    TargetPhase,
    TargetStatus,
)
from deliveries.selectors import (
    Batch,
    has_usable_identifier,
    next_batch,
    people_count,
    target_summary,
)
from destinations.models import Destination, DestinationStatus
from destinations.services import destination_client
from destinations.tiktok.adapter import (
    AudienceAdapter,
    GaveUp,
    MappingProblem,
    audience_name_for,
    id_schema_for,
)
from destinations.tiktok.errors import (
    AppConfigurationError,
    NotFoundError,
    ReauthorizationRequired,
    TikTokError,
)
from notifications.models import NotificationLevel
from notifications.services import notify

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
    from deliveries.tasks import run_delivery

    run_delivery.apply_async(args=[delivery_id], queue=settings.DELIVERY_QUEUE)


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
    """Enqueue again deliveries whose worker died (stale heartbeat) or whose message was
    lost (queued long ago). At most once per stale period each, so a long outage of the
    workers does not pile up messages."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.DELIVERY_STALE_SECONDS)
    not_recently_enqueued = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    candidates = Delivery.objects.filter(
        (Q(status=DeliveryStatus.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at=None)))
        | Q(status=DeliveryStatus.QUEUED)
    ).filter(not_recently_enqueued)
    requeued = []
    for delivery_id in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            changed = (
                Delivery.objects.filter(pk=delivery_id)
                .filter(not_recently_enqueued)
                .update(enqueued_at=now)
            )
            if changed:
                transaction.on_commit(partial(_enqueue, delivery_id))
                requeued.append(delivery_id)
    if requeued:
        logger.warning("re-enqueued stalled deliveries %s", requeued)
    return requeued


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
    """One worker's turn at a delivery: the lease, the heartbeat, interruptible waits."""

    def __init__(self, delivery: Delivery, lease: str) -> None:
        self.delivery = delivery
        self.lease = lease

    def beat(self) -> None:
        if not Delivery.objects.filter(
            pk=self.delivery.pk, lease=self.lease, status=DeliveryStatus.RUNNING
        ).update(heartbeat_at=timezone.now()):
            raise LeaseLost(f"delivery {self.delivery.pk} was taken over by another worker")

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


def delivery_run(*, delivery_id: int) -> str:
    """Do (or continue) one delivery. Returns what happened, for the task's log."""
    now = timezone.now()
    lease = _claim(delivery_id, now)
    if lease is None:
        return "not claimed: finished, paused, or running in another worker"
    delivery = Delivery.objects.select_related("campaign").get(pk=delivery_id)
    if delivery.started_at is None:
        Delivery.objects.filter(pk=delivery.pk).update(started_at=now)
    run = Run(delivery, lease)
    try:
        if delivery.snapshot_at is None:
            try:
                delivery_snapshot(delivery=delivery)
            except SnapshotProblem as exc:
                _finish(run, failure=(str(exc), "Fix the campaign, then schedule it again."))
                return "failed: snapshot"
        for target in delivery.targets.filter(
            status__in=[TargetStatus.PENDING, TargetStatus.SENDING]
        ).select_related("treatment", "destination", "previous"):
            _send_target(run, target)
        return _finish(run)
    except LeaseLost as exc:
        logger.warning("%s", exc)
        return "lease lost"
    except Exception:
        delivery.refresh_from_db()
        if delivery.runs >= MAX_RUNS_AFTER_CRASH and delivery.lease == lease:
            _finish(
                run,
                failure=(
                    f"The delivery stopped with an internal error {delivery.runs} times.",
                    "Ask an administrator to look at the worker's log, then use Retry.",
                ),
            )
        # Otherwise the scheduler re-enqueues it once its heartbeat is stale.
        raise


def _ordered_groups(campaign: Campaign) -> list[SubAudience]:
    return list(campaign.sub_audiences.prefetch_related("treatments"))


def delivery_snapshot(*, delivery: Delivery) -> None:
    """Record who is in which sub-audience and treatment (one INSERT … SELECT), the
    treatments as they are now, and one target per treatment × destination with its
    delivery summary. All in one transaction."""
    campaign = delivery.campaign
    try:
        compiled = assignment_sql(campaign)
    except AssignmentError as exc:
        raise SnapshotProblem(f"The campaign's audience cannot be computed: {exc}") from exc
    with transaction.atomic():
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
            previous = (
                DeliveryTarget.objects.filter(
                    delivery__campaign=campaign,
                    treatment__treatment_id=treatment.treatment_id,
                    destination=destination,
                    status=TargetStatus.SENT,
                )
                .exclude(audience_id="")
                .exclude(delivery=delivery)
                .order_by("-delivery__scheduled_for", "-id")
                .first()
            )
            if previous is not None:
                target.previous = previous
                target.audience_id = previous.audience_id
                target.full_send = previous.id_schema != target.id_schema
        # The delivery summary is computed once the target is sent (_record_summary): a
        # full pass over the audience that need not delay the first batch.
        target.customers = treatment.customers
        target.people_to_add = (
            treatment.customers if target.full_send else people_count(target, TargetPhase.ADD)
        )
        target.people_to_remove = (
            people_count(target, TargetPhase.DELETE) if target.previous_id else 0
        )
        target.batches_total = math.ceil(target.people_to_add / batch_size) + math.ceil(
            target.people_to_remove / batch_size
        )
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
    if target.people_to_add == 0 or not has_usable_identifier(target):
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
        found = adapter.create_audience(target.audience_name, target.id_schema[0])
    else:
        logger.info("found audience %s, created by an interrupted run", found)
    DeliveryTarget.objects.filter(pk=target.pk).update(audience_id=found, audience_created=True)
    target.audience_id = found
    target.audience_created = True
    return True


def _next_phase(target: DeliveryTarget) -> str:
    if target.phase == TargetPhase.ADD and target.previous_id and target.people_to_remove:
        return TargetPhase.DELETE
    return TargetPhase.DONE


def _send_target_batches(run: Run, target: DeliveryTarget, adapter: AudienceAdapter) -> None:
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
        adapter.send_members(target.id_schema, batch.rows, action)
    counted = "people_removed" if action == "delete" else "people_sent"
    # The checkpoint: only after TikTok acknowledged every row of the batch, and only
    # while this worker holds the lease (one commit for both). A worker that lost its
    # lease leaves the checkpoint to the one that took over.
    with transaction.atomic():
        run.beat()
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
                answers = client.get_audiences(
                    destination.advertiser_id, sorted({t.audience_id for t in chunk})
                )
            except TikTokError as exc:
                logger.info("polling audiences of %s: %s", destination, exc)
                continue
            by_id = {a.audience_id: a for a in answers}
            for target in chunk:
                answer = by_id.get(target.audience_id)
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
