"""Import hardening: a row with an unclosed quote or a NUL byte is one bad row (its number
in the report, its text not), and the uploaded file (raw personal data) is deleted once the
import has run, whatever the outcome."""

from __future__ import annotations

import csv
from pathlib import Path
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from customers.csv_columns import ImportKind
from customers.loading import NUL_BYTE, UNBALANCED_QUOTES, MalformedFile, load_csv
from customers.models import Customer, ImportJob, ImportStatus
from customers.services import import_job_run, imports_dir
from customers.tasks import import_job_run_task

pytestmark = pytest.mark.django_db

# Row numbers count records, the header being row 1; row 2 is one record over two lines.
HOSTILE_ROWS = (
    b"customer_id,email,street\n"
    b'C1,c1@example.com,"1 Main St\nApt 2"\n'  # row 2: a quoted line break is fine
    b'C2,c2@example.com,"never closed\n'  # row 3: the quote never ends
    b"C3,c3@example.com,3 Elm St\n"  # row 4
    b"C4,c4@example.com,NUL\x00here\n"  # row 5: NUL byte
    b'C5,"c5@example.com"junk,5 Oak St\n'  # row 6: text after a closing quote
    b'C6,c6@example.com,"say ""hi"""\n'  # row 7
    b"C7,c7@example.com,\x00\n"  # row 8: NUL byte
    b"C8,c8@example.com,8 Pine St\n"  # row 9
)
GOOD = {"C1": "1 Main St\nApt 2", "C3": "3 Elm St", "C6": 'say "hi"', "C8": "8 Pine St"}
BAD = [(3, UNBALANCED_QUOTES), (5, NUL_BYTE), (6, UNBALANCED_QUOTES), (8, NUL_BYTE)]


def report_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]


@pytest.mark.parametrize("workers", [0, 2])
def test_unclosed_quotes_and_nul_bytes_are_bad_rows_and_the_rest_is_imported(tmp_path, workers):
    path = tmp_path / "people.csv"
    path.write_bytes(HOSTILE_ROWS)
    report = tmp_path / "people.errors.csv"
    result = load_csv(ImportKind.CUSTOMERS, path, error_report=report, workers=workers)
    stored = dict(Customer.objects.values_list("customer_id", "street"))
    assert stored == GOOD
    assert not any(
        "\x00" in value for row in Customer.objects.values_list() for value in map(str, row)
    )
    assert (result.rows_read, result.rows_inserted, result.error_rows) == (8, 4, 4)
    assert report_rows(report) == [[str(row), "", "", reason] for row, reason in BAD]


def test_bad_rows_in_quote_free_runs_handed_to_workers_are_found_too(tmp_path):
    # Many plain lines, so most of the file goes to the workers as raw runs without quotes.
    lines = [b"customer_id,state"] + [b"C%d,CA" % n for n in range(20_000)]
    lines[5_000] = b"C4999,C\x00A"  # row 5001
    lines[15_000] = b"C14999," + b"x" * (csv.field_size_limit() + 1)  # row 15001
    path = tmp_path / "big.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = tmp_path / "big.errors.csv"
    result = load_csv(ImportKind.CUSTOMERS, path, error_report=report, workers=2)
    assert result.error_rows == 2 and result.rows_inserted == 20_000 - 2
    assert not Customer.objects.filter(customer_id__in=["C4999", "C14999"]).exists()
    rows = report_rows(report)
    assert [(row[0], row[1], row[2]) for row in rows] == [("5001", "", ""), ("15001", "", "")]
    assert rows[0][3] == NUL_BYTE and rows[1][3].startswith("a field is longer than")


def test_a_header_with_a_nul_byte_is_still_refused_as_binary(tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes("customer_id,state\nC1,CA\n".encode("utf-16-le"))
    with pytest.raises(MalformedFile, match="binary data"):
        load_csv(ImportKind.CUSTOMERS, path, error_report=tmp_path / "e.csv")
    assert Customer.objects.count() == 0


# ------------------------------------------------------------------ uploads are deleted


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload(client, content: bytes) -> ImportJob:
    with mock.patch.object(import_job_run_task, "delay"):
        response = client.post(
            reverse("customers:import_upload"),
            {"kind": "customers", "file": SimpleUploadedFile("people.csv", content, "text/csv")},
        )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert (imports_dir().parent / job.file_path).exists()  # kept until a worker runs it
    return job


def uploads_left() -> list[str]:
    return sorted(p.name for p in imports_dir().iterdir() if not p.name.endswith("-errors.csv"))


def test_the_upload_is_deleted_after_a_successful_import(operator_client):
    job = upload(operator_client, HOSTILE_ROWS)
    job = import_job_run(job_id=job.pk)
    assert job.status == ImportStatus.SUCCEEDED and job.error_rows == 4
    assert uploads_left() == [] and job.file_path == ""
    # What the report needs stays: counts and the error report (without the bad rows' text).
    assert job.rows_inserted == 4 and job.original_name == "people.csv"
    report = operator_client.get(reverse("customers:import_errors", args=[job.pk]))
    body = b"".join(report.streaming_content).decode()
    assert "never closed" not in body and "here" not in body


def test_the_upload_is_deleted_after_the_worker_refuses_it(operator_client):
    content = b"customer_id,state\n" + b"".join(b"C%d,CA\n" % n for n in range(15000)) + b"C,\xff\n"
    job = import_job_run(job_id=upload(operator_client, content).pk)
    assert job.status == ImportStatus.FAILED and "not UTF-8" in job.message
    assert uploads_left() == [] and job.file_path == ""
    assert Customer.objects.count() == 0


def test_the_upload_is_deleted_when_the_import_crashes(operator_client):
    job = upload(operator_client, HOSTILE_ROWS)
    with (
        mock.patch("customers.services.customers_import_file", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError),
    ):
        import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert uploads_left() == [] and job.file_path == ""


def test_an_upload_refused_at_once_is_not_kept(operator_client):
    with mock.patch.object(import_job_run_task, "delay"):
        operator_client.post(
            reverse("customers:import_upload"),
            {"kind": "customers", "file": SimpleUploadedFile("x.csv", b"email\na@b.c\n")},
        )
    assert not ImportJob.objects.exists() and uploads_left() == []
