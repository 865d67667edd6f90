"""Import benchmark: N generated customers from CSV into PostgreSQL through the import path.

    .venv/bin/python bench/import_customers.py                       # 1,000,000 rows
    .venv/bin/python bench/import_customers.py --rows 200000 \\
        --database-url postgres://postgres@127.0.0.1:5432/bench_import

Uses only the database named in --database-url (default: bench_import on 127.0.0.1, created
when missing, its customers emptied before the run). Prints the machine, phone parsing
cost, rows/s and peak memory (RSS) of this process and of the worker processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
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
    from django.db import connection

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
        rss_before = peak_mb(resource.RUSAGE_SELF)
        started = time.perf_counter()
        result = load_csv(
            ImportKind.CUSTOMERS, path, error_report=Path(folder) / "errors.csv", workers=workers
        )
        seconds = time.perf_counter() - started

    own, children = peak_mb(resource.RUSAGE_SELF), peak_mb(resource.RUSAGE_CHILDREN)
    print(f"worker processes: {workers}")
    print(
        f"rows: {result.rows_read:,} read, {result.rows_inserted:,} inserted, "
        f"{result.rows_updated:,} updated, {result.error_rows:,} with errors; "
        f"{result.stats.get('unusable_phones', 0):,} unusable phones, "
        f"{result.stats.get('unusable_emails', 0):,} unusable emails"
    )
    print(f"time: {seconds:.1f} s -> {result.rows_read / seconds:,.0f} rows/s")
    print(
        f"peak RSS: import process {own:.0f} MB (before the import {rss_before:.0f} MB), "
        f"largest worker {children:.0f} MB, sum {own + workers * children:.0f} MB"
    )


if __name__ == "__main__":
    main()
