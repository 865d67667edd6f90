"""Create one demo user per role (once) and print their passwords."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import Role, User
from accounts.services import user_create

DEMO_USERS = [
    ("admin", Role.ADMIN, False),
    ("operator", Role.OPERATOR, False),
    ("marketer", Role.MARKETER, False),
    ("viewer", Role.VIEWER, False),
    ("analyst", Role.MARKETER, True),
]


class Command(BaseCommand):
    help = "Create the demo users (admin, operator, marketer, viewer, analyst) and print passwords."

    def handle(self, *args: Any, **options: Any) -> None:
        path = settings.VAR_DIR / "demo-users.txt"
        lines = []
        for username, role, restricted in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            password = "demo-" + secrets.token_urlsafe(9)
            user_create(username=username, password=password, role=role, restricted_pii=restricted)
            note = " (restricted PII)" if restricted else ""
            lines.append(f"{username:<10} {password:<20} {role.label}{note}")
        if lines:
            with path.open("a") as fh:
                fh.write("\n".join(lines) + "\n")
            path.chmod(0o600)
        if path.exists():
            self.stdout.write("Demo users (username, password, role), also in var/demo-users.txt:")
            self.stdout.write(path.read_text().rstrip())
