"""The wire calls to TikTok's Marketing API v1.3 (see TIKTOK_API.md).

One HTTP session with timeouts and a User-Agent, one typed method per endpoint the
product uses, answers parsed into dataclasses and failures raised as the typed errors of
`destinations.tiktok.errors`. Nothing outside this module sees a raw response. Secrets
(tokens, the app secret) never appear in error messages: requests' own exceptions name
the URL, which for some GETs carries the app secret, so they are replaced here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
from django.conf import settings

from destinations.crypto import Secret
from destinations.tiktok.errors import (
    AppConfigurationError,
    AudienceNotFoundError,
    DuplicatedRequestError,
    NotFoundError,
    Outcome,
    RateLimitedError,
    ReauthorizationRequired,
    TikTokError,
    TransientError,
    error_for_code,
    outcome_of,
)

logger = logging.getLogger(__name__)

USER_AGENT = "AudienceBuilder/0.1 (+self-hosted; TikTok Marketing API v1.3)"
AUDIENCE_NAME_LIMIT = 70
ID_TYPES = ("EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "IDFA_MD5", "AAID_SHA256", "AAID_MD5")

_session = requests.Session()
_session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})


def http_session() -> requests.Session:
    """The one HTTP seam (tests may patch it)."""
    return _session


# ---- parsed answers -------------------------------------------------------------------


@dataclass(frozen=True)
class TokenGrant:
    access_token: Secret
    advertiser_ids: list[str]
    scope: list[int] = field(default_factory=list)
    refresh_token: Secret | None = None
    expires_in: int | None = None

    def __repr__(self) -> str:
        return f"TokenGrant(advertiser_ids={self.advertiser_ids!r}, scope={self.scope!r})"


@dataclass(frozen=True)
class Advertiser:
    advertiser_id: str
    advertiser_name: str


@dataclass(frozen=True)
class UserInfo:
    display_name: str
    email: str
    core_user_id: str


@dataclass(frozen=True)
class AudienceStatus:
    audience_id: str
    name: str
    cover_num: int | None
    is_valid: bool
    is_expiring: bool = False
    calculate_type: str = ""
    create_time: str = ""
    error_msg: str = ""
    history: list[dict[str, str]] = field(default_factory=list)


@dataclass
class AudienceLookup:
    """`found`: the audiences TikTok reported; `unknown`: those it refused as unknown, with
    its answer (the reason to show)."""

    found: dict[str, AudienceStatus] = field(default_factory=dict)
    unknown: dict[str, NotFoundError] = field(default_factory=dict)


@dataclass(frozen=True)
class AudiencePage:
    audiences: list[AudienceStatus]
    page: int
    page_size: int
    total_number: int
    total_page: int


# ---- transport ------------------------------------------------------------------------


def _url(base_url: str, path: str) -> str:
    # Every TikTok path ends with "/"; without it TikTok answers a plain-text 404.
    return base_url.rstrip("/") + "/" + path.strip("/") + "/"


def _call(
    method: Literal["GET", "POST"],
    path: str,
    *,
    base_url: str,
    access_token: str | None = None,
    params: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    raw_body: bytes | None = None,
    during_oauth: bool = False,
) -> dict[str, Any]:
    """One TikTok request. ``raw_body`` is a JSON body already serialized (used instead of
    ``body`` where building the Python objects would cost more than the request)."""
    headers = {}
    if raw_body is not None:
        headers["Content-Type"] = "application/json"
    if access_token is not None:
        headers["Access-Token"] = str(access_token)
    query = None
    if params is not None:
        # TikTok wants list parameters as JSON-encoded strings.
        query = {k: json.dumps(v) if isinstance(v, list | tuple) else v for k, v in params.items()}
    payload: dict[str, Any] = {"json": body} if raw_body is None else {"data": raw_body}
    try:
        response = http_session().request(
            method,
            _url(base_url, path),
            params=query,
            headers=headers,
            timeout=settings.TIKTOK_HTTP_TIMEOUT,
            **payload,
        )
    except requests.Timeout:
        raise TransientError(
            f"no answer from TikTok within {settings.TIKTOK_HTTP_TIMEOUT}s calling {path}"
        ) from None
    except requests.ConnectionError:
        raise TransientError(f"connection to TikTok failed or dropped calling {path}") from None
    except requests.RequestException as exc:
        raise TransientError(f"{type(exc).__name__} calling {path}") from None

    request_id = response.headers.get("X-Tt-Logid", "")
    status = response.status_code
    envelope = _envelope(response)
    if envelope is None or (status != 200 and envelope[0] == 0):
        # Not an envelope (an HTML gateway page, a plain-text 404): the request never
        # reached the API, so the HTTP status is all there is to go on.
        raise _transport_fault(status, path, request_id)
    code, message, envelope_request_id, data = envelope
    request_id = envelope_request_id or request_id
    outcome = outcome_of(code)
    if outcome == Outcome.PARTIAL_SUCCESS:
        logger.warning(
            "TikTok took %s only in part (code %s, request %s): %s", path, code, request_id, message
        )
    elif outcome != Outcome.SUCCESS:
        # Some errors come with a 4xx status and the envelope: its code says what to do.
        raise error_for_code(code, message, request_id=request_id, during_oauth=during_oauth)
    return data


def _envelope(response: requests.Response) -> tuple[int, str, str, dict[str, Any]] | None:
    """(code, message, request_id, data) when the body is TikTok's JSON envelope."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or "code" not in body:
        return None
    raw_code = body["code"]
    if isinstance(raw_code, bool) or not isinstance(raw_code, int | str):
        return None
    try:
        code = int(raw_code)
    except ValueError:
        return None
    data = body.get("data")
    return (
        code,
        str(body.get("message") or "no message"),
        str(body.get("request_id") or ""),
        data if isinstance(data, dict) else {},
    )


def _transport_fault(status: int, path: str, request_id: str) -> TikTokError:
    if status == 200:
        # A gateway's HTML page (or an odd body) with status 200 is as transient as a 502.
        return TransientError(f"TikTok answered {path} without an envelope", request_id=request_id)
    if status == 429:
        return RateLimitedError(f"HTTP 429 calling {path}", request_id=request_id)
    if status == 404:
        return AppConfigurationError(
            f"HTTP 404 calling {path}: check TIKTOK_API_BASE_URL", request_id=request_id
        )
    return TransientError(f"HTTP {status} from TikTok calling {path}", request_id=request_id)


def _check_mapping(action: str, id_schema: Sequence[str]) -> None:
    if action not in ("add", "delete"):
        raise ValueError(f"action must be add or delete, not {action!r}")
    if len(set(id_schema)) != len(id_schema) or not set(id_schema) <= set(ID_TYPES):
        raise ValueError(f"bad id_schema {list(id_schema)!r}")


def _str_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _bad_answer(path: str, what: str) -> TikTokError:
    return TransientError(f"TikTok's answer to {path} lacks {what}")


def exchange_auth_code(
    auth_code: str,
    *,
    app_id: str | None = None,
    secret: str | None = None,
    base_url: str | None = None,
) -> TokenGrant:
    """POST oauth2/access_token/: trade the single-use auth_code for an access token."""
    data = _call(
        "POST",
        "oauth2/access_token",
        base_url=base_url or settings.TIKTOK_API_BASE_URL,
        body={
            "app_id": app_id or settings.TIKTOK_APP_ID,
            "secret": secret or settings.TIKTOK_APP_SECRET,
            "auth_code": auth_code,
        },
        during_oauth=True,
    )
    token = data.get("access_token")
    if not token:
        raise _bad_answer("oauth2/access_token", "an access_token")
    refresh = data.get("refresh_token")
    expires_in = data.get("expires_in") or data.get("access_token_expire_in")
    return TokenGrant(
        access_token=Secret(token),
        advertiser_ids=_str_list(data.get("advertiser_ids")),
        scope=[int(s) for s in data.get("scope") or [] if str(s).isdigit()],
        refresh_token=Secret(refresh) if refresh else None,
        expires_in=int(str(expires_in)) if str(expires_in or "").isdigit() else None,
    )


def _audience_status(item: dict[str, Any]) -> AudienceStatus:
    details = item.get("audience_details", item)
    cover = details.get("cover_num")
    return AudienceStatus(
        audience_id=str(details.get("audience_id", "")),
        name=str(details.get("name", "")),
        cover_num=int(cover) if cover is not None else None,
        is_valid=bool(details.get("is_valid", False)),
        is_expiring=bool(details.get("is_expiring", False)),
        calculate_type=str(details.get("calculate_type") or ""),
        create_time=str(details.get("create_time") or ""),
        error_msg=str(details.get("error_msg") or ""),
        history=[
            {k: str(v) for k, v in h.items()}
            for h in item.get("audience_history") or []
            if isinstance(h, dict)
        ],
    )


def audience_name(name: str) -> str:
    """TikTok's rule: names over 70 characters are cut to 67 plus '...'."""
    if len(name) <= AUDIENCE_NAME_LIMIT:
        return name
    return name[: AUDIENCE_NAME_LIMIT - 3] + "..."


class TikTokClient:
    """Calls made with one advertiser authorization's access token."""

    def __init__(
        self,
        access_token: str,
        base_url: str | None = None,
        *,
        on_auth_error: Callable[[ReauthorizationRequired], None] | None = None,
    ) -> None:
        if not access_token:
            raise ReauthorizationRequired("no access token is stored for this destination")
        self._token = Secret(access_token)
        self.base_url = base_url or settings.TIKTOK_API_BASE_URL
        self._on_auth_error = on_auth_error

    def __repr__(self) -> str:
        return f"<TikTokClient {self.base_url}>"

    def _call(self, method: Literal["GET", "POST"], path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return _call(method, path, base_url=self.base_url, access_token=self._token, **kwargs)
        except ReauthorizationRequired as exc:
            if self._on_auth_error is not None:
                self._on_auth_error(exc)
            raise

    # -- OAuth housekeeping --

    def list_advertisers(
        self, *, app_id: str | None = None, secret: str | None = None
    ) -> list[Advertiser]:
        data = self._call(
            "GET",
            "oauth2/advertiser/get",
            params={
                "app_id": app_id or settings.TIKTOK_APP_ID,
                "secret": secret or settings.TIKTOK_APP_SECRET,
            },
        )
        return [
            Advertiser(str(a["advertiser_id"]), str(a.get("advertiser_name") or ""))
            for a in data.get("list") or []
            if isinstance(a, dict) and a.get("advertiser_id")
        ]

    def revoke_token(self, *, app_id: str | None = None, secret: str | None = None) -> None:
        self._call(
            "POST",
            "oauth2/revoke_token",
            body={
                "app_id": app_id or settings.TIKTOK_APP_ID,
                "secret": secret or settings.TIKTOK_APP_SECRET,
                "access_token": str(self._token),
            },
        )

    def user_info(self) -> UserInfo:
        """GET user/info/: answers code 0 while the token works."""
        data = self._call("GET", "user/info")
        return UserInfo(
            display_name=str(data.get("display_name") or ""),
            email=str(data.get("email") or ""),
            core_user_id=str(data.get("core_user_id") or data.get("id") or ""),
        )

    # -- audiences (segment API) --

    def create_audience(self, advertiser_id: str, name: str) -> str:
        """POST segment/audience/ (create). No ``id_type``: the open-source integrations
        dropped it in 2024 and TikTok's Go SDK has no such field; one partner audience
        takes every id type sent to it through segment/mapping/.

        Not idempotent: when the answer is lost, look the audience up by name before
        creating again (`AudienceAdapter.create_audience` does)."""
        data = self._call(
            "POST",
            "segment/audience",
            body={
                "advertiser_id": str(advertiser_id),
                "action": "create",
                "custom_audience_name": audience_name(name),
            },
        )
        audience_id = data.get("audience_id")
        if not audience_id:
            raise _bad_answer("segment/audience", "an audience_id")
        return str(audience_id)

    def delete_audience(self, advertiser_id: str, audience_id: str) -> None:
        self._call(
            "POST",
            "segment/audience",
            body={
                "advertiser_id": str(advertiser_id),
                "action": "delete",
                "delete_audience_id": str(audience_id),
            },
        )

    def update_members(
        self,
        advertiser_id: str,
        audience_ids: Sequence[str],
        id_schema: Sequence[str],
        rows: Sequence[Sequence[str | None]],
        action: Literal["add", "delete"] = "add",
    ) -> None:
        """POST segment/mapping/: one row per person, positional to id_schema (None = absent)."""
        _check_mapping(action, id_schema)
        ids = [str(a) for a in audience_ids]
        batch_data = []
        for row in rows:
            if len(row) != len(id_schema):
                raise ValueError("every row needs one value (or None) per id_schema entry")
            batch_data.append([{"id": v, "audience_ids": ids} if v else {} for v in row])
        self._mapping(
            ids,
            body={
                "advertiser_ids": [str(advertiser_id)],
                "action": action,
                "id_schema": list(id_schema),
                "batch_data": batch_data,
            },
        )

    def _mapping(self, audience_ids: Sequence[str], **kwargs: Any) -> None:
        """segment/mapping/ is idempotent (adding a present id or deleting an absent one
        changes nothing), so TikTok's 40050 "duplicated request" (the first try of a request
        whose answer was lost was taken) means this request is done."""
        try:
            self._call("POST", "segment/mapping", **kwargs)
        except DuplicatedRequestError as exc:
            logger.info("segment/mapping/: %s; counted as done", exc)
        except AudienceNotFoundError as exc:
            if audience_ids and not exc.audience_ids:
                exc.audience_ids = tuple(audience_ids)
            raise

    def update_members_json(
        self,
        advertiser_id: str,
        id_schema: Sequence[str],
        batch_data: Sequence[str],
        action: Literal["add", "delete"] = "add",
    ) -> None:
        """POST segment/mapping/ with the ``batch_data`` entries already serialized: one
        JSON array per person, positional to id_schema, each id carrying its audience_ids
        (the delivery has the database write them). Python joins strings instead of
        building and encoding ~20,000 objects a request. Same errors as every call."""
        _check_mapping(action, id_schema)
        head = json.dumps(
            {"advertiser_ids": [str(advertiser_id)], "action": action, "id_schema": list(id_schema)}
        )
        body = f'{head[:-1]}, "batch_data": [{",".join(batch_data)}]}}'.encode()
        self._mapping((), raw_body=body)

    def get_audiences(
        self, advertiser_id: str, audience_ids: Sequence[str]
    ) -> list[AudienceStatus]:
        data = self._call(
            "GET",
            "dmp/custom_audience/get",
            params={
                "advertiser_id": str(advertiser_id),
                "custom_audience_ids": [str(a) for a in audience_ids],
            },
        )
        return [_audience_status(item) for item in data.get("list") or [] if isinstance(item, dict)]

    def audience_statuses(self, advertiser_id: str, audience_ids: Sequence[str]) -> AudienceLookup:
        """dmp/custom_audience/get/ for many audiences, sorting out those TikTok no longer
        knows: one unknown id fails the whole request (40002 "invalid audience ID" or
        40007), so a failing list is halved until the unknown ids are alone. Ids TikTok
        neither reports nor refuses are in neither part of the answer."""
        lookup = AudienceLookup()
        pending = [sorted({str(a) for a in audience_ids})]
        while pending:
            ids = pending.pop()
            if not ids:
                continue
            try:
                for status in self.get_audiences(advertiser_id, ids):
                    if status.audience_id in ids:
                        lookup.found[status.audience_id] = status
            except NotFoundError as exc:
                if not isinstance(exc, AudienceNotFoundError) and exc.code != 40007:
                    raise  # the advertiser, not an audience, is missing
                if len(ids) == 1:
                    lookup.unknown[ids[0]] = exc
                else:
                    half = len(ids) // 2
                    pending += [ids[half:], ids[:half]]
        return lookup

    def list_audiences(
        self, advertiser_id: str, *, page: int = 1, page_size: int = 100
    ) -> AudiencePage:
        data = self._call(
            "GET",
            "dmp/custom_audience/list",
            params={"advertiser_id": str(advertiser_id), "page": page, "page_size": page_size},
        )
        info = data.get("page_info") or {}
        return AudiencePage(
            audiences=[
                _audience_status(item) for item in data.get("list") or [] if isinstance(item, dict)
            ],
            page=int(info.get("page", page)),
            page_size=int(info.get("page_size", page_size)),
            total_number=int(info.get("total_number", 0)),
            total_page=int(info.get("total_page", 0)),
        )
