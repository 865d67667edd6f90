"""Browser tests reuse the campaign fixtures (a campaign ready to schedule, its user)."""

from tests.campaigns.conftest import (  # noqa: F401 (fixtures)
    campaign,
    destination,
    ready_campaign,
    segment,
    user,
)
