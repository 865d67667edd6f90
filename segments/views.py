"""Segment pages: list, create, edit (visual or SQL), detail with insights, compare, history.

Embedding the visual condition editor in another page (e.g. campaign sub-audiences with
custom criteria)::

    # view
    from segments.editor import editor_context
    context["editor"] = editor_context(definition, field_name="criteria", prefix="sub3-")

    {# template: inside your own <form> that posts to your own save endpoint #}
    {% include "segments/editor.html" with editor=editor %}
    <script src="{% static 'js/segments-editor.js' %}" defer></script>
    <link rel="stylesheet" href="{% static 'css/segments.css' %}">

The editor keeps the JSON definition in ``<input type=hidden name=criteria>``; your save
view reads it with ``segments.editor.parse_definition(request.POST["criteria"])`` and checks
it with ``segments.compiler.compile_definition`` (``DefinitionError`` lists problems by path).
Live insights: include ``segments/insights_panel.html`` with ``field_name`` and ``prefix``,
or trigger your own endpoint on the ``segments:changed`` event the editor fires on <body>.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from accounts.masking import masker_for
from accounts.navigation import safe_next_url
from accounts.permissions import marketer_required, viewer_required
from config import csvsafe
from segments import fence, services
from segments.compiler import CompiledSQL, DefinitionError, compile_definition, inline_params
from segments.editor import (
    EditorInputError,
    apply_op,
    condition_paths,
    editor_context,
    is_incomplete,
    parse_definition,
)
from segments.explain import explain_zero
from segments.inputs import text_problem
from segments.insights import MAX_COMPARE, breakdowns_for_sql, insights_for_sql, overlap_for
from segments.models import Segment, SegmentKind
from segments.pii import (
    RESULTS_HIDDEN,
    SQL_REFUSED,
    PiiRestricted,
    is_restricted,
    require_may_author_definition,
    segment_hides_results,
)
from segments.runner import SegmentQueryError, stream_rows
from segments.selectors import (
    active_segments,
    customer_lists,
    segment_list,
    segment_members_sql,
    segment_usages,
)
from segments.sqlcheck import SqlSegmentError, to_sql_segment

TABLE_DOCS = [
    ("customers", "customer_id, given_name, surname, email, phone, street, city, state, "
     "postal_code, country, birthdate, gender, loyalty_tier, email_opt_in, sms_opt_in, "
     "created_at, updated_at, email_normalized, email_sha256, phone_e164, phone_sha256"),
    ("devices", "customer_id, kind ('IDFA' | 'AAID'), raw_id, normalized_id, sha256"),
    ("orders", "order_id, customer_id, ordered_at, channel ('web' | 'store' | 'app' | 'phone'), "
     "store, brand, product_name, product_category, quantity, amount, currency, is_return"),
]  # fmt: skip


def _small_int(value: str | None) -> int | None:
    """A positive id or number typed into a form, or None (also for anything huge)."""
    if value and value.isascii() and value.isdecimal() and len(value) < 18:
        return int(value)
    return None


def _get_segment(request: HttpRequest, pk: int, *, edit: bool = False) -> Segment:
    """The segment, or 404; PermissionDenied when the user may not change it."""
    segment = get_object_or_404(Segment, pk=pk)
    if edit and not request.user.can_edit:  # type: ignore[union-attr]
        raise PermissionDenied("Viewers cannot change segments.")
    return segment


# -- list, create ------------------------------------------------------------------------


@require_GET
@viewer_required
@vary_on_headers("HX-Request")
def segment_list_view(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    sort = request.GET.get("sort", "-updated")
    page = Paginator(segment_list(query=query, sort=sort), 50).get_page(request.GET.get("page"))
    rows = [(s, segment_usages(s)) for s in page.object_list]
    hidden = {s.pk for s in page.object_list if segment_hides_results(s, request.user)}
    context = {"page": page, "rows": rows, "q": query, "sort": sort, "hidden": hidden}
    htmx = request.htmx  # type: ignore[attr-defined]
    template = "segments/list.html#table" if htmx else "segments/list.html"
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@marketer_required
def segment_new(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("kind") or request.GET.get("kind") or SegmentKind.VISUAL
    if request.method == "POST":
        try:
            segment = services.segment_create(
                user=request.user, name=request.POST.get("name", ""), kind=kind
            )
        except services.SegmentError as exc:
            return render(
                request, "segments/new.html", {"error": str(exc), "kind": kind}, status=400
            )
        except PiiRestricted as exc:
            return render(
                request,
                "segments/new.html",
                {"error": str(exc), "kind": SegmentKind.VISUAL},
                status=403,
            )
        return redirect("segments:edit", pk=segment.pk)
    return render(request, "segments/new.html", {"kind": kind})


# -- editor ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@viewer_required
def segment_edit(request: HttpRequest, pk: int) -> HttpResponse:
    segment = _get_segment(request, pk, edit=request.method == "POST")
    context: dict[str, Any] = {"segment": segment, "table_docs": TABLE_DOCS}
    status = 200
    definition = segment.definition
    sql = segment.sql
    if request.method == "POST":
        try:
            if segment.kind == SegmentKind.VISUAL:
                definition = parse_definition(request.POST.get("definition"))
                segment = services.segment_update(
                    segment=segment,
                    user=request.user,
                    name=request.POST.get("name"),
                    definition=definition,
                )
            else:
                sql = request.POST.get("sql", "")
                segment = services.segment_update(
                    segment=segment, user=request.user, name=request.POST.get("name"), sql=sql
                )
            # "Save and activate" activates what the person sees: the version just saved.
            activate = request.POST.get("then") == "activate" and not segment.is_active
            if activate:
                segment = services.segment_activate(segment=segment, user=request.user)
            _refresh_size(segment, request.user)  # the saved version's size, not the last
            if activate:
                messages.success(request, _activated(segment, request.user))
            else:
                messages.success(request, f"Saved “{segment.name}”.")
            return redirect("segments:edit", pk=segment.pk)
        except (EditorInputError, services.SegmentError) as exc:
            context["error"] = str(exc)
        except DefinitionError as exc:
            context["error"] = f"Not saved: {len(exc.errors)} condition(s) need fixing (marked)."
        except (SqlSegmentError, SegmentQueryError) as exc:
            context["error"] = f"Not saved: {exc}"
            context["sql_error"] = exc
        except PiiRestricted as exc:
            context["error"] = f"Not saved: {exc}"
            status = 403
        status = status if status != 200 else 400
    restricted = is_restricted(request.user)
    context["sql"] = sql
    context["sql_locked"] = segment.kind == SegmentKind.SQL and restricted
    if segment.kind == SegmentKind.VISUAL:
        context["editor"] = editor_context(
            definition if isinstance(definition, dict) else {},
            segment_id=segment.pk,
            restricted=restricted,
        )
    return render(request, "segments/edit.html", context, status=status)


@require_POST
@marketer_required
def editor_op(request: HttpRequest) -> HttpResponse:
    """A structural edit of an editor bound to the posted field; returns the editor."""
    field_name = request.POST.get("field", "definition")[:100]
    prefix = request.POST.get("prefix", "")[:50]
    segment_id = request.POST.get("segment_id")
    try:
        definition = parse_definition(request.POST.get(field_name))
        restricted = is_restricted(request.user)
        definition = apply_op(
            definition,
            request.POST.get("op", "refresh"),
            request.POST.get("path", ""),
            request.POST.get("kind", ""),
            restricted=restricted,
        )
    except EditorInputError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    editor = editor_context(
        definition,
        field_name=field_name,
        prefix=prefix,
        segment_id=_small_int(segment_id),
        restricted=restricted,
    )
    response = render(request, "segments/editor.html", {"editor": editor})
    return trigger_client_event(response, "segments:changed", after="settle")


@require_POST
@viewer_required
@fence.live_view
def insights_view(request: HttpRequest) -> HttpResponse:
    """Live insights for the posted definition (visual) or SQL; marks invalid conditions."""
    field_name = request.POST.get("field", "definition")[:100]
    prefix = request.POST.get("prefix", "")[:50]
    segment_id = request.POST.get("segment_id", "")
    context: dict[str, Any] = {"prefix": prefix, "oob": []}
    if "sql" in request.POST:
        # Ad hoc SQL runs only for the roles that may write it.
        refused = None
        if not request.user.can_edit:  # type: ignore[union-attr]
            refused = "Previewing SQL is for roles that may edit segments."
        elif is_restricted(request.user):
            refused = SQL_REFUSED
        if refused:
            context["error"] = refused
            return render(request, "segments/insights.html", context, status=403)
        problem = text_problem(request.POST["sql"])
        if problem:
            context["error"] = f"The SQL {problem}; remove it and try again."
            return render(request, "segments/insights.html", context, status=400)
    try:
        if "sql" in request.POST:
            # The person's SQL runs only behind the database fence (segments.fence).
            compiled = CompiledSQL(fence.members_query(fence.evaluate(request.POST["sql"])), [])
        else:
            definition = parse_definition(request.POST.get(field_name))
            try:
                require_may_author_definition(request.user, definition)
            except PiiRestricted as exc:
                context["error"] = str(exc)
                return render(request, "segments/insights.html", context, status=403)
            try:
                compiled = compile_definition(definition, segment_id=_small_int(segment_id))
                errors: dict[str, list[str]] = {}
            except DefinitionError as exc:
                compiled, errors = None, {}
                for e in exc.errors:
                    errors.setdefault(e.path, []).append(e.message)
                # A condition still waiting for its value is not an error yet: it is not
                # flagged, and the counts shown before it was added stay on screen.
                for path in [p for p in errors if is_incomplete(definition, p)]:
                    del errors[path]
                context["keep_previous"] = True
                if errors:
                    context["error"] = f"{len(errors)} condition(s) need fixing."
                else:
                    context["note"] = "Finish the new condition to update the counts."
            context["oob"] = [
                (f"{prefix}{p.replace('.', '-')}", errors.get(p, []))
                for p in condition_paths(definition)
            ]
        if compiled is not None:
            context["insights"] = insights_for_sql(compiled)
            if context["insights"].unique == 0 and "sql" not in request.POST:
                context["zero"] = explain_zero(definition, segment_id=_small_int(segment_id))
    except EditorInputError as exc:
        context["error"] = str(exc)
        return render(request, "segments/insights.html", context, status=400)
    except (SqlSegmentError, SegmentQueryError) as exc:
        context["error"] = str(exc)
        context["sql_error"] = exc if isinstance(exc, SqlSegmentError) else None
    return render(request, "segments/insights.html", context)


# -- detail, actions ---------------------------------------------------------------------


@require_GET
@viewer_required
def segment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    segment = _get_segment(request, pk)
    context: dict[str, Any] = {"segment": segment, "usages": segment_usages(segment)}
    context["others"] = active_segments().exclude(pk=segment.pk)[:200]
    if segment_hides_results(segment, request.user):
        context["results_hidden"] = RESULTS_HIDDEN
        return render(request, "segments/detail.html", context)
    try:
        compiled = segment_members_sql(segment)
        context["insights"] = insights_for_sql(compiled)
        context["view_sql"] = (
            to_sql_segment(inline_params(compiled), vendor=connection.vendor)
            if segment.kind == SegmentKind.VISUAL
            else segment.sql
        )
    except (DefinitionError, SqlSegmentError, SegmentQueryError) as exc:
        context["error"] = str(exc)
    return render(request, "segments/detail.html", context)


@require_GET
@viewer_required
def segment_breakdowns(request: HttpRequest, pk: int) -> HttpResponse:
    segment = _get_segment(request, pk)
    if segment_hides_results(segment, request.user):
        return render(
            request, "segments/detail.html#charts", {"charts_error": RESULTS_HIDDEN}, status=403
        )
    try:
        breakdowns = breakdowns_for_sql(segment_members_sql(segment))
        return render(request, "segments/detail.html#charts", {"breakdowns": breakdowns})
    except (DefinitionError, SqlSegmentError, SegmentQueryError) as exc:
        return render(request, "segments/detail.html#charts", {"charts_error": str(exc)})


def _refresh_size(segment: Segment, user: Any) -> bool:
    """Remember the size after a change. The count runs here within the live timeout; a
    longer one moves to a worker (the web tier never waits on a slow count). A failing
    count never loses the save. True when the size was counted here."""
    try:
        with fence.live_queries(user.pk):
            services.segment_refresh_count(segment=segment)
        return True
    except SegmentQueryError:
        services.segment_refresh_count_later(segment=segment)
    except (DefinitionError, SqlSegmentError):
        pass
    return False


def _activated(segment: Segment, user: Any) -> str:
    """The confirmation after activation, with the size of what became Active."""
    if segment.last_count is None or segment_hides_results(segment, user):
        return f"“{segment.name}” is Active."
    return f"“{segment.name}” is Active with {segment.last_count:,} customers."


def _action_done(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)  # type: ignore[attr-defined]


@require_POST
@marketer_required
def segment_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    segment = _get_segment(request, pk, edit=True)
    back = safe_next_url(
        request, request.POST.get("next"), reverse("segments:detail", args=[segment.pk])
    )
    user = request.user
    try:
        if action == "rename":
            services.segment_rename(segment=segment, user=user, name=request.POST.get("name", ""))
            messages.success(request, "Renamed.")
        elif action == "duplicate":
            copy = services.segment_duplicate(segment=segment, user=user)
            messages.success(request, f"Duplicated as “{copy.name}”.")
            back = reverse("segments:edit", args=[copy.pk])
        elif action == "delete":
            name = segment.name
            services.segment_delete(segment=segment, user=user)
            messages.success(request, f"Deleted “{name}”.")
            back = reverse("segments:list")
        elif action == "activate":
            segment = services.segment_activate(segment=segment, user=user)
            _refresh_size(segment, user)
            messages.success(request, _activated(segment, user))
        elif action == "deactivate":
            services.segment_deactivate(segment=segment, user=user)
            messages.success(request, f"“{segment.name}” is back to Draft.")
        elif action == "convert":
            copy = services.segment_convert_to_sql(segment=segment, user=user)
            messages.success(request, f"Created the SQL segment “{copy.name}”.")
            back = reverse("segments:edit", args=[copy.pk])
        elif action == "refresh":
            if not _refresh_size(segment, user):
                messages.info(
                    request,
                    "Counting takes a while: a worker counts it and the size appears here "
                    "when it is done.",
                )
            elif segment_hides_results(segment, user):
                messages.success(request, "Refreshed the size.")
            else:
                messages.success(request, f"{segment.last_count:,} customers.")
        elif action == "restore":
            number = _small_int(request.POST.get("number")) or 0
            services.segment_restore_version(segment=segment, user=user, number=number)
            messages.success(request, f"Restored version {number}.")
        else:
            raise Http404("Unknown action")
    except services.SegmentError as exc:
        messages.error(request, str(exc))
    except (DefinitionError, SqlSegmentError, SegmentQueryError, ValueError) as exc:
        messages.error(request, f"Not done: {exc}")
    return _action_done(request, back)


@require_GET
@viewer_required
def segment_history(request: HttpRequest, pk: int) -> HttpResponse:
    segment = _get_segment(request, pk)
    versions = segment.versions.select_related("created_by")
    return render(request, "segments/history.html", {"segment": segment, "versions": versions})


@require_GET
@viewer_required  # type: ignore[arg-type]
def segment_members_csv(request: HttpRequest, pk: int) -> HttpResponse:
    """Members as CSV, streamed from a server-side cursor; masked for restricted-PII users."""
    segment = _get_segment(request, pk)
    if segment_hides_results(segment, request.user):
        raise PermissionDenied(RESULTS_HIDDEN)
    try:
        members = segment_members_sql(segment)
    except (DefinitionError, SqlSegmentError, SegmentQueryError) as exc:
        # Back to the segment with the reason (in a person's words, without data).
        messages.error(request, f"The members cannot be downloaded: {exc}")
        return redirect("segments:detail", pk=segment.pk)
    mask = masker_for(request.user)
    compiled = CompiledSQL(
        "SELECT c.customer_id, c.given_name, c.surname, c.email, c.phone FROM customers c "
        f"WHERE c.customer_id IN ({members.sql}) ORDER BY c.customer_id",
        members.params,
    )

    def rows() -> Iterator[str]:
        writer = csvsafe.writer(csvsafe.Echo())
        yield writer.writerow(["customer_id", "given_name", "surname", "email", "phone"])
        for customer_id, given, surname, email, phone in stream_rows(compiled):
            yield writer.writerow(
                [customer_id, given, surname, mask["email"](email), mask["phone"](phone)]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    filename = slugify(segment.name) or f"segment-{segment.pk}"
    response["Content-Disposition"] = f'attachment; filename="{filename}-members.csv"'
    return response


@require_GET
@viewer_required
def segment_compare(request: HttpRequest) -> HttpResponse:
    ids = [n for n in map(_small_int, request.GET.getlist("ids")) if n][:MAX_COMPARE]
    context: dict[str, Any] = {"all": Segment.objects.order_by("name")[:500], "ids": ids}
    if len(request.GET.getlist("ids")) > MAX_COMPARE:
        context["error"] = (
            f"Compare at most {MAX_COMPARE} segments; the first {MAX_COMPARE} are shown."
        )
    chosen = {s.pk: s for s in Segment.objects.filter(pk__in=ids)}
    hidden = [s for s in chosen.values() if segment_hides_results(s, request.user)]
    if hidden:
        chosen = {pk: s for pk, s in chosen.items() if s not in hidden}
        context["hidden_note"] = (
            "Left out, because they read raw emails, phones or device ids and your account "
            "has restricted PII access: " + ", ".join(sorted(s.name for s in hidden)) + "."
        )
    items = []
    try:
        for i in ids:
            if i in chosen:
                items.append((chosen[i].name, segment_members_sql(chosen[i])))
        if items:
            context["overlap"] = overlap_for(items)
    except (DefinitionError, SqlSegmentError, SegmentQueryError) as exc:
        context["error"] = str(exc)
    return render(request, "segments/compare.html", context)


@require_http_methods(["GET", "POST"])
@viewer_required
def customer_list_view(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {"lists": customer_lists()}
    if request.method == "POST":
        if not request.user.can_edit:  # type: ignore[union-attr]
            raise PermissionDenied("Viewers cannot upload lists.")
        upload = request.FILES.get("file")
        if upload is None:
            context["error"] = "Choose a file of customer ids."
        else:
            try:
                created = services.customer_list_create(
                    user=request.user,
                    name=request.POST.get("name", ""),
                    file=upload.file,  # type: ignore[arg-type]
                )
                messages.success(
                    request,
                    f"Uploaded “{created.name}”: {created.size:,} ids, "
                    f"{created.unknown_ids:,} not (yet) known.",
                )
                return redirect("segments:lists")
            except services.SegmentError as exc:
                context["error"] = str(exc)
        return render(request, "segments/lists.html", context, status=400)
    return render(request, "segments/lists.html", context)
