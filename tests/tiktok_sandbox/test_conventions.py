"""TikTok's wire conventions: paths, envelope, Access-Token, string ids, rate limit."""

from __future__ import annotations

import json

import requests

from .conftest import ADV1, ADV3, Api


def test_a_path_without_trailing_slash_is_a_plain_text_404(sandbox, api):
    response = requests.get(sandbox.api_base_url + "user/info", headers=api.headers(), timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "code" not in response.text


def test_an_unknown_endpoint_is_a_plain_text_404(sandbox, api):
    response = requests.get(
        sandbox.api_base_url + "campaign/get/", headers=api.headers(), timeout=5
    )
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")


def test_a_success_has_the_envelope_a_request_id_and_x_tt_logid(sandbox, api):
    response = requests.get(sandbox.api_base_url + "user/info/", headers=api.headers(), timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 0 and body["message"] == "OK" and body["data"]["display_name"]
    assert body["request_id"] and response.headers["X-Tt-Logid"] == body["request_id"]


def test_a_missing_access_token_is_40104_with_http_200(anonymous):
    answer = anonymous.get("user/info/")
    assert answer["code"] == 40104 and answer["data"] == {}


def test_an_unknown_access_token_is_40105(sandbox):
    assert Api(sandbox, "not-a-token").get("user/info/")["code"] == 40105


def test_an_advertiser_outside_the_token_is_40106(api):
    answer = api.get("dmp/custom_audience/list/", advertiser_id=ADV3)
    assert answer["code"] == 40106
    assert ADV3 in answer["message"]


def test_an_advertiser_that_does_not_exist_is_40300(api):
    assert (
        api.get("dmp/custom_audience/list/", advertiser_id="7999999999999999999")["code"] == 40300
    )


def test_ids_must_be_strings_of_up_to_19_digits(api):
    body = {
        "advertiser_id": int(ADV1),
        "action": "create",
        "custom_audience_name": "x",
        "id_type": "EMAIL_SHA256",
    }
    answer = api.post("segment/audience/", body)
    assert answer["code"] == 40002 and answer["message"].startswith("advertiser_id:")
    answer = api.get("dmp/custom_audience/list/", advertiser_id="12345678901234567890")
    assert answer["code"] == 40002 and "advertiser_id" in answer["message"]


def test_list_query_parameters_are_json_encoded(api):
    audience_id = api.create_audience()
    answer = api.get(
        "dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=audience_id
    )
    assert answer["code"] == 40002 and "custom_audience_ids" in answer["message"]
    assert (
        api.get("dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id])[
            "code"
        ]
        == 0
    )


def test_a_body_that_is_not_json_is_40000(sandbox, api):
    response = requests.post(
        sandbox.api_base_url + "segment/audience/",
        data="{nope",
        timeout=5,
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert response.json()["code"] == 40000


def test_a_json_body_without_json_content_type_is_40000(sandbox, api):
    response = requests.post(
        sandbox.api_base_url + "segment/audience/",
        data=json.dumps({"advertiser_id": ADV1}),
        headers={**api.headers(), "Content-Type": "text/plain"},
        timeout=5,
    )
    assert response.json()["code"] == 40000


def test_the_wrong_http_method_is_a_plain_405(sandbox, api):
    response = requests.post(
        sandbox.api_base_url + "user/info/", json={}, headers=api.headers(), timeout=5
    )
    assert response.status_code == 405


def test_writes_for_an_analyst_only_advertiser_are_40001_and_reads_work(sandbox, api):
    sandbox.control(read_only_advertisers=[ADV1])
    body = {
        "advertiser_id": ADV1,
        "action": "create",
        "custom_audience_name": "x",
        "id_type": "EMAIL_SHA256",
    }
    assert api.post("segment/audience/", body)["code"] == 40001
    assert api.get("dmp/custom_audience/list/", advertiser_id=ADV1)["code"] == 0


def test_more_requests_than_the_apps_qps_limit_are_40100(sandbox, api):
    sandbox.control(qps=2)
    codes = [api.get("user/info/")["code"] for _ in range(8)]
    # 8 quick requests span at most two one-second windows: at most 4 get through.
    assert codes.count(0) <= 4
    assert codes.count(40100) >= 4
    assert set(codes) <= {0, 40100}


def test_the_rate_limit_counts_per_app_and_recovers_next_second(sandbox, api):
    import time

    sandbox.control(qps=1)
    api.get("user/info/")
    time.sleep(1.05)
    assert api.get("user/info/")["code"] == 0


def test_the_request_log_records_path_advertiser_action_counts_and_code(sandbox, api):
    audience_id = api.create_audience()
    api.get("dmp/custom_audience/list/", advertiser_id=ADV3)
    log = sandbox.request_log()
    assert [e["path"] for e in log] == [
        "/open_api/v1.3/segment/audience/",
        "/open_api/v1.3/dmp/custom_audience/list/",
    ]
    assert log[0]["advertiser_id"] == ADV1 and log[0]["action"] == "create" and log[0]["code"] == 0
    assert log[0]["audience_id"] == audience_id
    assert log[1]["code"] == 40106
