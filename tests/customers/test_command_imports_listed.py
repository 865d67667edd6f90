"""Issue 12: the Data page lists imports made from the command line, and refused files."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import Role
from customers.models import Customer, ImportJob, ImportStatus


def test_a_command_line_import_and_a_refused_file_appear_on_the_data_page(tmp_path, make_client):
    good = tmp_path / "spring.csv"
    good.write_text(
        "customer_id,email,phone,country\n"
        "A1,a1@example.com,+12133734253,US\n"
        "A2,not-an-email,,US\n"
        ",missing-id@example.com,,US\n",
        encoding="utf-8",
    )
    call_command("import_customers", str(good))
    assert set(Customer.objects.values_list("customer_id", flat=True)) == {"A1", "A2"}
    job = ImportJob.objects.get(original_name="spring.csv")
    assert job.status == ImportStatus.SUCCEEDED and job.created_by is None
    assert (job.rows_read, job.rows_inserted, job.error_rows) == (3, 2, 1)

    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x00\x01\x02 not a csv")
    with pytest.raises(CommandError):
        call_command("import_customers", str(binary))
    refused = ImportJob.objects.get(original_name="photo.csv")
    assert refused.status == ImportStatus.FAILED and refused.message
    assert Customer.objects.count() == 2  # nothing changed

    page = make_client(Role.VIEWER).get(reverse("customers:overview")).content.decode()
    assert "spring.csv" in page and "photo.csv" in page and "command line" in page
