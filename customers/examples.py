"""Example segments and a draft campaign, so a first login is not empty (`make run`).

Made through the same services a person uses; only when no segment exists yet, so running
it again changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction


def _one(condition: dict) -> dict:
    return {
        "version": 1,
        "combinator": "and",
        "sections": [{"combinator": "and", "conditions": [condition]}],
        "exclusions": {"combinator": "or", "conditions": []},
    }


EXAMPLE_SEGMENTS: list[tuple[str, str, dict]] = [
    (
        "Californians",
        "Every customer whose state is CA.",
        _one({"type": "attribute", "attribute": "state", "operator": "is", "value": "CA"}),
    ),
    (
        "Gold members",
        "Loyalty tier Gold.",
        _one({"type": "attribute", "attribute": "loyalty_tier", "operator": "is", "value": "Gold"}),
    ),
    (
        "Recent buyers",
        "Bought something in the last 90 days.",
        _one(
            {
                "type": "purchase",
                "behaviour": "has_purchased",
                "window": {"kind": "last", "amount": 90, "unit": "days"},
            }
        ),
    ),
]
EXAMPLE_CAMPAIGN = "Example_Spring_Sale"


@transaction.atomic
def create_examples(*, user: Any) -> list[str]:
    """The example segments (Active) and a draft campaign using two of them; returns what
    was made ([] when segments already exist)."""
    from campaigns.services import (
        campaign_create,
        campaign_update_audience,
        campaign_update_exclusions,
    )
    from segments.models import Segment
    from segments.services import segment_activate, segment_create

    if Segment.objects.exists():
        return []
    made = []
    segments = {}
    for name, description, definition in EXAMPLE_SEGMENTS:
        segment = segment_create(
            user=user, name=name, definition=definition, description=description
        )
        segments[name] = segment_activate(segment=segment, user=user)
        made.append(f"segment “{name}”")
    campaign = campaign_create(user=user, name=EXAMPLE_CAMPAIGN)
    campaign_update_audience(
        campaign=campaign, user=user, segment_ids=[segments["Californians"].pk]
    )
    campaign_update_exclusions(
        campaign=campaign, user=user, segment_ids=[segments["Recent buyers"].pk]
    )
    made.append(f"draft campaign “{EXAMPLE_CAMPAIGN}”")
    return made
