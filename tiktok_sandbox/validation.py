"""Request checks that answer like TikTok: 40002 with the field named, and friends."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .config import ID_RE


class ApiError(Exception):
    """An answer with a non-zero TikTok code (HTTP 200, envelope)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Error codes, named (see TIKTOK_API.md "Error codes that matter").
PARTIAL_OK = 20001
INVALID_REQUEST = 40000
NO_PERMISSION = 40001
INVALID_PARAM = 40002
NOT_FOUND = 40007
TOO_MANY_IDS = 40011
DUPLICATED_REQUEST = 40050
INVALID_BATCH_SIZE = 40061
RATE_LIMITED = 40100
BAD_APP_ID = 40101
TOKEN_EXPIRED = 40102
TOKEN_MISSING = 40104
TOKEN_INVALID = 40105
ADVERTISER_NOT_AUTHORIZED = 40106
BAD_SECRET = 40110
BAD_AUTH_CODE = 40115
FREQUENCY_LIMITED = 40132
ADVERTISER_MISSING = 40300
BAD_SIGNATURE = 40900
BAD_CALCULATE_TYPE = 40909
SERVER_ERROR = 50000


def invalid(field: str, problem: str) -> ApiError:
    return ApiError(INVALID_PARAM, f"{field}: {problem}")


def require(params: Mapping[str, Any], field: str) -> Any:
    value = params.get(field)
    if value is None or value == "":
        raise invalid(field, "This field is required.")
    return value


def string(
    params: Mapping[str, Any],
    field: str,
    *,
    max_len: int | None = None,
    required: bool = True,
    default: str = "",
) -> str:
    if not required and params.get(field) in (None, ""):
        return default
    value = require(params, field)
    if not isinstance(value, str):
        raise invalid(field, "must be a string.")
    if max_len is not None and len(value) > max_len:
        raise invalid(field, f"must be at most {max_len} characters.")
    return value


def id_string(value: Any, field: str) -> str:
    """Ids are strings of up to 19 digits (TikTok's int64 ids sent as strings)."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise invalid(field, "must be a string of up to 19 digits.")
    return value


def id_field(params: Mapping[str, Any], field: str) -> str:
    return id_string(require(params, field), field)


def enum(
    params: Mapping[str, Any],
    field: str,
    choices: Iterable[str],
    *,
    default: str | None = None,
    code: int = INVALID_PARAM,
) -> str:
    choices = tuple(choices)
    if default is not None and params.get(field) in (None, ""):
        return default
    value = require(params, field)
    if value not in choices:
        raise ApiError(code, f"{field}: must be one of {', '.join(choices)}; got {value!r}.")
    return value


def integer(params: Mapping[str, Any], field: str, *, default: int, low: int, high: int) -> int:
    value = params.get(field)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise invalid(field, "must be a whole number.") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(field, "must be a whole number.")
    if not low <= value <= high:
        raise invalid(field, f"must be between {low} and {high}.")
    return value


def id_list(
    params: Mapping[str, Any],
    field: str,
    *,
    max_len: int,
    from_query: bool = False,
    required: bool = True,
) -> list[str]:
    """A list of id strings; in a GET query it arrives JSON-encoded: ids=["1","2"]."""
    if not required and params.get(field) in (None, ""):
        return []
    value = require(params, field)
    if from_query:
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid(field, 'must be a JSON-encoded list, e.g. ["7123"].') from None
    if not isinstance(value, list) or not value:
        raise invalid(field, "must be a non-empty list.")
    if len(value) > max_len:
        raise invalid(field, f"must hold at most {max_len} items.")
    return [id_string(item, f"{field}[{i}]") for i, item in enumerate(value)]


def string_list(params: Mapping[str, Any], field: str, *, max_len: int) -> list[str]:
    value = require(params, field)
    if not isinstance(value, list) or not value:
        raise invalid(field, "must be a non-empty list.")
    if len(value) > max_len:
        raise invalid(field, f"must hold at most {max_len} items.")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise invalid(f"{field}[{i}]", "must be a non-empty string.")
    return value
