from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.forms import UserAccessForm, UserCreateForm
from accounts.models import User
from accounts.permissions import admin_required
from accounts.services import user_create, user_update_access


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    from customers.selectors import store_totals

    totals = store_totals()
    return render(request, "home.html", {"totals": totals, "next_steps": _next_steps(totals)})


def _next_steps(totals: Any) -> list[dict[str, Any]]:
    """The path from data to an audience in TikTok, each step marked done or not; the first
    one not done is what to do next."""
    from campaigns.models import Campaign, CampaignStatus
    from destinations.selectors import destinations_usable
    from segments.selectors import active_segments

    campaigns = Campaign.objects.exclude(status=CampaignStatus.ARCHIVED)
    steps = [
        ("Import customers, devices and orders", "customers:overview", totals["customers"] > 0),
        ("Build a segment and activate it", "segments:list", active_segments().exists()),
        ("Connect TikTok Ads (operators)", "destinations:list", destinations_usable().exists()),
        ("Compose a campaign from your segments", "campaigns:list", campaigns.exists()),
        (
            "Schedule it: the audience is sent to TikTok",
            "campaigns:list",
            campaigns.exclude(status=CampaignStatus.DRAFT).exists(),
        ),
    ]
    first_open = next((i for i, (_l, _u, done) in enumerate(steps) if not done), None)
    return [
        {"label": label, "url": reverse(url), "done": done, "next": i == first_open}
        for i, (label, url, done) in enumerate(steps)
    ]


@require_GET
@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    users = User.objects.order_by("username") if request.user.can_administer else None
    return render(
        request, "accounts/settings.html", {"users": users, "create_form": UserCreateForm()}
    )


@require_POST
@admin_required
def user_add(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST)
    if form.is_valid():
        try:
            user = user_create(**form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"User {user.username} created.")
            return redirect("accounts:settings")
    users = User.objects.order_by("username")
    return render(
        request, "accounts/settings.html", {"users": users, "create_form": form}, status=400
    )


@require_http_methods(["GET", "POST"])
@admin_required
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(User, pk=pk)
    form = UserAccessForm(request.POST or None, instance=target)
    if request.method == "POST" and form.is_valid():
        try:
            user_update_access(
                user=User.objects.get(pk=pk),
                acting_user=request.user,  # type: ignore[arg-type]
                **form.cleaned_data,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Access for {target.username} updated.")
            return redirect("accounts:settings")
    status = 400 if request.method == "POST" else 200
    return render(
        request, "accounts/user_edit.html", {"target": target, "form": form}, status=status
    )
