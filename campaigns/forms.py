"""Input parsing for the editor's steps. Services validate the meaning; forms the shape."""

from __future__ import annotations

import datetime as dt
from functools import cache
from zoneinfo import available_timezones

from django import forms

from campaigns.models import WEEKDAYS, Cadence, Campaign, EndMode, TimingMode
from campaigns.timing import zone


@cache
def timezone_choices() -> list[tuple[str, str]]:
    names = sorted(n for n in available_timezones() if "/" in n or n == "UTC")
    return [(n, n.replace("_", " ")) for n in names]


class CampaignNameForm(forms.Form):
    name = forms.CharField(max_length=120)


DEFAULT_TIME = dt.time(9, 0)


def complete_datetime(
    date: dt.date | None, time: dt.time | None, previous: dt.datetime | None, timezone: str
) -> dt.datetime:
    """A date and a time in ``timezone`` where either may be missing: a missing part comes
    from ``previous`` (the value saved before), else the time is 09:00 and the date is the
    first day on which that time is still ahead."""
    tz = zone(timezone)
    before = previous.astimezone(tz) if previous else None
    if time is None:
        time = before.time().replace(second=0, microsecond=0) if before else DEFAULT_TIME
    if date is None:
        if before:
            date = before.date()
        else:
            now = dt.datetime.now(tz)
            date = (
                now.date()
                if dt.datetime.combine(now.date(), time, tz) > now
                else (now.date() + dt.timedelta(days=1))
            )
    return dt.datetime.combine(date, time).replace(tzinfo=tz)


class TimingForm(forms.Form):
    timing_mode = forms.ChoiceField(choices=TimingMode.choices, label="Campaign type")
    asap = forms.TypedChoiceField(
        choices=[("0", "Schedule delivery"), ("1", "Deliver ASAP")],
        coerce=lambda v: v == "1",
        required=False,
        empty_value=False,
    )
    run_date = forms.DateField(required=False)
    run_time = forms.TimeField(required=False)
    cadence = forms.ChoiceField(choices=Cadence.choices, required=False)
    weekdays = forms.TypedMultipleChoiceField(
        choices=[(str(n), label) for n, label in WEEKDAYS], coerce=int, required=False
    )
    month_day = forms.IntegerField(min_value=1, max_value=31, required=False)
    time_of_day = forms.TimeField(required=False)
    timezone = forms.ChoiceField(choices=timezone_choices)
    start_date = forms.DateField(required=False)
    end_mode = forms.ChoiceField(choices=EndMode.choices, required=False)
    end_date = forms.DateField(required=False)
    end_count = forms.IntegerField(min_value=1, max_value=10_000, required=False)

    def timing_values(self, campaign: Campaign) -> dict:
        data = self.cleaned_data
        values = {
            "timing_mode": data["timing_mode"],
            "asap": data["asap"],
            "timezone": data["timezone"],
            "run_at": campaign.run_at,
        }
        if data["run_date"] or data["run_time"]:
            # Each input saves on change: a date picked before its time (or the reverse)
            # is completed from what was chosen before, else 09:00 / the next such time.
            values["run_at"] = complete_datetime(
                data["run_date"], data["run_time"], campaign.run_at, data["timezone"]
            )
        elif data["timing_mode"] == TimingMode.ONE_TIME and not data["asap"]:
            values["run_at"] = None
        for field in ("cadence", "end_mode"):
            values[field] = data[field] or getattr(campaign, field)
        for field in ("weekdays", "month_day", "time_of_day", "start_date", "end_date",
                      "end_count"):  # fmt: skip
            values[field] = data[field]
        values["weekdays"] = values["weekdays"] or []
        return values


class LaunchForm(forms.Form):
    use_default = forms.BooleanField(required=False)
    launch_date = forms.DateField(required=False)
    launch_time = forms.TimeField(required=False)

    def clean(self) -> dict:
        data = super().clean()
        return data

    def launch_at(self, campaign: Campaign) -> dt.datetime | None:
        data = self.cleaned_data
        if data["use_default"]:
            return None
        # Unticking "first delivery + 1 day" before any delivery date exists, or picking
        # the date before the time, still gives a launch date the person can then adjust.
        return complete_datetime(
            data.get("launch_date"), data.get("launch_time"), campaign.launch_at,
            campaign.timezone,
        )  # fmt: skip
