"""Celery tasks: thin wrappers that take ids and call one service each.

`run_delivery` is acks_late + reject_on_worker_lost because a delivery is idempotent by
construction (snapshot in one transaction, per-batch checkpoints, audience-create intent):
a message redelivered after a crash continues the work instead of repeating it, and a
message delivered twice (a broker that lost track of it) finds the lease held or the work
done. The periodic tasks are cheap and run again on the next tick anyway.
"""

from __future__ import annotations

import logging

from celery import shared_task

from deliveries.services import (
    delivery_poll_audiences,
    delivery_requeue_stalled,
    delivery_resume_reauthorized,
    delivery_run,
    delivery_schedule_due,
)

logger = logging.getLogger(__name__)


@shared_task(
    name="deliveries.tasks.run_delivery",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def run_delivery(delivery_id: int) -> str:
    outcome = delivery_run(delivery_id=delivery_id)
    logger.info("delivery %s: %s", delivery_id, outcome)
    return outcome


@shared_task(name="deliveries.tasks.schedule_deliveries", ignore_result=True)
def schedule_deliveries() -> dict[str, list[int]]:
    """The scheduler tick (CELERY_BEAT_SCHEDULE, every DELIVERY_SCHEDULER_SECONDS): due
    campaigns get their delivery; the watchdog queues again (or fails) deliveries whose
    worker died and enqueues those whose message was lost; paused ones resume."""
    result = {
        "created": delivery_schedule_due(),
        "requeued": delivery_requeue_stalled(),
        "resumed": delivery_resume_reauthorized(),
    }
    if any(result.values()):
        logger.info("delivery scheduler: %s", result)
    return result


@shared_task(name="deliveries.tasks.poll_audiences", ignore_result=True)
def poll_audiences() -> int:
    return delivery_poll_audiences()
