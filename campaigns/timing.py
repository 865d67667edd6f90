"""When a campaign delivers: dateutil's rrule in the campaign's own time zone.

Public API:

- ``next_occurrence(campaign, after) -> datetime | None``: the first delivery time strictly
  after ``after`` (aware, returned in UTC), or None when the campaign has no more
  deliveries. One-time: ``run_at`` (or ``after`` itself for "as soon as possible") until
  one delivery is done. Recurring: occurrences of the cadence at ``time_of_day`` wall-clock
  time in ``campaign.timezone`` (so 09:00 stays 09:00 across daylight-saving changes),
  from ``start_date``, until ``end_date`` (inclusive) or ``end_count`` deliveries.
- ``first_occurrence(campaign, now)`` and ``default_launch_at(campaign, now)`` (first
  delivery + 1 day).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil import rrule

if TYPE_CHECKING:
    from campaigns.models import Campaign

UTC = dt.UTC


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_valid_timezone(name: str) -> bool:
    return name in available_timezones()


def _rule(campaign: Campaign) -> rrule.rrule | None:
    from campaigns.models import Cadence, EndMode

    if campaign.start_date is None or campaign.time_of_day is None:
        return None
    start = dt.datetime.combine(campaign.start_date, campaign.time_of_day)
    options: dict = {"dtstart": start, "cache": False}
    if campaign.end_mode == EndMode.ON_DATE and campaign.end_date:
        options["until"] = dt.datetime.combine(campaign.end_date, dt.time(23, 59, 59))
    if campaign.cadence == Cadence.DAILY:
        return rrule.rrule(rrule.DAILY, **options)
    if campaign.cadence == Cadence.WEEKLY:
        days = sorted({int(d) for d in campaign.weekdays or [] if 0 <= int(d) <= 6})
        if not days:
            return None
        return rrule.rrule(rrule.WEEKLY, byweekday=days, **options)
    day = campaign.month_day
    if not day or not 1 <= day <= 31:
        return None
    if day <= 28:
        return rrule.rrule(rrule.MONTHLY, bymonthday=day, **options)
    # "On the 30th": months without that day deliver on their last day instead.
    return rrule.rrule(rrule.MONTHLY, bymonthday=[*range(day, 32), -1], bysetpos=1, **options)


def next_occurrence(campaign: Campaign, after: dt.datetime) -> dt.datetime | None:
    from campaigns.models import EndMode, TimingMode

    if campaign.timing_mode == TimingMode.ONE_TIME:
        if campaign.deliveries_done:
            return None
        if campaign.asap:
            return after
        if campaign.run_at is None:
            return None
        return campaign.run_at.astimezone(UTC)
    if campaign.end_mode == EndMode.AFTER_N and (
        not campaign.end_count or campaign.deliveries_done >= campaign.end_count
    ):
        return None
    rule = _rule(campaign)
    if rule is None:
        return None
    tz = zone(campaign.timezone)
    cursor = after.astimezone(tz).replace(tzinfo=None) - dt.timedelta(hours=3)
    for _ in range(400):  # skip local times that fall at or before `after` (DST folds)
        local = rule.after(cursor, inc=False)
        if local is None:
            return None
        moment = local.replace(tzinfo=tz).astimezone(UTC)
        if moment > after:
            return moment
        cursor = local
    return None


def first_occurrence(campaign: Campaign, now: dt.datetime) -> dt.datetime | None:
    return next_occurrence(campaign, now)


def default_launch_at(campaign: Campaign, now: dt.datetime) -> dt.datetime | None:
    first = first_occurrence(campaign, now)
    return first + dt.timedelta(days=1) if first else None
