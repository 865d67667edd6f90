from __future__ import annotations

import pytest

from tests.destinations import fake_tiktok


@pytest.fixture
def fake(monkeypatch, settings):
    """TikTok faked behind the client's HTTP seam, with the app settings pointed at it."""
    return fake_tiktok.install(monkeypatch, settings)


@pytest.fixture
def make_destination(db):
    """A connected TikTok destination whose token `fake` (or the sandbox) issued."""
    from destinations.models import DefaultAttribute, Destination
    from destinations.services import tiktok_default_attributes

    def _make(token: str, advertiser_id: str = "7000000000000000001", **fields):
        destination = Destination.objects.create(
            name=fields.pop("name", "TikTok Acme US"),
            advertiser_id=advertiser_id,
            advertiser_name=fields.pop("advertiser_name", "Acme US"),
            access_token=token,
            **fields,
        )
        DefaultAttribute.objects.bulk_create(tiktok_default_attributes(destination))
        return destination

    return _make


try:  # H1's local TikTok sandbox (tests/fixtures/sandbox.py) provides `sandbox`.
    import tests.fixtures.sandbox  # noqa: F401

    HAVE_SANDBOX = True
except ImportError:
    HAVE_SANDBOX = False

needs_sandbox = pytest.mark.skipif(
    not HAVE_SANDBOX, reason="tests/fixtures/sandbox.py (the TikTok sandbox) is not installed"
)
