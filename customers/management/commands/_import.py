"""Shared body of `import_customers`, `import_devices` and `import_orders`."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from customers.csv_columns import SPECS, ImportKind
from customers.loading import LoadResult, MalformedFile
from customers.models import ImportJob, ImportStatus
from customers.services import customers_import_file, imports_dir


def error_report_path(source: Path) -> Path:
    """Next to the file when that folder is writable, else under MEDIA_ROOT/imports/."""
    beside = source.with_name(source.name + ".errors.csv")
    try:
        beside.touch()
        return beside
    except OSError:
        return imports_dir() / beside.name


def summary(result: LoadResult, seconds: float) -> str:
    rate = result.rows_read / seconds if seconds else 0
    parts = [
        f"{result.rows_read:,} rows read in {seconds:.1f} s ({rate:,.0f} rows/s)",
        f"{result.rows_inserted:,} new",
        f"{result.rows_updated:,} updated",
        f"{result.rows_unchanged:,} unchanged",
        f"{result.error_rows:,} rows with errors",
    ]
    for name, count in sorted(result.stats.items()):
        parts.append(f"{count:,} {name.replace('_', ' ')} (kept, not sendable)")
    return "; ".join(parts)


def record_command_import(
    *,
    kind: ImportKind,
    file: Path,
    started_at: dt.datetime,
    result: LoadResult | None = None,
    refused: str = "",
) -> ImportJob:
    """List an import made from the command line on the Data page, beside the uploads:
    what was imported, or why the file was refused (nothing was changed then). The file
    itself stays where it is; its error report is written next to it."""
    job = ImportJob(
        kind=kind.value,
        original_name=file.name[:255],
        file_path="",
        size_bytes=file.stat().st_size if file.exists() else 0,
        started_at=started_at,
        finished_at=timezone.now(),
        created_by=None,
    )
    if result is None:
        job.status = ImportStatus.FAILED
        job.phase = "Refused (command line): nothing was changed"
        job.message = refused
    else:
        job.status = ImportStatus.SUCCEEDED
        job.phase = "Done (command line)"
        job.progress = 100
        job.rows_read = result.rows_read
        job.rows_inserted = result.rows_inserted
        job.rows_updated = result.rows_updated
        job.rows_unchanged = result.rows_unchanged
        job.error_rows = result.error_rows
        job.error_count = result.error_count
        job.stats = {**result.stats, "ignored_columns": result.ignored_columns}
    job.save()
    return job


class ImportCommand(BaseCommand):
    kind: ImportKind
    can_replace = False  # devices: --replace

    def add_arguments(self, parser: CommandParser) -> None:
        spec = SPECS[self.kind]
        parser.add_argument("file", type=Path, help=f"CSV file of {spec.kind.value}")
        parser.description = (
            f"Import {spec.kind.value} from a UTF-8 CSV file (upsert on "
            f"{', '.join(spec.key)}). Columns: "
            + ", ".join(f"{c.name}{'*' if c.required else ''}" for c in spec.columns)
            + " (* required)."
        )
        if self.can_replace:
            parser.add_argument(
                "--replace",
                action="store_true",
                help="the file holds all the devices of each customer it lists: their other "
                "devices are removed (the next keep-in-sync delivery removes their ids)",
            )

    def handle(self, *args, file: Path, replace: bool = False, **options) -> None:
        if not file.is_file():
            raise CommandError(f"{file} is not a file")
        report = error_report_path(file)
        started = time.monotonic()
        started_at = timezone.now()
        tty = sys.stdout.isatty()

        def progress(phase: str, percent: int, rows: int) -> None:
            line = f"{phase}: {percent:3d}%  {rows:,} rows"
            if tty:
                self.stdout.write(f"\r{line}   ", ending="")
                self.stdout.flush()
            else:
                self.stdout.write(line)

        try:
            result = customers_import_file(
                kind=self.kind, path=file, error_report=report, progress=progress, replace=replace
            )
        except MalformedFile as exc:
            report.unlink(missing_ok=True)
            record_command_import(
                kind=self.kind, file=file, started_at=started_at, refused=str(exc)
            )
            raise CommandError(f"{file}: {exc} Nothing was changed.") from None
        record_command_import(kind=self.kind, file=file, started_at=started_at, result=result)
        if tty:
            self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(summary(result, time.monotonic() - started)))
        if replace:
            self.stdout.write(f"{result.rows_deleted:,} devices not in the file removed")
        if result.ignored_columns:
            self.stdout.write(f"Ignored columns: {', '.join(result.ignored_columns)}")
        if result.error_count:
            self.stdout.write(
                self.style.WARNING(f"{result.error_count:,} errors, report: {report}")
            )
        else:
            report.unlink(missing_ok=True)
