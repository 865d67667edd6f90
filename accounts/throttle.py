"""Sign-in throttling (django-axes): the backend in front of Django's, and the lockout page."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuses a sign-in while its username and address are locked out.

    Every sign-in over the web passes the request (the login page's form does), so this
    throttles them all. `authenticate()` without a request is not reachable from the web
    (the test client's `login()`, a shell): there is nothing to throttle by, so the decision
    is left to the next backend instead of raising as django-axes' backend does.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_address(request: HttpRequest) -> str | None:
    """The address a sign-in came from (AXES_CLIENT_IP_CALLABLE).

    Behind TRUSTED_PROXIES proxies, REMOTE_ADDR is the nearest proxy's for everyone, so the
    address is read from X-Forwarded-For: each proxy appends the address it saw, so the
    entry that many places from the end is the one our outermost proxy wrote. Entries to
    its left came from the client and could be forged, so they are never used.
    """
    proxies = settings.TRUSTED_PROXIES
    if proxies:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """The page a locked-out sign-in gets (AXES_LOCKOUT_CALLABLE); it names no username."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": minutes}
    return render(request, "accounts/locked_out.html", context, status=429)
