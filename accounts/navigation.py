"""The main navigation and the app-wide banners, shared by every page (one context
processor, ``nav_and_banners``).

The menu shows only what the current user may open; Notifications carries the unread
count as a badge. The one app-wide banner is the operators' "reauthorize TikTok" warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.models import Role


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    role: Role


NAV: list[NavItem] = [
    NavItem("Segments", "segments:list", Role.VIEWER),
    NavItem("Campaigns", "campaigns:list", Role.VIEWER),
    NavItem("Destinations", "destinations:list", Role.VIEWER),
    NavItem("Data", "customers:overview", Role.VIEWER),
    NavItem("Settings", "accounts:settings", Role.VIEWER),
    NavItem("Notifications", "notifications:list", Role.VIEWER),
]


def nav_and_banners(request: HttpRequest) -> dict[str, Any]:
    from destinations.banners import reauthorize_banner
    from notifications.selectors import unread_count

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "app_banners": []}
    items = []
    for item in NAV:
        if not user.has_role(item.role):
            continue
        url = reverse(item.url_name)
        entry: dict[str, Any] = {
            "label": item.label,
            "url": url,
            "active": request.path.startswith(url),
        }
        if item.url_name == "notifications:list":
            entry["badge"] = unread_count(user)
        items.append(entry)
    return {"nav_items": items, "app_banners": reauthorize_banner(request)}


def safe_next_url(request: HttpRequest, candidate: str | None, default: str) -> str:
    """`candidate` when it is a path on this site, `default` otherwise.

    Only relative paths ("/segments/3/") are followed: an absolute URL, a scheme-relative
    "//host" or backslash trick, or anything else that could leave the site (an open
    redirect a phishing link could use) falls back to `default`.
    """
    if (
        candidate
        and candidate.startswith("/")
        and candidate.isprintable()  # no control characters: they cannot go in a header
        and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts=None, require_https=request.is_secure()
        )
    ):
        return candidate
    return default
