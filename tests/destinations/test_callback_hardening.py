"""The OAuth callback: its one-time code and state end at the callback (every answer
redirects to a URL without them), and the redirect URI is https behind a TLS proxy."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from destinations.models import Destination

pytestmark = pytest.mark.django_db

CALLBACK = reverse("destinations:tiktok_callback")


def start(client, **headers) -> tuple[str, str]:
    """Start Connect; (state, redirect_uri) from the URL of TikTok's authorization page."""
    response = client.post(reverse("destinations:connect"), **headers)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    return query["state"][0], query["redirect_uri"][0]


def assert_clean_redirect(response) -> None:
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.query == "" and "code" not in response["Location"]


@pytest.mark.parametrize("outcome", ["advertisers", "wrong_state", "denied", "outage"])
def test_every_callback_outcome_redirects_to_a_url_without_code_or_state(
    fake, operator_client, outcome
):
    state, _ = start(operator_client)
    params = {"auth_code": fake.grant_code(), "state": state}
    if outcome == "wrong_state":
        params["state"] = "forged"
    elif outcome == "denied":
        params = {"error": "access_denied", "state": state}
    elif outcome == "outage":
        fake.faults.append("html502")
    response = operator_client.get(CALLBACK, params)
    assert_clean_redirect(response)
    assert Destination.objects.count() == 0


def test_a_signed_out_visitor_is_sent_to_sign_in_without_the_code(client):
    response = client.get(CALLBACK, {"auth_code": "SECRETCODE", "state": "SECRETSTATE"})
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(reverse("accounts:login"))
    assert "SECRET" not in location
    assert parse_qs(urlsplit(location).query)["next"] == [reverse("destinations:list")]


def test_the_redirect_uri_is_https_behind_a_tls_proxy(fake, operator_client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # The proxy passes the Host header on, and says the request came in over TLS.
    _, redirect_uri = start(operator_client, HTTP_HOST="testserver", HTTP_X_FORWARDED_PROTO="https")
    assert redirect_uri == "https://testserver" + CALLBACK
    # Without the proxy's header the request is plain http, and so is the URI.
    _, redirect_uri = start(operator_client)
    assert redirect_uri == "http://testserver" + CALLBACK


def test_a_configured_redirect_uri_wins(fake, operator_client, settings):
    settings.TIKTOK_REDIRECT_URI = "https://audiences.example.com/destinations/tiktok/callback/"
    _, redirect_uri = start(operator_client)
    assert redirect_uri == settings.TIKTOK_REDIRECT_URI
