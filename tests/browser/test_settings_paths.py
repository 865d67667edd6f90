"""Issue 12, walked in Chromium: Settings → Connections (token health, Check now,
Disconnect, default attributes) and the one mechanism that shows an htmx form's 4xx
message where the person is looking."""

from __future__ import annotations

import pytest

from accounts.models import Role
from destinations.models import Destination, DestinationStatus
from tests.factories import DestinationFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_operator_finds_connections_in_settings_and_checks_a_token(
    page, live_server, sign_in, screenshot, sandbox, settings
):
    settings.TIKTOK_APP_ID = sandbox.app_id
    settings.TIKTOK_APP_SECRET = sandbox.secret
    settings.TIKTOK_API_BASE_URL = sandbox.api_base_url
    advertiser_id = sandbox.advertisers[0][0]
    healthy = DestinationFactory(
        name="Northwind US",
        advertiser_id=advertiser_id,
        access_token=sandbox.issue_token([advertiser_id]),
    )
    DestinationFactory(
        name="Northwind EU",
        advertiser_id="7000000000000000456",
        status=DestinationStatus.NEEDS_REAUTH,
        last_error="TikTok refused the token (40105)",
    )
    sign_in(UserFactory(username="olga", role=Role.OPERATOR))

    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Connections").click()
    page.wait_for_url("**/settings/connections/")
    rows = page.locator("table.connections tbody tr")
    assert rows.count() == 2
    eu = rows.filter(has_text="Northwind EU")
    assert "Refused by TikTok" in eu.inner_text() and "40105" in eu.inner_text()
    assert eu.get_by_role("button", name="Reauthorize Northwind EU").is_visible()
    screenshot("settings_connections")

    page.get_by_role("button", name="Check the token of Northwind US now").click()
    page.wait_for_url("**/settings/connections/")
    assert "TikTok accepts the token" in page.locator(".messages").inner_text()
    healthy.refresh_from_db()
    assert healthy.last_checked_at is not None
    assert (
        "accepted"
        in page.locator("table.connections tbody tr", has_text="Northwind US").inner_text()
    )

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Disconnect Northwind EU").click()
    page.wait_for_url("**/settings/connections/")
    assert Destination.objects.get(name="Northwind EU").status == DestinationStatus.DISCONNECTED


def test_a_viewer_and_a_marketer_do_not_get_connections(page, live_server, sign_in):
    sign_in(UserFactory(username="vic", role=Role.MARKETER))
    page.get_by_role("link", name="Settings", exact=True).click()
    assert page.get_by_role("navigation", name="Settings").count() == 0
    response = page.goto(f"{live_server.url}/accounts/settings/connections/")
    assert response is not None and response.status == 403


def test_a_refused_default_attributes_save_shows_its_message(
    page, live_server, sign_in, screenshot
):
    destination = DestinationFactory(name="Northwind US")
    sign_in(UserFactory(username="ada", role=Role.ADMIN))
    page.goto(f"{live_server.url}/destinations/{destination.pk}/attributes/")
    for box in page.locator("input[type=checkbox][name$='-enabled']").all():
        if box.is_checked() and box.get_attribute("name").split("-")[0] in (
            "EMAIL",
            "PHONE",
            "IDFA",
            "AAID",
        ):
            box.uncheck()
    page.get_by_role("button", name="Save").click()
    alert = page.locator("#mapping .form-error[role=alert]")
    alert.wait_for()
    assert "Enable at least one identifier" in alert.inner_text()
    screenshot("attributes_refused")


def test_email_from_the_phone_column_saves_with_a_warning(page, live_server, sign_in):
    destination = DestinationFactory(name="Northwind US")
    sign_in(UserFactory(username="ada", role=Role.ADMIN))
    page.goto(f"{live_server.url}/destinations/{destination.pk}/attributes/")
    page.get_by_label("Source attribute for EMAIL").select_option("phone")
    page.get_by_label("Send EMAIL").check()
    page.get_by_role("button", name="Save").click()
    warning = page.locator("#mapping .msg-warning")
    warning.wait_for()
    assert "EMAIL is sent from “phone”" in warning.inner_text()


def test_an_error_page_answer_is_shown_beside_the_form_not_swapped_in(page, live_server, sign_in):
    """A 5xx or a full error page is not swapped into the target: its words appear in an
    alert at the top of the form that sent the request."""
    destination = DestinationFactory(name="Northwind US")
    sign_in(UserFactory(username="ada", role=Role.ADMIN))
    page.goto(f"{live_server.url}/destinations/{destination.pk}/attributes/")
    page.route(
        "**/attributes/",
        lambda route: (
            route.fulfill(
                status=500,
                content_type="text/html",
                body="<html><h1>Server Error (500)</h1></html>",
            )
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.get_by_role("button", name="Save").click()
    alert = page.locator("form .htmx-error[role=alert]")
    alert.wait_for()
    assert "Something went wrong on our side (error 500)" in alert.inner_text()
    assert page.locator("#mapping table.mapping").is_visible()  # the form is still there
