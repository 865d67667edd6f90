from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from campaigns.models import Cadence, Campaign, EndMode, TimingMode
from campaigns.timing import default_launch_at, next_occurrence

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")


def recurring(**kw) -> Campaign:
    values = dict(
        timing_mode=TimingMode.RECURRING, cadence=Cadence.DAILY, time_of_day=dt.time(9, 0),
        timezone="Europe/Paris", start_date=dt.date(2030, 3, 28), end_mode=EndMode.NEVER,
    )  # fmt: skip
    values.update(kw)
    return Campaign(name="t", **values)


def test_daily_keeps_local_wall_clock_across_dst():
    c = recurring()
    first = next_occurrence(c, dt.datetime(2030, 3, 1, tzinfo=UTC))
    assert first == dt.datetime(2030, 3, 28, 9, 0, tzinfo=PARIS)
    assert first.utcoffset() == dt.timedelta(0) and first.hour == 8  # CET = UTC+1
    # Paris moves to summer time on 31 March 2030: 09:00 local is now 07:00 UTC.
    after = next_occurrence(c, dt.datetime(2030, 3, 31, 0, 0, tzinfo=UTC))
    assert after == dt.datetime(2030, 3, 31, 7, 0, tzinfo=UTC)


def test_weekly_on_chosen_weekdays():
    c = recurring(cadence=Cadence.WEEKLY, weekdays=[0, 4])  # Monday, Friday
    t = dt.datetime(2030, 3, 1, tzinfo=UTC)
    days = []
    for _ in range(4):
        t = next_occurrence(c, t)
        days.append(t.astimezone(PARIS).strftime("%a %d"))
    assert days == ["Fri 29", "Mon 01", "Fri 05", "Mon 08"]


def test_monthly_on_the_31st_uses_the_last_day_of_short_months():
    c = recurring(cadence=Cadence.MONTHLY, month_day=31, start_date=dt.date(2030, 1, 1))
    t = dt.datetime(2030, 1, 1, tzinfo=UTC)
    dates = []
    for _ in range(3):
        t = next_occurrence(c, t)
        dates.append(t.astimezone(PARIS).date().isoformat())
    assert dates == ["2030-01-31", "2030-02-28", "2030-03-31"]


def test_end_after_n_deliveries_and_on_date():
    c = recurring(end_mode=EndMode.AFTER_N, end_count=2, deliveries_done=1)
    assert next_occurrence(c, dt.datetime(2030, 3, 1, tzinfo=UTC)) is not None
    c.deliveries_done = 2
    assert next_occurrence(c, dt.datetime(2030, 3, 1, tzinfo=UTC)) is None
    c = recurring(end_mode=EndMode.ON_DATE, end_date=dt.date(2030, 3, 29))
    assert next_occurrence(c, dt.datetime(2030, 3, 29, 8, 0, tzinfo=UTC)) is None
    assert next_occurrence(c, dt.datetime(2030, 3, 29, 7, 0, tzinfo=UTC)) is not None


def test_one_time_and_default_launch_date():
    run_at = dt.datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    c = Campaign(name="t", timing_mode=TimingMode.ONE_TIME, run_at=run_at)
    assert next_occurrence(c, dt.datetime(2030, 1, 1, tzinfo=UTC)) == run_at
    assert default_launch_at(c, dt.datetime(2030, 1, 1, tzinfo=UTC)) == run_at + dt.timedelta(1)
    c.deliveries_done = 1
    assert next_occurrence(c, dt.datetime(2030, 1, 1, tzinfo=UTC)) is None
