"""Issue 12 item 1, walked in Chromium: a one-time delivery at a chosen date and time,
each input saving on change (date first, then time; and time first), and a launch date
set before any delivery date exists."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from campaigns.models import Campaign
from tests.browser.test_campaigns import _post
from tests.factories import CampaignFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _open_editor(page, live_server, sign_in) -> Campaign:
    marketer = UserFactory(username="maria", role=Role.MARKETER)
    campaign = CampaignFactory(name="Spring_Sale", created_by=marketer)
    sign_in(marketer)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    return campaign


def test_a_one_time_delivery_date_then_time(page, live_server, sign_in, screenshot):
    campaign = _open_editor(page, live_server, sign_in)
    next_year = dt.date.today().year + 1
    # A new campaign is one-time, "Schedule delivery", with no date yet.
    expect(page.locator("#timing-mode")).to_have_value("one_time")
    expect(page.locator("#timing-at")).to_be_checked()

    with _post(page, "/timing/"):
        page.fill("#run-date", f"{next_year}-03-14")
    # The date stays, and the time is filled in for the person to adjust.
    expect(page.locator("#run-date")).to_have_value(f"{next_year}-03-14")
    expect(page.locator("#run-time")).to_have_value("09:00")

    with _post(page, "/timing/"):
        page.fill("#run-time", "16:45")
    expect(page.locator("#run-date")).to_have_value(f"{next_year}-03-14")
    expect(page.locator("#run-time")).to_have_value("16:45")
    expect(page.locator("#timing-summary")).to_contain_text("16:45")
    screenshot("campaign_timing_one_time")

    campaign.refresh_from_db()
    tz = ZoneInfo(campaign.timezone)
    assert campaign.asap is False
    assert campaign.run_at.astimezone(tz).replace(tzinfo=None) == dt.datetime(
        next_year, 3, 14, 16, 45
    )

    # Reload: what was saved is what is shown.
    page.reload()
    expect(page.locator("#run-date")).to_have_value(f"{next_year}-03-14")
    expect(page.locator("#run-time")).to_have_value("16:45")


def test_a_one_time_delivery_time_first_keeps_the_time(page, live_server, sign_in):
    campaign = _open_editor(page, live_server, sign_in)
    # A new campaign is one-time, "Schedule delivery", with no date yet.
    expect(page.locator("#timing-mode")).to_have_value("one_time")
    expect(page.locator("#timing-at")).to_be_checked()
    with _post(page, "/timing/"):
        page.fill("#run-time", "23:59")
    expect(page.locator("#run-time")).to_have_value("23:59")
    assert page.locator("#run-date").input_value() != ""
    campaign.refresh_from_db()
    local = campaign.run_at.astimezone(ZoneInfo(campaign.timezone))
    assert (local.hour, local.minute) == (23, 59)
    assert local > dt.datetime.now(ZoneInfo(campaign.timezone))


def test_a_launch_date_before_any_delivery_date(page, live_server, sign_in):
    campaign = _open_editor(page, live_server, sign_in)
    with _post(page, "/launch/"):
        page.uncheck("#launch-default")
    expect(page.locator("#launch-date")).not_to_have_value("")
    next_year = dt.date.today().year + 1
    with _post(page, "/launch/"):
        page.fill("#launch-date", f"{next_year}-04-01")
    with _post(page, "/launch/"):
        page.fill("#launch-time", "10:30")
    expect(page.locator("#launch-date")).to_have_value(f"{next_year}-04-01")
    expect(page.locator("#launch-time")).to_have_value("10:30")
    campaign.refresh_from_db()
    assert campaign.launch_at.astimezone(ZoneInfo(campaign.timezone)).replace(
        tzinfo=None
    ) == dt.datetime(next_year, 4, 1, 10, 30)
