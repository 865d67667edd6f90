"""Delivery pages: the campaign panel, the summary page, the recipients CSV, Retry."""

from __future__ import annotations

import csv
import io
from unittest import mock

import pytest
from django.urls import reverse

from accounts.models import Role
from deliveries import services
from deliveries.models import Delivery, DeliveryStatus, DeliveryTarget, TargetStatus
from deliveries.services import delivery_run, delivery_schedule_due
from tests.deliveries.conftest import ADVERTISER, make_customers

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivered(sandbox, destination, make_campaign):
    make_customers(250)
    make_campaign(destination, name="Viewable", groups=("Gold",))
    [delivery_id] = delivery_schedule_due()
    delivery_run(delivery_id=delivery_id)
    return Delivery.objects.get(pk=delivery_id)


def test_the_campaign_panel_shows_history_with_audiences_for_a_viewer(delivered, make_client):
    client = make_client(Role.VIEWER)
    response = client.get(
        reverse("deliveries:campaign_panel", args=[delivered.campaign_id]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Delivered" in html and "Viewable_Gold" in html
    assert delivered.targets.first().audience_id in html
    assert "every 2s" not in html  # nothing running: no polling
    assert "Recipients CSV" in html and "Retry" not in html


def test_the_panel_polls_every_two_seconds_while_a_delivery_runs(
    destination, make_campaign, viewer_client
):
    campaign = make_campaign(destination)
    with mock.patch.object(services, "_enqueue"):
        delivery_schedule_due()
    response = viewer_client.get(reverse("deliveries:campaign_panel", args=[campaign.pk]))
    html = response.content.decode()
    assert 'hx-trigger="every 2s"' in html and 'role="progressbar"' in html


def test_the_panel_needs_a_signed_in_user(delivered, client):
    response = client.get(reverse("deliveries:campaign_panel", args=[delivered.campaign_id]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_summary_page_shows_counts_per_treatment_and_destination(delivered, viewer_client):
    response = viewer_client.get(reverse("deliveries:detail", args=[delivered.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    for target in delivered.targets.all():
        # Names may wrap after their underscores (<wbr>), never mid-word.
        assert target.audience_name.replace("_", "_<wbr>") in html
        assert target.audience_id in html
    assert "Shrink" in html and "Expansion" in html and "Invalid values" in html
    assert "Assets → Audiences" in html
    sent = sum(t.people_sent for t in delivered.targets.all())
    assert f"acknowledged by TikTok: {sent:,} " in html


def test_the_recipients_csv_lists_every_snapshot_row(delivered, marketer_client):
    response = marketer_client.get(reverse("deliveries:recipients_csv", args=[delivered.pk]))
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["customer_id", "sub_audience", "treatment", "control", "delivery_time"]
    assert len(rows) == 1 + 250
    groups = {(r[1], r[2], r[3]) for r in rows[1:]}
    assert ("Gold", "Treatment", "no") in groups and ("Gold", "Control", "yes") in groups


def test_restricted_pii_users_cannot_download_recipients(delivered, make_client):
    client = make_client(Role.ADMIN, restricted_pii=True)
    response = client.get(reverse("deliveries:recipients_csv", args=[delivered.pk]))
    assert response.status_code == 403
    panel = client.get(reverse("deliveries:campaign_panel", args=[delivered.campaign_id]))
    assert "Recipients CSV" not in panel.content.decode()


def test_a_viewer_cannot_retry_a_delivery(delivered, viewer_client):
    Delivery.objects.filter(pk=delivered.pk).update(status=DeliveryStatus.FAILED)
    response = viewer_client.post(reverse("deliveries:retry", args=[delivered.pk]))
    assert response.status_code == 403
    assert Delivery.objects.get(pk=delivered.pk).status == DeliveryStatus.FAILED


def test_retry_requeues_a_failed_delivery_from_its_checkpoints(
    sandbox, destination, make_campaign, marketer_client
):
    make_customers(150)
    campaign = make_campaign(destination, control_bp=0)
    sandbox.control(read_only_advertisers=[ADVERTISER])
    [delivery_id] = delivery_schedule_due()
    assert delivery_run(delivery_id=delivery_id) == "failed"
    sandbox.control(read_only_advertisers=[])
    with mock.patch.object(services, "_enqueue"):
        response = marketer_client.post(reverse("deliveries:retry", args=[delivery_id]))
    assert response.status_code == 302
    assert Delivery.objects.get(pk=delivery_id).status == DeliveryStatus.QUEUED
    assert delivery_run(delivery_id=delivery_id) == "delivered"
    target = DeliveryTarget.objects.get()
    assert target.status == TargetStatus.SENT and target.people_sent == 150
    campaign.refresh_from_db()
    assert campaign.status == "delivered"


def test_retry_refuses_a_delivery_that_did_not_fail(delivered, marketer_client):
    response = marketer_client.post(reverse("deliveries:retry", args=[delivered.pk]), follow=True)
    assert "Only a failed delivery can be retried" in response.content.decode()


def test_kept_in_sync_is_said_only_of_recurring_campaigns(delivered, viewer_client):
    """A one-time campaign is delivered once: how later deliveries refresh does not apply."""
    html = viewer_client.get(reverse("deliveries:detail", args=[delivered.pk])).content.decode()
    assert delivered.campaign.timing_mode == "one_time"
    assert "kept in sync" not in html.split("Delivery summary")[1].split("What TikTok holds")[0]
