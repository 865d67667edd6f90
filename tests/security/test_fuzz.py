"""Fuzzing every form and the import with hypothesis: no input gets a 500, and a refused
input changes nothing.

Each example runs in a savepoint that is rolled back, so examples start from the same
objects. Run time is bounded (few examples, no deadline) to keep the suite CI-sized; the
example database is off so runs leave no files behind.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Role, User
from campaigns import services as campaign_services
from campaigns.models import Campaign, CampaignEvent, SubAudience, Treatment
from customers.csv_columns import ImportKind
from customers.loading import MalformedFile, load_csv
from customers.models import Customer, ImportJob
from customers.tasks import import_job_run_task
from destinations.models import DefaultAttribute
from destinations.services import tiktok_default_attributes
from segments.compiler import ATTRIBUTES, BEHAVIOURS, OPERATORS
from segments.models import CustomerList, Segment, SegmentVersion
from tests.factories import CampaignFactory, CustomerFactory, DestinationFactory, SegmentFactory

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    print_blob=True,  # a failure prints the line that reproduces it
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies --------------------------------------------------------------------------

# Any text a browser can send (UTF-8, so no lone surrogates), with NUL and markup likely.
texts = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=40),
    st.sampled_from(["", "\x00", "a\x00b", "<script>", "9" * 400, "💥", " ", "-1", "1e999"]),
)
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=20,
)

ALL_OPERATORS = sorted({op for ops in OPERATORS.values() for op in ops})
date_values = st.one_of(
    st.dates().map(str),
    st.fixed_dictionaries({"ago": numbers, "unit": st.sampled_from(["days", "weeks", 1])}),
    texts,
)
conditions = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("attribute"),
            "attribute": st.one_of(st.sampled_from(sorted(ATTRIBUTES)), texts, json_values),
            "operator": st.one_of(st.sampled_from(ALL_OPERATORS), texts),
            "value": st.one_of(scalars, st.lists(scalars, max_size=3), date_values),
            "value2": st.one_of(scalars, date_values),
            "unit": st.sampled_from(["days", "months", "years", "x"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("purchase"),
            "behaviour": st.one_of(st.sampled_from(sorted(BEHAVIOURS)), texts),
            "operator": st.sampled_from(["gte", "lt", "between", "in", "x"]),
            "value": scalars,
            "value2": scalars,
            "window": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {
                        "kind": st.just("last"),
                        "amount": numbers,
                        "unit": st.sampled_from(["days", "years", ""]),
                    }
                ),
                st.fixed_dictionaries(
                    {"kind": st.just("between"), "start": date_values, "end": date_values}
                ),
                json_values,
            ),  # fmt: skip
            "filters": st.one_of(
                st.dictionaries(st.sampled_from(["brand", "channel", "x"]), json_values),
                json_values,
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["segment", "id_list"]),
            "operator": st.sampled_from(["in", "not_in", "x"]),
            "segment_id": st.one_of(numbers, texts),
            "list_id": st.one_of(numbers, texts),
        }
    ),
    json_values,
)
groups = st.fixed_dictionaries(
    {
        "combinator": st.sampled_from(["and", "or", "xor"]),
        "conditions": st.one_of(st.lists(conditions, max_size=3), json_values),
    }
)
definitions = st.one_of(
    st.fixed_dictionaries(
        {
            "version": st.sampled_from([1, 1, 1, 2, "1"]),
            "combinator": st.sampled_from(["and", "or", None]),
            "sections": st.one_of(st.lists(groups, max_size=3), json_values),
            "exclusions": st.one_of(groups, json_values),
        }
    ),
    json_values,
)
raw_definitions = st.one_of(
    definitions.map(json.dumps),
    texts,
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)

# -- helpers -----------------------------------------------------------------------------


def rolled_back(check):  # type: ignore[no-untyped-def]
    """Run one example in a savepoint that is rolled back afterwards."""
    with transaction.atomic():
        check()
        transaction.set_rollback(True)


def segment_state(pk: int) -> tuple:
    segment = Segment.objects.get(pk=pk)
    versions = SegmentVersion.objects.filter(segment_id=pk).count()
    return (segment.name, segment.definition, segment.sql, segment.status, versions,
            Segment.objects.count())  # fmt: skip


def campaign_state(pk: int) -> tuple:
    return (
        list(Campaign.objects.filter(pk=pk).values()),
        list(SubAudience.objects.filter(campaign_id=pk).order_by("pk").values()),
        list(Treatment.objects.filter(sub_audience__campaign_id=pk).order_by("pk").values()),
        CampaignEvent.objects.filter(campaign_id=pk).count(),
        Campaign.objects.count(),
    )


def no_server_error(response: Any) -> None:
    assert response.status_code < 500, response.content[:500]


@pytest.fixture
def marketer(make_client):
    return make_client(Role.MARKETER)


# -- segments ----------------------------------------------------------------------------


@FUZZ
@given(raw=raw_definitions, name=texts)
def test_segment_definitions_never_500_and_refusals_change_nothing(marketer, raw, name):
    def check() -> None:
        segment: Any = SegmentFactory(status="draft")
        before = segment_state(segment.pk)
        response = marketer.post(
            reverse("segments:edit", args=[segment.pk]), {"name": name, "definition": raw}
        )
        no_server_error(response)
        if response.status_code != 302:
            assert response.status_code in (400, 403)
            assert segment_state(segment.pk) == before
        no_server_error(marketer.post(reverse("segments:insights"), {"definition": raw}))
        no_server_error(
            marketer.post(reverse("segments:editor"), {"definition": raw, "op": "refresh"})
        )

    rolled_back(check)


@FUZZ
@given(name=texts, kind=st.one_of(st.sampled_from(["visual", "sql"]), texts), sql=texts)
def test_new_segments_and_sql_never_500(marketer, name, kind, sql):
    def check() -> None:
        count = Segment.objects.count()
        response = marketer.post(reverse("segments:new"), {"name": name, "kind": kind})
        no_server_error(response)
        if response.status_code != 302:
            assert Segment.objects.count() == count
        no_server_error(marketer.post(reverse("segments:insights"), {"sql": sql}))

    rolled_back(check)


@FUZZ
@given(
    action=st.sampled_from(["rename", "restore", "refresh", "nothing"]),
    name=texts,
    number=st.one_of(texts, numbers.map(str)),
)
def test_segment_actions_never_500(marketer, action, name, number):
    def check() -> None:
        segment: Any = SegmentFactory(status="draft")
        before = segment_state(segment.pk)
        response = marketer.post(
            reverse("segments:action", args=[segment.pk, action]), {"name": name, "number": number}
        )
        no_server_error(response)
        if action == "nothing":
            assert response.status_code == 404
        if action != "rename" or not name.strip() or "\x00" in name or len(name.strip()) > 200:
            assert segment_state(segment.pk)[:2] == before[:2]

    rolled_back(check)


@FUZZ
@given(ids=st.lists(st.one_of(texts, numbers.map(str)), max_size=8))
def test_compare_never_500(marketer, ids):
    no_server_error(marketer.get(reverse("segments:compare"), {"ids": ids}))


# -- campaigns ---------------------------------------------------------------------------

STEPS = [
    "name", "audience", "sub_add", "treatment_update", "timing", "launch", "attributes",
    "first_match", "sub_reorder", "destination", "sub_move",
]  # fmt: skip
timing_fields = st.fixed_dictionaries(
    {},
    optional={
        "timing_mode": st.one_of(st.sampled_from(["one_time", "recurring"]), texts),
        "asap": st.sampled_from(["0", "1", "x"]),
        "run_date": st.one_of(st.dates().map(str), texts),
        "run_time": st.one_of(st.times().map(lambda t: t.strftime("%H:%M")), texts),
        "cadence": st.one_of(st.sampled_from(["daily", "weekly", "monthly"]), texts),
        "weekdays": st.lists(st.one_of(st.integers(-3, 9).map(str), texts), max_size=3),
        "month_day": st.one_of(numbers.map(str), texts),
        "time_of_day": st.one_of(st.times().map(lambda t: t.strftime("%H:%M")), texts),
        "timezone": st.one_of(st.sampled_from(["UTC", "Asia/Tokyo", "Etc/GMT+12"]), texts),
        "start_date": st.one_of(st.dates().map(str), texts),
        "end_mode": st.one_of(st.sampled_from(["never", "on_date", "after_n"]), texts),
        "end_date": st.one_of(st.dates().map(str), texts),
        "end_count": st.one_of(numbers.map(str), texts),
    },
)


@FUZZ
@given(
    step=st.sampled_from(STEPS),
    data=st.dictionaries(texts, texts, max_size=4),
    timing=timing_fields,
    criteria=raw_definitions,
    text=texts,
    ids=st.lists(st.one_of(texts, numbers.map(str)), max_size=4),
)
def test_campaign_editor_steps_never_500_and_refusals_change_nothing(
    marketer, step, data, timing, criteria, text, ids
):
    with transaction.atomic():
        _campaign_step(marketer, step, data, timing, criteria, text, ids)
        transaction.set_rollback(True)


def _campaign_step(marketer, step, data, timing, criteria, text, ids) -> None:  # type: ignore[no-untyped-def]
    campaign: Any = CampaignFactory(created_by=marketer.user)
    treatment = campaign.sub_audiences.get().treatments.first()
    destination: Any = DestinationFactory()
    DefaultAttribute.objects.bulk_create(tiktok_default_attributes(destination))
    campaign_services.treatment_set_destinations(
        treatment=treatment, user=marketer.user, destination_ids=[destination.pk]
    )
    posts = {
        "name": ("campaigns:name", [campaign.pk], {"name": text}),
        "audience": ("campaigns:audience", [campaign.pk],
                     {"include_present": "1", "include": ids, "exclude_present": "1",
                      "exclude": ids[::-1]}),
        "sub_add": ("campaigns:sub_add", [campaign.pk],
                    {"name": text, "kind": data.get("kind", "criteria"), "criteria": criteria,
                     "segment_id": ids[0] if ids else ""}),
        "treatment_update": ("campaigns:treatment_update", [campaign.pk, treatment.pk],
                             {"name": text, "split": ids[0] if ids else text,
                              "control_present": "1", "is_control": data.get("c", "on"),
                              "destinations_present": "1", "destinations": ids}),
        "timing": ("campaigns:timing", [campaign.pk], timing),
        "launch": ("campaigns:launch", [campaign.pk],
                   {"launch_date": timing.get("run_date", text),
                    "launch_time": timing.get("run_time", text)}),
        "attributes": ("campaigns:attributes", [campaign.pk],
                       {"destination": ids[0] if ids else "", "attribute": ids + [text],
                        **{f"table_{k}": v for k, v in data.items()},
                        **{f"column_{k}": v for k, v in data.items()}}),
        "first_match": ("campaigns:first_match", [campaign.pk], {"first_match_only": text}),
        "sub_reorder": ("campaigns:sub_reorder", [campaign.pk], {"order": ids}),
        "destination": ("campaigns:destination",
                        [campaign.pk, campaign.campaign_destinations.get().pk],
                        {"refresh_mode": text}),
        "sub_move": ("campaigns:sub_move", [campaign.pk, campaign.sub_audiences.get().pk],
                     {"direction": text}),
    }  # fmt: skip
    name, args, payload = posts[step]
    before = campaign_state(campaign.pk)
    response = marketer.post(reverse(name, args=args), {**data, **payload})
    no_server_error(response)
    if response.status_code >= 400:
        assert campaign_state(campaign.pk) == before
    page = marketer.get(reverse("campaigns:edit", args=[campaign.pk]))
    no_server_error(page)
    no_server_error(marketer.get(reverse("campaigns:counts", args=[campaign.pk])))


@FUZZ
@given(name=texts)
def test_new_campaigns_never_500(marketer, name):
    def check() -> None:
        count = Campaign.objects.count()
        response = marketer.post(reverse("campaigns:new"), {"name": name})
        no_server_error(response)
        if response.status_code != 302:
            assert Campaign.objects.count() == count

    rolled_back(check)


# -- customer lists and deleting customers -----------------------------------------------


@FUZZ
@given(name=texts, content=st.binary(max_size=300))
def test_customer_list_uploads_never_500(marketer, name, content):
    def check() -> None:
        upload = SimpleUploadedFile("ids.csv", content, content_type="text/csv")
        response = marketer.post(reverse("segments:lists"), {"name": name, "file": upload})
        no_server_error(response)
        if response.status_code != 302:
            assert not CustomerList.objects.exists()

    rolled_back(check)


@FUZZ
@given(ids=texts, confirm=st.sampled_from(["", "on", "x"]))
def test_deleting_customers_never_500(make_client, ids, confirm):
    operator = make_client(Role.OPERATOR)

    def check() -> None:
        CustomerFactory(customer_id="KEEP1")
        response = operator.post(
            reverse("customers:delete"), {"customer_ids": ids, "confirm": confirm}
        )
        no_server_error(response)
        if "KEEP1" not in ids or not confirm:
            assert Customer.objects.filter(customer_id="KEEP1").exists()

    rolled_back(check)


# -- default attributes (operators) ------------------------------------------------------


@FUZZ
@given(data=st.dictionaries(
    st.one_of(st.sampled_from([f"{a}-{f}" for a in ("EMAIL", "PHONE", "IDFA", "AAID")
                               for f in ("source_table", "source_attribute", "enabled")]),
              texts),
    texts, max_size=8))  # fmt: skip
def test_default_attributes_never_500_and_refusals_change_nothing(make_client, data):
    operator = make_client(Role.OPERATOR)

    def check() -> None:
        destination: Any = DestinationFactory()
        DefaultAttribute.objects.bulk_create(tiktok_default_attributes(destination))

        def rows() -> list:
            attributes = DefaultAttribute.objects.filter(destination=destination)
            return list(attributes.order_by("pk").values())

        before = rows()
        response = operator.post(reverse("destinations:attributes", args=[destination.pk]), data)
        no_server_error(response)
        if response.status_code >= 400:
            assert rows() == before

    rolled_back(check)


# -- users (admins) ----------------------------------------------------------------------


@FUZZ
@given(
    username=texts,
    email=texts,
    role=st.one_of(st.sampled_from(list(Role.values)), texts),
    password=st.one_of(texts, st.just("a-long-enough-passphrase")),
    flags=st.dictionaries(st.sampled_from(["restricted_pii", "is_active"]), texts),
)
def test_user_admin_forms_never_500_and_refusals_change_nothing(
    make_client, username, email, role, password, flags
):
    admin = make_client(Role.ADMIN)

    def check() -> None:
        other = User.objects.create(username="someone", role=Role.VIEWER)
        count = User.objects.count()
        response = admin.post(
            reverse("accounts:user_add"),
            {"username": username, "email": email, "role": role, "password": password, **flags},
        )
        no_server_error(response)
        if response.status_code != 302:
            assert User.objects.count() == count
        before = list(User.objects.filter(pk=other.pk).values())
        response = admin.post(
            reverse("accounts:user_edit", args=[other.pk]), {"role": role, **flags}
        )
        no_server_error(response)
        if response.status_code != 302:
            assert list(User.objects.filter(pk=other.pk).values()) == before

    rolled_back(check)


# -- the import --------------------------------------------------------------------------


@FUZZ
@given(content=st.one_of(st.binary(max_size=400),
                         st.text(max_size=300).map(lambda t: ("customer_id,email\n" + t).encode())),
       kind=st.sampled_from(list(ImportKind)), name=texts)  # fmt: skip
def test_uploading_random_bytes_never_500(make_client, settings, tmp_path, content, kind, name):
    settings.MEDIA_ROOT = tmp_path
    operator = make_client(Role.OPERATOR)

    def check() -> None:
        jobs = ImportJob.objects.count()
        upload = SimpleUploadedFile(name or "x.csv", content, content_type="text/csv")
        with mock.patch.object(import_job_run_task, "delay"):
            response = operator.post(
                reverse("customers:import_upload"), {"kind": kind.value, "file": upload}
            )
        assert response.status_code == 302
        created = ImportJob.objects.count() - jobs
        # Either queued (one job) or refused with a message (no job, nothing stored).
        assert created in (0, 1)
        text = operator.get(reverse("customers:overview")).content.decode()
        if not created:
            assert "was not imported" in text or "Choose a CSV file" in text

    rolled_back(check)


# Characters that end a line for Python's csv reader or str.splitlines, and the quote.
LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
safe_cell = st.text(st.characters(whitelist_categories=["Lu", "Ll", "Nd"]), min_size=1, max_size=12)
garbage_line = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters=LINE_BREAKS + '"'),
    max_size=60,
).map(lambda t: "~" + t)  # fmt: skip


@FUZZ
@given(
    good=st.lists(st.tuples(safe_cell, safe_cell), max_size=8, unique_by=lambda r: r[0]),
    garbage=st.lists(garbage_line, max_size=5),
    order=st.randoms(use_true_random=False),
)
def test_random_csv_rows_import_correctly_or_are_reported(tmp_path, good, garbage, order):
    """Good rows land exactly as written; other lines are reported as bad rows or refused,
    and never change a good row. The oracle is the list of good rows we wrote."""
    lines = [f"G{cid},{given}" for cid, given in good] + garbage
    order.shuffle(lines)
    path = tmp_path / "customers.csv"
    path.write_bytes(("customer_id,given_name\n" + "\n".join(lines) + "\n").encode())

    def check() -> None:
        before = Customer.objects.count()
        try:
            result = load_csv(
                ImportKind.CUSTOMERS, Path(path), error_report=tmp_path / "errors.csv", workers=0
            )
        except MalformedFile as exc:
            assert str(exc)
            assert Customer.objects.count() == before
            return
        stored = dict(
            Customer.objects.filter(customer_id__startswith="G").values_list(
                "customer_id", "given_name"
            )
        )
        assert stored == {f"G{cid}": given for cid, given in good}
        assert result.rows_read == len(lines)
        assert result.error_rows <= len(garbage)

    rolled_back(check)


def test_the_fuzz_strategies_produce_what_they_claim():
    # The strategies above must reach the interesting inputs, or the fuzzing proves little.
    seen = {"nul": False, "deep": False, "dict": False}

    @settings(max_examples=200, deadline=None, database=None)
    @given(raw=raw_definitions)
    def probe(raw: str) -> None:
        seen["nul"] |= "\\u0000" in raw or "\x00" in raw
        seen["deep"] |= raw.startswith("[[[")
        seen["dict"] |= raw.startswith("{")

    probe()
    assert all(seen.values()), seen


def test_load_csv_refuses_a_file_without_the_key_column(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"given_name\nAnn\n")
    with pytest.raises(MalformedFile):
        load_csv(ImportKind.CUSTOMERS, path, error_report=tmp_path / "e.csv", workers=0)
    assert not io.BytesIO(path.read_bytes()).read().startswith(b"customer_id")
