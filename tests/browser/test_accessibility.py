"""axe-core (axe-playwright-python) on the main pages, in Chromium: no serious or critical
violation. Each page is checked as a person would reach it, signed in with the role that
uses it."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import reverse

from accounts.models import Role
from deliveries.models import DeliveryStatus
from segments.models import Segment, SegmentStatus
from tests.campaigns.conftest import state_definition
from tests.factories import DeliveryFactory, DestinationFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BLOCKING = {"serious", "critical"}


def _problems(page) -> list[str]:
    results = Axe().run(page)
    found = []
    for violation in results.response.get("violations", []):
        if violation.get("impact") in BLOCKING:
            targets = [", ".join(node.get("target", [])) for node in violation["nodes"][:3]]
            found.append(f"{violation['id']} ({violation['impact']}): {targets}")
    return found


def test_the_login_page_has_no_serious_violation(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    assert _problems(page) == []


def test_the_main_pages_have_no_serious_violation(
    page, live_server, sign_in, ready_campaign, user
):  # fixtures from tests/campaigns/conftest.py (see tests/browser/conftest.py)
    user.role = Role.OPERATOR
    user.set_password("correct horse battery")
    user.save()
    segment = Segment.objects.create(
        name="Californians", status=SegmentStatus.ACTIVE, definition=state_definition("CA")
    )
    destination = DestinationFactory(name="Northwind US", advertiser_id="7000000000000000999")
    delivery = DeliveryFactory(campaign=ready_campaign, status=DeliveryStatus.SUCCEEDED)
    sign_in(user)
    pages = {
        "home": "/",
        "segments list": "/segments/",
        "segment editor": f"/segments/{segment.pk}/edit/",
        "segment detail": f"/segments/{segment.pk}/",
        "campaigns list": "/campaigns/",
        "campaign editor": f"/campaigns/{ready_campaign.pk}/",
        "destination": f"/destinations/{destination.pk}/",
        "default attributes": f"/destinations/{destination.pk}/attributes/",
        "connections": "/accounts/settings/connections/",
        "delivery summary": f"/deliveries/{delivery.pk}/",
        "data": reverse("customers:overview"),
    }
    problems = {}
    for name, path in pages.items():
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, name
        page.wait_for_load_state("networkidle")
        found = _problems(page)
        if found:
            problems[name] = found
    assert problems == {}, "\n".join(f"{name}: {found}" for name, found in problems.items())
