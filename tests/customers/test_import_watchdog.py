"""No import stays Running without a live worker: the watchdog queues it again (nothing was
saved) or, after IMPORT_MAX_ATTEMPTS starts, rejects it with the reason; a queued job whose
message was lost is enqueued again."""

from __future__ import annotations

import datetime as dt
import time
from unittest import mock

import pytest
from django.utils import timezone

from accounts.models import Role
from customers.models import Customer, ImportJob, ImportStatus
from customers.services import (
    IMPORT_MAX_ATTEMPTS,
    _heartbeat,
    import_jobs_watchdog,
    imports_dir,
)
from customers.tasks import import_job_run_task
from notifications.models import Notification
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CSV = b"customer_id,email\nW1,w1@example.com\nW2,w2@example.com\n"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.IMPORT_STALE_SECONDS = 60


def a_job(settings, **fields) -> ImportJob:
    path = imports_dir() / "abc_people.csv"
    path.write_bytes(CSV)
    long_ago = timezone.now() - dt.timedelta(seconds=settings.IMPORT_STALE_SECONDS + 5)
    values = {
        "status": ImportStatus.RUNNING,
        "started_at": long_ago,
        "heartbeat_at": long_ago,
        "enqueued_at": long_ago,
        "attempts": 1,
        **fields,
    }
    return ImportJob.objects.create(
        kind="customers",
        original_name="people.csv",
        file_path=str(path.relative_to(settings.MEDIA_ROOT)),
        size_bytes=len(CSV),
        **values,
    )


def test_a_running_import_whose_worker_died_is_queued_again_and_then_completes(
    settings, django_capture_on_commit_callbacks
):
    job = a_job(settings)
    with (
        mock.patch.object(import_job_run_task, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert import_jobs_watchdog()["requeued"] == [job.pk]
    delay.assert_called_once_with(job.pk)
    job.refresh_from_db()
    assert job.status == ImportStatus.PENDING
    assert job.phase.startswith("Queued again: its worker stopped")
    assert f"start 2 of at most {IMPORT_MAX_ATTEMPTS}" in job.phase

    import_job_run_task(job.pk)  # the worker picks it up again
    job.refresh_from_db()
    assert job.status == ImportStatus.SUCCEEDED and job.attempts == 2
    assert set(Customer.objects.values_list("customer_id", flat=True)) == {"W1", "W2"}


def test_an_import_that_keeps_losing_its_worker_is_rejected_with_the_reason(settings):
    operator = UserFactory(role=Role.OPERATOR)
    job = a_job(settings, attempts=IMPORT_MAX_ATTEMPTS, created_by=operator)
    with mock.patch.object(import_job_run_task, "delay") as delay:
        assert import_jobs_watchdog()["failed"] == [job.pk]
    delay.assert_not_called()
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED and job.finished_at is not None
    assert f"stopped {IMPORT_MAX_ATTEMPTS} time(s)" in job.message
    assert "Nothing was changed" in job.message
    assert not (settings.MEDIA_ROOT / job.file_path).exists()  # personal data: deleted
    notice = Notification.objects.get(title="The import of “people.csv” failed")
    assert notice.user == operator and "stopped" in notice.body


def test_a_live_import_and_a_recent_one_are_left_alone(settings):
    fresh = timezone.now()
    a_job(settings, heartbeat_at=fresh, enqueued_at=fresh)
    a_job(settings, status=ImportStatus.PENDING, attempts=0, heartbeat_at=None, enqueued_at=fresh)
    with mock.patch.object(import_job_run_task, "delay") as delay:
        assert import_jobs_watchdog() == {"requeued": [], "failed": [], "enqueued": []}
    delay.assert_not_called()


def test_a_queued_import_whose_message_was_lost_is_enqueued_again_once_per_period(
    settings, django_capture_on_commit_callbacks
):
    job = a_job(settings, status=ImportStatus.PENDING, attempts=0, heartbeat_at=None)
    with (
        mock.patch.object(import_job_run_task, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert import_jobs_watchdog()["enqueued"] == [job.pk]
        assert import_jobs_watchdog()["enqueued"] == []
    delay.assert_called_once_with(job.pk)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_is_beaten_while_the_import_runs(settings):
    settings.IMPORT_STALE_SECONDS = 5  # a beat every 1.25 s
    job = a_job(settings, heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    with _heartbeat(job.pk):
        time.sleep(2)
    job.refresh_from_db()
    assert timezone.now() - job.heartbeat_at < dt.timedelta(seconds=2)
