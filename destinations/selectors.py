"""Reads about destinations: lists, warnings for campaigns, the customer store's columns."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import QuerySet

from destinations.models import DefaultAttribute, Destination, DestinationStatus, SourceTable


def destinations_visible() -> QuerySet[Destination]:
    return Destination.objects.select_related("connected_by").order_by("name", "id")


def destinations_usable() -> QuerySet[Destination]:
    """Destinations a campaign may send to now."""
    return Destination.objects.filter(status=DestinationStatus.CONNECTED).order_by("name", "id")


def destinations_needing_reauth() -> QuerySet[Destination]:
    return Destination.objects.filter(status=DestinationStatus.NEEDS_REAUTH).order_by("name", "id")


def destination_warnings(destinations: Iterable[Destination]) -> list[str]:
    """One sentence per destination a campaign cannot send to right now."""
    warnings = []
    for destination in destinations:
        if destination.status == DestinationStatus.NEEDS_REAUTH:
            warnings.append(
                f"TikTok destination “{destination.name}” needs reauthorization: its "
                "deliveries wait until an operator reauthorizes it."
            )
        elif destination.status == DestinationStatus.DISCONNECTED:
            warnings.append(
                f"TikTok destination “{destination.name}” is disconnected: nothing is sent "
                "to it until it is connected again."
            )
    return warnings


def source_columns(table: str) -> list[str]:
    """The real columns of a customer-store table, as the database reports them."""
    if table not in SourceTable.values:
        return []
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, table)
    return sorted(col.name for col in description)


def default_mapping(destination: Destination) -> list[DefaultAttribute]:
    return list(destination.default_attributes.order_by("position", "id"))
