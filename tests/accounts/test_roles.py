from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.masking import mask_email, mask_phone, masker_for
from accounts.models import Role, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "edit", "operate", "administer"),
    [
        (Role.VIEWER, False, False, False),
        (Role.MARKETER, True, False, False),
        (Role.OPERATOR, True, True, False),
        (Role.ADMIN, True, True, True),
    ],
)
def test_each_role_grants_what_the_roles_below_it_grant(role, edit, operate, administer):
    user = UserFactory(role=role)
    assert (user.can_edit, user.can_operate, user.can_administer) == (edit, operate, administer)


def test_an_inactive_user_has_no_role():
    user = UserFactory(role=Role.ADMIN, is_active=False)
    assert not user.has_role(Role.VIEWER)


def test_pages_need_a_signed_in_user(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_login_with_the_right_password_reaches_home(client):
    UserFactory(username="maria", role=Role.MARKETER)
    response = client.post(
        reverse("accounts:login"), {"username": "maria", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_login_with_a_wrong_password_says_so(client):
    UserFactory(username="maria")
    response = client.post(reverse("accounts:login"), {"username": "maria", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER, Role.OPERATOR])
def test_only_admins_can_add_users(make_client, role):
    client = make_client(role)
    response = client.post(
        reverse("accounts:user_add"),
        {"username": "eve", "role": Role.ADMIN, "password": "a-long-enough-passphrase"},
    )
    assert response.status_code == 403
    assert not User.objects.filter(username="eve").exists()


def test_an_admin_adds_a_user_with_a_role(admin_client_):
    response = admin_client_.post(
        reverse("accounts:user_add"),
        {
            "username": "olga",
            "role": Role.OPERATOR,
            "password": "a-long-enough-passphrase",
            "restricted_pii": "on",
        },
    )
    assert response.status_code == 302
    olga = User.objects.get(username="olga")
    assert olga.role == Role.OPERATOR and olga.restricted_pii


def test_a_weak_password_is_refused_with_the_reason(admin_client_):
    response = admin_client_.post(
        reverse("accounts:user_add"), {"username": "weak", "role": Role.VIEWER, "password": "123"}
    )
    assert response.status_code == 400
    assert b"too short" in response.content
    assert not User.objects.filter(username="weak").exists()


def test_an_admin_cannot_demote_themselves(admin_client_):
    me = admin_client_.user
    response = admin_client_.post(
        reverse("accounts:user_edit", args=[me.pk]), {"role": Role.VIEWER, "is_active": "on"}
    )
    assert response.status_code == 400
    assert b"cannot remove your own Admin role" in response.content
    me.refresh_from_db()
    assert me.role == Role.ADMIN


def test_masking_hides_identifiers():
    assert mask_email("jane.doe@gmail.com") == "j***@gmail.com"
    assert mask_phone("+12133734253") == "***53"
    restricted = masker_for(UserFactory.build(restricted_pii=True))
    assert restricted["email"]("jane@x.com") == "j***@x.com"
    full = masker_for(UserFactory.build(restricted_pii=False))
    assert full["email"]("jane@x.com") == "jane@x.com"


def test_the_navigation_shows_the_main_sections(viewer_client):
    html = viewer_client.get(reverse("home")).content.decode()
    assert ">Data<" in html and ">Settings<" in html
    assert "vendor/htmx.min.js" in html
