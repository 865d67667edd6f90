"""A marketer walks the nine steps of the campaign editor in real Chromium, schedules the
campaign, then unschedules and edits it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Role
from campaigns.models import Campaign, CampaignStatus
from destinations.models import Destination, DestinationStatus
from segments.models import Segment, SegmentStatus
from tests.campaigns.conftest import add_customers, state_definition
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@contextmanager
def _post(page, fragment: str) -> Iterator[None]:
    """Do something that saves a step, then wait until htmx has swapped the answer in."""
    with page.expect_response(lambda r: fragment in r.url and r.request.method == "POST"):
        yield
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


def pick_segment(page, kind: str, name: str) -> None:
    """Choose a segment in the searchable include/exclude picker by typing, as a person
    does (Tom Select), and wait for the save it triggers."""
    control = page.locator(f"#{kind}-select-ts-control")
    control.click()
    control.press_sequentially(name[:4])
    option = page.locator(f"#{kind}-select-ts-dropdown .option", has_text=name)
    with _post(page, "/audience/"):
        option.click()


def _counted(page) -> None:
    """Wait until the counts request that follows every save has answered."""
    expect(page.locator("#count-total")).not_to_have_text("…")


def test_a_marketer_builds_schedules_unschedules_and_edits_a_campaign(
    page, live_server, sign_in, screenshot
):
    add_customers("ca", 1800, state="CA", email="x@example.com")
    add_customers("ny", 1200, state="NY")
    add_customers("tx", 300, state="TX")
    for name, states in (("Everyone_US", ("CA", "NY", "TX")), ("New_Yorkers", ("NY",)),
                         ("Texans", ("TX",))):  # fmt: skip
        Segment.objects.create(name=name, status=SegmentStatus.ACTIVE,
                               definition=state_definition(*states))  # fmt: skip
    Destination.objects.create(name="TikTok Main", advertiser_id="7000000000000000001",
                               status=DestinationStatus.CONNECTED)  # fmt: skip
    marketer = UserFactory(username="maria", role=Role.MARKETER)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(marketer)

    page.goto(f"{live_server.url}/campaigns/")
    page.click("#new-campaign")
    page.fill("#id_name", "Spring sale")
    page.click("button:has-text('Create and edit')")
    expect(page.locator(".cmp-kicker")).to_have_text(re.compile("Edit campaign", re.I))
    _counted(page)
    screenshot("campaigns-01-new-draft")

    # 1. Name
    with _post(page, "/name/"):
        page.fill("#id_campaign_name", "Spring_Sale")
        page.press("#id_campaign_name", "Tab")
    expect(page.locator("#campaign-title")).to_have_text("Spring_Sale")

    # 2. Audience and 3. Exclusions
    pick_segment(page, "include", "Everyone_US")
    expect(page.locator("#count-inclusions")).to_have_text("3,300")
    page.keyboard.press("Escape")
    pick_segment(page, "exclude", "Texans")
    expect(page.locator("#count-exclusions")).to_have_text("−300")
    expect(page.locator("#count-total")).to_have_text("3,000")
    page.keyboard.press("Escape")
    screenshot("campaigns-02-audience")

    # 4. Two sub-audiences: a saved segment and custom criteria, then reorder by keyboard.
    page.click("#add-sub-audience")
    page.fill("#sub-name", "NY_Fans")
    page.check("#sub-kind-segment")
    page.select_option("#sub-segment", label="New_Yorkers")
    screenshot("campaigns-03-add-sub-audience")
    with _post(page, "/sub-audiences/add/"):
        page.click("#sub-save")
    page.click("#add-sub-audience")
    page.fill("#sub-name", "All_Californians")
    page.check("#sub-kind-criteria")
    expect(page.locator("#sub-form .seg-editor")).to_be_visible()
    with _post(page, "/sub-audiences/add/"):
        page.click("#sub-save")
    campaign = Campaign.objects.get(name="Spring_Sale")
    ny, everyone = campaign.sub_audiences.filter(is_remaining=False).order_by("position")
    _counted(page)
    expect(page.locator(f"#count-sub-{ny.pk}")).to_have_text("1,200")
    expect(page.locator(f"#count-sub-{everyone.pk}")).to_have_text("1,800")
    with _post(page, "/move/"):
        page.focus(f"#sub-{everyone.pk}-up")
        page.keyboard.press("Enter")
    expect(page.locator("#sub-list .cmp-group h3").first).to_have_text("All_Californians")
    _counted(page)
    expect(page.locator(f"#count-sub-{everyone.pk}")).to_have_text("3,000")  # first match
    expect(page.locator(f"#count-sub-{ny.pk}")).to_have_text("0")

    # Treatments: a control group and a sent treatment with the TikTok destination.
    treatment = everyone.treatments.get(is_control=False)
    control = everyone.treatments.get(is_control=True)
    with _post(page, "/treatments/"):
        page.fill(f"#t{treatment.pk}-split", "85")
        page.press(f"#t{treatment.pk}-split", "Tab")
    with _post(page, "/treatments/"):
        page.fill(f"#t{control.pk}-split", "15")
        page.press(f"#t{control.pk}-split", "Tab")
    with _post(page, "/treatments/"):
        page.check(f"#t{treatment.pk}-d{Destination.objects.get().pk}")
    _counted(page)
    expect(page.locator(f"#count-treatment-{control.pk}")).not_to_have_text("…")
    expect(
        page.get_by_role("checkbox", name="Control group is a control group").first
    ).to_be_checked()

    # 5. Destinations: refresh mode.
    link = campaign.campaign_destinations.get()
    with _post(page, "/destinations/"):
        page.select_option(f"#refresh-{link.pk}", "new")

    # 6. Edit attributes: the modal.
    page.click("#step-attributes a:has-text('Edit attributes')")
    expect(page.locator("#modal dialog")).to_be_visible()
    expect(page.locator("#attr-EMAIL")).to_be_checked()
    expect(page.locator("#attr-PHONE")).to_be_checked()
    page.check("#attr-IDFA")
    screenshot("campaigns-04-attributes-modal")
    with _post(page, "/attributes/"):
        page.click("#attributes-save")
    expect(page.locator("#modal dialog")).to_have_count(0)

    # 7. Timing: recurring weekly on Monday and Thursday, ending after 5 deliveries.
    with _post(page, "/timing/"):
        page.select_option("#timing-mode", "recurring")
    with _post(page, "/timing/"):
        page.select_option("#cadence", "weekly")
    with _post(page, "/timing/"):
        page.click("label[for='weekday-0'], label:has(#weekday-0)")
    with _post(page, "/timing/"):
        page.click("label:has(#weekday-3)")
    with _post(page, "/timing/"):
        page.fill("#time-of-day", "09:00")
        page.press("#time-of-day", "Tab")
    start = (timezone.localdate() + dt.timedelta(days=2)).isoformat()
    with _post(page, "/timing/"):
        page.fill("#start-date", start)
        page.press("#start-date", "Tab")
    with _post(page, "/timing/"):
        page.check("#end-after_n")
    with _post(page, "/timing/"):
        page.fill("#end-count", "5")
        page.press("#end-count", "Tab")
    expect(page.locator("#timing-summary")).to_contain_text("weekly on Mon, Thu at 09:00")

    # 8. Launch date: the default, first delivery + 1 day, is shown.
    expect(page.locator("#step-launch")).to_contain_text("First delivery + 1 day (")
    _counted(page)
    expect(page.locator("#delivery-summary table")).to_be_visible()
    screenshot("campaigns-05-ready-to-schedule")

    # 9. Schedule.
    page.click("#schedule-top")
    expect(page.locator(".cmp-status")).to_have_text("Scheduled")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED and campaign.next_run_at is not None
    expect(page.locator("#id_campaign_name")).to_be_disabled()
    screenshot("campaigns-06-scheduled")

    # Unschedule (confirmed) and edit again.
    page.click("#unschedule")
    expect(page.locator(".cmp-status")).to_have_text("Draft")
    with _post(page, "/name/"):
        page.fill("#id_campaign_name", "Spring_Sale_v2")
        page.press("#id_campaign_name", "Tab")
    expect(page.locator("#campaign-title")).to_have_text("Spring_Sale_v2")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT and campaign.name == "Spring_Sale_v2"
    page.click("a:has-text('History')")
    expect(page.locator("#history")).to_contain_text("Unscheduled for editing")
    screenshot("campaigns-07-history")
