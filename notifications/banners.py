from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from notifications.selectors import unread_count


def unread_banner(request: HttpRequest) -> list[dict[str, Any]]:
    """The header's unread count: shown only while the user has unread notifications."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    list_url = reverse("notifications:list")
    if request.path == list_url:
        return []
    count = unread_count(user)
    if not count:
        return []
    return [
        {
            "level": "warning",
            "html": format_html(
                'You have {} unread notification{}. <a class="btn btn-small" href="{}">Open</a>',
                count,
                "" if count == 1 else "s",
                list_url,
            ),
        }
    ]
