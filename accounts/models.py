from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MARKETER = "marketer", "Marketer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


# Each role can do everything the roles before it can.
ROLE_RANK = {Role.VIEWER: 0, Role.MARKETER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    restricted_pii = models.BooleanField(
        "restricted PII",
        default=False,
        help_text="Hide raw emails, phones and device ids and block recipient downloads.",
    )

    def has_role(self, role: Role | str) -> bool:
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    @property
    def can_edit(self) -> bool:
        """Build segments and campaigns, schedule them."""
        return self.has_role(Role.MARKETER)

    @property
    def can_operate(self) -> bool:
        """Connect TikTok, manage destinations and default attributes, import data."""
        return self.has_role(Role.OPERATOR)

    @property
    def can_administer(self) -> bool:
        return self.has_role(Role.ADMIN)

    @property
    def sees_pii(self) -> bool:
        return not self.restricted_pii
