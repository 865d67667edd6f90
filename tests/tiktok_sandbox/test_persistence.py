"""Data survives a restart; run-time switches do not."""

from __future__ import annotations

from .conftest import ADV1, Api, person


def test_tokens_audiences_members_and_event_sets_survive_a_restart(sandbox, api):
    audience_id = api.create_audience(name="Kept")
    api.mapping(audience_id, [person(n, idfa=True) for n in range(20)])
    api.mapping(audience_id, [person(3)], action="delete")
    event_set_id = api.ok("POST", "offline/create/", {"advertiser_id": ADV1, "name": "Kept set"})[
        "event_set_id"
    ]
    before = sandbox.audience_members(ADV1, audience_id)
    revoked = sandbox.issue_token([ADV1])
    sandbox.revoke_token(revoked)
    sandbox.control(match_rate=0.1)

    sandbox.restart()

    assert api.get("user/info/")["code"] == 0
    assert Api(sandbox, revoked).get("user/info/")["code"] == 40105
    assert sandbox.audience_members(ADV1, audience_id) == before
    details = api.ok(
        "GET", "dmp/custom_audience/get/", advertiser_id=ADV1, custom_audience_ids=[audience_id]
    )
    assert details["list"][0]["audience_details"]["name"] == "Kept"
    sets = api.ok("GET", "offline/get/", advertiser_id=ADV1)["event_set_list"]
    assert event_set_id in {s["event_set_id"] for s in sets}
    assert sandbox.settings()["match_rate"] == 0.7


def test_registered_redirect_uris_survive_a_restart(sandbox):
    import requests

    uri = "http://127.0.0.1:1234/destinations/tiktok/callback/"
    sandbox.register_redirect_uri(uri)
    sandbox.restart()
    page = requests.get(
        sandbox.auth_url, params={"app_id": sandbox.app_id, "redirect_uri": uri}, timeout=5
    )
    assert page.status_code == 200


def test_wipe_deletes_everything(sandbox, api):
    audience_id = api.create_audience()
    sandbox.wipe()
    assert sandbox.audiences(ADV1) == []
    assert api.get("user/info/")["code"] == 40105  # tokens are data too
    assert audience_id
