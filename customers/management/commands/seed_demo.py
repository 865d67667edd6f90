"""`manage.py seed_demo --customers N --seed S`: realistic demo data through the import path."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.csv_columns import ImportKind
from customers.demo import DemoGenerator
from customers.management.commands._import import summary
from customers.services import customers_import_file


class Command(BaseCommand):
    help = (
        "Generate deterministic demo customers, devices and orders (same seed and --today, "
        "same data) and import them through the CSV import path."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=20_000)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--orders-per-customer",
            type=float,
            default=5.0,
            help="mean orders per buying customer (skewed; about 90%% of customers buy)",
        )
        parser.add_argument(
            "--today",
            type=dt.date.fromisoformat,
            default=None,
            help="the date the data ends at (YYYY-MM-DD); default: today",
        )

    def handle(
        self,
        *args,
        customers: int,
        seed: int,
        orders_per_customer: float,
        today: dt.date | None,
        **options,
    ) -> None:
        if customers < 0 or orders_per_customer < 0:
            raise CommandError("--customers and --orders-per-customer must not be negative")
        generator = DemoGenerator(
            seed=seed, today=today or dt.date.today(), orders_per_customer=orders_per_customer
        )
        scratch = Path(settings.VAR_DIR) / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=scratch, prefix="seed-") as folder:
            files = generator.write(Path(folder), customers)
            self.stdout.write(
                f"Generated {customers:,} customers (seed {seed}) in "
                f"{time.monotonic() - started:.1f} s"
            )
            for kind, path in (
                (ImportKind.CUSTOMERS, files.customers),
                (ImportKind.DEVICES, files.devices),
                (ImportKind.ORDERS, files.orders),
            ):
                step = time.monotonic()
                result = customers_import_file(
                    kind=kind, path=path, error_report=Path(folder) / f"{kind}.errors.csv"
                )
                self.stdout.write(f"{kind.value}: {summary(result, time.monotonic() - step)}")
                if result.error_rows:
                    raise CommandError(f"demo {kind.value} had {result.error_rows} bad rows")
        self.stdout.write(
            self.style.SUCCESS(f"Demo data loaded in {time.monotonic() - started:.1f} s")
        )
