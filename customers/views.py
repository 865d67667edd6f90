from __future__ import annotations

import csv
from collections.abc import Iterator

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.masking import masker_for
from accounts.permissions import operator_required, viewer_required
from config import csvsafe
from customers.csv_columns import SPECS, ImportKind
from customers.forms import CustomerDeleteForm, ImportForm
from customers.loading import ERROR_HEADER, MalformedFile
from customers.lookup import (
    ORDERS_PER_PAGE,
    LookupError_,
    customer_360,
    customer_address,
    customer_orders,
    customer_place,
    customer_search,
)
from customers.models import Customer, ImportJob
from customers.selectors import import_jobs_recent, store_totals
from customers.services import customers_delete, import_job_create, import_job_error_report

# Error-report columns whose values are personal identifiers, and how to mask them.
_PII_COLUMNS = {"email": "email", "phone": "phone", "raw_id": "device"}


def _page_context(request: HttpRequest, form: ImportForm | None = None) -> dict:
    jobs = list(import_jobs_recent())
    return {
        "totals": store_totals(),
        "specs": [SPECS[k] for k in ImportKind],
        "jobs": jobs,
        "any_active": any(j.is_active for j in jobs),
        "form": form,
    }


@require_GET
@viewer_required
@vary_on_headers("HX-Request")
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "customers/overview.html", _page_context(request))


@require_GET
@viewer_required
def import_jobs(request: HttpRequest) -> HttpResponse:
    """The recent-imports table; the page polls it while an import runs."""
    # The totals ride along out of band, so they change when an import finishes.
    context = {**_page_context(request), "oob": True}
    return render(request, "customers/overview.html#import-jobs", context)


@require_POST
@operator_required
def import_upload(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a CSV file to import.")
        return redirect("customers:overview")
    kind = ImportKind(form.cleaned_data["kind"])
    upload = form.cleaned_data["file"]
    replace = bool(form.cleaned_data.get("replace"))
    if replace and kind != ImportKind.DEVICES:
        messages.error(request, "Only a devices import can replace devices. Nothing was changed.")
        return redirect("customers:overview")
    try:
        job = import_job_create(
            kind=kind, upload=upload, user=request.user, replace_devices=replace
        )
    except MalformedFile as exc:
        messages.error(request, f"{upload.name} was not imported: {exc} Nothing was changed.")
    else:
        messages.success(
            request,
            f"{job.original_name} is queued for import as {kind.value}. Progress shows below.",
        )
    return redirect("customers:overview")


def _masked_rows(path, user) -> Iterator[str]:
    mask = masker_for(user)

    writer = csvsafe.writer(csvsafe.Echo())
    yield writer.writerow(ERROR_HEADER)
    with open(path, newline="", encoding="utf-8") as source:
        reader = csv.reader(source)
        next(reader, None)
        for row_no, column, value, reason in reader:
            if column in _PII_COLUMNS:
                value = mask[_PII_COLUMNS[column]](value)
            yield writer.writerow([row_no, column, value, reason])


@require_GET
@operator_required
def import_errors(request: HttpRequest, pk: int) -> HttpResponse:
    """The per-row error report; raw identifiers are masked for restricted-PII users."""
    job = get_object_or_404(ImportJob, pk=pk)
    path = import_job_error_report(job)
    if path is None:
        raise Http404("This import has no error report.")
    response = StreamingHttpResponse(
        _masked_rows(path, request.user), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response


@require_POST
@operator_required
def customers_delete_view(request: HttpRequest) -> HttpResponse:
    """Delete the listed customers (with devices and orders); bad input changes nothing."""
    form = CustomerDeleteForm(request.POST)
    if not form.is_valid():
        problems = [str(e) for errors in form.errors.values() for e in errors]
        messages.error(request, " ".join(problems) + " Nothing was deleted.")
        return redirect("customers:overview")
    outcome = customers_delete(customer_ids=form.cleaned_data["customer_ids"])
    text = f"{outcome.deleted:,} customers deleted with their devices and orders."
    if outcome.not_found:
        text += f" {outcome.not_found:,} of the ids listed were not in the customer store."
    text += " The next keep-in-sync delivery removes their ids from TikTok."
    messages.success(request, text)
    return redirect("customers:overview")


# ---- customer lookup (the "Customer 360") ------------------------------------------------


def _customer_url(customer_id: str) -> str | None:
    """The customer's page; None for an id no URL can carry (a line break in it)."""
    try:
        return reverse("customers:customer", args=[customer_id])
    except NoReverseMatch:
        return None


def _masked_customer(customer: Customer, mask: dict) -> dict:
    """What a list of matches shows of a customer: identifiers masked for restricted-PII
    users."""
    return {
        "customer": customer,
        "url": _customer_url(customer.customer_id),
        "name": f"{customer.given_name} {customer.surname}".strip(),
        "email": mask["email"](customer.email),
        "phone": mask["phone"](customer.phone),
        "place": customer_place(customer),
    }


@require_GET
@viewer_required
def customer_lookup(request: HttpRequest) -> HttpResponse:
    """Find a customer by id, email or phone; one match opens it, several are listed."""
    context: dict = {
        "query": request.GET.get("q", ""),
        "result": None,
        "problem": "",
        "phone_region": settings.DEFAULT_PHONE_REGION,
    }
    status = 200
    if "q" in request.GET:
        try:
            result = customer_search(context["query"])
        except LookupError_ as exc:
            context["problem"] = str(exc)
            status = 400
        else:
            url = _customer_url(result.customers[0].customer_id) if result.total == 1 else None
            if url:
                return redirect(url)
            mask = masker_for(request.user)
            context["result"] = result
            context["rows"] = [_masked_customer(c, mask) for c in result.customers]
    return render(request, "customers/lookup.html", context, status=status)


@require_GET
@viewer_required
def customer_detail(request: HttpRequest, customer_id: str) -> HttpResponse:
    """One customer: attributes, devices, orders, segments and deliveries (read-only)."""
    if len(customer_id) > 64 or "\x00" in customer_id:  # no stored id looks like this
        raise Http404("No customer has this id.")
    customer = get_object_or_404(Customer, customer_id=customer_id)
    mask = masker_for(request.user)
    view = customer_360(customer)
    orders = Paginator(customer_orders(customer), ORDERS_PER_PAGE).get_page(
        request.GET.get("orders")
    )
    identifiers = [
        {
            "item": item,
            "raw": mask[item.label.lower()](item.raw),
            "normalized": mask[item.label.lower()](item.normalized),
        }
        for item in view.identifiers
    ]
    devices = [
        {
            "device": d,
            "raw": mask["device"](d.raw_id),
            "normalized": mask["device"](d.normalized_id),
        }
        for d in view.devices
    ]
    return render(
        request,
        "customers/customer.html",
        {
            "customer": customer,
            "name": f"{customer.given_name} {customer.surname}".strip(),
            "address": customer_address(customer),
            "view": view,
            "identifiers": identifiers,
            "devices": devices,
            "orders": orders,
            "active_segments": view.memberships.active(),
            "unknown_segments": view.memberships.active_unknown(),
        },
    )
