"""Customer lookup (the "Customer 360"): find one customer and explain what the product
did with them.

- ``customer_search``: a typed customer id, email or phone. Emails and phones are
  normalized with the import's own normalizer and matched on the stored hashes
  (``customers.email_sha256`` / ``phone_sha256``), so any way of writing the value finds
  the customer; an id matches exactly. The hash columns have no index on purpose: two
  indexes of random 64-character keys cost the import a third of its speed (45,000 →
  28,000 rows/s at 1M), while a lookup reads the table once (about 0.36 s at 1M customers).
- ``customer_segments``: the Active segments a customer is in, every segment's membership
  predicate evaluated in one query restricted to that customer.
- ``customer_deliveries``: for each recent delivery, whether the customer was in its
  snapshot, in which treatment, what each TikTok audience holds for them (its ledger), and
  why they were or were not sent.

Everything is a bounded number of queries whatever the size of the store: no loop runs a
query per customer, per segment or per delivery.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Q, QuerySet, Sum

from customers.models import Customer, Device, Order
from deliveries.models import (
    Delivery,
    DeliveryRecipient,
    DeliveryTarget,
    DeliveryTreatment,
    LedgerEntry,
    TargetStatus,
)
from destinations.tiktok.normalize import normalize_email, normalize_phone
from segments.compiler import DefinitionError, segment_predicate
from segments.fence import SegmentQueryError
from segments.models import Segment, SegmentStatus
from segments.sqlcheck import SqlSegmentError

MAX_QUERY_LENGTH = 254
SEARCH_LIMIT = 20
RECENT_DELIVERIES = 20
ORDERS_PER_PAGE = 20
DEVICES_SHOWN = 50

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# What a typed phone number looks like: digits with the usual separators, an optional
# leading '+', and enough digits to be a number (an id such as "C0000042" is not one).
_PHONE_SHAPE = re.compile(r"^\+?[0-9 ().\-/]+$")
ID_TYPE_LABELS = {
    "EMAIL_SHA256": "Email",
    "PHONE_SHA256": "Phone",
    "IDFA_SHA256": "IDFA",
    "AAID_SHA256": "AAID",
}


class LookupError_(ValueError):  # noqa: N801 - "LookupError" is a builtin
    """A typed value that cannot be searched for; the message never repeats it."""


# ---- search ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchResult:
    customers: list[Customer]
    total: int
    # How the value was read: "id", "email", "phone" or "hash" (any that applied).
    matched_as: tuple[str, ...]

    @property
    def more(self) -> int:
        return max(0, self.total - len(self.customers))


def _search_filter(query: str, region: str) -> tuple[Q, tuple[str, ...]]:
    condition = Q(customer_id=query)
    kinds = ["id"]
    if _SHA256.match(query):
        digest = query.lower()
        condition |= Q(email_sha256=digest) | Q(phone_sha256=digest)
        kinds.append("hash")
        return condition, tuple(kinds)
    if "@" in query:
        email = normalize_email(query)
        if email is not None:
            condition |= Q(email_sha256=email.sha256)
            kinds.append("email")
    elif _PHONE_SHAPE.match(query) and sum(ch.isdigit() for ch in query) >= 5:
        phone = normalize_phone(query, region)
        if phone is not None:
            condition |= Q(phone_sha256=phone.sha256)
            kinds.append("phone")
    return condition, tuple(kinds)


def customer_search(
    query: str, *, region: str | None = None, limit: int = SEARCH_LIMIT
) -> SearchResult:
    """Customers whose id is `query`, or whose email or phone is `query` however it is
    written (national phone numbers are read in `region`, the import's default region).
    One query; raises ``LookupError_`` for a value that cannot be searched."""
    query = (query or "").strip()
    if not query:
        raise LookupError_("Type a customer id, an email address or a phone number.")
    if len(query) > MAX_QUERY_LENGTH or not query.isprintable():
        raise LookupError_(
            f"That is not a customer id, an email or a phone number: at most "
            f"{MAX_QUERY_LENGTH} printable characters."
        )
    condition, kinds = _search_filter(query, region or settings.DEFAULT_PHONE_REGION)
    found = list(Customer.objects.filter(condition).order_by("customer_id")[: limit + 1])
    total = len(found)
    if total > limit:
        total = Customer.objects.filter(condition).count()
    return SearchResult(customers=found[:limit], total=total, matched_as=kinds)


def customer_place(customer: Customer) -> str:
    """City, state and country, whichever are known: "Fresno, CA, US"."""
    return ", ".join(p for p in (customer.city, customer.state, customer.country) if p)


def customer_address(customer: Customer) -> list[str]:
    """The postal address as lines, leaving out what is not known."""
    town = " ".join(p for p in (customer.postal_code, customer.city) if p)
    region = ", ".join(p for p in (town, customer.state) if p)
    return [line for line in (customer.street, region, customer.country) if line]


# ---- identifiers -------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentifierStatus:
    """One raw identifier as imported, its normalized form and hash, and whether it can be
    sent: "valid", "invalid" (given but unusable) or "missing"."""

    label: str
    raw: str
    normalized: str
    sha256: str

    @property
    def status(self) -> str:
        if self.sha256:
            return "valid"
        return "invalid" if self.raw else "missing"


def customer_identifiers(customer: Customer) -> list[IdentifierStatus]:
    return [
        IdentifierStatus("Email", customer.email, customer.email_normalized, customer.email_sha256),
        IdentifierStatus("Phone", customer.phone, customer.phone_e164, customer.phone_sha256),
    ]


def customer_devices(customer: Customer, *, limit: int = DEVICES_SHOWN) -> tuple[list[Device], int]:
    """The customer's first `limit` devices and how many they have."""
    devices = Device.objects.filter(customer_id=customer.customer_id).order_by("kind", "id")
    shown = list(devices[: limit + 1])
    count = devices.count() if len(shown) > limit else len(shown)
    return shown[:limit], count


def usable_hashes(customer: Customer, devices: Iterable[Device]) -> dict[str, list[str]]:
    """The customer's sendable hashed ids per TikTok id type, as the store holds them now."""
    held: dict[str, list[str]] = {t: [] for t in ID_TYPE_LABELS}
    if customer.email_sha256:
        held["EMAIL_SHA256"].append(customer.email_sha256)
    if customer.phone_sha256:
        held["PHONE_SHA256"].append(customer.phone_sha256)
    for device in devices:
        if device.sha256:
            held[f"{device.kind}_SHA256"].append(device.sha256)
    return held


def device_hashes(customer: Customer) -> list[Device]:
    """Every device of the customer with a usable hash (for what may have been sent)."""
    return list(Device.objects.filter(customer_id=customer.customer_id).exclude(sha256=""))


# ---- orders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderTotals:
    orders: int
    returns: int
    spend: list[tuple[str, Decimal]]  # per currency, returns not counted


def customer_orders(customer: Customer) -> QuerySet[Order]:
    """The customer's orders, most recent first (paginated by the caller)."""
    return Order.objects.filter(customer_id=customer.customer_id).order_by("-ordered_at", "-id")


def customer_order_totals(customer: Customer) -> OrderTotals:
    rows = (
        Order.objects.filter(customer_id=customer.customer_id)
        .values("currency", "is_return")
        .annotate(n=Count("id"), amount=Sum("amount"))
        .order_by("currency", "is_return")
    )
    orders = returns = 0
    spend: dict[str, Decimal] = {}
    for row in rows:
        orders += row["n"]
        if row["is_return"]:
            returns += row["n"]
        else:
            spend[row["currency"]] = spend.get(row["currency"], Decimal(0)) + row["amount"]
    return OrderTotals(orders=orders, returns=returns, spend=sorted(spend.items()))


# ---- segments ----------------------------------------------------------------------------


@dataclass
class Memberships:
    """Which of the evaluated segments the customer is in; segments whose definition could
    not be evaluated are listed apart (their membership is unknown)."""

    member_of: set[int] = field(default_factory=set)
    evaluated: set[int] = field(default_factory=set)
    unknown: dict[int, str] = field(default_factory=dict)
    segments: dict[int, Segment] = field(default_factory=dict)

    def active(self) -> list[Segment]:
        found = [
            s
            for pk, s in self.segments.items()
            if pk in self.member_of and s.status == SegmentStatus.ACTIVE
        ]
        return sorted(found, key=lambda s: s.name.lower())

    def active_unknown(self) -> list[tuple[Segment, str]]:
        found = [
            (self.segments[pk], why)
            for pk, why in self.unknown.items()
            if self.segments[pk].status == SegmentStatus.ACTIVE
        ]
        return sorted(found, key=lambda pair: pair[0].name.lower())

    def state(self, segment_id: int) -> bool | None:
        """True / False, or None when the segment could not be evaluated."""
        if segment_id not in self.evaluated:
            return None
        return segment_id in self.member_of


def customer_segments(customer: Customer, *, extra_ids: Iterable[int] = ()) -> Memberships:
    """Membership of the customer in every Active segment (and in the segments `extra_ids`
    names, e.g. the ones recent campaigns include and exclude): each segment's predicate
    is one column of a single SELECT over the one row of ``customers c``."""
    segments = list(
        Segment.objects.filter(Q(status=SegmentStatus.ACTIVE) | Q(pk__in=list(extra_ids)))
    )
    result = Memberships(segments={s.pk: s for s in segments})
    columns: list[tuple[int, str, list[Any]]] = []
    for segment in sorted(segments, key=lambda s: s.pk):
        try:
            compiled = segment_predicate(segment)
        except (DefinitionError, SqlSegmentError):
            result.unknown[segment.pk] = "Its definition is not valid; open the segment to fix it."
            continue
        except SegmentQueryError:
            result.unknown[segment.pk] = "Its SQL could not run; open the segment to see why."
            continue
        columns.append((segment.pk, f"CASE WHEN {compiled.sql} THEN 1 ELSE 0 END", compiled.params))
    for chunk in _chunks(columns):
        _evaluate(customer.customer_id, chunk, result)
    return result


# A query's select list and parameters are bounded (PostgreSQL: 1,664 columns and 65,535
# parameters; SQLite: 2,000 columns and 32,766 parameters); a store with more segments
# than fit, or with very long value lists, gets a second query.
MAX_COLUMNS = 1000
MAX_PARAMS = 30_000


def _chunks(
    columns: list[tuple[int, str, list[Any]]],
) -> Iterable[list[tuple[int, str, list[Any]]]]:
    chunk: list[tuple[int, str, list[Any]]] = []
    n_params = 0
    for column in columns:
        if chunk and (len(chunk) >= MAX_COLUMNS or n_params + len(column[2]) > MAX_PARAMS):
            yield chunk
            chunk, n_params = [], 0
        chunk.append(column)
        n_params += len(column[2])
    if chunk:
        yield chunk


def _evaluate(
    customer_id: str, columns: list[tuple[int, str, list[Any]]], result: Memberships
) -> None:
    select = ", ".join(sql for _pk, sql, _params in columns)
    params = [p for _pk, _sql, ps in columns for p in ps]
    try:
        # A savepoint: a refused query leaves the page's transaction usable.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {select} FROM customers c WHERE c.customer_id = %s",
                [*params, customer_id],
            )
            row = cursor.fetchone()
    except DatabaseError:
        for pk, _sql, _params in columns:
            result.unknown[pk] = "The database could not evaluate it just now."
        return
    if row is None:
        return
    for (pk, _sql, _params), value in zip(columns, row, strict=True):
        result.evaluated.add(pk)
        if int(value):
            result.member_of.add(pk)


# ---- deliveries --------------------------------------------------------------------------


class Verdict:
    SENT = "sent"
    CONTROL = "control"
    EXCLUDED = "excluded"
    NOT_IN_AUDIENCE = "not_in_audience"
    NO_IDENTIFIER = "no_identifier"
    NO_DESTINATION = "no_destination"
    NOT_SENT_YET = "not_sent_yet"
    FAILED = "failed"


VERDICT_LABELS = {
    Verdict.SENT: "Sent",
    Verdict.CONTROL: "Control group",
    Verdict.EXCLUDED: "Excluded",
    Verdict.NOT_IN_AUDIENCE: "Not in the audience",
    Verdict.NO_IDENTIFIER: "No valid identifier",
    Verdict.NO_DESTINATION: "Not sent to a destination",
    Verdict.NOT_SENT_YET: "Not sent yet",
    Verdict.FAILED: "Delivery failed",
}


@dataclass
class HeldId:
    id_type: str
    sha256: str
    # Set when the ledger attributes this id to another customer who has it too (one
    # email on two profiles is one id at TikTok).
    shared_with: str = ""

    @property
    def label(self) -> str:
        return ID_TYPE_LABELS.get(self.id_type, self.id_type)


@dataclass
class TargetOutcome:
    target: DeliveryTarget
    held: list[HeldId]
    # "ledger": what the audience's ledger holds now; "store": no ledger for this audience,
    # so the ids are the customer's current hashes of the types the target sent.
    source: str
    usable: bool  # the customer has an id now of a type this target sends

    @property
    def id_types(self) -> list[str]:
        return [ID_TYPE_LABELS.get(t, t) for t in self.target.id_schema]


@dataclass
class Placement:
    sub_audience: str
    treatment: str
    is_control: bool
    is_remaining: bool


@dataclass
class DeliveryOutcome:
    delivery: Delivery
    verdict: str
    why: str
    placements: list[Placement]
    targets: list[TargetOutcome]

    @property
    def label(self) -> str:
        return VERDICT_LABELS[self.verdict]

    @property
    def included(self) -> bool:
        return bool(self.placements)


@dataclass
class DeliveryHistory:
    outcomes: list[DeliveryOutcome]
    total: int  # deliveries with a snapshot, of which `outcomes` are the most recent
    included: int  # of the outcomes shown, those whose snapshot holds the customer
    sent: int  # of the outcomes shown, those that sent the customer


def recent_deliveries(limit: int = RECENT_DELIVERIES) -> tuple[list[Delivery], int]:
    snapshotted = Delivery.objects.filter(snapshot_at__isnull=False)
    deliveries = list(
        snapshotted.select_related("campaign").order_by("-scheduled_for", "-id")[:limit]
    )
    total = len(deliveries)
    if total == limit:
        total = snapshotted.count()
    return deliveries, total


def campaign_segment_ids(deliveries: Sequence[Delivery]) -> dict[int, tuple[list[int], list[int]]]:
    """Per campaign of `deliveries`: (included segment ids, excluded segment ids)."""
    from campaigns.models import Campaign

    campaign_ids = {d.campaign_id for d in deliveries}
    found: dict[int, tuple[list[int], list[int]]] = {pk: ([], []) for pk in campaign_ids}
    include = Campaign.include_segments.through.objects.filter(campaign_id__in=campaign_ids)
    exclude = Campaign.exclude_segments.through.objects.filter(campaign_id__in=campaign_ids)
    for campaign_id, segment_id in include.values_list("campaign_id", "segment_id"):
        found[campaign_id][0].append(segment_id)
    for campaign_id, segment_id in exclude.values_list("campaign_id", "segment_id"):
        found[campaign_id][1].append(segment_id)
    return found


def _recipient_rows(customer_id: str, treatments: Sequence[DeliveryTreatment]) -> list[tuple]:
    """The customer's snapshot rows in the given treatments: one query whose conditions
    are whole primary keys (delivery, treatment, customer), so each is an index lookup
    instead of a scan of a possibly million-row snapshot."""
    if not treatments:
        return []
    per_delivery: dict[int, list[int]] = {}
    for t in treatments:
        per_delivery.setdefault(t.delivery_id, []).append(t.treatment_id)
    # customer_id inside each arm of the OR: every arm is then a whole-key index lookup.
    keys = Q()
    for delivery_id, treatment_ids in per_delivery.items():
        keys |= Q(
            delivery_id=delivery_id, treatment_id__in=sorted(treatment_ids), customer_id=customer_id
        )
    return list(
        DeliveryRecipient.objects.filter(keys).values_list(
            "delivery_id", "treatment_id", "is_control"
        )
    )


def _ledger_rows(
    audience_ids: set[int], customer_id: str, hashes: dict[str, list[str]]
) -> list[tuple[int, str, str, str]]:
    """(audience, id type, sha256, customer) ledger rows of the audiences that are this
    customer's, or that hold one of their current hashes under another customer's id."""
    if not audience_ids:
        return []
    # The audience in each arm of the OR, so each arm uses an index that starts with it:
    # (audience, customer) for the customer's rows, the key (audience, type, hash) for the
    # rows of their hashes.
    audiences = sorted(audience_ids)
    mine = Q(audience_id__in=audiences, customer_id=customer_id)
    for id_type, values in hashes.items():
        if values:
            mine |= Q(audience_id__in=audiences, id_type=id_type, sha256__in=values)
    return list(
        LedgerEntry.objects.filter(mine)
        .order_by("audience_id", "id_type", "sha256")
        .values_list("audience_id", "id_type", "sha256", "customer_id")
    )


def _names(segment_ids: Iterable[int], memberships: Memberships) -> str:
    names = [memberships.segments[pk].name for pk in segment_ids if pk in memberships.segments]
    return ", ".join(f"“{n}”" for n in sorted(names, key=str.lower))


def _not_included(
    segments: tuple[list[int], list[int]], memberships: Memberships
) -> tuple[str, str]:
    include, exclude = segments
    in_include = [pk for pk in include if memberships.state(pk)]
    in_exclude = [pk for pk in exclude if memberships.state(pk)]
    unknown = [pk for pk in (*include, *exclude) if memberships.state(pk) is None]
    if in_include and in_exclude:
        return Verdict.EXCLUDED, (
            f"Excluded: in {_names(in_include, memberships)} but also in "
            f"{_names(in_exclude, memberships)}, which the campaign excludes "
            "(segment membership as of now)."
        )
    if in_include:
        return Verdict.NOT_IN_AUDIENCE, (
            "Not in the audience when the snapshot was taken; they are in "
            f"{_names(in_include, memberships)} now, which the campaign includes."
        )
    if in_exclude:
        return Verdict.EXCLUDED, (
            f"Not in the audience, and in {_names(in_exclude, memberships)}, which the "
            "campaign excludes."
        )
    if unknown:
        return Verdict.NOT_IN_AUDIENCE, (
            "Not in the audience when the snapshot was taken (some of the campaign's "
            "segments cannot be evaluated now)."
        )
    if include:
        return Verdict.NOT_IN_AUDIENCE, (
            f"Not in the audience: not in {_names(include, memberships)}, the "
            f"segment{'s' if len(include) > 1 else ''} the campaign includes."
        )
    return Verdict.NOT_IN_AUDIENCE, "Not in the audience of this delivery."


def _included(placements: list[Placement], outcomes: list[TargetOutcome]) -> tuple[str, str]:
    if all(p.is_control for p in placements):
        names = ", ".join(f"“{p.treatment}”" for p in placements)
        return Verdict.CONTROL, (
            f"In the control group {names}: control groups are held back from TikTok."
        )
    if not outcomes:
        return Verdict.NO_DESTINATION, ("In a treatment that is not sent to any destination.")
    sent = [o for o in outcomes if o.target.status == TargetStatus.SENT]
    if any(o.held for o in sent):
        return Verdict.SENT, "Sent: TikTok's audience holds their hashed ids."
    if not any(o.usable for o in outcomes):
        types = sorted({t for o in outcomes for t in o.id_types})
        return Verdict.NO_IDENTIFIER, (
            "In the audience, but no valid identifier of the types sent "
            f"({', '.join(types)}): nothing could be sent for them."
        )
    if sent:
        return Verdict.SENT, (
            "Sent with this delivery; TikTok's audience holds none of their ids now "
            "(a later delivery, or a change of their identifiers, removed them)."
        )
    if any(o.target.status == TargetStatus.FAILED for o in outcomes):
        return Verdict.FAILED, "In the audience, but sending it to TikTok failed."
    return Verdict.NOT_SENT_YET, "In the audience; the delivery has not finished sending."


def customer_deliveries(
    customer: Customer,
    memberships: Memberships,
    *,
    deliveries: Sequence[Delivery] | None = None,
    total: int | None = None,
    segments_of: dict[int, tuple[list[int], list[int]]] | None = None,
) -> DeliveryHistory:
    """Why the customer was or was not sent, for each recent delivery: a fixed number of
    queries (treatments, the customer's snapshot rows, targets, ledger rows)."""
    if deliveries is None:
        deliveries, total = recent_deliveries()
    by_id = {d.pk: d for d in deliveries}
    treatments = list(DeliveryTreatment.objects.filter(delivery_id__in=by_id))
    treatment_of = {(t.delivery_id, t.treatment_id): t for t in treatments}
    rows = _recipient_rows(customer.customer_id, treatments)
    placed: dict[int, list[DeliveryTreatment]] = {}
    control: dict[tuple[int, int], bool] = {}
    for delivery_id, treatment_id, is_control in rows:
        placed.setdefault(delivery_id, []).append(treatment_of[(delivery_id, treatment_id)])
        control[(delivery_id, treatment_id)] = bool(is_control)
    placed_pks = {t.pk for ts in placed.values() for t in ts}
    targets = list(
        DeliveryTarget.objects.filter(treatment_id__in=placed_pks).order_by(
            "delivery_id", "destination_name", "id"
        )
    )
    hashes = usable_hashes(customer, device_hashes(customer))
    audiences = {t.destination_audience_id for t in targets if t.destination_audience_id}
    ledger: dict[int, list[HeldId]] = {}
    for audience_id, id_type, sha256, owner in _ledger_rows(
        audiences, customer.customer_id, hashes
    ):
        shared = "" if owner == customer.customer_id else owner
        ledger.setdefault(audience_id, []).append(HeldId(id_type, sha256, shared))
    targets_of: dict[int, list[TargetOutcome]] = {}
    for target in targets:
        usable = any(hashes.get(t) for t in target.id_schema)
        if target.destination_audience_id:
            held, source = ledger.get(target.destination_audience_id, []), "ledger"
        elif target.status == TargetStatus.SENT:
            held = [HeldId(t, h) for t in target.id_schema for h in hashes.get(t, [])]
            source = "store"
        else:
            held, source = [], "ledger"
        targets_of.setdefault(target.treatment_id, []).append(
            TargetOutcome(target=target, held=held, source=source, usable=usable)
        )
    if segments_of is None:
        segments_of = campaign_segment_ids(deliveries)
    outcomes = []
    for delivery in deliveries:
        in_treatments = placed.get(delivery.pk, [])
        placements = [
            Placement(
                sub_audience=t.sub_audience_name,
                treatment=t.treatment_name,
                is_control=control[(delivery.pk, t.treatment_id)],
                is_remaining=t.is_remaining,
            )
            for t in sorted(
                in_treatments, key=lambda t: (t.sub_audience_position, t.treatment_position)
            )
        ]
        outcome_targets = [
            o
            for t in in_treatments
            if not control[(delivery.pk, t.treatment_id)]
            for o in targets_of.get(t.pk, [])
        ]
        if placements:
            verdict, why = _included(placements, outcome_targets)
        else:
            verdict, why = _not_included(
                segments_of.get(delivery.campaign_id, ([], [])), memberships
            )
        outcomes.append(
            DeliveryOutcome(
                delivery=delivery,
                verdict=verdict,
                why=why,
                placements=placements,
                targets=outcome_targets,
            )
        )
    return DeliveryHistory(
        outcomes=outcomes,
        total=total if total is not None else len(deliveries),
        included=sum(1 for o in outcomes if o.included),
        sent=sum(1 for o in outcomes if o.verdict == Verdict.SENT),
    )


@dataclass
class Customer360:
    customer: Customer
    identifiers: list[IdentifierStatus]
    devices: list[Device]
    device_count: int
    totals: OrderTotals
    memberships: Memberships
    history: DeliveryHistory


def customer_360(customer: Customer) -> Customer360:
    """Everything the customer page shows but the paginated orders."""
    devices, device_count = customer_devices(customer)
    deliveries, total = recent_deliveries()
    segments_of = campaign_segment_ids(deliveries)
    extra = {pk for inc, exc in segments_of.values() for pk in (*inc, *exc)}
    memberships = customer_segments(customer, extra_ids=extra)
    return Customer360(
        customer=customer,
        identifiers=customer_identifiers(customer),
        devices=devices,
        device_count=device_count,
        totals=customer_order_totals(customer),
        memberships=memberships,
        history=customer_deliveries(
            customer, memberships, deliveries=deliveries, total=total, segments_of=segments_of
        ),
    )
