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
    assert client.create_audience("7000000000000000001", "c" * 80, "EMAIL_SHA256")
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
