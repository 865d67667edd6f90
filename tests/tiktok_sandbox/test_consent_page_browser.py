"""The authorization page in real Chromium: looks like a consent page, Authorize and Cancel work."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import ADV1, ADV3, Api

pytestmark = [pytest.mark.browser]


def open_consent(page, sandbox, state="st-1"):
    landing = sandbox.url + "/"  # the sandbox's own index page stands in for the product
    sandbox.register_redirect_uri(landing)
    page.goto(f"{sandbox.auth_url}?app_id={sandbox.app_id}&state={state}&redirect_uri={landing}")
    return landing


def test_authorize_in_the_browser_returns_a_code_for_the_chosen_advertisers(
    page, sandbox, screenshot
):
    open_consent(page, sandbox)
    assert page.get_by_role("heading", name="Audience Builder (demo)").is_visible()
    for _, name in sandbox.advertisers:
        assert page.get_by_text(name).is_visible()
    screenshot("tiktok_sandbox_consent")
    page.get_by_label(sandbox.advertisers[2][1]).uncheck()
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{sandbox.url}/?*")
    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == ["st-1"]
    answer = Api(sandbox, None).post(
        "oauth2/access_token/",
        {"app_id": sandbox.app_id, "secret": sandbox.secret, "auth_code": query["auth_code"][0]},
    )
    assert answer["data"]["advertiser_ids"] == [ADV1, sandbox.advertisers[1][0]]
    assert ADV3 not in answer["data"]["advertiser_ids"]


def test_cancel_in_the_browser_returns_access_denied(page, sandbox):
    open_consent(page, sandbox, state="st-2")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(f"{sandbox.url}/?*")
    query = parse_qs(urlsplit(page.url).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st-2"]


def test_an_unregistered_redirect_shows_an_error_page(page, sandbox, screenshot):
    page.goto(
        f"{sandbox.auth_url}?app_id={sandbox.app_id}&state=s&redirect_uri=http://elsewhere.example/cb/"
    )
    assert page.get_by_text("is not registered").is_visible()
    screenshot("tiktok_sandbox_consent_error")
