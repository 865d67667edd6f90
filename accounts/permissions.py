"""Server-side role checks for views. Hiding a button is never the only guard."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.models import Role

View = Callable[..., HttpResponse]


def role_required(role: Role) -> Callable[[View], View]:
    """Require a signed-in user whose role is at least `role`; 403 otherwise."""

    def decorator(view: View) -> View:
        @wraps(view)
        @login_required
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_role(role):  # type: ignore[union-attr]
                raise PermissionDenied(f"This needs the {role.label} role or higher.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


viewer_required = role_required(Role.VIEWER)
marketer_required = role_required(Role.MARKETER)
operator_required = role_required(Role.OPERATOR)
admin_required = role_required(Role.ADMIN)


def require_pii_access(user: Any) -> None:
    """Raise PermissionDenied for users whose raw identifiers are restricted."""
    if getattr(user, "restricted_pii", True):
        raise PermissionDenied("Your account has restricted PII access: downloads are blocked.")
