"""Re-encrypt every stored credential with the newest FIELD_ENCRYPTION_KEYS key.

To rotate: put a new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it),
restart, run this command, then remove the old keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from destinations import crypto
from destinations.models import Destination

ENCRYPTED_COLUMNS = ("access_token", "refresh_token")


class Command(BaseCommand):
    help = "Re-encrypt destination credentials with the newest key in FIELD_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        table = connection.ops.quote_name(Destination._meta.db_table)
        rotated = 0
        with transaction.atomic():
            # Raw SQL: the model field would decrypt on read, and we want the ciphertext.
            with connection.cursor() as cursor:
                columns = ", ".join(connection.ops.quote_name(c) for c in ENCRYPTED_COLUMNS)
                cursor.execute(
                    f"SELECT id, {columns} FROM {table} FOR UPDATE"
                    if connection.vendor == "postgresql"
                    else f"SELECT id, {columns} FROM {table}"
                )
                rows = cursor.fetchall()
            for pk, *values in rows:
                updates = {}
                for column, value in zip(ENCRYPTED_COLUMNS, values, strict=True):
                    if value:
                        try:
                            updates[column] = crypto.rotate(value)
                        except crypto.DecryptionError:
                            raise CommandError(
                                f"destination {pk}: {column} cannot be decrypted with any key "
                                "in FIELD_ENCRYPTION_KEYS; nothing was changed."
                            ) from None
                if updates:
                    sets = ", ".join(f"{connection.ops.quote_name(c)} = %s" for c in updates)
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"UPDATE {table} SET {sets} WHERE id = %s", [*updates.values(), pk]
                        )
                    rotated += 1
        self.stdout.write(f"Re-encrypted the credentials of {rotated} destination(s).")
