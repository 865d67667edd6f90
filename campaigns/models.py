"""Campaigns: an audience (segments), split into sub-audiences and treatments, sent to
destinations on a schedule.

Public model API (the delivery app builds on it):

- ``Campaign``: ``status`` (``CampaignStatus``), timing fields, ``next_run_at`` (the next due
  delivery in UTC, maintained by ``campaigns.services``; the scheduler reads it),
  ``deliveries_done``, ``bucket_key`` (fixed at creation; the treatment hash salt).
- ``SubAudience`` (ordered by ``position``; the ``is_remaining`` group is always last),
  ``Treatment`` (``split_bp`` in basis points: 10,000 = 100 %), ``CampaignDestination``
  (``refresh_mode``, ``attribute_mapping``), ``TreatmentDestination``,
  ``CampaignEvent`` (history; the delivery app may add rows with its own ``kind``).
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.urls import reverse

MAX_INCLUDE = 10
MAX_EXCLUDE = 10
MAX_SUB_AUDIENCES = 60
MAX_TREATMENTS = 20
FULL_SPLIT = 10_000  # basis points
MIN_AUDIENCE = 1_000  # TikTok's minimum audience size


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Running"
    DELIVERED = "delivered", "Delivered"
    ERROR = "error", "Error"
    ARCHIVED = "archived", "Archived"


class TimingMode(models.TextChoices):
    ONE_TIME = "one_time", "One-time"
    RECURRING = "recurring", "Recurring"


class Cadence(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class EndMode(models.TextChoices):
    NEVER = "never", "Never"
    ON_DATE = "on_date", "On a date"
    AFTER_N = "after_n", "After a number of deliveries"


class RefreshMode(models.TextChoices):
    SYNC = "sync", "Keep one audience in sync"
    NEW = "new", "New audience each delivery"


class SubAudienceKind(models.TextChoices):
    CRITERIA = "criteria", "Custom criteria"
    SEGMENT = "segment", "Saved segment"


WEEKDAYS = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]


def new_bucket_key() -> str:
    return secrets.token_hex(16)


class Campaign(models.Model):
    name = models.CharField(max_length=120)
    status = models.CharField(
        max_length=12, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    include_segments = models.ManyToManyField(
        "segments.Segment", blank=True, related_name="campaigns_including"
    )
    exclude_segments = models.ManyToManyField(
        "segments.Segment", blank=True, related_name="campaigns_excluding"
    )
    first_match_only = models.BooleanField(default=True)

    timing_mode = models.CharField(
        max_length=10, choices=TimingMode.choices, default=TimingMode.ONE_TIME
    )
    asap = models.BooleanField(default=False)
    run_at = models.DateTimeField(null=True, blank=True)
    cadence = models.CharField(max_length=10, choices=Cadence.choices, default=Cadence.WEEKLY)
    weekdays = models.JSONField(default=list, blank=True, help_text="0 = Monday … 6 = Sunday")
    month_day = models.PositiveSmallIntegerField(null=True, blank=True)
    time_of_day = models.TimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    start_date = models.DateField(null=True, blank=True)
    end_mode = models.CharField(max_length=10, choices=EndMode.choices, default=EndMode.NEVER)
    end_date = models.DateField(null=True, blank=True)
    end_count = models.PositiveIntegerField(null=True, blank=True)

    launch_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    deliveries_done = models.PositiveIntegerField(default=0)
    error_reason = models.TextField(blank=True)
    bucket_key = models.CharField(max_length=32, default=new_bucket_key, editable=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"],
                condition=~models.Q(status="archived"),
                name="campaigns_unique_live_name",
            )
        ]
        indexes = [models.Index(fields=["status", "next_run_at"], name="campaigns_due_idx")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("campaigns:edit", args=[self.pk])

    @property
    def is_editable(self) -> bool:
        return self.status == CampaignStatus.DRAFT

    @property
    def is_recurring(self) -> bool:
        return self.timing_mode == TimingMode.RECURRING


class SubAudience(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sub_audiences")
    position = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=120)
    kind = models.CharField(
        max_length=10, choices=SubAudienceKind.choices, default=SubAudienceKind.CRITERIA
    )
    definition = models.JSONField(default=dict, blank=True)
    segment = models.ForeignKey(
        "segments.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaign_sub_audiences",
    )
    is_remaining = models.BooleanField(default=False)

    class Meta:
        ordering = ["is_remaining", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign"],
                condition=models.Q(is_remaining=True),
                name="campaigns_one_remaining_group",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def split_total_percent(self) -> Decimal:
        """The group's splits added up, in percent (must be 100)."""
        total = sum(t.split_bp for t in self.treatments.all())
        return (Decimal(total) / 100).quantize(Decimal("0.01"))


class Treatment(models.Model):
    sub_audience = models.ForeignKey(
        SubAudience, on_delete=models.CASCADE, related_name="treatments"
    )
    position = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=120)
    is_control = models.BooleanField(default=False)
    split_bp = models.PositiveIntegerField(default=0, help_text="Basis points: 10000 = 100%")
    destinations = models.ManyToManyField(
        "CampaignDestination", through="TreatmentDestination", blank=True, related_name="+"
    )

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def split_percent(self) -> Decimal:
        return (Decimal(self.split_bp) / 100).quantize(Decimal("0.01"))


class CampaignDestination(models.Model):
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="campaign_destinations"
    )
    destination = models.ForeignKey(
        "destinations.Destination", on_delete=models.PROTECT, related_name="campaign_uses"
    )
    refresh_mode = models.CharField(
        max_length=10, choices=RefreshMode.choices, default=RefreshMode.SYNC
    )
    attribute_mapping = models.JSONField(
        default=list,
        blank=True,
        help_text="[{destination_attribute, source_table, source_attribute, enabled}]",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "destination"], name="campaigns_destination_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} → {self.destination_id}"

    def enabled_attributes(self) -> list[dict]:
        return [row for row in self.attribute_mapping if row.get("enabled")]


class TreatmentDestination(models.Model):
    treatment = models.ForeignKey(Treatment, on_delete=models.CASCADE, related_name="+")
    campaign_destination = models.ForeignKey(
        CampaignDestination, on_delete=models.CASCADE, related_name="treatment_links"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["treatment", "campaign_destination"], name="campaigns_treatment_dest_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.treatment_id} → {self.campaign_destination_id}"


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    CHANGED = "changed", "Changed"
    SCHEDULED = "scheduled", "Scheduled"
    UNSCHEDULED = "unscheduled", "Unscheduled"
    STARTED = "started", "Delivery started"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    ARCHIVED = "archived", "Archived"
    DUPLICATED = "duplicated", "Duplicated"


class CampaignEvent(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Not restricted to EventKind: the delivery app records its own kinds here too.
    kind = models.CharField(max_length=30)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    @property
    def kind_label(self) -> str:
        try:
            return EventKind(self.kind).label
        except ValueError:
            return self.kind.replace("_", " ").capitalize()
