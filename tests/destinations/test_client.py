from __future__ import annotations

import pytest
import requests

from destinations.tiktok import errors as e
from destinations.tiktok.client import (
    AudienceStatus,
    TikTokClient,
    audience_name,
    exchange_auth_code,
)


def test_auth_code_exchange_returns_a_token_and_the_advertisers(fake):
    code = fake.grant_code(["7000000000000000002"])
    grant = exchange_auth_code(code)
    assert grant.advertiser_ids == ["7000000000000000002"]
    assert grant.access_token in fake.tokens
    assert grant.access_token not in repr(grant)


def test_a_used_auth_code_asks_to_restart_authorization(fake):
    code = fake.grant_code()
    exchange_auth_code(code)
    with pytest.raises(e.AuthorizationRestartRequired) as info:
        exchange_auth_code(code)
    assert info.value.code == 40115


def test_every_path_ends_with_a_slash_and_uses_the_access_token_header(fake):
    client = TikTokClient(fake.issue_token())
    assert client.user_info().display_name == "Ops"
    assert [p for _, p, _ in fake.calls] == ["user/info/"]


def test_long_audience_names_are_cut_to_67_characters_plus_dots(fake):
    assert audience_name("a" * 70) == "a" * 70
    assert audience_name("b" * 71) == "b" * 67 + "..."
    client = TikTokClient(fake.issue_token())
    assert client.create_audience("7000000000000000001", "c" * 80)
    assert fake.calls[-1][2]["custom_audience_name"] == "c" * 67 + "..."


def test_member_rows_become_positional_batch_data_with_empty_objects_for_gaps(fake):
    client = TikTokClient(fake.issue_token())
    client.update_members(
        "7000000000000000001",
        ["A1"],
        ["EMAIL_SHA256", "PHONE_SHA256"],
        [["e1", None], [None, "p2"]],
    )
    body = fake.calls[-1][2]
    assert body["advertiser_ids"] == ["7000000000000000001"]
    assert body["batch_data"] == [
        [{"id": "e1", "audience_ids": ["A1"]}, {}],
        [{}, {"id": "p2", "audience_ids": ["A1"]}],
    ]
    with pytest.raises(ValueError):
        client.update_members("1", ["A1"], ["EMAIL_SHA256", "EMAIL_SHA256"], [])


def test_audience_status_is_parsed_into_dataclasses(fake):
    client = TikTokClient(fake.issue_token())
    statuses = client.get_audiences("7000000000000000001", ["71", "72"])
    assert statuses[0] == AudienceStatus(
        audience_id="71",
        name="aud",
        cover_num=1200,
        is_valid=True,
        history=[{"action": "create", "msg": "", "opt_time": "t"}],
    )
    assert fake.calls[-1][2]["custom_audience_ids"] == '["71", "72"]'


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("html502", e.TransientError),
        (50000, e.TransientError),
        (40100, e.RateLimitedError),
        (40011, e.BatchTooLargeError),
        (40002, e.PermanentError),
        (requests.ConnectTimeout("https://x/?secret=fake-secret"), e.TransientError),
        (requests.ConnectionError("dropped https://x/?secret=fake-secret"), e.TransientError),
    ],
)
def test_faults_become_typed_errors_without_leaking_secrets(fake, fault, expected):
    fake.faults.append(fault)
    token = fake.issue_token()
    with pytest.raises(expected) as info:
        TikTokClient(token).list_advertisers()
    assert "fake-secret" not in str(info.value)
    assert token not in str(info.value)


def test_an_auth_error_calls_the_destination_hook_before_raising(fake):
    seen = []
    token = fake.issue_token()
    fake.revoke(token)
    client = TikTokClient(token, on_auth_error=seen.append)
    with pytest.raises(e.ReauthorizationRequired):
        client.user_info()
    assert [err.code for err in seen] == [40105]


# --- answers the product must understand -----------------------------------------------


def envelope(status: int, code: int, message: str = "m", data: dict | None = None):
    from tests.destinations.fake_tiktok import FakeResponse

    return FakeResponse(
        status, {"code": code, "message": message, "request_id": "rq", "data": data or {}}
    )


def test_creating_an_audience_no_longer_sends_id_type(fake):
    client = TikTokClient(fake.issue_token())
    client.create_audience("7000000000000000001", "no id type")
    _, path, body = fake.calls[-1]
    assert path == "segment/audience/"
    assert body == {
        "advertiser_id": "7000000000000000001",
        "action": "create",
        "custom_audience_name": "no id type",
    }


def test_a_partial_success_is_a_success_with_its_data_and_is_logged(fake, caplog):
    fake.faults.append(envelope(200, 20001, "partial ok", {"audience_id": "7100000000000000009"}))
    client = TikTokClient(fake.issue_token())
    with caplog.at_level("WARNING", logger="destinations.tiktok.client"):
        assert client.create_audience("7000000000000000001", "p") == "7100000000000000009"
    assert any("20001" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, 40100, e.RateLimitedError),
        (401, 40105, e.ReauthorizationRequired),
        (403, 40001, e.NoPermissionError),
        (500, 40002, e.PermanentError),
        (429, 61000, e.RateLimitedError),
        (503, 50000, e.TransientError),
    ],
)
def test_a_non_200_answer_with_an_envelope_is_classified_by_its_code(fake, status, code, expected):
    fake.faults.append(envelope(status, code, "from the envelope"))
    with pytest.raises(e.TikTokError) as info:
        TikTokClient(fake.issue_token()).user_info()
    assert type(info.value) is expected
    assert info.value.code == code and info.value.message == "from the envelope"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, e.TransientError), (503, e.TransientError), (429, e.RateLimitedError)],
)
def test_a_non_200_answer_without_an_envelope_is_a_transport_fault(fake, status, expected):
    from tests.destinations.fake_tiktok import FakeResponse

    fake.faults.append(FakeResponse(status, None, html=True))
    with pytest.raises(e.TikTokError) as info:
        TikTokClient(fake.issue_token()).user_info()
    assert type(info.value) is expected and info.value.code is None


def test_a_non_200_answer_claiming_success_is_not_trusted(fake):
    fake.faults.append(envelope(502, 0, "OK"))
    with pytest.raises(e.TransientError):
        TikTokClient(fake.issue_token()).user_info()


def test_a_duplicated_mapping_request_counts_as_done(fake):
    client = TikTokClient(fake.issue_token())
    fake.faults.append(40050)
    client.update_members("7000000000000000001", ["A1"], ["EMAIL_SHA256"], [["e1"]])
    fake.faults.append(40050)
    client.update_members_json("7000000000000000001", ["EMAIL_SHA256"], ["[{}]"], "delete")
    assert [p for _, p, _ in fake.calls] == ["segment/mapping/", "segment/mapping/"]
    assert fake.calls[-1][2]["action"] == "delete"


def test_a_duplicated_create_is_not_counted_as_done(fake):
    fake.faults.append(40050)
    with pytest.raises(e.DuplicatedRequestError):
        TikTokClient(fake.issue_token()).create_audience("7000000000000000001", "dup")


def test_a_mapping_for_an_unknown_audience_names_it(fake):
    fake.faults.append(envelope(200, 40002, "invalid audience ID"))
    with pytest.raises(e.AudienceNotFoundError) as info:
        TikTokClient(fake.issue_token()).update_members(
            "7000000000000000001", ["71", "72"], ["EMAIL_SHA256"], [["e1"]]
        )
    assert info.value.audience_ids == ("71", "72")


def test_audience_statuses_sorts_out_the_audiences_tiktok_no_longer_knows(fake):
    fake.unknown_audiences = {"73", "76"}
    client = TikTokClient(fake.issue_token())
    lookup = client.audience_statuses("7000000000000000001", [str(n) for n in range(70, 80)])
    assert sorted(lookup.unknown) == ["73", "76"]
    assert sorted(lookup.found) == sorted({str(n) for n in range(70, 80)} - {"73", "76"})
    assert all(isinstance(err, e.AudienceNotFoundError) for err in lookup.unknown.values())


def test_one_unknown_audience_among_a_hundred_costs_a_few_requests_not_a_hundred(fake):
    ids = [str(7100 + n) for n in range(100)]
    fake.unknown_audiences = {ids[42]}
    lookup = TikTokClient(fake.issue_token()).audience_statuses("7000000000000000001", ids)
    assert list(lookup.unknown) == [ids[42]] and len(lookup.found) == 99
    # Halving: the first request, then two halves per level down to the one id (7 levels).
    assert len(fake.calls) <= 1 + 2 * 7


def test_audience_statuses_lets_other_errors_through(fake):
    fake.faults.append(40300)
    with pytest.raises(e.NotFoundError) as info:
        TikTokClient(fake.issue_token()).audience_statuses("7000000000000000001", ["71"])
    assert info.value.code == 40300
    fake.faults.append(50000)
    with pytest.raises(e.TransientError):
        TikTokClient(fake.issue_token()).audience_statuses("7000000000000000001", ["71"])
