"""Customer-file audiences: upload (MD5, calculate_type), create, update, the 1,000 floor."""

from __future__ import annotations

import hashlib
import time

import requests

from .conftest import ADV1, sha


def file_of(start: int, count: int, *, header: bool = True) -> bytes:
    lines = (["email_sha256"] if header else []) + [
        sha(f"file{n}@example.com") for n in range(start, start + count)
    ]
    return ("\n".join(lines) + "\n").encode()


def upload(
    sandbox,
    api,
    content: bytes,
    *,
    name="people.csv",
    signature=None,
    calculate_type="EMAIL_SHA256",
):
    response = requests.post(
        sandbox.api_base_url + "dmp/custom_audience/file/upload/",
        headers=api.headers(),
        data={
            "advertiser_id": ADV1,
            "calculate_type": calculate_type,
            "file_signature": signature or hashlib.md5(content).hexdigest(),
        },
        files={"file": (name, content, "text/csv")},
        timeout=30,
    )
    assert response.status_code == 200
    return response.json()


def uploaded(sandbox, api, content: bytes) -> str:
    answer = upload(sandbox, api, content)
    assert answer["code"] == 0, answer
    return answer["data"]["file_path"]


def create(api, file_paths, name="File audience"):
    return api.post(
        "dmp/custom_audience/create/",
        {
            "advertiser_id": ADV1,
            "custom_audience_name": name,
            "calculate_type": "EMAIL_SHA256",
            "file_paths": file_paths,
        },
    )


def update(api, audience_id, file_paths, action=None):
    body = {"advertiser_id": ADV1, "custom_audience_id": audience_id, "file_paths": file_paths}
    if action:
        body["action"] = action
    return api.post("dmp/custom_audience/update/", body)


def test_upload_returns_a_file_path_and_create_stores_every_line(sandbox, api):
    content = file_of(0, 1500)
    audience_id = create(api, [uploaded(sandbox, api, content)])["data"]["custom_audience_id"]
    members = sandbox.audience_members(ADV1, audience_id)
    assert members == {"EMAIL_SHA256": {sha(f"file{n}@example.com") for n in range(1500)}}
    details = api.ok(
        "GET", "dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id]
    )
    assert details["list"][0]["audience_details"]["type"] == "Customer File"


def test_a_wrong_file_signature_is_40900(sandbox, api):
    answer = upload(sandbox, api, file_of(0, 10), signature=hashlib.md5(b"other").hexdigest())
    assert answer["code"] == 40900


def test_an_unsupported_calculate_type_is_40909(sandbox, api):
    assert upload(sandbox, api, file_of(0, 10), calculate_type="EMAIL")["code"] == 40909


def test_a_file_name_must_end_in_csv_or_txt(sandbox, api):
    answer = upload(sandbox, api, file_of(0, 10), name="people.xlsx")
    assert answer["code"] == 40002 and answer["message"].startswith("file:")


def test_a_file_without_valid_ids_is_40002(sandbox, api):
    content = b"email\njane@example.com\n"
    answer = upload(sandbox, api, content)
    assert answer["code"] == 40002 and answer["message"].startswith("file:")


def test_multiple_types_files_name_their_columns_in_a_header(sandbox, api):
    rows = [
        "EMAIL_SHA256,PHONE_SHA256",
        f"{sha('a@x.com')},{sha('+15550000001')}",
        f",{sha('+15550000002')}",
    ]
    content = ("\n".join(rows) + "\n").encode()
    path = upload(sandbox, api, content, calculate_type="MULTIPLE_TYPES")["data"]["file_path"]
    answer = api.post(
        "dmp/custom_audience/create/",
        {
            "advertiser_id": ADV1,
            "custom_audience_name": "multi",
            "calculate_type": "MULTIPLE_TYPES",
            "file_paths": [path],
        },
    )
    members = sandbox.audience_members(ADV1, answer["data"]["custom_audience_id"])
    assert members == {
        "EMAIL_SHA256": {sha("a@x.com")},
        "PHONE_SHA256": {sha("+15550000001"), sha("+15550000002")},
    }
    headerless = upload(sandbox, api, sha("a@x.com").encode(), calculate_type="MULTIPLE_TYPES")
    assert headerless["code"] == 40002


def test_create_checks_name_type_and_file_paths(sandbox, api):
    path = uploaded(sandbox, api, file_of(0, 10))
    long_name = create(api, [path], name="n" * 129)
    assert long_name["code"] == 40002 and long_name["message"].startswith("custom_audience_name:")
    assert create(api, ["tos-sandbox/nope.csv"])["code"] == 40007
    wrong_type = api.post(
        "dmp/custom_audience/create/",
        {
            "advertiser_id": ADV1,
            "custom_audience_name": "x",
            "calculate_type": "PHONE_SHA256",
            "file_paths": [path],
        },
    )
    assert wrong_type["code"] == 40002 and wrong_type["message"].startswith("file_paths[0]:")


def test_update_appends_removes_and_replaces(sandbox, api):
    audience_id = create(api, [uploaded(sandbox, api, file_of(0, 1200))])["data"][
        "custom_audience_id"
    ]
    assert (
        update(api, audience_id, [uploaded(sandbox, api, file_of(1200, 100))], "APPEND")["code"]
        == 0
    )
    assert len(sandbox.audience_members(ADV1, audience_id)["EMAIL_SHA256"]) == 1300
    assert (
        update(api, audience_id, [uploaded(sandbox, api, file_of(0, 200))], "REMOVE")["code"] == 0
    )
    assert len(sandbox.audience_members(ADV1, audience_id)["EMAIL_SHA256"]) == 1100
    assert (
        update(api, audience_id, [uploaded(sandbox, api, file_of(5000, 1000))])["code"] == 0
    )  # REPLACE
    members = sandbox.audience_members(ADV1, audience_id)["EMAIL_SHA256"]
    assert members == {sha(f"file{n}@example.com") for n in range(5000, 6000)}
    history = api.ok(
        "GET", "dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id]
    )
    assert [h["action"] for h in history["list"][0]["audience_history"]][:3] == ["Update"] * 3


def test_an_update_that_would_leave_fewer_than_1000_people_is_40002(sandbox, api):
    audience_id = create(api, [uploaded(sandbox, api, file_of(0, 1100))])["data"][
        "custom_audience_id"
    ]
    removed = update(api, audience_id, [uploaded(sandbox, api, file_of(0, 200))], "REMOVE")
    assert removed["code"] == 40002 and "1000" in removed["message"]
    replaced = update(api, audience_id, [uploaded(sandbox, api, file_of(0, 999))], "REPLACE")
    assert replaced["code"] == 40002
    assert len(sandbox.audience_members(ADV1, audience_id)["EMAIL_SHA256"]) == 1100


def test_an_update_while_processing_is_40002_processing(sandbox, api):
    sandbox.control(processing_delay_s=30)
    audience_id = create(api, [uploaded(sandbox, api, file_of(0, 1100))])["data"][
        "custom_audience_id"
    ]
    answer = update(api, audience_id, [uploaded(sandbox, api, file_of(2000, 10))], "APPEND")
    assert answer["code"] == 40002 and "processing" in answer["message"]
    sandbox.control(processing_delay_s=0)
    assert (
        update(api, audience_id, [uploaded(sandbox, api, file_of(2000, 10))], "APPEND")["code"] == 0
    )


def test_forced_processing_answers_40002_on_update(sandbox, api):
    audience_id = create(api, [uploaded(sandbox, api, file_of(0, 1100))])["data"][
        "custom_audience_id"
    ]
    sandbox.control(force_processing=True)
    answer = update(api, audience_id, [uploaded(sandbox, api, file_of(2000, 10))], "APPEND")
    assert answer["code"] == 40002 and "processing" in answer["message"]


def test_an_update_is_processing_again_for_the_delay(sandbox, api):
    audience_id = create(api, [uploaded(sandbox, api, file_of(0, 1100))])["data"][
        "custom_audience_id"
    ]
    sandbox.control(processing_delay_s=1)
    update(api, audience_id, [uploaded(sandbox, api, file_of(2000, 10))], "APPEND")
    get = {"advertiser_id": ADV1, "custom_audience_ids": [audience_id]}
    assert (
        api.ok("GET", "dmp/custom_audience/get/", **get)["list"][0]["audience_details"]["is_valid"]
        is False
    )
    time.sleep(1.1)
    assert (
        api.ok("GET", "dmp/custom_audience/get/", **get)["list"][0]["audience_details"]["is_valid"]
        is True
    )


def test_partner_audiences_cannot_be_updated_with_files(sandbox, api):
    audience_id = api.create_audience()
    answer = update(api, audience_id, [uploaded(sandbox, api, file_of(0, 1100))], "APPEND")
    assert answer["code"] == 40002 and answer["message"].startswith("custom_audience_id:")


def test_maid_calculate_types_are_accepted_as_aliases_of_first(sandbox, api):
    maids = [hashlib.sha256(f"maid-{n}".encode()).hexdigest() for n in range(1100)]
    content = ("\n".join(maids) + "\n").encode()
    answer = upload(sandbox, api, content, calculate_type="MAID_SHA256")
    assert answer["code"] == 0, answer
    for calculate_type in ("MAID_SHA256", "FIRST_SHA256"):
        created = api.post(
            "dmp/custom_audience/create/",
            {
                "advertiser_id": ADV1,
                "custom_audience_name": f"devices {calculate_type}",
                "calculate_type": calculate_type,
                "file_paths": [answer["data"]["file_path"]],
            },
        )
        assert created["code"] == 0, created
        members = sandbox.audience_members(ADV1, created["data"]["custom_audience_id"])
        assert set().union(*members.values()) == set(maids)
    md5 = upload(sandbox, api, ("a" * 32 + "\n").encode(), calculate_type="MAID_MD5")
    assert md5["code"] == 0, md5


def test_a_rename_alone_is_a_valid_update_for_file_and_partner_audiences(sandbox, api):
    file_audience = create(api, [uploaded(sandbox, api, file_of(0, 1100))])["data"][
        "custom_audience_id"
    ]
    partner = api.create_audience(name="before")
    sandbox.control(processing_delay_s=30)  # a rename changes no members: no processing wait
    for audience_id in (file_audience, partner):
        answer = api.post(
            "dmp/custom_audience/update/",
            {
                "advertiser_id": ADV1,
                "custom_audience_id": audience_id,
                "custom_audience_name": f"renamed {audience_id}",
            },
        )
        assert answer["code"] == 0, answer
        details = api.ok(
            "GET",
            "dmp/custom_audience/get/",
            advertiser_id=ADV1,
            custom_audience_ids=[audience_id],
        )["list"][0]["audience_details"]
        assert details["name"] == f"renamed {audience_id}"
    assert len(sandbox.audience_members(ADV1, file_audience)["EMAIL_SHA256"]) == 1100


def test_an_update_with_neither_name_nor_files_is_40002(sandbox, api):
    audience_id = api.create_audience()
    answer = api.post(
        "dmp/custom_audience/update/", {"advertiser_id": ADV1, "custom_audience_id": audience_id}
    )
    assert answer["code"] == 40002 and answer["message"].startswith("custom_audience_name:")
