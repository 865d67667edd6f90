"""What users with restricted PII access may build and see in segments.

A user flagged ``restricted_pii`` sees emails, phones and device ids only masked. Counts
are a side channel too: "email starts with j" refined letter by letter recovers an
address. So such a user:

- cannot author SQL segments (SQL can read any identifier column);
- cannot author conditions that compare a raw identifier with a value; "is empty" /
  "is not empty" (is present) stay allowed;
- does not see the results (counts, insights, breakdowns, overlaps, member downloads) of
  a segment that reads raw identifiers: an SQL segment, a visual segment with such a
  condition, or one that refers (in / not in) to such a segment.

The services enforce the authoring rules (``PiiRestricted``); views use
``segment_hides_results`` to leave results out.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

# Visual attributes that hold a raw personal identifier.
RAW_IDENTIFIER_ATTRIBUTES = frozenset({"email", "phone"})
# Operators that only ask whether a value is there, never what it is.
PRESENCE_OPERATORS = frozenset({"empty", "not_empty"})

SQL_REFUSED = (
    "Your account has restricted PII access: it cannot write SQL segments, because SQL can "
    "read raw emails, phones and device ids."
)
CONDITION_REFUSED = (
    "Your account has restricted PII access: conditions on email or phone can only use "
    "“is empty” or “is not empty”."
)
RESULTS_HIDDEN = (
    "This segment reads raw emails, phones or device ids, so its results are hidden from "
    "accounts with restricted PII access."
)


class PiiRestricted(PermissionDenied):
    """A change a restricted-PII user may not make; the message is for the user."""


def is_restricted(user: Any) -> bool:
    """Whether `user` is restricted; fails closed for anonymous users. ``None`` is the
    system itself (commands, demo data), which is not restricted."""
    if user is None:
        return False
    return bool(getattr(user, "restricted_pii", True))


def _conditions(definition: Any) -> list[dict]:
    if not isinstance(definition, dict):
        return []
    groups = definition.get("sections")
    groups = list(groups) if isinstance(groups, list) else []
    groups.append(definition.get("exclusions"))
    found = []
    for group in groups:
        conditions = group.get("conditions") if isinstance(group, dict) else None
        for cond in conditions if isinstance(conditions, list) else []:
            if isinstance(cond, dict):
                found.append(cond)
    return found


def raw_identifier_condition(cond: dict) -> bool:
    """A condition that compares a raw identifier with a value."""
    attribute, operator = cond.get("attribute"), cond.get("operator")
    return (
        cond.get("type") == "attribute"
        and isinstance(attribute, str)
        and attribute in RAW_IDENTIFIER_ATTRIBUTES
        and not (isinstance(operator, str) and operator in PRESENCE_OPERATORS)
    )


def definition_reads_raw_identifiers(
    definition: Any, *, _seen: frozenset[int] = frozenset()
) -> bool:
    """True when a visual definition, or a segment it refers to, reads raw identifiers."""
    from segments.models import Segment

    referenced: set[int] = set()
    for cond in _conditions(definition):
        if raw_identifier_condition(cond):
            return True
        if cond.get("type") == "segment":
            try:
                referenced.add(int(cond.get("segment_id")))  # type: ignore[arg-type]
            except (TypeError, ValueError, OverflowError):
                continue
    referenced -= _seen
    if not referenced:
        return False
    seen = _seen | referenced
    for segment in Segment.objects.filter(pk__in=[i for i in referenced if 0 < i < 2**62]):
        if segment.kind == "sql" or definition_reads_raw_identifiers(
            segment.definition, _seen=seen
        ):
            return True
    return False


def segment_reads_raw_identifiers(segment: Any) -> bool:
    """True for SQL segments and for visual segments that read raw identifiers."""
    if segment.kind == "sql":
        return True
    return definition_reads_raw_identifiers(
        segment.definition, _seen=frozenset({segment.pk}) if segment.pk else frozenset()
    )


def segment_hides_results(segment: Any, user: Any) -> bool:
    """Whether `user` must not see this segment's results (counts, members, overlaps)."""
    return is_restricted(user) and segment_reads_raw_identifiers(segment)


def require_may_author_sql(user: Any) -> None:
    if is_restricted(user):
        raise PiiRestricted(SQL_REFUSED)


def require_may_author_definition(user: Any, definition: Any) -> None:
    """Refuse a definition with raw-identifier conditions (or references to segments that
    read raw identifiers) from a restricted-PII user."""
    if not is_restricted(user):
        return
    if any(raw_identifier_condition(c) for c in _conditions(definition)):
        raise PiiRestricted(CONDITION_REFUSED)
    if definition_reads_raw_identifiers(definition):
        raise PiiRestricted(
            "Your account has restricted PII access: it cannot use a segment that reads raw "
            "emails, phones or device ids."
        )
