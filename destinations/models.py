"""Destinations (TikTok Ads advertiser accounts) and their default attribute mapping."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from destinations.crypto import EncryptedTextField


class DestinationKind(models.TextChoices):
    TIKTOK_ADS = "tiktok_ads", "TikTok Ads"


class DestinationStatus(models.TextChoices):
    CONNECTED = "connected", "Connected"
    NEEDS_REAUTH = "needs_reauth", "Needs reauthorization"
    DISCONNECTED = "disconnected", "Disconnected"


advertiser_id_validator = RegexValidator(
    r"^[0-9]{1,19}$", "A TikTok advertiser id is a string of up to 19 digits."
)


class Destination(models.Model):
    name = models.CharField(max_length=120)
    kind = models.CharField(
        max_length=20, choices=DestinationKind.choices, default=DestinationKind.TIKTOK_ADS
    )
    advertiser_id = models.CharField(max_length=19, validators=[advertiser_id_validator])
    advertiser_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=20, choices=DestinationStatus.choices, default=DestinationStatus.CONNECTED
    )
    # Encrypted at rest (destinations.crypto); never rendered, logged or sent to a browser.
    access_token = EncryptedTextField(blank=True, editable=False)
    refresh_token = EncryptedTextField(blank=True, editable=False)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    needs_reauth_since = models.DateTimeField(null=True, blank=True)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    connected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # One live destination per advertiser; a disconnected one may be connected anew.
            models.UniqueConstraint(
                fields=["kind", "advertiser_id"],
                condition=~models.Q(status="disconnected"),
                name="destinations_one_live_per_advertiser",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Destination {self.pk} {self.name!r} {self.status}>"

    @property
    def is_usable(self) -> bool:
        return self.status == DestinationStatus.CONNECTED


class DestinationAttribute(models.TextChoices):
    """What TikTok receives. Identifiers first, then the offline-event parameters."""

    EMAIL = "EMAIL", "EMAIL"
    PHONE = "PHONE", "PHONE"
    IDFA = "IDFA", "IDFA"
    AAID = "AAID", "AAID"
    EVENT = "event", "event"
    EVENT_ID = "event_id", "event_id"
    TIMESTAMP = "timestamp", "timestamp"
    VALUE = "value", "value"
    CURRENCY = "currency", "currency"
    ORDER_ID = "order_id", "order_id"
    SHOP_ID = "shop_id", "shop_id"
    CONTENT_ID = "content_id", "content_id"
    CONTENT_NAME = "content_name", "content_name"
    CONTENT_CATEGORY = "content_category", "content_category"
    CONTENT_TYPE = "content_type", "content_type"
    BRAND = "brand", "brand"
    PRICE = "price", "price"
    QUANTITY = "quantity", "quantity"
    EVENT_CHANNEL = "event_channel", "event_channel"


IDENTIFIER_ATTRIBUTES = frozenset(
    {
        DestinationAttribute.EMAIL,
        DestinationAttribute.PHONE,
        DestinationAttribute.IDFA,
        DestinationAttribute.AAID,
    }
)


class SourceTable(models.TextChoices):
    CUSTOMERS = "customers", "customers"
    DEVICES = "devices", "devices"
    ORDERS = "orders", "orders"


class DefaultAttribute(models.Model):
    """One row of a destination's default mapping: which source column feeds which attribute.

    For IDFA and AAID the devices row's `kind` selects the device type, so both map to
    `devices.raw_id` and delivery filters on kind.
    """

    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="default_attributes"
    )
    destination_attribute = models.CharField(max_length=30, choices=DestinationAttribute.choices)
    source_table = models.CharField(max_length=20, choices=SourceTable.choices)
    source_attribute = models.CharField(max_length=64, blank=True)
    required = models.BooleanField(default=False)
    enabled = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["destination", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "destination_attribute"],
                name="default_attributes_one_per_attribute",
            )
        ]

    def __str__(self) -> str:
        return f"{self.source_table}.{self.source_attribute} → {self.destination_attribute}"

    @property
    def is_identifier(self) -> bool:
        return self.destination_attribute in IDENTIFIER_ATTRIBUTES
