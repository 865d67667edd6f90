"""A restricted-PII account sees no campaign counts when the campaign uses a segment that
reads raw identifiers: otherwise guessing a value and watching a count would reveal it."""

from __future__ import annotations

from django.urls import reverse

from accounts.models import Role
from campaigns import services
from segments.models import Segment, SegmentStatus
from tests.campaigns.conftest import add_customers, state_definition


def _email_segment() -> Segment:
    condition = {"type": "attribute", "attribute": "email", "operator": "starts_with",
                 "value": "ca0000"}  # fmt: skip
    return Segment.objects.create(
        name="Guessing emails",
        status=SegmentStatus.ACTIVE,
        definition={"version": 1, "combinator": "and",
                    "sections": [{"combinator": "and", "conditions": [condition]}],
                    "exclusions": {"combinator": "or", "conditions": []}},
    )  # fmt: skip


def test_counts_are_hidden_from_restricted_users_only(campaign, user, make_client):
    add_customers("ca", 30, state="CA", email="someone@example.com")
    services.campaign_update_audience(
        campaign=campaign, user=user, segment_ids=[_email_segment().pk]
    )
    url = reverse("campaigns:counts", args=[campaign.pk])
    restricted = make_client(Role.MARKETER, restricted_pii=True).get(url).content.decode()
    assert ">hidden<" in restricted and "Counts are hidden for your account" in restricted
    full = make_client(Role.MARKETER).get(url).content.decode()
    assert "hidden" not in full and 'id="count-inclusions"' in full


def test_plain_segments_stay_counted_for_restricted_users(campaign, user, make_client):
    add_customers("ca", 30, state="CA")
    plain = Segment.objects.create(
        name="CA", status=SegmentStatus.ACTIVE, definition=state_definition("CA")
    )
    services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[plain.pk])
    url = reverse("campaigns:counts", args=[campaign.pk])
    body = make_client(Role.MARKETER, restricted_pii=True).get(url).content.decode()
    assert 'id="count-inclusions" hx-swap-oob="true">30<' in body
