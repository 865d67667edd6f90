"""TikTok's answers, typed by what the caller should do about them.

`CODES` is TikTok's whole list of envelope codes (the official SDK's `tiktok_code.py`
in tiktok/tiktok-business-api-sdk, plus 40133 and 51305 from TIKTOK_API.md), each with
its meaning and the `Outcome` the product acts on. TikTok answers HTTP 200 with a `code`
for most errors; a non-200 answer whose body is still an envelope is classified by that
code too (see `client._call`). A code missing from the table is permanent and its message
is shown (TIKTOK_API.md, "Conventions").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Outcome(enum.StrEnum):
    """What the product does with an answer."""

    SUCCESS = "success"
    PARTIAL_SUCCESS = "success, logged"  # 20001: TikTok took the request, some parts not
    DUPLICATE = "done if idempotent"  # 40050: TikTok already took an identical request
    SPLIT = "split the batch"  # 40011, 40061: too many ids in one request
    RATE_LIMIT = "back off and retry"
    TRANSIENT = "retry with backoff"
    RETRY_LATER = "retry later"  # not ready yet, still processing, write conflict
    REAUTHORIZE = "needs reauthorization"
    RESTART_OAUTH = "restart authorization"  # during the OAuth exchange; else a config bug
    NOT_FOUND = "permanent: does not exist"
    NO_PERMISSION = "permanent: no permission"
    PRODUCT_BUG = "permanent: configuration or product bug"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Code:
    code: int
    name: str
    meaning: str
    outcome: Outcome


def _table(*rows: tuple[int, str, str, Outcome]) -> dict[int, Code]:
    return {row[0]: Code(*row) for row in rows}


_O = Outcome
CODES: dict[int, Code] = _table(
    (0, "OK", "success", _O.SUCCESS),
    (
        20001,
        "PARTIAL_OK",
        "partial success: part of the request was not applied",
        _O.PARTIAL_SUCCESS,
    ),
    # 400xx: the request itself
    (40000, "INVALID_PARAMS", "invalid request or parameters", _O.PERMANENT),
    (
        40001,
        "PERMISSION_ERROR",
        "no permission for this operation (e.g. Analyst role)",
        _O.NO_PERMISSION,
    ),
    (40002, "PARAM_ERROR", "invalid parameter (the message names it)", _O.PERMANENT),
    (40003, "FORBIDDEN", "operation forbidden", _O.NO_PERMISSION),
    (40006, "VERSION_ERROR", "API version not supported", _O.PRODUCT_BUG),
    (40007, "NOT_EXIST", "object does not exist", _O.NOT_FOUND),
    (40008, "NOT_IMPL", "not implemented", _O.PRODUCT_BUG),
    (
        40009,
        "UNSUPPORTED_IN_SANDBOX",
        "not supported in TikTok's sandbox environment",
        _O.PRODUCT_BUG,
    ),
    (40010, "UNSUPPORTED_DOMAIN", "not supported on this API domain", _O.PRODUCT_BUG),
    (40011, "ID_LIMIT_EXCEED", "too many ids in one request", _O.SPLIT),
    (40012, "NO_UPDATE", "nothing to update", _O.PERMANENT),
    (40013, "SANDBOX_ADV_NOT_EXIST", "sandbox advertiser does not exist", _O.NOT_FOUND),
    (40014, "INVALID_CLUSTER", "wrong data-centre cluster for this advertiser", _O.PRODUCT_BUG),
    (40016, "BIZ_FC_ERROR", "business frequency control (rate limit)", _O.RATE_LIMIT),
    (40050, "DUPLICATED_REQUEST", "duplicated request: an identical one was taken", _O.DUPLICATE),
    (40051, "INVALID_API_VERSION", "invalid API version", _O.PRODUCT_BUG),
    (40052, "ACO_MATERIAL_EXIST", "creative material already exists", _O.PERMANENT),
    (40053, "VIDEO_ID_INVALID", "invalid video id", _O.PERMANENT),
    (40061, "INVALID_BATCH_SIZE", "invalid batch size (too large)", _O.SPLIT),
    (40062, "PII_NOT_HASHED", "personal data sent unhashed", _O.PRODUCT_BUG),
    (40063, "INVALID_PARTNER_NAME", "invalid partner name", _O.PRODUCT_BUG),
    # 401xx: app, token and authorization
    (40100, "REQUEST_TOO_FREQUENT", "too many requests (app QPS/QPM)", _O.RATE_LIMIT),
    (40101, "INVALID_PARTNER", "app id or secret is invalid", _O.RESTART_OAUTH),
    (40102, "ACCESS_TOKEN_EXPIRE", "access token expired", _O.REAUTHORIZE),
    (40103, "REFRESH_TOKEN_EXPIRE", "refresh token expired", _O.REAUTHORIZE),
    (40104, "EMPTY_ACCESS_TOKEN", "access token missing from the request", _O.PRODUCT_BUG),
    (40105, "INVALID_ACCESS_TOKEN", "access token invalid or revoked", _O.REAUTHORIZE),
    (40106, "INVALID_CORE_USER", "the token does not cover this advertiser", _O.REAUTHORIZE),
    (40107, "INVALID_REFRESH_TOKEN", "refresh token invalid", _O.REAUTHORIZE),
    (40108, "INVALID_GRANT_TYPE", "invalid grant type", _O.PRODUCT_BUG),
    (40109, "ERROR_AES_DECIPHER", "could not decrypt the request", _O.PRODUCT_BUG),
    (40110, "AUTH_CODE_ERROR", "auth_code invalid, used or expired", _O.RESTART_OAUTH),
    (40112, "PASSWORD_ERROR", "password error", _O.RESTART_OAUTH),
    (40113, "APP_FORBIDDEN", "the developer app is disabled", _O.PRODUCT_BUG),
    (40114, "ADVERTISER_LOGOUT", "the advertiser logged out of the authorization", _O.REAUTHORIZE),
    (40115, "AUTH_TIMESTAMP_EXPIRE", "authorization expired (auth_code too old)", _O.RESTART_OAUTH),
    (40116, "AUTH_SIG_ERROR", "authorization signature invalid", _O.RESTART_OAUTH),
    (40117, "APP_METHOD_FORBIDDEN", "the app may not call this endpoint", _O.PRODUCT_BUG),
    (40118, "NOT_IN_WHITELIST", "the app is not allow-listed for this endpoint", _O.PRODUCT_BUG),
    (40119, "NOT_SAME_IDENTITY", "the token belongs to another identity", _O.REAUTHORIZE),
    (40120, "TIKTOK_USER_NOT_LOGGED_IN", "the TikTok user is not logged in", _O.REAUTHORIZE),
    (40121, "NOT_A_TCM_CREATOR", "not a TikTok Creator Marketplace creator", _O.PERMANENT),
    (40122, "TCM_CREATOR_INVALID_COUNTRY", "creator country not supported", _O.PERMANENT),
    (40124, "DEVELOPER_REJECTED", "the developer account was rejected", _O.PRODUCT_BUG),
    (40125, "DEVELOPER_NO_PERMISSION", "the developer has no permission", _O.PRODUCT_BUG),
    (40126, "GARM_SINGLE_AUTH_FAILED", "brand-safety authorization failed", _O.PERMANENT),
    (40127, "GARM_DOUBLE_AUTH_FAILED", "brand-safety authorization failed", _O.PERMANENT),
    (40128, "GARM_SINGLE_VALIDATE_ERROR", "brand-safety validation failed", _O.PERMANENT),
    (40129, "GARM_DOUBLE_VALIDATE_ERROR", "brand-safety validation failed", _O.PERMANENT),
    (
        40130,
        "SCOPE_NOT_AUTHORIZED",
        "the authorization lacks the scope (permission) needed",
        _O.REAUTHORIZE,
    ),
    (
        40131,
        "SCOPE_TT_USER_OAUTH_FAILED",
        "TikTok user authorization for the scope failed",
        _O.REAUTHORIZE,
    ),
    (40132, "REQUEST_FREQUENCY_LIMITED", "request frequency limited (rate limit)", _O.RATE_LIMIT),
    (40133, "ADVERTISER_RATE_LIMITED", "advertiser QPS/QPM limit (rate limit)", _O.RATE_LIMIT),
    # 402xx: asynchronous tasks
    (40200, "GENERAL_TASK_ERROR", "task error", _O.RETRY_LATER),
    (40201, "TASK_NOT_READY", "task not ready", _O.RETRY_LATER),
    (40202, "WRITE_CONFLICT", "write conflict with a concurrent change", _O.RETRY_LATER),
    # 403xx: advertiser
    (40300, "ADVERTISER_NOT_EXIST", "advertiser does not exist", _O.NOT_FOUND),
    (40301, "ADVERTISER_ROLE_ERROR", "the advertiser's role does not allow this", _O.NO_PERMISSION),
    (40302, "CUSTOMER_ADVERTISER_NOT_EXIST", "customer advertiser does not exist", _O.NOT_FOUND),
    (40309, "REQUIRE_LOGIN", "login required", _O.REAUTHORIZE),
    (40400, "ROUTE_NOT_FOUND", "no such endpoint", _O.PRODUCT_BUG),
    (40502, "AD_NUMBER_LIMIT", "too many ads", _O.PERMANENT),
    (40700, "RPC_VALIDATION_ERROR", "validation error", _O.PERMANENT),
    # 409xx: files and materials
    (40900, "SIGNATURE_ERROR", "file signature (MD5) mismatch", _O.PRODUCT_BUG),
    (40901, "VIDEO_TRANSCODING", "video still transcoding", _O.RETRY_LATER),
    (40902, "URL_FETCH_TIMEOUT", "timed out fetching a URL", _O.TRANSIENT),
    (40903, "URL_UNAVAILABLE", "URL unavailable", _O.PERMANENT),
    (40904, "IMAGE_ILLEGAL_CONTENT", "image content refused", _O.PERMANENT),
    (40905, "FILE_NOT_EXIST", "file does not exist", _O.NOT_FOUND),
    (40906, "FILE_EMPTY", "file is empty", _O.PERMANENT),
    (40907, "FILE_TOO_LARGE", "file too large", _O.PRODUCT_BUG),
    (40908, "FILE_TYPE_ERROR", "wrong file type", _O.PRODUCT_BUG),
    (40909, "FILE_CALCULATE_TYPE_ERROR", "unsupported calculate_type", _O.PRODUCT_BUG),
    (40910, "FILE_EXPIRED", "uploaded file expired", _O.PERMANENT),
    (40911, "DUPLICATED_MATERIAL_NAME", "material name already used", _O.PERMANENT),
    (40912, "IMAGE_UNAVAILABLE", "image unavailable", _O.PERMANENT),
    (40913, "IMAGE_FETCH_TIMEOUT", "timed out fetching an image", _O.TRANSIENT),
    (40914, "URL_FETCH_ERROR", "error fetching a URL", _O.TRANSIENT),
    (40915, "FILE_UPLOAD_INVALID", "invalid file upload", _O.PERMANENT),
    (40916, "VIDEO_ILLEGAL_CONTENT", "video content refused", _O.PERMANENT),
    (41000, "BLOCKED", "the account is blocked", _O.PERMANENT),
    (41001, "INTERFACE_OFFLINE", "this endpoint was retired", _O.PRODUCT_BUG),
    (41002, "FIELDS_OFFLINE", "a field sent was retired", _O.PRODUCT_BUG),
    (41013, "SITE_TO_VIDEO_SERVICE_ERROR", "internal service error", _O.TRANSIENT),
    # 5xxxx and 60001: TikTok's side
    (50000, "SYS_ERROR", "system error", _O.TRANSIENT),
    (50002, "SYS_TIMEOUT", "system timeout", _O.TRANSIENT),
    *(
        (code, name, "internal service error", _O.TRANSIENT)
        for code, name in (
            (51000, "RPC_ERROR"),
            (51001, "STATISTICS_ERROR"),
            (51002, "BUILD_STONE_ERROR"),
            (51003, "DMP_ERROR"),
            (51004, "LEGO_SERVICE_ERROR"),
            (51005, "SMART_PLAYER_ERROR"),
            (51006, "JUPITER_ERROR"),
            (51007, "OVERTURE_STAT_CENTRAL_ERROR"),
            (51008, "ADVERTISER_ERROR"),
            (51009, "DPA_ERROR"),
            (51010, "INTERNAL_TIME_OUT"),
            (51011, "SEARCH_ERROR"),
            (51012, "PIXEL_ERROR"),
            (51014, "LEGO_SERVICE_SYNC_ERROR"),
            (51015, "GRANTING_SERVICE_ERROR"),
            (51016, "ACCOUNT_ERROR"),
            (51017, "VIDEO_TRANSCODE_SERVICE_ERROR"),
            (51018, "AGENT_SERVICE_ERROR"),
            (51019, "IMAGE_CUT_ERROR"),
            (51020, "ORDER_CENTER_SERVICE_ERROR"),
            (51030, "USER_PASSPORT_SERVICE_ERROR"),
            (51031, "PLATFORM_ACCOUNT_SERVICE_ERROR"),
            (51032, "PLAYABLE_SERVICE_ERROR"),
            (51033, "TOOLBOX_ERROR"),
            (51034, "AD_MACHINE_AUDIT_ZEPHYR"),
            (51035, "SATELLITE_ERROR"),
            (51036, "TETRIS_ERROR"),
            (51037, "ASYNC_TASK_ERROR"),
            (51038, "UNION_TREASURE_BOX_ERROR"),
            (51039, "AUTH_SERVICE_ERROR"),
            (51040, "ADVERTISER_INFO_ERROR"),
            (51041, "AD_GARM_SERVICE_ERROR"),
            (51042, "LEGO_BUSINESS_SERVICE_ERROR"),
            (51043, "CREATIVE_PLATFORM_SERVICE_ERROR"),
            (51044, "DPA_PLATFORM_ERROR"),
            (51045, "AD_FILE_SERVICE_ERROR"),
            (51046, "SIRIUS_SERVICE_ERROR"),
            (51047, "SUBSCRIPTION_ERROR"),
            (51048, "ADS_PREVIEW_ERROR"),
            (51049, "DPA_RENDER_GATEWAY_ERROR"),
            (51050, "MEASUREMENT_STONE_ERROR"),
            (51051, "MANUAL_REVIEW_ERROR"),
            (51052, "OPTIMIZER_ERROR"),
            (51053, "DPA_CATALOG_BUSINESS_ERROR"),
            (51054, "CRM_ERROR"),
            (51055, "GCRM_ERROR"),
            (51056, "ADVERTISER_ACCOUNT_SERVICE_ERROR"),
            (51057, "APP_ERROR"),
            (51058, "POSTER_SERVICE_ERROR"),
            (51059, "CONFIG_SERVICE_ERROR"),
            (51060, "BC_RPC_ERROR"),
            (51061, "BM_SERVICE_ERROR"),
            (51062, "IMAGEX_SERVICE_ERROR"),
            (51063, "SEGMENT_GATEWAY_SERVICE_ERROR"),
            (51064, "ECO_GAME_MANAGER_SERVICE_ERROR"),
            (51065, "TTOP_SERVICE_ERROR"),
            (51066, "SUGGESTION_ENGINE_SERVICE_ERROR"),
            (51067, "VIDEOARCH_SERVICE_ERROR"),
            (51099, "STATISTICS_NEW_ERROR"),
            (51305, "SERVICE_UNAVAILABLE"),
        )
    ),  # fmt: skip
    (52000, "DB_ERROR", "database error", _O.TRANSIENT),
    (52001, "DB_READ_ERROR", "database read error", _O.TRANSIENT),
    (52002, "DB_WRITE_ERROR", "database write error", _O.TRANSIENT),
    (52003, "DB_PARTITION_ERROR", "database partition error", _O.TRANSIENT),
    (52100, "RDS_ERROR", "cache error", _O.TRANSIENT),
    (52101, "RDS_READ_ERROR", "cache read error", _O.TRANSIENT),
    (52102, "RDS_WRITE_ERROR", "cache write error", _O.TRANSIENT),
    (52103, "RDS_TIMEOUT_ERROR", "cache timeout", _O.TRANSIENT),
    (52201, "TOS_ERROR", "object storage error", _O.TRANSIENT),
    (52202, "TOS_UPLOAD_TIMEOUT", "object storage upload timeout", _O.TRANSIENT),
    (52203, "TOS_HEAD_OBJECT", "object storage error", _O.TRANSIENT),
    (52204, "TOS_PUT_OBJECT", "object storage error", _O.TRANSIENT),
    (53102, "DESERIALIZATION_ERROR", "internal deserialization error", _O.TRANSIENT),
    (53103, "SERIALIZATION_ERROR", "internal serialization error", _O.TRANSIENT),
    (60001, "MAINTENANCE", "TikTok is under maintenance", _O.TRANSIENT),
    (61000, "TOO_MANY_REQUESTS", "too many requests (rate limit)", _O.RATE_LIMIT),
    (70001, "INVALID_BIZ_AUTH_TYPE", "invalid business authorization type", _O.PRODUCT_BUG),
)


class TikTokError(Exception):
    """Any failure talking to TikTok. `permanent` says whether retrying can help."""

    permanent = True
    hint = ""

    def __init__(self, message: str, *, code: int | None = None, request_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        prefix = f"TikTok error {self.code}: " if self.code is not None else "TikTok: "
        text = prefix + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class PermanentError(TikTokError):
    """Retrying will not help: a bad parameter, a missing object, a permission problem."""


class TransientError(TikTokError):
    """5xx, HTML gateway pages, 5xxxx-class codes, timeouts and dropped connections."""

    permanent = False
    hint = "TikTok had a temporary problem; retry with backoff"


class RateLimitedError(TransientError):
    """App or advertiser QPS/QPM limit. Back off and retry."""

    hint = "rate limited by TikTok; slow down and retry"


class StillProcessingError(TransientError):
    """The audience (or task) is not ready yet, or a write conflicted. Retry later."""

    hint = "TikTok is still processing; retry later"


class BatchTooLargeError(PermanentError):
    """Too many ids in one request (40011) or an invalid batch size (40061): split the
    batch and send the halves."""

    hint = "too many ids in one request; split the batch"


class DuplicatedRequestError(PermanentError):
    """40050: TikTok already took an identical request (typically the first try of one
    whose answer was lost). For an idempotent call that means done; the client says which
    calls are (segment/mapping/)."""

    hint = "TikTok already received an identical request"


class ReauthorizationRequired(PermanentError):
    """The access token expired, was revoked, or does not cover this advertiser."""

    hint = "an operator must reauthorize this TikTok destination"


class AuthorizationRestartRequired(ReauthorizationRequired):
    """During OAuth: bad app id/secret, or the auth_code was used or expired."""

    hint = "start the authorization again"


class AppConfigurationError(PermanentError):
    """The product itself is misconfigured or buggy (missing header, bad signature)."""

    hint = "this is a configuration or product bug, not a TikTok outage"


class NoPermissionError(PermanentError):
    hint = "the TikTok user who authorized needs the Operator or Admin role on the ad account"


class NotFoundError(PermanentError):
    hint = "the object does not exist in TikTok"


class AudienceNotFoundError(NotFoundError):
    """TikTok no longer knows an audience (40002 "invalid audience ID", or 40007 naming an
    audience): deleted in Ads Manager, expired, or another advertiser's. Permanent for that
    audience only; `audience_ids` names it when the caller knows which."""

    hint = "TikTok no longer knows this audience (deleted in TikTok Ads Manager, or expired)"

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        request_id: str = "",
        audience_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, code=code, request_id=request_id)
        self.audience_ids = audience_ids


_ERROR_FOR_OUTCOME: dict[Outcome, type[TikTokError]] = {
    Outcome.DUPLICATE: DuplicatedRequestError,
    Outcome.SPLIT: BatchTooLargeError,
    Outcome.RATE_LIMIT: RateLimitedError,
    Outcome.TRANSIENT: TransientError,
    Outcome.RETRY_LATER: StillProcessingError,
    Outcome.REAUTHORIZE: ReauthorizationRequired,
    Outcome.NOT_FOUND: NotFoundError,
    Outcome.NO_PERMISSION: NoPermissionError,
    Outcome.PRODUCT_BUG: AppConfigurationError,
    Outcome.PERMANENT: PermanentError,
}


def outcome_of(code: int) -> Outcome:
    """The table's outcome for a code; a code TikTok never documented is permanent."""
    known = CODES.get(code)
    return known.outcome if known is not None else Outcome.PERMANENT


def is_success(code: int) -> bool:
    return outcome_of(code) in (Outcome.SUCCESS, Outcome.PARTIAL_SUCCESS)


def _names_an_unknown_audience(code: int, message: str) -> bool:
    text = message.lower()
    if code == 40002:
        return "invalid audience id" in text
    return code == 40007 and "audience" in text


def error_for_code(
    code: int, message: str, *, request_id: str = "", during_oauth: bool = False
) -> TikTokError:
    """Map a non-success envelope `code` to the error class that says what to do."""
    kwargs: dict[str, Any] = {"code": code, "request_id": request_id}
    outcome = outcome_of(code)
    if outcome in (Outcome.SUCCESS, Outcome.PARTIAL_SUCCESS):
        raise ValueError(f"code {code} is a success, not an error")
    if code == 40002 and "processing" in message.lower():
        # TikTok reuses "invalid parameter" for an audience that is still being built.
        return StillProcessingError(message, **kwargs)
    if _names_an_unknown_audience(code, message):
        return AudienceNotFoundError(message, **kwargs)
    if outcome == Outcome.RESTART_OAUTH:
        if during_oauth:
            return AuthorizationRestartRequired(message, **kwargs)
        # Outside the OAuth exchange these mean the stored app id/secret are wrong.
        return AppConfigurationError(message, **kwargs)
    return _ERROR_FOR_OUTCOME[outcome](message, **kwargs)
