from __future__ import annotations

import pytest

from accounts.models import Role
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_marketer_signs_in_and_sees_the_navigation(page, live_server, sign_in, screenshot):
    user = UserFactory(username="maria", role=Role.MARKETER)
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
    screenshot("login")
    sign_in(user)
    nav = page.locator("nav.mainnav")
    assert nav.get_by_role("link", name="Data", exact=True).is_visible()
    assert page.locator(".badge-role").inner_text().lower() == "marketer"
    screenshot("home")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/accounts/login/")
