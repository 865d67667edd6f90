"""Why a segment holds no one: how many customers each condition keeps on its own.

When the live insights count zero for a definition with several conditions, the editor
shows each section condition's count alone and what the sections keep before the
exclusions, so the person sees which condition removed everyone. One scan of
``customers``: each condition is a boolean predicate (``definition_predicate``) summed in
the same SELECT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segments.compiler import (
    ATTRIBUTES,
    BEHAVIOURS,
    OPERATORS,
    CompiledSQL,
    DefinitionError,
    definition_predicate,
)
from segments.runner import fetch_one

MAX_CONDITIONS = 30


@dataclass(frozen=True)
class ConditionCount:
    path: str
    label: str
    count: int


@dataclass(frozen=True)
class ZeroExplanation:
    conditions: list[ConditionCount]
    before_exclusions: int | None  # what the sections keep, when there are exclusions


def _alone(condition: dict) -> dict:
    return {
        "version": 1,
        "combinator": "and",
        "sections": [{"combinator": "and", "conditions": [condition]}],
        "exclusions": {"combinator": "or", "conditions": []},
    }


def describe(condition: dict) -> str:
    """A condition in words, from the person's own input ("State is ca")."""
    kind = condition.get("type")
    value = condition.get("value")
    shown = ", ".join(map(str, value)) if isinstance(value, list) else value
    if kind == "attribute":
        attr = ATTRIBUTES.get(str(condition.get("attribute", "")))
        if attr is None:
            return "An attribute condition"
        operator = OPERATORS.get(attr.type, {}).get(str(condition.get("operator")), "")
        text = f"{attr.label} {operator}".strip()
        return f"{text} {shown}" if shown not in (None, "") else text
    if kind == "purchase":
        return "Purchase: " + BEHAVIOURS.get(str(condition.get("behaviour", "")), "behaviour")
    if kind == "segment":
        return (
            "In another segment"
            if condition.get("operator") != "not_in"
            else ("Not in another segment")
        )
    if kind == "id_list":
        return "In an uploaded list"
    return "A condition"


def explain_zero(definition: Any, *, segment_id: int | None = None) -> ZeroExplanation | None:
    """Each section condition's count alone (and the sections' count before exclusions);
    None when there is nothing to explain (fewer than two conditions)."""
    if not isinstance(definition, dict):
        return None
    conditions = [
        (f"sections.{i}.conditions.{j}", cond)
        for i, section in enumerate(definition.get("sections") or [])
        for j, cond in enumerate((section or {}).get("conditions") or [])
        if isinstance(cond, dict)
    ][:MAX_CONDITIONS]
    exclusions = (definition.get("exclusions") or {}).get("conditions") or []
    if len(conditions) + (1 if exclusions else 0) < 2:
        return None
    predicates: list[CompiledSQL] = []
    try:
        for _path, cond in conditions:
            predicates.append(definition_predicate(_alone(cond), segment_id=segment_id))
        if exclusions:
            sections_only = {**definition, "exclusions": {"combinator": "or", "conditions": []}}
            predicates.append(definition_predicate(sections_only, segment_id=segment_id))
    except DefinitionError:
        return None
    sums = ", ".join(f"SUM(CASE WHEN {p.sql} THEN 1 ELSE 0 END)" for p in predicates)
    params = [value for p in predicates for value in p.params]
    row = fetch_one(CompiledSQL(f"SELECT {sums} FROM customers c", params))
    counts = [int(v or 0) for v in row]
    return ZeroExplanation(
        conditions=[
            ConditionCount(path=path, label=describe(cond), count=counts[n])
            for n, (path, cond) in enumerate(conditions)
        ],
        before_exclusions=counts[-1] if exclusions else None,
    )
