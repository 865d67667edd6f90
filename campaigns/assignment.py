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
- ``AssignmentError``: a segment or sub-audience cannot be compiled; ``problems`` maps
  "audience" / "exclusions" / "sub-audience <id>" to messages.

Segment SQL comes from ``segments.selectors`` and always selects distinct
``customer_id`` values; anti-joins are LEFT JOIN … IS NULL (NOT IN over a large subquery
is quadratic on PostgreSQL once the hash no longer fits in work_mem).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from segments.compiler import CompiledSQL, DefinitionError
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


def _treatment_case(subs: list[SubAudience]) -> tuple[str, list[int]]:
    branches, controls = [], []
    for sub in subs:
        whens, upper = [], 0
        for treatment in sub.treatments.all():
            if treatment.is_control:
                controls.append(int(treatment.pk))
            if treatment.split_bp <= 0:
                continue
            upper += int(treatment.split_bp)
            whens.append(f"WHEN s.bucket < {upper} THEN {int(treatment.pk)}")
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
