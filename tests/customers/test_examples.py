"""First login is not empty: example segments and a draft campaign (`seed_examples`), and
the home page says what to do next."""

from __future__ import annotations

from django.core.management import call_command
from django.urls import reverse

from accounts.models import Role
from campaigns.models import Campaign, CampaignStatus
from customers.examples import EXAMPLE_CAMPAIGN
from segments.models import Segment, SegmentStatus
from segments.runner import fetch_all
from segments.selectors import segment_members_sql
from tests.factories import CustomerFactory, UserFactory


def test_examples_are_active_segments_and_a_draft_campaign_made_once(db):
    UserFactory(username="marketer", role=Role.MARKETER)
    people = [CustomerFactory(state=s, loyalty_tier=t) for s, t in
              [("CA", "Gold"), ("NY", "Gold"), ("CA", "Silver"), ("TX", "Bronze")]]  # fmt: skip
    call_command("seed_examples", "--user", "marketer")
    segments = {s.name: s for s in Segment.objects.all()}
    assert set(segments) == {"Californians", "Gold members", "Recent buyers"}
    assert all(s.status == SegmentStatus.ACTIVE for s in segments.values())
    californians = {c.customer_id for c in people if c.state == "CA"}
    members = {r[0] for r in fetch_all(segment_members_sql(segments["Californians"]))}
    assert members == californians
    campaign = Campaign.objects.get(name=EXAMPLE_CAMPAIGN)
    assert campaign.status == CampaignStatus.DRAFT
    assert list(campaign.include_segments.all()) == [segments["Californians"]]
    assert list(campaign.exclude_segments.all()) == [segments["Recent buyers"]]

    call_command("seed_examples", "--user", "marketer")  # again: nothing more
    assert Segment.objects.count() == 3 and Campaign.objects.count() == 1


def test_the_home_page_says_what_to_do_next(make_client):
    client = make_client(Role.MARKETER)
    body = client.get(reverse("home")).content.decode()
    assert "What to do next" in body
    assert 'href="/customers/"><strong>Import customers' in body or (
        "<strong>Import customers, devices and orders</strong>" in body
    )
    CustomerFactory()
    body = client.get(reverse("home")).content.decode()
    assert "<strong>Build a segment and activate it</strong>" in body
