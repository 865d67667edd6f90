"""Import benchmark: N generated customers from CSV into PostgreSQL through the import path.

    .venv/bin/python bench/import_customers.py                       # 1,000,000 rows
    .venv/bin/python bench/import_customers.py --rows 200000 \\
        --database-url postgres://postgres@127.0.0.1:5432/bench_import

Uses only the database named in --database-url (default: bench_import on 127.0.0.1, created
when missing, its customers emptied before the run). Prints the machine and its load, phone
parsing cost, rows/s, CPU seconds of this process, the workers and the PostgreSQL backend,
and memory: peak RSS of each process, and the peak of the sum over this process and its
workers sampled every 0.25 s, as RSS (pages shared after fork counted in every process) and
as PSS (shared pages split between the processes that share them: the honest total).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_import"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ensure_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    info = psycopg.conninfo.conninfo_to_dict(url.replace("postgres://", "postgresql://", 1))
    name = info.pop("dbname")
    info["dbname"] = "postgres"
    with psycopg.connect(**info, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB, from /proc/PID/smaps_rollup; zeros if gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, pss


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


class MemorySampler(threading.Thread):
    """Peak total RSS and PSS of this process and its children, sampled every 0.25 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_rss = self.peak_pss = 0
        self.most_processes = 1
        self._halt = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._halt.wait(0.25):
            pids = [me, *_children(me)]
            sizes = [_memory_kb(pid) for pid in pids]
            self.peak_rss = max(self.peak_rss, sum(r for r, _ in sizes))
            self.peak_pss = max(self.peak_pss, sum(p for _, p in sizes))
            self.most_processes = max(self.most_processes, len(pids))

    def stop(self) -> None:
        self._halt.set()
        self.join()


def backend_cpu_seconds(pid: int) -> float:
    """CPU seconds of the PostgreSQL backend serving this connection (same machine only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--workers", type=int, default=None, help="default: IMPORT_WORKERS")
    parser.add_argument("--keep-csv", type=Path, help="reuse or keep the CSV at this path")
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        sys.exit("--database-url must point at PostgreSQL")

    ensure_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import DatabaseError, connection

    from customers.csv_columns import ImportKind
    from customers.demo import DemoGenerator
    from customers.loading import load_csv, worker_count
    from customers.phones import PhoneNormalizer
    from destinations.tiktok.normalize import normalize_phone

    call_command("migrate", "customers", verbosity=0)  # and what it depends on, no more
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE customers CASCADE")

    print(f"machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        print(f"database: PostgreSQL {cursor.fetchone()[0]} ({connection.settings_dict['NAME']})")

    # Phone parsing on its own: what one core does, with and without the fast path.
    sample = DemoGenerator(seed=7, today=dt.date(2025, 1, 1))
    phones = [(sample.phone("US", (415, 212, 312)), "US") for _ in range(20_000)]
    phones += [(sample.phone(c, ()), c) for c in ("GB", "DE", "FR", "IN") for _ in range(2_500)]
    started = time.perf_counter()
    for value, region in phones:
        normalize_phone(value, region)
    reference = (time.perf_counter() - started) / len(phones) * 1e6
    fast = PhoneNormalizer()
    started = time.perf_counter()
    for value, region in phones:
        fast.normalize(value, region)
    shortcut = (time.perf_counter() - started) / len(phones) * 1e6
    print(
        f"phone parsing, one core: normalize_phone {reference:.1f} us/number, "
        f"import fast path {shortcut:.1f} us/number"
    )

    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        path = args.keep_csv or Path(folder) / "customers.csv"
        if not path.exists():
            started = time.perf_counter()
            DemoGenerator(seed=1, today=dt.date(2025, 1, 1)).write_customers(path, args.rows)
            print(
                f"generated {args.rows:,} customers CSV "
                f"({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s"
            )
        size = path.stat().st_size
        workers = worker_count(size) if args.workers is None else args.workers
        with connection.cursor() as cursor:
            # Every run starts from the same WAL state (superusers only; else as it is).
            with contextlib.suppress(DatabaseError):
                cursor.execute("CHECKPOINT")
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        rss_before = peak_mb(resource.RUSAGE_SELF)
        load = os.getloadavg()[0]
        sampler = MemorySampler()
        sampler.start()
        cpu_before, backend_before = (
            resource.getrusage(resource.RUSAGE_SELF),
            backend_cpu_seconds(backend),
        )
        started = time.perf_counter()
        result = load_csv(
            ImportKind.CUSTOMERS, path, error_report=Path(folder) / "errors.csv", workers=workers
        )
        seconds = time.perf_counter() - started
        sampler.stop()
        cpu_after, backend_after = (
            resource.getrusage(resource.RUSAGE_SELF),
            backend_cpu_seconds(backend),
        )

    own, children = peak_mb(resource.RUSAGE_SELF), peak_mb(resource.RUSAGE_CHILDREN)
    workers_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    print(f"worker processes: {workers}; load average before the import: {load:.2f}")
    print(
        f"rows: {result.rows_read:,} read, {result.rows_inserted:,} inserted, "
        f"{result.rows_updated:,} updated, {result.error_rows:,} with errors; "
        f"{result.stats.get('unusable_phones', 0):,} unusable phones, "
        f"{result.stats.get('unusable_emails', 0):,} unusable emails"
    )
    print(f"time: {seconds:.1f} s -> {result.rows_read / seconds:,.0f} rows/s")
    print(
        f"CPU: this process {own_cpu:.1f} s, "
        f"workers {workers_cpu.ru_utime + workers_cpu.ru_stime:.1f} s, "
        f"PostgreSQL backend {backend_after - backend_before:.1f} s"
    )
    print(
        f"peak RSS: import process {own:.0f} MB (before the import {rss_before:.0f} MB), "
        f"largest worker {children:.0f} MB"
    )
    print(
        f"peak total of this process and its workers ({sampler.most_processes} processes): "
        f"RSS {sampler.peak_rss / 1024:.0f} MB, PSS {sampler.peak_pss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
