"""The one date-time format and "ago" of the app (accounts/templatetags/when.py)."""

from __future__ import annotations

import datetime as dt

from django.template import Context, Template
from django.utils import timezone


def render(source: str, **context) -> str:
    return Template(source).render(Context(context))


def test_when_names_the_time_zone_and_the_weekday(settings):
    settings.TIME_ZONE = "Europe/Paris"
    moment = dt.datetime(2026, 12, 3, 13, 5, tzinfo=dt.UTC)
    with timezone.override("Europe/Paris"):
        assert render("{{ t|when }}", t=moment) == "Thu 3 Dec 2026, 14:05 CET"
    assert render("{{ t|when }}", t=None) == ""


def test_ago_says_just_now_instead_of_zero_minutes():
    now = timezone.now()
    assert render("{{ t|ago }}", t=now - dt.timedelta(seconds=20)) == "just now"
    assert render("{{ t|ago }}", t=now - dt.timedelta(minutes=5, seconds=3)) == "5\xa0minutes ago"
    assert render("{{ t|ago }}", t=now + dt.timedelta(hours=2, minutes=1)) == "in 2\xa0hours"


def test_names_wrap_at_their_underscores_and_stay_escaped():
    out = render("{{ n|break_at_underscores }}", n="Spring_Sale_<b>Gold</b>")
    assert out == "Spring_<wbr>Sale_<wbr>&lt;b&gt;Gold&lt;/b&gt;"
