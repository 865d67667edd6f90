"""Reads for deliveries: batches of rows to send, the delivery summary, history, recipients.

Batches are defined on the snapshot: people of one treatment in customer_id order,
`TIKTOK_BATCH_SIZE` at a time, after the last customer id TikTok acknowledged. Each batch
is one keyset query (the snapshot's unique index serves it), so memory holds one batch
and a resumed delivery continues exactly after its checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import QuerySet

from deliveries.models import (
    ACTIVE_STATUSES,
    Delivery,
    DeliveryRecipient,
    DeliveryStatus,
    DeliveryTarget,
    TargetPhase,
)

DEVICE_KINDS = {"IDFA_SHA256": "IDFA", "AAID_SHA256": "AAID"}


@dataclass
class Batch:
    rows: list[list[str | None]] = field(default_factory=list)
    people: int = 0  # people in the batch with at least one usable identifier
    scanned: int = 0  # snapshot people the batch covers (with or without identifiers)
    last_customer_id: str = ""


def _scope(target: DeliveryTarget, phase: str) -> tuple[int, int | None]:
    """(delivery whose snapshot is read, delivery whose snapshot is subtracted)."""
    previous = target.previous.delivery_id if target.previous_id else None  # type: ignore[union-attr]
    if phase == TargetPhase.DELETE:
        assert previous is not None
        return previous, target.delivery_id
    return target.delivery_id, None if target.full_send else previous


def _people_sql(target: DeliveryTarget, phase: str) -> tuple[str, list]:
    source, minus = _scope(target, phase)
    treatment_id = target.treatment.treatment_id
    sql = "FROM delivery_recipients r WHERE r.delivery_id = %s AND r.treatment_id = %s"
    params: list = [source, treatment_id]
    if minus is not None:
        sql += (
            " AND NOT EXISTS (SELECT 1 FROM delivery_recipients o WHERE o.delivery_id = %s"
            " AND o.treatment_id = %s AND o.customer_id = r.customer_id)"
        )
        params += [minus, treatment_id]
    return sql, params


def people_count(target: DeliveryTarget, phase: str) -> int:
    sql, params = _people_sql(target, phase)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) {sql}", params)
        return int(cursor.fetchone()[0])


def has_usable_identifier(target: DeliveryTarget) -> bool:
    """Whether anyone in the target's snapshot has an identifier the mapping sends."""
    people_sql, params = _people_sql(target, TargetPhase.ADD)
    schema = set(target.id_schema)
    tests = [f"c.{col} <> ''" for t, col in (("EMAIL_SHA256", "email_sha256"),
             ("PHONE_SHA256", "phone_sha256")) if t in schema]  # fmt: skip
    kinds = [DEVICE_KINDS[t] for t in target.id_schema if t in DEVICE_KINDS]
    if kinds:
        tests.append(
            "EXISTS (SELECT 1 FROM devices d WHERE d.customer_id = r.customer_id AND d.kind IN "
            f"({', '.join(['%s'] * len(kinds))}) AND d.sha256 <> '')"
        )
    if not tests:
        return False
    joined = people_sql.replace(
        "FROM delivery_recipients r",
        "FROM delivery_recipients r JOIN customers c ON c.customer_id = r.customer_id",
        1,
    )
    sql = f"SELECT 1 {joined} AND ({' OR '.join(tests)}) LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *kinds])
        return cursor.fetchone() is not None


def next_batch(target: DeliveryTarget, phase: str, *, after: str, size: int) -> Batch:
    """The next `size` snapshot people after customer id `after`, as TikTok rows.

    A person with several devices makes several rows (expansion); each extra row repeats
    the email and phone so TikTok ties the ids to one person. People without any usable
    identifier make no row (shrink) but still advance the checkpoint.
    """
    schema: Sequence[str] = target.id_schema
    people_sql, params = _people_sql(target, phase)
    kinds = [DEVICE_KINDS[t] for t in schema if t in DEVICE_KINDS]
    device_cols, device_join, device_order = ", NULL, NULL", "", ""
    device_params: list = []
    if kinds:
        device_cols = ", d.kind, d.sha256"
        device_join = (
            "LEFT JOIN devices d ON d.customer_id = b.customer_id "
            f"AND d.kind IN ({', '.join(['%s'] * len(kinds))}) AND d.sha256 <> ''"
        )
        device_order = ", d.kind, d.sha256"
        device_params = kinds
    sql = (
        f"SELECT b.customer_id, c.email_sha256, c.phone_sha256{device_cols} FROM "
        f"(SELECT r.customer_id {people_sql} AND r.customer_id > %s "
        "ORDER BY r.customer_id LIMIT %s) b "
        f"LEFT JOIN customers c ON c.customer_id = b.customer_id {device_join} "
        f"ORDER BY b.customer_id{device_order}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, after, size, *device_params])
        records = cursor.fetchall()
    return rows_from_records(records, schema)


def rows_from_records(records: list[tuple], schema: Sequence[str]) -> Batch:
    """Group (customer_id, email_sha256, phone_sha256, device kind, device sha256) records,
    ordered by customer, into rows positional to `schema`."""
    batch = Batch()
    if not any(t in DEVICE_KINDS for t in schema):
        return _rows_without_devices(records, schema)
    pos = {t: i for i, t in enumerate(schema)}
    email_at, phone_at = pos.get("EMAIL_SHA256"), pos.get("PHONE_SHA256")
    idfa_at, aaid_at = pos.get("IDFA_SHA256"), pos.get("AAID_SHA256")
    width = len(schema)
    current = None
    base: list[str | None] = []
    idfa: list[str] = []
    aaid: list[str] = []

    def flush() -> None:
        has_base = any(v for v in base)
        count = max(1 if has_base else 0, len(idfa), len(aaid))
        if not count:
            return
        batch.people += 1
        for i in range(count):
            row = list(base)
            if idfa_at is not None and i < len(idfa):
                row[idfa_at] = idfa[i]
            if aaid_at is not None and i < len(aaid):
                row[aaid_at] = aaid[i]
            batch.rows.append(row)

    for customer_id, email, phone, kind, device in records:
        if customer_id != current:
            if current is not None:
                flush()
            current = customer_id
            batch.scanned += 1
            base = [None] * width
            if email_at is not None and email:
                base[email_at] = email
            if phone_at is not None and phone:
                base[phone_at] = phone
            idfa, aaid = [], []
        if device:
            (idfa if kind == "IDFA" else aaid).append(device)
    if current is not None:
        flush()
        batch.last_customer_id = current
    return batch


def _rows_without_devices(records: list[tuple], schema: Sequence[str]) -> Batch:
    """The common case, one record and at most one row per person, without grouping."""
    email = "EMAIL_SHA256" in schema
    phone = "PHONE_SHA256" in schema
    if email and phone:
        # SCHEMA_ORDER puts EMAIL before PHONE.
        rows = [[r[1] or None, r[2] or None] for r in records if r[1] or r[2]]
    else:
        col = 1 if email else 2
        rows = [[r[col]] for r in records if r[col]]
    return Batch(
        rows=rows,
        people=len(rows),
        scanned=len(records),
        last_customer_id=records[-1][0] if records else "",
    )


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
