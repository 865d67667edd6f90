from __future__ import annotations

from django.db.models import Exists, OuterRef, Q

from customers.models import Customer, Device, Order


def store_totals() -> dict[str, int]:
    """Headline counts of the customer store; reachable = any usable TikTok identifier."""
    has_device = Exists(
        Device.objects.filter(customer_id=OuterRef("customer_id")).exclude(sha256="")
    )
    reachable = Customer.objects.filter(
        ~Q(email_sha256="") | ~Q(phone_sha256="") | has_device
    ).count()
    return {
        "customers": Customer.objects.count(),
        "reachable": reachable,
        "devices": Device.objects.count(),
        "orders": Order.objects.count(),
    }


def import_jobs_recent(limit: int = 15):
    from customers.models import ImportJob

    return ImportJob.objects.select_related("created_by")[:limit]
