"""One way to show a moment across the app (loaded for every template as a builtin).

- ``{{ value|when }}``: "Thu 3 Dec 2026, 14:05 CET", in the active time zone, named.
- ``{{ value|ago }}``: "just now", "5 minutes ago", "in 2 hours" (``timesince`` without
  "0 minutes").
- ``{{ name|break_at_underscores }}``: lets a long name wrap after its underscores.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

register = template.Library()

FORMAT = "D j M Y, H:i T"


@register.filter
def when(value: dt.datetime | None) -> str:
    if not value:
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return date_format(value, FORMAT)


@register.filter
def ago(value: dt.datetime | None) -> str:
    if not value:
        return ""
    now = timezone.now()
    seconds = (now - value).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    if seconds > 0:
        return f"{timesince(value, now, depth=1)} ago"
    return f"in {timeuntil(value, now, depth=1)}"


@register.filter
def break_at_underscores(value: str | None) -> SafeString:
    """A long name such as an audience name may wrap after its underscores, not mid-word."""
    escaped = str(conditional_escape(value or ""))
    return mark_safe(escaped.replace("_", "_<wbr>"))  # noqa: S308 (escaped above)
