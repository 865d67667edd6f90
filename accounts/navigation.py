"""The main navigation and the app-wide banners, shared by every page.

Apps register their entries here rather than in the template, so the menu shows only
what the current user may open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

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
]

# Callables (request) -> list of {"level", "html"} dicts; apps append to this at import.
BANNER_PROVIDERS: list[Callable[[HttpRequest], list[dict[str, Any]]]] = []


def nav_and_banners(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "app_banners": []}
    items = []
    for item in NAV:
        if not user.has_role(item.role):
            continue
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:
            continue  # that app's pages are not installed in this build
        items.append({"label": item.label, "url": url, "active": request.path.startswith(url)})
    banners: list[dict[str, Any]] = []
    for provider in BANNER_PROVIDERS:
        banners.extend(provider(request))
    return {"nav_items": items, "app_banners": banners}
