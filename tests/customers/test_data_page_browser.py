"""The Data page in real Chromium: upload, progress while the worker runs, summary."""

from __future__ import annotations

from unittest import mock

import pytest

from accounts.models import Role
from customers.models import ImportJob
from customers.tasks import import_job_run_task
from tests.factories import CustomerFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV = (
    "customer_id,given_name,email,phone,country,state\n"
    "C1,Ann,ann@example.com,(415) 555-2671,US,CA\n"
    "C2,Bob,bob@example.com,+44 20 7946 0958,GB,\n"
    "C3,Cy,cy@example.com,,Germany,\n"
)


def test_operator_imports_a_file_and_watches_it_finish(
    page, live_server, sign_in, screenshot, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path / "media"
    CustomerFactory.create_batch(3)
    operator = UserFactory(role=Role.OPERATOR)
    sign_in(operator)
    page.goto(f"{live_server.url}/data/")
    path = tmp_path / "spring-customers.csv"
    path.write_text(CSV)
    with mock.patch.object(import_job_run_task, "delay") as delay:
        page.set_input_files("#file-customers", str(path))
        page.click("form:has(#file-customers) button[type=submit]")
        page.wait_for_selector("text=is queued for import")
    job = ImportJob.objects.get()
    delay.assert_called_once_with(job.pk)

    # While the worker runs, the table polls and shows the progress bar.
    ImportJob.objects.filter(pk=job.pk).update(
        status="running", progress=45, phase="Reading and checking rows", rows_read=450_000
    )
    page.wait_for_selector("text=Reading and checking rows · 45%")
    page.click("text=Columns (key: customer_id)")
    screenshot("data-page-import-running")
    ImportJob.objects.filter(pk=job.pk).update(status="pending", progress=0)

    import_job_run_task(job.pk)
    page.wait_for_selector("#import-jobs .badge-ok", timeout=10_000)
    assert page.locator("#import-jobs a:has-text('Error report')").count() == 1
    assert page.locator(".stat-value").first.inner_text() == "5"
    screenshot("data-page-import-done")


def test_viewer_sees_totals_and_history_but_no_import_forms(page, live_server, sign_in, screenshot):
    sign_in(UserFactory(role=Role.VIEWER))
    page.goto(f"{live_server.url}/data/")
    page.wait_for_selector("text=Recent imports")
    assert page.locator("input[type=file]").count() == 0
    screenshot("data-page-viewer")
