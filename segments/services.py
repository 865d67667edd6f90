"""Writes to segments. Every change is validated first and recorded as a SegmentVersion."""

from __future__ import annotations

import csv
import io
import logging
from typing import IO, Any

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from customers.models import Customer
from segments.compiler import (
    ConditionError,
    DefinitionError,
    compile_definition,
    inline_params,
)
from segments.fence import SegmentQueryError
from segments.inputs import InputRejected, check_definition_shape, check_text
from segments.models import (
    CustomerList,
    CustomerListMember,
    Segment,
    SegmentKind,
    SegmentStatus,
    empty_definition,
)
from segments.pii import (
    PiiRestricted,
    require_may_author_definition,
    require_may_author_sql,
    segment_reads_raw_identifiers,
)
from segments.selectors import count_members, segment_members_sql
from segments.sqlcheck import check_sql, to_sql_segment
from segments.usage import segment_usages

logger = logging.getLogger(__name__)


class SegmentError(Exception):
    """A refused change to a segment; the message is for the user."""


class SegmentInUse(SegmentError):
    pass


class SegmentInputError(SegmentError):
    """Input of the wrong shape (too deep, NUL characters, absurd numbers)."""


MAX_NAME = 200


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise SegmentError("Give the segment a name.")
    if len(name) > MAX_NAME:
        raise SegmentError(f"A name may be at most {MAX_NAME} characters.")
    return _checked_text(name, what="name")


def _checked_text(value: str, *, what: str) -> str:
    try:
        return check_text(value, what=what)
    except InputRejected as exc:
        raise SegmentInputError(str(exc)) from None


def _check_authoring(
    *, user: Any, kind: str, definition: Any = None, sql: str | None = None
) -> None:
    """Shape and PII rules for what a user writes into a segment, before anything runs."""
    if kind == SegmentKind.SQL and sql is not None:
        require_may_author_sql(user)
        _checked_text(sql, what="SQL")
    if definition is not None:
        try:
            check_definition_shape(definition)
        except InputRejected as exc:
            raise SegmentInputError(str(exc)) from None
        require_may_author_definition(user, definition)


def _record(segment: Segment, *, user: Any, change: str) -> None:
    last = segment.versions.aggregate(n=Max("number"))["n"] or 0
    segment.versions.create(
        number=last + 1,
        name=segment.name,
        status=segment.status,
        kind=segment.kind,
        definition=segment.definition,
        sql=segment.sql,
        change=change[:200],
        created_by=user,
    )


def _must_run(sql: str) -> None:
    """An SQL segment is saved only if it runs: behind the fence, within the statement
    timeout. Raises ``SegmentQueryError`` (a missing column, a type mismatch, too slow) with
    the line and column, in a person's words."""
    from segments.fence import evaluate

    evaluate(sql)


def _validate(segment: Segment) -> None:
    """Raise DefinitionError / SqlSegmentError when the segment cannot be compiled."""
    if segment.kind == SegmentKind.SQL:
        check_sql(segment.sql, vendor=connection.vendor)
    else:
        compile_definition(segment.definition, segment_id=segment.pk)


@transaction.atomic
def segment_create(
    *,
    user: Any,
    name: str,
    kind: str = SegmentKind.VISUAL,
    definition: dict | None = None,
    sql: str = "",
    description: str = "",
) -> Segment:
    if kind not in SegmentKind.values:
        raise SegmentError("Choose visual or SQL.")
    if kind == SegmentKind.SQL:
        require_may_author_sql(user)
    _check_authoring(user=user, kind=kind, definition=definition, sql=sql)
    description = _checked_text(description or "", what="description")
    segment = Segment(
        name=_clean_name(name),
        kind=kind,
        description=description,
        definition=definition or empty_definition(),
        sql=sql,
        created_by=user,
        updated_by=user,
    )
    if definition is not None or sql:
        _validate(segment)
    if sql and kind == SegmentKind.SQL:
        _must_run(sql)
    segment.save()
    _record(segment, user=user, change="Created")
    return segment


@transaction.atomic
def segment_update(
    *,
    segment: Segment,
    user: Any,
    name: str | None = None,
    definition: dict | None = None,
    sql: str | None = None,
    description: str | None = None,
) -> Segment:
    """Save the editor: name, and the definition (visual) or the SQL (SQL segment)."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    _check_authoring(
        user=user,
        kind=segment.kind,
        definition=definition if segment.kind == SegmentKind.VISUAL else None,
        sql=sql,
    )
    if description is not None:
        _checked_text(description, what="description")
    changes = []
    if name is not None and name.strip() != segment.name:
        segment.name = _clean_name(name)
        changes.append("renamed")
    if description is not None and description != segment.description:
        segment.description = description
        changes.append("description")
    if definition is not None and segment.kind == SegmentKind.VISUAL:
        compile_definition(definition, segment_id=segment.pk)
        if definition != segment.definition:
            segment.definition = definition
            changes.append("conditions")
    if sql is not None and segment.kind == SegmentKind.SQL:
        check_sql(sql, vendor=connection.vendor)
        if sql != segment.sql:
            _must_run(sql)
            segment.sql = sql
            changes.append("SQL")
    if not changes:
        return segment
    segment.updated_by = user
    segment.save()
    _record(segment, user=user, change="Changed " + ", ".join(changes))
    return segment


def segment_rename(*, segment: Segment, user: Any, name: str) -> Segment:
    return segment_update(segment=segment, user=user, name=name)


@transaction.atomic
def segment_duplicate(*, segment: Segment, user: Any) -> Segment:
    if segment.kind == SegmentKind.SQL:
        require_may_author_sql(user)
    elif segment_reads_raw_identifiers(segment):
        require_may_author_definition(user, segment.definition)
    copy = Segment.objects.create(
        name=f"{segment.name} (copy)"[:MAX_NAME],
        description=segment.description,
        kind=segment.kind,
        definition=segment.definition,
        sql=segment.sql,
        status=SegmentStatus.DRAFT,
        created_by=user,
        updated_by=user,
    )
    _record(copy, user=user, change=f"Duplicated from “{segment.name}”")
    return copy


@transaction.atomic
def segment_delete(*, segment: Segment, user: Any) -> None:
    usages = segment_usages(segment)
    if usages:
        names = ", ".join(u.label for u in usages[:5])
        raise SegmentInUse(
            f"“{segment.name}” cannot be deleted while it is used by: {names}. "
            "Remove it there first."
        )
    segment.delete()


@transaction.atomic
def segment_activate(*, segment: Segment, user: Any) -> Segment:
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    if segment.status == SegmentStatus.ACTIVE:
        return segment
    try:
        _validate(segment)
        if segment.kind == SegmentKind.SQL:
            _must_run(segment.sql)  # an Active segment is one campaigns can deliver
    except DefinitionError as exc:
        raise SegmentError(f"Fix the conditions before activating: {exc}") from None
    except (ValueError, SegmentQueryError) as exc:
        raise SegmentError(f"Fix the SQL before activating: {exc}") from None
    segment.status = SegmentStatus.ACTIVE
    segment.updated_by = user
    segment.save()
    _record(segment, user=user, change="Activated")
    return segment


@transaction.atomic
def segment_deactivate(*, segment: Segment, user: Any) -> Segment:
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    if segment.status == SegmentStatus.DRAFT:
        return segment
    usages = segment_usages(segment)
    if usages:
        raise SegmentInUse(
            f"“{segment.name}” stays Active while it is used by: "
            + ", ".join(u.label for u in usages[:5])
        )
    segment.status = SegmentStatus.DRAFT
    segment.updated_by = user
    segment.save()
    _record(segment, user=user, change="Moved back to Draft")
    return segment


def segment_refresh_count_later(*, segment: Segment) -> None:
    """Count the members on a worker (after this transaction commits). A broker that cannot
    be reached is logged, never raised: the size stays unknown until the next refresh."""
    from segments.tasks import refresh_segment_size

    segment_id = segment.pk

    def enqueue() -> None:
        try:
            refresh_segment_size.delay(segment_id)
        except Exception:
            logger.warning("could not enqueue the count of segment %s", segment_id, exc_info=True)

    transaction.on_commit(enqueue)


def segment_refresh_count(*, segment: Segment) -> int:
    """Count the members now and remember it as the size at last refresh."""
    count = count_members(segment_members_sql(segment))
    Segment.objects.filter(pk=segment.pk).update(last_count=count, last_refreshed_at=timezone.now())
    segment.last_count, segment.last_refreshed_at = count, timezone.now()
    return count


@transaction.atomic
def segment_convert_to_sql(*, segment: Segment, user: Any) -> Segment:
    """A new Draft SQL segment holding the compiled SQL of a visual one, ready to edit."""
    if segment.kind != SegmentKind.VISUAL:
        raise SegmentError("This segment already is an SQL segment.")
    require_may_author_sql(user)
    compiled = compile_definition(segment.definition, segment_id=segment.pk)
    if "segments_customer_list_member" in compiled.sql:
        raise SegmentError(
            "Segments that use an uploaded id list cannot be converted to SQL: "
            "SQL segments read only customers, devices and orders."
        )
    sql = to_sql_segment(inline_params(compiled), vendor=connection.vendor)
    check_sql(sql, vendor=connection.vendor)
    copy = Segment.objects.create(
        name=f"{segment.name} (SQL)"[:MAX_NAME],
        description=segment.description,
        kind=SegmentKind.SQL,
        sql=sql,
        created_by=user,
        updated_by=user,
    )
    _record(copy, user=user, change=f"Converted to SQL from “{segment.name}”")
    return copy


@transaction.atomic
def segment_restore_version(*, segment: Segment, user: Any, number: int) -> Segment:
    version = segment.versions.filter(number=number).first()
    if version is None:
        raise SegmentError("That version does not exist.")
    if version.kind != segment.kind:
        raise SegmentError("That version is of another kind and cannot be restored here.")
    return segment_update(
        segment=segment,
        user=user,
        name=version.name,
        definition=version.definition if segment.kind == SegmentKind.VISUAL else None,
        sql=version.sql if segment.kind == SegmentKind.SQL else None,
    )


MAX_LIST_IDS = 1_000_000


def customer_list_create(*, user: Any, name: str, file: IO[bytes]) -> CustomerList:
    """Load an uploaded file of customer ids (one a line, or a CSV whose first column holds
    them; a header named customer_id is skipped). Streams in batches."""
    name = (name or "").strip()[:200]
    if not name:
        raise SegmentError("Give the list a name.")
    name = _checked_text(name, what="list name")
    try:
        text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        with transaction.atomic():
            customer_list = CustomerList.objects.create(name=name, created_by=user)
            seen = 0
            batch: list[CustomerListMember] = []
            for row_number, row in enumerate(reader, start=1):
                value = row[0].strip() if row else ""
                if not value or (row_number == 1 and value.lower() in ("customer_id", "id")):
                    continue
                if len(value) > 64 or "\x00" in value:
                    raise SegmentError(f"Line {row_number} does not hold a customer id.")
                batch.append(CustomerListMember(customer_list=customer_list, customer_id=value))
                seen += 1
                if seen > MAX_LIST_IDS:
                    raise SegmentError(f"A list may hold at most {MAX_LIST_IDS} ids.")
                if len(batch) >= 5000:
                    CustomerListMember.objects.bulk_create(batch, ignore_conflicts=True)
                    batch = []
            CustomerListMember.objects.bulk_create(batch, ignore_conflicts=True)
            size = customer_list.members.count()
            if not size:
                raise SegmentError("The file holds no customer ids.")
            known = Customer.objects.filter(
                customer_id__in=customer_list.members.values("customer_id")
            ).count()
            customer_list.size = size
            customer_list.unknown_ids = size - known
            customer_list.save(update_fields=["size", "unknown_ids"])
            return customer_list
    except UnicodeDecodeError:
        raise SegmentError("The file is not UTF-8 text.") from None
    except csv.Error:
        raise SegmentError("The file is not readable CSV.") from None


__all__ = [
    "ConditionError",
    "PiiRestricted",
    "SegmentError",
    "SegmentInUse",
    "SegmentInputError",
    "customer_list_create",
    "segment_activate",
    "segment_convert_to_sql",
    "segment_create",
    "segment_deactivate",
    "segment_delete",
    "segment_duplicate",
    "segment_refresh_count",
    "segment_rename",
    "segment_restore_version",
    "segment_update",
]
