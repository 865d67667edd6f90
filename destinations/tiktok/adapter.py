"""The TikTok delivery adapter: one treatment × destination target becomes one audience
created through segment/audience/ and batched segment/mapping/ calls.

The delivery service owns the order of work and the checkpoints; this module owns how to
talk to TikTok about audiences: which id types to send, how to find an audience whose
creation answer was lost, how to pace requests under rate limits, how to retry transient
failures with exponential backoff up to a cap, and how to split a batch TikTok finds too
large. Every call goes through `destinations.tiktok.client.TikTokClient`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypeVar

from django.conf import settings

from destinations.models import DestinationAttribute, SourceTable
from destinations.tiktok.client import TikTokClient, audience_name
from destinations.tiktok.errors import (
    BatchTooLargeError,
    DuplicatedRequestError,
    RateLimitedError,
    TikTokError,
    TransientError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Destination attribute -> (TikTok id type, where the store keeps its SHA-256).
ID_TYPE_FOR = {
    DestinationAttribute.EMAIL: "EMAIL_SHA256",
    DestinationAttribute.PHONE: "PHONE_SHA256",
    DestinationAttribute.IDFA: "IDFA_SHA256",
    DestinationAttribute.AAID: "AAID_SHA256",
}
# Source columns whose SHA-256 the import already computed (customers.* / devices.*).
# Anything else would need hashing outside the database, row by row: refused with a reason.
HASHED_SOURCES = {
    DestinationAttribute.EMAIL: (
        SourceTable.CUSTOMERS,
        {"email", "email_normalized", "email_sha256"},
    ),
    DestinationAttribute.PHONE: (SourceTable.CUSTOMERS, {"phone", "phone_e164", "phone_sha256"}),
    DestinationAttribute.IDFA: (SourceTable.DEVICES, {"raw_id", "normalized_id", "sha256"}),
    DestinationAttribute.AAID: (SourceTable.DEVICES, {"raw_id", "normalized_id", "sha256"}),
}
DEFAULT_SOURCE = {
    DestinationAttribute.EMAIL: "email",
    DestinationAttribute.PHONE: "phone",
    DestinationAttribute.IDFA: "raw_id",
    DestinationAttribute.AAID: "raw_id",
}
SCHEMA_ORDER = ("EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256")
AUDIENCE_NAME_PART_SEPARATOR = "_"


class MappingProblem(Exception):
    """The campaign's attribute mapping cannot be sent; the message says what to change."""


class GaveUp(TikTokError):
    """Transient failures or rate limits went on past the retry cap."""

    permanent = True
    hint = "TikTok kept failing; try the delivery again later with Retry"

    def __init__(self, message: str, *, last: TikTokError) -> None:
        super().__init__(message, code=last.code, request_id=last.request_id)
        self.last = last


def id_schema_for(mapping: Iterable[dict]) -> list[str]:
    """The TikTok id types a campaign destination's attribute mapping sends, in a fixed order.

    Raises MappingProblem for an enabled identifier whose source has no stored hash, and
    when no identifier is enabled at all.
    """
    types = set()
    for row in mapping:
        attribute = row.get("destination_attribute")
        if attribute not in ID_TYPE_FOR or not row.get("enabled"):
            continue
        table, columns = HASHED_SOURCES[attribute]
        source_table = row.get("source_table") or table
        source_attribute = row.get("source_attribute") or ""
        if source_table != table or source_attribute not in columns:
            raise MappingProblem(
                f"{attribute} is mapped from {source_table}.{source_attribute}, which the "
                f"customer store does not hash. Map {attribute} from "
                f"{table}.{DEFAULT_SOURCE[attribute]} in the campaign's Edit attributes step."
            )
        types.add(ID_TYPE_FOR[attribute])
    if not types:
        raise MappingProblem(
            "No identifier (EMAIL, PHONE, IDFA or AAID) is enabled in the attribute mapping: "
            "enable at least one in the campaign's Edit attributes step."
        )
    return [t for t in SCHEMA_ORDER if t in types]


def audience_name_for(
    campaign: str, sub_audience: str, treatment: str, *, one_group: bool, one_treatment: bool
) -> str:
    """`{campaign}_{sub-audience}_{treatment}`, parts left out when there is only one,
    cut to TikTok's 70 characters the way TikTok itself would cut it."""
    parts = [campaign]
    if not one_group:
        parts.append(sub_audience)
    if not one_treatment:
        parts.append(treatment)
    return audience_name(AUDIENCE_NAME_PART_SEPARATOR.join(p.strip() for p in parts))


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter and a cap, read from settings by default."""

    max_attempts: int = field(default_factory=lambda: settings.DELIVERY_MAX_ATTEMPTS)
    base_delay: float = field(default_factory=lambda: settings.DELIVERY_BACKOFF_BASE_SECONDS)
    max_delay: float = field(default_factory=lambda: settings.DELIVERY_BACKOFF_MAX_SECONDS)
    # Rate limits are expected under load: they slow the delivery, they do not end it,
    # unless TikTok refuses every request for this long.
    rate_limit_patience: float = field(
        default_factory=lambda: settings.DELIVERY_RATE_LIMIT_PATIENCE_SECONDS
    )

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


@dataclass
class CallStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    splits: int = 0
    last_error: str = ""


class Pacer:
    """Slows requests down after a rate limit and speeds up again as they succeed.

    TikTok sends no Retry-After: after a per-second limit the next second is the earliest
    useful retry, so a rate-limited request waits for the next second at least.
    """

    def __init__(self) -> None:
        self.interval = 0.0
        self._last = 0.0

    def before(self, sleep: Callable[[float], None]) -> None:
        if self.interval <= 0:
            return
        wait = self._last + self.interval - time.monotonic()
        if wait > 0:
            sleep(wait)

    def after(self) -> None:
        self._last = time.monotonic()
        # Additive-increase of speed after each success: shrink the gap by a tenth.
        self.interval = self.interval * 0.9 if self.interval > 0.005 else 0.0

    def limited(self) -> float:
        self.interval = min(max(self.interval * 2, 0.05), 2.0)
        until_next_second = 1.0 - (time.time() % 1.0)
        return max(self.interval, until_next_second + 0.01)


class AudienceAdapter:
    """Audience calls for one advertiser, with pacing and retries.

    `sleep` is called for every wait; the delivery passes one that keeps its heartbeat
    alive (and stops the work if another worker has taken the delivery over).
    """

    def __init__(
        self,
        client: TikTokClient,
        advertiser_id: str,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        batch_size: int | None = None,
    ) -> None:
        self.client = client
        self.advertiser_id = str(advertiser_id)
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.batch_size = batch_size or settings.TIKTOK_BATCH_SIZE
        self.pacer = Pacer()
        self.stats = CallStats()

    # -- retries ---------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[], T], *, retry_transient: bool = True) -> T:
        """Run one TikTok call; retry transient failures, wait out rate limits.

        Permanent errors (including ReauthorizationRequired and BatchTooLargeError) go
        straight to the caller: retrying them cannot help. With ``retry_transient`` off,
        transient failures other than rate limits (which TikTok answers before doing
        anything) go to the caller too: for calls that are not safe to repeat blindly.
        """
        attempt = 0
        limited_since: float | None = None
        while True:
            self.pacer.before(self.sleep)
            self.stats.requests += 1
            try:
                result = fn()
            except RateLimitedError as exc:
                self.pacer.after()
                self.stats.rate_limited += 1
                self.stats.last_error = str(exc)
                now = time.monotonic()
                limited_since = limited_since or now
                if now - limited_since > self.policy.rate_limit_patience:
                    raise GaveUp(
                        f"TikTok rate-limited {what} for over "
                        f"{self.policy.rate_limit_patience:.0f} s",
                        last=exc,
                    ) from exc
                self.sleep(self.pacer.limited())
                continue
            except TransientError as exc:
                self.pacer.after()
                if not retry_transient:
                    raise
                attempt += 1
                self.stats.retries += 1
                self.stats.last_error = str(exc)
                if attempt >= self.policy.max_attempts:
                    raise GaveUp(
                        f"{what} failed {attempt} times in a row; last: {exc}", last=exc
                    ) from exc
                delay = self.policy.backoff(attempt)
                logger.info("%s: %s; retry %d in %.1fs", what, exc, attempt, delay)
                self.sleep(delay)
                continue
            self.pacer.after()
            return result

    # -- audiences -------------------------------------------------------------------

    def find_audience(self, name: str, *, exclude: Collection[str] = ()) -> str | None:
        """The newest audience of this advertiser called `name` (as TikTok stores it) that
        is not one of `exclude`: how a creation whose answer was lost is recognised."""
        wanted = audience_name(name)
        page, found = 1, []
        while True:
            result = self.call(
                "listing audiences",
                partial(self.client.list_audiences, self.advertiser_id, page=page, page_size=100),
            )
            found += [
                a
                for a in result.audiences
                if a.name == wanted and a.audience_id and a.audience_id not in exclude
            ]
            if page >= result.total_page or not result.audiences:
                break
            page += 1
        if not found:
            return None
        return max(found, key=lambda a: (a.create_time, int(a.audience_id or 0))).audience_id

    def create_audience(self, name: str, *, exclude: Collection[str] = ()) -> str:
        """Create the audience, exactly once at TikTok.

        Creating is not idempotent: a create whose answer was lost (timeout, dropped
        connection, a 5xx or 5xxxx after TikTok may have acted, 40050 "duplicated request")
        may have created the audience. So after such a failure the audience is looked up
        by name (ignoring `exclude`, the ids the product already uses) before any new create.
        """
        what = f"creating audience “{name}”"
        attempt = 0
        while True:
            try:
                return self.call(
                    what,
                    lambda: self.client.create_audience(self.advertiser_id, name),
                    retry_transient=False,
                )
            except (TransientError, DuplicatedRequestError) as exc:
                attempt += 1
                self.stats.retries += 1
                self.stats.last_error = str(exc)
                # Give TikTok a moment: a create it is still finishing may not be listed yet.
                self.sleep(self.policy.backoff(attempt))
                found = self.find_audience(name, exclude=exclude)
                if found is not None:
                    logger.info("%s: answer lost (%s); found audience %s by name", what, exc, found)
                    return found
                if attempt >= self.policy.max_attempts:
                    raise GaveUp(
                        f"{what} failed {attempt} times in a row; last: {exc}", last=exc
                    ) from exc
                logger.info("%s: %s; not created, trying again", what, exc)

    # -- members ---------------------------------------------------------------------

    def send_members(
        self,
        id_schema: Sequence[str],
        rows: Sequence[str],
        action: Literal["add", "delete"] = "add",
    ) -> int:
        """Send rows (each the JSON of one ``batch_data`` entry, positional to id_schema and
        naming its audience) in requests of at most batch_size rows; halve a request
        TikTok calls too large. Returns requests made."""
        made = 0
        for start in range(0, len(rows), self.batch_size):
            made += self._send_chunk(id_schema, rows[start : start + self.batch_size], action)
        return made

    def _send_chunk(
        self,
        id_schema: Sequence[str],
        rows: Sequence[str],
        action: Literal["add", "delete"],
    ) -> int:
        if not rows:
            return 0
        try:
            self.call(
                f"sending {len(rows)} rows ({action})",
                lambda: self.client.update_members_json(
                    self.advertiser_id, id_schema, rows, action=action
                ),
            )
            return 1
        except BatchTooLargeError:
            if len(rows) == 1:
                raise
            self.stats.splits += 1
            half = len(rows) // 2
            # Remember the smaller size so the rest of the delivery does not hit it again.
            self.batch_size = max(1, min(self.batch_size, half))
            return self._send_chunk(id_schema, rows[:half], action) + (
                self._send_chunk(id_schema, rows[half:], action)
            )
