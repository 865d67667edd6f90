"""Issue 12 item 8, walked by keyboard in Chromium: after every save of a campaign step the
focus is back on the control the person used (not on <body>), pickers stay open, a skip
link reaches the steps, and the rail marks only complete steps."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from segments.models import Segment, SegmentStatus
from tests.browser.test_campaigns import _post
from tests.campaigns.conftest import add_customers, state_definition
from tests.factories import CampaignFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ACTIVE = (
    "() => { const a = document.activeElement; "
    "return a ? [a.tagName, a.id, a.name || '', a.value || ''] : null; }"
)


def test_focus_stays_on_the_control_used_after_each_save(page, live_server, sign_in):
    add_customers("ca", 20, state="CA")
    segment = Segment.objects.create(
        name="Californians", status=SegmentStatus.ACTIVE, definition=state_definition("CA")
    )
    marketer = UserFactory(username="maria", role=Role.MARKETER)
    campaign = CampaignFactory(name="Spring_Sale", created_by=marketer)
    sign_in(marketer)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")

    # The skip link is the first thing Tab reaches in the editor, and leads to step 1.
    page.locator(".cmp-editor .skip-link").focus()
    expect(page.locator(".cmp-editor .skip-link")).to_be_visible()
    page.keyboard.press("Enter")
    assert page.url.endswith("#step-name")

    # Step rail: a new draft has only its name complete; exclusions are optional.
    expect(page.locator("#step-name .cmp-dot")).to_have_text("✓")
    expect(page.locator("#step-audience .cmp-dot")).to_have_text("2")
    expect(page.locator("#step-exclusions .cmp-dot")).to_have_class("cmp-dot optional")
    expect(page.locator("#step-timing .cmp-dot")).not_to_have_text("✓")

    # Step 2 by keyboard: the searchable picker, type part of the name, Enter.
    page.locator("#include-select-ts-control").focus()
    page.keyboard.type("Calif")
    with _post(page, "/audience/"):
        page.keyboard.press("Enter")
    expect(page.locator("#include-select")).to_have_values([str(segment.pk)])
    assert page.evaluate(ACTIVE)[1] == "include-select-ts-control"  # focus is back in it
    expect(page.locator("#step-audience .cmp-dot")).to_have_text("✓")

    # Step 7 by keyboard: the delivery time field keeps focus after its save.
    page.locator("#run-time").focus()
    with _post(page, "/timing/"):
        page.keyboard.type("1030AM")
    expect(page.locator("#run-time")).to_have_value("10:30")
    assert page.evaluate(ACTIVE)[1] == "run-time"

    page.locator("#timing-asap").focus()
    with _post(page, "/timing/"):
        page.keyboard.press("Space")
    assert page.evaluate(ACTIVE)[1] == "timing-asap"
    expect(page.locator("#step-timing .cmp-dot")).to_have_text("✓")


def test_saving_attributes_updates_the_campaign_page_without_a_reload(
    page, live_server, sign_in, ready_campaign, user
):  # fixtures from tests/campaigns/conftest.py (see tests/browser/conftest.py)
    """Rough edge of issue 12: after Save in "Edit attributes", step 6 lists the new
    identifiers at once."""

    user.role = Role.MARKETER
    user.set_password("correct horse battery")
    user.save()
    sign_in(user)
    page.goto(f"{live_server.url}/campaigns/{ready_campaign.pk}/")
    step = page.locator("#step-attributes")
    expect(step).not_to_contain_text("IDFA")
    step.get_by_role("link", name="Edit attributes").click()
    page.locator("#attr-IDFA").check()
    with _post(page, "/attributes/"):
        page.locator("#attributes-save").click()
    expect(page.locator("dialog[data-modal]")).to_have_count(0)
    expect(page.locator("#step-attributes .cmp-chip", has_text="IDFA")).to_be_visible()
