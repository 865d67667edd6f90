"""Delivery pages: the campaign page's live panel, a delivery's summary, the recipients
download and Retry. Every view checks the role on the server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.permissions import marketer_required, require_pii_access, viewer_required
from campaigns.models import Campaign, CampaignStatus
from config import csvsafe
from deliveries.models import Delivery, DestinationAudience
from deliveries.selectors import (
    audience_holdings,
    campaign_deliveries,
    delivery_progress,
    destination_audiences,
    recipient_rows,
)
from deliveries.services import (
    DeliveryError,
    audience_reconcile,
    campaign_run_now,
    delivery_retry,
)


def _get_delivery(delivery_id: int) -> Delivery:
    return get_object_or_404(Delivery.objects.select_related("campaign"), pk=delivery_id)


def _panel_context(campaign: Campaign) -> dict:
    deliveries = campaign_deliveries(campaign.pk)
    active = [d for d in deliveries if d.is_active]
    polling = any(t.is_polling for d in deliveries[:3] for t in d.target_list)
    return {
        "campaign": campaign,
        "deliveries": deliveries,
        "active": active[0] if active else None,
        "poll_every": "2s" if active else _waiting_poll(campaign) or ("15s" if polling else ""),
    }


def _waiting_poll(campaign: Campaign) -> str:
    """How often the panel looks for the next delivery of a scheduled campaign (one-time or
    recurring): often when it is due within two minutes, else once a minute."""
    if campaign.status not in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING):
        return ""
    due = campaign.next_run_at
    if due is None or due - timezone.now() <= dt.timedelta(minutes=2):
        return "2s"
    return "60s"


@require_GET
@viewer_required
@vary_on_headers("HX-Request")
def campaign_panel(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The campaign page's deliveries section: progress while running, then history."""
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    return render(request, "deliveries/campaign_panel.html", _panel_context(campaign))


@require_GET
@viewer_required
@vary_on_headers("HX-Request")
def detail(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = _get_delivery(delivery_id)
    targets = list(delivery.targets.select_related("treatment"))
    context = {
        "delivery": delivery,
        "campaign": delivery.campaign,
        "targets": targets,
        "treatments": list(delivery.treatments.all()),
        "progress": delivery_progress(targets),
        "poll_every": "2s" if delivery.is_active else "",
    }
    if request.htmx:
        return render(request, "deliveries/detail.html#live", context)
    return render(request, "deliveries/detail.html", context)


@require_GET
@viewer_required
def recipients_csv(request: HttpRequest, delivery_id: int) -> HttpResponse:
    """Who was in which sub-audience and treatment, streamed from the snapshot."""
    require_pii_access(request.user)
    delivery = _get_delivery(delivery_id)
    if delivery.snapshot_at is None:
        return HttpResponse(
            "This delivery has not recorded its recipients yet.",
            status=409,
            content_type="text/plain",
        )
    delivered = timezone.localtime(delivery.started_at or delivery.scheduled_for).isoformat()
    writer = csvsafe.writer(csvsafe.Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(
            ["customer_id", "sub_audience", "treatment", "control", "delivery_time"]
        )
        for customer_id, sub_name, treatment_name, is_control in recipient_rows(delivery):
            yield writer.writerow(
                [customer_id, sub_name, treatment_name, "yes" if is_control else "no", delivered]
            )

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    filename = f"recipients-campaign{delivery.campaign_id}-delivery{delivery.pk}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_POST
@marketer_required
def retry(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = _get_delivery(delivery_id)
    try:
        delivery_retry(delivery=delivery, user=request.user)
    except DeliveryError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The delivery was queued again; finished batches are kept.")
    if request.htmx and request.POST.get("from") == "panel":
        return render(request, "deliveries/campaign_panel.html", _panel_context(delivery.campaign))
    return redirect("deliveries:detail", delivery_id=delivery.pk)


def _get_audience(audience_pk: int) -> DestinationAudience:
    return get_object_or_404(
        DestinationAudience.objects.select_related("destination", "campaign"), pk=audience_pk
    )


@require_GET
@viewer_required
def audiences(request: HttpRequest) -> HttpResponse:
    """Every TikTok audience the product writes to, newest first."""
    return render(
        request, "deliveries/audiences.html", {"audiences": list(destination_audiences()[:200])}
    )


@require_GET
@viewer_required
def audience(request: HttpRequest, audience_pk: int) -> HttpResponse:
    """What TikTok holds: ids per type from the ledger, TikTok's matched size, Reconcile."""
    found = _get_audience(audience_pk)
    return render(request, "deliveries/audience.html", {"h": audience_holdings(found)})


@require_POST
@marketer_required
def run_now(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Deliver a recurring campaign now, keeping its schedule ("run sync")."""
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    try:
        campaign_run_now(campaign=campaign, user=request.user)
    except DeliveryError as exc:
        messages.error(request, str(exc))
        return redirect("campaigns:edit", pk=campaign.pk)
    messages.success(request, "Delivering now; the schedule stays as it is.")
    return redirect(f"{reverse('campaigns:edit', args=[campaign.pk])}#deliveries")


@require_POST
@marketer_required
def audience_reconcile_view(request: HttpRequest, audience_pk: int) -> HttpResponse:
    found = _get_audience(audience_pk)
    try:
        delivery = audience_reconcile(audience=found, user=request.user)
    except DeliveryError as exc:
        messages.error(request, str(exc))
        return redirect("deliveries:audience", audience_pk=found.pk)
    messages.success(
        request,
        "The campaign is being delivered now: the audience is brought back to the "
        "campaign's current members.",
    )
    return redirect("deliveries:detail", delivery_id=delivery.pk)
