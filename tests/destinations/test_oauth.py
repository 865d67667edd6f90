from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from accounts.models import Role
from destinations.models import DefaultAttribute, Destination, DestinationStatus
from tests.destinations.fake_tiktok import AUTH

pytestmark = pytest.mark.django_db

CALLBACK = reverse("destinations:tiktok_callback")
SELECT = reverse("destinations:select_advertiser")


def start(client) -> str:
    response = client.post(reverse("destinations:connect"))
    assert response.status_code == 302
    url = urlsplit(response["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == AUTH
    query = parse_qs(url.query)
    assert query["redirect_uri"] == ["http://testserver" + CALLBACK]
    return query["state"][0]


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def test_an_operator_connects_an_advertiser_with_tiktok_defaults(fake, operator_client):
    state = start(operator_client)
    code = fake.grant_code()
    response = operator_client.get(CALLBACK, {"auth_code": code, "code": code, "state": state})
    assert response.status_code == 302 and response["Location"] == SELECT
    assert Destination.objects.count() == 0  # nothing half-made before the pick
    page = operator_client.get(SELECT)
    assert "Acme EU" in page.content.decode()
    response = operator_client.post(SELECT, {"advertiser_id": "7000000000000000002", "name": ""})
    assert response.status_code == 302
    destination = Destination.objects.get()
    assert destination.advertiser_id == "7000000000000000002"
    assert destination.name == "TikTok Ads · Acme EU"
    assert destination.status == DestinationStatus.CONNECTED
    assert destination.connected_by == operator_client.user
    assert destination.access_token in fake.tokens
    enabled = DefaultAttribute.objects.filter(destination=destination, enabled=True)
    assert sorted(enabled.values_list("destination_attribute", flat=True)) == ["EMAIL", "PHONE"]


def test_a_wrong_state_is_refused_and_nothing_is_exchanged(fake, operator_client):
    start(operator_client)
    code = fake.grant_code()
    response = operator_client.get(CALLBACK, {"auth_code": code, "state": "forged"}, follow=True)
    assert "wrong state" in messages_of(response)
    assert code in fake.codes  # the code was never exchanged
    assert Destination.objects.count() == 0


def test_a_replayed_state_is_refused(fake, operator_client):
    state = start(operator_client)
    operator_client.get(CALLBACK, {"auth_code": fake.grant_code(), "state": state})
    response = operator_client.get(
        CALLBACK, {"auth_code": fake.grant_code(), "state": state}, follow=True
    )
    assert "already used" in messages_of(response)


def test_a_state_from_another_session_is_refused(fake, operator_client, make_client):
    state = start(operator_client)
    other = make_client(Role.OPERATOR)
    response = other.get(CALLBACK, {"auth_code": fake.grant_code(), "state": state}, follow=True)
    assert "does not match a connection started here" in messages_of(response)


def test_cancelling_on_tiktoks_page_connects_nothing(fake, operator_client):
    state = start(operator_client)
    response = operator_client.get(
        CALLBACK, {"error": "access_denied", "state": state}, follow=True
    )
    assert "cancelled" in messages_of(response)
    assert Destination.objects.count() == 0


def test_a_used_auth_code_says_to_start_again(fake, operator_client):
    code = fake.grant_code()
    from destinations.tiktok.client import exchange_auth_code

    exchange_auth_code(code)
    state = start(operator_client)
    response = operator_client.get(CALLBACK, {"auth_code": code, "state": state}, follow=True)
    text = messages_of(response)
    assert "refused the authorization code" in text and "40115" in text
    assert Destination.objects.count() == 0


def test_a_tiktok_outage_during_callback_leaves_no_destination(fake, operator_client):
    state = start(operator_client)
    fake.faults.append("html502")
    response = operator_client.get(
        CALLBACK, {"auth_code": fake.grant_code(), "state": state}, follow=True
    )
    assert "could not complete the authorization" in messages_of(response)
    assert Destination.objects.count() == 0


def test_picking_an_advertiser_the_token_does_not_reach_is_refused(fake, operator_client):
    state = start(operator_client)
    operator_client.get(
        CALLBACK, {"auth_code": fake.grant_code(["7000000000000000001"]), "state": state}
    )
    response = operator_client.post(SELECT, {"advertiser_id": "7000000000000000002"})
    assert response.status_code == 400
    assert Destination.objects.count() == 0


def test_an_advertiser_already_connected_is_not_connected_twice(
    fake, operator_client, make_destination
):
    make_destination(fake.issue_token())
    state = start(operator_client)
    operator_client.get(CALLBACK, {"auth_code": fake.grant_code(), "state": state})
    response = operator_client.post(SELECT, {"advertiser_id": "7000000000000000001"})
    assert response.status_code == 400
    assert "already connected" in response.content.decode()
    assert Destination.objects.count() == 1


def test_cancel_after_authorizing_revokes_the_unused_token(fake, operator_client):
    state = start(operator_client)
    operator_client.get(CALLBACK, {"auth_code": fake.grant_code(), "state": state})
    (token,) = fake.tokens
    operator_client.post(reverse("destinations:cancel_pending"))
    assert token in fake.revoked
    assert operator_client.get(SELECT).status_code == 302


def test_reauthorize_keeps_the_destination_id_and_restores_it(
    fake, operator_client, make_destination
):
    old = fake.issue_token()
    destination = make_destination(old, status=DestinationStatus.NEEDS_REAUTH)
    response = operator_client.post(reverse("destinations:reauthorize", args=[destination.pk]))
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    response = operator_client.get(CALLBACK, {"auth_code": fake.grant_code(), "state": state})
    assert response["Location"] == reverse("destinations:detail", args=[destination.pk])
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.CONNECTED
    assert destination.access_token != old and destination.access_token in fake.tokens
    assert Destination.objects.count() == 1


def test_reauthorizing_with_another_advertiser_says_why_and_changes_nothing(
    fake, operator_client, make_destination
):
    destination = make_destination(fake.issue_token(), status=DestinationStatus.NEEDS_REAUTH)
    response = operator_client.post(reverse("destinations:reauthorize", args=[destination.pk]))
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    code = fake.grant_code(["7000000000000000002"])
    response = operator_client.get(CALLBACK, {"auth_code": code, "state": state}, follow=True)
    assert "does not reach advertiser Acme US" in messages_of(response)
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.NEEDS_REAUTH
    assert len(fake.revoked) == 1  # the new, unusable token was given back


def test_disconnect_revokes_the_token_at_tiktok(fake, operator_client, make_destination):
    token = fake.issue_token()
    destination = make_destination(token)
    operator_client.post(reverse("destinations:disconnect", args=[destination.pk]))
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.DISCONNECTED
    assert token in fake.revoked
    assert destination.access_token == ""


def test_disconnect_changes_nothing_when_tiktok_is_down(fake, operator_client, make_destination):
    destination = make_destination(fake.issue_token())
    fake.faults.append(50000)
    response = operator_client.post(
        reverse("destinations:disconnect", args=[destination.pk]), follow=True
    )
    assert "Nothing changed" in messages_of(response)
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.CONNECTED


def test_connect_page_explains_missing_tiktok_settings(operator_client, settings):
    settings.TIKTOK_APP_ID = ""
    page = operator_client.get(reverse("destinations:connect"))
    assert "TIKTOK_APP_ID is not set" in page.content.decode()
    response = operator_client.post(reverse("destinations:connect"))
    assert response.status_code == 503
