"""The CSV formats the customer store imports, and the per-row validation of each.

Everything here is a pure function of its arguments so chunks of rows can be validated
in worker processes. A row becomes either a staging record (a tuple in `Spec.staging`
order) or a list of errors `(row, column, value, reason)`; a row with any error is not
loaded. Identity columns (normalized + SHA-256 email, phone, device id) are computed here
with destinations.tiktok.normalize, so import, demo data and delivery agree.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from customers.phones import PhoneNormalizer
from destinations.tiktok.normalize import normalize_device_id, normalize_email


class ImportKind(StrEnum):
    CUSTOMERS = "customers"
    DEVICES = "devices"
    ORDERS = "orders"


class CellError(ValueError):
    """A cell's value cannot be used; the message is the reason shown in the error report."""


Parser = Callable[[str], object]

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_AMOUNT = re.compile(r"^-?\d{1,10}(\.\d{1,2})?$")


def text(max_length: int) -> Parser:
    def parse(value: str) -> str:
        if len(value) > max_length:
            raise CellError(f"longer than {max_length} characters")
        return value

    parse.max_length = max_length  # type: ignore[attr-defined]  # RowProcessor checks it inline
    return parse


def boolean(value: str) -> bool | None:
    if value == "":
        return None
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CellError("not a boolean: use true/false, 1/0 or yes/no")


def iso_date(value: str) -> dt.date | None:
    if value == "":
        return None
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        raise CellError("not a date: use YYYY-MM-DD") from None
    if parsed.year < 1900 or parsed > dt.date.today():
        raise CellError("date out of range (1900 to today)")
    return parsed


def iso_datetime(value: str) -> dt.datetime | None:
    """ISO 8601 date-time or date; without an offset it is taken as UTC."""
    if value == "":
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CellError("not a date-time: use ISO 8601, e.g. 2024-05-31T14:05:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if parsed.year < 1970:
        raise CellError("date-time before 1970")
    return parsed


def country(value: str) -> str:
    if value and not _COUNTRY.match(value):
        raise CellError("not a two-letter ISO 3166 country code")
    return value.upper()


def currency(value: str) -> str:
    if value == "":
        return "USD"
    if not _CURRENCY.match(value):
        raise CellError("not a three-letter ISO 4217 currency code")
    return value.upper()


def amount(value: str) -> Decimal:
    if not _AMOUNT.match(value):
        raise CellError("not an amount: digits with '.' and at most 2 decimals, e.g. 1234.50")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise CellError("not an amount") from None


def quantity(value: str) -> int:
    if value == "":
        return 1
    try:
        number = int(value)
    except ValueError:
        raise CellError("not a whole number") from None
    if not -100_000 <= number <= 100_000:
        raise CellError("quantity out of range (-100000 to 100000)")
    return number


def choice(*options: str) -> Parser:
    allowed = {o.lower(): o for o in options}

    def parse(value: str) -> str:
        try:
            return allowed[value.lower()]
        except KeyError:
            raise CellError(f"must be one of {', '.join(options)}") from None

    return parse


@dataclass(frozen=True)
class Column:
    name: str
    parse: Parser
    doc: str
    required: bool = False  # the column must be in the header and the value non-empty


@dataclass(frozen=True)
class Spec:
    kind: ImportKind
    table: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    derived: tuple[str, ...] = ()
    # Staging columns: row number, every column, then the derived identity columns.
    staging: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = ("row_no", *(c.name for c in self.columns), *self.derived)
        object.__setattr__(self, "staging", names)

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


CUSTOMERS = Spec(
    kind=ImportKind.CUSTOMERS,
    table="customers",
    key=("customer_id",),
    columns=(
        Column("customer_id", text(64), "stable id, up to 64 characters", required=True),
        Column("given_name", text(100), "text"),
        Column("surname", text(100), "text"),
        Column("email", text(254), "text; an email that does not look valid is kept but not sent"),
        Column(
            "phone", text(64), "any national or international format; parsed with the row's country"
        ),
        Column("street", text(200), "text"),
        Column("city", text(100), "text"),
        Column("state", text(100), "text, e.g. CA"),
        Column("postal_code", text(20), "text"),
        Column("country", country, "ISO 3166 two-letter code, e.g. US, GB, DE"),
        Column("birthdate", iso_date, "YYYY-MM-DD"),
        Column("gender", text(20), "text"),
        Column("loyalty_tier", text(20), "text, e.g. Gold"),
        Column("email_opt_in", boolean, "true/false, 1/0, yes/no"),
        Column("sms_opt_in", boolean, "true/false, 1/0, yes/no"),
        Column("created_at", iso_datetime, "ISO 8601; used when the customer is first imported"),
    ),
    derived=("email_normalized", "email_sha256", "phone_e164", "phone_sha256"),
)

DEVICES = Spec(
    kind=ImportKind.DEVICES,
    table="devices",
    key=("customer_id", "kind", "raw_id"),
    columns=(
        Column("customer_id", text(64), "an imported customer's id", required=True),
        Column("kind", choice("IDFA", "AAID"), "IDFA (Apple) or AAID (Android)", required=True),
        Column("raw_id", text(100), "the advertising id as collected", required=True),
    ),
    derived=("normalized_id", "sha256"),
)

ORDERS = Spec(
    kind=ImportKind.ORDERS,
    table="orders",
    key=("order_id",),
    columns=(
        Column("order_id", text(64), "unique order id", required=True),
        Column("customer_id", text(64), "an imported customer's id", required=True),
        Column(
            "ordered_at", iso_datetime, "ISO 8601 date-time (UTC when no offset)", required=True
        ),
        Column(
            "channel",
            choice("web", "store", "app", "phone"),
            "web, store, app or phone",
            required=True,
        ),
        Column("store", text(100), "text"),
        Column("brand", text(100), "text"),
        Column("product_name", text(200), "text"),
        Column("product_category", text(100), "text"),
        Column("quantity", quantity, "whole number, default 1"),
        Column(
            "amount", amount, "decimal with '.', e.g. 59.90 (negative for refunds)", required=True
        ),
        Column("currency", currency, "ISO 4217 code, default USD"),
        Column("is_return", lambda v: bool(boolean(v)), "true/false, 1/0, yes/no; default false"),
    ),
)

SPECS: dict[ImportKind, Spec] = {s.kind: s for s in (CUSTOMERS, DEVICES, ORDERS)}

# The CSV formats for people: the Data page and the README show these.
RowError = tuple[int, str, str, str]


@dataclass
class ChunkResult:
    records: list[tuple] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
    payload: bytes = b""
    rows: int = 0  # rows read, good and bad
    error_rows: int = 0

    @property
    def good_rows(self) -> int:
        return self.rows - self.error_rows


class RowProcessor:
    """Validates rows of one file: `header` is the file's header, lowercased."""

    def __init__(self, spec: Spec, header: Sequence[str], default_region: str) -> None:
        self.spec = spec
        self.width = len(header)
        position = {name: i for i, name in enumerate(header)}
        # (index in the file or None when absent, column)
        self.layout = [(position.get(c.name), c) for c in spec.columns]
        self.default_region = default_region
        self.phones = PhoneNormalizer()
        # Positions in a staging record (row_no comes first) that identity columns read.
        self._email, self._phone, self._country, self._raw_id = (
            spec.staging.index(name) if name in spec.staging else -1
            for name in ("email", "phone", "country", "raw_id")
        )
        self._plan_quick()

    def process(self, rows: Sequence[tuple[int, list[str]]]) -> ChunkResult:
        result = ChunkResult(rows=len(rows))
        derive = getattr(self, f"_derive_{self.spec.kind.value}")
        quick, checked = self._quick, self._checked
        records, stats = result.records, result.stats
        for row_no, cells in rows:
            values = quick(row_no, cells)
            if values is None:  # something to report (or to look at closer): the full check
                values = checked(row_no, cells, result)
                if values is None:
                    result.error_rows += 1
                    continue
            derive(values, stats)
            records.append(tuple(values))
        return result

    def _plan_quick(self) -> None:
        """What `_quick` checks: the same rules as `_checked`, arranged for speed."""
        width = self.width
        # Cell positions per column; an absent column reads the "" appended after the cells.
        positions = [width if index is None else index for index, _ in self.layout]
        self._pick = operator.itemgetter(*positions) if len(positions) > 1 else None
        self._positions = positions
        self._required = [n + 1 for n, (_, c) in enumerate(self.layout) if c.required]
        self._lengths = [
            (n + 1, c.parse.max_length)  # type: ignore[attr-defined]
            for n, (_, c) in enumerate(self.layout)
            if hasattr(c.parse, "max_length")
        ]
        self._typed = [
            (n + 1, c.parse)
            for n, (_, c) in enumerate(self.layout)
            if not hasattr(c.parse, "max_length")
        ]

    def _quick(self, row_no: int, cells: list[str]) -> list | None:
        """The row's values when every cell is fine; None when any check fails."""
        if len(cells) != self.width:
            return None
        stripped = [cell.strip() for cell in cells]
        stripped.append("")
        if self._pick is not None:
            values: list = [row_no, *self._pick(stripped)]
        else:
            values = [row_no, stripped[self._positions[0]]]
        for n in self._required:
            if not values[n]:
                return None
        for n, limit in self._lengths:
            if len(values[n]) > limit:
                return None
        try:
            for n, parse in self._typed:
                values[n] = parse(values[n])
        except CellError:
            return None
        return values

    def _checked(self, row_no: int, cells: list[str], result: ChunkResult) -> list | None:
        """Column by column, every error reported; None when the row has any."""
        errors = result.errors
        if len(cells) != self.width:
            errors.append((row_no, "", "", f"expected {self.width} fields, found {len(cells)}"))
            return None
        values: list[object] = [row_no]
        failed = False
        for index, column in self.layout:
            raw = cells[index].strip() if index is not None else ""
            if column.required and not raw:
                errors.append((row_no, column.name, raw, "required value is empty"))
                failed = True
                continue
            try:
                values.append(column.parse(raw))
            except CellError as exc:
                errors.append((row_no, column.name, raw, str(exc)))
                failed = True
        return None if failed else values

    def _derive_customers(self, values: list, stats: Counter) -> None:
        email, phone = values[self._email], values[self._phone]
        region = values[self._country] or self.default_region
        e = normalize_email(email)
        p = self.phones.normalize(phone, region)
        if email and e is None:
            stats["unusable_emails"] += 1
        if phone and p is None:
            stats["unusable_phones"] += 1
        values.extend(e or ("", ""))
        values.extend(p or ("", ""))

    def _derive_devices(self, values: list, stats: Counter) -> None:
        d = normalize_device_id(values[self._raw_id])
        if d is None:
            stats["unusable_device_ids"] += 1
        values.extend(d or ("", ""))

    def _derive_orders(self, values: list, stats: Counter) -> None:
        return None


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\x00"  # PostgreSQL text cannot hold NUL, so it can stand in for NULL while joining


def _copy_value(value: object) -> str:
    if value is None:
        return _NULL
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def copy_text(records: Sequence[tuple]) -> bytes:
    """PostgreSQL COPY text format for `records` (NULL as \\N).

    Most rows hold no tab, newline or backslash: join them as they are and escape value by
    value only the rare row that does.
    """
    lines = []
    tabs = len(records[0]) - 1 if records else 0
    for record in records:
        line = "\t".join([v if v.__class__ is str else _copy_value(v) for v in record])
        if line.count("\t") != tabs or "\\" in line or "\n" in line or "\r" in line:
            line = "\t".join(
                _copy_value(v).translate(_COPY_ESCAPES) if v is not None else _NULL for v in record
            )
        lines.append(line)
    lines.append("")
    return "\n".join(lines).replace(_NULL, "\\N").encode("utf-8")
