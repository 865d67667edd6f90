"""The visual condition editor: structural edits and the view model its template renders.

The editor is bound to one form field that carries the JSON definition (see
``templates/segments/editor.html`` for how to embed it). Value typing is serialized into
that field by ``static/js/segments-editor.js``; structural edits (add / remove a section or
condition, change of attribute, operator, behaviour or window) are posted to
``segments:editor``, which applies ``apply_op`` and renders the editor again.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from segments.compiler import (
    ATTRIBUTES,
    BEHAVIOURS,
    COMPARISONS,
    CURRENT_VERSION,
    OPERATORS,
    ORDER_FILTERS,
    ConditionError,
    validate_definition,
)
from segments.inputs import InputRejected, check_definition_shape
from segments.models import empty_definition
from segments.pii import (
    PRESENCE_OPERATORS,
    RAW_IDENTIFIER_ATTRIBUTES,
    segment_reads_raw_identifiers,
)
from segments.selectors import active_segments, customer_lists, picker_values

MAX_DEFINITION_BYTES = 2_000_000

NEW_CONDITIONS: dict[str, dict] = {
    "attribute": {"type": "attribute", "attribute": "state", "operator": "is", "value": ""},
    "purchase": {"type": "purchase", "behaviour": "has_purchased", "window": None, "filters": {}},
    "segment": {"type": "segment", "operator": "in", "segment_id": None},
    "id_list": {"type": "id_list", "operator": "in", "list_id": None},
}


class EditorInputError(ValueError):
    pass


def parse_definition(raw: str | None) -> dict:
    """The definition posted by the editor's field; a clear error for anything else
    (not JSON, not an object, nested too deeply, NUL characters, absurd numbers)."""
    if not raw:
        return empty_definition()
    if len(raw) > MAX_DEFINITION_BYTES:
        raise EditorInputError("The definition is too large.")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EditorInputError(f"The definition is not valid JSON: {exc.msg}.") from None
    except RecursionError:
        raise EditorInputError("The definition is nested too deeply.") from None
    except ValueError:
        # e.g. an integer literal longer than Python converts (4,300 digits)
        raise EditorInputError("The definition holds a number that is too large.") from None
    if not isinstance(value, dict):
        raise EditorInputError("The definition must be a JSON object.")
    try:
        check_definition_shape(value)
    except InputRejected as exc:
        raise EditorInputError(str(exc)) from None
    return value


def _group(definition: dict, path: str) -> dict:
    if path == "exclusions":
        group = definition.setdefault("exclusions", {"combinator": "or", "conditions": []})
    else:
        _, index = path.split(".")
        group = definition["sections"][int(index)]
    group.setdefault("conditions", [])
    return group


def apply_op(
    definition: dict, op: str, path: str = "", kind: str = "", *, restricted: bool = False
) -> dict:
    """Apply one structural edit; unknown paths raise EditorInputError.

    For a restricted-PII user, conditions on raw identifiers fall back to "is not empty"
    (the only kind they may save)."""
    result = copy.deepcopy(definition)
    result.setdefault("version", CURRENT_VERSION)
    result.setdefault("combinator", "and")
    result.setdefault("sections", [])
    try:
        if op == "add_section":
            result["sections"].append({"combinator": "and", "conditions": []})
        elif op == "remove_section":
            del result["sections"][int(path.split(".")[1])]
        elif op == "add_condition":
            if kind not in NEW_CONDITIONS:
                raise EditorInputError("Unknown condition type.")
            _group(result, path)["conditions"].append(copy.deepcopy(NEW_CONDITIONS[kind]))
        elif op == "remove_condition":
            group_path, _, index = path.rpartition(".conditions.")
            del _group(result, group_path)["conditions"][int(index)]
        elif op != "refresh":
            raise EditorInputError("Unknown editor action.")
    except (IndexError, KeyError, ValueError, TypeError, AttributeError):
        raise EditorInputError("That part of the definition does not exist any more.") from None
    return _normalize(result, restricted=restricted)


def _normalize(definition: dict, *, restricted: bool = False) -> dict:
    """Keep operators consistent with the chosen attribute / behaviour after a change."""
    sections = definition.get("sections")
    groups = [*(sections if isinstance(sections, list) else []), definition.get("exclusions")]
    for group in groups:
        for cond in _condition_list(group):
            if not isinstance(cond, dict):
                continue
            if cond.get("type") == "attribute":
                attr = _attribute(cond)
                if attr and cond.get("operator") not in OPERATORS[attr.type]:
                    cond["operator"] = next(iter(OPERATORS[attr.type]))
                    cond["value"], cond["value2"] = "", ""
                if (
                    restricted
                    and attr
                    and attr.key in RAW_IDENTIFIER_ATTRIBUTES
                    and cond.get("operator") not in PRESENCE_OPERATORS
                ):
                    cond["operator"] = "not_empty"
                    cond["value"], cond["value2"] = "", ""
            if (
                cond.get("type") == "purchase"
                and cond.get("behaviour")
                in (
                    "total_value",
                    "order_count",
                )
                and cond.get("operator") not in (*COMPARISONS, "between")
            ):
                cond["operator"] = "gte"
    return definition


# ---------------------------------------------------------------------------------------
# View model


@dataclass
class Row:
    path: str
    dom: str
    cond: dict
    type: str
    errors: list[str] = field(default_factory=list)
    attr_type: str = ""
    operators: dict[str, str] = field(default_factory=dict)
    picker: list[str] = field(default_factory=list)
    value_kind: str = ""  # none | text | list | pick | number | number_list | date | relative
    list_text: str = ""
    v1: dict = field(default_factory=dict)
    v2: dict = field(default_factory=dict)


@dataclass
class Group:
    path: str
    label: str
    combinator: str
    rows: list[Row]
    exclusions: bool = False


def _attribute(cond: dict) -> Any:
    """The catalogue entry a condition names, or None (also for names of the wrong type)."""
    key = cond.get("attribute")
    return ATTRIBUTES.get(key) if isinstance(key, str) else None


def _value_kind(attr_type: str, op: str) -> str:
    if op in ("empty", "not_empty", "true", "false"):
        return "none"
    if attr_type in ("date", "datetime"):
        return "relative" if op in ("within_last", "more_than_ago") else "date"
    if attr_type == "number":
        return "number_list" if op == "in" else "number"
    return "list" if op in ("in", "not_in") else "text"


def _date_parts(value: Any) -> dict:
    if isinstance(value, dict):
        return {"mode": "ago", "ago": value.get("ago", ""), "unit": value.get("unit", "days")}
    return {"mode": "date", "date": value or "", "unit": "days"}


def _row(
    cond: Any, path: str, prefix: str, errors: dict[str, list[str]], restricted: bool = False
) -> Row:
    cond = cond if isinstance(cond, dict) else {"type": "attribute"}
    row = Row(
        path=path,
        dom=f"{prefix}{path.replace('.', '-')}",
        cond=cond,
        type=str(cond.get("type", "attribute")),
        errors=[
            m for p, msgs in errors.items() if p == path or p.startswith(path + ".") for m in msgs
        ],
    )
    if row.type == "attribute":
        attr = _attribute(cond)
        if attr:
            row.attr_type = attr.type
            row.operators = OPERATORS[attr.type]
            if restricted and attr.key in RAW_IDENTIFIER_ATTRIBUTES:
                # Restricted-PII users may only ask whether the identifier is there.
                row.operators = {
                    k: v for k, v in OPERATORS[attr.type].items() if k in PRESENCE_OPERATORS
                }
            row.value_kind = _value_kind(attr.type, str(cond.get("operator")))
            if attr.picker:
                row.picker = picker_values(attr.key)
                if row.value_kind == "list":
                    row.value_kind = "pick"
            if attr.type in ("date", "datetime"):
                cond["_v1"], cond["_v2"] = (
                    _date_parts(cond.get("value")),
                    _date_parts(cond.get("value2")),
                )
        if isinstance(cond.get("value"), list):
            row.list_text = ", ".join(str(v) for v in cond["value"])
    return row


def editor_context(
    definition: dict,
    *,
    field_name: str = "definition",
    prefix: str = "",
    segment_id: int | None = None,
    errors: list[ConditionError] | None = None,
    restricted: bool = False,
) -> dict:
    """Context for ``segments/editor.html``: pass it as ``editor`` when including it.

    ``restricted``: the user has restricted PII access, so raw-identifier conditions offer
    only "is empty" / "is not empty" and segments that read raw identifiers are not offered.
    """
    definition = copy.deepcopy(definition)
    if errors is None:
        errors = validate_definition(definition, segment_id=segment_id)
    by_path: dict[str, list[str]] = {}
    for error in errors:
        by_path.setdefault(error.path, []).append(error.message)
    general = [e.message for e in errors if not e.path.startswith(("sections.", "exclusions"))]
    groups = []
    sections = definition.get("sections") if isinstance(definition, dict) else []
    for i, section in enumerate(sections if isinstance(sections, list) else []):
        section = section if isinstance(section, dict) else {}
        groups.append(
            Group(
                path=f"sections.{i}",
                label=f"Section {i + 1}",
                combinator=str(section.get("combinator", "and")),
                rows=[
                    _row(c, f"sections.{i}.conditions.{j}", prefix, by_path, restricted)
                    for j, c in enumerate(_condition_list(section))
                ],
            )
        )
    exclusions = definition.get("exclusions") if isinstance(definition, dict) else None
    exclusions = exclusions if isinstance(exclusions, dict) else {}
    excluded = Group(
        path="exclusions",
        label="Exclusions",
        combinator=str(exclusions.get("combinator", "or")),
        rows=[
            _row(c, f"exclusions.conditions.{j}", prefix, by_path, restricted)
            for j, c in enumerate(_condition_list(exclusions))
        ],
        exclusions=True,
    )
    clean = {k: v for k, v in definition.items()} if isinstance(definition, dict) else {}
    attributes_by_group: dict[str, list] = {}
    for attr in ATTRIBUTES.values():
        attributes_by_group.setdefault(attr.group, []).append(attr)
    return {
        "field_name": field_name,
        "prefix": prefix,
        "json": json.dumps(_strip_view_keys(clean)),
        "combinator": str(clean.get("combinator", "and")),
        "groups": groups,
        "exclusions": excluded,
        "general_errors": general,
        "error_count": len(errors),
        "attributes_by_group": attributes_by_group,
        "behaviours": BEHAVIOURS,
        "comparisons": {
            k: v for k, v in OPERATORS["number"].items() if k in COMPARISONS or k == "between"
        },
        "order_filters": {key: (label, picker_values(key)) for key, label in ORDER_FILTERS.items()},
        "segments": [
            s
            for s in active_segments()
            if s.pk != segment_id and not (restricted and segment_reads_raw_identifiers(s))
        ],
        "restricted": restricted,
        "lists": list(customer_lists()),
        "units": ("days", "months", "years"),
        "segment_id": segment_id or "",
    }


def _strip_view_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_view_keys(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_strip_view_keys(v) for v in value]
    return value


def _condition_list(group: Any) -> list:
    """A group's conditions, or [] when the group or its conditions have the wrong type."""
    conditions = group.get("conditions") if isinstance(group, dict) else None
    return conditions if isinstance(conditions, list) else []


def condition_paths(definition: Any) -> list[str]:
    """Every condition path of a definition (for out-of-band error slots)."""
    paths: list[str] = []
    if not isinstance(definition, dict):
        return paths
    sections = definition.get("sections")
    for i, section in enumerate(sections if isinstance(sections, list) else []):
        for j, _ in enumerate(_condition_list(section)):
            paths.append(f"sections.{i}.conditions.{j}")
    for j, _ in enumerate(_condition_list(definition.get("exclusions"))):
        paths.append(f"exclusions.conditions.{j}")
    return paths


def is_incomplete(definition: Any, path: str) -> bool:
    """True when the condition at ``path`` (``sections.0.conditions.1``) still waits for
    the value the person has not typed yet (a condition just added)."""
    from segments.compiler import NO_VALUE_OPERATORS

    node: Any = definition
    try:
        for part in path.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
    except (KeyError, IndexError, TypeError):
        return False
    if not isinstance(node, dict) or node.get("type") != "attribute":
        return False
    if node.get("operator") in NO_VALUE_OPERATORS:
        return False
    return node.get("value") in (None, "", [])
