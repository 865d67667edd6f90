from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.html import format_html

from destinations.selectors import destinations_needing_reauth


def reauthorize_banner(request: HttpRequest) -> list[dict[str, Any]]:
    """Operators see each destination whose token stopped working, with Reauthorize."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.can_operate:
        return []
    banners = []
    for destination in destinations_needing_reauth():
        banners.append(
            {
                "level": "error",
                "html": format_html(
                    'TikTok destination <a href="{}">{}</a> needs reauthorization: its '
                    "deliveries wait until it is reauthorized."
                    '<form method="post" action="{}" class="inline">'
                    '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
                    '<button class="btn btn-small btn-primary" type="submit">Reauthorize</button>'
                    "</form>",
                    reverse("destinations:detail", args=[destination.pk]),
                    destination.name,
                    reverse("destinations:reauthorize", args=[destination.pk]),
                    get_token(request),
                ),
            }
        )
    return banners
