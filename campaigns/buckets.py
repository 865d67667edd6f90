"""The deterministic treatment bucket, identical on PostgreSQL and SQLite.

bucket = int(first 8 hex digits of md5(key || ':' || customer_id), 16) mod 10000

PostgreSQL: the IMMUTABLE SQL function ``ab_bucket(text, text)`` (migration 0002).
SQLite: the same function in Python, registered on every connection
(``CampaignsConfig.ready`` connects ``register_sqlite_bucket`` to ``connection_created``).
"""

from __future__ import annotations

import hashlib
from typing import Any

BUCKETS = 10_000

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION ab_bucket(key text, customer_id text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT (('x' || substr(md5(key || ':' || customer_id), 1, 8))::bit(32)::bigint % 10000)::integer
$$;
"""
POSTGRES_DROP = "DROP FUNCTION IF EXISTS ab_bucket(text, text);"


def ab_bucket(key: str | None, customer_id: str | None) -> int | None:
    if key is None or customer_id is None:
        return None
    digest = hashlib.md5(f"{key}:{customer_id}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % BUCKETS


def register_sqlite_bucket(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("ab_bucket", 2, ab_bucket, deterministic=True)
