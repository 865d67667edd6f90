from __future__ import annotations

from celery import shared_task

from customers import services


@shared_task(ignore_result=True)
def import_job_run_task(job_id: int) -> None:
    # No automatic retry: a malformed file stays malformed, and a crash is recorded on the job.
    services.import_job_run(job_id=job_id)
