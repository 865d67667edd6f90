from __future__ import annotations

from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.urls import reverse

from accounts.models import Role
from customers.models import Customer, ImportJob, ImportStatus
from customers.services import import_job_run
from customers.tasks import import_job_run_task

pytestmark = pytest.mark.django_db

GOOD_AND_BAD = (
    b"customer_id,email,phone,country\n"
    b"C1,ann@example.com,(415) 555-2671,US\n"
    b"C2,bob@example.com,+44 20 7946 0958,GB\n"
    b"C3,secret.person@example.com,,Germany\n"
)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload(client, content: bytes, kind: str = "customers", name: str = "people.csv"):
    with mock.patch.object(import_job_run_task, "delay") as delay:
        response = client.post(
            reverse("customers:import_upload"),
            {"kind": kind, "file": SimpleUploadedFile(name, content, "text/csv")},
        )
    return response, delay


def test_web_import_runs_end_to_end_through_the_task(
    operator_client, settings, django_capture_on_commit_callbacks
):
    with (
        mock.patch.object(import_job_run_task, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = operator_client.post(
            reverse("customers:import_upload"),
            {"kind": "customers", "file": SimpleUploadedFile("people.csv", GOOD_AND_BAD)},
        )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    delay.assert_called_once_with(job.pk)
    assert job.status == ImportStatus.PENDING
    assert (settings.MEDIA_ROOT / job.file_path).parent.name == "imports"

    import_job_run_task(job.pk)  # what the worker runs

    job.refresh_from_db()
    assert job.status == ImportStatus.SUCCEEDED and job.progress == 100
    assert (job.rows_read, job.rows_inserted, job.error_rows) == (3, 2, 1)
    assert Customer.objects.count() == 2
    page = operator_client.get(reverse("customers:overview")).content.decode()
    assert "people.csv" in page and "Error report" in page
    report = operator_client.get(reverse("customers:import_errors", args=[job.pk]))
    body = b"".join(report.streaming_content).decode()
    assert body.splitlines() == [
        "row,column,value,reason",
        "4,country,Germany,not a two-letter ISO 3166 country code",
    ]


def test_a_claimed_job_is_not_run_twice(operator_client):
    upload(operator_client, GOOD_AND_BAD)
    job = ImportJob.objects.get()
    assert import_job_run(job_id=job.pk) is not None
    assert import_job_run(job_id=job.pk) is None


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_to_other_connections_while_running(operator_client, monkeypatch):
    """The page polls from another connection than the import's (which on PostgreSQL holds
    one transaction open for the whole file): progress must be committed as it goes."""
    upload(operator_client, GOOD_AND_BAD)
    job = ImportJob.objects.get()
    seen, seen_elsewhere = [], []
    import customers.services as services

    real = services.customers_import_file

    def spy(**kwargs):
        progress = kwargs["progress"]

        def recording(phase, percent, rows):
            progress(phase, percent, rows)
            seen.append(ImportJob.objects.values_list("status", "progress").get(pk=job.pk))
            if connection.vendor == "postgresql":
                main = connections[DEFAULT_DB_ALIAS]
                other = type(main)(dict(main.settings_dict), main.alias)
                with other.cursor() as cursor:
                    cursor.execute(
                        "SELECT progress FROM customers_importjob WHERE id = %s", [job.pk]
                    )
                    seen_elsewhere.append(cursor.fetchone()[0])
                other.close()

        return real(**{**kwargs, "progress": recording})

    monkeypatch.setattr(services, "PROGRESS_EVERY_SECONDS", 0)
    monkeypatch.setattr(services, "customers_import_file", spy)
    running = operator_client.get(reverse("customers:import_jobs")).content.decode()
    assert 'hx-trigger="every 1s"' in running, "the table polls while a job waits"
    import_job_run(job_id=job.pk)
    assert any(status == "running" and 0 < p < 100 for status, p in seen), seen
    assert ("running", 100) in seen
    if connection.vendor == "postgresql":
        assert any(0 < p < 100 for p in seen_elsewhere), seen_elsewhere
    done = operator_client.get(reverse("customers:import_jobs")).content.decode()
    assert "every 1s" not in done and "Done" in done


def test_a_malformed_upload_is_refused_at_once_and_nothing_is_queued(operator_client):
    response, delay = upload(operator_client, b"\xff\xfe\x00b\x00i\x00n", name="report.xlsx")
    assert response.status_code == 302
    assert not ImportJob.objects.exists() and not delay.called
    page = operator_client.get(reverse("customers:overview")).content.decode()
    assert "report.xlsx was not imported" in page and "Nothing was changed" in page


def test_a_file_that_turns_out_malformed_in_the_worker_is_rejected_with_the_reason(operator_client):
    content = b"customer_id,state\n" + b"".join(b"C%d,CA\n" % n for n in range(15000)) + b"C,\xff\n"
    upload(operator_client, content)
    job = import_job_run(job_id=ImportJob.objects.get().pk)
    assert job.status == ImportStatus.FAILED and "not UTF-8" in job.message
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_viewers_and_marketers_cannot_import(make_client, role):
    client = make_client(role)
    response, delay = upload(client, GOOD_AND_BAD)
    assert response.status_code == 403 and not ImportJob.objects.exists()
    page = client.get(reverse("customers:overview")).content.decode()
    assert "Import from CSV" not in page


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_viewers_and_marketers_cannot_download_error_reports(make_client, operator_client, role):
    upload(operator_client, GOOD_AND_BAD)
    job = import_job_run(job_id=ImportJob.objects.get().pk)
    response = make_client(role).get(reverse("customers:import_errors", args=[job.pk]))
    assert response.status_code == 403


def test_restricted_pii_operator_sees_masked_identifiers_in_the_error_report(make_client):
    client = make_client(Role.OPERATOR, restricted_pii=True)
    content = (
        b"customer_id,email,phone,country\nC1,secret.person@example.com,+1 415 555 2671,Germany\n"
    )
    upload(client, content)
    job = import_job_run(job_id=ImportJob.objects.get().pk)
    devices = b"customer_id,kind,raw_id\nC1,TV,6d92078a-8246-460b-a3a0-a1a5b0c6b27c\n"
    upload(client, devices, kind="devices")
    device_job = import_job_run(job_id=ImportJob.objects.exclude(pk=job.pk).get().pk)
    page = client.get(reverse("customers:overview")).content.decode()
    assert "secret.person" not in page and "2671" not in page
    report = b"".join(
        client.get(reverse("customers:import_errors", args=[device_job.pk])).streaming_content
    ).decode()
    assert "6d92078a-8246" not in report


def test_restricted_pii_masks_email_and_phone_values_in_reports(make_client, tmp_path):
    client = make_client(Role.OPERATOR, restricted_pii=True)
    upload(client, b"customer_id,email\nC1," + b"x" * 250 + b"@example.com\n")
    job = import_job_run(job_id=ImportJob.objects.get().pk)
    report = b"".join(
        client.get(reverse("customers:import_errors", args=[job.pk])).streaming_content
    ).decode()
    assert "xxxx" not in report and "x***@example.com" in report
