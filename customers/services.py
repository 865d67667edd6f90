"""Writes to the customer store: CSV imports (command line and Data page)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from customers.csv_columns import SPECS, ImportKind
from customers.loading import LoadResult, MalformedFile, Progress, load_csv, read_header
from customers.models import ImportJob, ImportStatus

PROGRESS_EVERY_SECONDS = 0.5


def imports_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def customers_import_file(
    *, kind: ImportKind, path: Path, error_report: Path, progress: Progress | None = None
) -> LoadResult:
    """Import one CSV file of `kind`; MalformedFile (nothing changed) if it is unusable."""
    return load_csv(kind, path, error_report=error_report, progress=progress)


def _safe_name(name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "upload"
    return base[-100:]


def import_job_create(*, kind: ImportKind, upload: UploadedFile, user) -> ImportJob:
    """Store the upload under MEDIA_ROOT/imports/, check its header, queue the import.

    A file whose header already shows it cannot be imported is refused here, with the
    reason, and not kept.
    """
    from customers.tasks import import_job_run_task

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
        )
        transaction.on_commit(lambda: import_job_run_task.delay(job.pk))
    return job


def import_job_error_report(job: ImportJob) -> Path | None:
    if not job.error_report_path:
        return None
    path = Path(settings.MEDIA_ROOT) / job.error_report_path
    return path if path.exists() else None


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run a queued import. Returns None when another worker already claimed it."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportStatus.PENDING).update(
        status=ImportStatus.RUNNING, started_at=timezone.now(), phase="Starting"
    )
    if not claimed:
        return None
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
            kind=ImportKind(job.kind), path=source, error_report=report, progress=progress
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
            stats={**result.stats, "ignored_columns": result.ignored_columns},
            finished_at=timezone.now(),
        )
        if not result.error_count:
            report.unlink(missing_ok=True)
    finally:
        side.close()
    return ImportJob.objects.get(pk=job_id)


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
