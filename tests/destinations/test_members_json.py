"""TikTokClient.update_members_json (batch_data serialized elsewhere) against the sandbox:
the members land as with update_members, and failures raise the same typed errors."""

from __future__ import annotations

import json

import pytest

from destinations.tiktok import errors as e
from destinations.tiktok.client import TikTokClient
from tests.destinations.conftest import needs_sandbox

pytestmark = [needs_sandbox]


@pytest.fixture
def tiktok(sandbox, settings):
    settings.TIKTOK_API_BASE_URL = sandbox.api_base_url
    settings.TIKTOK_HTTP_TIMEOUT = 1
    advertiser_id = sandbox.advertisers[0][0]
    token = sandbox.issue_token([advertiser_id])
    return sandbox, advertiser_id, token


def entry(value: str | None, audience_id: str) -> dict:
    return {"id": value, "audience_ids": [audience_id]} if value else {}


def rows(audience_id: str, *people: tuple[str | None, str | None]) -> list[str]:
    return [json.dumps([entry(v, audience_id) for v in person]) for person in people]


def test_serialized_rows_add_and_delete_members_like_update_members(tiktok):
    sandbox, advertiser_id, token = tiktok
    client = TikTokClient(token)
    audience_id = client.create_audience(advertiser_id, "serialized")
    schema = ["EMAIL_SHA256", "PHONE_SHA256"]
    people = [("a" * 64, "1" * 64), ("b" * 64, None), (None, "2" * 64)]
    client.update_members_json(advertiser_id, schema, rows(audience_id, *people), "add")
    assert sandbox.audience_members(advertiser_id, audience_id) == {
        "EMAIL_SHA256": {"a" * 64, "b" * 64},
        "PHONE_SHA256": {"1" * 64, "2" * 64},
    }
    client.update_members_json(advertiser_id, schema, rows(audience_id, people[0]), "delete")
    members = sandbox.audience_members(advertiser_id, audience_id)
    assert members["EMAIL_SHA256"] == {"b" * 64}
    assert members["PHONE_SHA256"] == {"2" * 64}


def test_a_revoked_token_raises_reauthorization_and_calls_the_hook(tiktok):
    sandbox, advertiser_id, token = tiktok
    seen = []
    client = TikTokClient(token, on_auth_error=seen.append)
    audience_id = client.create_audience(advertiser_id, "revoked")
    sandbox.revoke_token(token)
    with pytest.raises(e.ReauthorizationRequired) as info:
        client.update_members_json(
            advertiser_id, ["EMAIL_SHA256"], rows(audience_id, ("c" * 64,)), "add"
        )
    assert seen == [info.value]


@pytest.mark.parametrize(
    ("switches", "expected"),
    [
        ({"error_rate": 1.0}, e.TransientError),
        ({"html_502_rate": 1.0}, e.TransientError),
        ({"drop_rate": 1.0}, e.TransientError),
        ({"batch_limit": 1}, e.BatchTooLargeError),
        ({"force_processing": True}, e.StillProcessingError),
    ],
)
def test_faults_map_to_the_same_errors_as_every_call(tiktok, switches, expected):
    sandbox, advertiser_id, token = tiktok
    client = TikTokClient(token)
    audience_id = client.create_audience(advertiser_id, "faults")
    sandbox.control(**switches)
    with pytest.raises(expected):
        client.update_members_json(
            advertiser_id, ["EMAIL_SHA256"], rows(audience_id, ("d" * 64,), ("e" * 64,)), "add"
        )
    sandbox.reset()
    assert not sandbox.audience_members(advertiser_id, audience_id).get("EMAIL_SHA256")


def test_a_malformed_row_is_refused_by_tiktok_and_a_wrong_base_url_names_the_setting(
    tiktok, settings
):
    sandbox, advertiser_id, token = tiktok
    client = TikTokClient(token)
    audience_id = client.create_audience(advertiser_id, "malformed")
    with pytest.raises(e.PermanentError):
        client.update_members_json(advertiser_id, ["EMAIL_SHA256"], ['[{"id": 5}]'], "add")
    wrong = TikTokClient(token, base_url=sandbox.url + "/not-the-api/")
    with pytest.raises(e.AppConfigurationError, match="TIKTOK_API_BASE_URL"):
        wrong.update_members_json(
            advertiser_id, ["EMAIL_SHA256"], rows(audience_id, ("f" * 64,)), "add"
        )


def test_bad_arguments_are_refused_before_any_request(tiktok):
    sandbox, advertiser_id, token = tiktok
    client = TikTokClient(token)
    sandbox.reset()
    with pytest.raises(ValueError, match="id_schema"):
        client.update_members_json(advertiser_id, ["EMAIL_SHA256", "EMAIL_SHA256"], ["[]"])
    with pytest.raises(ValueError, match="action"):
        client.update_members_json(advertiser_id, ["EMAIL_SHA256"], ["[]"], "replace")  # type: ignore[arg-type]
    assert sandbox.request_log() == []
