"""The PostgreSQL login that segment SQL runs as (``segments.fence``).

``ensure_segment_role()`` makes the role ``SEGMENT_DB_USER`` if it does not exist (this
needs a database user allowed to create roles; otherwise a DBA creates it once, see the
README), sets its password and its safe defaults, and grants it exactly ``SELECT`` on
``customers``, ``devices`` and ``orders`` and ``CONNECT`` and schema ``USAGE``, revoking
anything else it holds on this database's tables, sequences and functions of the public
schema. It runs after every ``migrate`` (a ``post_migrate`` handler, so test databases
get it too) and as ``manage.py segment_role``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

STORE_TABLES = ("customers", "devices", "orders")


class SegmentRoleError(RuntimeError):
    pass


def ensure_segment_role(*, using: str = "default") -> str | None:
    """Create/update the segment login and its grants; returns what was done, or None on
    SQLite (where the authorizer fences segment SQL instead)."""
    conn = connections[using]
    if conn.vendor != "postgresql":
        return None
    from psycopg import sql

    role = settings.SEGMENT_DB_USER
    password = settings.SEGMENT_DB_PASSWORD
    owner = conn.settings_dict.get("USER") or ""
    if role == owner:
        raise SegmentRoleError(
            "SEGMENT_DB_USER must be a login of its own, not the application's database user."
        )
    ident = sql.Identifier(role)
    with conn.cursor() as cursor:
        raw = cursor.cursor
        raw.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s", [role])
        row = raw.fetchone()
        done = "updated"
        if row is None:
            raw.execute(
                "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
            )
            can_create = bool(raw.fetchone()[0])
            if not can_create:
                raise SegmentRoleError(
                    f"The PostgreSQL role {role!r} for segment SQL does not exist and the "
                    "application's database user may not create roles. Create it once as a "
                    f"superuser: CREATE ROLE \"{role}\" LOGIN PASSWORD '…'; then run migrate."
                )
            raw.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
            done = "created"
        elif row[0] or row[1]:
            raise SegmentRoleError(
                f"The role {role!r} can create roles or is a superuser: segment SQL must run "
                "as a login that can only read the customer store."
            )
        if _can_alter(raw):
            raw.execute(
                sql.SQL(
                    "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                    "NOBYPASSRLS NOINHERIT CONNECTION LIMIT 200"
                ).format(ident)
            )
            if password:
                raw.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password))
                )
            for setting, value in (
                ("default_transaction_read_only", "on"),
                ("statement_timeout", str(int(settings.SEGMENT_QUERY_TIMEOUT_MS))),
                ("idle_in_transaction_session_timeout", "60000"),
                ("temp_buffers", "'8MB'"),
            ):
                raw.execute(sql.SQL(f"ALTER ROLE {{}} SET {setting} = {value}").format(ident))
        raw.execute("SELECT current_database()")
        database = raw.fetchone()[0]
        raw.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident)
        )
        raw.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
        raw.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(ident))
        raw.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {}").format(ident))
        for table in STORE_TABLES:
            raw.execute(
                sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(sql.Identifier(table), ident)
            )
    return done


def _can_alter(raw: Any) -> bool:
    raw.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    return bool(raw.fetchone()[0])


def segment_role_post_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` of the segments app: the grants follow the tables."""
    try:
        done = ensure_segment_role(using=using)
    except SegmentRoleError as exc:
        logger.error("%s", exc)
        raise
    if done:
        logger.info("segment SQL role %s %s", settings.SEGMENT_DB_USER, done)
