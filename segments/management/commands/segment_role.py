"""manage.py segment_role: create or update the PostgreSQL login segment SQL runs as."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from segments.roles import SegmentRoleError, ensure_segment_role


class Command(BaseCommand):
    help = (
        "Create or update the PostgreSQL role that SQL segments run as (SEGMENT_DB_USER): "
        "SELECT on customers, devices and orders only. Runs after every migrate too."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            done = ensure_segment_role(using=options["database"])
        except SegmentRoleError as exc:
            raise CommandError(str(exc)) from None
        if done is None:
            self.stdout.write("SQLite: segment SQL is fenced by the authorizer; no role needed.")
        else:
            self.stdout.write(f"Segment SQL role {settings.SEGMENT_DB_USER!r} {done}.")
