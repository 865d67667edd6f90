"""Reads over campaigns: the list, live counts and the delivery summary estimate.

Public API:

- ``campaign_counts(campaign) -> Counts``: inclusions, exclusions (the customers removed),
  total, customers per sub-audience and per treatment, reachable customers per identifier
  type, and warnings for sent treatments under TikTok's 1,000 minimum. ONE query reads
  ``customers`` once (``campaigns.assignment.assignment_scan``: every include, exclusion and
  sub-audience segment is an inline predicate, the treatment bucket is hashed once per
  audience member), hash-joins the devices aggregated per customer, and groups by (who is
  where, treatment interval, identifier availability) into a few dozen rows; Python turns
  those into the per-group, per-treatment and reachability figures. Only customers that
  exist are counted (ids an SQL segment returns that are no customer are not).
- ``delivery_summary_estimate(campaign) -> list[SummaryRow]``: per sent treatment and
  destination: customers, rows, shrink, expansion, invalid values per identifier type,
  computed from the attribute mapping over ``Counts.profiles``.

Rows and expansion follow TikTok's ``segment/mapping`` format: one row per person with one
slot per identifier type, so a customer with two IDFAs makes two rows (expansion 1).
A customer whose mapped identifiers are all missing or invalid is dropped (shrink).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import Q, QuerySet

from campaigns.assignment import AssignmentError, AssignmentScan, assignment_scan
from campaigns.models import (
    MIN_AUDIENCE,
    Campaign,
    CampaignDestination,
    CampaignEvent,
    CampaignStatus,
    TimingMode,
    TreatmentDestination,
)
from segments.compiler import CompiledSQL
from segments.runner import SegmentQueryError, readonly_cursor

# PostgreSQL settings for the counts query, local to its transaction. JIT off: compiling
# the plan costs ~0.6 s, more than it saves. work_mem: room to hash a million rows.
# Parallel workers: the planner cannot see that md5 (the bucket) dominates the cost and
# guesses as many groups as rows, so by itself it keeps everything in one process; cheaper
# parallel setup and tuples move the scan, predicates, bucket and devices join into the
# workers (1M customers: ~2.0 s of CPU serial, ~2.5 s spread over 3 processes).
COUNTS_PG_SETTINGS = {
    "jit": "off",
    "work_mem": "'256MB'",
    "parallel_setup_cost": "100",
    "parallel_tuple_cost": "0.001",
}


def _fetch_all(compiled: CompiledSQL) -> list[tuple]:
    """Read-only with the segments timeout, with ``COUNTS_PG_SETTINGS`` on PostgreSQL."""
    with readonly_cursor() as cursor:
        if cursor.db.vendor == "postgresql":
            for name, value in COUNTS_PG_SETTINGS.items():
                cursor.execute(f"SET LOCAL {name} = {value}")
        cursor.execute(compiled.sql, compiled.params)
        return list(cursor.fetchall())


IDENTIFIERS = ("EMAIL", "PHONE", "IDFA", "AAID")


@dataclass
class Counts:
    inclusions: int = 0
    exclusions: int = 0
    total: int = 0
    by_sub_audience: dict[int, int] = field(default_factory=dict)
    by_treatment: dict[int, int] = field(default_factory=dict)
    reachable: dict[str, int] = field(default_factory=dict)
    reachable_any: int = 0
    warnings: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)
    profiles: list[Profile] = field(default_factory=list, repr=False)

    def treatment(self, treatment_id: int) -> int:
        return self.by_treatment.get(treatment_id, 0)

    def sub_audience(self, sub_audience_id: int) -> int:
        return self.by_sub_audience.get(sub_audience_id, 0)


@dataclass
class SummaryRow:
    sub_audience: str
    treatment: str
    treatment_id: int
    destination: str
    destination_id: int
    customers: int = 0
    rows: int = 0
    shrink: int = 0
    expansion: int = 0
    invalid: dict[str, int] = field(default_factory=dict)
    identifiers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    """Customers sharing one combination of identifier availability (n of them)."""

    sub_audience_id: int | None
    treatment_id: int | None
    e: int
    e_bad: int
    p: int
    p_bad: int
    i: int
    i_bad: int
    a: int
    a_bad: int
    n: int

    def valid(self, identifier: str) -> int:
        return {"EMAIL": self.e, "PHONE": self.p, "IDFA": self.i, "AAID": self.a}[identifier]

    def invalid(self, identifier: str) -> int:
        return {"EMAIL": self.e_bad, "PHONE": self.p_bad, "IDFA": self.i_bad,
                "AAID": self.a_bad}[identifier]  # fmt: skip


def _reachability(profiles: list[Profile]) -> tuple[dict[str, int], int]:
    reachable = {k: sum(p.n for p in profiles if p.valid(k)) for k in IDENTIFIERS}
    anyone = sum(p.n for p in profiles if any(p.valid(k) for k in IDENTIFIERS))
    return reachable, anyone


def _sent_treatments(campaign: Campaign) -> dict[int, list[CampaignDestination]]:
    sent: dict[int, list[CampaignDestination]] = defaultdict(list)
    links = TreatmentDestination.objects.filter(
        treatment__sub_audience__campaign=campaign, treatment__is_control=False
    ).select_related("campaign_destination__destination")
    for link in links:
        sent[link.treatment_id].append(link.campaign_destination)
    return sent


COUNTS_CACHE_SECONDS = 30


# Identifier availability per customer: email and phone from the customer's own columns
# (flags: 1 valid email, 2 invalid email, 4 valid phone, 8 invalid phone), devices as
# valid / invalid counts per kind, pre-aggregated once and hash-joined.
_FLAGS = (
    "CASE WHEN c.email_sha256 <> '' THEN 1 WHEN c.email_sha256 = '' AND c.email <> '' THEN 2 "
    "ELSE 0 END + CASE WHEN c.phone_sha256 <> '' THEN 4 "
    "WHEN c.phone_sha256 = '' AND c.phone <> '' THEN 8 ELSE 0 END"
)
_DEVICES = """
SELECT v.customer_id,
  SUM(CASE WHEN v.kind = 'IDFA' AND v.sha256 <> '' THEN 1 ELSE 0 END) AS i,
  SUM(CASE WHEN v.kind = 'IDFA' AND v.sha256 = '' THEN 1 ELSE 0 END) AS i_bad,
  SUM(CASE WHEN v.kind = 'AAID' AND v.sha256 <> '' THEN 1 ELSE 0 END) AS a,
  SUM(CASE WHEN v.kind = 'AAID' AND v.sha256 = '' THEN 1 ELSE 0 END) AS a_bad
FROM devices v GROUP BY v.customer_id
"""


def _counts_sql(scan: AssignmentScan) -> CompiledSQL:
    """One pass over customers: who is included, excluded, in which groups and treatment
    interval, with which identifiers, grouped into (usually) a few dozen rows."""
    return CompiledSQL(
        "SELECT s.k, s.iv, s.f, COALESCE(d.i, 0), COALESCE(d.i_bad, 0), COALESCE(d.a, 0), "
        "COALESCE(d.a_bad, 0), COUNT(*) "
        f"FROM (SELECT c.customer_id, {scan.key.sql} AS k, {scan.interval.sql} AS iv, "
        f"{_FLAGS} AS f FROM customers c WHERE {scan.included.sql}) s "
        f"LEFT JOIN ({_DEVICES}) d ON d.customer_id = s.customer_id "
        "GROUP BY s.k, s.iv, s.f, d.i, d.i_bad, d.a, d.a_bad",
        [*scan.key.params, *scan.interval.params, *scan.included.params],
    )


_IDENTIFIER_FIELDS = ("e", "e_bad", "p", "p_bad", "i", "i_bad", "a", "a_bad")


def _count_rows(scan: AssignmentScan) -> list[tuple]:
    """The rows of ``_counts_sql``, kept for 30 s: they depend on the SQL alone, so an edit
    that does not change who is where (names, timing, destinations) answers at once."""
    sql = _counts_sql(scan)
    text = json.dumps([sql.sql, [str(x) for x in sql.params]])
    key = "campaigns:counts:" + hashlib.sha256(text.encode()).hexdigest()
    rows = cache.get(key)
    if rows is None:
        rows = _fetch_all(sql)
        cache.set(key, rows, COUNTS_CACHE_SECONDS)
    return rows


def _measure(scan: AssignmentScan) -> tuple[int, int, list[Profile], list[Profile]]:
    """Inclusions, exclusions, profiles per (sub-audience, treatment) and of the audience."""
    inclusions = exclusions = 0
    Key = tuple[int | None, int | None, tuple[int, ...]]
    grouped: dict[Key, int] = defaultdict(int)
    audience: dict[Key, int] = defaultdict(int)
    for key, interval, flags, *devices, n in _count_rows(scan):
        n = int(n)
        inclusions += n
        memberships = scan.memberships(int(key), int(interval))
        if memberships is None:
            exclusions += n
            continue
        f = int(flags)
        identifiers = (f & 1, f >> 1 & 1, f >> 2 & 1, f >> 3 & 1, *(int(v) for v in devices))
        audience[(None, None, identifiers)] += n
        for sub_audience_id, treatment_id in memberships:
            grouped[(sub_audience_id, treatment_id, identifiers)] += n

    def profiles(rows: dict[Key, int]) -> list[Profile]:
        return [
            Profile(
                sub_audience_id=sub,
                treatment_id=treatment,
                n=n,
                **dict(zip(_IDENTIFIER_FIELDS, ids, strict=True)),
            )
            for (sub, treatment, ids), n in rows.items()
        ]

    return inclusions, exclusions, profiles(grouped), profiles(audience)


def campaign_counts(campaign: Campaign) -> Counts:
    """Live counts; ``counts.profiles`` feeds ``delivery_summary_estimate``."""
    counts = Counts()
    try:
        scan = assignment_scan(campaign)
        measured = _measure(scan)
    except AssignmentError as exc:
        counts.problems = exc.problems
        return counts
    except SegmentQueryError as exc:
        counts.problems = {"audience": [str(exc)]}
        return counts
    counts.inclusions, counts.exclusions, profiles, audience_profiles = measured
    counts.total = counts.inclusions - counts.exclusions
    for p in profiles:
        if p.sub_audience_id is not None:
            counts.by_sub_audience[p.sub_audience_id] = (
                counts.by_sub_audience.get(p.sub_audience_id, 0) + p.n
            )
        if p.treatment_id is not None:
            counts.by_treatment[p.treatment_id] = counts.by_treatment.get(p.treatment_id, 0) + p.n
    counts.reachable, counts.reachable_any = _reachability(audience_profiles)
    sent = _sent_treatments(campaign)
    names = _treatment_names(campaign)
    for treatment_id in sent:
        n = counts.by_treatment.get(treatment_id, 0)
        if n < MIN_AUDIENCE:
            counts.warnings.append(
                f"“{names.get(treatment_id, '?')}” has {n:,} customers: TikTok needs at least "
                f"{MIN_AUDIENCE:,} people in an audience before it can be used."
            )
    counts.profiles = profiles
    return counts


def _treatment_names(campaign: Campaign) -> dict[int, str]:
    return {
        t.pk: f"{sub.name} / {t.name}"
        for sub in campaign.sub_audiences.prefetch_related("treatments")
        for t in sub.treatments.all()
    }


def delivery_summary_estimate(campaign: Campaign, counts: Counts | None = None) -> list[SummaryRow]:
    profiles = (counts or campaign_counts(campaign)).profiles
    by_treatment: dict[int, list[Profile]] = defaultdict(list)
    for p in profiles:
        if p.treatment_id is not None:
            by_treatment[p.treatment_id].append(p)
    labels = {
        t.pk: (sub.name, t.name)
        for sub in campaign.sub_audiences.prefetch_related("treatments")
        for t in sub.treatments.all()
    }
    result = []
    for treatment_id, links in _sent_treatments(campaign).items():
        for link in links:
            enabled = [
                r["destination_attribute"]
                for r in link.attribute_mapping
                if r.get("enabled") and r.get("destination_attribute") in IDENTIFIERS
            ]
            row = SummaryRow(
                sub_audience=labels[treatment_id][0],
                treatment=labels[treatment_id][1],
                treatment_id=treatment_id,
                destination=link.destination.name,
                destination_id=link.destination_id,
                identifiers=enabled,
                invalid={k: 0 for k in enabled},
            )
            for p in by_treatment.get(treatment_id, []):
                row.customers += p.n
                for k in enabled:
                    row.invalid[k] += p.n * p.invalid(k)
                per_person = max(
                    [1 if p.valid(k) else 0 for k in enabled if k in ("EMAIL", "PHONE")]
                    + [p.valid(k) for k in enabled if k in ("IDFA", "AAID")]
                    + [0]
                )
                if per_person == 0:
                    row.shrink += p.n
                else:
                    row.rows += p.n * per_person
                    row.expansion += p.n * (per_person - 1)
            result.append(row)
    result.sort(key=lambda r: (r.sub_audience, r.treatment, r.destination))
    return result


# -- lists -------------------------------------------------------------------------------


def campaign_list(
    *, status: str = "", cadence: str = "", destination: str = "", author: str = ""
) -> QuerySet[Campaign]:
    campaigns = Campaign.objects.select_related("created_by", "updated_by").prefetch_related(
        "campaign_destinations__destination"
    )
    if status:
        campaigns = campaigns.filter(status=status)
    else:
        campaigns = campaigns.exclude(status=CampaignStatus.ARCHIVED)
    if cadence == "one_time":
        campaigns = campaigns.filter(timing_mode=TimingMode.ONE_TIME)
    elif cadence:
        campaigns = campaigns.filter(timing_mode=TimingMode.RECURRING, cadence=cadence)
    if destination.isdigit():
        campaigns = campaigns.filter(campaign_destinations__destination_id=int(destination))
    if author.isdigit():
        campaigns = campaigns.filter(created_by_id=int(author))
    return campaigns.distinct().order_by("-updated_at", "-id")


def campaign_authors() -> QuerySet:
    from accounts.models import User

    return User.objects.filter(pk__in=Campaign.objects.values("created_by")).order_by("username")


def campaign_history(campaign: Campaign) -> QuerySet[CampaignEvent]:
    return campaign.events.select_related("actor").order_by("-created_at", "-id")


def campaigns_using_destination(destination_id: int) -> QuerySet[Campaign]:
    return (
        Campaign.objects.filter(Q(campaign_destinations__destination_id=destination_id))
        .exclude(status=CampaignStatus.ARCHIVED)
        .distinct()
    )
