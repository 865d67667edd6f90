"""The customer store ("Customer 360"): profiles, their devices and their orders.

Tables carry plain names (customers, devices, orders) because SQL segments are written
against them. Devices and orders reference customers by the natural `customer_id`, so the
SQL a marketer writes reads the way the data is described.
"""

from __future__ import annotations

from django.db import models


class Customer(models.Model):
    customer_id = models.CharField(max_length=64, unique=True)
    given_name = models.CharField(max_length=100, blank=True)
    surname = models.CharField(max_length=100, blank=True)
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=64, blank=True)
    street = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2")
    birthdate = models.DateField(null=True, blank=True)
    gender = models.CharField(max_length=20, blank=True)
    loyalty_tier = models.CharField(max_length=20, blank=True)
    email_opt_in = models.BooleanField(null=True)
    sms_opt_in = models.BooleanField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # Computed at import from email / phone (destinations.tiktok.normalize).
    email_normalized = models.CharField(max_length=254, blank=True)
    email_sha256 = models.CharField(max_length=64, blank=True)
    phone_e164 = models.CharField(max_length=20, blank=True)
    phone_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "customers"
        indexes = [
            models.Index(fields=["state"], name="customers_state_idx"),
            models.Index(fields=["loyalty_tier"], name="customers_tier_idx"),
            models.Index(fields=["birthdate"], name="customers_birthdate_idx"),
            models.Index(fields=["created_at"], name="customers_created_idx"),
        ]

    def __str__(self) -> str:
        return self.customer_id


class DeviceKind(models.TextChoices):
    IDFA = "IDFA", "IDFA (Apple)"
    AAID = "AAID", "AAID (Android)"


class Device(models.Model):
    customer = models.ForeignKey(
        Customer,
        to_field="customer_id",
        db_column="customer_id",
        on_delete=models.CASCADE,
        related_name="devices",
    )
    kind = models.CharField(max_length=4, choices=DeviceKind.choices)
    raw_id = models.CharField(max_length=100)
    normalized_id = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "devices"
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "kind", "raw_id"], name="devices_natural_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.customer_id}"


class Channel(models.TextChoices):
    WEB = "web", "Web"
    STORE = "store", "Store"
    APP = "app", "App"
    PHONE = "phone", "Phone"


class Order(models.Model):
    order_id = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(
        Customer,
        to_field="customer_id",
        db_column="customer_id",
        on_delete=models.CASCADE,
        related_name="orders",
    )
    ordered_at = models.DateTimeField()
    channel = models.CharField(max_length=10, choices=Channel.choices)
    store = models.CharField(max_length=100, blank=True)
    brand = models.CharField(max_length=100, blank=True)
    product_name = models.CharField(max_length=200, blank=True)
    product_category = models.CharField(max_length=100, blank=True)
    quantity = models.IntegerField(default=1)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    is_return = models.BooleanField(default=False)

    class Meta:
        db_table = "orders"
        indexes = [
            models.Index(fields=["customer", "ordered_at"], name="orders_customer_time_idx"),
            models.Index(fields=["ordered_at"], name="orders_time_idx"),
        ]

    def __str__(self) -> str:
        return self.order_id


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Rejected"


class ImportJob(models.Model):
    """One CSV file uploaded on the Data page and imported by a worker."""

    kind = models.CharField(
        max_length=10,
        choices=[("customers", "Customers"), ("devices", "Devices"), ("orders", "Orders")],
    )
    status = models.CharField(
        max_length=10, choices=ImportStatus.choices, default=ImportStatus.PENDING
    )
    original_name = models.CharField(max_length=255)
    file_path = models.CharField(max_length=500, help_text="relative to MEDIA_ROOT")
    size_bytes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        "accounts.User", null=True, on_delete=models.SET_NULL, related_name="import_jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The watchdog (customers.services.import_jobs_watchdog) reads these: a queued job whose
    # message was lost is enqueued again; a running job whose worker stopped beating is
    # queued again (nothing was saved: the import commits at its end) or, after
    # IMPORT_MAX_ATTEMPTS, rejected.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="times a worker started it")
    phase = models.CharField(max_length=100, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent")
    rows_read = models.BigIntegerField(default=0)
    rows_inserted = models.BigIntegerField(default=0)
    rows_updated = models.BigIntegerField(default=0)
    rows_unchanged = models.BigIntegerField(default=0)
    error_rows = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0)
    message = models.TextField(blank=True, help_text="why the file was rejected")
    error_report_path = models.CharField(max_length=500, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    # Devices only: the file holds all the devices of each customer it lists.
    replace_devices = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} import {self.pk} ({self.status})"

    @property
    def rows_loaded(self) -> int:
        return self.rows_inserted + self.rows_updated + self.rows_unchanged

    @property
    def is_active(self) -> bool:
        return self.status in (ImportStatus.PENDING, ImportStatus.RUNNING)
