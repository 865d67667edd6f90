from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Role, User


@transaction.atomic
def user_create(
    *, username: str, password: str, role: Role | str, email: str = "", restricted_pii: bool = False
) -> User:
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "A user with this name already exists."})
    user = User(username=username, email=email, role=Role(role), restricted_pii=restricted_pii)
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


@transaction.atomic
def user_update_access(
    *, user: User, role: Role | str, restricted_pii: bool, is_active: bool, acting_user: User
) -> User:
    if user.pk == acting_user.pk and (Role(role) != Role.ADMIN or not is_active):
        raise ValidationError("You cannot remove your own Admin role or deactivate yourself.")
    if user.pk == acting_user.pk and user.restricted_pii and not restricted_pii:
        # The flag limits what its holder sees: lifting it is another admin's decision.
        raise ValidationError(
            "You cannot lift your own restricted-PII access; ask another admin to do it."
        )
    user.role = Role(role)
    user.restricted_pii = restricted_pii
    user.is_active = is_active
    user.save(update_fields=["role", "restricted_pii", "is_active"])
    return user
