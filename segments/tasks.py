"""Segment housekeeping run by celery beat."""

from __future__ import annotations

from celery import shared_task

from segments.fence import delete_old_results


@shared_task(ignore_result=True)
def delete_old_sql_results() -> int:
    """Drop SQL segment evaluations older than six hours (deliveries evaluate afresh)."""
    return delete_old_results()
