"""An in-process stand-in for TikTok behind the client's one HTTP seam (`http_session`).

Used by the fast unit tests; the sandbox-backed tests exercise the real HTTP path.
"""

from __future__ import annotations

import json as jsonlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import requests

APP_ID = "7300000000000000001"
SECRET = "fake-secret"
BASE = "https://tiktok.test/open_api/v1.3/"
AUTH = "https://tiktok.test/portal/auth"
ADVERTISERS = {"7000000000000000001": "Acme US", "7000000000000000002": "Acme EU"}


class FakeResponse:
    def __init__(self, status: int, body: Any, *, html: bool = False) -> None:
        self.status_code = status
        self._body = body
        self._html = html
        self.headers = {"X-Tt-Logid": "log-1"}

    def json(self) -> Any:
        if self._html:
            raise ValueError("not json")
        return self._body


@dataclass
class FakeTikTok:
    codes: dict[str, list[str]] = field(default_factory=dict)  # auth_code -> advertiser ids
    tokens: dict[str, list[str]] = field(default_factory=dict)  # live token -> advertiser ids
    revoked: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    # Next answers, in order: an int code, "html502", an exception, or a FakeResponse.
    faults: list[Any] = field(default_factory=list)
    unknown_audiences: set[str] = field(default_factory=set)  # get answers 40002 for these

    def grant_code(self, advertiser_ids: list[str] | None = None) -> str:
        code = secrets.token_hex(8)
        self.codes[code] = advertiser_ids or list(ADVERTISERS)
        return code

    def issue_token(self, advertiser_ids: list[str] | None = None) -> str:
        token = "tok-" + secrets.token_hex(16)
        self.tokens[token] = advertiser_ids or list(ADVERTISERS)
        return token

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)
        self.revoked.add(token)

    @staticmethod
    def ok(data: dict | None = None) -> FakeResponse:
        return FakeResponse(
            200, {"code": 0, "message": "OK", "request_id": "r1", "data": data or {}}
        )

    @staticmethod
    def err(code: int, message: str) -> FakeResponse:
        return FakeResponse(200, {"code": code, "message": message, "request_id": "r2", "data": {}})

    def request(self, method, url, params=None, json=None, data=None, headers=None, timeout=None):  # noqa: ANN001, E501
        assert timeout, "every call needs a timeout"
        path = url.removeprefix(BASE)
        if data is not None:
            json = jsonlib.loads(data)
        self.calls.append((method, path, json or params))
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            if isinstance(fault, FakeResponse):
                return fault
            if fault == "html502":
                return FakeResponse(502, None, html=True)
            return self.err(fault, "injected fault")
        if not path.endswith("/"):
            return FakeResponse(404, None, html=True)
        if path == "oauth2/access_token/":
            if json.get("app_id") != APP_ID or json.get("secret") != SECRET:
                return self.err(40101, "app_id or secret is invalid")
            ids = self.codes.pop(json.get("auth_code"), None)
            if ids is None:
                return self.err(40115, "auth_code has been used or expired")
            token = self.issue_token(ids)
            return self.ok({"access_token": token, "advertiser_ids": ids, "scope": [4]})
        token = (headers or {}).get("Access-Token")
        if path == "oauth2/revoke_token/":
            token = json.get("access_token")
        if not token:
            return self.err(40104, "Access token is missing")
        if token not in self.tokens:
            return self.err(40105, "Access token is invalid")
        ids = self.tokens[token]
        if path == "oauth2/advertiser/get/":
            return self.ok(
                {"list": [{"advertiser_id": a, "advertiser_name": ADVERTISERS[a]} for a in ids]}
            )
        if path == "oauth2/revoke_token/":
            self.revoke(token)
            return self.ok()
        if path == "user/info/":
            return self.ok({"display_name": "Ops", "email": "ops@example.com", "core_user_id": "1"})
        if path == "segment/audience/":
            return self.ok({"audience_id": "7100000000000000001"})
        if path == "segment/mapping/":
            return self.ok()
        if path == "dmp/custom_audience/get/":
            audience_ids = jsonlib.loads(params["custom_audience_ids"])
            if self.unknown_audiences & set(audience_ids):
                return self.err(40002, "invalid audience ID")
            return self.ok(
                {
                    "list": [
                        {
                            "audience_details": {
                                "audience_id": a,
                                "name": "aud",
                                "cover_num": 1200,
                                "is_valid": True,
                            },
                            "audience_history": [{"action": "create", "msg": "", "opt_time": "t"}],
                        }
                        for a in audience_ids
                    ]
                }
            )
        return FakeResponse(404, None, html=True)


def install(monkeypatch, settings) -> FakeTikTok:  # noqa: ANN001
    fake = FakeTikTok()
    monkeypatch.setattr("destinations.tiktok.client.http_session", lambda: fake)
    settings.TIKTOK_APP_ID = APP_ID
    settings.TIKTOK_APP_SECRET = SECRET
    settings.TIKTOK_API_BASE_URL = BASE
    settings.TIKTOK_AUTH_URL = AUTH
    return fake


__all__ = ["ADVERTISERS", "FakeTikTok", "install", "requests"]
