"""Issue 12 item 9, in Chromium: the Deliveries panel of a scheduled recurring campaign
shows its delivery when the scheduler starts it, without a reload."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Role
from campaigns.models import Campaign, CampaignStatus
from deliveries.models import DeliveryStatus
from tests.factories import DeliveryFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_panel_of_a_recurring_campaign_follows_its_delivery(
    page, live_server, sign_in, ready_campaign, user
):  # fixtures from tests/campaigns/conftest.py (see tests/browser/conftest.py)
    user.role = Role.MARKETER
    user.set_password("correct horse battery")
    user.save()
    Campaign.objects.filter(pk=ready_campaign.pk).update(
        status=CampaignStatus.SCHEDULED, next_run_at=timezone.now() + dt.timedelta(seconds=30)
    )
    sign_in(user)
    page.goto(f"{live_server.url}/campaigns/{ready_campaign.pk}/")
    panel = page.locator("#delivery-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".delivery-running")).to_have_count(0)

    # The scheduler's tick starts the delivery (written here as the scheduler writes it).
    DeliveryFactory(campaign=ready_campaign, status=DeliveryStatus.RUNNING)
    Campaign.objects.filter(pk=ready_campaign.pk).update(status=CampaignStatus.RUNNING)
    expect(panel.locator(".delivery-running")).to_contain_text("Running", timeout=10_000)
