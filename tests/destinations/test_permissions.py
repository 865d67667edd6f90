from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from destinations.models import DestinationStatus

pytestmark = pytest.mark.django_db


def test_a_marketer_cannot_connect_reauthorize_or_disconnect(
    fake, marketer_client, make_destination
):
    destination = make_destination(fake.issue_token())
    assert marketer_client.get(reverse("destinations:connect")).status_code == 403
    assert marketer_client.post(reverse("destinations:connect")).status_code == 403
    for name in ("reauthorize", "disconnect", "check"):
        assert (
            marketer_client.post(reverse(f"destinations:{name}", args=[destination.pk])).status_code
            == 403
        )
    assert marketer_client.get(reverse("destinations:tiktok_callback")).status_code == 403
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.CONNECTED


def test_a_viewer_lists_destinations_and_reads_but_cannot_change_the_settings(
    fake, viewer_client, make_destination
):
    """A Viewer reads everything a marketer sees (PRODUCT.md roles), changes nothing."""
    destination = make_destination(fake.issue_token())
    page = viewer_client.get(reverse("destinations:list"))
    assert page.status_code == 200 and "TikTok Acme US" in page.content.decode()
    assert "Connect TikTok Ads" not in page.content.decode()
    url = reverse("destinations:attributes", args=[destination.pk])
    read = viewer_client.get(url)
    assert read.status_code == 200 and 'type="submit">Save<' not in read.content.decode()
    assert viewer_client.post(url, {"EMAIL-enabled": "on"}).status_code == 403
    assert viewer_client.get(reverse("destinations:select_advertiser")).status_code == 403


def test_a_marketer_reads_default_attributes_but_cannot_change_them(
    fake, marketer_client, make_destination
):
    destination = make_destination(fake.issue_token())
    url = reverse("destinations:attributes", args=[destination.pk])
    assert marketer_client.get(url).status_code == 200
    response = marketer_client.post(url, {"EMAIL-source_table": "customers"})
    assert response.status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(reverse("destinations:list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_access_token_appears_in_no_response(fake, operator_client):
    pages = []
    response = operator_client.post(reverse("destinations:connect"))
    pages.append(response)
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    pages.append(
        operator_client.get(
            reverse("destinations:tiktok_callback"),
            {"auth_code": fake.grant_code(), "state": state},
        )
    )
    (token,) = fake.tokens
    pages.append(operator_client.get(reverse("destinations:select_advertiser")))
    response = operator_client.post(
        reverse("destinations:select_advertiser"), {"advertiser_id": "7000000000000000001"}
    )
    pages.append(response)
    detail = response["Location"]
    pk = int(re.search(r"/(\d+)/", detail).group(1))
    for url in (
        detail,
        reverse("destinations:list"),
        reverse("destinations:attributes", args=[pk]),
        reverse("notifications:list"),
    ):
        pages.append(operator_client.get(url))
    pages.append(operator_client.post(reverse("destinations:check", args=[pk]), follow=True))
    for page in pages:
        body = page.content.decode() + str(page.headers)
        assert token not in body
    assert token not in str(dict(operator_client.session))
