"""Deliveries: one run of a campaign, what it snapshotted, and what it sent where.

- ``Delivery``: one due slot of a campaign (unique per campaign and scheduled time, so two
  schedulers never create it twice), claimed by one worker at a time through ``lease``.
- ``DeliveryRecipient``: the snapshot, who is in which sub-audience and treatment, written
  by one INSERT … SELECT. Counts, the recipients download and SYNC differences read it.
- ``DeliveryTreatment``: the sub-audience and treatment names and sizes as they were.
- ``DeliveryTarget``: one treatment × destination: the audience, the per-batch checkpoint
  (``phase`` + ``cursor``, the last customer id TikTok acknowledged), the delivery
  summary and, later, the matched size.
"""

from __future__ import annotations

from django.db import models
from django.urls import reverse


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING_FOR_REAUTH = "waiting_for_reauth", "Waiting for reauthorization"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (DeliveryStatus.QUEUED, DeliveryStatus.RUNNING)


class Delivery(models.Model):
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="deliveries"
    )
    scheduled_for = models.DateTimeField()
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED
    )
    # The worker running it now writes its lease here; heartbeats are conditional on it,
    # so a worker whose delivery was taken over after a stall stops at its next batch.
    lease = models.CharField(max_length=32, blank=True)
    runs = models.PositiveIntegerField(default=0, help_text="times a worker started it")
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    snapshot_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    customers = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    what_to_do = models.TextField(blank=True)
    ready_notified = models.BooleanField(default=False)

    class Meta:
        ordering = ["-scheduled_for", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "scheduled_for"], name="deliveries_one_per_slot"
            )
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="deliveries_status_idx")]

    def __str__(self) -> str:
        return f"Delivery {self.pk} of campaign {self.campaign_id}"

    def get_absolute_url(self) -> str:
        return reverse("deliveries:detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class DeliveryRecipient(models.Model):
    """One row per customer and group at snapshot time. Ids, not foreign keys: the
    snapshot must outlive edits to the campaign and deletions in the customer store.

    The primary key is (delivery, treatment, customer): one index serves the keyset reads
    of the batches, and a million-row snapshot maintains no second index of row ids."""

    pk = models.CompositePrimaryKey("delivery_id", "treatment_id", "customer_id")
    # No database-level foreign key: checking it costs a lookup per row of a million-row
    # INSERT … SELECT, and the row is written in the delivery's own transaction.
    delivery = models.ForeignKey(
        Delivery,
        on_delete=models.CASCADE,
        related_name="recipients",
        db_index=False,
        db_constraint=False,
    )
    customer_id = models.CharField(max_length=64)
    sub_audience_id = models.BigIntegerField()
    treatment_id = models.BigIntegerField()
    is_control = models.BooleanField(default=False)

    class Meta:
        db_table = "delivery_recipients"

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.treatment_id}"


class DeliveryTreatment(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="treatments")
    sub_audience_id = models.BigIntegerField()
    sub_audience_name = models.CharField(max_length=120)
    sub_audience_position = models.IntegerField(default=0)
    is_remaining = models.BooleanField(default=False)
    treatment_id = models.BigIntegerField()
    treatment_name = models.CharField(max_length=120)
    treatment_position = models.IntegerField(default=0)
    is_control = models.BooleanField(default=False)
    customers = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["is_remaining", "sub_audience_position", "treatment_position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "treatment_id"], name="delivery_treatments_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sub_audience_name} / {self.treatment_name}"


class TargetStatus(models.TextChoices):
    PENDING = "pending", "Waiting to send"
    SENDING = "sending", "Sending"
    WAITING_FOR_REAUTH = "waiting_for_reauth", "Waiting for reauthorization"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class TargetPhase(models.TextChoices):
    ADD = "add", "Adding members"
    DELETE = "delete", "Removing members"
    DONE = "done", "Done"


class DeliveryTarget(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="targets")
    treatment = models.ForeignKey(
        DeliveryTreatment, on_delete=models.CASCADE, related_name="targets"
    )
    destination = models.ForeignKey(
        "destinations.Destination", on_delete=models.PROTECT, related_name="delivery_targets"
    )
    destination_name = models.CharField(max_length=120)
    advertiser_id = models.CharField(max_length=19)
    refresh_mode = models.CharField(max_length=10)
    mapping = models.JSONField(default=list, help_text="the attribute mapping as sent")
    id_schema = models.JSONField(default=list)
    # The SYNC base: the last completed target of the same treatment and destination.
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    full_send = models.BooleanField(
        default=True, help_text="add everyone (no previous audience, or the id types changed)"
    )
    status = models.CharField(
        max_length=20, choices=TargetStatus.choices, default=TargetStatus.PENDING
    )
    audience_name = models.CharField(max_length=120)
    audience_id = models.CharField(max_length=19, blank=True)
    audience_created = models.BooleanField(default=False)
    # Set (and committed) before asking TikTok to create the audience: if the answer is
    # lost, the next run looks the audience up by name instead of creating a second one.
    create_requested_at = models.DateTimeField(null=True, blank=True)
    phase = models.CharField(max_length=10, choices=TargetPhase.choices, default=TargetPhase.ADD)
    cursor = models.CharField(max_length=64, blank=True)

    # Delivery summary (from the snapshot, before sending).
    customers = models.BigIntegerField(default=0)
    rows = models.BigIntegerField(default=0)
    shrink = models.BigIntegerField(default=0)
    expansion = models.BigIntegerField(default=0)
    invalid = models.JSONField(default=dict, help_text="invalid values per identifier type")
    people_to_add = models.BigIntegerField(default=0)
    people_to_remove = models.BigIntegerField(default=0)

    # Progress.
    batches_total = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    people_sent = models.BigIntegerField(default=0)
    people_removed = models.BigIntegerField(default=0)
    rows_sent = models.BigIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    rate_limited = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    what_to_do = models.TextField(blank=True)
    note = models.TextField(blank=True)

    # After sending: TikTok's matching.
    poll_until = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    matched = models.BigIntegerField(null=True, blank=True)
    match_rate = models.FloatField(null=True, blank=True)
    poll_note = models.TextField(blank=True)

    class Meta:
        ordering = ["treatment__is_remaining", "treatment__sub_audience_position",
                    "treatment__treatment_position", "destination_name", "id"]  # fmt: skip
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "treatment", "destination"], name="delivery_targets_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.audience_name} → {self.destination_name}"

    @property
    def people_in_audience(self) -> int:
        """People with at least one usable identifier: who the audience should hold."""
        return self.customers - self.shrink

    @property
    def progress_percent(self) -> int:
        if self.status == TargetStatus.SENT:
            return 100
        if not self.batches_total:
            return 0
        return min(100, int(100 * self.batches_done / self.batches_total))

    @property
    def is_polling(self) -> bool:
        return (
            self.status == TargetStatus.SENT
            and bool(self.audience_id)
            and self.ready_at is None
            and not self.poll_note
        )
