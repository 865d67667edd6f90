"""A delivery whose segments are SQL segments: the snapshot evaluates them behind the
database fence (segments.fence) and TikTok receives exactly their members.

Transactional: on PostgreSQL the fence is a login of its own that sees committed rows."""

from __future__ import annotations

import hashlib

import pytest

from customers.models import Customer
from deliveries.models import DeliveryStatus
from deliveries.services import delivery_schedule_due
from deliveries.tasks import run_delivery
from segments.models import SqlResult
from tests.deliveries.conftest import ADVERTISER, make_customers

pytestmark = pytest.mark.django_db(transaction=True)


def test_sql_segments_are_evaluated_behind_the_fence_and_sent_exactly(
    sandbox, destination, make_campaign
):
    make_customers(120, bad_email_every=7, no_phone_every=5)
    make_customers(30, start=500, tier="Gone")
    campaign = make_campaign(destination, name="By_SQL", control_bp=0, sql_segments=True)
    [delivery_id] = delivery_schedule_due()
    assert run_delivery(delivery_id) == "delivered"
    delivery = campaign.deliveries.get(pk=delivery_id)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    [target] = delivery.targets.all()

    # The oracle: the raw values of the customers the SQL selects, hashed here.
    wanted = [c for c in Customer.objects.all() if c.loyalty_tier != "Gone"]
    expected_email = {
        hashlib.sha256(c.email.strip().lower().encode()).hexdigest()
        for c in wanted
        if "@" in c.email
    }
    expected_phone = {hashlib.sha256(c.phone.encode()).hexdigest() for c in wanted if c.phone}
    members = sandbox.audience_members(ADVERTISER, target.audience_id)
    assert members.get("EMAIL_SHA256", set()) == expected_email
    assert members.get("PHONE_SHA256", set()) == expected_phone
    assert len(expected_email) == 120 - len(range(0, 120, 7))
    # The snapshot evaluated the SQL afresh (not a cached result from a page).
    assert SqlResult.objects.count() >= 1
