"""Campaign pages: the list and the one-page editor with its nine steps.

Every write is a POST answered with the editor body (``campaigns/edit.html#editor``) when
htmx asks, or a redirect to the editor otherwise, so each step also works on a full reload.
Counts are loaded separately (``campaigns:counts``, out-of-band swaps) after each change,
so saving never waits for a count over a million customers.

The delivery app renders its progress and history in ``<section id="deliveries">`` on the
editor page (``deliveries:campaign_panel``, loaded with htmx when that url exists).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import (
    HttpResponseClientRedirect,
    reswap,
    retarget,
    trigger_client_event,
)

from accounts.permissions import marketer_required, viewer_required
from campaigns import services
from campaigns.forms import CampaignNameForm, LaunchForm, TimingForm, timezone_choices
from campaigns.models import (
    WEEKDAYS,
    Cadence,
    Campaign,
    CampaignDestination,
    CampaignStatus,
    EndMode,
    RefreshMode,
    SubAudience,
    SubAudienceKind,
    TimingMode,
    Treatment,
    TreatmentDestination,
)
from campaigns.selectors import (
    campaign_authors,
    campaign_counts,
    campaign_history,
    campaign_list,
    delivery_summary_estimate,
)
from campaigns.services import STEPS, CampaignError, CampaignValidationError
from campaigns.timing import next_occurrence, zone
from destinations.models import IDENTIFIER_ATTRIBUTES, SourceTable
from destinations.selectors import destination_warnings, destinations_usable, source_columns
from segments.editor import EditorInputError, editor_context, parse_definition
from segments.models import empty_definition
from segments.pii import (
    definition_reads_raw_identifiers,
    is_restricted,
    segment_reads_raw_identifiers,
)
from segments.selectors import active_segments

CHANGED = "campaign:changed"


def _get_campaign(request: HttpRequest, pk: int, *, edit: bool = False) -> Campaign:
    campaign = get_object_or_404(Campaign, pk=pk)
    if edit and not request.user.can_edit:  # type: ignore[union-attr]
        raise PermissionDenied("Viewers cannot change campaigns.")
    return campaign


def _get_sub(request: HttpRequest, pk: int, sid: int) -> SubAudience:
    _get_campaign(request, pk, edit=True)
    return get_object_or_404(SubAudience.objects.select_related("campaign"), pk=sid, campaign_id=pk)


def _get_treatment(request: HttpRequest, pk: int, tid: int) -> Treatment:
    _get_campaign(request, pk, edit=True)
    return get_object_or_404(
        Treatment.objects.select_related("sub_audience__campaign"),
        pk=tid,
        sub_audience__campaign_id=pk,
    )


# -- list --------------------------------------------------------------------------------


@require_GET
@viewer_required
def campaign_list_view(request: HttpRequest) -> HttpResponse:
    filters = {k: request.GET.get(k, "")[:40] for k in ("status", "cadence", "destination",
                                                         "author")}  # fmt: skip
    campaigns = campaign_list(**filters)
    from destinations.selectors import destinations_visible

    context = {
        "campaigns": campaigns,
        "filters": filters,
        "statuses": CampaignStatus.choices,
        "cadences": [("one_time", "One-time"), *Cadence.choices],
        "destinations": destinations_visible(),
        "authors": campaign_authors(),
    }
    return render(request, "campaigns/list.html", context)


@require_http_methods(["GET", "POST"])
@marketer_required
def campaign_new(request: HttpRequest) -> HttpResponse:
    form = CampaignNameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(user=request.user, name=form.cleaned_data["name"])
        except CampaignValidationError as exc:
            form.add_error("name", exc.errors.get("name", [str(exc)])[0])
        else:
            return redirect("campaigns:edit", pk=campaign.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "campaigns/new.html", {"form": form}, status=status)


# -- the editor --------------------------------------------------------------------------


def _deliveries_url(campaign: Campaign) -> str:
    try:
        return reverse("deliveries:campaign_panel", args=[campaign.pk])
    except NoReverseMatch:
        return ""


def _local(value: dt.datetime | None, tz: str) -> dt.datetime | None:
    """`value` in the campaign's zone; None when it cannot be shown there (a date near
    year 9999 stored before such dates were refused), so the page still renders."""
    if value is None:
        return None
    try:
        return value.astimezone(zone(tz))
    except (OverflowError, ValueError):
        return None


def _day_after(value: dt.datetime | None) -> dt.datetime | None:
    try:
        return value + dt.timedelta(days=1) if value else None
    except OverflowError:
        return None


def _steps_done(campaign: Campaign, issues: dict[str, list[str]]) -> dict[str, bool]:
    """A step is ✓ only when it is really complete: no problem in it, something chosen
    where the step is about choosing, and the steps it builds on complete."""
    ok = {key: key not in issues for key, _label in STEPS}
    return {
        "name": ok["name"],
        "audience": ok["audience"],
        "exclusions": ok["exclusions"] and campaign.exclude_segments.exists(),
        "sub_audiences": ok["sub_audiences"] and ok["audience"],
        "destinations": ok["destinations"] and campaign.campaign_destinations.exists(),
        "attributes": ok["attributes"] and ok["destinations"]
        and campaign.campaign_destinations.exists(),
        "timing": ok["timing"]
        and (campaign.asap or campaign.run_at is not None or campaign.timing_mode != "one_time"),
        "launch": ok["launch"] and ok["timing"],
        "schedule": not campaign.is_editable,
    }  # fmt: skip


def _editor_context(
    request: HttpRequest,
    campaign: Campaign,
    *,
    errors: dict[str, list[str]] | None = None,
    open_sub: str = "",
    sub_form: dict | None = None,
) -> dict[str, Any]:
    now = timezone.now()
    issues = services.campaign_validate(campaign, now)
    subs = list(campaign.sub_audiences.select_related("segment").prefetch_related("treatments"))
    links = TreatmentDestination.objects.filter(
        treatment__sub_audience__campaign=campaign
    ).values_list("treatment_id", "campaign_destination__destination_id")
    chosen: dict[int, set[int]] = {}
    for treatment_id, destination_id in links:
        chosen.setdefault(treatment_id, set()).add(destination_id)
    campaign_destinations = list(campaign.campaign_destinations.select_related("destination"))
    usable = list(destinations_usable())
    editable = campaign.is_editable and request.user.can_edit  # type: ignore[union-attr]
    first = next_occurrence(campaign, now) if "timing" not in issues else None
    errors = errors or {}
    done = _steps_done(campaign, issues)
    steps = [
        {
            "key": key,
            "number": n,
            "label": label,
            "done": done[key],
            "optional": key == "exclusions" and not done[key] and key not in issues,
            "issues": issues.get(key, []),
            "errors": errors.get(key, []),
        }
        for n, (key, label) in enumerate(STEPS, start=1)
    ]
    return {
        "campaign": campaign,
        "editable": editable,
        "can_edit": request.user.can_edit,  # type: ignore[union-attr]
        "steps": {s["key"]: s for s in steps},
        "issues": [(s["label"], s["key"], s["issues"]) for s in steps if s["issues"]],
        "errors": errors,
        "include_ids": {s.pk for s in campaign.include_segments.all()},
        "exclude_ids": {s.pk for s in campaign.exclude_segments.all()},
        "segments": list(active_segments()),
        "subs": [s for s in subs if not s.is_remaining],
        "remaining": next((s for s in subs if s.is_remaining), None),
        "chosen": chosen,
        "usable_destinations": usable,
        "campaign_destinations": campaign_destinations,
        "destination_warnings": destination_warnings(
            cd.destination for cd in campaign_destinations
        ),
        "refresh_modes": RefreshMode.choices,
        "open_sub": open_sub,
        "sub_form": sub_form,
        "timing_modes": TimingMode.choices,
        "cadences": Cadence.choices,
        "weekdays": WEEKDAYS,
        "end_modes": EndMode.choices,
        "timezones": timezone_choices(),
        "run_at_local": _local(campaign.run_at, campaign.timezone),
        "launch_local": _local(campaign.launch_at, campaign.timezone),
        "default_launch": _local(_day_after(first), campaign.timezone),
        "first_delivery": _local(first, campaign.timezone),
        "next_run_local": _local(campaign.next_run_at, campaign.timezone),
        "deliveries_url": _deliveries_url(campaign),
        "summary": services.timing_summary(campaign),
    }


def _render_editor(
    request: HttpRequest, campaign: Campaign, *, status: int = 200, **kwargs: Any
) -> HttpResponse:
    campaign.refresh_from_db()
    context = _editor_context(request, campaign, **kwargs)
    template = "campaigns/edit.html#editor" if request.htmx else "campaigns/edit.html"  # type: ignore[attr-defined]
    response = render(request, template, context, status=status)
    return trigger_client_event(response, CHANGED, after="settle")


def _saved(
    request: HttpRequest, campaign: Campaign, action: Callable[[], Any], **kwargs: Any
) -> HttpResponse:
    """Run one service call; answer with the editor, showing the step's error if any."""
    try:
        action()
    except CampaignValidationError as exc:
        return _render_editor(request, campaign, errors=exc.errors, status=422, **kwargs)
    except CampaignError as exc:
        return _render_editor(request, campaign, errors={"general": [str(exc)]}, status=409)
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect("campaigns:edit", pk=campaign.pk)
    return _render_editor(request, campaign)


def editing(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """POST-only, marketer or above, with the campaign loaded for editing."""

    @wraps(view)
    @require_POST
    @marketer_required
    def wrapped(request: HttpRequest, pk: int, *args: Any, **kwargs: Any) -> HttpResponse:
        return view(request, _get_campaign(request, pk, edit=True), *args, **kwargs)

    return wrapped


@require_GET
@viewer_required
@vary_on_headers("HX-Request")
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _get_campaign(request, pk)
    open_sub = request.GET.get("sub", "")[:12]
    sub_form = None
    if open_sub and campaign.is_editable and request.user.can_edit:  # type: ignore[union-attr]
        sub_form = _sub_form(campaign, open_sub, restricted=is_restricted(request.user))
    context = _editor_context(request, campaign, open_sub=open_sub, sub_form=sub_form)
    template = "campaigns/edit.html#editor" if request.htmx else "campaigns/edit.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@editing
def campaign_name(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    name = request.POST.get("name", "")
    return _saved(
        request,
        campaign,
        lambda: services.campaign_update_name(campaign=campaign, user=request.user, name=name),
    )


@editing
def campaign_audience(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    def save() -> None:
        errors: dict[str, list[str]] = {}
        for key, service in (("include", services.campaign_update_audience),
                             ("exclude", services.campaign_update_exclusions)):  # fmt: skip
            if f"{key}_present" not in request.POST:
                continue
            try:
                service(campaign=campaign, user=request.user,
                        segment_ids=request.POST.getlist(key))  # fmt: skip
            except CampaignValidationError as exc:
                errors.update(exc.errors)
        if errors:
            raise CampaignValidationError(errors)

    return _saved(request, campaign, save)


@editing
def campaign_first_match(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    value = request.POST.get("first_match_only") == "on"
    return _saved(
        request,
        campaign,
        lambda: services.campaign_update_first_match(
            campaign=campaign, user=request.user, first_match_only=value
        ),
    )


# -- sub-audiences -----------------------------------------------------------------------


def _sub_form(
    campaign: Campaign, which: str, *, posted: dict | None = None, restricted: bool = False
) -> dict:
    """The add / edit form of a sub-audience, with the inline segment editor."""
    sub = None
    if which.isascii() and which.isdecimal():
        sub = campaign.sub_audiences.filter(pk=int(which), is_remaining=False).first()
    values = posted or {
        "name": sub.name if sub else "",
        "kind": sub.kind if sub else SubAudienceKind.CRITERIA,
        "segment_id": sub.segment_id if sub else None,
        "definition": (sub.definition if sub and sub.definition else empty_definition()),
    }
    return {
        "sub": sub,
        "values": values,
        "editor": editor_context(
            values["definition"],
            field_name="criteria",
            prefix=f"sub{which}-",
            restricted=restricted,
        ),
        "action": (
            reverse("campaigns:sub_update", args=[campaign.pk, sub.pk])
            if sub
            else reverse("campaigns:sub_add", args=[campaign.pk])
        ),
    }


def _save_sub(request: HttpRequest, campaign: Campaign, sub: SubAudience | None) -> HttpResponse:
    kind = request.POST.get("kind", SubAudienceKind.CRITERIA)
    values = {
        "name": request.POST.get("name", ""),
        "kind": kind,
        "segment_id": request.POST.get("segment_id") or None,
        "definition": empty_definition(),
    }
    which = str(sub.pk) if sub else "new"
    try:
        if kind == SubAudienceKind.CRITERIA:
            values["definition"] = parse_definition(request.POST.get("criteria"))
        if sub is None:
            services.sub_audience_add(campaign=campaign, user=request.user, **values)
        else:
            services.sub_audience_update(sub_audience=sub, user=request.user, **values)
    except (EditorInputError, CampaignValidationError) as exc:
        errors = getattr(exc, "errors", None) or {"sub_audiences": [str(exc)]}
        return _render_editor(
            request, campaign, errors=errors, status=422, open_sub=which,
            sub_form=_sub_form(
                campaign, which, posted=values, restricted=is_restricted(request.user)
            ),
        )  # fmt: skip
    except CampaignError as exc:
        return _render_editor(request, campaign, errors={"general": [str(exc)]}, status=409)
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect("campaigns:edit", pk=campaign.pk)
    return _render_editor(request, campaign)


@editing
def sub_add(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    return _save_sub(request, campaign, None)


@editing
def sub_update(request: HttpRequest, campaign: Campaign, sid: int) -> HttpResponse:
    return _save_sub(request, campaign, get_object_or_404(SubAudience, pk=sid, campaign=campaign))


@editing
def sub_remove(request: HttpRequest, campaign: Campaign, sid: int) -> HttpResponse:
    sub = get_object_or_404(SubAudience, pk=sid, campaign=campaign)
    return _saved(
        request, campaign, lambda: services.sub_audience_remove(sub_audience=sub, user=request.user)
    )


@editing
def sub_move(request: HttpRequest, campaign: Campaign, sid: int) -> HttpResponse:
    sub = get_object_or_404(SubAudience, pk=sid, campaign=campaign)
    offset = -1 if request.POST.get("direction") == "up" else 1
    return _saved(
        request,
        campaign,
        lambda: services.sub_audience_move(sub_audience=sub, user=request.user, offset=offset),
    )


@editing
def sub_reorder(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    order = request.POST.getlist("order")
    return _saved(
        request,
        campaign,
        lambda: services.campaign_reorder_sub_audiences(
            campaign=campaign, user=request.user, order=order
        ),
    )


# -- treatments and destinations ---------------------------------------------------------


@editing
def treatment_add(request: HttpRequest, campaign: Campaign, sid: int) -> HttpResponse:
    sub = get_object_or_404(SubAudience, pk=sid, campaign=campaign)
    return _saved(
        request, campaign, lambda: services.treatment_add(sub_audience=sub, user=request.user)
    )


@editing
def treatment_split_evenly(request: HttpRequest, campaign: Campaign, sid: int) -> HttpResponse:
    sub = get_object_or_404(SubAudience, pk=sid, campaign=campaign)
    return _saved(
        request,
        campaign,
        lambda: services.treatment_split_evenly(sub_audience=sub, user=request.user),
    )


@editing
def treatment_update(request: HttpRequest, campaign: Campaign, tid: int) -> HttpResponse:
    treatment = get_object_or_404(Treatment, pk=tid, sub_audience__campaign=campaign)
    post = request.POST

    def save() -> None:
        services.treatment_update(
            treatment=treatment,
            user=request.user,
            name=post.get("name"),
            is_control=(post.get("is_control") == "on") if "control_present" in post else None,
            split=post.get("split"),
        )
        if "destinations_present" in post:
            treatment.refresh_from_db()
            services.treatment_set_destinations(
                treatment=treatment, user=request.user,
                destination_ids=[] if treatment.is_control else post.getlist("destinations"),
            )  # fmt: skip

    return _saved(request, campaign, save)


@editing
def treatment_remove(request: HttpRequest, campaign: Campaign, tid: int) -> HttpResponse:
    treatment = get_object_or_404(Treatment, pk=tid, sub_audience__campaign=campaign)
    return _saved(
        request,
        campaign,
        lambda: services.treatment_remove(treatment=treatment, user=request.user),
    )


@editing
def destination_update(request: HttpRequest, campaign: Campaign, cid: int) -> HttpResponse:
    link = get_object_or_404(CampaignDestination, pk=cid, campaign=campaign)
    mode = request.POST.get("refresh_mode", "")
    return _saved(
        request,
        campaign,
        lambda: services.campaign_destination_update(
            campaign_destination=link, user=request.user, refresh_mode=mode
        ),
    )


def _attribute_rows(link: CampaignDestination) -> list[dict]:
    rows = []
    for row in link.attribute_mapping:
        attribute = row["destination_attribute"]
        is_identifier = attribute in IDENTIFIER_ATTRIBUTES
        tables = (
            [services.IDENTIFIER_SOURCES[attribute][0]]
            if is_identifier
            else [SourceTable.ORDERS, SourceTable.CUSTOMERS]
        )
        columns = (
            [services.IDENTIFIER_SOURCES[attribute][1]]
            if is_identifier
            else source_columns(row["source_table"] or SourceTable.ORDERS)
        )
        rows.append({**row, "tables": tables, "columns": columns, "identifier": is_identifier})
    return rows


@require_http_methods(["GET", "POST"])
@viewer_required
def campaign_attributes(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Edit campaign attributes" modal: one destination's mapping at a time."""
    campaign = _get_campaign(request, pk, edit=request.method == "POST")
    links = list(campaign.campaign_destinations.select_related("destination"))
    wanted = request.POST.get("destination") or request.GET.get("destination", "")
    link = next((x for x in links if str(x.pk) == wanted), links[0] if links else None)
    errors: list[str] = []
    status = 200
    saved = False
    if request.method == "POST" and link is not None:
        attributes = request.POST.getlist("attribute")
        mapping = [
            {
                "destination_attribute": attribute,
                "source_table": request.POST.get(f"table_{attribute}", ""),
                "source_attribute": request.POST.get(f"column_{attribute}", ""),
                "enabled": request.POST.get(f"enabled_{attribute}") == "on",
            }
            for attribute in attributes
        ]
        try:
            services.campaign_destination_update(
                campaign_destination=link, user=request.user, mapping=mapping
            )
        except CampaignValidationError as exc:
            errors = exc.errors.get("attributes", [str(exc)])
            status = 422
        except CampaignError as exc:
            errors, status = [str(exc)], 409
        else:
            if not request.htmx:  # type: ignore[attr-defined]
                messages.success(request, f"Saved the attributes sent to {link.destination}.")
                return redirect("campaigns:edit", pk=campaign.pk)
            if request.POST.get("close") == "1":
                response = reswap(retarget(_render_editor(request, campaign), "#editor"),
                                  "outerHTML")  # fmt: skip
                return trigger_client_event(response, "campaign:close-modal", after="settle")
            link.refresh_from_db()
            saved = True
    context = {
        "campaign": campaign,
        "links": links,
        "link": link,
        "rows": _attribute_rows(link) if link else [],
        "attr_errors": errors,
        "editable": campaign.is_editable and request.user.can_edit,  # type: ignore[union-attr]
    }
    template = "campaigns/attributes.html#modal" if request.htmx else "campaigns/attributes.html"  # type: ignore[attr-defined]
    response = render(request, template, context, status=status)
    if saved:  # the editor behind the dialog lists the identifiers now sent
        return trigger_client_event(response, "campaign:refresh-editor")
    return response


# -- timing, launch, schedule ------------------------------------------------------------


@editing
def campaign_timing(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    form = TimingForm(request.POST)
    if not form.is_valid():
        errors = [f"{form.fields[f].label or f.replace('_', ' ').capitalize()}: {e[0]}"
                  for f, e in form.errors.items()]  # fmt: skip
        return _render_editor(request, campaign, errors={"timing": errors}, status=422)
    values = form.timing_values(campaign)
    return _saved(
        request,
        campaign,
        lambda: services.campaign_update_timing(campaign=campaign, user=request.user, **values),
    )


@editing
def campaign_launch(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    form = LaunchForm(request.POST)
    if not form.is_valid():
        errors = [str(e) for e in form.non_field_errors()] or ["Check the launch date."]
        return _render_editor(request, campaign, errors={"launch": errors}, status=422)
    launch_at = form.launch_at(campaign)
    return _saved(
        request,
        campaign,
        lambda: services.campaign_update_launch(
            campaign=campaign, user=request.user, launch_at=launch_at
        ),
    )


@editing
def campaign_schedule(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    try:
        services.campaign_schedule(campaign=campaign, user=request.user)
    except CampaignValidationError as exc:
        errors = dict(exc.errors)
        errors["schedule"] = ["Not scheduled yet: fix the problems marked in each step."]
        return _render_editor(request, campaign, errors=errors, status=422)
    except CampaignError as exc:
        return _render_editor(request, campaign, errors={"general": [str(exc)]}, status=409)
    messages.success(request, f"“{campaign.name}” is scheduled.")
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(campaign.get_absolute_url())
    return redirect(campaign)


def _lifecycle(
    request: HttpRequest, campaign: Campaign, action: Callable[[], Any], done: str, to: str
) -> HttpResponse:
    try:
        action()
    except CampaignError as exc:
        messages.error(request, str(exc))
        to = campaign.get_absolute_url()
    else:
        messages.success(request, done)
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(to)
    return redirect(to)


@editing
def campaign_unschedule(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    return _lifecycle(
        request, campaign,
        lambda: services.campaign_unschedule(campaign=campaign, user=request.user),
        f"“{campaign.name}” is a draft again: edit it, then schedule it.",
        campaign.get_absolute_url(),
    )  # fmt: skip


@editing
def campaign_delete(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    return _lifecycle(
        request, campaign,
        lambda: services.campaign_delete(campaign=campaign, user=request.user),
        f"Deleted “{campaign.name}”.", reverse("campaigns:list"),
    )  # fmt: skip


@editing
def campaign_archive(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    return _lifecycle(
        request, campaign,
        lambda: services.campaign_archive(campaign=campaign, user=request.user),
        f"Archived “{campaign.name}”.", reverse("campaigns:list"),
    )  # fmt: skip


@editing
def campaign_duplicate(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    copy = services.campaign_duplicate(campaign=campaign, user=request.user)
    messages.success(request, f"Created “{copy.name}”, a draft copy of “{campaign.name}”.")
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(copy.get_absolute_url())
    return redirect(copy)


# -- live counts and history -------------------------------------------------------------


@require_GET
@viewer_required
def campaign_counts_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Every count on the editor page, as out-of-band swaps into their placeholders."""
    campaign = _get_campaign(request, pk)
    subs = list(campaign.sub_audiences.prefetch_related("treatments"))
    if campaign_hides_results(campaign, request.user, subs):
        # Counts of a segment that reads raw identifiers could reveal them to a
        # restricted-PII account (guess a value, watch the count): shown as hidden.
        return render(
            request,
            "campaigns/counts_hidden.html",
            {"subs": subs, "treatments": [t for s in subs for t in s.treatments.all()]},
        )
    counts = campaign_counts(campaign)
    summary = delivery_summary_estimate(campaign, counts) if not counts.problems else []
    context = {
        "campaign": campaign,
        "counts": counts,
        "summary": summary,
        "sub_counts": [(s.pk, counts.sub_audience(s.pk)) for s in subs],
        "treatment_counts": [
            (t.pk, counts.treatment(t.pk)) for s in subs for t in s.treatments.all()
        ],
        "reachable": [
            (k, counts.reachable.get(k, 0)) for k in ("EMAIL", "PHONE", "IDFA", "AAID")
        ],  # fmt: skip
    }
    return render(request, "campaigns/counts.html", context)


def campaign_hides_results(campaign: Campaign, user: Any, subs: list[SubAudience]) -> bool:
    """A restricted-PII user sees no counts of a campaign that uses a segment reading raw
    identifiers (segments.pii), as on the segment pages."""
    if not is_restricted(user):
        return False
    segments = [*campaign.include_segments.all(), *campaign.exclude_segments.all()]
    segments += [s.segment for s in subs if s.segment_id]
    return any(segment_reads_raw_identifiers(s) for s in segments) or any(
        definition_reads_raw_identifiers(s.definition) for s in subs if s.definition
    )


@require_GET
@viewer_required
def campaign_history_view(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _get_campaign(request, pk)
    context = {"campaign": campaign, "events": campaign_history(campaign)[:500]}
    template = "campaigns/history.html#dialog" if request.htmx else "campaigns/history.html"  # type: ignore[attr-defined]
    return render(request, template, context)
