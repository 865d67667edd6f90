"""The client against the local TikTok sandbox over real HTTP, one test per error class."""

from __future__ import annotations

import pytest

from destinations.tiktok import errors as e
from destinations.tiktok.client import TikTokClient, exchange_auth_code
from tests.destinations.conftest import needs_sandbox

pytestmark = [needs_sandbox]


@pytest.fixture
def tiktok(sandbox, settings):
    settings.TIKTOK_APP_ID = sandbox.app_id
    settings.TIKTOK_APP_SECRET = sandbox.secret
    settings.TIKTOK_API_BASE_URL = sandbox.api_base_url
    settings.TIKTOK_AUTH_URL = sandbox.auth_url
    settings.TIKTOK_HTTP_TIMEOUT = 1
    advertiser_id = sandbox.advertisers[0][0]
    token = sandbox.issue_token([advertiser_id])
    return sandbox, TikTokClient(token), advertiser_id, token


def test_a_working_token_lists_its_advertiser_and_passes_the_health_check(tiktok):
    sandbox, client, advertiser_id, _ = tiktok
    assert [a.advertiser_id for a in client.list_advertisers()] == [advertiser_id]
    client.user_info()


def test_audiences_are_created_filled_and_read_back(tiktok):
    sandbox, client, advertiser_id, _ = tiktok
    audience_id = client.create_audience(advertiser_id, "x" * 90)
    client.update_members(
        advertiser_id, [audience_id], ["EMAIL_SHA256"], [["a" * 64], ["b" * 64]], "add"
    )
    members = sandbox.audience_members(advertiser_id, audience_id)
    assert members["EMAIL_SHA256"] == {"a" * 64, "b" * 64}
    (status,) = client.get_audiences(advertiser_id, [audience_id])
    assert status.audience_id == audience_id and status.name == "x" * 67 + "..."
    assert audience_id in {a.audience_id for a in client.list_audiences(advertiser_id).audiences}


def test_a_revoked_token_needs_reauthorization(tiktok):
    sandbox, client, _, token = tiktok
    sandbox.revoke_token(token)
    with pytest.raises(e.ReauthorizationRequired) as info:
        client.user_info()
    assert info.value.code == 40105


def test_an_advertiser_the_token_does_not_cover_needs_reauthorization(tiktok):
    sandbox, client, advertiser_id, _ = tiktok
    sandbox.revoke_advertiser(advertiser_id)
    with pytest.raises(e.ReauthorizationRequired):
        client.create_audience(advertiser_id, "n")


def test_a_bogus_auth_code_restarts_authorization(tiktok):
    with pytest.raises(e.AuthorizationRestartRequired):
        exchange_auth_code("not-a-real-code")


@pytest.mark.parametrize(
    "fault", [{"error_rate": 1.0}, {"html_502_rate": 1.0}, {"drop_rate": 1.0}, {"latency_ms": 2500}]
)
def test_server_faults_and_timeouts_are_transient(tiktok, fault):
    sandbox, client, _, _ = tiktok
    sandbox.control(**fault)
    with pytest.raises(e.TransientError) as info:
        client.user_info()
    assert info.value.permanent is False


def test_going_over_the_qps_limit_is_rate_limited(tiktok):
    sandbox, client, _, _ = tiktok
    sandbox.control(qps=1)
    with pytest.raises(e.RateLimitedError):
        for _ in range(10):
            client.user_info()


def test_a_batch_over_the_limit_asks_to_split(tiktok):
    sandbox, client, advertiser_id, _ = tiktok
    audience_id = client.create_audience(advertiser_id, "batch")
    sandbox.control(batch_limit=2)
    with pytest.raises(e.BatchTooLargeError):
        client.update_members(
            advertiser_id, [audience_id], ["EMAIL_SHA256"], [[c * 64] for c in "abc"]
        )


def test_an_audience_still_processing_is_retried_later(tiktok):
    sandbox, client, advertiser_id, _ = tiktok
    audience_id = client.create_audience(advertiser_id, "busy")
    sandbox.control(force_processing=True)
    with pytest.raises(e.StillProcessingError):
        client.update_members(advertiser_id, [audience_id], ["EMAIL_SHA256"], [["d" * 64]])


def test_an_unknown_audience_is_a_permanent_error(tiktok):
    sandbox, client, advertiser_id, _ = tiktok
    with pytest.raises(e.PermanentError) as info:
        client.update_members(advertiser_id, ["9999999999"], ["EMAIL_SHA256"], [["e" * 64]])
    assert not isinstance(info.value, e.ReauthorizationRequired | e.BatchTooLargeError)
