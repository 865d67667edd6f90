"""The one compiler: a segment definition (a versioned JSON tree) to one SQL query.

Public API (other apps rely on these names):

- ``compile_definition(definition: dict) -> CompiledSQL`` returns
  ``SELECT c.customer_id FROM customers c WHERE ...``: one column, ``customer_id`` (the
  string natural key), no duplicates, params in DB-API ``%s`` style for
  ``django.db.connection.cursor()``. Works on SQLite and PostgreSQL; relative dates are
  SQL expressions (``CURRENT_DATE``/``date('now')``), so they are evaluated when the query
  runs, also in "View SQL" / "Convert to SQL" output.
- ``definition_predicate(definition) -> CompiledSQL`` and ``segment_predicate(segment)``:
  the same membership as a boolean expression over a row ``c`` of ``customers`` (TRUE or
  FALSE, never NULL), so several segments can be evaluated in one scan.
- ``validate_definition(definition) -> list[ConditionError]`` (no exception).
- ``DefinitionError(errors)``: raised on invalid definitions; each ``ConditionError`` has
  a ``path`` such as ``sections.0.conditions.2`` pointing at the condition.

Definition format (version 1)::

    {"version": 1, "combinator": "and" | "or",
     "sections": [{"combinator": "and" | "or", "conditions": [<condition>, ...]}, ...],
     "exclusions": {"combinator": "and" | "or", "conditions": [<condition>, ...]}}

Conditions:

- ``{"type": "attribute", "attribute": "state", "operator": "in", "value": [...],
  "value2": ..., "unit": "days"}``; operators per type are in ``OPERATORS``. Date values
  are ``"YYYY-MM-DD"`` or relative ``{"ago": N, "unit": "days|months|years"}`` (0 days
  ago is today). ``within_last`` / ``more_than_ago`` take ``value: N`` and ``unit``.
- ``{"type": "purchase", "behaviour": "has_purchased" | "has_not_purchased" |
  "first_purchase" | "repeat_purchase" | "total_value" | "order_count",
  "operator": "gte", "value": 100, "value2": null,
  "window": null | {"kind": "last", "amount": N, "unit": "days"}
                 | {"kind": "between", "start": "YYYY-MM-DD", "end": "YYYY-MM-DD"},
  "filters": {"brand": [...], "channel": [...], "store": [...],
              "product_category": [...], "product_name": [...]}}``
- ``{"type": "segment", "operator": "in" | "not_in", "segment_id": 7}`` (the other
  segment must be Active; cycles are refused).
- ``{"type": "id_list", "operator": "in" | "not_in", "list_id": 3}`` (an uploaded list).

NULL handling is explicit: "is not", "does not contain", "not in list" and "≠" match
customers with no value; every other comparison never matches a missing value; text
"is empty" means NULL or ''. Returns (``orders.is_return``) are not purchases: derived
attributes and behaviours count non-return orders only. Day boundaries are UTC days.
Empty sections are ignored; a definition without conditions matches every customer.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import connection

CURRENT_VERSION = 1
MAX_SECTIONS = 30
MAX_CONDITIONS = 100
MAX_LIST_VALUES = 10_000
MAX_TEXT = 500
MAX_NUMBER = 10**15
MAX_DECIMALS = 6
UNITS = ("days", "months", "years")
COMBINATORS = ("and", "or")


@dataclass(frozen=True)
class CompiledSQL:
    """SQL text with ``%s`` placeholders and its parameters."""

    sql: str
    params: list = field(default_factory=list)


@dataclass(frozen=True)
class ConditionError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class DefinitionError(ValueError):
    """An invalid definition; ``errors`` lists each problem with its condition path."""

    def __init__(self, errors: list[ConditionError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors) or "invalid definition")


# ---------------------------------------------------------------------------------------
# Attribute catalogue


@dataclass(frozen=True)
class Attribute:
    key: str
    label: str
    type: str  # text | number | date | datetime | boolean
    column: str = ""  # a column of customers; empty for derived attributes
    picker: bool = False  # offer the existing values
    group: str = "Customer"


ATTRIBUTES: dict[str, Attribute] = {
    a.key: a
    for a in [
        Attribute("customer_id", "Customer id", "text", "customer_id"),
        Attribute("given_name", "Given name", "text", "given_name"),
        Attribute("surname", "Surname", "text", "surname"),
        Attribute("email", "Email", "text", "email"),
        Attribute("phone", "Phone", "text", "phone"),
        Attribute("city", "City", "text", "city"),
        Attribute("state", "State", "text", "state", picker=True),
        Attribute("postal_code", "Postal code", "text", "postal_code"),
        Attribute("country", "Country", "text", "country", picker=True),
        Attribute("gender", "Gender", "text", "gender", picker=True),
        Attribute("loyalty_tier", "Loyalty tier", "text", "loyalty_tier", picker=True),
        Attribute("birthdate", "Birthdate", "date", "birthdate"),
        Attribute("email_opt_in", "Email opt-in", "boolean", "email_opt_in"),
        Attribute("sms_opt_in", "SMS opt-in", "boolean", "sms_opt_in"),
        Attribute("created_at", "Created", "datetime", "created_at"),
        Attribute("updated_at", "Updated", "datetime", "updated_at"),
        Attribute("lifetime_revenue", "Lifetime revenue", "number", group="Derived from orders"),
        Attribute("order_count", "Order count", "number", group="Derived from orders"),
        Attribute("revenue_1y", "1-year revenue", "number", group="Derived from orders"),
        Attribute("first_order_date", "First order date", "datetime", group="Derived from orders"),
        Attribute("last_order_date", "Last order date", "datetime", group="Derived from orders"),
        Attribute("active_1y", "1-year active", "boolean", group="Derived from orders"),
    ]
}

# Order columns a purchase behaviour can be filtered by; all offer their existing values.
ORDER_FILTERS: dict[str, str] = {
    "brand": "Brand",
    "channel": "Channel",
    "store": "Store",
    "product_category": "Category",
    "product_name": "Product",
}

OPERATORS: dict[str, dict[str, str]] = {
    "text": {
        "is": "is",
        "is_not": "is not",
        "contains": "contains",
        "not_contains": "does not contain",
        "starts_with": "starts with",
        "ends_with": "ends with",
        "in": "is in list",
        "not_in": "is not in list",
        "empty": "is empty",
        "not_empty": "is not empty",
    },
    "number": {
        "eq": "=",
        "ne": "≠",
        "lt": "<",
        "lte": "≤",
        "gt": ">",
        "gte": "≥",
        "between": "between",
        "in": "is in list",
        "empty": "is empty",
        "not_empty": "is not empty",
    },
    "date": {
        "is": "is",
        "before": "before",
        "after": "after",
        "on_or_before": "on or before",
        "on_or_after": "on or after",
        "between": "between",
        "within_last": "within the last",
        "more_than_ago": "more than … ago",
        "empty": "is empty",
        "not_empty": "is not empty",
    },
    "boolean": {"true": "is true", "false": "is false", "empty": "is empty"},
}
OPERATORS["datetime"] = OPERATORS["date"]

NO_VALUE_OPERATORS = {"empty", "not_empty", "true", "false"}
LIST_OPERATORS = {"in", "not_in"}

BEHAVIOURS: dict[str, str] = {
    "has_purchased": "has purchased",
    "has_not_purchased": "has not purchased",
    "first_purchase": "first purchase",
    "repeat_purchase": "repeat purchase (2+ orders)",
    "total_value": "total value of orders",
    "order_count": "number of orders",
}
AGGREGATE_BEHAVIOURS = {"total_value", "order_count"}
COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
CONDITION_TYPES = ("attribute", "purchase", "segment", "id_list")


# ---------------------------------------------------------------------------------------
# Dialect: the few expressions that differ between PostgreSQL and SQLite


class Dialect:
    def __init__(self, vendor: str):
        self.pg = vendor == "postgresql"

    def day(self, value: dt.date | dict, plus_one: bool = False) -> tuple[str, list]:
        """The start of a (UTC) day, absolute or relative to today; optionally the next day."""
        if isinstance(value, dict):
            amount, unit = value["ago"], value["unit"]
            if self.pg:
                sql = f"CAST(CURRENT_DATE - %s * INTERVAL '1 {unit[:-1]}' AS date)"
                return (f"({sql} + 1)" if plus_one else sql), [amount]
            return ("date('now', %s, '+1 day')" if plus_one else "date('now', %s)"), [
                f"-{amount} {unit}"
            ]
        if self.pg:
            return ("(CAST(%s AS date) + 1)" if plus_one else "CAST(%s AS date)"), [
                value.isoformat()
            ]
        return ("date(%s, '+1 day')" if plus_one else "%s"), [value.isoformat()]

    def now_minus(self, amount: int, unit: str, *, date_only: bool) -> tuple[str, list]:
        if self.pg:
            base = "CURRENT_DATE" if date_only else "CURRENT_TIMESTAMP"
            return f"({base} - %s * INTERVAL '1 {unit[:-1]}')", [amount]
        fn = "date" if date_only else "datetime"
        return f"{fn}('now', %s)", [f"-{amount} {unit}"]

    def now(self, *, date_only: bool) -> str:
        if self.pg:
            return "CURRENT_DATE" if date_only else "CURRENT_TIMESTAMP"
        return "date('now')" if date_only else "datetime('now')"

    def date_param(self, value: dt.date) -> Any:
        return value if self.pg else value.isoformat()

    def number_param(self, value: Decimal) -> Any:
        # sqlite3 would bind a Decimal as text, which never compares equal to a number.
        if self.pg:
            return value
        return int(value) if value == value.to_integral_value() else float(value)


# ---------------------------------------------------------------------------------------
# Value parsing (each returns the parsed value or raises _Invalid with a readable message)


class _Invalid(Exception):
    pass


def _text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
        raise _Invalid("Enter a value.")
    value = str(value)
    if len(value) > MAX_TEXT:
        raise _Invalid(f"A value may be at most {MAX_TEXT} characters.")
    return value


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None or value == "":
        raise _Invalid("Enter a number.")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _Invalid(f"“{value}” is not a number.") from None
    if not number.is_finite():
        raise _Invalid(f"“{value}” is not a number.")
    # Beyond these the databases overflow (SQLite integers, PostgreSQL numeric scale).
    if abs(number) >= MAX_NUMBER or number.as_tuple().exponent < -MAX_DECIMALS:  # type: ignore[operator]
        raise _Invalid(f"Enter a number below {MAX_NUMBER:,} with at most {MAX_DECIMALS} decimals.")
    return number


def _count(value: Any) -> int:
    number = _number(value)
    if number != number.to_integral_value() or number < 0 or number > 100_000:
        raise _Invalid("Enter a whole number between 0 and 100000.")
    return int(number)


def _iso_date(value: Any) -> dt.date:
    if not isinstance(value, str) or not value:
        raise _Invalid("Enter a date.")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _Invalid(f"“{value}” is not a date (YYYY-MM-DD).") from None


def _unit(value: Any) -> str:
    if value not in UNITS:
        raise _Invalid("Choose days, months or years.")
    return str(value)


def _date_value(value: Any) -> dt.date | dict:
    if isinstance(value, dict):
        return {"ago": _count(value.get("ago")), "unit": _unit(value.get("unit"))}
    return _iso_date(value)


def _list(value: Any, item: Callable[[Any], Any]) -> list:
    if isinstance(value, str):
        value = [v.strip() for v in re.split(r"[,\n]", value) if v.strip()]
    if not isinstance(value, list) or not value:
        raise _Invalid("Enter at least one value.")
    if len(value) > MAX_LIST_VALUES:
        raise _Invalid(f"A list may hold at most {MAX_LIST_VALUES} values.")
    return list(dict.fromkeys(item(v) for v in value))


def _like(value: str, *, prefix: str = "%", suffix: str = "%") -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{prefix}{escaped}{suffix}"


def _placeholders(values: list) -> str:
    return ", ".join(["%s"] * len(values))


# ---------------------------------------------------------------------------------------
# The compiler


@dataclass
class _Context:
    dialect: Dialect
    stack: tuple[int, ...]
    errors: list[ConditionError] = field(default_factory=list)
    params: list = field(default_factory=list)


NON_RETURN = "NOT o.is_return"


class _Compiler:
    def __init__(self, ctx: _Context):
        self.ctx = ctx
        self.d = ctx.dialect
        self.where = ""  # the WHERE condition of the last definition() ("" = everyone)

    # -- tree ----------------------------------------------------------------------------

    def definition(self, definition: Any) -> str | None:
        errors = self.ctx.errors
        if not isinstance(definition, dict):
            errors.append(ConditionError("", "A definition must be a JSON object."))
            return None
        if definition.get("version") != CURRENT_VERSION:
            errors.append(
                ConditionError(
                    "version", f"Unsupported definition version {definition.get('version')!r}."
                )
            )
            return None
        combinator = self._combinator(definition.get("combinator", "and"), "combinator")
        sections = definition.get("sections", [])
        if not isinstance(sections, list) or len(sections) > MAX_SECTIONS:
            errors.append(ConditionError("sections", f"Use at most {MAX_SECTIONS} sections."))
            return None
        parts = []
        for i, section in enumerate(sections):
            sql = self.group(section, f"sections.{i}", "c")
            if sql:
                parts.append(sql)
        where = f" {combinator.upper()} ".join(f"({p})" for p in parts) if parts else ""
        exclusions = definition.get("exclusions") or {"conditions": []}
        excluded = self.group(exclusions, "exclusions", "c")
        clauses = [f"({where})"] if where else []
        if excluded:
            clauses.append(self.exclusion_clause(excluded))
        self.where = " AND ".join(clauses)
        sql = "SELECT c.customer_id FROM customers c"
        return f"{sql} WHERE {self.where}" if clauses else sql

    def exclusion_clause(self, excluded: str) -> str:
        # COALESCE keeps customers whose exclusion is unknown (NULL) rather than dropping them.
        return f"NOT COALESCE(({excluded}), FALSE)"

    def _combinator(self, value: Any, path: str) -> str:
        if value not in COMBINATORS:
            self.ctx.errors.append(ConditionError(path, "Choose AND or OR."))
            return "and"
        return str(value)

    def group(self, group: Any, path: str, alias: str) -> str:
        if not isinstance(group, dict) or not isinstance(group.get("conditions", []), list):
            self.ctx.errors.append(ConditionError(path, "A section must hold a list of conditions"))
            return ""
        combinator = self._combinator(group.get("combinator", "and"), f"{path}.combinator")
        conditions = group.get("conditions", [])
        if len(conditions) > MAX_CONDITIONS:
            self.ctx.errors.append(
                ConditionError(path, f"A section may hold at most {MAX_CONDITIONS} conditions.")
            )
            return ""
        parts = []
        for i, condition in enumerate(conditions):
            cpath = f"{path}.conditions.{i}"
            try:
                parts.append(self.condition(condition, alias))
            except _Invalid as exc:
                self.ctx.errors.append(ConditionError(cpath, str(exc)))
            except TypeError:
                # A list or object where a name belongs (unhashable in the catalogue lookups).
                self.ctx.errors.append(
                    ConditionError(cpath, "This condition has a value of the wrong type.")
                )
        return f" {combinator.upper()} ".join(f"({p})" for p in parts)

    def condition(self, condition: Any, alias: str) -> str:
        if not isinstance(condition, dict) or condition.get("type") not in CONDITION_TYPES:
            raise _Invalid("Unknown condition type.")
        kind = condition["type"]
        if kind == "attribute":
            return self.attribute(condition, alias)
        if kind == "purchase":
            return self.purchase(condition, alias)
        if kind == "segment":
            return self.segment(condition, alias)
        return self.id_list(condition, alias)

    # -- parameters: SQL fragments are built with their params in order ------------------

    def p(self, params: list) -> None:
        self.ctx.params.extend(params)

    # -- attribute conditions -----------------------------------------------------------

    def attribute(self, cond: dict, alias: str) -> str:
        attr = ATTRIBUTES.get(cond.get("attribute", ""))
        if attr is None:
            raise _Invalid("Choose an attribute.")
        op = cond.get("operator")
        if op not in OPERATORS[attr.type]:
            raise _Invalid(f"Choose an operator for {attr.label}.")
        if not attr.column:
            return self.derived(attr, op, cond, alias)
        col = f"{alias}.{attr.column}"
        if attr.type == "text":
            return self.text(col, op, cond)
        if attr.type == "boolean":
            return {
                "true": f"{col} = TRUE",
                "false": f"{col} = FALSE",
                "empty": f"{col} IS NULL",
            }[op]
        if attr.type in ("date", "datetime"):
            return self.date(col, op, cond, date_only=attr.type == "date")
        raise _Invalid("Unsupported attribute.")  # pragma: no cover - catalogue has no others

    def text(self, col: str, op: str, cond: dict) -> str:
        if op == "empty":
            return f"({col} IS NULL OR {col} = '')"
        if op == "not_empty":
            return f"({col} IS NOT NULL AND {col} <> '')"
        # Text comparisons ignore case ("gold" finds "Gold"): both sides through the
        # database's LOWER, so SQLite and PostgreSQL each agree with themselves.
        if op in LIST_OPERATORS:
            values = _list(cond.get("value"), _text)
            self.p(values)
            lowered = ", ".join(["LOWER(%s)"] * len(values))
            if op == "in":
                return f"LOWER({col}) IN ({lowered})"
            return f"({col} IS NULL OR LOWER({col}) NOT IN ({lowered}))"
        value = _text(cond.get("value"))
        if op == "is":
            self.p([value])
            return f"LOWER({col}) = LOWER(%s)"
        if op == "is_not":
            self.p([value])
            return f"({col} IS NULL OR LOWER({col}) <> LOWER(%s))"
        pattern = {
            "contains": _like(value),
            "not_contains": _like(value),
            "starts_with": _like(value, prefix=""),
            "ends_with": _like(value, suffix=""),
        }[op]
        self.p([pattern])
        if op == "not_contains":
            return f"({col} IS NULL OR LOWER({col}) NOT LIKE %s ESCAPE '\\')"
        return f"LOWER({col}) LIKE %s ESCAPE '\\'"

    def number_predicate(self, expr: str, op: str, cond: dict) -> tuple[str, Callable]:
        """A predicate on a numeric expression, and a Python twin to test it against 0."""
        if op == "between":
            low, high = _number(cond.get("value")), _number(cond.get("value2"))
            if low > high:
                raise _Invalid("The first value must not be greater than the second.")
            self.p([self.d.number_param(low), self.d.number_param(high)])
            return f"{expr} BETWEEN %s AND %s", lambda v: low <= v <= high
        if op == "in":
            values = _list(cond.get("value"), _number)
            self.p([self.d.number_param(v) for v in values])
            return f"{expr} IN ({_placeholders(values)})", lambda v: v in values
        value = _number(cond.get("value"))
        self.p([self.d.number_param(value)])
        twin = {
            "eq": lambda v: v == value,
            "ne": lambda v: v != value,
            "lt": lambda v: v < value,
            "lte": lambda v: v <= value,
            "gt": lambda v: v > value,
            "gte": lambda v: v >= value,
        }[op]
        return f"{expr} {COMPARISONS[op]} %s", twin

    def date(self, col: str, op: str, cond: dict, *, date_only: bool) -> str:
        if op == "empty":
            return f"{col} IS NULL"
        if op == "not_empty":
            return f"{col} IS NOT NULL"
        return self.date_predicate(col, op, cond, date_only=date_only)

    def date_predicate(self, col: str, op: str, cond: dict, *, date_only: bool) -> str:
        d = self.d
        if op in ("within_last", "more_than_ago"):
            amount, unit = _count(cond.get("value")), _unit(cond.get("unit"))
            bound, params = d.now_minus(amount, unit, date_only=date_only)
            self.p(params)
            if op == "more_than_ago":
                return f"{col} < {bound}"
            return f"({col} >= {bound} AND {col} <= {d.now(date_only=date_only)})"
        if op == "between":
            start, end = _date_value(cond.get("value")), _date_value(cond.get("value2"))
            if isinstance(start, dt.date) and isinstance(end, dt.date) and start > end:
                raise _Invalid("The start date must not be after the end date.")
            low, lp = d.day(start)
            high, hp = d.day(end, plus_one=True)
            self.p(lp + hp)
            return f"({col} >= {low} AND {col} < {high})"
        value = _date_value(cond.get("value"))
        if op == "is":
            low, lp = d.day(value)
            high, hp = d.day(value, plus_one=True)
            self.p(lp + hp)
            return f"({col} >= {low} AND {col} < {high})"
        plus_one = op in ("after", "on_or_before")
        bound, params = d.day(value, plus_one=plus_one)
        self.p(params)
        sign = {"before": "<", "on_or_before": "<", "after": ">=", "on_or_after": ">="}[op]
        return f"{col} {sign} {bound}"

    # -- derived attributes and purchase behaviour: set-based over orders -----------------

    def orders_in(self, alias: str, where: str, having: str = "") -> str:
        group = f" GROUP BY o.customer_id HAVING {having}" if having else ""
        return f"{alias}.customer_id IN (SELECT o.customer_id FROM orders o WHERE {where}{group})"

    def orders_not_exists(self, alias: str, where: str) -> str:
        return (
            "NOT EXISTS (SELECT 1 FROM orders o "
            f"WHERE o.customer_id = {alias}.customer_id AND {where})"
        )

    def aggregate(self, alias: str, where: str, agg: str, op: str, cond: dict) -> str:
        """Compare an aggregate over a customer's orders; customers without orders count 0."""
        # The predicate's params come after `where`'s, so collect them separately.
        saved, self.ctx.params = self.ctx.params, []
        predicate, twin = self.number_predicate(agg, op, cond)
        pred_params, self.ctx.params = self.ctx.params, saved
        if not twin(Decimal(0)):
            self.p(pred_params)
            return self.orders_in(alias, where, predicate)
        # Zero satisfies it: everyone except customers whose orders fail the predicate.
        self.p(pred_params)
        return (
            "NOT EXISTS (SELECT 1 FROM (SELECT o.customer_id FROM orders o "
            f"WHERE {where} GROUP BY o.customer_id HAVING NOT ({predicate})) g "
            f"WHERE g.customer_id = {alias}.customer_id)"
        )

    def one_year(self) -> str:
        bound, params = self.d.now_minus(1, "years", date_only=False)
        self.p(params)
        return f"{NON_RETURN} AND o.ordered_at >= {bound}"

    def derived(self, attr: Attribute, op: str, cond: dict, alias: str) -> str:
        if attr.type == "number":
            if op == "empty":
                return "1 = 0"  # derived numbers are 0, never missing
            if op == "not_empty":
                return "1 = 1"
            where = self.one_year() if attr.key == "revenue_1y" else NON_RETURN
            agg = "COUNT(*)" if attr.key == "order_count" else "SUM(o.amount)"
            return self.aggregate(alias, where, agg, op, cond)
        if attr.key == "active_1y":
            if op == "empty":
                return "1 = 0"
            where = self.one_year()
            if op == "true":
                return self.orders_in(alias, where)
            return self.orders_not_exists(alias, where)
        # first / last order date
        if op == "empty":
            return self.orders_not_exists(alias, NON_RETURN)
        if op == "not_empty":
            return self.orders_in(alias, NON_RETURN)
        agg = "MIN(o.ordered_at)" if attr.key == "first_order_date" else "MAX(o.ordered_at)"
        predicate = self.date_predicate(agg, op, cond, date_only=False)
        return self.orders_in(alias, NON_RETURN, predicate)

    def order_filters(self, cond: dict) -> str:
        clauses = [NON_RETURN]
        filters = cond.get("filters") or {}
        if not isinstance(filters, dict):
            raise _Invalid("Filters must be an object.")
        for key, values in filters.items():
            if key not in ORDER_FILTERS:
                raise _Invalid(f"Unknown order filter “{key}”.")
            if values in (None, "", []):
                continue
            values = _list(values, _text)
            self.p(values)
            clauses.append(f"o.{key} IN ({_placeholders(values)})")
        window = cond.get("window")
        if window:
            if not isinstance(window, dict) or window.get("kind") not in ("last", "between"):
                raise _Invalid("Choose a time window.")
            if window["kind"] == "last":
                amount = _count(window.get("amount"))
                if amount < 1:
                    raise _Invalid("The time window must be at least 1.")
                bound, params = self.d.now_minus(amount, _unit(window.get("unit")), date_only=False)
                self.p(params)
                clauses.append(f"o.ordered_at >= {bound}")
            else:
                start, end = _iso_date(window.get("start")), _iso_date(window.get("end"))
                if start > end:
                    raise _Invalid("The window's start must not be after its end.")
                low, lp = self.d.day(start)
                high, hp = self.d.day(end, plus_one=True)
                self.p(lp + hp)
                clauses.append(f"o.ordered_at >= {low} AND o.ordered_at < {high}")
        return " AND ".join(clauses)

    def purchase(self, cond: dict, alias: str) -> str:
        behaviour = cond.get("behaviour")
        if behaviour not in BEHAVIOURS:
            raise _Invalid("Choose a purchase behaviour.")
        if behaviour == "first_purchase":
            # The first order matching the filters (ever) falls inside the window.
            window = cond.get("window")
            where = self.order_filters({**cond, "window": None})
            if not window:
                return self.orders_in(alias, where)
            saved, self.ctx.params = self.ctx.params, []
            window_sql = self.order_filters({"window": window})
            window_params, self.ctx.params = self.ctx.params, saved
            self.p(window_params)
            having = window_sql.replace(NON_RETURN + " AND ", "").replace(
                "o.ordered_at", "MIN(o.ordered_at)"
            )
            return self.orders_in(alias, where, having)
        where = self.order_filters(cond)
        if behaviour == "has_purchased":
            return self.orders_in(alias, where)
        if behaviour == "has_not_purchased":
            return self.orders_not_exists(alias, where)
        if behaviour == "repeat_purchase":
            return self.orders_in(alias, where, "COUNT(*) >= 2")
        op = cond.get("operator")
        if op not in COMPARISONS and op != "between":
            raise _Invalid("Choose a comparison.")
        agg = "SUM(o.amount)" if behaviour == "total_value" else "COUNT(*)"
        return self.aggregate(alias, where, agg, op, cond)

    # -- customer lists -------------------------------------------------------------------

    def _membership(self, alias: str, op: Any, subquery: str) -> str:
        if op == "in":
            return f"{alias}.customer_id IN ({subquery})"
        if op == "not_in":
            return (
                f"NOT EXISTS (SELECT 1 FROM ({subquery}) s "
                f"WHERE s.customer_id = {alias}.customer_id)"
            )
        raise _Invalid("Choose in or not in.")

    def segment(self, cond: dict, alias: str) -> str:
        from segments.models import Segment, SegmentStatus

        try:
            segment_id = int(cond.get("segment_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _Invalid("Choose a segment.") from None
        if cond.get("operator") not in ("in", "not_in"):
            raise _Invalid("Choose in or not in.")
        if segment_id in self.ctx.stack:
            raise _Invalid("A segment cannot refer to itself, directly or through others.")
        segment = Segment.objects.filter(pk=segment_id).first()
        if segment is None:
            raise _Invalid("That segment no longer exists.")
        if segment.status != SegmentStatus.ACTIVE:
            raise _Invalid(f"Segment “{segment.name}” is not Active.")
        inner = members_of(segment, self.ctx)
        return self._membership(alias, cond["operator"], inner)

    def id_list(self, cond: dict, alias: str) -> str:
        from segments.models import CustomerList

        try:
            list_id = int(cond.get("list_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _Invalid("Choose an uploaded list.") from None
        if not CustomerList.objects.filter(pk=list_id).exists():
            raise _Invalid("That uploaded list no longer exists.")
        op = cond.get("operator")
        sql = self._membership(
            alias,
            op,
            "SELECT m.customer_id FROM segments_customer_list_member m "
            "WHERE m.customer_list_id = %s",
        )
        self.p([list_id])
        return sql


def members_of(segment: Any, ctx: _Context) -> str:
    """The members SQL of a saved segment, compiled into `ctx` (params appended)."""
    if segment.kind == "sql":
        from segments.fence import SegmentQueryError, evaluate, members_query
        from segments.sqlcheck import SqlSegmentError

        try:
            return members_query(evaluate(segment.sql))
        except SqlSegmentError as exc:
            raise _Invalid(f"Segment “{segment.name}” has invalid SQL: {exc}") from None
        except SegmentQueryError as exc:
            raise _Invalid(f"Segment “{segment.name}” cannot run: {exc}") from None
    sub = _Context(dialect=ctx.dialect, stack=(*ctx.stack, segment.pk))
    sql = _Compiler(sub).definition(segment.definition)
    if sub.errors or sql is None:
        first = sub.errors[0].message if sub.errors else "invalid conditions"
        raise _Invalid(f"Segment “{segment.name}”: {first}")
    ctx.params.extend(sub.params)
    return sql


def _compile(
    definition: Any, *, vendor: str | None, segment_id: int | None
) -> tuple[str | None, _Context]:
    ctx = _Context(
        dialect=Dialect(vendor or connection.vendor),
        stack=(segment_id,) if segment_id else (),
    )
    sql = _Compiler(ctx).definition(definition)
    return sql, ctx


def compile_definition(
    definition: dict, *, vendor: str | None = None, segment_id: int | None = None
) -> CompiledSQL:
    """Compile a definition to ``SELECT c.customer_id FROM customers c WHERE ...``.

    ``segment_id`` is the segment being edited, so a reference back to it is refused as a
    cycle. ``vendor`` defaults to the default database connection's.
    Raises ``DefinitionError`` listing every problem with its path.
    """
    sql, ctx = _compile(definition, vendor=vendor, segment_id=segment_id)
    if ctx.errors or sql is None:
        raise DefinitionError(ctx.errors or [ConditionError("", "Invalid definition.")])
    return CompiledSQL(sql=sql, params=ctx.params)


def definition_predicate(
    definition: dict, *, vendor: str | None = None, segment_id: int | None = None
) -> CompiledSQL:
    """Membership as a boolean SQL expression over a row ``c`` of ``customers``.

    TRUE exactly for the customers ``compile_definition`` selects, FALSE otherwise (never
    NULL), so several segments can be evaluated in one scan of ``customers c``. Params
    and errors as ``compile_definition``.
    """
    ctx = _Context(
        dialect=Dialect(vendor or connection.vendor),
        stack=(segment_id,) if segment_id else (),
    )
    compiler = _Compiler(ctx)
    sql = compiler.definition(definition)
    if ctx.errors or sql is None:
        raise DefinitionError(ctx.errors or [ConditionError("", "Invalid definition.")])
    predicate = f"COALESCE(({compiler.where}), FALSE)" if compiler.where else "(1 = 1)"
    return CompiledSQL(sql=predicate, params=ctx.params)


def segment_predicate(segment: Any, *, vendor: str | None = None) -> CompiledSQL:
    """A saved segment's membership as a boolean SQL expression over ``customers c``.

    Visual segments: their conditions inline (``definition_predicate``). SQL segments:
    ``c.customer_id IN (<checked query>)``, which PostgreSQL runs once as a hashed subplan.
    Only customers that exist can match (an SQL segment returning other ids selects them
    in ``segment_members_sql`` but not here). Raises ``DefinitionError`` or
    ``SqlSegmentError`` when the segment is invalid.
    """
    vendor = vendor or connection.vendor
    if segment.kind == "sql":
        from segments.fence import evaluate, members_query

        members = members_query(evaluate(segment.sql))
        return CompiledSQL(sql=f"COALESCE(c.customer_id IN ({members}), FALSE)", params=[])
    return definition_predicate(segment.definition, vendor=vendor, segment_id=segment.pk)


def validate_definition(
    definition: Any, *, vendor: str | None = None, segment_id: int | None = None
) -> list[ConditionError]:
    """Every problem in a definition, each with the path of its condition; [] when valid."""
    _sql, ctx = _compile(definition, vendor=vendor, segment_id=segment_id)
    return ctx.errors


def referenced_segment_ids(definition: Any) -> set[int]:
    """Ids of segments a definition refers to (in / not in another segment)."""
    found: set[int] = set()
    if not isinstance(definition, dict):
        return found
    groups = list(definition.get("sections") or []) + [definition.get("exclusions") or {}]
    for group in groups:
        for cond in (group or {}).get("conditions") or []:
            if isinstance(cond, dict) and cond.get("type") == "segment":
                try:
                    found.add(int(cond.get("segment_id")))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue
    return found


def inline_params(compiled: CompiledSQL, *, vendor: str | None = None) -> str:
    """The SQL with its parameters written in as literals, for "View SQL" / "Convert to SQL".

    Only values the compiler produced are inlined (strings, numbers, dates), quoted with
    standard SQL escaping.
    """

    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int | Decimal):
            return str(value)
        if isinstance(value, dt.date):
            value = value.isoformat()
        return "'" + str(value).replace("'", "''") + "'"

    params = iter(compiled.params)
    if re.findall(r"%%|%s", compiled.sql).count("%s") != len(compiled.params):
        raise ValueError("parameter count does not match the SQL")
    return re.sub(
        r"%%|%s", lambda m: "%" if m.group() == "%%" else literal(next(params)), compiled.sql
    )
