from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns import services
from campaigns.assignment import assignment_sql
from campaigns.models import Campaign
from customers.models import Customer
from destinations.models import Destination, DestinationStatus
from segments.models import Segment, SegmentStatus
from segments.runner import fetch_all
from tests.factories import UserFactory, state_definition


def add_customers(prefix: str, n: int, *, state: str = "CA", start: int = 0, **extra) -> list[str]:
    now = timezone.now()
    ids = [f"{prefix}{i:06d}" for i in range(start, start + n)]
    Customer.objects.bulk_create(
        Customer(customer_id=cid, state=state, created_at=now, updated_at=now, **extra)
        for cid in ids
    )
    return ids


def assignment(campaign: Campaign) -> list[tuple]:
    return sorted(
        (str(r[0]), int(r[1]), r[2] and int(r[2]), bool(r[3]))
        for r in fetch_all(assignment_sql(campaign))
    )


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def segment(db):
    def _make(*states: str, name: str = "", status: str = SegmentStatus.ACTIVE) -> Segment:
        return Segment.objects.create(
            name=name or "in " + "/".join(states),
            status=status,
            definition=state_definition(*states),
        )

    return _make


@pytest.fixture
def destination(db):
    return Destination.objects.create(
        name="TikTok Main", advertiser_id="7000000000000000001", status=DestinationStatus.CONNECTED
    )


@pytest.fixture
def campaign(user):
    return services.campaign_create(user=user, name="Spring")


@pytest.fixture
def ready_campaign(campaign, user, segment, destination):
    """A campaign that passes every Schedule check (recurring weekly, one destination)."""
    services.campaign_update_audience(campaign=campaign, user=user, segment_ids=[segment("CA").pk])
    remaining = campaign.sub_audiences.get(is_remaining=True)
    treatment = remaining.treatments.get(is_control=False)
    services.treatment_set_destinations(
        treatment=treatment, user=user, destination_ids=[destination.pk]
    )
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    services.campaign_update_timing(
        campaign=campaign,
        user=user,
        timing_mode="recurring",
        cadence="weekly",
        weekdays=[0, 3],
        time_of_day=dt.time(9, 0),
        timezone="Europe/Paris",
        start_date=tomorrow,
        end_mode="after_n",
        end_count=3,
    )
    campaign.refresh_from_db()
    return campaign
