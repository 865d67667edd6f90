from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.masking import masker_for
from accounts.permissions import operator_required, viewer_required
from customers.csv_columns import SPECS, ImportKind
from customers.forms import ImportForm
from customers.loading import ERROR_HEADER, MalformedFile
from customers.models import ImportJob
from customers.selectors import import_jobs_recent, store_totals
from customers.services import import_job_create, import_job_error_report

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
    try:
        job = import_job_create(kind=kind, upload=upload, user=request.user)
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

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())
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
