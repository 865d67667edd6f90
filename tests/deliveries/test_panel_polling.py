"""Issue 12 item 9: the campaign page's Deliveries panel looks for the next delivery of a
scheduled campaign, recurring as well as one-time."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, TimingMode
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def _panel(client, campaign: Campaign) -> str:
    url = reverse("deliveries:campaign_panel", args=[campaign.pk])
    return client.get(url, HTTP_HX_REQUEST="true").content.decode()


@pytest.mark.parametrize(
    ("due_in", "every"),
    [(dt.timedelta(seconds=30), "2s"), (dt.timedelta(days=3), "60s"), (None, "2s")],
)
def test_a_scheduled_recurring_campaign_polls_for_its_next_delivery(viewer_client, due_in, every):
    campaign = CampaignFactory()
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SCHEDULED,
        timing_mode=TimingMode.RECURRING,
        next_run_at=timezone.now() + due_in if due_in else None,
    )
    assert f'hx-trigger="every {every}"' in _panel(viewer_client, campaign)


def test_a_draft_campaign_does_not_poll(viewer_client):
    campaign = CampaignFactory()
    assert "hx-trigger" not in _panel(viewer_client, campaign).split("<h2>")[0]
