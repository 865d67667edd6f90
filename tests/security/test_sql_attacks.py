"""SQL segment attacks, run through the web endpoints as every role.

Each attack is posted where a person's SQL can run: live insights on unsaved SQL, saving an
SQL segment, restoring a stored version that holds it, and, for a segment stored before a
check existed (written straight to the table), every page that evaluates it (detail,
breakdowns, compare, members CSV, refresh and activate with the page they lead to, campaign
counts). Every role tries every attack: Viewer, Marketer, Operator,
Admin and a Marketer with restricted PII access.

The database holds recognisable secrets: a victim Admin with a known username, password
hash and live session, an encrypted TikTok token, and customers with distinctive emails and
phones. No response may contain a session key, a password hash, the victim's username or
email, the token (plain or encrypted) or, for the restricted user, a raw email or phone.
An attack that reads anything outside the customer store must be refused (a 4xx answer or
an error message, nothing evaluated, nothing saved); the few attacks that stay inside the
store may run and must then give exactly the customers computed here in Python.

Tests are transactional: SQL segments run behind a fence that may use a connection of its
own, which sees only committed rows. The suite runs on SQLite by default and on PostgreSQL
when ``DATABASE_URL`` points at it.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import Role, User
from campaigns.models import Campaign
from destinations.models import Destination
from segments.models import Segment, SegmentKind, SegmentStatus, SegmentVersion
from tests.factories import CustomerFactory, DeviceFactory, OrderFactory

STORE_TABLES = {"customers", "devices", "orders"}
VICTIM = "zq-victim-admin-4417"
VICTIM_EMAIL = "zq.victim.4417@corp.example"
TOKEN = "zq-live-tiktok-token-8c1f0e5a9b"

# (customer id, email, phone, state)
CUSTOMERS = [
    ("zc-001", "zq.alice.3301@mail.example", "+14155550101", "CA"),
    ("zc-002", "zq.bob.3302@mail.example", "+14155550102", "NY"),
    ("zc-003", "zq.carol.3303@mail.example", "+14155550103", "CA"),
    ("zc-004", "zq.dan.3304@mail.example", "+14155550104", "TX"),
    ("zc-005", "zq.erin.3305@mail.example", "+14155550105", "CA"),
]
ALL_IDS = frozenset(c[0] for c in CUSTOMERS)
CA_IDS = frozenset(c[0] for c in CUSTOMERS if c[3] == "CA")
NOBODY: frozenset[str] = frozenset()

ROLES = ["viewer", "marketer", "operator", "admin", "restricted"]


@functools.cache
def _hash(password: str) -> str:
    """Hashed once per run: real password hashes are slow on purpose."""
    return make_password(password)


# -- the attacks -------------------------------------------------------------------------------
# Each is (id, SQL, outcome). ``REFUSE``: must be refused everywhere. A frozenset: the attack
# stays inside the store; it may be refused (e.g. a database rejects it) or run, and if it
# runs its members are exactly that set.

REFUSE = None


@dataclass(frozen=True)
class Attack:
    id: str
    sql: str
    outcome: frozenset[str] | None = REFUSE


def _non_store_tables() -> list[str]:
    """Every table the project's models have, but the store: new tables are covered."""
    tables = {m._meta.db_table for m in apps.get_models(include_auto_created=True)}
    return sorted(tables - STORE_TABLES)


SHADOW_ATTACKS = [
    Attack(
        f"shadow-{table}",
        f"WITH {table} AS (SELECT * FROM {table}) SELECT customer_id FROM customers "
        f"WHERE EXISTS (SELECT 1 FROM {table})",
    )
    for table in _non_store_tables()
]

EXPLICIT_ATTACKS = [
    # -- the attack review's two queries, and error oracles ------------------------------
    Attack(
        "review-session-oracle",
        "WITH django_session AS (SELECT * FROM django_session) SELECT customer_id FROM "
        "customers WHERE CAST((SELECT string_agg(session_key, ',') FROM django_session "
        "WHERE expire_date > now()) AS int) = 1",
    ),
    Attack(
        "review-pii-oracle",
        "SELECT customer_id FROM customers WHERE CAST((SELECT string_agg(email || '|' || "
        "phone, ',') FROM customers) AS int) = 1",
        NOBODY,
    ),
    Attack(
        "email-cast-oracle",
        "SELECT customer_id FROM customers WHERE CAST(email AS integer) = 1",
        NOBODY,
    ),
    Attack(
        "phone-date-oracle",
        "SELECT customer_id FROM customers WHERE CAST(phone AS date) IS NULL AND 1 = 0",
        NOBODY,
    ),
    Attack(
        "password-cast-oracle",
        "SELECT customer_id FROM customers WHERE CAST((SELECT password FROM accounts_user "
        "LIMIT 1) AS int) = 1",
    ),
    Attack(
        "token-cast-oracle",
        "SELECT customer_id FROM customers WHERE CAST((SELECT access_token FROM "
        "destinations_destination LIMIT 1) AS numeric) = 1",
    ),
    # -- boolean oracles -------------------------------------------------------------------
    Attack(
        "boolean-password-prefix",
        "SELECT customer_id FROM customers WHERE (SELECT substr(password, 1, 1) FROM "
        "accounts_user WHERE username LIKE 'zq-v%') = 'p'",
    ),
    Attack(
        "boolean-session-count",
        "SELECT customer_id FROM customers WHERE (SELECT COUNT(*) FROM django_session) > 1",
    ),
    Attack(
        "union-session-keys",
        "SELECT customer_id FROM customers UNION SELECT session_key FROM django_session",
    ),
    Attack("plain-users", "SELECT username FROM accounts_user"),
    Attack(
        "join-users",
        "SELECT c.customer_id FROM customers c JOIN accounts_user u ON u.id = 1",
    ),
    # -- WITH-query scoping ----------------------------------------------------------------
    Attack(
        "scope-subquery-with",
        "SELECT customer_id FROM django_session WHERE customer_id IN (WITH django_session AS "
        "(SELECT customer_id FROM customers) SELECT customer_id FROM django_session)",
    ),
    Attack(
        "scope-later-sibling",
        "WITH a AS (SELECT session_key AS customer_id FROM django_session), django_session "
        "AS (SELECT customer_id FROM customers) SELECT customer_id FROM a",
    ),
    Attack(
        "scope-nested-own-name",
        "WITH accounts_user AS (SELECT customer_id FROM customers WHERE EXISTS (SELECT 1 "
        "FROM accounts_user)) SELECT customer_id FROM accounts_user",
    ),
    Attack(
        "scope-quoted-case",
        'WITH "Django_Session" AS (SELECT customer_id FROM customers) SELECT customer_id '
        "FROM customers WHERE EXISTS (SELECT 1 FROM django_session)",
        ALL_IDS,  # SQLite: the WITH query (names ignore case); PostgreSQL: refused
    ),
    Attack(
        "scope-shadow-store-name",
        "WITH customers AS (SELECT customer_id FROM orders) SELECT customer_id FROM customers",
    ),
    Attack(
        "scope-harmless-shadow",
        "WITH django_session AS (SELECT customer_id FROM customers WHERE state = 'CA') "
        "SELECT customer_id FROM django_session",
        CA_IDS,
    ),
    # -- catalogs ----------------------------------------------------------------------------
    Attack("catalog-pg-class", "SELECT relname FROM pg_class"),
    Attack("catalog-pg-authid-quoted", 'SELECT rolname FROM "pg_authid"'),
    Attack("catalog-qualified", "SELECT tablename FROM pg_catalog.pg_tables"),
    Attack("catalog-stat-activity", "SELECT query FROM pg_stat_activity"),
    Attack("catalog-information-schema", "SELECT table_name FROM information_schema.tables"),
    Attack("catalog-sqlite-master", "SELECT name FROM sqlite_master"),
    Attack("catalog-sqlite-master-quoted", 'SELECT sql FROM "SQLITE_MASTER"'),
    Attack("catalog-sqlite-schema-main", "SELECT name FROM main.sqlite_schema"),
    Attack("catalog-schema-qualified", "SELECT customer_id FROM public.accounts_user"),
    Attack("catalog-unicode-escape", 'SELECT relname FROM U&"\\0070g_class"'),
    Attack(
        "catalog-regclass-cast",
        "SELECT customer_id FROM customers WHERE 'django_session'::regclass IS NOT NULL",
    ),
    # -- quoted and unicode identifiers -------------------------------------------------------
    Attack("quoted-table", 'SELECT customer_id FROM "django_session"'),
    Attack("bracket-table", "SELECT customer_id FROM [accounts_user]"),
    Attack("backtick-table", "SELECT customer_id FROM `accounts_user`"),
    Attack("homoglyph-table", "SELECT customer_id FROM сustomers"),  # Cyrillic с
    Attack("unicode-string", "SELECT customer_id FROM customers WHERE state = U&'\\0043A'"),
    Attack("long-name", f"SELECT customer_id FROM customers {'a' * 70}"),
    # -- server functions ------------------------------------------------------------------
    Attack("fn-pg-sleep", "SELECT customer_id FROM customers WHERE pg_sleep(5) IS NULL"),
    Attack("fn-pg-sleep-quoted", 'SELECT customer_id FROM customers WHERE "pg_sleep"(5) IS NULL'),
    Attack(
        "fn-pg-sleep-comment",
        "SELECT customer_id FROM customers WHERE pg_sleep/**/(5) IS NULL",
    ),
    Attack(
        "fn-qualified",
        "SELECT customer_id FROM customers WHERE pg_catalog.pg_sleep(5) IS NULL",
    ),
    Attack("fn-read-file", "SELECT pg_read_file('/etc/passwd')"),
    Attack("fn-ls-dir-lateral", "SELECT c.customer_id FROM customers c, LATERAL pg_ls_dir('.') f"),
    Attack("fn-lo-import", "SELECT customer_id FROM customers WHERE lo_import('/etc/passwd') > 0"),
    Attack("fn-loread", "SELECT customer_id FROM customers WHERE loread(0, 10) IS NULL"),
    Attack("fn-dblink", "SELECT customer_id FROM dblink('dbname=postgres', 'select 1') t"),
    Attack(
        "fn-current-setting",
        "SELECT customer_id FROM customers WHERE current_setting('data_directory') <> ''",
    ),
    Attack(
        "fn-set-config",
        "SELECT customer_id FROM customers WHERE set_config('transaction_read_only', 'off', "
        "true) = 'off'",
    ),
    Attack(
        "fn-query-to-xml",
        "SELECT customer_id FROM customers WHERE CAST(query_to_xml('select * from "
        "django_session', true, true, '') AS text) = ''",
    ),
    Attack(
        "fn-ts-stat",
        "SELECT customer_id FROM customers WHERE (SELECT COUNT(*) FROM ts_stat('SELECT "
        "to_tsvector(session_key) FROM django_session')) > 0",
    ),
    Attack("fn-current-user", "SELECT customer_id FROM customers WHERE current_user = 'x'"),
    Attack("fn-version", "SELECT customer_id FROM customers WHERE version() <> ''"),
    Attack("fn-load-extension", "SELECT load_extension('/tmp/evil.so')"),
    Attack("fn-randomblob", "SELECT customer_id FROM customers WHERE length(randomblob(1e9)) > 0"),
    Attack("fn-json-each", "SELECT c.customer_id FROM customers c, json_each('[1]') j"),
    Attack("fn-nextval", "SELECT customer_id FROM customers WHERE nextval('x') > 0"),
    # -- comments and multiple statements -------------------------------------------------------
    Attack("comment-semicolon", "SELECT customer_id FROM customers /* ; DROP TABLE orders */"),
    Attack("line-comment-semicolon", "SELECT customer_id FROM customers -- ; DELETE FROM orders\n"),
    Attack(
        "nested-comment-differential",
        "SELECT customer_id FROM customers /* /* */ UNION SELECT session_key FROM "
        "django_session -- */",
        ALL_IDS,  # PostgreSQL nests comments (all a comment); SQLite: the UNION is refused
    ),
    Attack("stacked-drop", "SELECT customer_id FROM customers; DROP TABLE orders"),
    Attack("stacked-select", "SELECT customer_id FROM customers; SELECT session_key FROM x"),
    Attack("trailing-semicolon", "SELECT customer_id FROM customers;", ALL_IDS),
    # -- writes, DDL and other statements ------------------------------------------------------
    Attack(
        "cte-delete",
        "WITH gone AS (DELETE FROM orders RETURNING customer_id) SELECT customer_id FROM gone",
    ),
    Attack(
        "cte-insert",
        "WITH x AS (INSERT INTO orders (order_id) VALUES ('o') RETURNING customer_id) "
        "SELECT customer_id FROM x",
    ),
    Attack(
        "cte-update",
        "WITH x AS (UPDATE accounts_user SET is_superuser = true RETURNING username) "
        "SELECT username FROM x",
    ),
    Attack("select-into", "SELECT customer_id INTO stolen FROM customers"),
    Attack(
        "select-into-subquery",
        "SELECT customer_id FROM customers WHERE customer_id IN (SELECT customer_id INTO "
        "TEMP t FROM customers)",
    ),
    Attack("for-update", "SELECT customer_id FROM customers FOR UPDATE"),
    Attack("copy-out", "COPY customers TO STDOUT"),
    Attack("copy-program", "COPY (SELECT 1) TO PROGRAM 'id'"),
    Attack("table-statement", "TABLE django_session"),
    Attack("attach", "ATTACH DATABASE '/tmp/zq.sqlite3' AS zq"),
    Attack("pragma", "PRAGMA table_info(accounts_user)"),
    Attack("set-role", "SET ROLE postgres"),
    Attack("do-block", "DO $$ BEGIN PERFORM pg_sleep(5); END $$"),
    Attack("explain-analyze", "EXPLAIN ANALYZE SELECT customer_id FROM customers"),
    Attack("drop-table", "DROP TABLE customers"),
    # -- sleeps and bombs ------------------------------------------------------------------------
    Attack(
        "recursive-infinite",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT c.customer_id "
        "FROM customers c WHERE c.customer_id IN (SELECT CAST(i AS text) FROM n)",
    ),
    Attack(
        "recursive-exponential",
        "WITH RECURSIVE x(k) AS (SELECT 1 UNION ALL SELECT x.k + 1 FROM x, customers) "
        "SELECT c.customer_id FROM customers c WHERE (SELECT COUNT(*) FROM x) < 0",
    ),
    Attack(
        "huge-series",
        "SELECT c.customer_id FROM customers c WHERE (SELECT COUNT(*) FROM "
        "generate_series(1, 100000000000)) < 0",
    ),
]

ATTACKS = SHADOW_ATTACKS + EXPLICIT_ATTACKS


def test_there_are_at_least_sixty_attacks_and_every_table_is_shadowed():
    assert len(ATTACKS) >= 60
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)
    shadowed = {a.id.removeprefix("shadow-") for a in SHADOW_ATTACKS}
    assert {"django_session", "accounts_user", "destinations_destination"} <= shadowed


# -- the world being attacked ----------------------------------------------------------------------


@dataclass
class World:
    clients: dict[str, Client]
    users: dict[str, User]
    target: Segment  # an empty SQL segment every role tries to save the attack into
    campaign: Campaign
    secrets: list[str] = field(default_factory=list)  # no response may contain these
    pii: list[str] = field(default_factory=list)  # nor these, for the restricted user


def _customers() -> None:
    for customer_id, email, phone, state in CUSTOMERS:
        customer = CustomerFactory(customer_id=customer_id, email=email, phone=phone, state=state)
        OrderFactory(customer=customer)
        DeviceFactory(customer=customer)


def _user(username: str, role: Role, *, restricted: bool = False, password: str = "pw") -> User:
    return User.objects.create(
        username=username,
        email=f"{username}@staff.example",
        role=role,
        restricted_pii=restricted,
        password=_hash(password),
    )


@pytest.fixture
def world(transactional_db, settings) -> World:
    # Bombs and sleeps that a database runs must end quickly in a test.
    settings.SEGMENT_QUERY_TIMEOUT_MS = 400
    settings.SEGMENT_LIVE_TIMEOUT_MS = 400
    settings.SEGMENT_SQL_REUSE_SECONDS = 0
    _customers()
    roles = {
        "viewer": Role.VIEWER,
        "marketer": Role.MARKETER,
        "operator": Role.OPERATOR,
        "admin": Role.ADMIN,
        "restricted": Role.MARKETER,
    }
    users = {
        name: _user(f"attacker-{name}", role, restricted=name == "restricted")
        for name, role in roles.items()
    }
    clients = {}
    for name, user in users.items():
        client = Client()
        client.force_login(user)
        clients[name] = client
    victim = User.objects.create(
        username=VICTIM,
        email=VICTIM_EMAIL,
        role=Role.ADMIN,
        password=_hash("victim's own passphrase"),
        is_superuser=True,
    )
    Client().force_login(victim)  # a live session in django_session
    Destination.objects.create(
        name="Main TikTok",
        advertiser_id="7000000000000000001",
        access_token=TOKEN,
        refresh_token=TOKEN + "-refresh",
        connected_by=victim,
    )
    # Made through the web page a marketer uses.
    response = clients["marketer"].post(
        reverse("segments:new"), {"name": "Attack target", "kind": SegmentKind.SQL}
    )
    assert response.status_code == 302, response.content[:300]
    target = Segment.objects.get(name="Attack target")
    campaign = Campaign.objects.create(name="Attacked campaign", created_by=users["marketer"])
    world = World(clients=clients, users=users, target=target, campaign=campaign)
    world.secrets = _secrets()
    world.pii = [value for c in CUSTOMERS for value in (c[1], c[2])]
    return world


def _secrets() -> list[str]:
    secrets = [VICTIM, VICTIM_EMAIL, TOKEN]
    secrets += list(Session.objects.values_list("session_key", flat=True))
    for password in User.objects.values_list("password", flat=True):
        secrets += [password, password.rsplit("$", 1)[-1]]
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM destinations_destination")
        for row in cursor.fetchall():
            secrets += [str(value) for value in row if value]
    assert len(secrets) >= 12
    return secrets


def _legacy(attack: Attack, author: User) -> Segment:
    """A segment stored before any check existed: written straight to the table."""
    return Segment.objects.create(
        name=f"Legacy {attack.id}"[:200],
        kind=SegmentKind.SQL,
        sql=attack.sql,
        created_by=author,
        updated_by=author,
    )


# -- judging the answers ------------------------------------------------------------------------


@dataclass
class Answer:
    where: str
    role: str
    status: int
    body: str


def _get(client: Client, url: str, where: str, role: str, **data: Any) -> Answer:
    response = client.get(url, data)
    return _answer(response, where, role)


def _post(
    client: Client, url: str, where: str, role: str, data: dict[str, Any], *, follow: bool = False
) -> Answer:
    """A POST; with ``follow`` the page it redirects to (where its messages show) is read."""
    response = client.post(url, data, follow=follow)
    return _answer(response, where, role)


def _answer(response: Any, where: str, role: str) -> Answer:
    if getattr(response, "streaming", False):
        body = b"".join(response.streaming_content).decode("utf-8", "replace")
    else:
        body = response.content.decode("utf-8", "replace")
    return Answer(where, role, response.status_code, body)


def _assert_safe(answer: Answer, world: World) -> None:
    label = f"{answer.where} as {answer.role}"
    assert answer.status < 500, f"{label}: HTTP {answer.status}"
    for secret in world.secrets:
        assert secret not in answer.body, f"{label}: a secret is in the response"
    if answer.role == "restricted":
        for value in world.pii:
            assert value not in answer.body, f"{label}: a raw email or phone is shown"
    for internal in ("Traceback", "psycopg", "sqlite3.", "OperationalError", "<class '"):
        assert internal not in answer.body, f"{label}: {internal} is shown"


def _refused_page(answer: Answer, evaluated_marker: str) -> bool:
    return 400 <= answer.status < 500 or evaluated_marker not in answer.body


UNIQUE = re.compile(r'data-testid="unique-count">\s*([\d,]+)\s*<')


def _unique_count(body: str) -> int | None:
    match = UNIQUE.search(body)
    return int(match.group(1).replace(",", "")) if match else None


def _csv_ids(body: str) -> set[str]:
    rows = list(csv.reader(io.StringIO(body)))
    return {row[0] for row in rows[1:] if row}


# -- the endpoints ---------------------------------------------------------------------------------


def _insights(world: World, attack: Attack, role: str) -> None:
    answer = _post(
        world.clients[role],
        reverse("segments:insights"),
        "insights",
        role,
        {"sql": attack.sql, "field": "sql"},
    )
    _assert_safe(answer, world)
    count = _unique_count(answer.body)
    if attack.outcome is REFUSE or role in ("viewer", "restricted"):
        # Viewers run no ad hoc SQL; restricted users author none.
        assert count is None, f"insights as {role}: the attack ran"
        assert 400 <= answer.status < 500 or 'role="alert"' in answer.body
    elif count is not None:
        assert count == len(attack.outcome), f"insights as {role}: {count} customers"


def _save(world: World, attack: Attack, role: str) -> None:
    target = world.target
    target.refresh_from_db()
    before = target.sql
    answer = _post(
        world.clients[role],
        reverse("segments:edit", args=[target.pk]),
        "save",
        role,
        {"name": target.name, "sql": attack.sql},
    )
    _assert_safe(answer, world)
    target.refresh_from_db()
    if attack.outcome is REFUSE or role in ("viewer", "restricted"):
        assert 400 <= answer.status < 500, f"save as {role}: HTTP {answer.status}"
        assert target.sql == before, f"save as {role}: the attack was saved"
    elif answer.status == 302:
        assert target.sql == attack.sql
    else:
        assert 400 <= answer.status < 500 and target.sql == before
    # Restoring a stored version holding the attack (saved before the check existed).
    before = target.sql
    restore = _post(
        world.clients[role],
        reverse("segments:action", args=[target.pk, "restore"]),
        "restore",
        role,
        {"number": ATTACK_VERSION},
        follow=True,
    )
    _assert_safe(restore, world)
    target.refresh_from_db()
    if attack.outcome is REFUSE or role in ("viewer", "restricted"):
        assert target.sql == before, f"restore as {role}: the attack was restored"


def _stored(world: World, attack: Attack, role: str, legacy: Segment) -> None:
    """Every page that evaluates a stored SQL segment, for a segment saved unchecked."""
    client = world.clients[role]
    answers = {
        "detail": _get(client, reverse("segments:detail", args=[legacy.pk]), "detail", role),
        "breakdowns": _get(
            client, reverse("segments:breakdowns", args=[legacy.pk]), "breakdowns", role
        ),
        "compare": _get(client, reverse("segments:compare"), "compare", role, ids=[legacy.pk]),
        "csv": _get(client, reverse("segments:members_csv", args=[legacy.pk]), "csv", role),
        "counts": _get(
            client, reverse("campaigns:counts", args=[world.campaign.pk]), "counts", role
        ),
    }
    for action in ("refresh", "activate"):
        answers[action] = _post(
            client,
            reverse("segments:action", args=[legacy.pk, action]),
            action,
            role,
            {},
            follow=True,
        )
    for answer in answers.values():
        _assert_safe(answer, world)
    legacy.refresh_from_db()
    csv_answer = answers["csv"]
    if attack.outcome is REFUSE:
        assert _refused_page(answers["detail"], 'class="stats"'), f"detail as {role}: ran"
        assert _refused_page(answers["breakdowns"], 'class="seg-chart"'), (
            f"breakdowns as {role}: ran"
        )
        assert _refused_page(answers["compare"], "<h2>Overlap</h2>"), f"compare as {role}: ran"
        assert csv_answer.status >= 400 or not _csv_ids(csv_answer.body), f"csv as {role}: ran"
        assert 'role="alert"' in answers["counts"].body or answers["counts"].status >= 400, (
            f"counts as {role}: the campaign counted the attack"
        )
        assert legacy.last_count is None, f"refresh as {role}: the attack was counted"
        assert legacy.status == SegmentStatus.DRAFT, f"activate as {role}: activated"
    else:
        if csv_answer.status == 200:
            ids = _csv_ids(csv_answer.body)
            assert ids <= ALL_IDS
            assert ids in (set(attack.outcome), set()), f"csv as {role}: {sorted(ids)}"
        if legacy.last_count is not None:
            assert legacy.last_count == len(attack.outcome)


ATTACK_VERSION = 999


def _run_attack(world: World, attack: Attack) -> None:
    legacy = _legacy(attack, world.users["marketer"])
    SegmentVersion.objects.create(
        segment=world.target,
        number=ATTACK_VERSION,
        name=world.target.name,
        status=SegmentStatus.DRAFT,
        kind=SegmentKind.SQL,
        sql=attack.sql,
    )
    world.campaign.include_segments.set([legacy])
    for role in ROLES:
        _insights(world, attack, role)
        _save(world, attack, role)
        _stored(world, attack, role, legacy)
        if attack.outcome is not REFUSE:
            Segment.objects.filter(pk=legacy.pk).update(status=SegmentStatus.DRAFT, last_count=None)
    # Nothing the attacks did changed the store or the accounts.
    assert set(_store_ids()) == ALL_IDS
    assert User.objects.filter(username=VICTIM, is_superuser=True).count() == 1
    assert not User.objects.filter(username__startswith="attacker-", is_superuser=True).exists()


def _store_ids() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT customer_id FROM customers")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_sql_attack_is_refused_or_stays_inside_the_store(world: World, attack: Attack):
    _run_attack(world, attack)


@pytest.mark.django_db(transaction=True)
def test_tables_without_a_model_are_refused_too(world: World):
    """Tables the database has but no model names (django_migrations, sqlite_sequence …)."""
    modelled = {m._meta.db_table for m in apps.get_models(include_auto_created=True)}
    extra = sorted(set(connection.introspection.table_names()) - modelled)
    assert extra, "the database has no table without a model: nothing to check"
    for table in extra:
        attack = Attack(
            f"shadow-{table}",
            f"WITH {table} AS (SELECT * FROM {table}) SELECT customer_id FROM customers "
            f"WHERE EXISTS (SELECT 1 FROM {table})",
        )
        _insights(world, attack, "marketer")
        _save(world, attack, "admin")
