"""Deliveries: one run of a campaign, what it snapshotted, and what it sent where.

- ``Delivery``: one due slot of a campaign (unique per campaign and scheduled time, so two
  schedulers never create it twice), claimed by one worker at a time through ``lease``.
- ``DeliveryRecipient``: the snapshot, who is in which sub-audience and treatment, written
  by one INSERT … SELECT. Counts, the recipients download and SYNC differences read it.
- ``DeliveryTreatment``: the sub-audience and treatment names and sizes as they were.
- ``DeliveryTarget``: one treatment × destination: the audience, the per-batch checkpoint
  (``phase`` + ``cursor``, the last customer id TikTok acknowledged), the delivery
  summary and, later, the matched size.
- ``DestinationAudience`` and ``LedgerEntry``: what each TikTok audience the product writes
  to holds, hash by hash, as TikTok acknowledged it. ``DeliveryChange``: one target's
  difference between what the audience should hold and its ledger, consumed batch by batch.
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

    # The difference against the audience's ledger, computed once before the first batch
    # (``deliveries.ledger.target_diff``): ids to add and remove per id type and why,
    # {"add": {"EMAIL_SHA256": {"joined": n, "changed": n}}, "delete": {... "left": n}}.
    diff_at = models.DateTimeField(null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    destination_audience = models.ForeignKey(
        "DestinationAudience",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="targets",
    )

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


class DestinationAudience(models.Model):
    """A TikTok audience the product writes to: the owner of a ledger."""

    destination = models.ForeignKey(
        "destinations.Destination", on_delete=models.PROTECT, related_name="audiences"
    )
    audience_id = models.CharField(max_length=19, help_text="TikTok's audience id")
    name = models.CharField(max_length=120)
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="destination_audiences",
    )
    treatment_id = models.BigIntegerField(null=True, blank=True)
    refresh_mode = models.CharField(max_length=10, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the ledger was seeded from a snapshot taken before the ledger existed.
    seeded_from_snapshot = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "audience_id"], name="destination_audiences_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.audience_id})"

    def get_absolute_url(self) -> str:
        return reverse("deliveries:audience", args=[self.pk])


class LedgerEntry(models.Model):
    """One hashed id TikTok acknowledged for an audience, and the customer it came from.

    Written in the transaction of the batch checkpoint, so it holds exactly what TikTok
    acknowledged. A delete always sends the hash recorded here, never a recomputed one."""

    pk = models.CompositePrimaryKey("audience_id", "id_type", "sha256")
    audience = models.ForeignKey(
        DestinationAudience,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    id_type = models.CharField(max_length=12)
    sha256 = models.CharField(max_length=64)
    customer_id = models.CharField(max_length=64)

    class Meta:
        db_table = "audience_ledger"
        indexes = [
            models.Index(fields=["audience", "customer_id"], name="audience_ledger_customer_idx")
        ]

    def __str__(self) -> str:
        return f"{self.id_type} of {self.customer_id}"


class ChangeAction(models.TextChoices):
    ADD = "add", "Add"
    DELETE = "delete", "Remove"


class ChangeReason(models.TextChoices):
    JOINED = "joined", "joined"
    LEFT = "left", "left"
    CHANGED = "changed", "identifier changed"


class DeliveryChange(models.Model):
    """One id a target adds to or removes from its audience. ``slot`` numbers a person's ids
    of one type, so the n-th ids of each type share the person's n-th TikTok row."""

    pk = models.CompositePrimaryKey("target_id", "action", "customer_id", "id_type", "sha256")
    target = models.ForeignKey(
        DeliveryTarget,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    action = models.CharField(max_length=6, choices=ChangeAction.choices)
    customer_id = models.CharField(max_length=64)
    id_type = models.CharField(max_length=12)
    sha256 = models.CharField(max_length=64)
    reason = models.CharField(max_length=7, choices=ChangeReason.choices)
    slot = models.IntegerField(default=1)

    class Meta:
        db_table = "delivery_changes"

    def __str__(self) -> str:
        return f"{self.action} {self.id_type} of {self.customer_id}"
