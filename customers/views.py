from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.permissions import viewer_required
from customers.selectors import store_totals


@require_GET
@viewer_required
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "customers/overview.html", {"totals": store_totals()})
