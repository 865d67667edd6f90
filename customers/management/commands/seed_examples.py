"""`manage.py seed_examples`: example segments and a draft campaign for a first login."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Role, User
from customers.examples import create_examples


class Command(BaseCommand):
    help = (
        "Create three example Active segments and a draft campaign using them, owned by the "
        "given user (default: the first admin). Does nothing when segments already exist."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", default="", help="username that owns the examples")

    def handle(self, *args: Any, user: str, **options: Any) -> None:
        owner = (
            User.objects.filter(username=user).first()
            if user
            else User.objects.filter(role=Role.ADMIN, is_active=True).order_by("pk").first()
        )
        if owner is None:
            raise CommandError("No such user: create one first (manage.py create_demo_users).")
        made = create_examples(user=owner)
        if made:
            self.stdout.write("Created " + ", ".join(made) + ".")
        else:
            self.stdout.write("Segments exist already: no examples added.")
