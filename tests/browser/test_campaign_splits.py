"""Rough edges of issue 12, in Chromium: adding a treatment keeps an even split, a total
other than 100 % is flagged beside the inputs at once, and "Split evenly" fixes it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from tests.browser.test_campaigns import _post

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_splits_stay_even_are_flagged_and_can_be_evened(
    page, live_server, sign_in, ready_campaign, user
):  # fixtures from tests/campaigns/conftest.py (see tests/browser/conftest.py)
    user.role = Role.MARKETER
    user.set_password("correct horse battery")
    user.save()
    remaining = ready_campaign.sub_audiences.get(is_remaining=True)
    assert sorted(t.split_bp for t in remaining.treatments.all()) == [1000, 9000]
    sign_in(user)
    page.goto(f"{live_server.url}/campaigns/{ready_campaign.pk}/")
    splits = page.locator(f"table[aria-label='Treatments of {remaining.name}'] input.cmp-split")
    total = page.locator(f"#split-total-{remaining.pk}")
    expect(total).to_have_text("Total 100.00%")

    # 90/10 was chosen: the new treatment starts at 0 % and "Split evenly" is offered.
    with _post(page, "/treatments/add/"):
        page.locator(f"#add-treatment-{remaining.pk}").click()
    expect(splits).to_have_count(3)
    expect(splits.nth(2)).to_have_value("0.00")
    with _post(page, "/split-evenly/"):
        page.locator(f"#split-evenly-{remaining.pk}").click()
    expect(splits.nth(0)).to_have_value("33.34")
    expect(splits.nth(1)).to_have_value("33.33")
    expect(total).to_have_text("Total 100.00%")

    # Even splits stay even when a treatment is added.
    with _post(page, "/treatments/add/"):
        page.locator(f"#add-treatment-{remaining.pk}").click()
    expect(splits).to_have_count(4)
    for n in range(4):
        expect(splits.nth(n)).to_have_value("25.00")

    # A total other than 100 % is flagged beside the inputs at once.
    with _post(page, "/treatments/"):
        splits.nth(0).fill("40")
        splits.nth(0).press("Tab")
    expect(total).to_contain_text("Total 115.00%")
    expect(total).to_contain_text("must be 100%")
    expect(total).to_have_attribute("role", "alert")
