"""Partner (segment API) audiences: create, delete, members, get, list, delete."""

from __future__ import annotations

from tiktok_sandbox.members import BUCKETS, bucket

from .conftest import ADV1, ADV2, SCHEMA, mapping_body, person, sha


def matched(people, rate):
    """Independent reference: a person matches when their first id lands below the rate."""
    count = 0
    for p in people:
        first = next(h for h in p if h)
        count += bucket(bytes.fromhex(first)) < round(rate * BUCKETS)
    return count


def test_create_returns_a_string_id_and_shows_in_list(api):
    audience_id = api.create_audience(name="Spring buyers")
    assert isinstance(audience_id, str) and audience_id.isdigit() and len(audience_id) == 19
    listed = api.ok("GET", "dmp/custom_audience/list/", advertiser_id=ADV1, page_size=100)
    assert any(
        a["audience_id"] == audience_id and a["name"] == "Spring buyers" for a in listed["list"]
    )


def test_names_longer_than_70_characters_are_cut_to_67_plus_dots(api):
    audience_id = api.create_audience(name="x" * 80)
    details = api.ok(
        "GET", "dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id]
    )
    assert details["list"][0]["audience_details"]["name"] == "x" * 67 + "..."


def test_create_without_a_name_or_with_a_bad_action_is_40002_naming_the_field(api):
    missing = api.post("segment/audience/", {"advertiser_id": ADV1, "action": "create"})
    assert missing["code"] == 40002 and missing["message"].startswith("custom_audience_name:")
    action = api.post("segment/audience/", {"advertiser_id": ADV1, "action": "make"})
    assert action["code"] == 40002 and action["message"].startswith("action:")


def test_create_takes_id_type_as_optional_and_ignores_it(api):
    for extra in ({}, {"id_type": "EMAIL_SHA256"}, {"id_type": "PHONE_SHA256"}):
        body = {"advertiser_id": ADV1, "action": "create", "custom_audience_name": "n", **extra}
        answer = api.post("segment/audience/", body)
        assert answer["code"] == 0, answer
        details = api.ok(
            "GET",
            "dmp/custom_audience/get/",
            advertiser_id=ADV1,
            custom_audience_ids=[answer["data"]["audience_id"]],
        )["list"][0]["audience_details"]
        assert details["calculate_type"] == "MULTIPLE_TYPES"


def test_a_missing_action_means_create(api):
    answer = api.post("segment/audience/", {"advertiser_id": ADV1, "custom_audience_name": "m"})
    assert answer["code"] == 0 and answer["data"]["audience_id"].isdigit()


def test_segment_delete_removes_the_audience_and_a_second_delete_is_40007(api):
    audience_id = api.create_audience()
    body = {"advertiser_id": ADV1, "action": "delete", "delete_audience_id": audience_id}
    assert api.post("segment/audience/", body)["code"] == 0
    assert api.post("segment/audience/", body)["code"] == 40007
    got = api.get("dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id])
    assert got["code"] == 40007


def test_mapping_add_stores_exactly_the_hashed_ids_sent_per_id_type(sandbox, api):
    audience_id = api.create_audience()
    people = [person(1), person(2, phone=False, idfa=True), person(3, email=False, aaid=True)]
    assert api.mapping(audience_id, people)["code"] == 0
    members = sandbox.audience_members(ADV1, audience_id)
    for column, id_type in enumerate(SCHEMA):
        assert members.get(id_type, set()) == {p[column] for p in people if p[column]}


def test_mapping_delete_removes_only_the_ids_sent(sandbox, api):
    audience_id = api.create_audience()
    api.mapping(audience_id, [person(1), person(2)])
    assert api.mapping(audience_id, [person(1, phone=False)], action="delete")["code"] == 0
    members = sandbox.audience_members(ADV1, audience_id)
    assert members["EMAIL_SHA256"] == {person(2)[0]}
    assert members["PHONE_SHA256"] == {person(1)[1], person(2)[1]}


def test_sending_the_same_people_twice_does_not_count_them_twice(sandbox, api):
    sandbox.control(match_rate=1.0)
    audience_id = api.create_audience()
    people = [person(n) for n in range(50)]
    api.mapping(audience_id, people)
    api.mapping(audience_id, people)
    details = api.ok(
        "GET", "dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id]
    )
    assert details["list"][0]["audience_details"]["cover_num"] == 50


def test_cover_num_follows_the_deterministic_user_base_at_the_match_rate(sandbox, api):
    audience_id = api.create_audience()
    people = [person(n, idfa=n % 3 == 0) for n in range(2000)]
    api.mapping(audience_id, people)
    for rate in (0.7, 0.25):
        sandbox.control(match_rate=rate)
        details = api.ok(
            "GET", "dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id]
        )
        cover = details["list"][0]["audience_details"]["cover_num"]
        assert cover == matched(people, rate)
        assert abs(cover / len(people) - rate) < 0.05


def test_is_valid_turns_true_after_the_processing_delay(sandbox, api):
    import time

    sandbox.control(processing_delay_s=1)
    audience_id = api.create_audience()

    def get():
        return api.ok(
            "GET", "dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id]
        )

    assert get()["list"][0]["audience_details"]["is_valid"] is False
    time.sleep(1.1)
    assert get()["list"][0]["audience_details"]["is_valid"] is True


def test_a_batch_over_the_limit_is_40011_and_nothing_is_stored(sandbox, api):
    audience_id = api.create_audience()
    people = [[sha(f"p{n}"), None, None, None] for n in range(11_000)]
    answer = api.mapping(audience_id, people)
    assert answer["code"] == 40011
    assert sandbox.audience_members(ADV1, audience_id) == {}
    assert api.mapping(audience_id, people[:10_000])["code"] == 0


def test_the_batch_limit_can_be_switched_at_run_time(sandbox, api):
    sandbox.control(batch_limit=2)
    audience_id = api.create_audience()
    assert api.mapping(audience_id, [person(1), person(2), person(3)])["code"] == 40011
    assert api.mapping(audience_id, [person(1), person(2)])["code"] == 0


def test_mapping_validation_names_the_field(api):
    audience_id = api.create_audience()
    body = mapping_body(audience_id, [person(1), person(2)])
    body["batch_data"][1][0]["id"] = "jane@example.com"
    answer = api.post("segment/mapping/", body)
    assert answer["code"] == 40002 and answer["message"].startswith("batch_data[1][0].id:")

    body = mapping_body(audience_id, [person(1)])
    body["batch_data"][0] = body["batch_data"][0][:3]
    assert api.post("segment/mapping/", body)["message"].startswith("batch_data[0]:")

    body = mapping_body(audience_id, [person(1)])
    body["id_schema"] = ["EMAIL_SHA256", "EMAIL_SHA256", "IDFA_SHA256", "AAID_SHA256"]
    assert api.post("segment/mapping/", body)["message"].startswith("id_schema:")

    body = mapping_body(audience_id, [person(1)])
    body["id_schema"][1] = "PHONE"
    assert api.post("segment/mapping/", body)["message"].startswith("id_schema[1]:")

    body = mapping_body(audience_id, [person(1)], action="upsert")
    assert api.post("segment/mapping/", body)["message"].startswith("action:")

    body = mapping_body(audience_id, [person(1)])
    del body["batch_data"]
    assert api.post("segment/mapping/", body)["message"].startswith("batch_data:")


def test_mapping_to_an_unknown_audience_or_another_advertisers_is_40002_invalid_audience_id(
    sandbox, api
):
    other = api.create_audience(advertiser_id=ADV2)
    for audience_id in ("7111111111111111111", other):
        answer = api.mapping(audience_id, [person(1)], advertiser_id=ADV1)
        assert (answer["code"], answer["message"]) == (40002, "invalid audience ID")
    assert sandbox.audience_members(ADV2, other) == {}


def test_forced_processing_answers_40002_processing_on_mapping(sandbox, api):
    audience_id = api.create_audience()
    sandbox.control(force_processing=True)
    answer = api.mapping(audience_id, [person(1)])
    assert answer["code"] == 40002 and "processing" in answer["message"]
    assert sandbox.audience_members(ADV1, audience_id) == {}


def test_list_pages_with_page_and_page_size(api):
    ids = [api.create_audience(advertiser_id=ADV2, name=f"a{n}") for n in range(5)]
    first = api.ok("GET", "dmp/custom_audience/list/", advertiser_id=ADV2, page=1, page_size=2)
    info = first["page_info"]
    assert info["page"] == 1 and info["page_size"] == 2 and info["total_number"] >= 5
    assert info["total_page"] == -(-info["total_number"] // 2)
    assert len(first["list"]) == 2
    only = api.ok(
        "GET",
        "dmp/custom_audience/list/",
        advertiser_id=ADV2,
        custom_audience_ids=ids[:3],
        page_size=10,
    )
    assert sorted(a["audience_id"] for a in only["list"]) == sorted(ids[:3])
    bad = api.get("dmp/custom_audience/list/", advertiser_id=ADV2, page_size=1000)
    assert bad["code"] == 40002 and bad["message"].startswith("page_size:")


def test_get_returns_details_and_history(api):
    audience_id = api.create_audience()
    item = api.ok(
        "GET", "dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id]
    )["list"][0]
    details = item["audience_details"]
    for key in (
        "audience_id",
        "name",
        "calculate_type",
        "cover_num",
        "is_valid",
        "is_expiring",
        "create_time",
        "expired_time",
        "error_msg",
    ):
        assert key in details
    assert item["audience_history"][0]["action"] == "Create"


def test_a_partner_audience_reports_multiple_types_partner_and_null_messages(sandbox, api):
    audience_id = api.create_audience()
    sandbox.control(processing_delay_s=60)  # msg stays null even while TikTok works
    for path in ("dmp/custom_audience/get/", "dmp/custom_audience/list/"):
        answer = api.ok("GET", path, advertiser_id=ADV1, custom_audience_ids=[audience_id])
        first = answer["list"][0]
        details = first.get("audience_details", first)
        assert details["calculate_type"] == "MULTIPLE_TYPES"
        assert details["type"] == "Partner"
        assert details["msg"] is None and details["error_msg"] is None
        assert details["is_valid"] is False


def test_dmp_delete_removes_audiences_and_unknown_ids_are_40007(sandbox, api):
    audience_id = api.create_audience()
    api.mapping(audience_id, [person(1)])
    body = {"advertiser_id": ADV1, "custom_audience_ids": [audience_id]}
    assert api.post("dmp/custom_audience/delete/", body)["code"] == 0
    assert api.post("dmp/custom_audience/delete/", body)["code"] == 40007
    assert all(a["audience_id"] != audience_id for a in sandbox.audiences(ADV1))
