"""Who is in the campaign, in which sub-audience and which treatment: one SQL query.

Public API (the delivery app relies on these names):

- ``assignment_sql(campaign) -> CompiledSQL`` selecting one row per (customer, group)
  with columns ``customer_id, sub_audience_id, treatment_id, is_control``:

  * audience = union of the include segments minus the union of the exclusion segments
    (exclusions win);
  * sub-audiences in order: first match only (a CASE over the groups in order) or every
    matching group; customers in no group go to the Remaining group;
  * treatment = the group's treatment whose cumulative split range holds the customer's
    bucket ``ab_bucket(campaign.bucket_key, customer_id)`` (0..9999, see
    ``campaigns.buckets``). The bucket does not depend on who else is in the audience, so
    a customer keeps its treatment and the control group stays stable as the audience
    grows or shrinks, and across deliveries of a recurring campaign.

  ``treatment_id`` is NULL only while a group's splits do not reach 100 % (drafts).
- ``audience_sql(campaign)`` and ``inclusion_sql`` / ``exclusion_sql``: the parts.
- ``assignment_scan(campaign) -> AssignmentScan``: the same assignment as expressions over
  one scan of ``customers c`` (for the live counts: every segment evaluated in one pass).
  It selects existing customers only; otherwise it agrees with ``assignment_sql`` row for
  row (tests/campaigns/test_counts.py checks it against it).
- ``AssignmentError``: a segment or sub-audience cannot be compiled; ``problems`` maps
  "audience" / "exclusions" / "sub-audience <id>" to messages.

Segment SQL comes from ``segments.selectors`` and always selects distinct
``customer_id`` values; anti-joins are LEFT JOIN … IS NULL (NOT IN over a large subquery
is quadratic on PostgreSQL once the hash no longer fits in work_mem).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection

from segments.compiler import (
    CompiledSQL,
    DefinitionError,
    definition_predicate,
    segment_predicate,
)
from segments.selectors import definition_members_sql, segment_members_sql
from segments.sqlcheck import SqlSegmentError

if TYPE_CHECKING:
    from campaigns.models import Campaign, SubAudience
    from segments.models import Segment

EMPTY = "SELECT c.customer_id FROM customers c WHERE 1 = 0"


class AssignmentError(Exception):
    def __init__(self, problems: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for msgs in problems.values() for m in msgs))
        self.problems = problems


def _segment_sql(segment: Segment, where: str, problems: dict[str, list[str]]) -> CompiledSQL:
    try:
        return segment_members_sql(segment)
    except (DefinitionError, SqlSegmentError) as exc:
        problems.setdefault(where, []).append(f"Segment “{segment.name}” cannot be used: {exc}")
        return CompiledSQL(EMPTY, [])


def _union(parts: Iterable[CompiledSQL]) -> CompiledSQL:
    parts = list(parts)
    if not parts:
        return CompiledSQL(EMPTY, [])
    if len(parts) == 1:
        return parts[0]
    sql = " UNION ".join(
        f"SELECT u{i}.customer_id FROM ({p.sql}) u{i}" for i, p in enumerate(parts)
    )
    return CompiledSQL(sql, [param for p in parts for param in p.params])


def _ordered(segments: Iterable[Segment]) -> list[Segment]:
    return sorted(segments, key=lambda s: s.pk)


def inclusion_sql(campaign: Campaign, problems: dict[str, list[str]]) -> CompiledSQL:
    return _union(
        _segment_sql(s, "audience", problems) for s in _ordered(campaign.include_segments.all())
    )


def exclusion_sql(campaign: Campaign, problems: dict[str, list[str]]) -> CompiledSQL | None:
    segments = _ordered(campaign.exclude_segments.all())
    if not segments:
        return None
    return _union(_segment_sql(s, "exclusions", problems) for s in segments)


def _raise(problems: dict[str, list[str]]) -> None:
    if problems:
        raise AssignmentError(problems)


def audience_sql(campaign: Campaign) -> CompiledSQL:
    problems: dict[str, list[str]] = {}
    included = inclusion_sql(campaign, problems)
    excluded = exclusion_sql(campaign, problems)
    _raise(problems)
    return _minus(included, excluded)


def _minus(included: CompiledSQL, excluded: CompiledSQL | None) -> CompiledSQL:
    if excluded is None:
        return CompiledSQL(f"SELECT i.customer_id FROM ({included.sql}) i", included.params)
    return CompiledSQL(
        f"SELECT i.customer_id FROM ({included.sql}) i "
        f"LEFT JOIN ({excluded.sql}) x ON x.customer_id = i.customer_id "
        "WHERE x.customer_id IS NULL",
        [*included.params, *excluded.params],
    )


def sub_audience_sql(sub: SubAudience) -> CompiledSQL:
    """Members of one (non-remaining) sub-audience, before the campaign audience applies."""
    from campaigns.models import SubAudienceKind

    if sub.kind == SubAudienceKind.SEGMENT:
        if sub.segment is None:
            raise DefinitionError([])
        return segment_members_sql(sub.segment)
    return definition_members_sql(sub.definition or {})


def _groups_sql(campaign: Campaign, subs: list[SubAudience], remaining_id: int,
                problems: dict[str, list[str]]) -> tuple[str, list]:  # fmt: skip
    compiled: list[tuple[int, CompiledSQL]] = []
    for sub in subs:
        try:
            compiled.append((sub.pk, sub_audience_sql(sub)))
        except (DefinitionError, SqlSegmentError) as exc:
            message = str(exc) or "Choose a segment."
            problems.setdefault(f"sub-audience {sub.pk}", []).append(
                f"Sub-audience “{sub.name}”: {message}"
            )
    if not compiled:
        return f"SELECT a.customer_id, {remaining_id} AS sub_audience_id FROM aud a", []
    joins = " ".join(
        f"LEFT JOIN ({c.sql}) g{i} ON g{i}.customer_id = a.customer_id"
        for i, (_, c) in enumerate(compiled)
    )
    join_params = [p for _, c in compiled for p in c.params]
    if campaign.first_match_only:
        whens = " ".join(
            f"WHEN g{i}.customer_id IS NOT NULL THEN {int(pk)}"
            for i, (pk, _) in enumerate(compiled)
        )
        return (
            f"SELECT a.customer_id, CASE {whens} ELSE {remaining_id} END AS sub_audience_id "
            f"FROM aud a {joins}",
            join_params,
        )
    parts, params = [], []
    for i, (pk, c) in enumerate(compiled):
        parts.append(
            f"SELECT a.customer_id, {int(pk)} AS sub_audience_id FROM aud a "
            f"JOIN ({c.sql}) g{i} ON g{i}.customer_id = a.customer_id"
        )
        params += c.params
    none_matched = " AND ".join(f"g{i}.customer_id IS NULL" for i in range(len(compiled)))
    parts.append(
        f"SELECT a.customer_id, {remaining_id} AS sub_audience_id FROM aud a {joins} "
        f"WHERE {none_matched}"
    )
    params += join_params
    return " UNION ALL ".join(parts), params


def treatment_ranges(sub: SubAudience) -> tuple[tuple[int, int], ...]:
    """``(upper, treatment_id)`` in order: a bucket below ``upper`` (and not below the
    previous one) gets that treatment; a bucket at or above the last ``upper`` gets none."""
    ranges, upper = [], 0
    for treatment in sub.treatments.all():
        if treatment.split_bp <= 0:
            continue
        upper += int(treatment.split_bp)
        ranges.append((upper, int(treatment.pk)))
    return tuple(ranges)


def _treatment_case(subs: list[SubAudience]) -> tuple[str, list[int]]:
    branches, controls = [], []
    for sub in subs:
        controls += [int(t.pk) for t in sub.treatments.all() if t.is_control]
        whens = [f"WHEN s.bucket < {upper} THEN {tid}" for upper, tid in treatment_ranges(sub)]
        if whens:
            branches.append(f"WHEN {int(sub.pk)} THEN CASE {' '.join(whens)} END")
    if not branches:
        return "NULL", controls
    return f"CASE s.sub_audience_id {' '.join(branches)} END", controls


def assignment_sql(campaign: Campaign) -> CompiledSQL:
    problems: dict[str, list[str]] = {}
    included = inclusion_sql(campaign, problems)
    excluded = exclusion_sql(campaign, problems)
    subs = list(campaign.sub_audiences.select_related("segment").prefetch_related("treatments"))
    remaining = next((s for s in subs if s.is_remaining), None)
    if remaining is None:
        problems.setdefault("sub-audiences", []).append("The Remaining group is missing.")
        _raise(problems)
    assert remaining is not None
    groups = [s for s in subs if not s.is_remaining]
    groups_sql, groups_params = _groups_sql(campaign, groups, remaining.pk, problems)
    _raise(problems)
    audience = _minus(included, excluded)
    treatment, controls = _treatment_case([*groups, remaining])
    is_control = (
        f"CASE WHEN t.treatment_id IN ({', '.join(map(str, controls))}) THEN TRUE ELSE FALSE END"
        if controls
        else "FALSE"
    )
    sql = (
        f"WITH aud AS ({audience.sql}), grp AS ({groups_sql}) "
        f"SELECT t.customer_id, t.sub_audience_id, t.treatment_id, {is_control} AS is_control "
        f"FROM (SELECT s.customer_id, s.sub_audience_id, {treatment} AS treatment_id FROM "
        "(SELECT grp.customer_id, grp.sub_audience_id, "
        "ab_bucket(%s, grp.customer_id) AS bucket FROM grp) s) t"
    )
    return CompiledSQL(sql, [*audience.params, *groups_params, campaign.bucket_key])


# -- the same assignment as expressions over one scan of customers (for the live counts) --


@dataclass(frozen=True)
class Group:
    sub_audience_id: int
    ranges: tuple[tuple[int, int], ...]  # treatment_ranges(sub)

    def treatment(self, bucket: int) -> int | None:
        return next((tid for upper, tid in self.ranges if bucket < upper), None)


@dataclass(frozen=True)
class AssignmentScan:
    """``assignment_sql``'s assignment as three expressions over a row ``c`` of ``customers``.

    ``SELECT <key>, <interval> FROM customers c WHERE <included>`` reads every customer
    once: segments are inline predicates (``segments.compiler.segment_predicate``), so
    all include, exclusion and sub-audience segments are evaluated in the same pass.

    - ``included``: in the union of the include segments;
    - ``key``: -1 for excluded customers; with first match ``position * width +
      interval``, ``position`` being the index of the first matching group (``len(groups)``
      for the Remaining group); with all matches a bit mask of the matching groups (bit i
      for ``groups[i]``, 0 for the Remaining group);
    - ``interval``: with all matches, how many of ``thresholds`` are at or below the
      customer's bucket (with first match it is inside ``key`` and this is ``0``).

    Buckets are only hashed when a treatment boundary falls inside 1..9999, and with first
    match only for customers whose group has such a boundary. ``memberships(key,
    interval)`` turns a pair back into ``[(sub_audience_id, treatment_id), ...]``.
    """

    included: CompiledSQL
    key: CompiledSQL
    interval: CompiledSQL
    first_match: bool
    groups: tuple[Group, ...]
    remaining: Group
    thresholds: tuple[int, ...]

    @property
    def width(self) -> int:
        return len(self.thresholds) + 1

    def memberships(self, key: int, interval: int) -> list[tuple[int, int | None]] | None:
        """``None`` for an excluded customer."""
        if key < 0:
            return None
        if self.first_match:
            position, interval = divmod(key, self.width)
            matched = [self.groups[position] if position < len(self.groups) else self.remaining]
        else:
            matched = [g for i, g in enumerate(self.groups) if key >> i & 1] or [self.remaining]
        bucket = self.thresholds[interval - 1] if interval else 0  # any bucket of the interval
        return [(g.sub_audience_id, g.treatment(bucket)) for g in matched]


def _predicate(segment: Segment, where: str, problems: dict[str, list[str]]) -> CompiledSQL:
    try:
        return segment_predicate(segment)
    except (DefinitionError, SqlSegmentError) as exc:
        problems.setdefault(where, []).append(f"Segment “{segment.name}” cannot be used: {exc}")
        return CompiledSQL("(1 = 0)", [])


def _any(parts: list[CompiledSQL]) -> CompiledSQL:
    if not parts:
        return CompiledSQL("(1 = 0)", [])
    return CompiledSQL(
        "(" + " OR ".join(p.sql for p in parts) + ")", [x for p in parts for x in p.params]
    )


def _sub_predicate(sub: SubAudience, problems: dict[str, list[str]]) -> CompiledSQL | None:
    from campaigns.models import SubAudienceKind

    try:
        if sub.kind == SubAudienceKind.SEGMENT:
            if sub.segment is None:
                raise DefinitionError([])
            return segment_predicate(sub.segment)
        return definition_predicate(sub.definition or {})
    except (DefinitionError, SqlSegmentError) as exc:
        message = str(exc) or "Choose a segment."
        problems.setdefault(f"sub-audience {sub.pk}", []).append(
            f"Sub-audience “{sub.name}”: {message}"
        )
        return None


def _interval_sql(thresholds: tuple[int, ...], bucket_key: str) -> CompiledSQL:
    """How many thresholds are at or below ab_bucket(key, c.customer_id); one hash per row."""
    if not thresholds:
        return CompiledSQL("0", [])
    if connection.vendor == "postgresql":
        array = ", ".join(str(t) for t in thresholds)
        return CompiledSQL(
            f"width_bucket(ab_bucket(%s, c.customer_id), ARRAY[{array}])", [bucket_key]
        )
    whens = " ".join(
        f"WHEN ab_bucket(%s, c.customer_id) < {t} THEN {i}" for i, t in enumerate(thresholds)
    )
    return CompiledSQL(f"CASE {whens} ELSE {len(thresholds)} END", [bucket_key] * len(thresholds))


def assignment_scan(campaign: Campaign) -> AssignmentScan:
    """Raises ``AssignmentError``: first with the audience and exclusion problems alone,
    then with the sub-audience ones (the order ``campaign_counts`` reports them in)."""
    problems: dict[str, list[str]] = {}
    included = _any(
        [_predicate(s, "audience", problems) for s in _ordered(campaign.include_segments.all())]
    )
    excluded = [
        _predicate(s, "exclusions", problems) for s in _ordered(campaign.exclude_segments.all())
    ]
    _raise(problems)
    subs = list(campaign.sub_audiences.select_related("segment").prefetch_related("treatments"))
    remaining = next((s for s in subs if s.is_remaining), None)
    if remaining is None:
        problems.setdefault("sub-audiences", []).append("The Remaining group is missing.")
    compiled = [(s, _sub_predicate(s, problems)) for s in subs if not s.is_remaining]
    _raise(problems)
    assert remaining is not None
    predicates = [p for _, p in compiled if p is not None]
    groups = tuple(Group(s.pk, treatment_ranges(s)) for s, _ in compiled)
    rest = Group(remaining.pk, treatment_ranges(remaining))
    splits = {g: tuple(u for u, _ in g.ranges if u < 10_000) for g in (*groups, rest)}
    thresholds = tuple(sorted({u for uppers in splits.values() for u in uppers}))
    interval = _interval_sql(thresholds, campaign.bucket_key)
    width = len(thresholds) + 1
    whens, params = [], []
    if excluded:
        x = _any(excluded)
        whens.append(f"WHEN {x.sql} THEN -1")
        params += x.params
    if campaign.first_match_only:

        def slot(position: int, group: Group) -> str:
            if not splits[group]:
                return str(position * width)
            params.extend(interval.params)
            return f"{position * width} + {interval.sql}" if position else interval.sql

        for position, (group, predicate) in enumerate(zip(groups, predicates, strict=True)):
            params.extend(predicate.params)
            whens.append(f"WHEN {predicate.sql} THEN {slot(position, group)}")
        last = slot(len(groups), rest)
        key = f"CASE {' '.join(whens)} ELSE {last} END" if whens else f"({last})"
        interval = CompiledSQL("0", [])
    else:
        mask = " + ".join(
            f"CASE WHEN {p.sql} THEN {1 << i} ELSE 0 END" for i, p in enumerate(predicates)
        )
        params += [x for p in predicates for x in p.params]
        key = f"CASE {' '.join(whens)} ELSE {mask or 0} END" if whens else f"({mask or 0})"
    return AssignmentScan(
        included=included,
        key=CompiledSQL(key, params),
        interval=interval,
        first_match=campaign.first_match_only,
        groups=groups,
        remaining=rest,
        thresholds=thresholds,
    )
