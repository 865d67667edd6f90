from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.navigation import nav_and_banners


def roles(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        context: dict[str, Any] = {"can_edit": False, "can_operate": False, "can_administer": False}
    else:
        context = {
            "can_edit": user.can_edit,
            "can_operate": user.can_operate,
            "can_administer": user.can_administer,
        }
    context.update(nav_and_banners(request))
    return context
