from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import Role
from notifications.models import Notification
from notifications.services import NotificationError, notify
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_notify_by_role_reaches_that_role_and_above_in_the_app_and_by_email():
    viewer = UserFactory(role=Role.VIEWER)
    operator = UserFactory(role=Role.OPERATOR)
    admin = UserFactory(role=Role.ADMIN, email="")
    UserFactory(role=Role.OPERATOR, is_active=False)
    created = notify(
        role=Role.OPERATOR, level="error", title="Delivery failed", body="b", url="/x/"
    )
    assert sorted(n.user_id for n in created) == sorted([operator.pk, admin.pk])
    assert not Notification.objects.filter(user=viewer).exists()
    assert [m.to for m in mail.outbox] == [[operator.email]]  # the admin has no address
    assert "Delivery failed" in mail.outbox[0].subject and "/x/" in mail.outbox[0].body
    assert Notification.objects.get(user=operator).emailed


def test_notify_needs_recipients_and_a_known_level():
    with pytest.raises(NotificationError):
        notify(title="x")
    with pytest.raises(NotificationError):
        notify(role=Role.VIEWER, level="loud", title="x")


def test_unread_count_shows_until_the_user_reads_them(make_client):
    client = make_client(Role.VIEWER)
    notify(users=[client.user], title="Audience ready in TikTok", url=reverse("home"))
    notify(users=[client.user], title="Delivery finished")
    home = client.get(reverse("home")).content.decode()
    assert 'class="nav-badge" aria-label="2 unread">2</span>' in home  # a badge, no banner
    assert "banner" not in home
    page = client.get(reverse("notifications:list")).content.decode()
    assert "Audience ready in TikTok" in page
    first = Notification.objects.get(title="Audience ready in TikTok")
    response = client.post(reverse("notifications:open", args=[first.pk]))
    assert response["Location"] == reverse("home")
    assert 'aria-label="1 unread">1</span>' in client.get(reverse("home")).content.decode()
    client.post(reverse("notifications:read_all"))
    assert "nav-badge" not in client.get(reverse("home")).content.decode()


def test_users_cannot_open_each_others_notifications(make_client):
    alice, bob = make_client(Role.VIEWER), make_client(Role.VIEWER)
    (note,) = notify(users=[alice.user], title="private")
    assert bob.post(reverse("notifications:open", args=[note.pk])).status_code == 404
    assert "private" not in bob.get(reverse("notifications:list")).content.decode()
