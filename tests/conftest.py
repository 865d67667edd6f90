from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Role
from tests.factories import UserFactory

pytest_plugins = ["tests.fixtures.sandbox", "tests.fixtures.browser"]


@pytest.fixture(scope="session", autouse=True)
def _close_fenced_connections(django_db_setup, django_db_blocker):
    """SQL segments run on a PostgreSQL login of their own (segments.fence); close those
    connections before pytest-django drops the test database."""
    yield
    from segments.fence import close_connections

    close_connections()


@pytest.fixture
def make_client(db):
    """A logged-in test client for a new user with the given role."""

    def _make(role: Role = Role.MARKETER, *, restricted_pii: bool = False) -> Client:
        user = UserFactory(role=role, restricted_pii=restricted_pii)
        client = Client()
        client.force_login(user)
        client.user = user  # type: ignore[attr-defined]
        return client

    return _make


@pytest.fixture
def viewer_client(make_client):
    return make_client(Role.VIEWER)


@pytest.fixture
def marketer_client(make_client):
    return make_client(Role.MARKETER)


@pytest.fixture
def operator_client(make_client):
    return make_client(Role.OPERATOR)


@pytest.fixture
def admin_client_(make_client):
    return make_client(Role.ADMIN)
