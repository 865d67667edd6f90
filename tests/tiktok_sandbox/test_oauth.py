"""The authorization page and the OAuth endpoints."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import requests

from tiktok_sandbox.store import Store

from .conftest import ADV1, ADV2, ADV3, Api

CALLBACK = "http://127.0.0.1:8765/destinations/tiktok/callback/"


def authorize(sandbox, advertiser_ids, *, decision="authorize", state="xyz"):
    return requests.post(
        sandbox.auth_url,
        data={
            "app_id": sandbox.app_id,
            "state": state,
            "redirect_uri": CALLBACK,
            "advertiser_ids": advertiser_ids,
            "decision": decision,
        },
        allow_redirects=False,
        timeout=5,
    )


def exchange(sandbox, auth_code, secret=None, app_id=None):
    return Api(sandbox, None).post(
        "oauth2/access_token/",
        {
            "app_id": app_id or sandbox.app_id,
            "secret": secret or sandbox.secret,
            "auth_code": auth_code,
        },
    )


def test_the_authorization_page_shows_the_app_name_and_the_test_advertisers(sandbox):
    sandbox.register_redirect_uri(CALLBACK)
    page = requests.get(
        sandbox.auth_url,
        params={"app_id": sandbox.app_id, "state": "s", "redirect_uri": CALLBACK},
        timeout=5,
    )
    assert page.status_code == 200
    assert "Audience Builder (demo)" in page.text
    for advertiser_id, name in sandbox.advertisers:
        assert advertiser_id in page.text and name in page.text
    assert "Authorize" in page.text and "Cancel" in page.text


def test_an_unregistered_redirect_uri_is_refused_without_redirecting(sandbox):
    page = requests.get(
        sandbox.auth_url,
        params={"app_id": sandbox.app_id, "state": "s", "redirect_uri": "http://evil.example/cb/"},
        allow_redirects=False,
        timeout=5,
    )
    assert page.status_code == 400 and "not registered" in page.text
    assert "Location" not in page.headers


def test_an_unknown_app_is_refused(sandbox):
    page = requests.get(
        sandbox.auth_url, params={"app_id": "1", "redirect_uri": CALLBACK}, timeout=5
    )
    assert page.status_code == 400 and "no app" in page.text


def test_authorize_redirects_with_auth_code_code_and_state_and_the_code_buys_a_token(sandbox):
    sandbox.register_redirect_uri(CALLBACK)
    response = authorize(sandbox, [ADV1, ADV2], state="st-42")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["st-42"] and query["auth_code"] == query["code"]
    answer = exchange(sandbox, query["auth_code"][0])
    assert answer["code"] == 0
    assert answer["data"]["advertiser_ids"] == [ADV1, ADV2] and answer["data"]["access_token"]
    token_api = Api(sandbox, answer["data"]["access_token"])
    listed = token_api.ok(
        "GET", "oauth2/advertiser/get/", app_id=sandbox.app_id, secret=sandbox.secret
    )
    assert [
        (a["advertiser_id"], a["advertiser_name"]) for a in listed["list"]
    ] == sandbox.advertisers[:2]
    assert token_api.get("dmp/custom_audience/list/", advertiser_id=ADV3)["code"] == 40106


def test_an_auth_code_works_only_once(sandbox):
    sandbox.register_redirect_uri(CALLBACK)
    code = parse_qs(urlsplit(authorize(sandbox, [ADV1]).headers["Location"]).query)["auth_code"][0]
    assert exchange(sandbox, code)["code"] == 0
    assert exchange(sandbox, code)["code"] == 40115


def test_token_exchange_checks_app_id_secret_and_fields(sandbox):
    sandbox.register_redirect_uri(CALLBACK)
    code = parse_qs(urlsplit(authorize(sandbox, [ADV1]).headers["Location"]).query)["auth_code"][0]
    assert exchange(sandbox, code, app_id="7399999999999999999")["code"] == 40101
    assert exchange(sandbox, code, secret="wrong")["code"] == 40110
    assert exchange(sandbox, "made-up-code")["code"] == 40115
    missing = Api(sandbox, None).post(
        "oauth2/access_token/", {"app_id": sandbox.app_id, "secret": sandbox.secret}
    )
    assert missing["code"] == 40002 and missing["message"].startswith("auth_code:")
    assert exchange(sandbox, code)["code"] == 0  # failed attempts did not burn the code


def test_an_auth_code_expires_after_an_hour(tmp_path, monkeypatch):
    store = Store(tmp_path)
    code = store.auth_code_create("7300000000000000001", [ADV1], CALLBACK)
    later = time.time() + 3601
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.auth_code_redeem("7300000000000000001", code) is None


def test_cancel_redirects_with_access_denied_and_state(sandbox):
    sandbox.register_redirect_uri(CALLBACK)
    response = authorize(sandbox, [ADV1], decision="cancel", state="s-9")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["s-9"]
    assert query["error_description"] and "auth_code" not in query


def test_authorize_without_choosing_an_advertiser_asks_again(sandbox):
    sandbox.register_redirect_uri(CALLBACK)
    response = authorize(sandbox, [])
    assert response.status_code == 200 and "Choose at least one advertiser" in response.text


def test_a_revoked_token_answers_40105(sandbox):
    token = sandbox.issue_token([ADV1])
    api = Api(sandbox, token)
    assert api.get("user/info/")["code"] == 0
    revoke = Api(sandbox, None).post(
        "oauth2/revoke_token/",
        {"app_id": sandbox.app_id, "secret": sandbox.secret, "access_token": token},
    )
    assert revoke["code"] == 0
    assert api.get("user/info/")["code"] == 40105


def test_the_control_endpoint_revokes_a_token_or_every_token_of_an_advertiser(sandbox):
    first, second, other = (
        sandbox.issue_token([ADV1]),
        sandbox.issue_token([ADV1, ADV2]),
        sandbox.issue_token([ADV2]),
    )
    sandbox.revoke_token(first)
    assert Api(sandbox, first).get("user/info/")["code"] == 40105
    assert sandbox.revoke_advertiser(ADV1) >= 1  # earlier tests' tokens for ADV1 go too
    assert Api(sandbox, second).get("user/info/")["code"] == 40105
    assert Api(sandbox, other).get("user/info/")["code"] == 0


def test_advertiser_get_needs_the_tokens_own_app_and_secret(sandbox, api):
    assert api.get("oauth2/advertiser/get/", app_id=sandbox.app_id, secret="nope")["code"] == 40110
    assert api.get("oauth2/advertiser/get/", app_id=sandbox.app_id)["code"] == 40002
