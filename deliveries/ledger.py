"""The ledger of what each TikTok audience holds, and keep-in-sync as a set difference.

TikTok cannot tell us what an audience holds, so the product records it: one
``audience_ledger`` row per hashed id TikTok acknowledged, with the customer it came from,
written in the transaction of the batch checkpoint that TikTok's answer completed.

Before its first batch a target computes, in one INSERT … SELECT, what its audience should
hold (the treatment's people in the snapshot, their hashes per id type the mapping sends,
read from the customer store) against the ledger, per identifier:

- ``desired − ledger``: ids to add; "joined" when the customer had nothing in the
  audience yet, "changed" when the customer was there with other ids;
- ``ledger − desired``: ids to remove, with the hash the ledger recorded (never a
  recomputed one); "left" when the customer is no longer in the treatment, "changed"
  when they are but this id is no longer theirs (changed, now invalid, device gone).

The difference goes to ``delivery_changes``; batches read it in customer order and each
acknowledged batch moves its rows into (or out of) the ledger. A delivery that stopped
halfway left a ledger that is exactly what TikTok acknowledged, so the next delivery's
difference repairs what it did not finish; nothing it added is orphaned.

Every step is set-based SQL that runs the same on PostgreSQL and SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from deliveries.models import (
    ChangeAction,
    DeliveryTarget,
    DestinationAudience,
    TargetPhase,
)

SCHEMA_ORDER = ("EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256")
# Email and phone belong to the person, not to a device: repeated on each of their rows,
# so TikTok ties a person's devices to them.
PERSON_TYPES = ("EMAIL_SHA256", "PHONE_SHA256")
CUSTOMER_COLUMNS = {"EMAIL_SHA256": "email_sha256", "PHONE_SHA256": "phone_sha256"}
DEVICE_KINDS = {"IDFA_SHA256": "IDFA", "AAID_SHA256": "AAID"}
DIFF_PG_SETTINGS = {"jit": "off", "work_mem": "'256MB'", "max_parallel_workers_per_gather": "2"}
NO_AUDIENCE = -1  # a ledger key no audience has: the ledger of an audience not created yet


def desired_sql(schema: Sequence[str], delivery_id: int, treatment_id: int) -> tuple[str, list]:
    """(id_type, sha256, customer_id) the audience should hold: one row per hash. A hash
    two customers share (one email on two profiles) is one id at TikTok; it is attributed
    to the smaller customer id."""
    parts: list[str] = []
    params: list[int | str] = []
    for id_type in SCHEMA_ORDER:
        if id_type not in schema:
            continue
        if id_type in CUSTOMER_COLUMNS:
            col = CUSTOMER_COLUMNS[id_type]
            parts.append(
                f"SELECT '{id_type}' AS id_type, c.{col} AS sha256, "
                "MIN(r.customer_id) AS customer_id FROM delivery_recipients r "
                "JOIN customers c ON c.customer_id = r.customer_id "
                f"WHERE r.delivery_id = %s AND r.treatment_id = %s AND c.{col} <> '' "
                f"GROUP BY c.{col}"
            )
            params += [delivery_id, treatment_id]
        else:
            parts.append(
                f"SELECT '{id_type}' AS id_type, d.sha256 AS sha256, "
                "MIN(d.customer_id) AS customer_id FROM delivery_recipients r "
                "JOIN devices d ON d.customer_id = r.customer_id "
                "WHERE r.delivery_id = %s AND r.treatment_id = %s AND d.kind = %s "
                "AND d.sha256 <> '' GROUP BY d.sha256"
            )
            params += [delivery_id, treatment_id, DEVICE_KINDS[id_type]]
    if not parts:
        return "SELECT '' AS id_type, '' AS sha256, '' AS customer_id WHERE 1 = 0", []
    return " UNION ALL ".join(parts), params


def audience_for(target: DeliveryTarget) -> DestinationAudience | None:
    """The ledger owner of the target's audience (created on first use), or None while
    the target has no audience yet."""
    if not target.audience_id:
        return None
    if target.destination_audience_id:
        return target.destination_audience
    audience, _ = DestinationAudience.objects.get_or_create(
        destination_id=target.destination_id,
        audience_id=target.audience_id,
        defaults={
            "name": target.audience_name,
            "campaign_id": target.delivery.campaign_id,
            "treatment_id": target.treatment.treatment_id,
            "refresh_mode": target.refresh_mode,
        },
    )
    DeliveryTarget.objects.filter(pk=target.pk).update(destination_audience=audience)
    target.destination_audience = audience
    return audience


def target_diff(target: DeliveryTarget) -> None:
    """Compute the target's changes against its audience's ledger (once; a resumed
    delivery keeps them) and record the counts per action, id type and reason."""
    audience = audience_for(target)
    ledger_key = audience.pk if audience else NO_AUDIENCE
    if connection.vendor == "postgresql":
        sql, params = _diff_sql_pg(target, ledger_key)
    else:
        sql, params = _diff_sql(target, ledger_key)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Two hash anti-joins over millions of ids: memory to hash them in one pass,
            # and no JIT (compiling it costs more than the query saves).
            for name, value in DIFF_PG_SETTINGS.items():
                cursor.execute(f"SET LOCAL {name} = {value}")
        cursor.execute("DELETE FROM delivery_changes WHERE target_id = %s", [target.pk])
        cursor.execute(sql, params)
        cursor.execute(
            "SELECT action, id_type, reason, COUNT(*) FROM delivery_changes "
            "WHERE target_id = %s GROUP BY action, id_type, reason",
            [target.pk],
        )
        changes: dict[str, dict[str, dict[str, int]]] = {}
        for action, id_type, reason, count in cursor.fetchall():
            changes.setdefault(action, {}).setdefault(id_type, {})[reason] = int(count)
        cursor.execute(
            "SELECT action, COUNT(DISTINCT customer_id) FROM delivery_changes "
            "WHERE target_id = %s GROUP BY action",
            [target.pk],
        )
        people = {action: int(n) for action, n in cursor.fetchall()}
        size = _batch_size()
        to_add, to_remove = people.get(ChangeAction.ADD, 0), people.get(ChangeAction.DELETE, 0)
        values = {
            "diff_at": timezone.now(),
            "changes": changes,
            "full_send": ledger_key == NO_AUDIENCE or not _ledger_has_rows(ledger_key),
            "people_to_add": to_add,
            "people_to_remove": to_remove,
            "batches_total": -(-to_add // size) + -(-to_remove // size),
        }
        DeliveryTarget.objects.filter(pk=target.pk).update(**values)
    for name, value in values.items():
        setattr(target, name, value)


def _diff_sql(target: DeliveryTarget, ledger_key: int) -> tuple[str, list]:
    """The difference as two anti-joins against the desired set (SQLite; PostgreSQL uses
    ``_diff_sql_pg``)."""
    treatment_id = target.treatment.treatment_id
    desired, desired_params = desired_sql(target.id_schema, target.delivery_id, treatment_id)
    slot = "ROW_NUMBER() OVER (PARTITION BY {0}.customer_id, {0}.id_type ORDER BY {0}.sha256)"
    sql = (
        f"WITH desired AS ({desired}), "
        "adds AS (SELECT d.customer_id, d.id_type, d.sha256 FROM desired d WHERE NOT EXISTS "
        "(SELECT 1 FROM audience_ledger l WHERE l.audience_id = %s AND l.id_type = d.id_type "
        "AND l.sha256 = d.sha256)), "
        "dels AS (SELECT l.customer_id, l.id_type, l.sha256 FROM audience_ledger l "
        "WHERE l.audience_id = %s AND NOT EXISTS (SELECT 1 FROM desired d "
        "WHERE d.id_type = l.id_type AND d.sha256 = l.sha256)) "
        "INSERT INTO delivery_changes "
        "(target_id, action, customer_id, id_type, sha256, reason, slot) "
        "SELECT %s, 'add', a.customer_id, a.id_type, a.sha256, "
        "CASE WHEN EXISTS (SELECT 1 FROM audience_ledger l WHERE l.audience_id = %s "
        "AND l.customer_id = a.customer_id) THEN 'changed' ELSE 'joined' END, "
        f"{slot.format('a')} FROM adds a "
        "UNION ALL "
        "SELECT %s, 'delete', x.customer_id, x.id_type, x.sha256, "
        "CASE WHEN EXISTS (SELECT 1 FROM delivery_recipients r WHERE r.delivery_id = %s "
        "AND r.treatment_id = %s AND r.customer_id = x.customer_id) THEN 'changed' "
        f"ELSE 'left' END, {slot.format('x')} FROM dels x"
    )
    params = [
        *desired_params,
        ledger_key,
        ledger_key,
        target.pk,
        ledger_key,
        target.pk,
        target.delivery_id,
        treatment_id,
    ]
    return sql, params


def _desired_pg(schema: Sequence[str], delivery_id: int, treatment_id: int) -> tuple[str, list]:
    """What the audience should hold, as ``desired_sql`` but in one pass over the snapshot
    joined to customers (each customer's email and phone hash as two rows), without
    grouping (``_diff_sql_pg`` deduplicates the few changed ids instead)."""
    person = [t for t in SCHEMA_ORDER if t in CUSTOMER_COLUMNS and t in schema]
    devices = [t for t in SCHEMA_ORDER if t in DEVICE_KINDS and t in schema]
    parts: list[str] = []
    params: list[int | str] = []
    if person:
        values = ", ".join(f"('{t}', c.{CUSTOMER_COLUMNS[t]})" for t in person)
        parts.append(
            "SELECT v.id_type, v.sha256, r.customer_id FROM delivery_recipients r "
            "JOIN customers c ON c.customer_id = r.customer_id "
            f"CROSS JOIN LATERAL (VALUES {values}) AS v(id_type, sha256) "
            "WHERE r.delivery_id = %s AND r.treatment_id = %s AND v.sha256 <> ''"
        )
        params += [delivery_id, treatment_id]
    for id_type in devices:
        parts.append(
            f"SELECT '{id_type}' AS id_type, d.sha256 AS sha256, d.customer_id AS customer_id "
            "FROM delivery_recipients r "
            "JOIN devices d ON d.customer_id = r.customer_id "
            "WHERE r.delivery_id = %s AND r.treatment_id = %s AND d.kind = %s "
            "AND d.sha256 <> ''"
        )
        params += [delivery_id, treatment_id, DEVICE_KINDS[id_type]]
    if not parts:
        return "SELECT '' AS id_type, '' AS sha256, '' AS customer_id WHERE 1 = 0", []
    return " UNION ALL ".join(parts), params


def _diff_sql_pg(target: DeliveryTarget, ledger_key: int) -> tuple[str, list]:
    """The same difference on PostgreSQL as one hash FULL JOIN of what the audience should
    hold with its ledger: each side is read once (two anti-joins against a materialized
    CTE made the planner sort or loop over millions of ids). Reasons and slots are computed
    for the changed ids only."""
    treatment_id = target.treatment.treatment_id
    desired, desired_params = _desired_pg(target.id_schema, target.delivery_id, treatment_id)
    sql = (
        "INSERT INTO delivery_changes "
        "(target_id, action, customer_id, id_type, sha256, reason, slot) "
        "SELECT %s, x.action, x.customer_id, x.id_type, x.sha256, "
        "CASE WHEN x.action = 'add' THEN CASE WHEN EXISTS (SELECT 1 FROM audience_ledger l2 "
        "WHERE l2.audience_id = %s AND l2.customer_id = x.customer_id) THEN 'changed' "
        "ELSE 'joined' END "
        "ELSE CASE WHEN EXISTS (SELECT 1 FROM delivery_recipients r WHERE r.delivery_id = %s "
        "AND r.treatment_id = %s AND r.customer_id = x.customer_id) THEN 'changed' "
        "ELSE 'left' END END, "
        "ROW_NUMBER() OVER (PARTITION BY x.action, x.customer_id, x.id_type ORDER BY x.sha256) "
        # One id shared by two customers (an email on two profiles) is one change, kept
        # for the smaller customer id; deduplicated here, on the few changed ids only.
        "FROM (SELECT DISTINCT ON (action, id_type, sha256) * FROM ("
        "SELECT CASE WHEN l.sha256 IS NULL THEN 'add' ELSE 'delete' END AS action, "
        "COALESCE(d.customer_id, l.customer_id) AS customer_id, "
        "COALESCE(d.id_type, l.id_type) AS id_type, COALESCE(d.sha256, l.sha256) AS sha256 "
        f"FROM ({desired}) d FULL JOIN (SELECT id_type, sha256, customer_id "
        "FROM audience_ledger WHERE audience_id = %s) l "
        "ON l.id_type = d.id_type AND l.sha256 = d.sha256 "
        "WHERE l.sha256 IS NULL OR d.sha256 IS NULL) c "
        "ORDER BY action, id_type, sha256, customer_id) x"
    )
    params = [
        target.pk,
        ledger_key,
        target.delivery_id,
        treatment_id,
        *desired_params,
        ledger_key,
    ]
    return sql, params


def _batch_size() -> int:
    from django.conf import settings

    return int(settings.TIKTOK_BATCH_SIZE)


def _ledger_has_rows(audience_pk: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM audience_ledger WHERE audience_id = %s LIMIT 1", [audience_pk]
        )
        return cursor.fetchone() is not None


def phase_schema(target: DeliveryTarget, phase: str) -> list[str]:
    """The id types a phase's rows carry: those with changes, in TikTok's usual order. A
    removal can carry a type the mapping no longer sends (it was sent before)."""
    present = target.changes.get(phase, {})
    return [t for t in SCHEMA_ORDER if present.get(t)]


@dataclass
class Batch:
    # One JSON array per person-row: a TikTok ``batch_data`` entry, ready to post.
    rows: list[str] = field(default_factory=list)
    schema: list[str] = field(default_factory=list)
    people: int = 0  # people the batch changes
    scanned: int = 0  # the same: people without changes are not in delivery_changes
    last_customer_id: str = ""


def next_batch(
    target: DeliveryTarget, phase: str, *, after: str, size: int, audience_ids: Sequence[str]
) -> Batch:
    """The next `size` people after customer id `after` with changes in `phase`, as
    TikTok rows.

    The database writes each row as the JSON of one ``batch_data`` entry, positional to
    the phase's schema, ``{}`` for an id the row lacks, each id naming `audience_ids`, so
    Python only joins strings. A person's n-th ids of each type share their n-th row
    (several devices make several rows); email and phone repeat on each of their rows.
    """
    schema = phase_schema(target, phase)
    if not schema:
        return Batch()
    tail = ',"audience_ids":' + json.dumps([str(a) for a in audience_ids]) + "}"
    quote = "to_json({})::text" if connection.vendor == "postgresql" else "json_quote({})"
    columns = [f"t{i}" for i in range(len(schema))]
    pivot = ", ".join(
        f"MAX(CASE WHEN c.id_type = '{t}' THEN c.sha256 END) AS {col}"
        for t, col in zip(schema, columns, strict=True)
    )
    filled = ", ".join(
        f"COALESCE({col}, MAX({col}) OVER (PARTITION BY customer_id)) AS {col}"
        if t in PERSON_TYPES
        else col
        for t, col in zip(schema, columns, strict=True)
    )
    entries = " || ',' || ".join(
        f"CASE WHEN {col} IS NOT NULL THEN '{{\"id\":' || {quote.format(col)} || %s ELSE '{{}}' END"
        for col in columns
    )
    sql = (
        "WITH people AS (SELECT DISTINCT customer_id FROM delivery_changes "
        "WHERE target_id = %s AND action = %s AND customer_id > %s "
        "ORDER BY customer_id LIMIT %s), "
        f"grid AS (SELECT c.customer_id, c.slot, {pivot} FROM delivery_changes c "
        "JOIN people p ON p.customer_id = c.customer_id "
        "WHERE c.target_id = %s AND c.action = %s GROUP BY c.customer_id, c.slot), "
        f"filled AS (SELECT customer_id, slot, {filled} FROM grid) "
        f"SELECT customer_id, '[' || {entries} || ']' FROM filled ORDER BY customer_id, slot"
    )
    params: list[int | str] = [target.pk, phase, after, size, target.pk, phase]
    params += [tail] * len(columns)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        records = cursor.fetchall()
    if not records:
        return Batch(schema=schema)
    people = len({customer_id for customer_id, _ in records})
    return Batch(
        rows=[row for _, row in records],
        schema=schema,
        people=people,
        scanned=people,
        last_customer_id=records[-1][0],
    )


def ledger_apply(target: DeliveryTarget, phase: str, *, upto: str) -> None:
    """Move the phase's changes up to customer id `upto` (TikTok acknowledged them) into
    the ledger. Call inside the checkpoint's transaction."""
    audience = audience_for(target)
    assert audience is not None, "changes are only sent to an existing audience"
    with connection.cursor() as cursor:
        if phase == TargetPhase.ADD:
            cursor.execute(
                "INSERT INTO audience_ledger (audience_id, id_type, sha256, customer_id) "
                "SELECT %s, id_type, sha256, customer_id FROM delivery_changes "
                "WHERE target_id = %s AND action = 'add' AND customer_id <= %s "
                "ON CONFLICT DO NOTHING",
                [audience.pk, target.pk, upto],
            )
        else:
            cursor.execute(
                "DELETE FROM audience_ledger WHERE audience_id = %s AND (id_type, sha256) IN "
                "(SELECT id_type, sha256 FROM delivery_changes WHERE target_id = %s "
                "AND action = 'delete' AND customer_id <= %s)",
                [audience.pk, target.pk, upto],
            )
        cursor.execute(
            "DELETE FROM delivery_changes WHERE target_id = %s AND action = %s "
            "AND customer_id <= %s",
            [target.pk, phase, upto],
        )


def ledger_counts(audience: DestinationAudience) -> dict[str, int]:
    """Ids the audience holds per id type, from its ledger."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id_type, COUNT(*) FROM audience_ledger WHERE audience_id = %s GROUP BY id_type",
            [audience.pk],
        )
        found = {id_type: int(n) for id_type, n in cursor.fetchall()}
    return {t: found[t] for t in SCHEMA_ORDER if t in found}
