"""Offline event sets and event/track/."""

from __future__ import annotations

import time

from .conftest import ADV1, ADV3, Api, sha


def event(n: int, *, when: float | None = None, event_id: str | None = None) -> dict:
    return {
        "event": "CompletePayment",
        "event_time": int(when or time.time()),
        "event_id": event_id or f"order-{n}",
        "user": {"email": [sha(f"buyer{n}@example.com")], "phone": [sha(f"+1555{n:07d}")]},
        "properties": {"value": 46.0, "currency": "USD", "order_id": f"order-{n}",
                       "contents": [{"content_id": "sku-1", "price": 46.0, "quantity": 1}]},
    }  # fmt: skip


def event_set(api) -> str:
    return api.ok(
        "POST",
        "offline/create/",
        {"advertiser_id": ADV1, "name": "Store sales", "description": "POS"},
    )["event_set_id"]


def track(api, event_set_id, events):
    return api.post(
        "event/track/", {"event_source": "offline", "event_source_id": event_set_id, "data": events}
    )


def test_an_event_set_is_created_and_listed(api):
    event_set_id = event_set(api)
    listed = api.ok("GET", "offline/get/", advertiser_id=ADV1)["event_set_list"]
    assert any(s["event_set_id"] == event_set_id and s["name"] == "Store sales" for s in listed)
    only = api.ok("GET", "offline/get/", advertiser_id=ADV1, event_set_ids=[event_set_id])[
        "event_set_list"
    ]
    assert [s["event_set_id"] for s in only] == [event_set_id]


def test_offline_create_requires_a_name(api):
    answer = api.post("offline/create/", {"advertiser_id": ADV1})
    assert answer["code"] == 40002 and answer["message"].startswith("name:")


def test_events_are_stored_and_deduplicated_on_event_id_and_event(sandbox, api):
    event_set_id = event_set(api)
    assert track(api, event_set_id, [event(1), event(2)])["code"] == 0
    assert track(api, event_set_id, [event(2), event(3)])["code"] == 0
    stored = sandbox.events(event_set_id)
    assert sorted(e["event_id"] for e in stored) == ["order-1", "order-2", "order-3"]
    assert sandbox.request_log()[-1]["counts"] == {
        "events": 2,
        "new": 1,
        "duplicates": 1,
        "not_attributed": 0,
    }


def test_more_than_1000_events_reject_the_whole_request(sandbox, api):
    event_set_id = event_set(api)
    answer = track(api, event_set_id, [event(n) for n in range(1001)])
    assert answer["code"] == 40011
    assert sandbox.events(event_set_id) == []


def test_events_older_than_28_days_are_accepted_but_not_attributed(sandbox, api):
    event_set_id = event_set(api)
    track(api, event_set_id, [event(1, when=time.time() - 29 * 86400), event(2)])
    attributed = {e["event_id"]: e["attributed"] for e in sandbox.events(event_set_id)}
    assert attributed == {"order-1": False, "order-2": True}


def test_event_validation_names_the_field(api):
    event_set_id = event_set(api)
    bad_time = event(1)
    bad_time["event_time"] = "yesterday"
    answer = track(api, event_set_id, [event(0), bad_time])
    assert answer["code"] == 40002 and answer["message"].startswith("data[1].event_time:")
    raw_email = event(1)
    raw_email["user"]["email"] = ["jane@example.com"]
    assert track(api, event_set_id, [raw_email])["message"].startswith("data[0].user.email[0]:")
    assert api.post(
        "event/track/", {"event_source": "web", "event_source_id": event_set_id, "data": [event(1)]}
    )["message"].startswith("event_source:")


def test_events_for_an_unknown_set_are_40007_and_for_another_advertiser_40106(sandbox, api):
    assert track(api, "7123123123123123123", [event(1)])["code"] == 40007
    other = Api(sandbox, sandbox.issue_token([ADV3]))
    assert track(other, event_set(api), [event(1)])["code"] == 40106
