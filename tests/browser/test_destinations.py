"""An operator connects TikTok through the sandbox's real authorization page, loses the
token, sees the banner, and reauthorizes, all in real Chromium."""

from __future__ import annotations

import pytest

from accounts.models import Role
from destinations.models import Destination, DestinationStatus
from destinations.tasks import check_destination_tokens
from notifications.models import Notification
from tests.destinations.conftest import needs_sandbox
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tiktok_settings(sandbox, live_server, settings):
    settings.TIKTOK_APP_ID = sandbox.app_id
    settings.TIKTOK_APP_SECRET = sandbox.secret
    settings.TIKTOK_API_BASE_URL = sandbox.api_base_url
    settings.TIKTOK_AUTH_URL = sandbox.auth_url
    sandbox.register_redirect_uri(f"{live_server.url}/destinations/tiktok/callback/")
    return sandbox


def authorize_on_tiktok(page, screenshot, name: str) -> None:
    page.wait_for_url("**/portal/auth**")
    screenshot(name)
    page.get_by_role("button", name="Authorize").click()


@needs_sandbox
def test_an_operator_connects_tiktok_loses_the_token_and_reauthorizes(
    page, live_server, sign_in, screenshot, tiktok_settings
):
    sandbox = tiktok_settings
    operator = UserFactory(username="olga", role=Role.OPERATOR)
    advertiser_id, advertiser_name = sandbox.advertisers[0]
    sign_in(operator)

    page.get_by_role("link", name="Destinations", exact=True).click()
    screenshot("destinations_empty")
    page.get_by_role("link", name="Connect TikTok Ads").click()
    screenshot("destinations_connect")
    page.get_by_role("button", name="Continue to TikTok").click()
    authorize_on_tiktok(page, screenshot, "tiktok_sandbox_authorize")

    page.wait_for_url("**/destinations/tiktok/select/")
    screenshot("destinations_select_advertiser")
    page.get_by_label(f"{advertiser_name} ({advertiser_id})").check()
    page.get_by_role("button", name="Connect this advertiser").click()
    page.wait_for_url("**/destinations/*/")
    assert page.locator(".badge-ok").inner_text().lower() == "connected"
    screenshot("destinations_connected")
    destination = Destination.objects.get()
    assert destination.advertiser_id == advertiser_id
    assert destination.access_token not in page.content()

    page.get_by_role("link", name="Default attributes").click()
    page.get_by_label("Send IDFA").check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Default attributes saved.").first.wait_for()
    screenshot("destinations_default_attributes")

    sandbox.revoke_token(destination.access_token)
    assert check_destination_tokens()["needs_reauth"] == 1
    assert Notification.objects.filter(user=operator).count() == 1
    page.goto(f"{live_server.url}/destinations/")
    banner = page.locator(".banner-error")
    assert "needs reauthorization" in banner.inner_text()
    screenshot("destinations_needs_reauth_banner")

    banner.get_by_role("button", name="Reauthorize").click()
    authorize_on_tiktok(page, screenshot, "tiktok_sandbox_reauthorize")
    page.wait_for_url(f"**/destinations/{destination.pk}/")
    assert "reauthorized and connected again" in page.locator(".messages").inner_text()
    assert page.locator(".banner-error").count() == 0
    screenshot("destinations_reauthorized")
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.CONNECTED
    assert Destination.objects.count() == 1


@needs_sandbox
def test_cancelling_on_tiktoks_page_connects_nothing(
    page, live_server, sign_in, screenshot, tiktok_settings
):
    sign_in(UserFactory(role=Role.OPERATOR))
    page.goto(f"{live_server.url}/destinations/connect/")
    page.get_by_role("button", name="Continue to TikTok").click()
    page.wait_for_url("**/portal/auth**")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(f"{live_server.url}/destinations/")
    assert "cancelled" in page.locator(".messages").inner_text()
    screenshot("destinations_cancelled")
    assert Destination.objects.count() == 0


def test_the_connect_pages_work_with_tiktok_faked_at_the_http_seam(
    page, live_server, sign_in, screenshot, monkeypatch, settings
):
    """Runs without the sandbox: the browser's trip to TikTok is answered by a route that
    consents at once, and the server's API calls go to the in-process fake."""
    from urllib.parse import parse_qs, urlsplit

    from tests.destinations import fake_tiktok

    fake = fake_tiktok.install(monkeypatch, settings)

    def consent(route):
        query = parse_qs(urlsplit(route.request.url).query)
        code = fake.grant_code()
        target = (
            f"{query['redirect_uri'][0]}?auth_code={code}&code={code}&state={query['state'][0]}"
        )
        route.fulfill(status=302, headers={"Location": target})

    page.route(f"{fake_tiktok.AUTH}**", consent)
    sign_in(UserFactory(role=Role.OPERATOR))
    page.goto(f"{live_server.url}/destinations/connect/")
    page.get_by_role("button", name="Continue to TikTok").click()
    page.wait_for_url("**/destinations/tiktok/select/")
    screenshot("destinations_select_advertiser_fake")
    page.get_by_label("Acme EU (7000000000000000002)").check()
    page.get_by_label("Destination name").fill("EU prospecting")
    page.get_by_role("button", name="Connect this advertiser").click()
    page.wait_for_url("**/destinations/*/")
    assert "Connected “EU prospecting”" in page.locator(".messages").inner_text()
    screenshot("destinations_connected_fake")
    destination = Destination.objects.get()
    assert destination.advertiser_id == "7000000000000000002"
    assert destination.access_token in fake.tokens
