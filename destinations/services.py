"""Writes for destinations: OAuth connect and reauthorize, disconnect, token health,
default attributes.

OAuth state and the not-yet-assigned token live in the user's session (the token
Fernet-encrypted), never in a Destination row, so an abandoned or failed flow leaves no
half-made destination behind.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, User
from destinations import crypto
from destinations.models import (
    IDENTIFIER_ATTRIBUTES,
    DefaultAttribute,
    Destination,
    DestinationAttribute,
    DestinationKind,
    DestinationStatus,
    SourceTable,
)
from destinations.selectors import default_mapping, destination_warnings, source_columns
from destinations.tiktok.client import Advertiser, TikTokClient, exchange_auth_code
from destinations.tiktok.errors import (
    AuthorizationRestartRequired,
    ReauthorizationRequired,
    TikTokError,
    TransientError,
)
from notifications.models import NotificationLevel
from notifications.services import notify

__all__ = [
    "destination_warnings",  # re-exported for campaigns
]

logger = logging.getLogger(__name__)

OAUTH_SESSION_KEY = "tiktok_oauth_state"
PENDING_SESSION_KEY = "tiktok_oauth_pending"
STATE_MAX_AGE = dt.timedelta(minutes=30)


class DestinationError(Exception):
    """A destination action cannot be done; the message says why and what to do."""


class ConnectNotConfigured(DestinationError):
    pass


class OAuthError(DestinationError):
    pass


# ---- OAuth: start ---------------------------------------------------------------------


def tiktok_configuration_problems() -> list[str]:
    problems = []
    for name in ("TIKTOK_APP_ID", "TIKTOK_APP_SECRET", "TIKTOK_API_BASE_URL", "TIKTOK_AUTH_URL"):
        if not getattr(settings, name, ""):
            problems.append(f"{name} is not set")
    return problems


def _start_authorization(
    *, session: Any, redirect_uri: str, destination: Destination | None
) -> str:
    problems = tiktok_configuration_problems()
    if problems:
        raise ConnectNotConfigured(
            "TikTok is not configured: "
            + ", ".join(problems)
            + ". Set them in the environment (see the README) and restart."
        )
    state = generate_token(48)
    session[OAUTH_SESSION_KEY] = {
        "state": state,
        "destination_id": destination.pk if destination else None,
        "redirect_uri": redirect_uri,
        "started_at": timezone.now().isoformat(),
    }
    session.pop(PENDING_SESSION_KEY, None)
    return add_params_to_uri(
        settings.TIKTOK_AUTH_URL,
        [("app_id", settings.TIKTOK_APP_ID), ("state", state), ("redirect_uri", redirect_uri)],
    )


def destination_connect_start(*, session: Any, redirect_uri: str) -> str:
    """Remember a fresh unguessable state in the session; return TikTok's authorization URL."""
    return _start_authorization(session=session, redirect_uri=redirect_uri, destination=None)


def destination_reauthorize(*, session: Any, redirect_uri: str, destination: Destination) -> str:
    """Start the same flow for an existing destination; the callback keeps its id."""
    if destination.kind != DestinationKind.TIKTOK_ADS:
        raise DestinationError("Only TikTok Ads destinations can be reauthorized.")
    return _start_authorization(session=session, redirect_uri=redirect_uri, destination=destination)


# ---- OAuth: callback ------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackResult:
    """Either a reauthorized destination, or advertisers waiting for the operator's pick."""

    destination: Destination | None = None
    advertisers: tuple[Advertiser, ...] = ()


def destination_handle_callback(
    *, session: Any, params: Mapping[str, str], user: User
) -> CallbackResult:
    """Check state (single use), exchange the auth_code and list the advertisers it reaches."""
    # Pop first: whatever happens next, this state can never be used again.
    expected = session.pop(OAUTH_SESSION_KEY, None)
    state = params.get("state", "")
    if not expected:
        raise OAuthError(
            "This authorization answer does not match a connection started here, or it was "
            "already used. Start Connect again."
        )
    if not state or not hmac.compare_digest(str(expected["state"]), state):
        raise OAuthError(
            "The authorization answer carried the wrong state, so it was ignored for your "
            "safety. Start Connect again."
        )
    started = dt.datetime.fromisoformat(expected["started_at"])
    if timezone.now() - started > STATE_MAX_AGE:
        raise OAuthError("The authorization took too long and expired. Start Connect again.")
    if params.get("error"):
        if params["error"] == "access_denied":
            raise OAuthError(
                "TikTok authorization was cancelled, so nothing was connected. Connect again "
                "and choose Authorize to continue."
            )
        raise OAuthError(
            f"TikTok did not authorize the connection ({params['error'][:100]}). Start again."
        )
    code = params.get("auth_code") or params.get("code")
    if not code:
        raise OAuthError("TikTok's answer had no authorization code. Start Connect again.")

    try:
        grant = exchange_auth_code(code)
        client = TikTokClient(grant.access_token)
        advertisers = client.list_advertisers()
    except AuthorizationRestartRequired as exc:
        raise OAuthError(
            f"TikTok refused the authorization code ({exc.message}; code {exc.code}). A code "
            "works once and for one hour: start Connect again."
        ) from None
    except TikTokError as exc:
        raise OAuthError(f"TikTok could not complete the authorization: {exc}.") from None

    destination_id = expected.get("destination_id")
    if destination_id is not None:
        return CallbackResult(
            destination=_finish_reauthorization(
                destination_id=destination_id, grant=grant, advertisers=advertisers, user=user
            )
        )
    reachable = [a for a in advertisers if a.advertiser_id in set(grant.advertiser_ids)] or list(
        advertisers
    )
    if not reachable:
        _revoke_quietly(grant.access_token)
        raise OAuthError(
            "The TikTok account you authorized reaches no advertiser account. Authorize with "
            "an account that has access to an ad account."
        )
    session[PENDING_SESSION_KEY] = {
        "token": crypto.encrypt(grant.access_token),
        "refresh_token": crypto.encrypt(grant.refresh_token) if grant.refresh_token else "",
        "expires_in": grant.expires_in,
        "advertisers": [[a.advertiser_id, a.advertiser_name] for a in reachable],
        "started_at": timezone.now().isoformat(),
    }
    return CallbackResult(advertisers=tuple(reachable))


def _finish_reauthorization(
    *, destination_id: int, grant: Any, advertisers: list[Advertiser], user: User
) -> Destination:
    with transaction.atomic():
        destination = Destination.objects.select_for_update().filter(pk=destination_id).first()
        if destination is None:
            _revoke_quietly(grant.access_token)
            raise OAuthError("The destination being reauthorized no longer exists.")
        if destination.advertiser_id not in {a.advertiser_id for a in advertisers}:
            _revoke_quietly(grant.access_token)
            raise OAuthError(
                f"You authorized a TikTok account that does not reach advertiser "
                f"{destination.advertiser_name or destination.advertiser_id} "
                f"({destination.advertiser_id}), the one “{destination.name}” sends to. "
                "Reauthorize again and select that advertiser on TikTok's page; to send to "
                "another advertiser, connect a new destination."
            )
        clash = (
            Destination.objects.filter(
                kind=destination.kind, advertiser_id=destination.advertiser_id
            )
            .exclude(status=DestinationStatus.DISCONNECTED)
            .exclude(pk=destination.pk)
            .first()
        )
        if clash is not None:
            _revoke_quietly(grant.access_token)
            raise OAuthError(
                f"Advertiser {destination.advertiser_id} is already connected as “{clash.name}”. "
                "Use that destination instead."
            )
        _store_grant(destination, grant=grant)
        destination.status = DestinationStatus.CONNECTED
        destination.last_error = ""
        destination.needs_reauth_since = None
        destination.last_checked_at = timezone.now()
        destination.connected_by = user
        destination.connected_at = timezone.now()
        destination.save()
    return destination


def _store_grant(destination: Destination, *, grant: Any) -> None:
    destination.access_token = grant.access_token
    destination.refresh_token = grant.refresh_token or ""
    destination.token_expires_at = (
        timezone.now() + dt.timedelta(seconds=grant.expires_in) if grant.expires_in else None
    )


def _revoke_quietly(token: str) -> None:
    """Give back a token we will not keep; failure only means TikTok keeps an unused grant."""
    try:
        TikTokClient(token).revoke_token()
    except TikTokError as exc:
        logger.warning("could not revoke an unused TikTok token: %s", exc)


def pending_advertisers(session: Any) -> list[Advertiser] | None:
    pending = session.get(PENDING_SESSION_KEY)
    if not pending:
        return None
    return [Advertiser(a_id, a_name) for a_id, a_name in pending["advertisers"]]


@dataclass(frozen=True)
class _PendingGrant:
    access_token: str
    refresh_token: str | None
    expires_in: int | None


def destination_select_advertiser(
    *, session: Any, advertiser_id: str, name: str, user: User
) -> Destination:
    """Create the destination for the advertiser the operator picked after authorizing."""
    pending = session.get(PENDING_SESSION_KEY)
    if not pending:
        raise OAuthError(
            "There is no authorization waiting for an advertiser. Start Connect again."
        )
    advertisers = dict(pending["advertisers"])
    if advertiser_id not in advertisers:
        raise DestinationError("Choose one of the advertiser accounts listed.")
    name = (name or "").strip() or f"TikTok Ads · {advertisers[advertiser_id] or advertiser_id}"
    if len(name) > 120:
        raise DestinationError("The destination name can be at most 120 characters.")
    live = (
        Destination.objects.filter(kind=DestinationKind.TIKTOK_ADS, advertiser_id=advertiser_id)
        .exclude(status=DestinationStatus.DISCONNECTED)
        .first()
    )
    if live is not None:
        raise DestinationError(
            f"Advertiser {advertiser_id} is already connected as “{live.name}”. Choose another "
            "advertiser, or use Reauthorize on that destination."
        )
    grant = _PendingGrant(
        access_token=crypto.decrypt(pending["token"]),
        refresh_token=crypto.decrypt(pending["refresh_token"])
        if pending["refresh_token"]
        else None,
        expires_in=pending.get("expires_in"),
    )
    now = timezone.now()
    try:
        with transaction.atomic():
            destination = Destination(
                name=name,
                kind=DestinationKind.TIKTOK_ADS,
                advertiser_id=advertiser_id,
                advertiser_name=advertisers[advertiser_id],
                status=DestinationStatus.CONNECTED,
                connected_by=user,
                connected_at=now,
                last_checked_at=now,
            )
            _store_grant(destination, grant=grant)
            destination.full_clean(exclude=["access_token", "refresh_token"])
            destination.save()
            DefaultAttribute.objects.bulk_create(tiktok_default_attributes(destination))
    except IntegrityError:
        raise DestinationError(
            f"Advertiser {advertiser_id} was connected by someone else a moment ago."
        ) from None
    session.pop(PENDING_SESSION_KEY, None)
    return destination


def destination_cancel_pending(*, session: Any) -> bool:
    """Forget (and revoke) a token whose advertiser was never picked."""
    pending = session.pop(PENDING_SESSION_KEY, None)
    if not pending:
        return False
    _revoke_quietly(crypto.decrypt(pending["token"]))
    return True


# ---- disconnect, health ---------------------------------------------------------------


def destination_disconnect(*, destination: Destination) -> Destination:
    """Revoke the token at TikTok, forget it, and mark the destination disconnected."""
    if destination.status == DestinationStatus.DISCONNECTED:
        return destination
    if destination.access_token:
        try:
            TikTokClient(destination.access_token).revoke_token()
        except ReauthorizationRequired:
            pass  # already revoked or expired at TikTok: nothing left to revoke
        except TransientError as exc:
            raise DestinationError(
                f"TikTok could not be reached to revoke the token ({exc}). Nothing changed; "
                "try Disconnect again in a minute."
            ) from None
        except TikTokError as exc:
            raise DestinationError(
                f"TikTok refused to revoke the token ({exc}). Nothing changed."
            ) from None
    with transaction.atomic():
        destination.status = DestinationStatus.DISCONNECTED
        destination.access_token = ""
        destination.refresh_token = ""
        destination.token_expires_at = None
        destination.last_error = ""
        destination.needs_reauth_since = None
        destination.save()
    return destination


def destination_mark_needs_reauth(destination: Destination, reason: str) -> bool:
    """Flag the destination; notify operators the first time only. True if it changed now."""
    now = timezone.now()
    with transaction.atomic():
        changed = Destination.objects.filter(
            pk=destination.pk, status=DestinationStatus.CONNECTED
        ).update(
            status=DestinationStatus.NEEDS_REAUTH,
            last_error=reason[:2000],
            needs_reauth_since=now,
            last_checked_at=now,
            updated_at=now,
        )
        destination.refresh_from_db()
        if changed:
            notify(
                role=Role.OPERATOR,
                level=NotificationLevel.WARNING,
                title=f"TikTok destination “{destination.name}” needs reauthorization",
                body=(
                    f"TikTok no longer accepts the access token for advertiser "
                    f"{destination.advertiser_name or destination.advertiser_id} ({reason}). "
                    "Deliveries to it wait until an operator opens the destination and "
                    "chooses Reauthorize."
                ),
                url=reverse("destinations:detail", args=[destination.pk]),
            )
    return bool(changed)


def destination_client(destination: Destination) -> TikTokClient:
    """A client for this destination; any auth error it meets flags the destination."""
    if destination.status == DestinationStatus.DISCONNECTED or not destination.access_token:
        raise ReauthorizationRequired(f"destination “{destination.name}” is not connected")

    def on_auth_error(exc: ReauthorizationRequired) -> None:
        destination_mark_needs_reauth(destination, f"TikTok error {exc.code}: {exc.message}")

    return TikTokClient(destination.access_token, on_auth_error=on_auth_error)


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    status: str
    message: str = ""


def destination_check_health(destination: Destination) -> HealthResult:
    """Ask TikTok's user/info/ whether the token still works and record the answer."""
    if destination.status == DestinationStatus.DISCONNECTED:
        return HealthResult(ok=False, status=destination.status, message="disconnected")
    try:
        destination_client(destination).user_info()
    except ReauthorizationRequired as exc:
        destination.refresh_from_db()
        if destination.status == DestinationStatus.CONNECTED:  # e.g. no token stored at all
            destination_mark_needs_reauth(destination, str(exc))
            destination.refresh_from_db()
        return HealthResult(ok=False, status=destination.status, message=str(exc))
    except TikTokError as exc:
        # Not the token's fault (TikTok down, rate limit): record and keep the status.
        Destination.objects.filter(pk=destination.pk).update(
            last_checked_at=timezone.now(), last_error=str(exc)[:2000]
        )
        destination.refresh_from_db()
        return HealthResult(ok=False, status=destination.status, message=str(exc))
    now = timezone.now()
    Destination.objects.filter(pk=destination.pk).update(
        status=DestinationStatus.CONNECTED,
        last_checked_at=now,
        last_error="",
        needs_reauth_since=None,
    )
    destination.refresh_from_db()
    return HealthResult(ok=True, status=destination.status)


# ---- default attributes ---------------------------------------------------------------

# (attribute, source table, source column, required, enabled) in TikTok's order.
TIKTOK_DEFAULTS: list[tuple[str, str, str, bool, bool]] = [
    (DestinationAttribute.EMAIL, SourceTable.CUSTOMERS, "email", True, True),
    (DestinationAttribute.PHONE, SourceTable.CUSTOMERS, "phone", True, True),
    (DestinationAttribute.IDFA, SourceTable.DEVICES, "raw_id", False, False),
    (DestinationAttribute.AAID, SourceTable.DEVICES, "raw_id", False, False),
    (DestinationAttribute.EVENT, SourceTable.ORDERS, "is_return", False, False),
    (DestinationAttribute.EVENT_ID, SourceTable.ORDERS, "order_id", False, False),
    (DestinationAttribute.TIMESTAMP, SourceTable.ORDERS, "ordered_at", False, False),
    (DestinationAttribute.VALUE, SourceTable.ORDERS, "amount", False, False),
    (DestinationAttribute.CURRENCY, SourceTable.ORDERS, "currency", False, False),
    (DestinationAttribute.ORDER_ID, SourceTable.ORDERS, "order_id", False, False),
    (DestinationAttribute.SHOP_ID, SourceTable.ORDERS, "store", False, False),
    (DestinationAttribute.CONTENT_ID, SourceTable.ORDERS, "product_name", False, False),
    (DestinationAttribute.CONTENT_NAME, SourceTable.ORDERS, "product_name", False, False),
    (DestinationAttribute.CONTENT_CATEGORY, SourceTable.ORDERS, "product_category", False, False),
    (DestinationAttribute.CONTENT_TYPE, SourceTable.ORDERS, "product_category", False, False),
    (DestinationAttribute.BRAND, SourceTable.ORDERS, "brand", False, False),
    (DestinationAttribute.PRICE, SourceTable.ORDERS, "amount", False, False),
    (DestinationAttribute.QUANTITY, SourceTable.ORDERS, "quantity", False, False),
    (DestinationAttribute.EVENT_CHANNEL, SourceTable.ORDERS, "channel", False, False),
]

ALLOWED_TABLES = {
    True: {SourceTable.CUSTOMERS, SourceTable.DEVICES},  # identifiers
    False: {SourceTable.ORDERS, SourceTable.CUSTOMERS},  # offline-event parameters
}


def tiktok_default_attributes(destination: Destination) -> list[DefaultAttribute]:
    return [
        DefaultAttribute(
            destination=destination,
            destination_attribute=attribute,
            source_table=table,
            source_attribute=column,
            required=required,
            enabled=enabled,
            position=position,
        )
        for position, (attribute, table, column, required, enabled) in enumerate(TIKTOK_DEFAULTS)
    ]


def destination_default_mapping(destination: Destination) -> list[DefaultAttribute]:
    """The destination's default attributes in order (TikTok's defaults if none are saved)."""
    rows = default_mapping(destination)
    if rows:
        return rows
    with transaction.atomic():
        DefaultAttribute.objects.bulk_create(
            tiktok_default_attributes(destination), ignore_conflicts=True
        )
    return default_mapping(destination)


# What a source column's name should mention for each hashed identifier; a mapping that
# does not (EMAIL from the phone column) is saved, with a warning.
_IDENTIFIER_HINTS = {"EMAIL": ("email", "mail"), "PHONE": ("phone", "mobile", "tel", "msisdn")}


def mapping_warnings(rows: Iterable[DefaultAttribute]) -> list[str]:
    """Warnings about a saved mapping that is allowed but probably wrong."""
    warnings = []
    for row in rows:
        hints = _IDENTIFIER_HINTS.get(row.destination_attribute)
        column = (row.source_attribute or "").lower()
        if row.enabled and hints and column and not any(h in column for h in hints):
            warnings.append(
                f"{row.destination_attribute} is sent from “{row.source_attribute}”, which "
                f"does not look like a {row.destination_attribute.lower()} column: TikTok will "
                f"match few people by {row.destination_attribute.lower()} unless it holds them."
            )
    return warnings


class MappingError(DestinationError):
    def __init__(self, errors: dict[str, str], general: list[str]) -> None:
        super().__init__("; ".join([*general, *errors.values()]))
        self.errors = errors
        self.general = general


def destination_update_default_attributes(
    *, destination: Destination, rows: Iterable[Mapping[str, Any]]
) -> list[DefaultAttribute]:
    """Save the mapping. Each row: destination_attribute, source_table, source_attribute,
    enabled. Validates every row against the store's real columns; saves all or nothing."""
    current = {a.destination_attribute: a for a in destination_default_mapping(destination)}
    errors: dict[str, str] = {}
    columns_cache: dict[str, list[str]] = {}
    changed: list[DefaultAttribute] = []
    seen = set()
    for row in rows:
        attribute = str(row.get("destination_attribute", ""))
        if attribute not in current:
            errors[attribute or "?"] = f"{attribute or 'A row'} is not a TikTok attribute."
            continue
        seen.add(attribute)
        item = current[attribute]
        table = str(row.get("source_table", "")).strip()
        column = str(row.get("source_attribute", "")).strip()
        enabled = bool(row.get("enabled"))
        is_identifier = attribute in IDENTIFIER_ATTRIBUTES
        if table not in ALLOWED_TABLES[is_identifier]:
            allowed = " or ".join(sorted(ALLOWED_TABLES[is_identifier]))
            errors[attribute] = f"{attribute}: the source table must be {allowed}."
            continue
        if table not in columns_cache:
            columns_cache[table] = source_columns(table)
        if not column:
            if enabled:
                errors[attribute] = f"{attribute}: choose the source attribute to send."
                continue
        elif column not in columns_cache[table]:
            errors[attribute] = f"{attribute}: the {table} table has no column “{column}”."
            continue
        item.source_table, item.source_attribute, item.enabled = table, column, enabled
        changed.append(item)
    general = []
    enabled_ids = [
        a
        for a in current.values()
        if a.destination_attribute in IDENTIFIER_ATTRIBUTES and a.enabled
    ]
    if not errors and not enabled_ids:
        general.append(
            "Enable at least one identifier (EMAIL, PHONE, IDFA or AAID): TikTok matches "
            "people by identifiers only."
        )
    if errors or general:
        # Rows were changed in memory only; reload so callers never see unsaved values.
        raise MappingError(errors, general)
    with transaction.atomic():
        DefaultAttribute.objects.bulk_update(
            changed, ["source_table", "source_attribute", "enabled"]
        )
    return default_mapping(destination)
