"""Destination pages. Views check the role, call one service and render or redirect."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.navigation import safe_next_url
from accounts.permissions import operator_required, viewer_required
from destinations import services
from destinations.forms import SelectAdvertiserForm
from destinations.models import DefaultAttribute, Destination, SourceTable
from destinations.selectors import destinations_visible, source_columns


def _get_destination(request: HttpRequest, pk: int) -> Destination:
    # Every signed-in user may read every destination; writes are gated by role decorators.
    return get_object_or_404(Destination.objects.select_related("connected_by"), pk=pk)


def _callback_uri(request: HttpRequest) -> str:
    """Where TikTok sends the operator back: TIKTOK_REDIRECT_URI, or this site's callback URL
    (https behind a TLS proxy once SECURE_PROXY_SSL_HEADER is set)."""
    if settings.TIKTOK_REDIRECT_URI:
        return settings.TIKTOK_REDIRECT_URI
    return request.build_absolute_uri(reverse("destinations:tiktok_callback"))


def _signed_in_without_query(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Send a signed-out visitor to the sign-in page without the query string.

    login_required would keep the whole URL in `next`, and with it TikTok's one-time code and
    state, in more URLs (logs, history). Without a session the state cannot match anyway.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(reverse("destinations:list"))
        return view(request, *args, **kwargs)

    return wrapped


@require_GET
@viewer_required
def destination_list(request: HttpRequest) -> HttpResponse:
    return render(request, "destinations/list.html", {"destinations": list(destinations_visible())})


@require_GET
@viewer_required
def destination_detail(request: HttpRequest, pk: int) -> HttpResponse:
    destination = _get_destination(request, pk)
    return render(request, "destinations/detail.html", {"destination": destination})


@require_http_methods(["GET", "POST"])
@operator_required
def destination_connect(request: HttpRequest) -> HttpResponse:
    problems = services.tiktok_configuration_problems()
    if request.method == "POST" and not problems:
        try:
            url = services.destination_connect_start(
                session=request.session, redirect_uri=_callback_uri(request)
            )
        except services.DestinationError as exc:
            messages.error(request, str(exc))
        else:
            return redirect(url)
    return render(
        request,
        "destinations/connect.html",
        {"problems": problems, "callback_uri": _callback_uri(request)},
        status=503 if problems and request.method == "POST" else 200,
    )


@require_GET
@_signed_in_without_query
@operator_required
def tiktok_callback(request: HttpRequest) -> HttpResponse:
    """TikTok's answer. Every outcome redirects to a page without the code and state."""
    try:
        result = services.destination_handle_callback(
            session=request.session,
            params=request.GET.dict(),
            user=request.user,  # type: ignore[arg-type]
        )
    except services.DestinationError as exc:
        messages.error(request, str(exc))
        return redirect("destinations:list")
    if result.destination is not None:
        messages.success(
            request, f"“{result.destination.name}” is reauthorized and connected again."
        )
        return redirect("destinations:detail", pk=result.destination.pk)
    return redirect("destinations:select_advertiser")


@require_http_methods(["GET", "POST"])
@operator_required
def select_advertiser(request: HttpRequest) -> HttpResponse:
    advertisers = services.pending_advertisers(request.session)
    if advertisers is None:
        messages.error(request, "There is no TikTok authorization waiting. Connect first.")
        return redirect("destinations:connect")
    form = SelectAdvertiserForm(request.POST or None, advertisers=advertisers)
    if request.method == "POST" and form.is_valid():
        try:
            destination = services.destination_select_advertiser(
                session=request.session,
                advertiser_id=form.cleaned_data["advertiser_id"],
                name=form.cleaned_data["name"],
                user=request.user,  # type: ignore[arg-type]
            )
        except services.DestinationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"Connected “{destination.name}”. Review its default attributes before sending.",
            )
            return redirect("destinations:detail", pk=destination.pk)
    return render(
        request,
        "destinations/select_advertiser.html",
        {"form": form},
        status=400 if form.errors else 200,
    )


@require_POST
@operator_required
def cancel_pending(request: HttpRequest) -> HttpResponse:
    if services.destination_cancel_pending(session=request.session):
        messages.info(request, "Connection cancelled; the TikTok authorization was given back.")
    return redirect("destinations:list")


@require_POST
@operator_required
def destination_reauthorize_view(request: HttpRequest, pk: int) -> HttpResponse:
    destination = _get_destination(request, pk)
    try:
        url = services.destination_reauthorize(
            session=request.session, redirect_uri=_callback_uri(request), destination=destination
        )
    except services.DestinationError as exc:
        messages.error(request, str(exc))
        return redirect("destinations:detail", pk=pk)
    return redirect(url)


@require_POST
@operator_required
def destination_disconnect_view(request: HttpRequest, pk: int) -> HttpResponse:
    destination = _get_destination(request, pk)
    try:
        services.destination_disconnect(destination=destination)
    except services.DestinationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"“{destination.name}” is disconnected and its token revoked at TikTok."
        )
    return _back(request, pk)


@require_POST
@operator_required
def destination_check_view(request: HttpRequest, pk: int) -> HttpResponse:
    destination = _get_destination(request, pk)
    result = services.destination_check_health(destination)
    if result.ok:
        messages.success(request, "TikTok accepts the token: the destination is healthy.")
    else:
        messages.error(request, f"Token check failed: {result.message}")
    return _back(request, pk)


def _back(request: HttpRequest, pk: int) -> HttpResponse:
    """Back to the page the action was taken on (Settings → Connections or the destination);
    only a path of this site is followed."""
    detail = reverse("destinations:detail", args=[pk])
    return redirect(safe_next_url(request, request.POST.get("next"), detail))


@require_GET
@operator_required
def connections(request: HttpRequest) -> HttpResponse:
    """Settings → Connections: every TikTok destination with its token health and actions."""
    return render(
        request,
        "destinations/connections.html",
        {"destinations": list(destinations_visible()), "settings_tab": "connections"},
    )


def _mapping_context(
    destination: Destination, rows: list[DefaultAttribute], errors: dict[str, str] | None = None
) -> dict:
    return {
        "destination": destination,
        "rows": rows,
        "columns": {table: source_columns(table) for table in SourceTable.values},
        "tables": SourceTable.values,
        "row_errors": errors or {},
    }


@require_http_methods(["GET", "POST"])
@viewer_required  # every role reads the mapping; only operators change it (below)
def default_attributes(request: HttpRequest, pk: int) -> HttpResponse:
    destination = _get_destination(request, pk)
    template = "destinations/attributes.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#mapping"
    rows = services.destination_default_mapping(destination)
    if request.method == "GET":
        return render(request, template, _mapping_context(destination, rows))
    if not request.user.can_operate:  # type: ignore[union-attr]
        return render(
            request,
            template,
            {
                **_mapping_context(destination, rows),
                "general_errors": ["Only Operators and Admins can change default attributes."],
            },
            status=403,
        )
    submitted: list[dict[str, Any]] = [
        {
            "destination_attribute": row.destination_attribute,
            "source_table": request.POST.get(f"{row.destination_attribute}-source_table", ""),
            "source_attribute": request.POST.get(
                f"{row.destination_attribute}-source_attribute", ""
            ),
            "enabled": request.POST.get(f"{row.destination_attribute}-enabled") == "on",
        }
        for row in rows
    ]
    try:
        rows = services.destination_update_default_attributes(
            destination=destination, rows=submitted
        )
    except services.MappingError as exc:
        by_attribute = {r.destination_attribute: r for r in rows}
        # Show what the operator typed, with the errors next to it.
        for item in submitted:
            row = by_attribute[item["destination_attribute"]]
            row.source_table = item["source_table"]
            row.source_attribute = item["source_attribute"]
            row.enabled = item["enabled"]
        return render(
            request,
            template,
            {**_mapping_context(destination, rows, exc.errors), "general_errors": exc.general},
            status=400,
        )
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            template,
            {
                **_mapping_context(destination, rows),
                "saved": True,
                "warnings": services.mapping_warnings(rows),
            },
        )
    messages.success(request, "Default attributes saved.")
    for warning in services.mapping_warnings(rows):
        messages.warning(request, warning)
    return redirect("destinations:attributes", pk=pk)
