"""Segment housekeeping run by celery beat."""

from __future__ import annotations

import logging

from celery import shared_task

from segments.fence import SegmentQueryError, delete_old_results

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def delete_old_sql_results() -> int:
    """Drop SQL segment evaluations older than six hours (deliveries evaluate afresh)."""
    return delete_old_results()


@shared_task(ignore_result=True)
def refresh_segment_size(segment_id: int) -> int | None:
    """A count too long for a web request: the segment's size, with the full timeout."""
    from segments.compiler import DefinitionError
    from segments.models import Segment
    from segments.services import segment_refresh_count
    from segments.sqlcheck import SqlSegmentError

    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        return None
    try:
        return segment_refresh_count(segment=segment)
    except (DefinitionError, SqlSegmentError, SegmentQueryError) as exc:
        logger.warning("segment %s could not be counted: %s", segment_id, exc)
        return None
