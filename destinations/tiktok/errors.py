"""TikTok's answers, typed by what the caller should do about them.

The table follows TIKTOK_API.md ("Error codes that matter"). TikTok answers HTTP 200 with
a `code` for most errors; a non-200 status means the request never reached the API.
"""

from __future__ import annotations

from typing import Any


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
    """5xx, HTML gateway pages, 50000-class codes, timeouts and dropped connections."""

    permanent = False
    hint = "TikTok had a temporary problem; retry with backoff"


class RateLimitedError(TransientError):
    """App or advertiser QPS/QPM limit. Back off and retry."""

    hint = "rate limited by TikTok; slow down and retry"


class StillProcessingError(TransientError):
    """The audience (or task) is not ready yet, or a write conflicted. Retry later."""

    hint = "TikTok is still processing; retry later"


class BatchTooLargeError(PermanentError):
    """Too many ids in one request (40011): split the batch and send again."""

    hint = "too many ids in one request; split the batch"


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


RATE_LIMIT_CODES = frozenset({40100, 40016, 40133})
REAUTH_CODES = frozenset({40102, 40105, 40106, 40119})
OAUTH_RESTART_CODES = frozenset({40101, 40110, 40115})
STILL_PROCESSING_CODES = frozenset({40200, 40201, 40202})
SERVER_ERROR_CODES = frozenset({50000, 50002, 51305, 60001})
NOT_FOUND_CODES = frozenset({40007, 40300, 40301})
BUG_CODES = frozenset({40104, 40900, 40909})


def error_for_code(
    code: int, message: str, *, request_id: str = "", during_oauth: bool = False
) -> TikTokError:
    """Map a non-zero envelope `code` to the error class that says what to do."""
    kwargs: dict[str, Any] = {"code": code, "request_id": request_id}
    if code in RATE_LIMIT_CODES:
        return RateLimitedError(message, **kwargs)
    if code in OAUTH_RESTART_CODES:
        if during_oauth:
            return AuthorizationRestartRequired(message, **kwargs)
        # Outside the OAuth exchange these mean the stored app id/secret are wrong.
        return AppConfigurationError(message, **kwargs)
    if code in REAUTH_CODES:
        return ReauthorizationRequired(message, **kwargs)
    if code == 40002 and "processing" in message.lower():
        return StillProcessingError(message, **kwargs)
    if code in STILL_PROCESSING_CODES:
        return StillProcessingError(message, **kwargs)
    if code == 40011:
        return BatchTooLargeError(message, **kwargs)
    if code == 40001:
        return NoPermissionError(message, **kwargs)
    if code in NOT_FOUND_CODES:
        return NotFoundError(message, **kwargs)
    if code in BUG_CODES:
        return AppConfigurationError(message, **kwargs)
    if code in SERVER_ERROR_CODES or 50000 <= code < 70000:
        return TransientError(message, **kwargs)
    return PermanentError(message, **kwargs)
