"""Fault injection switches, the control guard and the inspection guard."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures.sandbox import SandboxServer

from .conftest import ADV1


def test_error_rate_answers_50000_in_the_envelope(sandbox, api):
    sandbox.control(error_rate=1.0)
    response = requests.get(sandbox.api_base_url + "user/info/", headers=api.headers(), timeout=5)
    assert response.status_code == 200 and response.json()["code"] == 50000


def test_html_502_rate_answers_a_real_502_with_an_html_body(sandbox, api):
    sandbox.control(html_502_rate=1.0)
    response = requests.get(sandbox.api_base_url + "user/info/", headers=api.headers(), timeout=5)
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html") and "<html>" in response.text


def test_drop_rate_closes_the_connection_without_an_answer(sandbox, api):
    sandbox.control(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        requests.get(sandbox.api_base_url + "user/info/", headers=api.headers(), timeout=5)
    sandbox.reset()
    assert api.get("user/info/")["code"] == 0  # the server survived


def test_a_dropped_mapping_request_stores_nothing(sandbox, api):
    from .conftest import person

    audience_id = api.create_audience()
    sandbox.control(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api.mapping(audience_id, [person(1)])
    sandbox.reset()
    assert sandbox.audience_members(ADV1, audience_id) == {}


def test_latency_ms_slows_every_answer(sandbox, api):
    sandbox.control(latency_ms=300)
    began = time.monotonic()
    assert api.get("user/info/")["code"] == 0
    assert time.monotonic() - began >= 0.3


def test_partial_error_rate_fails_some_requests_not_all(sandbox, api):
    sandbox.control(error_rate=0.5)
    codes = [api.get("user/info/")["code"] for _ in range(60)]
    assert 10 <= codes.count(50000) <= 50 and codes.count(0) == 60 - codes.count(50000)


def test_fault_limit_injects_exactly_that_many_faults(sandbox, api):
    sandbox.control(error_rate=1.0, fault_limit=2)
    assert [api.get("user/info/")["code"] for _ in range(4)] == [50000, 50000, 0, 0]


def test_fault_endpoints_limit_faults_to_the_named_endpoints(sandbox, api):
    sandbox.control(error_rate=1.0, fault_endpoints=["segment/mapping/"])
    assert api.get("user/info/")["code"] == 0
    assert api.post("segment/mapping/", {})["code"] == 50000


def test_reset_turns_every_fault_off_and_restores_defaults(sandbox, api):
    sandbox.control(error_rate=1.0, latency_ms=10, qps=1, match_rate=0.1, force_processing=True)
    sandbox.reset()
    settings = sandbox.settings()
    assert settings["error_rate"] == 0 and settings["latency_ms"] == 0 and settings["qps"] == 1000
    assert settings["match_rate"] == 0.7 and settings["force_processing"] is False
    assert api.get("user/info/")["code"] == 0


def test_faults_are_in_the_request_log(sandbox, api):
    sandbox.control(html_502_rate=1.0, fault_limit=1)
    requests.get(sandbox.api_base_url + "user/info/", headers=api.headers(), timeout=5)
    assert sandbox.request_log()[-1]["fault"] == "html_502"


def test_bad_switch_values_are_refused_with_400(sandbox):
    for body in (
        {"error_rate": 2},
        {"qps": "fast"},
        {"no_such_switch": 1},
        {"force_processing": "yes"},
    ):
        response = sandbox.http.post(sandbox.url + "/_sandbox/control/", json=body, timeout=5)
        assert response.status_code == 400, body


def test_control_without_the_key_is_403(sandbox):
    response = requests.post(
        sandbox.url + "/_sandbox/control/", json={"error_rate": 1.0}, timeout=5
    )
    assert response.status_code == 403
    wrong = requests.post(
        sandbox.url + "/_sandbox/control/reset", headers={"X-Sandbox-Control": "guess"}, timeout=5
    )
    assert wrong.status_code == 403
    assert sandbox.settings()["error_rate"] == 0


def test_redirect_uris_must_be_http_urls(sandbox):
    response = sandbox.http.post(
        sandbox.url + "/_sandbox/control/redirect_uri",
        json={"uri": "javascript:alert(1)"},
        timeout=5,
    )
    assert response.status_code == 400


@pytest.fixture(scope="module")
def locked_sandbox(tmp_path_factory) -> Iterator[SandboxServer]:
    server = SandboxServer(
        Path(tmp_path_factory.mktemp("locked")), enable_control=False, enable_inspection=False
    )
    server.start()
    yield server
    server.stop()


def test_control_and_inspection_are_404_unless_enabled(locked_sandbox):
    headers = {"X-Sandbox-Control": locked_sandbox.key}
    assert (
        requests.post(
            locked_sandbox.url + "/_sandbox/control/", json={}, headers=headers, timeout=5
        ).status_code
        == 404
    )
    assert (
        requests.get(locked_sandbox.url + "/_sandbox/inspect/requests/", timeout=5).status_code
        == 404
    )
    assert requests.get(locked_sandbox.url + "/_sandbox/health/", timeout=5).status_code == 200


# --- faults that act after TikTok did the work, and the limits TikTok enforces --------


def test_drop_answer_rate_carries_out_the_request_and_then_drops_the_connection(sandbox, api):
    from .conftest import person

    audience_id = api.create_audience()
    sandbox.control(drop_answer_rate=1.0, fault_endpoints=["segment/mapping/"])
    with pytest.raises(requests.ConnectionError):
        api.mapping(audience_id, [person(1)])
    sandbox.reset()
    assert sandbox.audience_members(ADV1, audience_id)["EMAIL_SHA256"] == {person(1)[0]}
    sandbox.control(drop_answer_rate=1.0, fault_limit=1)
    with pytest.raises(requests.ConnectionError):
        api.create_audience(name="created in the dark")
    names = [a["name"] for a in sandbox.audiences(ADV1)]
    assert names.count("created in the dark") == 1
    assert sandbox.request_log()[-1]["fault"] == "drop_answer"


def test_partial_ok_rate_answers_20001_and_keeps_the_data(sandbox, api):
    sandbox.control(partial_ok_rate=1.0, fault_endpoints=["segment/audience/"])
    answer = api.post(
        "segment/audience/",
        {"advertiser_id": ADV1, "action": "create", "custom_audience_name": "part"},
    )
    assert answer["code"] == 20001 and answer["data"]["audience_id"].isdigit()
    assert answer["data"]["audience_id"] in {a["audience_id"] for a in sandbox.audiences(ADV1)}


def test_an_identical_write_within_the_duplicate_window_is_40050_and_changes_nothing(sandbox, api):
    from .conftest import mapping_body, person

    audience_id = api.create_audience()
    sandbox.control(duplicate_window_s=30)
    body = mapping_body(audience_id, [person(1)])
    assert api.post("segment/mapping/", body)["code"] == 0
    api.post("segment/mapping/", mapping_body(audience_id, [person(1)], action="delete"))
    # The add again, identical to the first: TikTok refuses it as a duplicate.
    assert api.post("segment/mapping/", body)["code"] == 40050
    assert sandbox.audience_members(ADV1, audience_id).get("EMAIL_SHA256", set()) == set()
    other = mapping_body(audience_id, [person(2)])
    assert api.post("segment/mapping/", other)["code"] == 0  # a different body is new
    sandbox.control(duplicate_window_s=0)
    assert api.post("segment/mapping/", body)["code"] == 0


def test_a_failed_request_is_not_remembered_as_a_duplicate(sandbox, api):
    from .conftest import mapping_body, person

    sandbox.control(duplicate_window_s=30)
    body = mapping_body("7111111111111111111", [person(1)])
    assert api.post("segment/mapping/", body)["code"] == 40002
    assert api.post("segment/mapping/", body)["code"] == 40002


def test_more_requests_than_the_per_minute_limit_are_40132(sandbox, api):
    if time.time() % 60 > 55:  # keep the six requests inside one minute window
        time.sleep(60 - time.time() % 60 + 0.1)
    sandbox.control(qpm=3)
    codes = [api.get("user/info/")["code"] for _ in range(6)]
    assert codes == [0, 0, 0, 40132, 40132, 40132]
    sandbox.control(qpm=0)
    assert api.get("user/info/")["code"] == 0


def test_tokens_older_than_token_ttl_answer_40102(sandbox, api):
    assert api.get("user/info/")["code"] == 0
    sandbox.control(token_ttl_s=0)
    answer = api.get("user/info/")
    assert answer["code"] == 40102 and "expired" in answer["message"]
    sandbox.control(token_ttl_s=3600)
    assert api.get("user/info/")["code"] == 0


def test_the_batch_limit_code_can_be_40061(sandbox, api):
    from .conftest import person

    audience_id = api.create_audience()
    sandbox.control(batch_limit=1, batch_limit_code=40061)
    assert api.mapping(audience_id, [person(1), person(2)])["code"] == 40061
    sandbox.control(batch_limit_code=40011)
    assert api.mapping(audience_id, [person(1), person(2)])["code"] == 40011
    assert sandbox.audience_members(ADV1, audience_id) == {}


def test_new_switches_check_their_values(sandbox):
    for body in (
        {"batch_limit_code": 40002},
        {"token_ttl_s": -1},
        {"duplicate_window_s": "long"},
        {"drop_answer_rate": 1.5},
        {"qpm": -5},
    ):
        response = sandbox.http.post(sandbox.url + "/_sandbox/control/", json=body, timeout=5)
        assert response.status_code == 400, body
