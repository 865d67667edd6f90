"""Writes to the customer store: CSV imports (command line and Data page)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Q
from django.utils import timezone

from customers.csv_columns import SPECS, ImportKind
from customers.loading import LoadResult, MalformedFile, Progress, load_csv, read_header
from customers.models import Customer, Device, ImportJob, ImportStatus, Order

PROGRESS_EVERY_SECONDS = 0.5
IMPORT_MAX_ATTEMPTS = 3

logger = logging.getLogger(__name__)


def imports_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def customers_import_file(
    *,
    kind: ImportKind,
    path: Path,
    error_report: Path,
    progress: Progress | None = None,
    replace: bool = False,
) -> LoadResult:
    """Import one CSV file of `kind`; MalformedFile (nothing changed) if it is unusable.
    `replace` (devices): the file holds all the devices of each customer it lists."""
    return load_csv(kind, path, error_report=error_report, progress=progress, replace=replace)


def _safe_name(name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "upload"
    return base[-100:]


def import_job_create(
    *, kind: ImportKind, upload: UploadedFile, user, replace_devices: bool = False
) -> ImportJob:
    """Store the upload under MEDIA_ROOT/imports/, check its header, queue the import.

    A file whose header already shows it cannot be imported is refused here, with the
    reason, and not kept. `replace_devices` (devices only): the file holds all the devices
    of each customer it lists; their others are removed.
    """
    if replace_devices and kind != ImportKind.DEVICES:
        raise MalformedFile("Only a devices import can replace the listed customers' devices.")
    target = imports_dir() / f"{uuid.uuid4().hex[:12]}_{_safe_name(upload.name or '')}"
    with open(target, "wb") as out:
        for piece in upload.chunks():
            out.write(piece)
    try:
        read_header(target, SPECS[kind])
    except MalformedFile:
        target.unlink(missing_ok=True)
        raise
    with transaction.atomic():
        job = ImportJob.objects.create(
            kind=kind.value,
            original_name=(upload.name or "upload.csv")[:255],
            file_path=str(target.relative_to(settings.MEDIA_ROOT)),
            size_bytes=target.stat().st_size,
            created_by=user,
            phase="Waiting for a worker",
            enqueued_at=timezone.now(),
            replace_devices=replace_devices,
        )
        transaction.on_commit(partial(_enqueue_import, job.pk))
    return job


def import_job_error_report(job: ImportJob) -> Path | None:
    if not job.error_report_path:
        return None
    path = Path(settings.MEDIA_ROOT) / job.error_report_path
    return path if path.exists() else None


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run a queued import. Returns None when another worker already claimed it.

    The uploaded file holds raw personal data: whatever the outcome, it is deleted once the
    import has run, and the job keeps only its counts, message and error report.
    """
    now = timezone.now()
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportStatus.PENDING).update(
        status=ImportStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        phase="Starting",
    )
    if not claimed:
        return None
    with _heartbeat(job_id):
        return _import_job_run(job_id)


def _import_job_run(job_id: int) -> ImportJob:
    job = ImportJob.objects.get(pk=job_id)
    source = Path(settings.MEDIA_ROOT) / job.file_path
    report = imports_dir() / f"{job.pk}-errors.csv"
    last = [0.0]
    side = _ProgressConnection()

    def progress(phase: str, percent: int, rows_read: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_SECONDS and percent < 100:
            return
        last[0] = now
        side.save(job_id, phase=phase, progress=percent, rows_read=rows_read)

    try:
        result = customers_import_file(
            kind=ImportKind(job.kind),
            path=source,
            error_report=report,
            progress=progress,
            replace=job.replace_devices,
        )
    except MalformedFile as exc:
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportStatus.FAILED,
            message=str(exc),
            phase="Rejected: nothing was changed",
            finished_at=timezone.now(),
        )
    except Exception as exc:
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportStatus.FAILED,
            message=f"The import stopped on an unexpected error ({type(exc).__name__}); "
            "nothing was changed. Try again, and tell an administrator if it repeats.",
            phase="Failed",
            finished_at=timezone.now(),
        )
        raise
    else:
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportStatus.SUCCEEDED,
            phase="Done",
            progress=100,
            rows_read=result.rows_read,
            rows_inserted=result.rows_inserted,
            rows_updated=result.rows_updated,
            rows_unchanged=result.rows_unchanged,
            error_rows=result.error_rows,
            error_count=result.error_count,
            error_report_path=str(report.relative_to(settings.MEDIA_ROOT))
            if result.error_count
            else "",
            stats={
                **result.stats,
                "ignored_columns": result.ignored_columns,
                **({"devices_removed": result.rows_deleted} if job.replace_devices else {}),
            },
            finished_at=timezone.now(),
        )
        if not result.error_count:
            report.unlink(missing_ok=True)
    finally:
        side.close()
        source.unlink(missing_ok=True)
        ImportJob.objects.filter(pk=job_id).update(file_path="")
    return ImportJob.objects.get(pk=job_id)


# ---- the watchdog: no import stays Running without a live worker ------------------------


def import_stale_seconds() -> int:
    return int(settings.IMPORT_STALE_SECONDS)


@contextlib.contextmanager
def _heartbeat(job_id: int) -> Iterator[None]:
    """Beat the job's heartbeat from a thread (its own connection) while the import runs:
    the import's own connection sits in one long transaction on PostgreSQL."""
    if connection.in_atomic_block:  # another connection could not see the job (tests)
        yield
        return
    stop = threading.Event()
    interval = max(0.2, min(import_stale_seconds() / 4, 10.0))

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    ImportJob.objects.filter(pk=job_id, status=ImportStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:  # busy (SQLite's write lock) or unreachable: next beat
                    logger.info("import job %s: heartbeat not written this time", job_id)
        finally:
            connections.close_all()

    beater = threading.Thread(target=beat, name=f"import-{job_id}-heartbeat", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join(timeout=interval + 10)


def _enqueue_import(job_id: int) -> None:
    from customers.tasks import import_job_run_task

    try:
        import_job_run_task.delay(job_id)
    except Exception:
        logger.warning("could not enqueue import job %s; the watchdog retries", job_id,
                       exc_info=True)  # fmt: skip


def import_jobs_watchdog(*, now: dt.datetime | None = None) -> dict[str, list[int]]:
    """Every scheduler tick. A running job whose heartbeat is older than
    IMPORT_STALE_SECONDS lost its worker (killed, out of memory): the import saves
    everything in its last transaction, so nothing was saved and the job is queued again,
    up to IMPORT_MAX_ATTEMPTS starts; then it is rejected with the reason. A queued job
    whose message was lost is enqueued again, at most once per stale period. What happened
    is written on the job (the Data page shows it)."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=import_stale_seconds())
    dead = Q(status=ImportStatus.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at=None))
    done: dict[str, list[int]] = {"requeued": [], "failed": [], "enqueued": []}
    for job in ImportJob.objects.filter(dead):
        last = (
            timezone.localtime(job.heartbeat_at).strftime("%H:%M:%S")
            if job.heartbeat_at
            else "never"
        )
        source = Path(settings.MEDIA_ROOT) / job.file_path if job.file_path else None
        if job.attempts >= IMPORT_MAX_ATTEMPTS or source is None or not source.exists():
            changed = (
                ImportJob.objects.filter(pk=job.pk)
                .filter(dead)
                .update(
                    status=ImportStatus.FAILED,
                    phase="Failed: the worker stopped",
                    message=(
                        f"The worker importing this file stopped {job.attempts} time(s) (last "
                        f"sign of life {last}); the watchdog ended the import. Nothing was "
                        "changed. Upload the file again; if it stops again, ask an administrator "
                        "to look at the worker's log (a crash or running out of memory), or "
                        "split the file."
                    ),
                    finished_at=now,
                )
            )
            if changed:
                done["failed"].append(job.pk)
                if source is not None:
                    source.unlink(missing_ok=True)
                _notify_import_failed(job)
            continue
        with transaction.atomic():
            if (
                ImportJob.objects.filter(pk=job.pk)
                .filter(dead)
                .update(
                    status=ImportStatus.PENDING,
                    enqueued_at=now,
                    progress=0,
                    phase=(
                        f"Queued again: its worker stopped at {last} (start "
                        f"{job.attempts + 1} of at most {IMPORT_MAX_ATTEMPTS})"
                    ),
                )
            ):
                transaction.on_commit(partial(_enqueue_import, job.pk))
                done["requeued"].append(job.pk)
    lost = ImportJob.objects.filter(status=ImportStatus.PENDING).filter(
        Q(enqueued_at__lt=stale) | Q(enqueued_at=None, created_at__lt=stale)
    )
    for job_id in lost.values_list("pk", flat=True):
        with transaction.atomic():
            if (
                ImportJob.objects.filter(pk=job_id, status=ImportStatus.PENDING)
                .filter(Q(enqueued_at__lt=stale) | Q(enqueued_at=None, created_at__lt=stale))
                .update(enqueued_at=now)
            ):
                transaction.on_commit(partial(_enqueue_import, job_id))
                done["enqueued"].append(job_id)
    if any(done.values()):
        logger.warning("import watchdog: %s", done)
    return done


def _notify_import_failed(job: ImportJob) -> None:
    from django.urls import reverse

    from accounts.models import Role
    from notifications.models import NotificationLevel
    from notifications.services import notify

    job.refresh_from_db()
    users = [job.created_by] if job.created_by and job.created_by.is_active else None
    notify(
        users=users,
        role=None if users else Role.OPERATOR,
        level=NotificationLevel.ERROR,
        title=f"The import of “{job.original_name}” failed",
        body=job.message,
        url=reverse("customers:overview"),
    )


class _ProgressConnection:
    """Saves a running job's progress where the Data page can see it.

    On PostgreSQL the import runs in one transaction (customers.loading), so progress saved
    through Django's connection would only show at the end: while that connection is in a
    transaction, progress goes through a second, autocommit connection instead.
    """

    def __init__(self) -> None:
        self._side: BaseDatabaseWrapper | None = None

    def save(self, job_id: int, **values) -> None:
        if not (connection.vendor == "postgresql" and connection.in_atomic_block):
            ImportJob.objects.filter(pk=job_id).update(**values)
            return
        if self._side is None:
            main = connections[DEFAULT_DB_ALIAS]
            self._side = type(main)(dict(main.settings_dict), main.alias)
        # Plain fields (phase, progress, rows_read): their columns carry their names.
        assignments = ", ".join(f"{name} = %s" for name in values)
        with self._side.cursor() as cursor:
            cursor.execute(
                f"UPDATE {ImportJob._meta.db_table} SET {assignments} WHERE id = %s",
                [*values.values(), job_id],
            )

    def close(self) -> None:
        if self._side is not None:
            self._side.close()


# ---- removing customers -------------------------------------------------------------------

DELETE_CHUNK = 5000


class CustomerDeletion(NamedTuple):
    deleted: int  # customers removed (with their devices and orders)
    not_found: int  # ids listed that the store does not hold


def customers_delete(*, customer_ids: Iterable[str]) -> CustomerDeletion:
    """Remove customers with their devices and orders, in one transaction.

    Snapshots keep customer ids, not rows, so past deliveries stay as they were; the next
    keep-in-sync delivery removes exactly the ids its audience's ledger recorded for them.
    """
    ids = sorted({i.strip() for i in customer_ids if i and i.strip()})
    deleted = 0
    with transaction.atomic():
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = ids[start : start + DELETE_CHUNK]
            Device.objects.filter(customer_id__in=chunk).delete()
            Order.objects.filter(customer_id__in=chunk).delete()
            deleted += (
                Customer.objects.filter(customer_id__in=chunk)
                .delete()[1]
                .get(Customer._meta.label, 0)
            )
    return CustomerDeletion(deleted=deleted, not_found=len(ids) - deleted)
