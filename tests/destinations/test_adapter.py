"""The delivery adapter against TikTok's answers: a lost create answer, split batches,
duplicated and partially successful requests, rate limits, expired tokens, unknown
audiences. Over real HTTP against the sandbox, except where the fake is the only way to
get TikTok's answer."""

from __future__ import annotations

import hashlib
import time

import pytest

from destinations.tiktok import errors as e
from destinations.tiktok.adapter import AudienceAdapter, GaveUp, RetryPolicy
from destinations.tiktok.client import TikTokClient
from tests.destinations.conftest import needs_sandbox


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def rows_for(audience_id: str, emails: list[str]) -> list[str]:
    """batch_data entries as the delivery writes them: one JSON array per person."""
    return [f'[{{"id": "{sha(m)}", "audience_ids": ["{audience_id}"]}}]' for m in emails]


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(attempts: int = 6) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=attempts, base_delay=0.001, max_delay=0.01, rate_limit_patience=30
    )


@pytest.fixture
def tiktok(sandbox, settings):
    settings.TIKTOK_API_BASE_URL = sandbox.api_base_url
    settings.TIKTOK_HTTP_TIMEOUT = 2
    advertiser_id = sandbox.advertisers[0][0]
    sandbox.wipe()
    token = sandbox.issue_token([advertiser_id])
    sleeps = Sleeps()
    adapter = AudienceAdapter(
        TikTokClient(token), advertiser_id, policy=policy(), sleep=sleeps, batch_size=100
    )
    return sandbox, adapter, advertiser_id, sleeps


def named(sandbox, advertiser_id: str, name: str) -> list[str]:
    return [a["audience_id"] for a in sandbox.audiences(advertiser_id) if a["name"] == name]


def calls_to(sandbox, endpoint: str) -> list[dict]:
    return [r for r in sandbox.request_log() if r["path"].endswith(endpoint)]


# --- a lost create answer -----------------------------------------------------------------


@needs_sandbox
def test_a_create_whose_answer_is_lost_after_tiktok_created_it_leaves_exactly_one_audience(
    tiktok,
):
    sandbox, adapter, advertiser_id, _ = tiktok
    sandbox.control(drop_answer_rate=1.0, fault_endpoints=["segment/audience/"], fault_limit=1)
    audience_id = adapter.create_audience("Lost answer")
    assert named(sandbox, advertiser_id, "Lost answer") == [audience_id]
    assert len(calls_to(sandbox, "segment/audience/")) == 1  # no second create was sent
    assert len(calls_to(sandbox, "dmp/custom_audience/list/")) >= 1


@needs_sandbox
def test_a_lost_create_answer_then_a_duplicate_refusal_still_leaves_one_audience(tiktok):
    sandbox, adapter, advertiser_id, _ = tiktok
    # The answer is lost; TikTok then also refuses an identical create as a duplicate.
    sandbox.control(
        drop_answer_rate=1.0,
        fault_endpoints=["segment/audience/"],
        fault_limit=1,
        duplicate_window_s=60,
    )
    audience_id = adapter.create_audience("Lost twice")
    assert named(sandbox, advertiser_id, "Lost twice") == [audience_id]


@needs_sandbox
def test_a_create_dropped_before_tiktok_saw_it_is_sent_again_once(tiktok):
    sandbox, adapter, advertiser_id, _ = tiktok
    sandbox.control(drop_rate=1.0, fault_endpoints=["segment/audience/"], fault_limit=1)
    audience_id = adapter.create_audience("Never arrived")
    assert named(sandbox, advertiser_id, "Never arrived") == [audience_id]
    assert [r.get("fault") for r in calls_to(sandbox, "segment/audience/")] == ["drop", None]


@needs_sandbox
def test_the_lookup_ignores_audiences_of_the_same_name_the_product_already_uses(tiktok):
    sandbox, adapter, advertiser_id, _ = tiktok
    older = adapter.create_audience("Weekly")  # last week's delivery, same name
    sandbox.control(drop_answer_rate=1.0, fault_endpoints=["segment/audience/"], fault_limit=1)
    audience_id = adapter.create_audience("Weekly", exclude={older})
    assert audience_id != older
    assert sorted(named(sandbox, advertiser_id, "Weekly")) == sorted([older, audience_id])


@needs_sandbox
def test_a_rate_limited_create_is_retried_without_a_lookup(tiktok):
    sandbox, adapter, advertiser_id, sleeps = tiktok
    sandbox.control(qps=1)
    adapter.client.user_info()  # use up this second's request
    audience_id = adapter.create_audience("Paced")
    assert named(sandbox, advertiser_id, "Paced") == [audience_id]
    assert calls_to(sandbox, "dmp/custom_audience/list/") == []


@needs_sandbox
def test_a_create_that_keeps_failing_gives_up_without_creating_anything(tiktok):
    sandbox, adapter, advertiser_id, _ = tiktok
    adapter.policy = policy(attempts=3)
    sandbox.control(error_rate=1.0, fault_endpoints=["segment/audience/"])
    with pytest.raises(GaveUp):
        adapter.create_audience("Down")
    assert named(sandbox, advertiser_id, "Down") == []
    assert len(calls_to(sandbox, "segment/audience/")) == 3


# --- member batches -------------------------------------------------------------------


@needs_sandbox
@pytest.mark.parametrize("code", [40011, 40061])
def test_a_batch_tiktok_finds_too_large_is_halved_and_every_person_arrives(tiktok, code):
    sandbox, adapter, advertiser_id, _ = tiktok
    audience_id = adapter.create_audience("Split")
    emails = [f"split{n}@example.com" for n in range(90)]
    sandbox.control(batch_limit=25, batch_limit_code=code)
    adapter.send_members(["EMAIL_SHA256"], rows_for(audience_id, emails))
    assert sandbox.audience_members(advertiser_id, audience_id) == {
        "EMAIL_SHA256": {sha(m) for m in emails}
    }
    assert adapter.stats.splits >= 2 and adapter.batch_size <= 25


@needs_sandbox
def test_a_mapping_whose_answer_was_lost_and_then_refused_as_duplicate_is_done(tiktok):
    sandbox, adapter, advertiser_id, _ = tiktok
    audience_id = adapter.create_audience("Dup")
    emails = [f"dup{n}@example.com" for n in range(30)]
    sandbox.control(
        drop_answer_rate=1.0,
        fault_endpoints=["segment/mapping/"],
        fault_limit=1,
        duplicate_window_s=60,
    )
    assert adapter.send_members(["EMAIL_SHA256"], rows_for(audience_id, emails)) == 1
    codes = [(r.get("fault"), r["code"]) for r in calls_to(sandbox, "segment/mapping/")]
    assert codes == [("drop_answer", 0), (None, 40050)]
    assert sandbox.audience_members(advertiser_id, audience_id) == {
        "EMAIL_SHA256": {sha(m) for m in emails}
    }


@needs_sandbox
def test_a_partial_success_counts_as_sent(tiktok):
    sandbox, adapter, advertiser_id, _ = tiktok
    audience_id = adapter.create_audience("Partial")
    sandbox.control(partial_ok_rate=1.0, fault_endpoints=["segment/mapping/"])
    before = adapter.stats.requests
    adapter.send_members(["EMAIL_SHA256"], rows_for(audience_id, ["p@example.com"]))
    assert adapter.stats.retries == 0 and adapter.stats.requests == before + 1
    assert [r["code"] for r in calls_to(sandbox, "segment/mapping/")] == [20001]
    assert sandbox.audience_members(advertiser_id, audience_id) == {
        "EMAIL_SHA256": {sha("p@example.com")}
    }


@needs_sandbox
def test_an_audience_tiktok_no_longer_knows_fails_at_once_with_a_typed_error(tiktok):
    sandbox, adapter, advertiser_id, _ = tiktok
    audience_id = adapter.create_audience("Deleted in Ads Manager")
    adapter.client.delete_audience(advertiser_id, audience_id)
    with pytest.raises(e.AudienceNotFoundError) as info:
        adapter.send_members(["EMAIL_SHA256"], rows_for(audience_id, ["q@example.com"]))
    assert info.value.code == 40002 and adapter.stats.retries == 0


@needs_sandbox
def test_an_expired_token_needs_reauthorization_and_is_not_retried(tiktok):
    sandbox, adapter, _, _ = tiktok
    sandbox.control(token_ttl_s=0)
    with pytest.raises(e.ReauthorizationRequired) as info:
        adapter.create_audience("Expired")
    assert info.value.code == 40102 and adapter.stats.requests == 1


@needs_sandbox
def test_the_per_minute_limit_is_waited_out(tiktok):
    sandbox, adapter, advertiser_id, sleeps = tiktok
    if time.time() % 60 > 55:  # stay inside one of the sandbox's one-minute windows
        time.sleep(60 - time.time() % 60 + 0.1)
    sandbox.control(qpm=1)
    adapter.client.user_info()  # this minute's one request
    adapter.policy.rate_limit_patience = 0.5
    with pytest.raises(GaveUp) as info:
        adapter.create_audience("Per minute")
    assert info.value.last.code == 40132 and adapter.stats.rate_limited >= 2
    assert named(sandbox, advertiser_id, "Per minute") == []


@pytest.mark.parametrize("code", [40100, 40016, 40132, 40133, 61000])
def test_every_rate_limit_code_slows_the_call_down_and_it_then_succeeds(fake, code):
    sleeps = Sleeps()
    adapter = AudienceAdapter(
        TikTokClient(fake.issue_token()), "7000000000000000001", policy=policy(), sleep=sleeps
    )
    fake.faults += [code, code]
    assert adapter.create_audience("Limited") == "7100000000000000001"
    assert adapter.stats.rate_limited == 2 and len(sleeps) >= 2
    assert [p for _, p, _ in fake.calls].count("segment/audience/") == 3


@pytest.mark.parametrize("code", [50000, 51003, 52103, 60001])
def test_server_errors_on_a_mapping_are_retried_with_backoff(fake, code):
    sleeps = Sleeps()
    adapter = AudienceAdapter(
        TikTokClient(fake.issue_token()), "7000000000000000001", policy=policy(), sleep=sleeps
    )
    fake.faults += [code, "html502"]
    adapter.send_members(["EMAIL_SHA256"], ['[{"id": "x", "audience_ids": ["71"]}]'])
    assert adapter.stats.retries == 2 and len(sleeps) == 2
    assert [p for _, p, _ in fake.calls] == ["segment/mapping/"] * 3


@pytest.mark.parametrize("code", [40000, 40001, 40300, 40909, 41234])
def test_permanent_codes_are_not_retried(fake, code):
    adapter = AudienceAdapter(
        TikTokClient(fake.issue_token()), "7000000000000000001", policy=policy(), sleep=Sleeps()
    )
    fake.faults.append(code)
    with pytest.raises(e.PermanentError):
        adapter.send_members(["EMAIL_SHA256"], ['[{"id": "x", "audience_ids": ["71"]}]'])
    assert len(fake.calls) == 1
