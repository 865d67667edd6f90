"""Reads for deliveries: batches of rows to send, the delivery summary, history, recipients.

Batches are defined on the snapshot: people of one treatment in customer_id order,
`TIKTOK_BATCH_SIZE` at a time, after the last customer id TikTok acknowledged. Each batch
is one keyset query (the snapshot's unique index serves it), so memory holds one batch
and a resumed delivery continues exactly after its checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from django.db import connection, transaction
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


BASE_COLUMNS = (("EMAIL_SHA256", "email_sha256"), ("PHONE_SHA256", "phone_sha256"))


@dataclass
class Batch:
    # One JSON array per person-row: a TikTok ``batch_data`` entry, ready to post.
    rows: list[str] = field(default_factory=list)
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


def next_batch(
    target: DeliveryTarget, phase: str, *, after: str, size: int, audience_ids: Sequence[str]
) -> Batch:
    """The next `size` snapshot people after customer id `after`, as TikTok rows.

    The database writes each row as the JSON of one ``batch_data`` entry (positional to
    the target's id schema, ``{}`` for an id the person lacks, each id carrying
    `audience_ids`), so Python only joins strings. A person with several devices makes
    several rows (expansion); each extra row repeats the email and phone so TikTok ties
    the ids to one person. People without any usable identifier make no row (shrink) but
    still advance the checkpoint.
    """
    schema: Sequence[str] = target.id_schema
    people_sql, params = _people_sql(target, phase)
    tail = ',"audience_ids":' + json.dumps([str(a) for a in audience_ids]) + "}"
    quote = "to_json({})::text" if connection.vendor == "postgresql" else "json_quote({})"

    def entry(column: str) -> str:
        return (
            f"CASE WHEN {column} <> '' THEN '{{\"id\":' || {quote.format(column)} || %s "
            "ELSE '{}' END"
        )

    base = [(t, col) for t, col in BASE_COLUMNS if t in schema]
    base_params = [tail] * len(base)
    # One index lookup per person (a correlated subquery, so the planner cannot turn a
    # 10,000-person batch into a scan of the whole customer store): the person's email
    # and phone entries, or NULL when they have neither.
    base_sql = "NULL"
    if base:
        any_base = " OR ".join(f"c.{col} <> ''" for _, col in base)
        joined = " || ',' || ".join(entry(f"c.{col}") for _, col in base)
        base_sql = (
            f"(SELECT CASE WHEN {any_base} THEN {joined} END FROM customers c "
            "WHERE c.customer_id = b.customer_id)"
        )
    window = (
        f"SELECT r.customer_id {people_sql} AND r.customer_id > %s ORDER BY r.customer_id LIMIT %s"
    )
    kinds = [DEVICE_KINDS[t] for t in schema if t in DEVICE_KINDS]
    if not kinds:
        sql = (
            f"SELECT b.customer_id, '[' || {base_sql} || ']' FROM ({window}) b "
            "ORDER BY b.customer_id"
        )
        all_params = [*base_params, *params, after, size]
    else:
        # Device rows: the n-th IDFA and the n-th AAID of a person (by hash) share row n.
        empty = ",".join(["{}"] * len(base))
        parts = [f"COALESCE(p.base, '{empty}')"] if base else []
        device_params = []
        for kind in kinds:
            parts.append(entry(f"{kind.lower()}.sha256"))
            device_params.append(tail)
        present = " OR ".join(
            ["p.base IS NOT NULL", *(f"{k.lower()}.sha256 IS NOT NULL" for k in kinds)]
        )
        row = " || ',' || ".join(parts)
        joins = " ".join(
            f"LEFT JOIN dv {k.lower()} ON {k.lower()}.customer_id = s.customer_id "
            f"AND {k.lower()}.n = s.n AND {k.lower()}.kind = '{k}'"
            for k in kinds
        )
        sql = (
            f"WITH p AS (SELECT b.customer_id, {base_sql} AS base FROM ({window}) b), "
            "dv AS (SELECT d.customer_id, d.kind, d.sha256, ROW_NUMBER() OVER "
            "(PARTITION BY d.customer_id, d.kind ORDER BY d.sha256) AS n FROM devices d "
            "WHERE d.customer_id IN (SELECT customer_id FROM p) "
            f"AND d.kind IN ({', '.join(['%s'] * len(kinds))}) AND d.sha256 <> ''), "
            "slots AS (SELECT DISTINCT customer_id, n FROM dv) "
            f"SELECT p.customer_id, CASE WHEN {present} THEN '[' || {row} || ']' END "
            f"FROM p LEFT JOIN slots s ON s.customer_id = p.customer_id {joins} "
            "ORDER BY p.customer_id, s.n"
        )
        all_params = [*base_params, *params, after, size, *kinds, *device_params]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The planner prices 10,000 index lookups high enough to JIT-compile the
            # query, which costs more than running it: 10-20 ms a batch.
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, all_params)
        records = cursor.fetchall()
    if not records:
        return Batch()
    rows = [row for _, row in records if row is not None]
    if kinds:
        scanned = len({customer_id for customer_id, _ in records})
        people = len({customer_id for customer_id, row in records if row is not None})
    else:
        scanned, people = len(records), len(rows)
    return Batch(rows=rows, people=people, scanned=scanned, last_customer_id=records[-1][0])


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
