"""Tell segments which campaigns use them, so a used segment is not deleted."""

from __future__ import annotations

from django.db.models import Q

from segments.models import Segment
from segments.usage import Usage


def campaigns_using(segment: Segment) -> list[Usage]:
    from campaigns.models import Campaign, CampaignStatus

    campaigns = (
        Campaign.objects.filter(
            Q(include_segments=segment)
            | Q(exclude_segments=segment)
            | Q(sub_audiences__segment=segment)
        )
        .exclude(status=CampaignStatus.ARCHIVED)
        .distinct()
        .order_by("name")
    )
    return [Usage(label=f"Campaign: {c.name}", url=c.get_absolute_url()) for c in campaigns]
