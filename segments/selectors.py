"""Reads over segments and their members. Public API (other apps rely on these names):

- ``segment_members_sql(segment) -> CompiledSQL``: one column ``customer_id``, no
  duplicates, for visual segments (``SELECT c.customer_id FROM customers c WHERE ...``) and
  SQL segments (their members as evaluated behind the database fence, ``segments.fence``).
  Raises ``DefinitionError``, ``SqlSegmentError`` or ``SegmentQueryError`` when the segment
  is invalid or cannot run.
- ``definition_members_sql(definition) -> CompiledSQL``: the same for an inline definition
  (campaign sub-audiences with custom criteria).
- ``segment_count(segment) -> int`` and ``count_members(compiled) -> int``: run read-only
  with the statement timeout (``segments.runner``).
- ``active_segments()``: Active segments, by name.
- ``segment_usages(segment) -> list[Usage]``: from ``segments.usage.USAGE_PROVIDERS``.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db.models import Q, QuerySet

from segments.compiler import ORDER_FILTERS, CompiledSQL, compile_definition
from segments.fence import evaluate, members_query
from segments.models import CustomerList, Segment, SegmentKind, SegmentStatus
from segments.runner import fetch_all, fetch_one
from segments.usage import Usage, segment_usages

__all__ = [
    "Usage",
    "active_segments",
    "count_members",
    "definition_members_sql",
    "segment_count",
    "segment_members_sql",
    "segment_usages",
]

SORTS = {
    "name": "name",
    "-name": "-name",
    "status": "status",
    "-status": "-status",
    "size": "last_count",
    "-size": "-last_count",
    "updated": "updated_at",
    "-updated": "-updated_at",
}


def segment_members_sql(segment: Segment) -> CompiledSQL:
    if segment.kind == SegmentKind.SQL:
        return CompiledSQL(sql=members_query(evaluate(segment.sql)), params=[])
    return compile_definition(segment.definition, segment_id=segment.pk)


def definition_members_sql(definition: dict) -> CompiledSQL:
    return compile_definition(definition)


def count_members(compiled: CompiledSQL) -> int:
    row = fetch_one(CompiledSQL(f"SELECT COUNT(*) FROM ({compiled.sql}) m", compiled.params))
    return int(row[0])


def segment_count(segment: Segment) -> int:
    return count_members(segment_members_sql(segment))


def active_segments() -> QuerySet[Segment]:
    return Segment.objects.filter(status=SegmentStatus.ACTIVE).order_by("name")


def segment_list(*, query: str = "", sort: str = "-updated") -> QuerySet[Segment]:
    segments = Segment.objects.select_related("updated_by")
    if query:
        segments = segments.filter(Q(name__icontains=query) | Q(description__icontains=query))
    return segments.order_by(SORTS.get(sort, "-updated_at"), "pk")


def customer_lists() -> QuerySet[CustomerList]:
    return CustomerList.objects.order_by("name")


PICKER_COLUMNS = {
    "state": ("customers", "state"),
    "country": ("customers", "country"),
    "gender": ("customers", "gender"),
    "loyalty_tier": ("customers", "loyalty_tier"),
    **{key: ("orders", key) for key in ORDER_FILTERS},
}
PICKER_LIMIT = 300


def picker_values(key: str) -> list[str]:
    """Existing values of a low-cardinality column, most common first (cached 10 minutes)."""
    if key not in PICKER_COLUMNS:
        return []
    cache_key = f"segments:picker:{key}"
    values: Any = cache.get(cache_key)
    if values is None:
        table, column = PICKER_COLUMNS[key]
        # Identifiers come from the fixed map above, never from the request.
        rows = fetch_all(
            CompiledSQL(
                f"SELECT {column} FROM {table} WHERE {column} <> '' "
                f"GROUP BY {column} ORDER BY COUNT(*) DESC LIMIT {PICKER_LIMIT}",
                [],
            )
        )
        values = sorted(str(r[0]) for r in rows)
        cache.set(cache_key, values, 600)
    return list(values)
