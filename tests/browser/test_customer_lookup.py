"""Issue 12, customer lookup walked in Chromium: a person finds a customer from the Data
page by an email written differently from the import, opens them, and sees the segments
they are in and what each delivery did with them; a restricted-PII user sees masked
identifiers. The pages pass axe-core with no serious or critical violation."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Role
from deliveries.models import DeliveryRecipient
from deliveries.services import delivery_schedule_due
from deliveries.tasks import run_delivery
from tests.deliveries import conftest as delivery_fixtures
from tests.deliveries.conftest import make_customers
from tests.factories import (
    CustomerFactory,
    DeviceFactory,
    OrderFactory,
    SegmentFactory,
    UserFactory,
)

# The delivery tests' fixtures: a TikTok destination on the sandbox, a campaign sending to it.
destination = delivery_fixtures.destination
make_campaign = delivery_fixtures.make_campaign
tiktok_settings = delivery_fixtures.tiktok_settings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _serious_violations(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


@pytest.fixture
def store(db, sandbox, destination, make_campaign):
    """Jane (imported as "Jane.Doe@Example.com") and a second profile with her email, a
    campaign (everyone but tier "Gone", no control group) delivered to the sandbox."""
    make_customers(12)
    jane = CustomerFactory(
        customer_id="C-jane",
        given_name="Jane",
        surname="Doe",
        email="Jane.Doe@Example.com",
        phone="+1 213 373 4253",
        street="1200 Fulton St",
        postal_code="93721",
        city="Fresno",
        state="CA",
        loyalty_tier="Gold",
    )
    now = timezone.now()
    for i, (product, amount) in enumerate(
        [("Trail Shoe", "89.90"), ("Rain Shell", "129.00"), ("Wool Socks", "14.50")]
    ):
        OrderFactory(
            customer=jane,
            order_id=f"O-jane-{i}",
            product_name=product,
            amount=Decimal(amount),
            ordered_at=now - dt.timedelta(days=9 * i + 2),
            channel=("web", "store", "app")[i],
            store="" if i != 1 else "Fresno Downtown",
        )
    CustomerFactory(
        customer_id="C-jane-old",
        given_name="Jane",
        surname="Doe",
        email="jane.doe@example.com ",
        phone="",
        state="CA",
        loyalty_tier="Gone",
    )
    DeviceFactory(customer=jane, kind="IDFA", raw_id="6D92078A-8246-4BA4-AE5B-76104861E7DC")
    SegmentFactory(name="Californians", definition={
        "version": 1, "combinator": "and",
        "sections": [{"combinator": "and", "conditions": [
            {"type": "attribute", "attribute": "state", "operator": "is", "value": "CA"}]}],
        "exclusions": {"combinator": "or", "conditions": []},
    })  # fmt: skip
    campaign = make_campaign(destination, name="Spring", control_bp=0)
    [delivery_id] = delivery_schedule_due()
    assert run_delivery(delivery_id) == "delivered"
    assert DeliveryRecipient.objects.filter(delivery_id=delivery_id, customer_id="C-jane").exists()
    return campaign, delivery_id


def test_a_viewer_finds_a_customer_by_a_differently_written_email_and_sees_why_they_were_sent(
    page, live_server, sign_in, screenshot, store
):
    sign_in(UserFactory(username="vera", role=Role.VIEWER))
    page.get_by_role("link", name="Data", exact=True).click()
    screenshot("data-page-search")
    search = page.get_by_role("searchbox", name="Find a customer by id, email or phone")
    search.fill("  JANE.DOE@example.COM ")
    search.press("Enter")
    page.wait_for_url("**/data/customers/?q=*")
    matches = page.locator("table.customer-matches tbody tr")
    expect(matches).to_have_count(2)
    expect(page.get_by_role("heading", name="2 customers match")).to_be_visible()
    assert _serious_violations(page) == []
    screenshot("customer-lookup-matches")

    page.get_by_role("link", name="C-jane", exact=True).click()
    page.wait_for_url("**/data/customers/C-jane/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("C-jane · Jane Doe")
    segments = page.locator("section", has=page.get_by_role("heading", name="Segments"))
    expect(segments.get_by_role("link", name="Californians")).to_be_visible()
    expect(segments.get_by_role("link", name="Spring audience")).to_be_visible()

    deliveries = page.locator("table.customer-deliveries tbody tr")
    expect(deliveries).to_have_count(1)
    expect(deliveries.first.locator(".verdict-badge")).to_have_text("Sent")
    held = deliveries.first.locator(".held-ids")
    expect(held).to_contain_text(sha("jane.doe@example.com"))
    expect(held).to_contain_text(sha("+12133734253"))
    # The full-access viewer sees the identifiers as imported.
    expect(page.locator("table.identifiers")).to_contain_text("Jane.Doe@Example.com")
    expect(page.locator("table.identifiers")).to_contain_text(
        "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    )
    orders = page.locator("table.orders tbody tr")
    expect(orders).to_have_count(3)
    expect(orders.first).to_contain_text("O-jane-0")  # most recent first
    expect(orders.last).to_contain_text("O-jane-2")
    assert _serious_violations(page) == []
    screenshot("customer-360")

    # The other profile with the same email was not in the audience: the page says why.
    page.get_by_role("link", name="Find another customer").click()
    search = page.get_by_role("searchbox", name="Find a customer by id, email or phone")
    search.fill("C-jane-old")
    page.get_by_role("button", name="Find").click()
    page.wait_for_url("**/data/customers/C-jane-old/")
    row = page.locator("table.customer-deliveries tbody tr").first
    expect(row.locator(".verdict-badge")).to_have_text("Not in the audience")
    expect(row.locator(".why")).to_contain_text("Spring audience")
    screenshot("customer-360-not-sent")


def test_a_restricted_user_searches_by_phone_and_sees_masked_identifiers(
    page, live_server, sign_in, screenshot, store
):
    sign_in(UserFactory(username="rita", role=Role.MARKETER, restricted_pii=True))
    page.goto(f"{live_server.url}/data/")
    search = page.get_by_role("searchbox", name="Find a customer by id, email or phone")
    search.fill("(213) 373-4253")
    search.press("Enter")
    page.wait_for_url("**/data/customers/C-jane/")
    body = page.locator("main").inner_text()
    for raw in (
        "Jane.Doe@Example.com",
        "jane.doe@example.com",
        "+1 213 373 4253",
        "+12133734253",
        "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        "6d92078a-8246-4ba4-ae5b-76104861e7dc",
    ):
        assert raw not in body, raw
    identifiers = page.locator("table.identifiers")
    expect(identifiers).to_contain_text("J***@Example.com")
    expect(identifiers).to_contain_text("***53")
    expect(identifiers).to_contain_text("6D***")
    expect(page.locator("table.customer-deliveries .verdict-badge").first).to_have_text("Sent")
    # Hashes are what TikTok receives; they are shown to everyone.
    expect(page.locator(".held-ids").first).to_contain_text(sha("jane.doe@example.com"))
    screenshot("customer-360-restricted")

    page.goto(f"{live_server.url}/data/customers/?q=" + "x" * 300)
    expect(page.locator(".form-error")).to_contain_text("at most 254 printable characters")
