"""The TikTok Marketing API v1.3 endpoints the product uses, one function each."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .members import AudienceMembers, IdGroup
from .runtime import Sandbox
from .store import OP_ADD, OP_DELETE, Audience, Token
from .validation import (
    ADVERTISER_MISSING,
    ADVERTISER_NOT_AUTHORIZED,
    BAD_APP_ID,
    BAD_AUTH_CODE,
    BAD_CALCULATE_TYPE,
    BAD_SECRET,
    BAD_SIGNATURE,
    INVALID_BATCH_SIZE,
    INVALID_PARAM,
    NO_PERMISSION,
    NOT_FOUND,
    TOKEN_INVALID,
    TOO_MANY_IDS,
    ApiError,
    enum,
    id_field,
    id_list,
    id_string,
    integer,
    invalid,
    string,
    string_list,
)

SEGMENT_ID_TYPES = (
    "EMAIL_SHA256",
    "PHONE_SHA256",
    "IDFA_SHA256",
    "IDFA_MD5",
    "AAID_SHA256",
    "AAID_MD5",
)
FILE_ID_TYPES = (
    "EMAIL_SHA256",
    "PHONE_SHA256",
    "IDFA_SHA256",
    "GAID_SHA256",
    "IDFA_MD5",
    "GAID_MD5",
    "FIRST_SHA256",
    "FIRST_MD5",
    "MAID_SHA256",
    "MAID_MD5",
)
FILE_CALCULATE_TYPES = (*FILE_ID_TYPES, "MULTIPLE_TYPES")
# MAID_* (mobile advertising ids) are TikTok's other names for FIRST_*.
CALCULATE_TYPE_ALIASES = {"MAID_SHA256": "FIRST_SHA256", "MAID_MD5": "FIRST_MD5"}
# A partner audience takes every id type sent through segment/mapping/.
PARTNER_CALCULATE_TYPE = "MULTIPLE_TYPES"
MAX_FILE_BYTES = 50 * 1024 * 1024
MIN_AUDIENCE_SIZE = 1000
MAX_EVENTS = 1000
ATTRIBUTION_WINDOW_S = 28 * 24 * 3600
DEFAULT_RETENTION_DAYS = 365


@dataclass
class Call:
    """One API request as the handlers see it."""

    sandbox: Sandbox
    params: dict[str, Any]
    token: Token | None = None
    files: dict[str, Any] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)

    def advertiser(self, advertiser_id: str, *, write: bool = False) -> str:
        self.log.setdefault("advertiser_id", advertiser_id)
        if self.sandbox.config.advertiser(advertiser_id) is None:
            raise ApiError(ADVERTISER_MISSING, f"Advertiser {advertiser_id} does not exist.")
        assert self.token is not None
        if advertiser_id not in self.token.advertiser_ids:
            raise ApiError(
                ADVERTISER_NOT_AUTHORIZED,
                f"The access token is not authorized for advertiser {advertiser_id}.",
            )
        if write and advertiser_id in self.sandbox.tunables.read_only_advertisers:
            raise ApiError(
                NO_PERMISSION,
                f"No permission to operate advertiser {advertiser_id}: "
                "the authorizing user has the Analyst role.",
            )
        return advertiser_id

    def owned_audience(
        self,
        audience_id: str,
        advertiser_ids: tuple[str, ...] | list[str],
        field_name: str,
        *,
        unknown: ApiError | None = None,
    ) -> Audience:
        audience = self.sandbox.store.audience_get(audience_id)
        if audience is None or audience.advertiser_id not in advertiser_ids:
            raise unknown or ApiError(
                NOT_FOUND, f"{field_name}: audience {audience_id} does not exist."
            )
        return audience


def timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def hex_width(id_type: str) -> int:
    return 32 if id_type.endswith("MD5") else 64


def digest_of(value: Any, id_type: str, field_name: str) -> bytes:
    if type(value) is str and len(value) == hex_width(id_type):
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    raise invalid(field_name, f"must be a {hex_width(id_type)}-character hex {id_type} hash.")


# --- OAuth ------------------------------------------------------------------------------


def _app_and_secret(call: Call) -> str:
    app_id = string(call.params, "app_id")
    app = call.sandbox.config.app(app_id)
    if app is None:
        raise ApiError(BAD_APP_ID, f"app_id {app_id} is invalid.")
    if string(call.params, "secret") != app.secret:
        raise ApiError(BAD_SECRET, "secret is invalid for this app.")
    return app_id


def oauth_access_token(call: Call) -> dict[str, Any]:
    app_id = _app_and_secret(call)
    auth_code = string(call.params, "auth_code")
    advertiser_ids = call.sandbox.store.auth_code_redeem(app_id, auth_code)
    if advertiser_ids is None:
        raise ApiError(BAD_AUTH_CODE, "auth_code is invalid, already used or expired.")
    token = call.sandbox.store.token_create(app_id, advertiser_ids)
    call.log["advertiser_ids"] = advertiser_ids
    return {"access_token": token, "advertiser_ids": advertiser_ids, "scope": [4, 5]}


def oauth_advertiser_get(call: Call) -> dict[str, Any]:
    app_id = _app_and_secret(call)
    assert call.token is not None
    if call.token.app_id != app_id:
        raise ApiError(TOKEN_INVALID, "The access token does not belong to this app.")
    config = call.sandbox.config
    return {
        "list": [
            {"advertiser_id": a, "advertiser_name": config.advertiser(a).advertiser_name}  # type: ignore[union-attr]
            for a in call.token.advertiser_ids
            if config.advertiser(a) is not None
        ]
    }


def oauth_revoke_token(call: Call) -> dict[str, Any]:
    app_id = _app_and_secret(call)
    access_token = string(call.params, "access_token")
    token = call.sandbox.store.token_get(access_token)
    if token is None or token.revoked or token.app_id != app_id:
        raise ApiError(TOKEN_INVALID, "access_token is invalid or already revoked.")
    call.sandbox.store.token_revoke(access_token)
    return {"advertiser_ids": list(token.advertiser_ids)}


def user_info(call: Call) -> dict[str, Any]:
    assert call.token is not None
    user_id = str(
        7_100_000_000_000_000_000
        + int(hashlib.sha256(call.token.token.encode()).hexdigest()[:12], 16)
    )
    return {
        "core_user_id": user_id,
        "display_name": "Sandbox User",
        "email": "sandbox.user@example.com",
        "avatar_url": "",
        "create_time": 1700000000,
    }


# --- segment (partner) audiences --------------------------------------------------------


def segment_audience(call: Call) -> dict[str, Any]:
    advertiser_id = call.advertiser(id_field(call.params, "advertiser_id"), write=True)
    action = enum(call.params, "action", ("create", "delete"), default="create")
    call.log["action"] = action
    store = call.sandbox.store
    if action == "delete":
        audience_id = id_field(call.params, "delete_audience_id")
        call.owned_audience(audience_id, (advertiser_id,), "delete_audience_id")
        store.audiences_delete([audience_id])
        return {"audience_id": audience_id}
    name = string(call.params, "custom_audience_name")
    if len(name) > 70:
        name = name[:67] + "..."
    # `id_type` was dropped by the open-source integrations in 2024 and TikTok's Go SDK has
    # no such field: accepted when sent, and ignored like any field TikTok does not know.
    audience = store.audience_create(
        advertiser_id=advertiser_id,
        name=name,
        kind="partner",
        calculate_type=PARTNER_CALCULATE_TYPE,
        retention_days=DEFAULT_RETENTION_DAYS,
    )
    call.log["audience_id"] = audience.audience_id
    return {"audience_id": audience.audience_id}


def segment_mapping(call: Call) -> dict[str, Any]:
    params = call.params
    advertiser_ids = id_list(params, "advertiser_ids", max_len=100)
    for advertiser_id in advertiser_ids:
        call.advertiser(advertiser_id, write=True)
    call.log["advertiser_ids"] = advertiser_ids
    action = enum(params, "action", ("add", "delete"), default="add")
    call.log["action"] = action
    schema = params.get("id_schema")
    if not isinstance(schema, list) or not schema:
        raise invalid("id_schema", "must be a non-empty list of id types.")
    for i, id_type in enumerate(schema):
        if not isinstance(id_type, str) or id_type.upper() not in SEGMENT_ID_TYPES:
            raise invalid(f"id_schema[{i}]", f"must be one of {', '.join(SEGMENT_ID_TYPES)}.")
    schema = [id_type.upper() for id_type in schema]  # TikTok takes any case
    if len(set(schema)) != len(schema):
        raise invalid("id_schema", "must not repeat an id type.")
    batch = params.get("batch_data")
    if not isinstance(batch, list) or not batch:
        raise invalid("batch_data", "must be a non-empty list of people.")
    limit = call.sandbox.tunables.batch_limit
    call.log["counts"] = {"people": len(batch)}
    if len(batch) > limit:
        if call.sandbox.tunables.batch_limit_code == INVALID_BATCH_SIZE:
            raise ApiError(INVALID_BATCH_SIZE, f"batch_data: invalid batch size (limit {limit}).")
        raise ApiError(
            TOO_MANY_IDS,
            f"batch_data: too many ids in one request ({len(batch)} people; the limit is {limit}).",
        )
    groups, total_ids = _mapping_groups(schema, batch)
    call.log["counts"]["ids"] = total_ids
    audience_ids = sorted({audience_id for audience_id, _ in groups})
    call.log["audience_ids"] = audience_ids
    for audience_id in audience_ids:
        call.owned_audience(
            audience_id,
            advertiser_ids,
            "audience_ids",
            unknown=ApiError(INVALID_PARAM, "invalid audience ID"),
        )
        if call.sandbox.tunables.force_processing:
            raise invalid(
                "audience_ids", f"audience {audience_id} is processing, please try again later."
            )
    by_audience: dict[str, list[IdGroup]] = {}
    for (audience_id, _), group in groups.items():
        by_audience.setdefault(audience_id, []).append(group)
    op = OP_ADD if action == "add" else OP_DELETE
    call.log["counts"]["changed"] = call.sandbox.store.members_change(op, by_audience)
    return {}


def _mapping_groups(
    schema: list[str], batch: list[Any]
) -> tuple[dict[tuple[str, int], IdGroup], int]:
    """Validate batch_data and sort its hashed ids by (audience, id type), in one pass.

    The hot loop of the sandbox (40,000 entries a request): checks are inlined and the
    error's position comes from the loop variables, not from a second pass.
    """
    width = [hex_width(t) for t in schema]
    size = len(schema)
    columns: list[dict[str, IdGroup]] = [{} for _ in schema]
    fromhex = bytes.fromhex
    total = p = i = 0
    try:
        for p, person in enumerate(batch):
            if type(person) is not list or len(person) != size:
                raise invalid(
                    f"batch_data[{p}]",
                    f"must be a list of {size} objects, one per id_schema entry.",
                )
            first = 1
            for i, entry in enumerate(person):
                if type(entry) is not dict:
                    raise invalid(
                        f"batch_data[{p}][{i}]",
                        "must be an object ({} when the person lacks this id).",
                    )
                if not entry:
                    continue
                value = entry.get("id")
                if type(value) is not str or len(value) != width[i]:
                    raise ValueError
                digest = fromhex(value)
                audiences = entry.get("audience_ids")
                if type(audiences) is not list or not audiences:
                    raise TypeError
                column = columns[i]
                for audience_id in audiences:
                    group = column.get(audience_id)
                    if group is None:
                        id_string(audience_id, f"batch_data[{p}][{i}].audience_ids")
                        group = column[audience_id] = IdGroup(schema[i])
                    group.digests.append(digest)
                    group.flags.append(first)
                first = 0
                total += 1
    except ValueError:
        raise invalid(
            f"batch_data[{p}][{i}].id", f"must be a {width[i]}-character hex {schema[i]} hash."
        ) from None
    except TypeError:
        raise invalid(
            f"batch_data[{p}][{i}].audience_ids", "must be a non-empty list of audience ids."
        ) from None
    groups = {(a, i): g for i, column in enumerate(columns) for a, g in column.items()}
    return groups, total


# --- customer files ---------------------------------------------------------------------


def parse_file(content: bytes, calculate_type: str, field_name: str) -> tuple[list[IdGroup], int]:
    """One hashed id per line (optional header), or a MULTIPLE_TYPES CSV with a header row."""
    try:
        lines = [line.strip() for line in content.decode("utf-8-sig").splitlines()]
    except UnicodeDecodeError:
        raise invalid(field_name, "must be UTF-8 text.") from None
    lines = [line for line in lines if line]
    if calculate_type == "MULTIPLE_TYPES":
        if not lines:
            raise invalid(field_name, "is empty.")
        columns = [c.strip().strip('"').upper() for c in lines.pop(0).split(",")]
        if not all(c in FILE_ID_TYPES for c in columns) or len(set(columns)) != len(columns):
            raise invalid(
                field_name,
                "a MULTIPLE_TYPES file starts with a header naming its columns from "
                + ", ".join(FILE_ID_TYPES),
            )
    else:
        columns = [calculate_type]
    groups = [IdGroup(c) for c in columns]
    widths = [hex_width(c) for c in columns]
    bad = 0
    for n, line in enumerate(lines):
        cells = [c.strip().strip('"') for c in line.split(",")]
        first, good = 1, 0
        for i, cell in enumerate(cells[: len(columns)]):
            if not cell:
                continue
            try:
                if len(cell) != widths[i]:
                    raise ValueError
                digest = bytes.fromhex(cell)
            except ValueError:
                continue
            groups[i].digests.append(digest)
            groups[i].flags.append(first)
            first, good = 0, good + 1
        if not good and not (n == 0 and calculate_type != "MULTIPLE_TYPES"):
            bad += 1  # a first line that is no hash is taken for a header
    return groups, bad


def file_upload(call: Call) -> dict[str, Any]:
    advertiser_id = call.advertiser(id_field(call.params, "advertiser_id"), write=True)
    calculate_type = enum(
        call.params, "calculate_type", FILE_CALCULATE_TYPES, code=BAD_CALCULATE_TYPE
    )
    upload = call.files.get("file")
    if upload is None or not upload.filename:
        raise invalid("file", "This field is required.")
    if not upload.filename.lower().endswith((".csv", ".txt")):
        raise invalid("file", "the file name must end with .csv or .txt.")
    content = upload.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise invalid("file", "must be at most 50 MB.")
    signature = string(call.params, "file_signature")
    actual = hashlib.md5(content).hexdigest()  # noqa: S324 - TikTok's file signature is MD5
    if signature.lower() != actual:
        raise ApiError(BAD_SIGNATURE, "file_signature does not match the MD5 of the file.")
    groups, bad = parse_file(content, calculate_type, "file")
    ids = sum(len(g.digests) for g in groups)
    call.log["counts"] = {"ids": ids, "invalid_lines": bad}
    if not ids:
        raise invalid("file", f"holds no valid {calculate_type} ids.")
    file_path = call.sandbox.store.file_save(
        advertiser_id=advertiser_id,
        calculate_type=calculate_type,
        name=upload.filename,
        content=content,
    )
    return {"file_path": file_path}


def same_calculate_type(a: str, b: str) -> bool:
    return CALCULATE_TYPE_ALIASES.get(a, a) == CALCULATE_TYPE_ALIASES.get(b, b)


def _file_groups(call: Call, advertiser_id: str, calculate_type: str) -> list[IdGroup]:
    file_paths = string_list(call.params, "file_paths", max_len=500)
    groups: list[IdGroup] = []
    for i, file_path in enumerate(file_paths):
        stored = call.sandbox.store.file_get(file_path)
        if stored is None or stored[0] != advertiser_id:
            raise ApiError(NOT_FOUND, f"file_paths[{i}]: file {file_path} does not exist.")
        if not same_calculate_type(stored[1], calculate_type):
            raise invalid(f"file_paths[{i}]", f"was uploaded as {stored[1]}, not {calculate_type}.")
        groups.extend(parse_file(stored[2], calculate_type, f"file_paths[{i}]")[0])
    call.log["counts"] = {"files": len(file_paths), "ids": sum(len(g.digests) for g in groups)}
    return groups


def custom_audience_create(call: Call) -> dict[str, Any]:
    advertiser_id = call.advertiser(id_field(call.params, "advertiser_id"), write=True)
    name = string(call.params, "custom_audience_name", max_len=128)
    calculate_type = enum(call.params, "calculate_type", FILE_CALCULATE_TYPES)
    retention = integer(
        call.params, "retention_in_days", default=DEFAULT_RETENTION_DAYS, low=1, high=365
    )
    groups = _file_groups(call, advertiser_id, calculate_type)
    audience = call.sandbox.store.audience_create(
        advertiser_id=advertiser_id,
        name=name,
        kind="file",
        calculate_type=calculate_type,
        retention_days=retention,
        groups=groups,
    )
    call.log["audience_id"] = audience.audience_id
    return {"custom_audience_id": audience.audience_id}


def custom_audience_update(call: Call) -> dict[str, Any]:
    """Rename and/or change the members from files. `file_paths` is optional: a rename
    alone is valid (for partner audiences too); members of a partner audience change only
    through segment/mapping/."""
    advertiser_id = call.advertiser(id_field(call.params, "advertiser_id"), write=True)
    audience_id = id_field(call.params, "custom_audience_id")
    audience = call.owned_audience(audience_id, (advertiser_id,), "custom_audience_id")
    call.log["audience_id"] = audience_id
    name = string(call.params, "custom_audience_name", max_len=128, required=False)
    action = enum(call.params, "action", ("APPEND", "REMOVE", "REPLACE"), default="REPLACE")
    has_files = call.params.get("file_paths") not in (None, [], "")
    if not has_files:
        if not name:
            raise invalid(
                "custom_audience_name",
                "This field is required when no file_paths are given (nothing to update).",
            )
        call.log["action"] = "RENAME"
        call.sandbox.store.audience_rename(audience_id, name)
        return {}
    if audience.kind != "file":
        raise invalid(
            "custom_audience_id", "is a partner audience; change it through segment/mapping/."
        )
    call.log["action"] = action
    groups = _file_groups(call, advertiser_id, audience.calculate_type)
    sandbox = call.sandbox
    if sandbox.tunables.force_processing or sandbox.is_processing(audience.changed_at):
        raise invalid(
            "custom_audience_id", f"audience {audience_id} is processing, please try again later."
        )
    with sandbox.store.lock:  # the size check and the change must see the same members
        members = sandbox.store.members.get(audience_id) or AudienceMembers()
        after = members.people_after(action, groups)
        if after < MIN_AUDIENCE_SIZE:
            raise invalid(
                "custom_audience_id",
                f"the audience would have {after} people after this {action}, "
                f"fewer than the minimum of {MIN_AUDIENCE_SIZE}.",
            )
        _apply_update(sandbox, audience_id, action, groups)
        if name:
            sandbox.store.audience_rename(audience_id, name)
    return {}


def _apply_update(sandbox: Sandbox, audience_id: str, action: str, groups: list[IdGroup]) -> None:
    op = OP_DELETE if action == "REMOVE" else OP_ADD
    sandbox.store.members_change(
        op,
        {audience_id: groups},
        history=("Update", f"{action} from {len(groups)} id group(s)"),
        clear_first=action == "REPLACE",
    )


def audience_details(sandbox: Sandbox, audience: Audience) -> dict[str, Any]:
    members = sandbox.store.members.get(audience.audience_id) or AudienceMembers()
    partner = audience.kind == "partner"
    processing = sandbox.is_processing(audience.created_at if partner else audience.changed_at)
    return {
        "audience_id": audience.audience_id,
        "name": audience.name,
        # Partner audiences report MULTIPLE_TYPES (also those stored before id_type was
        # dropped), "Partner" and null msg/error_msg, as TikTok does.
        "calculate_type": PARTNER_CALCULATE_TYPE if partner else audience.calculate_type,
        "type": "Partner" if partner else "Customer File",
        "audience_sub_type": "NORMAL",
        "cover_num": members.matched(sandbox.tunables.match_rate),
        "is_valid": not processing,
        "is_expiring": False,
        "is_creator": True,
        "shared": False,
        "owner_id": audience.advertiser_id,
        "create_time": timestamp(audience.created_at),
        "expired_time": timestamp(audience.created_at + audience.retention_days * 86400),
        "error_msg": None if partner else "",
        "msg": None if partner else ("Processing" if processing else ""),
    }


def custom_audience_get(call: Call) -> dict[str, Any]:
    advertiser_id = call.advertiser(id_field(call.params, "advertiser_id"))
    audience_ids = id_list(call.params, "custom_audience_ids", max_len=100, from_query=True)
    history_size = integer(call.params, "history_size", default=100, low=1, high=100)
    audiences = [
        call.owned_audience(a, (advertiser_id,), "custom_audience_ids") for a in audience_ids
    ]
    store = call.sandbox.store
    return {
        "list": [
            {
                "audience_details": audience_details(call.sandbox, audience),
                "audience_history": [
                    {
                        **h,
                        "action_detail": h["msg"],
                        "editor": "Sandbox",
                        "opt_time": timestamp(h["opt_time"]),
                    }
                    for h in store.audience_history(audience.audience_id, history_size)
                ],
            }
            for audience in audiences
        ]
    }


def custom_audience_list(call: Call) -> dict[str, Any]:
    advertiser_id = call.advertiser(id_field(call.params, "advertiser_id"))
    only = set(
        id_list(call.params, "custom_audience_ids", max_len=100, from_query=True, required=False)
    )
    page = integer(call.params, "page", default=1, low=1, high=1_000_000)
    page_size = integer(call.params, "page_size", default=10, low=1, high=100)
    audiences = [
        a
        for a in call.sandbox.store.audiences_of(advertiser_id)
        if not only or a.audience_id in only
    ]
    start = (page - 1) * page_size
    return {
        "list": [audience_details(call.sandbox, a) for a in audiences[start : start + page_size]],
        "page_info": {
            "page": page,
            "page_size": page_size,
            "total_number": len(audiences),
            "total_page": math.ceil(len(audiences) / page_size),
        },
    }


def custom_audience_delete(call: Call) -> dict[str, Any]:
    advertiser_id = call.advertiser(id_field(call.params, "advertiser_id"), write=True)
    audience_ids = id_list(call.params, "custom_audience_ids", max_len=100)
    for audience_id in audience_ids:
        call.owned_audience(audience_id, (advertiser_id,), "custom_audience_ids")
    call.sandbox.store.audiences_delete(audience_ids)
    call.log["audience_ids"] = audience_ids
    return {}


# --- offline events ---------------------------------------------------------------------


def offline_create(call: Call) -> dict[str, Any]:
    advertiser_id = call.advertiser(id_field(call.params, "advertiser_id"), write=True)
    name = string(call.params, "name", max_len=128)
    description = string(call.params, "description", max_len=512, required=False)
    return {"event_set_id": call.sandbox.store.event_set_create(advertiser_id, name, description)}


def offline_get(call: Call) -> dict[str, Any]:
    advertiser_id = call.advertiser(id_field(call.params, "advertiser_id"))
    only = set(id_list(call.params, "event_set_ids", max_len=100, from_query=True, required=False))
    return {
        "event_set_list": [
            {
                "advertiser_id": s["advertiser_id"],
                "event_set_id": s["event_set_id"],
                "name": s["name"],
                "description": s["description"],
                "auto_tracking": False,
                "create_time": timestamp(s["created_at"]),
                "update_time": timestamp(s["created_at"]),
            }
            for s in call.sandbox.store.event_sets(advertiser_id)
            if not only or s["event_set_id"] in only
        ]
    }


def event_track(call: Call) -> dict[str, Any]:
    params = call.params
    enum(params, "event_source", ("offline",))
    event_set_id = id_field(params, "event_source_id")
    event_set = next(
        (s for s in call.sandbox.store.event_sets() if s["event_set_id"] == event_set_id), None
    )
    if event_set is None:
        raise ApiError(NOT_FOUND, f"event_source_id: event set {event_set_id} does not exist.")
    call.advertiser(event_set["advertiser_id"], write=True)
    data = params.get("data")
    if not isinstance(data, list) or not data:
        raise invalid("data", "must be a non-empty list of events.")
    call.log["counts"] = {"events": len(data)}
    if len(data) > MAX_EVENTS:
        raise ApiError(
            TOO_MANY_IDS, f"data: at most {MAX_EVENTS} events per request (got {len(data)})."
        )
    now = time.time()
    rows = [_event_row(event, f"data[{i}]", now) for i, event in enumerate(data)]
    new = call.sandbox.store.events_add(event_set_id, rows)
    call.log["counts"].update(
        new=new, duplicates=len(rows) - new, not_attributed=sum(1 for r in rows if not r[3])
    )
    return {}


def _event_row(event: Any, where: str, now: float) -> tuple[str, str, int, int, str]:
    if not isinstance(event, dict):
        raise invalid(where, "must be an object.")
    name = event.get("event")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}.event", "This field is required.")
    event_time = event.get("event_time")
    if (
        isinstance(event_time, bool)
        or not isinstance(event_time, int)
        or not 0 < event_time < 10**11
    ):
        raise invalid(f"{where}.event_time", "must be a Unix time in seconds.")
    user = event.get("user")
    if not isinstance(user, dict):
        raise invalid(f"{where}.user", "must be an object with hashed email and/or phone.")
    for key in ("email", "phone"):
        values = user.get(key, [])
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list):
            raise invalid(f"{where}.user.{key}", "must be a list of SHA-256 hashes.")
        for j, value in enumerate(values):
            digest_of(value, "SHA256", f"{where}.user.{key}[{j}]")
    properties = event.get("properties", {})
    if not isinstance(properties, dict):
        raise invalid(f"{where}.properties", "must be an object.")
    value = properties.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise invalid(f"{where}.properties.value", "must be a number.")
    event_id = (
        event.get("event_id")
        or hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
    )
    if not isinstance(event_id, str):
        raise invalid(f"{where}.event_id", "must be a string.")
    attributed = int(event_time >= now - ATTRIBUTION_WINDOW_S)
    return event_id, name, event_time, attributed, json.dumps(event)


Handler = Callable[[Call], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    handler: Handler
    needs_token: bool = True
    body: str = "json"  # "json", "query" or "multipart"


ENDPOINTS: dict[str, Endpoint] = {
    "oauth2/access_token/": Endpoint("POST", oauth_access_token, needs_token=False),
    "oauth2/advertiser/get/": Endpoint("GET", oauth_advertiser_get, body="query"),
    "oauth2/revoke_token/": Endpoint("POST", oauth_revoke_token, needs_token=False),
    "user/info/": Endpoint("GET", user_info, body="query"),
    "segment/audience/": Endpoint("POST", segment_audience),
    "segment/mapping/": Endpoint("POST", segment_mapping),
    "dmp/custom_audience/file/upload/": Endpoint("POST", file_upload, body="multipart"),
    "dmp/custom_audience/create/": Endpoint("POST", custom_audience_create),
    "dmp/custom_audience/update/": Endpoint("POST", custom_audience_update),
    "dmp/custom_audience/get/": Endpoint("GET", custom_audience_get, body="query"),
    "dmp/custom_audience/list/": Endpoint("GET", custom_audience_list, body="query"),
    "dmp/custom_audience/delete/": Endpoint("POST", custom_audience_delete),
    "offline/create/": Endpoint("POST", offline_create),
    "offline/get/": Endpoint("GET", offline_get, body="query"),
    "event/track/": Endpoint("POST", event_track),
}
