"""Tell people that something happened: a row per user in the app, and an email."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import ROLE_RANK, Role, User
from notifications.models import Notification, NotificationLevel

logger = logging.getLogger(__name__)


class NotificationError(Exception):
    """notify() was called without a recipient or with an unknown level."""


def users_with_role(role: Role | str) -> QuerySet[User]:
    """Active users whose role is `role` or higher (superusers always)."""
    rank = ROLE_RANK[Role(role)]
    roles = [r.value for r, r_rank in ROLE_RANK.items() if r_rank >= rank]
    return User.objects.filter(is_active=True).filter(Q(role__in=roles) | Q(is_superuser=True))


def notify(
    *,
    users: Iterable[User] | None = None,
    role: Role | str | None = None,
    level: NotificationLevel | str = NotificationLevel.INFO,
    title: str,
    body: str = "",
    url: str = "",
) -> list[Notification]:
    """Create one in-app notification per recipient and email those with an address.

    Emails go out after the surrounding transaction commits, so a rolled-back change
    never emails anybody; a mail server failure is logged and does not undo the
    in-app notifications.
    """
    if users is None and role is None:
        raise NotificationError("notify() needs users or a role")
    if level not in NotificationLevel.values:
        raise NotificationError(f"unknown notification level {level!r}")
    recipients: dict[int, User] = {}
    if users is not None:
        recipients.update({u.pk: u for u in users if u.is_active})
    if role is not None:
        recipients.update({u.pk: u for u in users_with_role(role)})
    if not recipients:
        return []
    with transaction.atomic():
        created = Notification.objects.bulk_create(
            [
                Notification(user=user, level=level, title=title[:200], body=body, url=url)
                for user in recipients.values()
            ]
        )
        addresses = {
            n.pk: recipients[n.user_id].email for n in created if recipients[n.user_id].email
        }
        transaction.on_commit(lambda: _send_emails(addresses, title=title, body=body, url=url))
    return created


def _send_emails(addresses: dict[int, str], *, title: str, body: str, url: str) -> None:
    if not addresses:
        return
    text = body
    if url:
        base = getattr(settings, "SITE_URL", "")
        text = f"{body}\n\n{base}{url}" if body else f"{base}{url}"
    messages = [
        EmailMessage(
            subject=f"[Audience Builder] {title}",
            body=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[address],
        )
        for address in addresses.values()
    ]
    try:
        get_connection().send_messages(messages)
    except Exception:  # noqa: BLE001 - a mail outage must not break the caller
        logger.exception("could not email %d notification(s) titled %r", len(messages), title)
        return
    Notification.objects.filter(pk__in=list(addresses)).update(emailed=True)


def notification_mark_read(*, user: User, notification_ids: Iterable[int] | None = None) -> int:
    """Mark the user's notifications read (all of them when no ids are given)."""
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if notification_ids is not None:
        qs = qs.filter(pk__in=list(notification_ids))
    return qs.update(read_at=timezone.now())
