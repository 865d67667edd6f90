"""The delivery summary page in Chromium at 1440 px: what a finished delivery did, per
sub-audience, treatment and destination (a screenshot for the README)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from deliveries.models import Delivery
from deliveries.services import delivery_schedule_due
from deliveries.tasks import run_delivery
from tests.deliveries.conftest import destination as sandbox_destination  # noqa: F401
from tests.deliveries.conftest import (  # noqa: F401
    make_campaign,
    make_customers,
    tiktok_settings,  # noqa: F401 (used by destination)
)
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_summary_of_a_delivery_reads_well(
    page,
    live_server,
    sign_in,
    screenshot,
    sandbox,
    sandbox_destination,  # noqa: F811
    make_campaign,  # noqa: F811
):
    make_customers(300, bad_email_every=11, no_phone_every=7)
    campaign = make_campaign(
        sandbox_destination, name="Spring_Sale", groups=("Gold", "Silver"), recurring=True
    )
    [delivery_id] = delivery_schedule_due()
    assert run_delivery(delivery_id) == "delivered"
    delivery = Delivery.objects.get(pk=delivery_id)
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(UserFactory(username="maria", role=Role.MARKETER))
    page.goto(f"{live_server.url}/deliveries/{delivery.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(campaign.name)
    rows = page.locator("table tbody tr")
    assert rows.count() >= 2
    for target in delivery.targets.exclude(audience_id=""):
        row = page.locator("tr", has_text=target.audience_id).first
        expect(row).to_be_visible()
        expect(row).to_contain_text(f"{target.customers:,}")
    # No horizontal scrolling at 1440 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    screenshot("delivery-summary")
