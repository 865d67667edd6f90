"""Segments: named, reusable definitions of a set of customers.

A segment is either VISUAL (a versioned JSON condition tree in `definition`, compiled by
`segments.compiler`) or SQL (one validated SELECT in `sql`, checked by `segments.sqlcheck`).
Only ACTIVE segments can be used by campaigns or referenced by other segments.

Every saved change writes a `SegmentVersion` row (see `segments.services`), so the
history page can show who changed what and when.

`CustomerList` / `CustomerListMember` hold uploaded lists of customer ids that a visual
condition ("in an uploaded list") can refer to; membership is a plain indexed table so the
compiled SQL joins it set-wise.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SegmentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"


class SegmentKind(models.TextChoices):
    VISUAL = "visual", "Visual"
    SQL = "sql", "SQL"


def empty_definition() -> dict:
    return {
        "version": 1,
        "combinator": "and",
        "sections": [{"combinator": "and", "conditions": []}],
        "exclusions": {"combinator": "or", "conditions": []},
    }


class Segment(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=SegmentStatus.choices, default=SegmentStatus.DRAFT
    )
    kind = models.CharField(max_length=10, choices=SegmentKind.choices, default=SegmentKind.VISUAL)
    definition = models.JSONField(default=empty_definition, blank=True)
    sql = models.TextField(blank=True)
    last_count = models.BigIntegerField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["status", "name"], name="segments_status_name_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == SegmentStatus.ACTIVE

    @property
    def is_sql(self) -> bool:
        return self.kind == SegmentKind.SQL


class SegmentVersion(models.Model):
    """An immutable snapshot of a segment after each saved change."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=SegmentStatus.choices)
    kind = models.CharField(max_length=10, choices=SegmentKind.choices)
    definition = models.JSONField(default=dict, blank=True)
    sql = models.TextField(blank=True)
    change = models.CharField(max_length=200, blank=True, help_text="What this change did")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["segment", "number"], name="segment_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.segment_id} v{self.number}"


class CustomerList(models.Model):
    """An uploaded list of customer ids, usable in a visual condition."""

    name = models.CharField(max_length=200)
    size = models.PositiveIntegerField(default=0)
    unknown_ids = models.PositiveIntegerField(
        default=0,
        help_text="Ids in the upload that match no customer (kept, they may arrive later)",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class CustomerListMember(models.Model):
    customer_list = models.ForeignKey(
        CustomerList, on_delete=models.CASCADE, related_name="members"
    )
    customer_id = models.CharField(max_length=64)

    class Meta:
        db_table = "segments_customer_list_member"
        constraints = [
            models.UniqueConstraint(
                fields=["customer_list", "customer_id"], name="customer_list_member_unique"
            )
        ]

    def __str__(self) -> str:
        return self.customer_id


class SqlResult(models.Model):
    """One evaluation of an SQL segment's query on the fenced connection (`segments.fence`).

    The members live in `SqlResultMember`; everything else in the product (insights,
    campaign counts, the delivery snapshot) reads that table instead of running the
    person's SQL itself, so that SQL only ever runs where the database fences it.
    """

    sql_hash = models.CharField(max_length=64)
    size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "segments_sql_result"
        indexes = [models.Index(fields=["sql_hash", "created_at"], name="segments_sqlres_hash_idx")]

    def __str__(self) -> str:
        return f"SQL result {self.pk} ({self.size} members)"


class SqlResultMember(models.Model):
    pk = models.CompositePrimaryKey("result_id", "customer_id")
    # No cascade through the ORM (a result can hold millions of rows): `segments.fence`
    # deletes members with one statement before their result. No database constraint
    # either: on SQLite the fence's authorizer lets the evaluation read the store only.
    result = models.ForeignKey(
        SqlResult, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    customer_id = models.CharField(max_length=64)

    class Meta:
        db_table = "segments_sql_result_member"

    def __str__(self) -> str:
        return f"{self.customer_id} in SQL result {self.result_id}"
