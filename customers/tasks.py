from __future__ import annotations

from celery import shared_task

from customers import services


@shared_task(ignore_result=True)
def import_job_run_task(job_id: int) -> None:
    # No automatic retry: a malformed file stays malformed, and a crash is recorded on the job.
    # A worker that dies mid-import is handled by the watchdog below.
    services.import_job_run(job_id=job_id)


@shared_task(name="customers.tasks.watch_import_jobs", ignore_result=True)
def watch_import_jobs() -> dict[str, list[int]]:
    """The import watchdog (CELERY_BEAT_SCHEDULE): no import stays Running without a worker."""
    return services.import_jobs_watchdog()
