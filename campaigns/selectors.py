"""Reads over campaigns: the list, live counts and the delivery summary estimate.

Public API:

- ``campaign_counts(campaign) -> Counts``: inclusions, exclusions (the customers removed),
  total, customers per sub-audience and per treatment, reachable customers per identifier
  type, and warnings for sent treatments under TikTok's 1,000 minimum. Two or three
  set-based queries: (1) inclusions/exclusions, (2) a profile of the assignment grouped by
  (sub-audience, treatment, identifier availability), (3) only when a customer may be in
  several groups: reachability over the audience.
- ``delivery_summary_estimate(campaign) -> list[SummaryRow]``: per sent treatment and
  destination: customers, rows, shrink, expansion, invalid values per identifier type,
  computed from the attribute mapping over the profile of query (2).

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

from campaigns.assignment import (
    AssignmentError,
    assignment_sql,
    audience_sql,
    exclusion_sql,
    inclusion_sql,
)
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


def _fetch_all(compiled: CompiledSQL) -> list[tuple]:
    """Read-only with the segments timeout; on PostgreSQL without JIT (compiling these
    plans costs ~0.6 s, more than it saves) and with room to hash a million rows."""
    with readonly_cursor() as cursor:
        if cursor.db.vendor == "postgresql":
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '256MB'")
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


# Per customer: valid / invalid flags for email and phone, valid and invalid device counts.
_PROFILE = """
SELECT s.sub_audience_id, s.treatment_id,
  CASE WHEN c.email_sha256 <> '' THEN 1 ELSE 0 END AS e,
  CASE WHEN c.email_sha256 = '' AND c.email <> '' THEN 1 ELSE 0 END AS e_bad,
  CASE WHEN c.phone_sha256 <> '' THEN 1 ELSE 0 END AS p,
  CASE WHEN c.phone_sha256 = '' AND c.phone <> '' THEN 1 ELSE 0 END AS p_bad,
  COALESCE(d.idfa, 0) AS i, COALESCE(d.idfa_bad, 0) AS i_bad,
  COALESCE(d.aaid, 0) AS a, COALESCE(d.aaid_bad, 0) AS a_bad,
  COUNT(*) AS n
FROM ({members}) s
JOIN customers c ON c.customer_id = s.customer_id
LEFT JOIN (
  SELECT customer_id,
    SUM(CASE WHEN kind = 'IDFA' AND sha256 <> '' THEN 1 ELSE 0 END) AS idfa,
    SUM(CASE WHEN kind = 'IDFA' AND sha256 = '' THEN 1 ELSE 0 END) AS idfa_bad,
    SUM(CASE WHEN kind = 'AAID' AND sha256 <> '' THEN 1 ELSE 0 END) AS aaid,
    SUM(CASE WHEN kind = 'AAID' AND sha256 = '' THEN 1 ELSE 0 END) AS aaid_bad
  FROM devices GROUP BY customer_id
) d ON d.customer_id = s.customer_id
GROUP BY {group}
"""
_PROFILE_GROUP = "s.sub_audience_id, s.treatment_id, e, e_bad, p, p_bad, i, i_bad, a, a_bad"


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


def _profile(members: CompiledSQL, *, with_groups: bool = True) -> list[Profile]:
    if with_groups:
        sql = _PROFILE.format(members=members.sql, group=_PROFILE_GROUP)
    else:
        inner = f"SELECT m.customer_id, NULL AS sub_audience_id, NULL AS treatment_id FROM ({members.sql}) m"  # noqa: E501
        sql = _PROFILE.format(members=inner, group=_PROFILE_GROUP)
    rows = _fetch_all(CompiledSQL(sql, members.params))
    return [
        Profile(
            sub_audience_id=None if r[0] is None else int(r[0]),
            treatment_id=None if r[1] is None else int(r[1]),
            **{
                k: int(v or 0)
                for k, v in zip(
                    ("e", "e_bad", "p", "p_bad", "i", "i_bad", "a", "a_bad", "n"),
                    r[2:],
                    strict=True,
                )
            },
        )  # fmt: skip
        for r in rows
    ]


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


def _cache_key(*parts: CompiledSQL | None) -> str:
    text = json.dumps([(p.sql, [str(x) for x in p.params]) if p else None for p in parts])
    return "campaigns:counts:" + hashlib.sha256(text.encode()).hexdigest()


def _measure(
    included: CompiledSQL,
    excluded: CompiledSQL | None,
    assigned: CompiledSQL,
    audience: CompiledSQL | None,
) -> tuple[int, int, list[Profile], list[Profile]]:
    """The database part of the counts; depends only on the SQL (cached briefly, so edits
    that do not change who is where — names, timing, destinations — answer at once)."""
    if excluded is None:
        sql = CompiledSQL(f"SELECT COUNT(*), 0 FROM ({included.sql}) i", included.params)
    else:
        sql = CompiledSQL(
            f"SELECT COUNT(*), COUNT(x.customer_id) FROM ({included.sql}) i "
            f"LEFT JOIN ({excluded.sql}) x ON x.customer_id = i.customer_id",
            [*included.params, *excluded.params],
        )
    row = _fetch_all(sql)[0]
    profiles = _profile(assigned)
    audience_profiles = _profile(audience, with_groups=False) if audience else []
    return int(row[0] or 0), int(row[1] or 0), profiles, audience_profiles


def campaign_counts(campaign: Campaign) -> Counts:
    """Live counts; ``counts.profiles`` feeds ``delivery_summary_estimate``."""
    counts = Counts()
    problems: dict[str, list[str]] = {}
    included = inclusion_sql(campaign, problems)
    excluded = exclusion_sql(campaign, problems)
    if problems:
        counts.problems = problems
        return counts
    try:
        assigned = assignment_sql(campaign)
        audience = audience_sql(campaign) if not campaign.first_match_only else None
        key = _cache_key(included, excluded, assigned, audience)
        cached = cache.get(key)
        if cached is None:
            cached = _measure(included, excluded, assigned, audience)
            cache.set(key, cached, COUNTS_CACHE_SECONDS)
    except AssignmentError as exc:
        counts.problems = exc.problems
        return counts
    except SegmentQueryError as exc:
        counts.problems = {"audience": [str(exc)]}
        return counts
    counts.inclusions, counts.exclusions, profiles, audience_profiles = cached
    counts.total = counts.inclusions - counts.exclusions
    for p in profiles:
        if p.sub_audience_id is not None:
            counts.by_sub_audience[p.sub_audience_id] = (
                counts.by_sub_audience.get(p.sub_audience_id, 0) + p.n
            )
        if p.treatment_id is not None:
            counts.by_treatment[p.treatment_id] = counts.by_treatment.get(p.treatment_id, 0) + p.n
    # With all matches a customer may sit in several groups: reachability is measured on
    # the audience itself.
    counts.reachable, counts.reachable_any = _reachability(audience_profiles or profiles)
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
