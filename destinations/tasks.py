from __future__ import annotations

import logging

from celery import shared_task

from destinations.models import Destination, DestinationStatus
from destinations.services import destination_check_health

logger = logging.getLogger(__name__)


@shared_task(name="destinations.tasks.check_destination_tokens", ignore_result=True)
def check_destination_tokens() -> dict[str, int]:
    """Periodic token health check (CELERY_BEAT_SCHEDULE): user/info/ per connected destination."""
    counts = {"ok": 0, "needs_reauth": 0, "unreachable": 0}
    for destination in Destination.objects.filter(status=DestinationStatus.CONNECTED):
        result = destination_check_health(destination)
        if result.ok:
            counts["ok"] += 1
        elif result.status == DestinationStatus.NEEDS_REAUTH:
            counts["needs_reauth"] += 1
        else:
            counts["unreachable"] += 1
    logger.info("TikTok token check: %s", counts)
    return counts


@shared_task(name="destinations.tasks.check_destination_token", ignore_result=True)
def check_destination_token(destination_id: int) -> None:
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is not None:
        destination_check_health(destination)
