"""A marketer builds a segment in real Chromium and watches the count follow the conditions."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Role
from segments.models import Segment, SegmentStatus
from tests.factories import CustomerFactory, OrderFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _customers() -> None:
    now = timezone.now()
    people = {}
    for i in range(6):
        people[f"ca{i}"] = CustomerFactory(
            customer_id=f"ca{i}", state="CA", loyalty_tier="Gold" if i < 4 else "Silver"
        )
    for i in range(3):
        people[f"ny{i}"] = CustomerFactory(customer_id=f"ny{i}", state="NY", loyalty_tier="Gold")
    for cid in ("ca0", "ca1", "ny0"):
        OrderFactory(customer=people[cid], ordered_at=now - dt.timedelta(days=10))
    OrderFactory(customer=people["ca2"], ordered_at=now - dt.timedelta(days=400), brand="Contoso")


def _count(page) -> str:
    return page.get_by_test_id("unique-count")


def test_a_marketer_builds_a_two_section_segment_with_a_purchase_and_activates_it(
    page, live_server, sign_in, screenshot
):
    _customers()
    user = UserFactory(username="maria", role=Role.MARKETER)
    sign_in(user)
    page.goto(f"{live_server.url}/segments/")
    screenshot("segments-list-empty")
    page.get_by_role("link", name="New segment").click()
    page.fill("#id_name", "Californian buyers")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/edit/")
    expect(_count(page)).to_have_text("9")

    first = page.locator(".seg-group").nth(0)
    first.get_by_role("button", name="+ Attribute").click()
    condition = page.locator("#cond-sections-0-conditions-0")
    expect(condition.locator("[data-key=value]")).to_be_visible()
    # An empty value is marked where it is and counts nobody.
    expect(page.locator("#err-sections-0-conditions-0")).to_contain_text("Enter a value")
    condition.locator("[data-key=value]").fill("CA")
    expect(_count(page)).to_have_text("6")
    expect(page.locator("#err-sections-0-conditions-0")).to_be_empty()

    page.get_by_role("button", name="+ Add section").click()
    second = page.locator(".seg-group").nth(1)
    expect(second.get_by_role("heading", name="Section 2")).to_be_visible()
    second.get_by_role("button", name="+ Purchase behaviour").click()
    behaviour = page.locator("#cond-sections-1-conditions-0")
    expect(behaviour.locator("[data-key=behaviour]")).to_have_value("has_purchased")
    expect(_count(page)).to_have_text("3")  # CA and has purchased: ca0, ca1, ca2
    behaviour.locator("[data-key='window.kind']").select_option("last")
    window = page.locator("#cond-sections-1-conditions-0 [data-key='window.amount']")
    window.fill("90")
    expect(_count(page)).to_have_text("2")  # only ca0 and ca1 bought in the last 90 days

    page.get_by_role("button", name="+ Add section")  # still there
    excl = page.locator(".seg-exclusions")
    excl.get_by_role("button", name="+ Attribute").click()
    exclusion = page.locator("#cond-exclusions-conditions-0")
    exclusion.locator("[data-key=attribute]").select_option("customer_id")
    exclusion = page.locator("#cond-exclusions-conditions-0")
    expect(exclusion.locator("[data-key=attribute]")).to_have_value("customer_id")
    exclusion.locator("[data-key=value]").fill("ca1")
    expect(_count(page)).to_have_text("1")
    screenshot("segments-editor")

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Saved")
    page.get_by_role("button", name="Save and activate").click()
    expect(page.locator(".messages")).to_contain_text("is Active")
    segment = Segment.objects.get(name="Californian buyers")
    assert segment.status == SegmentStatus.ACTIVE
    assert len(segment.definition["sections"]) == 2
    screenshot("segments-editor-saved")

    page.goto(f"{live_server.url}/segments/{segment.pk}/")
    expect(page.locator(".seg-chart").first).to_be_visible()
    page.get_by_text("View SQL").click()
    screenshot("segments-detail")
    page.goto(f"{live_server.url}/segments/")
    expect(page.get_by_role("link", name="Californian buyers")).to_be_visible()
    screenshot("segments-list")


def test_an_sql_segment_reports_errors_with_their_position(page, live_server, sign_in, screenshot):
    _customers()
    user = UserFactory(username="sam", role=Role.MARKETER)
    sign_in(user)
    page.goto(f"{live_server.url}/segments/new/?kind=sql")
    page.fill("#id_name", "Gold by SQL")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/edit/")
    page.fill("#id_sql", "SELECT customer_id\nFROM customers WHERE pg_sleep(1) IS NULL")
    expect(page.locator(".seg-insights .form-error")).to_contain_text("pg_sleep")
    expect(page.locator(".seg-insights .form-error")).to_contain_text("line 2, column 22")
    page.fill("#id_sql", "SELECT customer_id FROM customers WHERE loyalty_tier = 'Gold'")
    expect(_count(page)).to_have_text("7")
    screenshot("segments-sql-editor")


def test_compare_history_and_lists_pages_render(page, live_server, sign_in, screenshot):
    from segments.services import segment_activate, segment_create, segment_update

    _customers()
    user = UserFactory(username="lee", role=Role.MARKETER)

    def definition(state):
        return {
            "version": 1,
            "combinator": "and",
            "sections": [
                {
                    "combinator": "and",
                    "conditions": [
                        {
                            "type": "attribute",
                            "attribute": "state",
                            "operator": "is",
                            "value": state,
                        }
                    ],
                }
            ],
        }

    ca = segment_create(user=user, name="California", definition=definition("CA"))
    segment_update(segment=ca, user=user, name="Californians")
    segment_activate(segment=ca, user=user)
    ny = segment_create(user=user, name="New York", definition=definition("NY"))
    gold = segment_create(
        user=user,
        name="Gold",
        kind="sql",
        sql="SELECT customer_id FROM customers WHERE loyalty_tier = 'Gold'",
    )
    sign_in(user)
    page.goto(f"{live_server.url}/segments/compare/?ids={ca.pk}&ids={ny.pk}&ids={gold.pk}")
    expect(page.get_by_text("customers in at least one segment")).to_contain_text("9")
    screenshot("segments-compare")
    page.goto(f"{live_server.url}/segments/{ca.pk}/history/")
    expect(page.get_by_role("cell", name="Activated")).to_be_visible()
    screenshot("segments-history")
    page.goto(f"{live_server.url}/segments/lists/")
    page.fill("#id_name", "VIP ids")
    page.set_input_files(
        "#id_file", files=[{"name": "ids.csv", "mimeType": "text/csv", "buffer": b"ca0\nca1\nzz\n"}]
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".messages")).to_contain_text("3 ids, 1 not (yet) known")
    screenshot("segments-lists")


def _new_segment(page, live_server, name: str) -> None:
    page.goto(f"{live_server.url}/segments/")
    page.get_by_role("link", name="New segment").first.click()
    page.fill("#id_name", name)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/edit/")


def test_activating_with_unsaved_edits_activates_what_the_person_sees(
    page, live_server, sign_in, screenshot
):
    """Issue 12 item 2: a condition added but not saved is not lost by Activate; the
    confirmation says how many customers the Active segment holds."""
    _customers()
    expected = {f"ca{i}" for i in range(6)}  # the six Californians made above
    sign_in(UserFactory(username="maria", role=Role.MARKETER))
    _new_segment(page, live_server, "Californians")
    page.locator(".seg-group").nth(0).get_by_role("button", name="+ Attribute").click()
    condition = page.locator("#cond-sections-0-conditions-0")
    expect(condition.locator("[data-key=attribute]")).to_have_value("state")
    condition.locator("[data-key=value]").fill("ca")  # lower case: comparisons ignore case
    expect(_count(page)).to_have_text(str(len(expected)))

    page.get_by_role("button", name="Save and activate").click()
    expect(page.locator(".messages")).to_contain_text(
        f"“Californians” is Active with {len(expected)} customers."
    )
    screenshot("segments-activated-with-count")
    segment = Segment.objects.get(name="Californians")
    assert segment.status == SegmentStatus.ACTIVE
    from segments.runner import fetch_all
    from segments.selectors import segment_members_sql

    assert {row[0] for row in fetch_all(segment_members_sql(segment))} == expected


def test_the_size_after_save_is_the_saved_versions(page, live_server, sign_in):
    """Issue 12 item 5: the remembered size follows the save, without "Refresh size"."""
    _customers()
    sign_in(UserFactory(username="maria", role=Role.MARKETER))
    _new_segment(page, live_server, "Gold New Yorkers")
    page.locator(".seg-group").nth(0).get_by_role("button", name="+ Attribute").click()
    condition = page.locator("#cond-sections-0-conditions-0")
    expect(condition.locator("[data-key=attribute]")).to_have_value("state")
    condition.locator("[data-key=value]").fill("NY")
    expect(_count(page)).to_have_text("3")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Saved")
    assert Segment.objects.get(name="Gold New Yorkers").last_count == 3
    page.goto(f"{live_server.url}/segments/")
    row = page.get_by_role("row").filter(has_text="Gold New Yorkers")
    expect(row).to_contain_text("3")


def test_a_new_condition_keeps_the_counts_and_a_zero_result_says_why(
    page, live_server, sign_in, screenshot
):
    """Issue 12 item 6: text conditions ignore case, a condition not typed yet is not red
    and the counts stay, and a zero result names the condition that removed everyone."""
    _customers()
    sign_in(UserFactory(username="maria", role=Role.MARKETER))
    _new_segment(page, live_server, "Gold Californians")
    group = page.locator(".seg-group").nth(0)
    group.get_by_role("button", name="+ Attribute").click()
    first = page.locator("#cond-sections-0-conditions-0")
    first.locator("[data-key=value]").fill("CA")
    expect(_count(page)).to_have_text("6")

    group.get_by_role("button", name="+ Attribute").click()
    second = page.locator("#cond-sections-0-conditions-1")
    second.locator("[data-key=attribute]").select_option("loyalty_tier")
    second = page.locator("#cond-sections-0-conditions-1")
    expect(second.locator("[data-key=attribute]")).to_have_value("loyalty_tier")
    expect(page.get_by_text("Finish the new condition")).to_be_visible()
    expect(_count(page)).to_have_text("6")  # the last good count stays
    expect(page.locator("#err-sections-0-conditions-1 span")).to_have_count(0)  # not red

    second.locator("[data-key=value]").fill("gold")  # "Gold" in the data
    expect(_count(page)).to_have_text("4")
    second.locator("[data-key=value]").fill("platinum")
    expect(_count(page)).to_have_text("0")
    culprit = page.locator(".seg-zero-culprit")
    expect(culprit).to_contain_text("Loyalty tier is platinum")
    expect(page.locator(".seg-zero")).to_contain_text("State is CA: 6")
    screenshot("segments-zero-explained")


def test_sql_errors_read_in_plain_words_with_line_and_column(
    page, live_server, sign_in, screenshot
):
    """Issue 12 item 7: no parser internals, and database errors (a missing column) with
    their position, both while typing and on Save."""
    _customers()
    sign_in(UserFactory(username="maria", role=Role.MARKETER))
    page.goto(f"{live_server.url}/segments/new/")
    page.fill("#id_name", "By SQL")
    page.get_by_label("SQL").check()
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/edit/")
    sql = page.locator("#id_sql")
    sql.fill("SELECT customer_id FROM customers WHERE loyalty_tier >")
    alert = page.locator(".seg-insights [role=alert]")
    expect(alert).to_contain_text("Syntax error")
    assert "sqlglot" not in alert.inner_text() and "<class" not in alert.inner_text()

    sql.fill("SELECT customer_id\nFROM customers\nWHERE tierr = 'Gold'")
    expect(alert).to_contain_text("tierr")
    page.get_by_role("button", name="Save", exact=True).click()
    position = page.locator("p.form-error", has_text="Line 3, column 7")
    expect(position).to_be_visible()
    screenshot("segments-sql-error")
    sql.fill("SELECT customer_id FROM customers WHERE loyalty_tier = 'gold'")
    expect(_count(page)).to_have_text("0")  # SQL compares as written: the data says Gold
    sql.fill("SELECT customer_id FROM customers WHERE loyalty_tier = 'Gold'")
    expect(_count(page)).to_have_text("7")
