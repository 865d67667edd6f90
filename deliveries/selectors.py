"""Reads for deliveries: the delivery summary, history, recipients, and what each TikTok
audience holds. (Batches of rows to send are read from a target's changes against its
audience's ledger: deliveries.ledger.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import QuerySet

from deliveries.ledger import ledger_counts
from deliveries.models import (
    ACTIVE_STATUSES,
    Delivery,
    DeliveryRecipient,
    DeliveryStatus,
    DeliveryTarget,
    DestinationAudience,
)

DEVICE_KINDS = {"IDFA_SHA256": "IDFA", "AAID_SHA256": "AAID"}


# ---- delivery summary -------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    customers: int
    rows: int
    shrink: int
    expansion: int
    invalid: dict[str, int]


def target_summary(delivery_id: int, treatment_id: int, schema: Sequence[str]) -> Summary:
    """Customers, rows, shrink, expansion and invalid values per identifier type for one
    treatment of the snapshot sent with `schema`: one set-based query."""
    sent = set(schema)

    def ok(kind: str, expr: str) -> str:
        return expr if kind in sent else "0"

    email_ok = ok("EMAIL_SHA256", "CASE WHEN c.email_sha256 <> '' THEN 1 ELSE 0 END")
    phone_ok = ok("PHONE_SHA256", "CASE WHEN c.phone_sha256 <> '' THEN 1 ELSE 0 END")
    email_bad = ok(
        "EMAIL_SHA256", "CASE WHEN c.email <> '' AND c.email_sha256 = '' THEN 1 ELSE 0 END"
    )
    phone_bad = ok(
        "PHONE_SHA256", "CASE WHEN c.phone <> '' AND c.phone_sha256 = '' THEN 1 ELSE 0 END"
    )
    kinds = [DEVICE_KINDS[t] for t in schema if t in DEVICE_KINDS]
    device_join, params = "", []
    cols = {"idfa_ok": "0", "aaid_ok": "0", "idfa_bad": "0", "aaid_bad": "0"}
    if kinds:
        aggregates = []
        for kind in ("IDFA", "AAID"):
            low = kind.lower()
            if kind in kinds:
                aggregates += [
                    f"SUM(CASE WHEN d.kind = '{kind}' AND d.sha256 <> '' THEN 1 ELSE 0 END) "
                    f"AS {low}_ok",
                    f"SUM(CASE WHEN d.kind = '{kind}' AND d.sha256 = '' THEN 1 ELSE 0 END) "
                    f"AS {low}_bad",
                ]
                cols[f"{low}_ok"] = f"COALESCE(dv.{low}_ok, 0)"
                cols[f"{low}_bad"] = f"COALESCE(dv.{low}_bad, 0)"
        device_join = (
            f"LEFT JOIN (SELECT d.customer_id, {', '.join(aggregates)} FROM devices d "
            "JOIN delivery_recipients r2 ON r2.customer_id = d.customer_id "
            "AND r2.delivery_id = %s AND r2.treatment_id = %s GROUP BY d.customer_id) dv "
            "ON dv.customer_id = r.customer_id"
        )
        params = [delivery_id, treatment_id]
    inner = (
        f"SELECT CASE WHEN {email_ok} + {phone_ok} > 0 THEN 1 ELSE 0 END AS base, "
        f"{cols['idfa_ok']} AS idfa_ok, {cols['aaid_ok']} AS aaid_ok, "
        f"{email_bad} AS email_bad, {phone_bad} AS phone_bad, "
        f"{cols['idfa_bad']} AS idfa_bad, {cols['aaid_bad']} AS aaid_bad "
        "FROM delivery_recipients r LEFT JOIN customers c ON c.customer_id = r.customer_id "
        f"{device_join} WHERE r.delivery_id = %s AND r.treatment_id = %s"
    )
    n_rows = (
        "CASE WHEN y.idfa_ok >= y.aaid_ok AND y.idfa_ok >= y.base THEN y.idfa_ok "
        "WHEN y.aaid_ok >= y.base THEN y.aaid_ok ELSE y.base END"
    )
    sql = (
        f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN {n_rows} = 0 THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM({n_rows}), 0), COALESCE(SUM(y.email_bad), 0), "
        "COALESCE(SUM(y.phone_bad), 0), COALESCE(SUM(y.idfa_bad), 0), "
        f"COALESCE(SUM(y.aaid_bad), 0) FROM ({inner}) y"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, delivery_id, treatment_id])
        customers, shrink, rows, e_bad, p_bad, i_bad, a_bad = (int(v) for v in cursor.fetchone())
    invalid = {}
    for id_type, count in (
        ("EMAIL", e_bad),
        ("PHONE", p_bad),
        ("IDFA", i_bad),
        ("AAID", a_bad),
    ):
        if f"{id_type}_SHA256" in sent:
            invalid[id_type] = count
    reached = customers - shrink
    return Summary(
        customers=customers,
        rows=rows,
        shrink=shrink,
        expansion=rows - reached,
        invalid=invalid,
    )


# ---- pages -------------------------------------------------------------------------------


def campaign_deliveries(campaign_id: int, *, limit: int = 20) -> list[Delivery]:
    """The campaign's delivery history, newest first, with targets and treatments."""
    deliveries = list(
        Delivery.objects.filter(campaign_id=campaign_id).order_by("-scheduled_for", "-id")[:limit]
    )
    targets: dict[int, list[DeliveryTarget]] = {}
    for target in DeliveryTarget.objects.filter(delivery__in=deliveries).select_related(
        "treatment"
    ):
        targets.setdefault(target.delivery_id, []).append(target)
    for delivery in deliveries:
        delivery.target_list = targets.get(delivery.pk, [])  # type: ignore[attr-defined]
        delivery.progress = delivery_progress(delivery.target_list)  # type: ignore[attr-defined]
    return deliveries


@dataclass(frozen=True)
class Progress:
    batches_done: int
    batches_total: int
    people_sent: int
    people_removed: int
    people_total: int

    @property
    def percent(self) -> int:
        if not self.batches_total:
            return 0
        return min(100, int(100 * self.batches_done / self.batches_total))


def delivery_progress(targets: Sequence[DeliveryTarget]) -> Progress:
    return Progress(
        batches_done=sum(t.batches_done for t in targets),
        batches_total=sum(t.batches_total for t in targets),
        people_sent=sum(t.people_sent for t in targets),
        people_removed=sum(t.people_removed for t in targets),
        people_total=sum(t.people_in_audience for t in targets),
    )


def has_active_delivery(campaign_id: int) -> bool:
    return Delivery.objects.filter(campaign_id=campaign_id, status__in=ACTIVE_STATUSES).exists()


def deliveries_waiting_for_reauth() -> QuerySet[Delivery]:
    return Delivery.objects.filter(status=DeliveryStatus.WAITING_FOR_REAUTH)


def recipient_rows(delivery: Delivery) -> Iterator[tuple[str, str, str, bool]]:
    """(customer id, sub-audience, treatment, control) for every snapshot row, streamed."""
    names = {
        t.treatment_id: (t.sub_audience_name, t.treatment_name) for t in delivery.treatments.all()
    }
    rows = (
        DeliveryRecipient.objects.filter(delivery=delivery)
        .order_by("customer_id", "sub_audience_id")
        .values_list("customer_id", "treatment_id", "is_control")
    )
    for customer_id, treatment_id, is_control in rows.iterator(chunk_size=5000):
        sub_name, treatment_name = names.get(treatment_id, ("", ""))
        yield customer_id, sub_name, treatment_name, is_control


# ---- what TikTok holds ----------------------------------------------------------------------


@dataclass(frozen=True)
class AudienceHoldings:
    audience: DestinationAudience
    counts: dict[str, int]  # ids per id type, from the ledger
    latest: DeliveryTarget | None  # the last target that wrote to the audience
    matched: DeliveryTarget | None  # the last target TikTok reported a matched size for
    pending: bool  # a delivery of its campaign is in progress

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def destination_audiences() -> QuerySet[DestinationAudience]:
    return DestinationAudience.objects.select_related("destination", "campaign")


def audience_holdings(audience: DestinationAudience) -> AudienceHoldings:
    targets = DeliveryTarget.objects.filter(
        destination_id=audience.destination_id, audience_id=audience.audience_id
    ).select_related("delivery", "treatment")
    latest = targets.order_by("-delivery__scheduled_for", "-id").first()
    matched = (
        targets.exclude(matched=None).order_by("-ready_at", "-id").first()
        if latest is not None
        else None
    )
    pending = bool(audience.campaign_id) and has_active_delivery(audience.campaign_id)  # type: ignore[arg-type]
    return AudienceHoldings(
        audience=audience,
        counts=ledger_counts(audience),
        latest=latest,
        matched=matched,
        pending=pending,
    )
