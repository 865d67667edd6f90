"""`manage.py delete_customers ID [ID ...] [--file ids.txt]`: remove customers with their
devices and orders. The next keep-in-sync delivery removes their ids from TikTok."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.services import customers_delete


class Command(BaseCommand):
    help = (
        "Delete customers (with their devices and orders) by customer id; the next "
        "keep-in-sync delivery removes exactly their ids from TikTok."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("customer_ids", nargs="*", help="customer ids to delete")
        parser.add_argument(
            "--file", type=Path, help="a text file with one customer id a line (UTF-8)"
        )

    def handle(self, *args, customer_ids: list[str], file: Path | None, **options) -> None:
        ids = list(customer_ids)
        if file is not None:
            if not file.is_file():
                raise CommandError(f"{file} is not a file")
            try:
                ids += file.read_text(encoding="utf-8-sig").splitlines()
            except UnicodeDecodeError:
                raise CommandError(f"{file} is not UTF-8 text; nothing was deleted.") from None
        if not any(i.strip() for i in ids):
            raise CommandError("Name at least one customer id (arguments or --file).")
        outcome = customers_delete(customer_ids=ids)
        self.stdout.write(self.style.SUCCESS(f"{outcome.deleted:,} customers deleted"))
        if outcome.not_found:
            self.stdout.write(f"{outcome.not_found:,} ids were not in the customer store")
