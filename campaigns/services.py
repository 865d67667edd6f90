"""Every write to a campaign. Each editor step saves at once and records a CampaignEvent.

Lifecycle (``CampaignStateError`` on any other move)::

    DRAFT --schedule--> SCHEDULED --start_run--> RUNNING --finish_run(ok)--> DELIVERED
      ^                    |                        |  (recurring, more to come) -> SCHEDULED
      +----unschedule------+                        +--finish_run(not ok)--> ERROR
      +----unschedule (from ERROR, to fix and schedule again)
    DELIVERED --archive--> ARCHIVED;  delete: DRAFT / SCHEDULED;  duplicate: any

For the delivery worker: ``campaign_start_run(campaign)`` claims a due campaign with a
conditional UPDATE (raises ``CampaignStateError`` when another process got there first)
and ``campaign_finish_run(campaign, ok=..., reason=...)`` records the outcome and the next
``next_run_at``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from campaigns.models import (
    FULL_SPLIT,
    MAX_EXCLUDE,
    MAX_INCLUDE,
    MAX_SUB_AUDIENCES,
    MAX_TREATMENTS,
    Cadence,
    Campaign,
    CampaignDestination,
    CampaignEvent,
    CampaignStatus,
    EndMode,
    EventKind,
    RefreshMode,
    SubAudience,
    SubAudienceKind,
    TimingMode,
    Treatment,
    TreatmentDestination,
)
from campaigns.timing import default_launch_at, is_valid_timezone, next_occurrence
from destinations.models import (
    IDENTIFIER_ATTRIBUTES,
    DestinationAttribute,
    DestinationStatus,
    SourceTable,
)
from destinations.selectors import destinations_usable, source_columns
from destinations.services import destination_default_mapping
from segments.compiler import CompiledSQL, DefinitionError, compile_definition
from segments.inputs import InputRejected, check_definition_shape, text_problem
from segments.models import Segment, SegmentStatus
from segments.pii import PiiRestricted, require_may_author_definition

STEPS = (
    ("name", "Name"),
    ("audience", "Audience"),
    ("exclusions", "Exclusions"),
    ("sub_audiences", "Sub-audiences"),
    ("destinations", "Destinations"),
    ("attributes", "Edit attributes"),
    ("timing", "Timing"),
    ("launch", "Launch date"),
    ("schedule", "Schedule"),
)

# The customer store keeps a hash for these sources only (section 5.1).
IDENTIFIER_SOURCES: dict[str, tuple[str, str]] = {
    DestinationAttribute.EMAIL: (SourceTable.CUSTOMERS, "email"),
    DestinationAttribute.PHONE: (SourceTable.CUSTOMERS, "phone"),
    DestinationAttribute.IDFA: (SourceTable.DEVICES, "raw_id"),
    DestinationAttribute.AAID: (SourceTable.DEVICES, "raw_id"),
}
DEFAULT_TREATMENTS = (("Treatment A", False, 9_000), ("Control group", True, 1_000))

# Dates a campaign may use. Far outside them, adding a day or converting to another time
# zone overflows Python's datetime (year 9999), so they are refused when saved.
EARLIEST_DATE = dt.date(2000, 1, 1)
LATEST_DATE = dt.date(2099, 12, 31)


class CampaignError(Exception):
    """A change a person asked for that cannot be made; the message says why."""


class CampaignStateError(CampaignError):
    """The campaign's status does not allow this move."""


class CampaignValidationError(CampaignError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for msgs in errors.values() for m in msgs))
        self.errors = errors


def _record(campaign: Campaign, user: Any, kind: str, message: str) -> None:
    CampaignEvent.objects.create(campaign=campaign, actor=user, kind=kind, message=message)


def _touch(campaign: Campaign, user: Any, message: str, fields: Iterable[str] = ()) -> None:
    campaign.updated_by = user
    campaign.save(update_fields=[*fields, "updated_by", "updated_at"])
    _record(campaign, user, EventKind.CHANGED, message)


def _require_draft(campaign: Campaign) -> None:
    if campaign.status != CampaignStatus.DRAFT:
        raise CampaignStateError(
            f"This campaign is {campaign.get_status_display().lower()}: "
            + (
                "unschedule it before editing."
                if campaign.status == CampaignStatus.SCHEDULED
                else "it can no longer be edited."
            )
        )


def _text_errors(value: str, step: str, what: str) -> None:
    problem = text_problem(value)
    if problem:
        raise CampaignValidationError({step: [f"The {what} {problem}; remove it and try again."]})


def _clean_name(name: str, *, campaign: Campaign | None = None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise CampaignValidationError({"name": ["Give the campaign a name."]})
    _text_errors(name, "name", "name")
    if len(name) > 120:
        raise CampaignValidationError({"name": ["Keep the name to 120 characters or fewer."]})
    clash = Campaign.objects.filter(name__iexact=name).exclude(status=CampaignStatus.ARCHIVED)
    if campaign is not None:
        clash = clash.exclude(pk=campaign.pk)
    if clash.exists():
        raise CampaignValidationError({"name": [f"Another campaign is already called “{name}”."]})
    return name


def _add_default_treatments(sub: SubAudience) -> None:
    Treatment.objects.bulk_create(
        Treatment(sub_audience=sub, position=i, name=name, is_control=control, split_bp=bp)
        for i, (name, control, bp) in enumerate(DEFAULT_TREATMENTS)
    )


@transaction.atomic
def campaign_create(*, user: Any, name: str) -> Campaign:
    campaign = Campaign(name=_clean_name(name), created_by=user, updated_by=user)
    campaign.timezone = timezone.get_current_timezone_name()
    try:
        with transaction.atomic():
            campaign.save()
    except IntegrityError:
        raise CampaignValidationError({"name": ["Another campaign has that name."]}) from None
    remaining = SubAudience.objects.create(
        campaign=campaign, position=0, name="Remaining audience members", is_remaining=True
    )
    _add_default_treatments(remaining)
    _record(campaign, user, EventKind.CREATED, f"Created “{campaign.name}”")
    return campaign


@transaction.atomic
def campaign_update_name(*, campaign: Campaign, user: Any, name: str) -> Campaign:
    _require_draft(campaign)
    clean = _clean_name(name, campaign=campaign)
    if clean != campaign.name:
        old, campaign.name = campaign.name, clean
        _touch(campaign, user, f"Renamed from “{old}” to “{clean}”", ["name"])
    return campaign


def _active_segments(ids: Iterable[Any], step: str, limit: int) -> list[Segment]:
    try:
        wanted = {int(i) for i in ids if str(i).strip()}
    except (TypeError, ValueError):
        raise CampaignValidationError({step: ["Choose segments from the list."]}) from None
    if len(wanted) > limit:
        raise CampaignValidationError({step: [f"Choose at most {limit} segments."]})
    segments = list(Segment.objects.filter(pk__in=wanted, status=SegmentStatus.ACTIVE))
    if len(segments) != len(wanted):
        raise CampaignValidationError({step: ["Only Active segments can be used."]})
    return sorted(segments, key=lambda s: s.name)


def _names(segments: Iterable[Segment]) -> str:
    return ", ".join(s.name for s in segments) or "none"


@transaction.atomic
def campaign_update_audience(*, campaign: Campaign, user: Any, segment_ids: Iterable[Any]) -> None:
    _require_draft(campaign)
    segments = _active_segments(segment_ids, "audience", MAX_INCLUDE)
    campaign.include_segments.set(segments)
    _touch(campaign, user, f"Audience: include {_names(segments)}")


@transaction.atomic
def campaign_update_exclusions(
    *, campaign: Campaign, user: Any, segment_ids: Iterable[Any]
) -> None:
    _require_draft(campaign)
    segments = _active_segments(segment_ids, "exclusions", MAX_EXCLUDE)
    campaign.exclude_segments.set(segments)
    _touch(campaign, user, f"Exclusions: {_names(segments)}")


@transaction.atomic
def campaign_update_first_match(*, campaign: Campaign, user: Any, first_match_only: bool) -> None:
    _require_draft(campaign)
    if campaign.first_match_only != first_match_only:
        campaign.first_match_only = first_match_only
        state = "on" if first_match_only else "off"
        _touch(campaign, user, f"Assign to first match only: {state}", ["first_match_only"])


# -- sub-audiences -----------------------------------------------------------------------


def _sub_audience_source(
    kind: str, definition: Mapping | None, segment_id: Any, user: Any = None
) -> tuple[dict, Segment | None]:
    if kind == SubAudienceKind.SEGMENT:
        try:
            segment = Segment.objects.get(pk=int(segment_id), status=SegmentStatus.ACTIVE)
        except (TypeError, ValueError, Segment.DoesNotExist):
            raise CampaignValidationError(
                {"sub_audiences": ["Choose an Active segment."]}
            ) from None
        return {}, segment
    if kind != SubAudienceKind.CRITERIA:
        raise CampaignValidationError({"sub_audiences": ["Choose criteria or a saved segment."]})
    definition = dict(definition or {})
    try:
        check_definition_shape(definition)
    except InputRejected as exc:
        raise CampaignValidationError({"sub_audiences": [str(exc)]}) from None
    try:
        require_may_author_definition(user, definition)
    except PiiRestricted as exc:
        raise CampaignValidationError({"sub_audiences": [str(exc)]}) from None
    try:
        compile_definition(definition)
    except DefinitionError as exc:
        raise CampaignValidationError(
            {"sub_audiences": [f"The criteria are not valid: {exc}"]}
        ) from None
    return definition, None


def _sub_name(name: str, segment: Segment | None) -> str:
    name = " ".join((name or "").split()) or (segment.name if segment else "")
    if not name:
        raise CampaignValidationError({"sub_audiences": ["Give the sub-audience a name."]})
    _text_errors(name, "sub_audiences", "sub-audience name")
    return name[:120]


@transaction.atomic
def sub_audience_add(
    *,
    campaign: Campaign,
    user: Any,
    name: str,
    kind: str,
    definition: Mapping | None = None,
    segment_id: Any = None,
) -> SubAudience:
    _require_draft(campaign)
    groups = campaign.sub_audiences.filter(is_remaining=False)
    if groups.count() >= MAX_SUB_AUDIENCES:
        raise CampaignValidationError(
            {"sub_audiences": [f"A campaign has at most {MAX_SUB_AUDIENCES} sub-audiences."]}
        )
    clean_definition, segment = _sub_audience_source(kind, definition, segment_id, user)
    position = (groups.aggregate(m=Max("position"))["m"] or 0) + 1
    sub = SubAudience.objects.create(
        campaign=campaign,
        position=position,
        name=_sub_name(name, segment),
        kind=kind,
        definition=clean_definition,
        segment=segment,
    )
    _add_default_treatments(sub)
    _touch(campaign, user, f"Added sub-audience “{sub.name}”")
    return sub


@transaction.atomic
def sub_audience_update(
    *,
    sub_audience: SubAudience,
    user: Any,
    name: str,
    kind: str,
    definition: Mapping | None = None,
    segment_id: Any = None,
) -> SubAudience:
    campaign = sub_audience.campaign
    _require_draft(campaign)
    if sub_audience.is_remaining:
        raise CampaignError("The Remaining group is defined by the other sub-audiences.")
    clean_definition, segment = _sub_audience_source(kind, definition, segment_id, user)
    sub_audience.name = _sub_name(name, segment)
    sub_audience.kind, sub_audience.definition, sub_audience.segment = (
        kind,
        clean_definition,
        segment,
    )
    sub_audience.save()
    _touch(campaign, user, f"Changed sub-audience “{sub_audience.name}”")
    return sub_audience


@transaction.atomic
def sub_audience_remove(*, sub_audience: SubAudience, user: Any) -> None:
    campaign = sub_audience.campaign
    _require_draft(campaign)
    if sub_audience.is_remaining:
        raise CampaignError("The Remaining group cannot be removed.")
    name = sub_audience.name
    sub_audience.delete()
    _drop_unused_destinations(campaign)
    _touch(campaign, user, f"Removed sub-audience “{name}”")


@transaction.atomic
def campaign_reorder_sub_audiences(*, campaign: Campaign, user: Any, order: list[Any]) -> None:
    """Put the sub-audiences in the given order of ids (all of them, Remaining excluded)."""
    _require_draft(campaign)
    groups = {s.pk: s for s in campaign.sub_audiences.filter(is_remaining=False)}
    try:
        ids = [int(i) for i in order]
    except (TypeError, ValueError):
        raise CampaignValidationError({"sub_audiences": ["That order is not valid."]}) from None
    if sorted(ids) != sorted(groups):
        raise CampaignValidationError(
            {"sub_audiences": ["The sub-audiences changed meanwhile; reload the page."]}
        )
    for position, pk in enumerate(ids, start=1):
        groups[pk].position = position
    SubAudience.objects.bulk_update(groups.values(), ["position"])
    _touch(campaign, user, "Reordered sub-audiences: " + ", ".join(groups[i].name for i in ids))


def sub_audience_move(*, sub_audience: SubAudience, user: Any, offset: int) -> None:
    """Move one place up (-1) or down (+1): the keyboard alternative to drag and drop."""
    ids = list(
        sub_audience.campaign.sub_audiences.filter(is_remaining=False).values_list("pk", flat=True)
    )
    if sub_audience.pk not in ids:
        raise CampaignError("The Remaining group always comes last.")
    index = ids.index(sub_audience.pk)
    target = max(0, min(len(ids) - 1, index + offset))
    ids.insert(target, ids.pop(index))
    campaign_reorder_sub_audiences(campaign=sub_audience.campaign, user=user, order=ids)


# -- treatments --------------------------------------------------------------------------


def _parse_split(value: Any) -> int:
    try:
        percent = Decimal(str(value).strip().rstrip("%") or "0")
    except InvalidOperation:
        raise CampaignValidationError({"sub_audiences": ["A split is a percentage."]}) from None
    if not percent.is_finite() or percent < 0 or percent > 100:
        raise CampaignValidationError({"sub_audiences": ["A split is between 0 and 100%."]})
    if percent != percent.quantize(Decimal("0.01")):
        raise CampaignValidationError({"sub_audiences": ["Use at most 2 decimals in a split."]})
    return int(percent * 100)


@transaction.atomic
def treatment_add(*, sub_audience: SubAudience, user: Any) -> Treatment:
    campaign = sub_audience.campaign
    _require_draft(campaign)
    existing = list(sub_audience.treatments.all())
    if len(existing) >= MAX_TREATMENTS:
        raise CampaignValidationError(
            {"sub_audiences": [f"A group has at most {MAX_TREATMENTS} treatments."]}
        )
    taken = {t.name for t in existing}
    letter = next(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if f"Treatment {c}" not in taken)
    treatment = Treatment.objects.create(
        sub_audience=sub_audience,
        position=max((t.position for t in existing), default=-1) + 1,
        name=f"Treatment {letter}",
        split_bp=0,
    )
    # Splits that were even stay even (50/50 becomes 33.34/33.33/33.33); splits the person
    # chose stay as they are, with the new treatment at 0 % and "Split evenly" offered.
    splits = [t.split_bp for t in existing]
    if not splits or max(splits) - min(splits) <= 1:  # even, up to the remainder
        _split_evenly([*existing, treatment])
    _touch(campaign, user, f"Added “{treatment.name}” to “{sub_audience.name}”")
    return treatment


def _split_evenly(treatments: list[Treatment]) -> None:
    """Basis points shared as evenly as possible; the first treatments take the remainder."""
    share, extra = divmod(FULL_SPLIT, len(treatments))
    for index, treatment in enumerate(treatments):
        treatment.split_bp = share + (1 if index < extra else 0)
    Treatment.objects.bulk_update(treatments, ["split_bp"])


@transaction.atomic
def treatment_split_evenly(*, sub_audience: SubAudience, user: Any) -> None:
    """Give every treatment of a group the same share of it."""
    _require_draft(sub_audience.campaign)
    treatments = list(sub_audience.treatments.select_for_update().order_by("position", "id"))
    if not treatments:
        return
    _split_evenly(treatments)
    _touch(sub_audience.campaign, user, f"Split “{sub_audience.name}” evenly")


@transaction.atomic
def treatment_update(
    *,
    treatment: Treatment,
    user: Any,
    name: str | None = None,
    is_control: bool | None = None,
    split: Any = None,
) -> Treatment:
    sub = treatment.sub_audience
    campaign = sub.campaign
    _require_draft(campaign)
    changes = []
    if name is not None:
        clean = " ".join(name.split())[:120]
        if not clean:
            raise CampaignValidationError({"sub_audiences": ["Give the treatment a name."]})
        _text_errors(clean, "sub_audiences", "treatment name")
        if clean != treatment.name:
            changes.append(f"renamed to “{clean}”")
            treatment.name = clean
    if is_control is not None and is_control != treatment.is_control:
        treatment.is_control = is_control
        changes.append("control group" if is_control else "not a control group")
        if is_control:
            # A control group is held back: it is never sent.
            TreatmentDestination.objects.filter(treatment=treatment).delete()
    if split is not None:
        bp = _parse_split(split)
        if bp != treatment.split_bp:
            changes.append(f"split {Decimal(bp) / 100:.2f}%")
            treatment.split_bp = bp
    if changes:
        treatment.save()
        _drop_unused_destinations(campaign)
        _touch(
            campaign, user, f"Treatment “{treatment.name}” in “{sub.name}”: {', '.join(changes)}"
        )
    return treatment


@transaction.atomic
def treatment_remove(*, treatment: Treatment, user: Any) -> None:
    sub = treatment.sub_audience
    _require_draft(sub.campaign)
    if sub.treatments.count() <= 1:
        raise CampaignValidationError({"sub_audiences": ["A group keeps at least one treatment."]})
    name = treatment.name
    treatment.delete()
    _drop_unused_destinations(sub.campaign)
    _touch(sub.campaign, user, f"Removed treatment “{name}” from “{sub.name}”")


# -- destinations and attributes ---------------------------------------------------------


def default_attribute_mapping(destination: Any) -> list[dict]:
    return [
        {
            "destination_attribute": a.destination_attribute,
            "source_table": a.source_table,
            "source_attribute": a.source_attribute,
            "enabled": bool(a.enabled),
            "required": bool(a.required),
        }
        for a in destination_default_mapping(destination)
    ]


def _drop_unused_destinations(campaign: Campaign) -> None:
    campaign.campaign_destinations.filter(treatment_links__isnull=True).delete()


@transaction.atomic
def treatment_set_destinations(
    *, treatment: Treatment, user: Any, destination_ids: Iterable[Any]
) -> None:
    campaign = treatment.sub_audience.campaign
    _require_draft(campaign)
    try:
        wanted = {int(i) for i in destination_ids if str(i).strip()}
    except (TypeError, ValueError):
        raise CampaignValidationError(
            {"destinations": ["Choose destinations from the list."]}
        ) from None
    if wanted and treatment.is_control:
        raise CampaignValidationError(
            {"destinations": ["A control group is held back: it is not sent to destinations."]}
        )
    current = set(
        TreatmentDestination.objects.filter(treatment=treatment).values_list(
            "campaign_destination__destination_id", flat=True
        )
    )
    added = wanted - current
    usable = {d.pk: d for d in destinations_usable().filter(pk__in=added)}
    if len(usable) != len(added):
        raise CampaignValidationError(
            {"destinations": ["Only connected TikTok destinations can be chosen."]}
        )
    for pk in sorted(added):
        link, _ = CampaignDestination.objects.get_or_create(
            campaign=campaign,
            destination=usable[pk],
            defaults={"attribute_mapping": default_attribute_mapping(usable[pk])},
        )
        TreatmentDestination.objects.create(treatment=treatment, campaign_destination=link)
    TreatmentDestination.objects.filter(
        treatment=treatment, campaign_destination__destination_id__in=current - wanted
    ).delete()
    _drop_unused_destinations(campaign)
    names = ", ".join(
        CampaignDestination.objects.filter(
            campaign=campaign, treatment_links__treatment=treatment
        ).values_list("destination__name", flat=True)
    )
    _touch(campaign, user, f"Destinations of “{treatment.name}”: {names or 'none'}")


def mapping_errors(rows: list[Mapping[str, Any]]) -> list[str]:
    """Problems with an attribute mapping, in words; an empty list when it can be sent."""
    errors: list[str] = []
    seen: set[str] = set()
    columns: dict[str, list[str]] = {}
    for row in rows:
        attribute = str(row.get("destination_attribute", ""))
        if attribute not in DestinationAttribute.values:
            errors.append(f"“{attribute}” is not a TikTok attribute.")
            continue
        if attribute in seen:
            errors.append(f"{attribute} is mapped twice.")
        seen.add(attribute)
        table, column = str(row.get("source_table", "")), str(row.get("source_attribute", ""))
        if not row.get("enabled"):
            continue
        if attribute in IDENTIFIER_SOURCES:
            if (table, column) != IDENTIFIER_SOURCES[attribute]:
                want = ".".join(IDENTIFIER_SOURCES[attribute])
                errors.append(f"{attribute} is sent from {want} (its normalized hash).")
            continue
        if table not in (SourceTable.ORDERS, SourceTable.CUSTOMERS):
            errors.append(f"{attribute}: the source table must be orders or customers.")
            continue
        columns.setdefault(table, source_columns(table))
        if column not in columns[table]:
            errors.append(f"{attribute}: the {table} table has no column “{column}”.")
    if not any(r.get("enabled") and r.get("destination_attribute") in IDENTIFIER_ATTRIBUTES
               for r in rows):  # fmt: skip
        errors.append("Send at least one identifier (EMAIL, PHONE, IDFA or AAID).")
    return errors


@transaction.atomic
def campaign_destination_update(
    *,
    campaign_destination: CampaignDestination,
    user: Any,
    refresh_mode: str | None = None,
    mapping: list[Mapping[str, Any]] | None = None,
) -> CampaignDestination:
    campaign = campaign_destination.campaign
    _require_draft(campaign)
    name = campaign_destination.destination.name
    if refresh_mode is not None:
        if refresh_mode not in RefreshMode.values:
            raise CampaignValidationError({"destinations": ["Choose a refresh mode."]})
        if refresh_mode != campaign_destination.refresh_mode:
            campaign_destination.refresh_mode = refresh_mode
            campaign_destination.save(update_fields=["refresh_mode"])
            label = RefreshMode(refresh_mode).label.lower()
            _touch(campaign, user, f"{name}: {label}")
    if mapping is not None:
        known = {r["destination_attribute"]: r for r in campaign_destination.attribute_mapping}
        rows = [
            {
                "destination_attribute": str(r.get("destination_attribute", "")),
                "source_table": str(r.get("source_table", "")),
                "source_attribute": str(r.get("source_attribute", "")),
                "enabled": bool(r.get("enabled")),
                "required": bool(known.get(r.get("destination_attribute"), {}).get("required")),
            }
            for r in mapping
        ]
        errors = mapping_errors(rows)
        if errors:
            raise CampaignValidationError({"attributes": errors})
        campaign_destination.attribute_mapping = rows
        campaign_destination.save(update_fields=["attribute_mapping"])
        sent = ", ".join(r["destination_attribute"] for r in rows if r["enabled"])
        _touch(campaign, user, f"{name}: attributes sent {sent}")
    return campaign_destination


# -- timing and launch -------------------------------------------------------------------


def _out_of_range(value: dt.date | dt.datetime | None) -> bool:
    if value is None:
        return False
    day = value.date() if isinstance(value, dt.datetime) else value
    return not EARLIEST_DATE <= day <= LATEST_DATE


def _range_message(what: str) -> str:
    return f"The {what} must be between {EARLIEST_DATE:%Y-%m-%d} and {LATEST_DATE:%Y-%m-%d}."


def _date_range_errors(c: Campaign) -> list[str]:
    """Dates outside the supported range (also ones stored before this check existed)."""
    errors = []
    if c.timing_mode == TimingMode.ONE_TIME:
        if not c.asap and _out_of_range(c.run_at):
            errors.append(_range_message("delivery date"))
    else:
        if _out_of_range(c.start_date):
            errors.append(_range_message("start date"))
        if c.end_mode == EndMode.ON_DATE and _out_of_range(c.end_date):
            errors.append(_range_message("end date"))
    return errors


def _timing_errors(c: Campaign) -> list[str]:
    errors = _date_range_errors(c)
    if errors:
        return errors
    if not is_valid_timezone(c.timezone):
        errors.append("Choose a time zone from the list.")
    if c.timing_mode == TimingMode.ONE_TIME:
        if not c.asap and c.run_at is None:
            errors.append("Choose the delivery date and time, or Deliver ASAP.")
        return errors
    if c.start_date is None:
        errors.append("Choose the start date.")
    if c.time_of_day is None:
        errors.append("Choose the time of day.")
    if c.cadence == Cadence.WEEKLY and not c.weekdays:
        errors.append("Choose at least one weekday.")
    if c.cadence == Cadence.MONTHLY and not (c.month_day and 1 <= c.month_day <= 31):
        errors.append("Choose the day of the month (1–31).")
    if c.end_mode == EndMode.ON_DATE:
        if c.end_date is None:
            errors.append("Choose the end date.")
        elif c.start_date and c.end_date < c.start_date:
            errors.append("The end date comes before the start date.")
    if c.end_mode == EndMode.AFTER_N and not (c.end_count and c.end_count >= 1):
        errors.append("Say after how many deliveries the campaign ends (1 or more).")
    return errors


@transaction.atomic
def campaign_update_timing(*, campaign: Campaign, user: Any, **values: Any) -> Campaign:
    """Save the timing fields given (see ``TIMING_FIELDS``); structural problems are
    reported at once, dates in the past only when scheduling (drafts may wait)."""
    _require_draft(campaign)
    unknown = set(values) - set(TIMING_FIELDS)
    if unknown:
        raise CampaignError(f"Unknown timing fields: {', '.join(sorted(unknown))}")
    if values.get("timing_mode", campaign.timing_mode) not in TimingMode.values:
        raise CampaignValidationError({"timing": ["Choose one-time or recurring."]})
    if values.get("cadence", campaign.cadence) not in Cadence.values:
        raise CampaignValidationError({"timing": ["Choose daily, weekly or monthly."]})
    if values.get("end_mode", campaign.end_mode) not in EndMode.values:
        raise CampaignValidationError({"timing": ["Choose when the campaign ends."]})
    if "weekdays" in values:
        values["weekdays"] = sorted({int(d) for d in values["weekdays"] if 0 <= int(d) <= 6})
    ranges = {"run_at": "delivery date", "start_date": "start date", "end_date": "end date"}
    for field, what in ranges.items():
        if _out_of_range(values.get(field)):
            raise CampaignValidationError({"timing": [_range_message(what)]})
    for field, value in values.items():
        setattr(campaign, field, value)
    if not is_valid_timezone(campaign.timezone):
        raise CampaignValidationError({"timing": ["Choose a time zone from the list."]})
    campaign.updated_by = user
    campaign.save()
    _record(campaign, user, EventKind.CHANGED, f"Timing: {timing_summary(campaign)}")
    return campaign


TIMING_FIELDS = (
    "timing_mode",
    "asap",
    "run_at",
    "cadence",
    "weekdays",
    "month_day",
    "time_of_day",
    "timezone",
    "start_date",
    "end_mode",
    "end_date",
    "end_count",
)


def timing_summary(c: Campaign) -> str:
    if c.timing_mode == TimingMode.ONE_TIME:
        if c.asap:
            return "one-time, as soon as possible"
        if not c.run_at:
            return "one-time, date and time not chosen yet"
        try:
            return f"one-time at {timezone.localtime(c.run_at).strftime('%Y-%m-%d %H:%M %Z')}"
        except OverflowError:
            return "one-time, at a date out of range"
    days = {0: "Mon", 1: "Tue", 2: "Wed", 3: "Thu", 4: "Fri", 5: "Sat", 6: "Sun"}
    weekdays = ", ".join(days[d] for d in c.weekdays) or "(no day chosen)"
    cadence = {
        Cadence.DAILY: "daily",
        Cadence.WEEKLY: f"weekly on {weekdays}",
        Cadence.MONTHLY: f"monthly on day {c.month_day or '(not chosen)'}",
    }[Cadence(c.cadence)]
    at = c.time_of_day.strftime("%H:%M") if c.time_of_day else "(time not chosen)"
    end = {
        EndMode.NEVER: "no end",
        EndMode.ON_DATE: f"until {c.end_date or '(date not chosen)'}",
        EndMode.AFTER_N: f"{c.end_count or '(number not chosen)'} deliveries",
    }[EndMode(c.end_mode)]
    start = c.start_date or "(start not chosen)"
    return f"recurring {cadence} at {at} {c.timezone}, from {start}, {end}"


@transaction.atomic
def campaign_update_launch(
    *, campaign: Campaign, user: Any, launch_at: dt.datetime | None
) -> Campaign:
    _require_draft(campaign)
    if _out_of_range(launch_at):
        raise CampaignValidationError({"launch": [_range_message("launch date")]})
    campaign.launch_at = launch_at
    when = launch_at.isoformat(" ", "minutes") if launch_at else "first delivery + 1 day"
    _touch(campaign, user, f"Launch date: {when}", ["launch_at"])
    return campaign


def effective_launch_at(campaign: Campaign, now: dt.datetime | None = None) -> dt.datetime | None:
    return campaign.launch_at or default_launch_at(campaign, now or timezone.now())


# -- validation and lifecycle ------------------------------------------------------------


def campaign_validate(campaign: Campaign, now: dt.datetime | None = None) -> dict[str, list[str]]:
    """Every problem that stops scheduling, keyed by editor step."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}

    def add(step: str, message: str) -> None:
        errors.setdefault(step, []).append(message)

    if not campaign.name.strip():
        add("name", "Give the campaign a name.")
    include = list(campaign.include_segments.all())
    if not include:
        add("audience", "Include at least one Active segment.")
    for step, segments in (("audience", include), ("exclusions", campaign.exclude_segments.all())):
        for segment in segments:
            if segment.status != SegmentStatus.ACTIVE:
                add(step, f"Segment “{segment.name}” is no longer Active.")
    subs = list(campaign.sub_audiences.select_related("segment").prefetch_related("treatments"))
    sent_somewhere = False
    links = {
        (link.treatment_id, link.campaign_destination_id)
        for link in TreatmentDestination.objects.filter(treatment__sub_audience__campaign=campaign)
    }
    for sub in subs:
        if sub.kind == SubAudienceKind.SEGMENT and not sub.is_remaining:
            if sub.segment is None or sub.segment.status != SegmentStatus.ACTIVE:
                add("sub_audiences", f"“{sub.name}”: its segment is not Active.")
        elif not sub.is_remaining:
            try:
                compile_definition(sub.definition or {})
            except DefinitionError as exc:
                add("sub_audiences", f"“{sub.name}”: {exc}")
        treatments = list(sub.treatments.all())
        total = sum(t.split_bp for t in treatments)
        if total != FULL_SPLIT:
            add(
                "sub_audiences",
                f"“{sub.name}”: splits total {Decimal(total) / 100:.2f}%, they must total 100%.",
            )
        sent_somewhere |= any(
            not t.is_control and any(tid == t.pk for tid, _ in links) for t in treatments
        )
    if not sent_somewhere:
        add("destinations", "Send at least one non-control treatment to a destination.")
    for link in campaign.campaign_destinations.select_related("destination"):
        destination = link.destination
        if destination.status != DestinationStatus.CONNECTED:
            add(
                "destinations",
                f"“{destination.name}” is {destination.get_status_display().lower()}: "
                "an operator must reconnect it first.",
            )
        for message in mapping_errors(link.attribute_mapping):
            add("attributes", f"{destination.name}: {message}")
    for message in _timing_errors(campaign):
        add("timing", message)
    if _out_of_range(campaign.launch_at):
        add("launch", _range_message("launch date"))
    if "timing" not in errors:
        if campaign.timing_mode == TimingMode.ONE_TIME and not campaign.asap:
            if campaign.run_at and campaign.run_at <= now:
                add("timing", "The delivery time is in the past.")
        elif campaign.timing_mode == TimingMode.RECURRING:
            if (
                campaign.end_mode == EndMode.ON_DATE
                and campaign.end_date
                and (
                    campaign.end_date <= campaign.start_date  # type: ignore[operator]
                )
            ):
                add("timing", "The end date must come after the start date.")
            elif next_occurrence(campaign, now) is None:
                add("timing", "This schedule has no delivery in the future.")
        first = next_occurrence(campaign, now)
        if campaign.launch_at and first and campaign.launch_at < first:
            add("launch", "The launch date comes before the first delivery.")
        if campaign.launch_at and campaign.launch_at <= now:
            add("launch", "The launch date is in the past.")
    return errors


def campaign_segment_problems(campaign: Campaign) -> dict[str, list[str]]:
    """Segments of the campaign that cannot run today, keyed by the editor step using them.

    Each segment's query is planned by the database without reading rows (``LIMIT 0``): a
    column or table that no longer exists, a type error in the SQL or a statement timeout
    shows here, at Schedule, instead of failing the delivery later. An SQL segment is
    evaluated behind its fence first (``segments.fence``; a recent evaluation is reused).
    The delivery snapshot calls this too, to name the segment that made it fail.
    """
    from segments.fence import SegmentQueryError
    from segments.runner import fetch_all
    from segments.selectors import definition_members_sql, segment_members_sql
    from segments.sqlcheck import SqlSegmentError

    errors: dict[str, list[str]] = {}
    seen: dict[int, str | None] = {}

    def problem(compile_: Any) -> str | None:
        try:
            compiled = compile_()
            fetch_all(CompiledSQL(f"SELECT 1 FROM ({compiled.sql}) q LIMIT 0", compiled.params))
        except (DefinitionError, SqlSegmentError, SegmentQueryError) as exc:
            return str(exc).rstrip(".")
        return None

    def check(step: str, segment: Segment | None, label: str) -> None:
        if segment is None or segment.status != SegmentStatus.ACTIVE:
            return  # campaign_validate already says so
        if segment.pk not in seen:
            seen[segment.pk] = problem(partial(segment_members_sql, segment))
        if seen[segment.pk]:
            errors.setdefault(step, []).append(
                f"{label}segment “{segment.name}” cannot run today: {seen[segment.pk]}. Fix "
                "the segment or choose another one."
            )

    for segment in campaign.include_segments.all():
        check("audience", segment, "The ")
    for segment in campaign.exclude_segments.all():
        check("exclusions", segment, "The ")
    for sub in campaign.sub_audiences.select_related("segment"):
        if sub.is_remaining:
            continue
        if sub.kind == SubAudienceKind.SEGMENT:
            check("sub_audiences", sub.segment, f"“{sub.name}”: the ")
        elif message := problem(partial(definition_members_sql, dict(sub.definition or {}))):
            errors.setdefault("sub_audiences", []).append(
                f"“{sub.name}”: its criteria cannot run today: {message}."
            )
    return errors


def _claim(campaign: Campaign, source: Iterable[str], **changes: Any) -> bool:
    """Move the status with a conditional UPDATE; False when the row was not in `source`."""
    changes.setdefault("updated_at", timezone.now())
    done = Campaign.objects.filter(pk=campaign.pk, status__in=list(source)).update(**changes)
    campaign.refresh_from_db()
    return bool(done)


@transaction.atomic
def campaign_schedule(*, campaign: Campaign, user: Any, now: dt.datetime | None = None) -> Campaign:
    now = now or timezone.now()
    if campaign.status != CampaignStatus.DRAFT:
        raise CampaignStateError("Only a draft can be scheduled.")
    errors = campaign_validate(campaign, now)
    if not errors:
        # Only now: it runs each segment's SQL, so the editor's live checks skip it.
        errors = campaign_segment_problems(campaign)
    if errors:
        raise CampaignValidationError(errors)
    first = next_occurrence(campaign, now)
    if not _claim(
        campaign,
        [CampaignStatus.DRAFT],
        status=CampaignStatus.SCHEDULED,
        next_run_at=first,
        error_reason="",
        updated_by=user,
    ):
        raise CampaignStateError("The campaign changed meanwhile; reload the page.")
    when = "as soon as possible" if campaign.asap and not campaign.is_recurring else first
    _record(campaign, user, EventKind.SCHEDULED, f"Scheduled: first delivery {when}")
    return campaign


@transaction.atomic
def campaign_unschedule(*, campaign: Campaign, user: Any) -> Campaign:
    if campaign.status == CampaignStatus.RUNNING:
        raise CampaignStateError("A delivery is running: wait for it to finish.")
    if not _claim(
        campaign,
        [CampaignStatus.SCHEDULED, CampaignStatus.ERROR],
        status=CampaignStatus.DRAFT,
        next_run_at=None,
        updated_by=user,
    ):
        raise CampaignStateError("Only a scheduled campaign (or one in error) can be unscheduled.")
    _record(campaign, user, EventKind.UNSCHEDULED, "Unscheduled for editing")
    return campaign


@transaction.atomic
def campaign_delete(*, campaign: Campaign, user: Any) -> None:
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise CampaignStateError("Only drafts and scheduled campaigns can be deleted.")
    Campaign.objects.filter(pk=campaign.pk, status=campaign.status).delete()


@transaction.atomic
def campaign_archive(*, campaign: Campaign, user: Any) -> Campaign:
    if not _claim(campaign, [CampaignStatus.DELIVERED], status=CampaignStatus.ARCHIVED):
        raise CampaignStateError("Only delivered campaigns can be archived.")
    _record(campaign, user, EventKind.ARCHIVED, "Archived")
    return campaign


def _copy_name(name: str) -> str:
    base = f"Copy of {name}"[:110]
    candidate, n = base, 2
    live = Campaign.objects.exclude(status=CampaignStatus.ARCHIVED)
    while live.filter(name__iexact=candidate).exists():
        candidate, n = f"{base} ({n})", n + 1
    return candidate


@transaction.atomic
def campaign_duplicate(*, campaign: Campaign, user: Any) -> Campaign:
    copy = Campaign.objects.create(
        name=_copy_name(campaign.name),
        first_match_only=campaign.first_match_only,
        created_by=user,
        updated_by=user,
        **{f: getattr(campaign, f) for f in TIMING_FIELDS},
    )
    copy.include_segments.set(campaign.include_segments.all())
    copy.exclude_segments.set(campaign.exclude_segments.all())
    links: dict[int, CampaignDestination] = {}
    for link in campaign.campaign_destinations.all():
        links[link.pk] = CampaignDestination.objects.create(
            campaign=copy,
            destination_id=link.destination_id,
            refresh_mode=link.refresh_mode,
            attribute_mapping=link.attribute_mapping,
        )
    old_links = TreatmentDestination.objects.filter(treatment__sub_audience__campaign=campaign)
    by_treatment: dict[int, list[int]] = {}
    for row in old_links:
        by_treatment.setdefault(row.treatment_id, []).append(row.campaign_destination_id)
    for sub in campaign.sub_audiences.prefetch_related("treatments"):
        new_sub = SubAudience.objects.create(
            campaign=copy,
            position=sub.position,
            name=sub.name,
            kind=sub.kind,
            definition=sub.definition,
            segment_id=sub.segment_id,
            is_remaining=sub.is_remaining,
        )
        for t in sub.treatments.all():
            new_t = Treatment.objects.create(
                sub_audience=new_sub,
                position=t.position,
                name=t.name,
                is_control=t.is_control,
                split_bp=t.split_bp,
            )
            TreatmentDestination.objects.bulk_create(
                TreatmentDestination(treatment=new_t, campaign_destination=links[cd])
                for cd in by_treatment.get(t.pk, [])
            )
    _record(copy, user, EventKind.DUPLICATED, f"Duplicated from “{campaign.name}”")
    return copy


def campaign_start_run(campaign: Campaign, *, now: dt.datetime | None = None) -> Campaign:
    """SCHEDULED → RUNNING for the delivery worker; CampaignStateError if another process
    claimed it first or it was unscheduled meanwhile."""
    with transaction.atomic():
        if not _claim(
            campaign, [CampaignStatus.SCHEDULED], status=CampaignStatus.RUNNING, error_reason=""
        ):
            raise CampaignStateError("Not scheduled any more (another worker got there first?).")
        _record(campaign, None, EventKind.STARTED, "Delivery started")
    return campaign


def campaign_finish_run(
    campaign: Campaign, *, ok: bool, reason: str = "", now: dt.datetime | None = None
) -> Campaign:
    """RUNNING → DELIVERED (one-time, or a recurring campaign at its end), → SCHEDULED with
    the next ``next_run_at`` (recurring), or → ERROR with the reason."""
    now = now or timezone.now()
    with transaction.atomic():
        current = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if current.status != CampaignStatus.RUNNING:
            raise CampaignStateError("No delivery of this campaign is running.")
        if not ok:
            _claim(
                current,
                [CampaignStatus.RUNNING],
                status=CampaignStatus.ERROR,
                error_reason=reason or "The delivery failed.",
                next_run_at=None,
            )
            _record(current, None, EventKind.FAILED, f"Delivery failed: {current.error_reason}")
            campaign.refresh_from_db()
            return campaign
        current.deliveries_done += 1
        # A missed slot runs once: the next one is after now, not after the missed one.
        after = max(now, current.next_run_at or now)
        upcoming = next_occurrence(current, after) if current.is_recurring else None
        _claim(
            current,
            [CampaignStatus.RUNNING],
            status=CampaignStatus.SCHEDULED if upcoming else CampaignStatus.DELIVERED,
            next_run_at=upcoming,
            deliveries_done=F("deliveries_done") + 1,
            last_run_at=now,
            error_reason="",
        )
        message = f"Delivery {current.deliveries_done} finished"
        if upcoming:
            message += f"; next delivery {upcoming.isoformat(' ', 'minutes')}"
        _record(current, None, EventKind.DELIVERED, message)
    campaign.refresh_from_db()
    return campaign
