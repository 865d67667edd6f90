"""The role and PII matrix: every URL pattern × role × method against a table of what each
role may do.

The table below is written by hand from the product's role rules (README "Roles",
PRODUCT.md §1), not read from the views:

- Viewer reads everything and changes nothing;
- Marketer builds segments and campaigns and schedules them;
- Operator also connects TikTok, manages destinations and default attributes, imports data;
- Admin also manages users (Settings);
- restricted PII (here a Marketer) sees identifiers masked and cannot download recipients;
- anonymous visitors are sent to the login page; a method a page does not accept is 405
  for everyone (checked before who is asking).
- Django's admin site is for staff accounts only, and no role makes an account staff: every
  admin page sends every role to the admin login.

Expected answers: ``OK`` (allowed: 2xx, a redirect that is not to a login page, or a 400 /
409 / 422 refusal of the empty form the test posts, which shows the role got past the
permission check), ``DENIED`` (403), ``LOGIN`` (302 to a login page), ``NO_METHOD`` (405).
Anything else (a 404 means the test failed to build an object; a 500) fails.

The URL patterns are enumerated from the resolver; a pattern without a row fails the test,
so every new URL has to be classified here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import factory
import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from accounts.models import Role, User
from campaigns import services as campaign_services
from deliveries.models import DestinationAudience
from tests.factories import (
    CampaignFactory,
    CustomerFactory,
    DeliveryFactory,
    DestinationFactory,
    ImportJobFactory,
    NotificationFactory,
    SegmentFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

OK, DENIED, LOGIN, NO_METHOD = "ok", "403", "login", "405"

ROLES = ("anonymous", "viewer", "marketer", "operator", "admin", "restricted")

# -- what each role may do, by rule ------------------------------------------------------


def _by_rank(lowest: str) -> dict[str, str]:
    """Signed-in roles from `lowest` up are allowed, the ones below it get 403."""
    order = ["viewer", "marketer", "operator", "admin"]
    allowed = set(order[order.index(lowest) :])
    table = {role: OK if role in allowed else DENIED for role in order}
    table["anonymous"] = LOGIN
    # The restricted-PII account is a Marketer.
    table["restricted"] = table["marketer"]
    return table


SIGNED_IN = _by_rank("viewer")
MARKETER = _by_rank("marketer")
OPERATOR = _by_rank("operator")
ADMIN = _by_rank("admin")
ANYONE = dict.fromkeys(ROLES, OK)
NOBODY = dict.fromkeys(ROLES, NO_METHOD)
STAFF_ONLY = dict.fromkeys(ROLES, LOGIN)  # no role is staff
# Readable by every role, except that restricted-PII accounts cannot download recipients.
UNRESTRICTED = {**SIGNED_IN, "restricted": DENIED}


@dataclass(frozen=True)
class Row:
    get: dict[str, str]
    post: dict[str, str]
    path: str = ""  # a sample path, for regex patterns that cannot be filled in


TABLE: dict[str, Row] = {
    # -- home and accounts
    "": Row(get=SIGNED_IN, post=NOBODY),
    "accounts/login/": Row(get=ANYONE, post=ANYONE),
    # signing out lands on the login page
    "accounts/logout/": Row(get=NOBODY, post=dict.fromkeys(ROLES, LOGIN)),
    "accounts/settings/": Row(get=SIGNED_IN, post=NOBODY),
    # Settings → Connections: the TikTok connections operators manage
    "accounts/settings/connections/": Row(get=OPERATOR, post=NOBODY),
    "accounts/settings/users/add/": Row(get=NOBODY, post=ADMIN),
    "accounts/settings/users/<int:pk>/": Row(get=ADMIN, post=ADMIN),
    # -- data: everyone reads the store; importing is for operators, and the error report
    # (raw values from the file) goes with importing
    "data/": Row(get=SIGNED_IN, post=NOBODY),
    "data/imports/": Row(get=SIGNED_IN, post=NOBODY),
    "data/imports/upload/": Row(get=NOBODY, post=OPERATOR),
    "data/delete/": Row(get=NOBODY, post=OPERATOR),
    # browsing customers is reading (identifiers masked for restricted accounts)
    "data/customers/": Row(get=SIGNED_IN, post=NOBODY),
    "data/customers/<path:customer_id>/": Row(get=SIGNED_IN, post=NOBODY),
    "data/imports/<int:pk>/errors.csv": Row(get=OPERATOR, post=NOBODY),
    # -- segments: everyone reads (pages, insights of visual definitions, member lists,
    # masked for restricted accounts); marketers and up change
    "segments/": Row(get=SIGNED_IN, post=NOBODY),
    "segments/new/": Row(get=MARKETER, post=MARKETER),
    "segments/compare/": Row(get=SIGNED_IN, post=NOBODY),
    "segments/lists/": Row(get=SIGNED_IN, post=MARKETER),
    "segments/editor/": Row(get=NOBODY, post=MARKETER),
    "segments/insights/": Row(get=NOBODY, post=SIGNED_IN),
    "segments/<int:pk>/": Row(get=SIGNED_IN, post=NOBODY),
    "segments/<int:pk>/edit/": Row(get=SIGNED_IN, post=MARKETER),
    "segments/<int:pk>/breakdowns/": Row(get=SIGNED_IN, post=NOBODY),
    "segments/<int:pk>/history/": Row(get=SIGNED_IN, post=NOBODY),
    "segments/<int:pk>/members.csv": Row(get=SIGNED_IN, post=NOBODY),
    "segments/<int:pk>/<str:action>/": Row(get=NOBODY, post=MARKETER),
    # -- campaigns: everyone reads; marketers and up build and schedule
    "campaigns/": Row(get=SIGNED_IN, post=NOBODY),
    "campaigns/new/": Row(get=MARKETER, post=MARKETER),
    "campaigns/<int:pk>/": Row(get=SIGNED_IN, post=NOBODY),
    "campaigns/<int:pk>/name/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/audience/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/first-match/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/sub-audiences/add/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/sub-audiences/reorder/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/sub-audiences/<int:sid>/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/sub-audiences/<int:sid>/remove/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/sub-audiences/<int:sid>/move/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/sub-audiences/<int:sid>/treatments/add/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/sub-audiences/<int:sid>/treatments/split-evenly/": Row(
        get=NOBODY, post=MARKETER
    ),
    "campaigns/<int:pk>/treatments/<int:tid>/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/treatments/<int:tid>/remove/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/destinations/<int:cid>/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/attributes/": Row(get=SIGNED_IN, post=MARKETER),
    "campaigns/<int:pk>/timing/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/launch/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/schedule/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/unschedule/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/delete/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/archive/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/duplicate/": Row(get=NOBODY, post=MARKETER),
    "campaigns/<int:pk>/counts/": Row(get=SIGNED_IN, post=NOBODY),
    "campaigns/<int:pk>/history/": Row(get=SIGNED_IN, post=NOBODY),
    # -- deliveries: everyone reads; the recipients file holds who got what, so
    # restricted accounts cannot download it; marketers retry their campaigns' deliveries
    "deliveries/campaign/<int:campaign_id>/panel/": Row(get=SIGNED_IN, post=NOBODY),
    "deliveries/<int:delivery_id>/": Row(get=SIGNED_IN, post=NOBODY),
    # delivering a scheduled campaign now is part of scheduling it
    "deliveries/campaign/<int:campaign_id>/run-now/": Row(get=NOBODY, post=MARKETER),
    "deliveries/<int:delivery_id>/recipients.csv": Row(get=UNRESTRICTED, post=NOBODY),
    "deliveries/<int:delivery_id>/retry/": Row(get=NOBODY, post=MARKETER),
    "deliveries/audiences/": Row(get=SIGNED_IN, post=NOBODY),
    "deliveries/audiences/<int:audience_pk>/": Row(get=SIGNED_IN, post=NOBODY),
    # bringing a TikTok audience back in line with what was sent, like Retry
    "deliveries/audiences/<int:audience_pk>/reconcile/": Row(get=NOBODY, post=MARKETER),
    # -- destinations: everyone reads; operators connect, reauthorize, disconnect, check
    # and manage default attributes
    "destinations/": Row(get=SIGNED_IN, post=NOBODY),
    "destinations/connect/": Row(get=OPERATOR, post=OPERATOR),
    "destinations/tiktok/callback/": Row(get=OPERATOR, post=NOBODY),
    "destinations/tiktok/select/": Row(get=OPERATOR, post=OPERATOR),
    "destinations/tiktok/cancel/": Row(get=NOBODY, post=OPERATOR),
    "destinations/<int:pk>/": Row(get=SIGNED_IN, post=NOBODY),
    "destinations/<int:pk>/reauthorize/": Row(get=NOBODY, post=OPERATOR),
    "destinations/<int:pk>/disconnect/": Row(get=NOBODY, post=OPERATOR),
    "destinations/<int:pk>/check/": Row(get=NOBODY, post=OPERATOR),
    "destinations/<int:pk>/attributes/": Row(get=SIGNED_IN, post=OPERATOR),
    # -- notifications: each user's own
    "notifications/": Row(get=SIGNED_IN, post=NOBODY),
    "notifications/read/": Row(get=NOBODY, post=SIGNED_IN),
    "notifications/<int:pk>/open/": Row(get=NOBODY, post=SIGNED_IN),
    # -- Django's admin site (staff only; nobody is staff)
    "admin/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/login/": Row(get=ANYONE, post=ANYONE),
    # Django's admin logout answers GET with a redirect to the admin index (staff only)
    "admin/logout/": Row(get=ANYONE, post=ANYONE),
    "admin/password_change/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/password_change/done/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/autocomplete/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/jsi18n/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/r/<path:content_type_id>/<path:object_id>/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/auth/group/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/auth/group/add/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/auth/group/<path:object_id>/history/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/auth/group/<path:object_id>/delete/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/auth/group/<path:object_id>/change/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/auth/group/<path:object_id>/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/accounts/user/<id>/password/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/accounts/user/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/accounts/user/add/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/accounts/user/<path:object_id>/history/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/accounts/user/<path:object_id>/delete/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/accounts/user/<path:object_id>/change/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    "admin/accounts/user/<path:object_id>/": Row(get=STAFF_ONLY, post=STAFF_ONLY),
    # django-axes' records of login attempts
    **{
        f"admin/axes/{model}/{suffix}": Row(get=STAFF_ONLY, post=STAFF_ONLY)
        for model in ("accessattempt", "accessfailurelog", "accesslog")
        for suffix in (
            "",
            "add/",
            "<path:object_id>/history/",
            "<path:object_id>/delete/",
            "<path:object_id>/change/",
        )
    },
    **{
        f"admin/axes/{model}/<path:object_id>/": Row(get=STAFF_ONLY, post=STAFF_ONLY)
        for model in ("accessattempt", "accessfailurelog", "accesslog")
    },
    "admin/^(?P<app_label>auth|axes|accounts)/$": Row(
        get=STAFF_ONLY, post=STAFF_ONLY, path="/admin/accounts/"
    ),
    "admin/(?P<url>.*)$": Row(get=STAFF_ONLY, post=STAFF_ONLY, path="/admin/no-such-page/"),
}


# -- enumerating the URL patterns --------------------------------------------------------


def _patterns(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple[str, bool]]:
    """(the pattern's full text, whether every part is a route that can be filled in)."""
    resolver = resolver or get_resolver()
    found = []
    for entry in resolver.url_patterns:
        text = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found.extend(_patterns(entry, text))
        elif isinstance(entry, URLPattern):
            found.append((text, isinstance(entry.pattern, RoutePattern)))
    return found


ALL_PATTERNS = _patterns()


def test_every_url_pattern_has_a_row_in_the_table():
    patterns = {text for text, _ in ALL_PATTERNS}
    missing = sorted(patterns - set(TABLE))
    assert not missing, f"URL patterns without a row in TABLE (classify them): {missing}"
    stale = sorted(set(TABLE) - patterns)
    assert not stale, f"TABLE rows for URL patterns that no longer exist: {stale}"


# -- the objects the URLs point at -------------------------------------------------------


def _user(role: Role, *, restricted_pii: bool = False) -> User:
    # An unusable password: hashing one for each of ~2,500 users would dominate the run.
    user: Any = UserFactory(
        role=role, restricted_pii=restricted_pii, password=factory.Transformer.Force("!")
    )
    return user


def _world() -> dict[str, Any]:
    """One of everything, with the ids to fill into the URL patterns."""
    author = _user(Role.MARKETER)
    # Factories are typed as themselves; these are the model instances they create.
    customer: Any = CustomerFactory()
    segment: Any = SegmentFactory()
    campaign: Any = CampaignFactory(created_by=author)
    sub = campaign_services.sub_audience_add(
        campaign=campaign, user=author, name="Gold", kind="segment", segment_id=segment.pk
    )
    treatment = sub.treatments.get(is_control=False)
    destination: Any = DestinationFactory()
    campaign_services.treatment_set_destinations(
        treatment=treatment, user=author, destination_ids=[destination.pk]
    )
    link = campaign.campaign_destinations.get()
    delivery: Any = DeliveryFactory(campaign=campaign, snapshot_at=dt.datetime.now(dt.UTC))
    report = Path(settings.MEDIA_ROOT) / "imports" / "matrix-errors.csv"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("row,column,value,reason\n2,email,x@,not an email\n")
    job: Any = ImportJobFactory(created_by=author, error_report_path="imports/matrix-errors.csv")
    audience = DestinationAudience.objects.create(
        destination_id=destination.pk, audience_id="7100000000000000001", name="Spring_Gold",
        campaign=campaign, treatment_id=treatment.pk, refresh_mode="sync",
    )  # fmt: skip
    return {
        "pk": None,  # filled per pattern below
        "segment": segment.pk,
        "campaign": campaign.pk,
        "sid": sub.pk,
        "tid": treatment.pk,
        "cid": link.pk,
        "campaign_id": campaign.pk,
        "delivery_id": delivery.pk,
        "customer_id": customer.customer_id,
        "audience_pk": audience.pk,
        "destination": destination.pk,
        "notification": None,  # each user's own, see below
        "user": author.pk,
        "import_job": job.pk,
        "action": "refresh",
        "content_type_id": ContentType.objects.get_for_model(User).pk,
        "object_id": author.pk,
        "id": author.pk,
    }


PK_OWNER = {
    "accounts/": "user",
    "data/": "import_job",
    "segments/": "segment",
    "campaigns/": "campaign",
    "destinations/": "destination",
    "notifications/": "notification",
}


def _path(pattern: str, world: dict[str, Any]) -> str:
    row = TABLE[pattern]
    if row.path:
        return row.path
    owner = next((v for k, v in PK_OWNER.items() if pattern.startswith(k)), None)
    path = pattern
    for name, value in world.items():
        if name == "pk":
            value = world[owner] if owner else None
        if value is None:
            continue
        for converter in ("int", "str", "path"):
            path = path.replace(f"<{converter}:{name}>", str(value))
        path = path.replace(f"<{name}>", str(value))
    assert "<" not in path, f"cannot fill in {pattern}"
    return "/" + path


def _client(role: str) -> tuple[Client, User | None]:
    client = Client()
    if role == "anonymous":
        return client, None
    restricted = role == "restricted"
    user = _user(Role.MARKETER if restricted else Role(role), restricted_pii=restricted)
    client.force_login(user)
    return client, user


LOGIN_PATHS = (resolve_url(settings.LOGIN_URL), "/admin/login/")


def _outcome(response: Any) -> str:
    status = response.status_code
    if status == 302 and response["Location"].split("?")[0] in LOGIN_PATHS:
        return LOGIN
    if status in (403, 405):
        return str(status)
    if 200 <= status < 400 or status in (400, 409, 422):
        return OK
    return f"unexpected {status}"


@pytest.fixture
def tiktok_app(settings):
    """A configured TikTok app, so Connect reaches its redirect (the address is never called)."""
    settings.TIKTOK_APP_ID = "7100000000000000000"
    settings.TIKTOK_APP_SECRET = "matrix-secret"
    settings.TIKTOK_AUTH_URL = "https://tiktok.invalid/portal/auth"


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("pattern", sorted(TABLE))
def test_each_role_gets_what_the_table_says(pattern, method, tiktok_app):
    row = TABLE[pattern]
    expected = row.get if method == "get" else row.post
    wrong = []
    world = _world()
    for role in ROLES:
        # Each role starts from the same objects: a POST may change or delete what it hits,
        # so every request runs in a savepoint that is rolled back.
        with transaction.atomic():
            client, user = _client(role)
            owner = user or _user(Role.VIEWER)
            mine = {**world, "notification": NotificationFactory(user=owner).pk}
            path = _path(pattern, mine)
            response = getattr(client, method)(path)
            got = _outcome(response)
            if got != expected[role]:
                wrong.append(f"{role}: expected {expected[role]}, got {got} ({path})")
            transaction.set_rollback(True)
    assert not wrong, f"{method.upper()} {pattern}:\n" + "\n".join(wrong)
