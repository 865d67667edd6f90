from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import Role
from destinations.models import DestinationStatus
from destinations.selectors import destination_warnings
from destinations.services import destination_client, destination_mark_needs_reauth
from destinations.tasks import check_destination_tokens
from destinations.tiktok.errors import ReauthorizationRequired
from notifications.models import Notification
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operators(db):
    return [UserFactory(role=Role.OPERATOR), UserFactory(role=Role.ADMIN)]


def test_health_task_marks_a_revoked_token_and_notifies_operators_once(
    fake, make_destination, operators
):
    marketer = UserFactory(role=Role.MARKETER)
    token = fake.issue_token()
    destination = make_destination(token)
    assert check_destination_tokens() == {"ok": 1, "needs_reauth": 0, "unreachable": 0}
    fake.revoke(token)
    assert check_destination_tokens()["needs_reauth"] == 1
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.NEEDS_REAUTH
    assert "40105" in destination.last_error
    destination_mark_needs_reauth(destination, "again")  # idempotent
    check_destination_tokens()
    assert sorted(Notification.objects.values_list("user_id", flat=True)) == sorted(
        u.pk for u in operators
    )
    assert not Notification.objects.filter(user=marketer).exists()
    assert len(mail.outbox) == 2
    assert "needs reauthorization" in mail.outbox[0].subject


def test_a_tiktok_outage_does_not_flag_the_token(fake, make_destination):
    destination = make_destination(fake.issue_token())
    fake.faults.append("html502")
    assert check_destination_tokens()["unreachable"] == 1
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.CONNECTED
    assert "HTTP 502" in destination.last_error


def test_an_auth_error_in_any_call_flags_the_destination(fake, make_destination, operators):
    token = fake.issue_token()
    destination = make_destination(token)
    client = destination_client(destination)
    fake.revoke(token)
    with pytest.raises(ReauthorizationRequired):
        client.create_audience(destination.advertiser_id, "x")
    destination.refresh_from_db()
    assert destination.status == DestinationStatus.NEEDS_REAUTH
    assert Notification.objects.count() == len(operators)


def test_operators_see_a_reauthorize_banner_and_campaigns_get_a_warning(
    fake, make_destination, make_client
):
    destination = make_destination(fake.issue_token(), status=DestinationStatus.NEEDS_REAUTH)
    operator = make_client(Role.OPERATOR)
    page = operator.get(reverse("home")).content.decode()
    assert "needs reauthorization" in page
    assert reverse("destinations:reauthorize", args=[destination.pk]) in page
    viewer_page = make_client(Role.VIEWER).get(reverse("home")).content.decode()
    assert reverse("destinations:reauthorize", args=[destination.pk]) not in viewer_page
    (warning,) = destination_warnings([destination])
    assert "needs reauthorization" in warning and destination.name in warning
