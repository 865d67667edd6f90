"""The "What TikTok holds" pages, Reconcile, and removals reaching TikTok (issue 11).

Oracles: what the sandbox holds (TikTok's side, not the product's ledger) and hashes
computed here from the raw values."""

from __future__ import annotations

import hashlib
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from customers.models import Customer
from deliveries import services
from deliveries.models import Delivery, DeliveryStatus, DestinationAudience
from deliveries.services import delivery_schedule_due
from deliveries.tasks import run_delivery
from tests.deliveries.conftest import ADVERTISER, make_customers

pytestmark = pytest.mark.django_db


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _deliver() -> Delivery:
    [delivery_id] = delivery_schedule_due()
    assert run_delivery(delivery_id) == "delivered"
    return Delivery.objects.get(pk=delivery_id)


@pytest.fixture
def synced(sandbox, destination, make_campaign):
    make_customers(60, bad_email_every=9)
    campaign = make_campaign(destination, name="Synced", control_bp=0, recurring=True)
    delivery = _deliver()
    return campaign, delivery, DestinationAudience.objects.get()


def test_what_tiktok_holds_shows_the_ids_tiktok_has(synced, sandbox, make_client):
    _campaign, _delivery, audience = synced
    held = sandbox.audience_members(ADVERTISER, audience.audience_id)
    viewer = make_client(Role.VIEWER)
    listing = viewer.get(reverse("deliveries:audiences")).content.decode()
    assert audience.name in listing
    page = viewer.get(reverse("deliveries:audience", args=[audience.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    for id_type, ids in held.items():
        if ids:
            assert id_type.split("_")[0] in body and f"{len(ids):,}" in body
    # A viewer is told who can reconcile, and gets no button for it.
    assert "Marketers and operators can reconcile." in body
    assert f"audiences/{audience.pk}/reconcile/" not in body


def test_reconcile_delivers_the_campaign_now_and_refuses_a_second_one(synced, make_client):
    campaign, _delivery, audience = synced
    url = reverse("deliveries:audience_reconcile", args=[audience.pk])
    assert make_client(Role.VIEWER).post(url).status_code == 403
    marketer = make_client(Role.MARKETER)
    with mock.patch.object(services, "_enqueue"):
        response = marketer.post(url)
    again = Delivery.objects.filter(campaign=campaign).order_by("-pk").first()
    assert response.status_code == 302
    assert response["Location"] == reverse("deliveries:detail", args=[again.pk])
    assert again.status in (DeliveryStatus.QUEUED, DeliveryStatus.RUNNING)
    with mock.patch.object(services, "_enqueue"):
        refused = marketer.post(url, follow=True)
    assert "in progress" in refused.content.decode()
    assert Delivery.objects.filter(campaign=campaign).count() == 2


def test_deleted_customers_leave_tiktok_at_the_next_sync(synced, sandbox):
    campaign, _delivery, audience = synced
    gone = ["C0000001", "C0000002", "C0000003"]
    raw = {c.customer_id: (c.email, c.phone) for c in Customer.objects.filter(customer_id__in=gone)}
    call_command("delete_customers", *gone)
    assert not Customer.objects.filter(customer_id__in=gone).exists()
    type(campaign).objects.filter(pk=campaign.pk).update(next_run_at=timezone.now())
    _deliver()
    held = sandbox.audience_members(ADVERTISER, audience.audience_id)
    for email, phone in raw.values():
        assert _sha(email) not in held.get("EMAIL_SHA256", set())
        assert _sha(phone) not in held.get("PHONE_SHA256", set())
    remaining = Customer.objects.exclude(email__contains="-at-")
    assert held["EMAIL_SHA256"] == {_sha(c.email) for c in remaining}


def test_run_now_delivers_a_recurring_campaign_and_keeps_its_schedule(synced, make_client):
    campaign, first, _audience = synced
    campaign.refresh_from_db()
    next_slot = campaign.next_run_at
    marketer = make_client(Role.MARKETER)
    panel = marketer.get(reverse("deliveries:campaign_panel", args=[campaign.pk]))
    assert 'id="run-now"' in panel.content.decode()
    with mock.patch.object(services, "_enqueue"):
        response = marketer.post(reverse("deliveries:run_now", args=[campaign.pk]))
    assert response.status_code == 302
    now_delivery = Delivery.objects.filter(campaign=campaign).exclude(pk=first.pk).get()
    assert run_delivery(now_delivery.pk) == "delivered"
    campaign.refresh_from_db()
    # The next slot is the same recurrence's next one, not moved by the extra delivery.
    assert campaign.next_run_at == next_slot
    assert (
        make_client(Role.VIEWER).post(reverse("deliveries:run_now", args=[campaign.pk])).status_code
        == 403
    )
