"""Conformance: request bodies shaped like those other TikTok clients send, replayed
against the sandbox, with the answers TikTok gives them.

The shapes are written here from what those clients document (none of their code):
- TikTok's official Business API SDK (tiktok/tiktok-business-api-sdk, its `yml_files/`
  endpoint definitions): customer-file upload, create (with `audience_sub_type`,
  `audience_enhancement`, `retention_in_days`), update, get (with `history_size`), list.
- Open-source audience integrations (Segment's TikTok Audiences destination,
  RudderStack's TikTok Audience destination): `segment/audience/` create with only
  `custom_audience_name`, `advertiser_id` and `action` (no `id_type` since 2024), and
  `segment/mapping/` bodies whose keys come in any order, whose `id_schema` is whatever the
  user configured (EMAIL/PHONE/IDFA, MD5 device ids), whose people carry `{}` for a missing
  id, and whose `advertiser_ids` may name several advertisers.
- Older integrations that still send `id_type`, lowercase `id_schema` values, or leave
  `action` out.

Every expectation is computed here from the inputs (hashes with hashlib), not read back
from the sandbox's own code.
"""

from __future__ import annotations

import hashlib
import json

import requests

from .conftest import ADV1, ADV2, sha


def md5(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()  # noqa: S324 - TikTok's *_MD5 id types


def post(sandbox, api, path: str, body: dict) -> dict:
    response = requests.post(
        sandbox.api_base_url + path,
        data=json.dumps(body),
        headers={**api.headers(), "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) >= {"code", "message", "request_id", "data"}, answer
    return answer


def details(api, advertiser_id: str, audience_id: str) -> dict:
    got = api.ok(
        "GET",
        "dmp/custom_audience/get/",
        advertiser_id=advertiser_id,
        custom_audience_ids=[audience_id],
    )
    return got["list"][0]["audience_details"]


# --- open-source integrations: segment (partner) audiences ----------------------------


def test_an_integration_style_create_without_id_type_makes_a_partner_audience(sandbox, api):
    body = {
        "custom_audience_name": "Segment: Loyal buyers",
        "advertiser_id": ADV1,
        "action": "create",
    }
    answer = post(sandbox, api, "segment/audience/", body)
    assert answer["code"] == 0 and answer["message"] == "OK"
    audience_id = answer["data"]["audience_id"]
    assert isinstance(audience_id, str) and audience_id.isdigit() and len(audience_id) <= 19
    got = details(api, ADV1, audience_id)
    assert got["name"] == "Segment: Loyal buyers"
    assert (got["calculate_type"], got["type"]) == ("MULTIPLE_TYPES", "Partner")
    assert got["msg"] is None and got["error_msg"] is None


def test_an_older_create_that_still_sends_id_type_is_taken_the_same_way(sandbox, api):
    body = {
        "advertiser_id": ADV1,
        "action": "create",
        "custom_audience_name": "legacy",
        "id_type": "EMAIL_SHA256",
    }
    answer = post(sandbox, api, "segment/audience/", body)
    assert answer["code"] == 0
    assert details(api, ADV1, answer["data"]["audience_id"])["calculate_type"] == "MULTIPLE_TYPES"


def test_a_segment_style_mapping_with_gaps_stores_each_id_under_its_type(sandbox, api):
    audience_id = api.create_audience(name="segment style")
    people = [
        {"email": "ann@example.com", "phone": "+12135550101", "idfa": "A-1"},
        {"email": "bob@example.com", "phone": None, "idfa": None},
        {"email": None, "phone": None, "idfa": "C-3"},
    ]

    def entry(value: str | None) -> dict:
        return {"id": sha(value), "audience_ids": [audience_id]} if value else {}

    body = {
        "advertiser_ids": [ADV1],
        "action": "add",
        "id_schema": ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256"],
        "batch_data": [[entry(p["email"]), entry(p["phone"]), entry(p["idfa"])] for p in people],
    }
    assert post(sandbox, api, "segment/mapping/", body)["code"] == 0
    assert sandbox.audience_members(ADV1, audience_id) == {
        "EMAIL_SHA256": {sha("ann@example.com"), sha("bob@example.com")},
        "PHONE_SHA256": {sha("+12135550101")},
        "IDFA_SHA256": {sha("A-1"), sha("C-3")},
    }
    body["action"] = "delete"
    body["batch_data"] = body["batch_data"][:1]
    assert post(sandbox, api, "segment/mapping/", body)["code"] == 0
    remaining = {t: ids for t, ids in sandbox.audience_members(ADV1, audience_id).items() if ids}
    assert remaining == {"EMAIL_SHA256": {sha("bob@example.com")}, "IDFA_SHA256": {sha("C-3")}}


def test_a_rudderstack_style_mapping_with_md5_device_ids_and_keys_in_another_order(sandbox, api):
    audience_id = api.create_audience(name="rudder style")
    schema = ["IDFA_MD5", "AAID_MD5", "EMAIL_SHA256"]
    rows = [
        {"IDFA_MD5": "idfa-1", "AAID_MD5": "", "EMAIL_SHA256": "c@example.com"},
        {"IDFA_MD5": "", "AAID_MD5": "aaid-2", "EMAIL_SHA256": ""},
    ]

    def hashed(field: str, value: str) -> str:
        return sha(value) if field.endswith("SHA256") else md5(value)

    body = {
        "batch_data": [
            [
                {"id": hashed(f, row[f]), "audience_ids": [audience_id]} if row[f] else {}
                for f in schema
            ]
            for row in rows
        ],
        "id_schema": schema,
        "advertiser_ids": [ADV1],
        "action": "add",
    }
    assert post(sandbox, api, "segment/mapping/", body)["code"] == 0
    assert sandbox.audience_members(ADV1, audience_id) == {
        "IDFA_MD5": {md5("idfa-1")},
        "AAID_MD5": {md5("aaid-2")},
        "EMAIL_SHA256": {sha("c@example.com")},
    }


def test_a_mapping_naming_several_advertisers_reaches_each_ones_audience(sandbox, api):
    first = api.create_audience(advertiser_id=ADV1, name="multi 1")
    second = api.create_audience(advertiser_id=ADV2, name="multi 2")
    body = {
        "advertiser_ids": [ADV1, ADV2],
        "action": "add",
        "id_schema": ["EMAIL_SHA256"],
        "batch_data": [
            [{"id": sha("d@example.com"), "audience_ids": [first, second]}],
            [{"id": sha("e@example.com"), "audience_ids": [second]}],
        ],
    }
    assert post(sandbox, api, "segment/mapping/", body)["code"] == 0
    assert sandbox.audience_members(ADV1, first) == {"EMAIL_SHA256": {sha("d@example.com")}}
    assert sandbox.audience_members(ADV2, second) == {
        "EMAIL_SHA256": {sha("d@example.com"), sha("e@example.com")}
    }


def test_a_missing_action_adds_and_lowercase_id_schema_values_are_understood(sandbox, api):
    audience_id = api.create_audience(name="lenient")
    body = {
        "advertiser_ids": [ADV1],
        "id_schema": ["email_sha256", "Phone_Sha256"],
        "batch_data": [
            [
                {"id": sha("f@example.com"), "audience_ids": [audience_id]},
                {"id": sha("+12135550199"), "audience_ids": [audience_id]},
            ]
        ],
    }
    assert post(sandbox, api, "segment/mapping/", body)["code"] == 0
    assert sandbox.audience_members(ADV1, audience_id) == {
        "EMAIL_SHA256": {sha("f@example.com")},
        "PHONE_SHA256": {sha("+12135550199")},
    }
    create = {"advertiser_id": ADV1, "custom_audience_name": "no action"}
    created = post(sandbox, api, "segment/audience/", create)
    assert created["code"] == 0 and created["data"]["audience_id"].isdigit()


def test_a_mapping_for_an_audience_tiktok_does_not_know_is_40002_invalid_audience_id(sandbox, api):
    body = {
        "advertiser_ids": [ADV1],
        "action": "add",
        "id_schema": ["EMAIL_SHA256"],
        "batch_data": [[{"id": sha("g@example.com"), "audience_ids": ["7123456789012345678"]}]],
    }
    answer = post(sandbox, api, "segment/mapping/", body)
    assert (answer["code"], answer["message"]) == (40002, "invalid audience ID")


def test_integrations_page_through_the_audience_list_with_string_parameters(sandbox, api):
    made = {api.create_audience(advertiser_id=ADV2, name=f"page {n}") for n in range(3)}
    seen, page, total_page = set(), 1, 1
    while page <= total_page:
        data = api.ok(
            "GET", "dmp/custom_audience/list/", advertiser_id=ADV2, page=str(page), page_size="2"
        )
        total_page = data["page_info"]["total_page"]
        seen |= {item["audience_id"] for item in data["list"]}
        page += 1
    assert made <= seen
    assert all(isinstance(a, str) for a in seen)


# --- TikTok's own SDK: customer-file audiences -------------------------------------------


def sdk_upload(sandbox, api, content: bytes, calculate_type: str) -> dict:
    response = requests.post(
        sandbox.api_base_url + "dmp/custom_audience/file/upload/",
        headers=api.headers(),
        data={
            "advertiser_id": ADV1,
            "calculate_type": calculate_type,
            "file_signature": hashlib.md5(content).hexdigest(),  # noqa: S324 - TikTok's MD5
        },
        files={"file": ("audience.csv", content, "text/csv")},
        timeout=30,
    )
    assert response.status_code == 200
    return response.json()


def test_the_sdks_file_upload_create_update_and_get_shapes(sandbox, api):
    emails = [f"sdk{n}@example.com" for n in range(1200)]
    content = ("\n".join(sha(e) for e in emails) + "\n").encode()
    uploaded = sdk_upload(sandbox, api, content, "EMAIL_SHA256")
    assert uploaded["code"] == 0, uploaded
    file_path = uploaded["data"]["file_path"]
    created = post(
        sandbox,
        api,
        "dmp/custom_audience/create/",
        {
            "advertiser_id": ADV1,
            "custom_audience_name": "SDK file audience",
            "calculate_type": "EMAIL_SHA256",
            "file_paths": [file_path],
            "retention_in_days": 180,
            "audience_sub_type": "NORMAL",
            "audience_enhancement": False,
        },
    )
    assert created["code"] == 0, created
    audience_id = created["data"]["custom_audience_id"]
    assert sandbox.audience_members(ADV1, audience_id) == {"EMAIL_SHA256": {sha(e) for e in emails}}

    more = [f"sdk-more{n}@example.com" for n in range(10)]
    extra = sdk_upload(sandbox, api, ("\n".join(sha(e) for e in more)).encode(), "EMAIL_SHA256")
    updated = post(
        sandbox,
        api,
        "dmp/custom_audience/update/",
        {
            "advertiser_id": ADV1,
            "custom_audience_id": audience_id,
            "custom_audience_name": "SDK file audience (grown)",
            "file_paths": [extra["data"]["file_path"]],
            "action": "APPEND",
        },
    )
    assert updated["code"] == 0, updated
    assert sandbox.audience_members(ADV1, audience_id)["EMAIL_SHA256"] == {
        sha(e) for e in emails + more
    }

    got = api.ok(
        "GET",
        "dmp/custom_audience/get/",
        advertiser_id=ADV1,
        custom_audience_ids=[audience_id],
        history_size=5,
    )["list"][0]
    assert got["audience_details"]["name"] == "SDK file audience (grown)"
    assert got["audience_details"]["calculate_type"] == "EMAIL_SHA256"
    assert 1 <= len(got["audience_history"]) <= 5
    assert {"action", "msg", "opt_time"} <= set(got["audience_history"][0])


def test_the_sdks_rename_only_update_and_maid_calculate_type(sandbox, api):
    devices = [sha(f"device-{n}") for n in range(1000)]
    uploaded = sdk_upload(sandbox, api, ("\n".join(devices)).encode(), "MAID_SHA256")
    assert uploaded["code"] == 0, uploaded
    created = post(
        sandbox,
        api,
        "dmp/custom_audience/create/",
        {
            "advertiser_id": ADV1,
            "custom_audience_name": "devices",
            "calculate_type": "MAID_SHA256",
            "file_paths": [uploaded["data"]["file_path"]],
        },
    )
    assert created["code"] == 0, created
    audience_id = created["data"]["custom_audience_id"]
    renamed = post(
        sandbox,
        api,
        "dmp/custom_audience/update/",
        {"advertiser_id": ADV1, "custom_audience_id": audience_id, "custom_audience_name": "apps"},
    )
    assert renamed["code"] == 0, renamed
    assert details(api, ADV1, audience_id)["name"] == "apps"
    members = sandbox.audience_members(ADV1, audience_id)
    assert set().union(*members.values()) == set(devices)
