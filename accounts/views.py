from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.forms import UserAccessForm, UserCreateForm
from accounts.models import User
from accounts.permissions import admin_required
from accounts.services import user_create, user_update_access


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    from customers.selectors import store_totals

    return render(request, "home.html", {"totals": store_totals()})


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
    return render(request, "accounts/user_edit.html", {"target": target, "form": form})
