from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import requests

ADV1, ADV2, ADV3 = "7000000000000000001", "7000000000000000002", "7000000000000000003"
SCHEMA = ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256"]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Api:
    """A bare HTTP client for the sandbox, as the product's client would talk to TikTok."""

    def __init__(self, sandbox: Any, token: str | None) -> None:
        self.sandbox = sandbox
        self.token = token

    def headers(self) -> dict[str, str]:
        return {"Access-Token": self.token} if self.token else {}

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        query = {k: json.dumps(v) if isinstance(v, list) else v for k, v in params.items()}
        response = requests.get(
            self.sandbox.api_base_url + path, params=query, headers=self.headers(), timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(
            self.sandbox.api_base_url + path, json=body, headers=self.headers(), timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()

    def ok(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        answer = self.post(path, body or {}) if method == "POST" else self.get(path, **params)
        assert answer["code"] == 0, answer
        return answer["data"]

    def create_audience(self, advertiser_id: str = ADV1, name: str = "Test audience") -> str:
        data = self.ok(
            "POST",
            "segment/audience/",
            {
                "advertiser_id": advertiser_id,
                "action": "create",
                "custom_audience_name": name,
            },
        )
        return data["audience_id"]

    def mapping(
        self,
        audience_id: str,
        people: list[list[str | None]],
        *,
        action: str = "add",
        advertiser_id: str = ADV1,
    ) -> dict[str, Any]:
        return self.post(
            "segment/mapping/", mapping_body(audience_id, people, action, advertiser_id)
        )


def mapping_body(
    audience_id: str, people: list[list[str | None]], action: str = "add", advertiser_id: str = ADV1
) -> dict[str, Any]:
    return {
        "advertiser_ids": [advertiser_id],
        "action": action,
        "id_schema": list(SCHEMA),
        "batch_data": [
            [{"id": h, "audience_ids": [audience_id]} if h else {} for h in person]
            for person in people
        ],
    }


def person(
    n: int, *, email: bool = True, phone: bool = True, idfa: bool = False, aaid: bool = False
) -> list[str | None]:
    return [
        sha(f"user{n}@example.com") if email else None,
        sha(f"+1555{n:07d}") if phone else None,
        sha(f"idfa-{n}") if idfa else None,
        sha(f"aaid-{n}") if aaid else None,
    ]


@pytest.fixture
def api(sandbox) -> Api:
    return Api(sandbox, sandbox.issue_token([ADV1, ADV2]))


@pytest.fixture
def anonymous(sandbox) -> Api:
    return Api(sandbox, None)
