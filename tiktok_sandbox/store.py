"""Everything the sandbox keeps: one SQLite file (WAL) in the data dir, plus uploaded files.

One connection guarded by one lock: writes are short (a member batch is a handful of
blob rows) and a single writer is all SQLite allows anyway.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .members import AudienceMembers, IdGroup

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, app_id TEXT NOT NULL, advertiser_ids TEXT NOT NULL,
    created_at REAL NOT NULL, revoked_at REAL
);
CREATE TABLE IF NOT EXISTS auth_codes (
    code TEXT PRIMARY KEY, app_id TEXT NOT NULL, advertiser_ids TEXT NOT NULL,
    redirect_uri TEXT NOT NULL, created_at REAL NOT NULL, used_at REAL
);
CREATE TABLE IF NOT EXISTS redirect_uris (
    app_id TEXT NOT NULL, uri TEXT NOT NULL, PRIMARY KEY (app_id, uri)
);
CREATE TABLE IF NOT EXISTS audiences (
    audience_id INTEGER PRIMARY KEY, advertiser_id TEXT NOT NULL, name TEXT NOT NULL,
    kind TEXT NOT NULL, calculate_type TEXT NOT NULL, retention_days INTEGER NOT NULL,
    created_at REAL NOT NULL, changed_at REAL NOT NULL, deleted_at REAL
);
CREATE INDEX IF NOT EXISTS audiences_advertiser ON audiences (advertiser_id, created_at);
CREATE TABLE IF NOT EXISTS audience_history (
    id INTEGER PRIMARY KEY, audience_id INTEGER NOT NULL, action TEXT NOT NULL,
    msg TEXT NOT NULL, opt_time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS audience_history_audience ON audience_history (audience_id, id);
CREATE TABLE IF NOT EXISTS member_log (
    seq INTEGER PRIMARY KEY, audience_id INTEGER NOT NULL, op INTEGER NOT NULL,
    id_type TEXT NOT NULL, hashes BLOB NOT NULL, key_flags BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS member_log_audience ON member_log (audience_id);
CREATE TABLE IF NOT EXISTS files (
    file_path TEXT PRIMARY KEY, advertiser_id TEXT NOT NULL, calculate_type TEXT NOT NULL,
    name TEXT NOT NULL, size INTEGER NOT NULL, disk_name TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS event_sets (
    event_set_id INTEGER PRIMARY KEY, advertiser_id TEXT NOT NULL, name TEXT NOT NULL,
    description TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    event_set_id INTEGER NOT NULL, event_id TEXT NOT NULL, event TEXT NOT NULL,
    event_time INTEGER NOT NULL, attributed INTEGER NOT NULL, received_at REAL NOT NULL,
    payload TEXT NOT NULL, PRIMARY KEY (event_set_id, event_id, event)
);
"""

OP_ADD, OP_DELETE, OP_CLEAR = 1, 2, 3
AUDIENCE_COLUMNS = (
    "audience_id, advertiser_id, name, kind, calculate_type, retention_days, created_at, changed_at"
)
AUTH_CODE_TTL_S = 3600


@dataclass(frozen=True)
class Token:
    token: str
    app_id: str
    advertiser_ids: tuple[str, ...]
    revoked: bool
    created_at: float = 0.0


@dataclass(frozen=True)
class Audience:
    audience_id: str
    advertiser_id: str
    name: str
    kind: str  # "partner" (segment API) or "file" (customer file)
    calculate_type: str
    retention_days: int
    created_at: float
    changed_at: float


def new_id() -> int:
    """A 19-digit id starting with 7, like TikTok's."""
    return 7 * 10**18 + secrets.randbelow(10**18)


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.files_dir = data_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(
            data_dir / "sandbox.sqlite3", check_same_thread=False, isolation_level=None
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(SCHEMA)
        self.members: dict[str, AudienceMembers] = {}
        self._load_members()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _load_members(self) -> None:
        rows = self.db.execute(
            "SELECT m.audience_id, m.op, m.id_type, m.hashes, m.key_flags FROM member_log m "
            "JOIN audiences a ON a.audience_id = m.audience_id WHERE a.deleted_at IS NULL "
            "ORDER BY m.seq"
        )
        for audience_id, op, id_type, hashes, flags in rows:
            members = self.members.setdefault(str(audience_id), AudienceMembers())
            self._apply(members, op, IdGroup(id_type, split_digests(id_type, hashes), list(flags)))

    @staticmethod
    def _apply(members: AudienceMembers, op: int, group: IdGroup) -> int:
        if op == OP_ADD:
            return members.add(group.id_type, group.digests, group.flags)
        if op == OP_DELETE:
            return members.remove(group.id_type, group.digests)
        members.clear()
        return 0

    def wipe(self) -> None:
        with self.transaction() as db:
            for table in (
                "tokens",
                "auth_codes",
                "redirect_uris",
                "audiences",
                "audience_history",
                "member_log",
                "files",
                "event_sets",
                "events",
            ):
                db.execute(f"DELETE FROM {table}")
            self.members.clear()
        for path in self.files_dir.iterdir():
            path.unlink()

    # --- OAuth -------------------------------------------------------------------------

    def redirect_uris(self, app_id: str) -> set[str]:
        with self.lock:
            rows = self.db.execute("SELECT uri FROM redirect_uris WHERE app_id = ?", (app_id,))
            return {uri for (uri,) in rows}

    def register_redirect_uri(self, app_id: str, uri: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO redirect_uris VALUES (?, ?)", (app_id, uri))

    def auth_code_create(self, app_id: str, advertiser_ids: list[str], redirect_uri: str) -> str:
        code = secrets.token_hex(20)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO auth_codes VALUES (?, ?, ?, ?, ?, NULL)",
                (code, app_id, json.dumps(advertiser_ids), redirect_uri, time.time()),
            )
        return code

    def auth_code_redeem(self, app_id: str, code: str) -> list[str] | None:
        """Mark the code used and return its advertisers; None if unknown, used or expired."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT advertiser_ids, created_at, used_at FROM auth_codes "
                "WHERE code = ? AND app_id = ?",
                (code, app_id),
            ).fetchone()
            if row is None or row[2] is not None:
                return None
            db.execute("UPDATE auth_codes SET used_at = ? WHERE code = ?", (time.time(), code))
            if time.time() - row[1] > AUTH_CODE_TTL_S:
                return None
            return list(json.loads(row[0]))

    def token_create(self, app_id: str, advertiser_ids: list[str]) -> str:
        token = secrets.token_hex(20)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, NULL)",
                (token, app_id, json.dumps(advertiser_ids), time.time()),
            )
        return token

    def token_get(self, token: str) -> Token | None:
        with self.lock:
            row = self.db.execute(
                "SELECT token, app_id, advertiser_ids, revoked_at, created_at FROM tokens "
                "WHERE token = ?",
                (token,),
            ).fetchone()
        if row is None:
            return None
        return Token(row[0], row[1], tuple(json.loads(row[2])), row[3] is not None, row[4])

    def token_revoke(self, token: str) -> bool:
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE token = ? AND revoked_at IS NULL",
                (time.time(), token),
            )
            return cursor.rowcount > 0

    def tokens_revoke_for_advertiser(self, advertiser_id: str) -> int:
        with self.transaction() as db:
            rows = db.execute(
                "SELECT token, advertiser_ids FROM tokens WHERE revoked_at IS NULL"
            ).fetchall()
            hit = [(time.time(), t) for t, ids in rows if advertiser_id in json.loads(ids)]
            db.executemany("UPDATE tokens SET revoked_at = ? WHERE token = ?", hit)
            return len(hit)

    # --- audiences ---------------------------------------------------------------------

    def audience_create(
        self,
        *,
        advertiser_id: str,
        name: str,
        kind: str,
        calculate_type: str,
        retention_days: int,
        groups: list[IdGroup] | None = None,
    ) -> Audience:
        now = time.time()
        with self.transaction() as db:
            audience_id = new_id()
            while db.execute(
                "SELECT 1 FROM audiences WHERE audience_id = ?", (audience_id,)
            ).fetchone():
                audience_id = new_id()  # pragma: no cover - one in 10^18
            db.execute(
                "INSERT INTO audiences VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (audience_id, advertiser_id, name, kind, calculate_type, retention_days, now, now),
            )
            self._history(db, audience_id, "Create", f"Audience created ({kind})", now)
            members = self.members.setdefault(str(audience_id), AudienceMembers())
            self._log_groups(db, audience_id, OP_ADD, groups or [], members)
        return self.audience_get(str(audience_id))  # type: ignore[return-value]

    def audience_get(self, audience_id: str) -> Audience | None:
        with self.lock:
            row = self.db.execute(
                f"SELECT {AUDIENCE_COLUMNS} FROM audiences "
                "WHERE audience_id = ? AND deleted_at IS NULL",
                (int(audience_id),),
            ).fetchone()
        return _audience(row) if row else None

    def audiences_of(self, advertiser_id: str) -> list[Audience]:
        with self.lock:
            rows = self.db.execute(
                f"SELECT {AUDIENCE_COLUMNS} FROM audiences "
                "WHERE advertiser_id = ? AND deleted_at IS NULL "
                "ORDER BY created_at DESC, audience_id DESC",
                (advertiser_id,),
            ).fetchall()
        return [_audience(row) for row in rows]

    def audience_rename(self, audience_id: str, name: str) -> None:
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "UPDATE audiences SET name = ? WHERE audience_id = ?", (name, int(audience_id))
            )
            self._history(db, int(audience_id), "Update", "Audience renamed", now)

    def audience_history(self, audience_id: str, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT action, msg, opt_time FROM audience_history WHERE audience_id = ? "
                "ORDER BY id DESC LIMIT ?",
                (int(audience_id), limit),
            ).fetchall()
        return [{"action": a, "msg": m, "opt_time": t} for a, m, t in rows]

    def audiences_delete(self, audience_ids: list[str]) -> None:
        with self.transaction() as db:
            for audience_id in audience_ids:
                db.execute(
                    "UPDATE audiences SET deleted_at = ? WHERE audience_id = ?",
                    (time.time(), int(audience_id)),
                )
                db.execute("DELETE FROM member_log WHERE audience_id = ?", (int(audience_id),))
                self.members.pop(audience_id, None)

    def members_change(
        self,
        op: int,
        by_audience: dict[str, list[IdGroup]],
        *,
        history: tuple[str, str] | None = None,
        clear_first: bool = False,
    ) -> int:
        """Add or delete ids in several audiences in one transaction; returns ids changed."""
        changed = 0
        now = time.time()
        with self.transaction() as db:
            for audience_id, groups in by_audience.items():
                members = self.members.setdefault(audience_id, AudienceMembers())
                if clear_first:
                    db.execute(
                        "INSERT INTO member_log (audience_id, op, id_type, hashes, key_flags) "
                        "VALUES (?, ?, '', x'', x'')",
                        (int(audience_id), OP_CLEAR),
                    )
                    members.clear()
                changed += self._log_groups(db, int(audience_id), op, groups, members)
                if history:
                    self._history(db, int(audience_id), history[0], history[1], now)
                    db.execute(
                        "UPDATE audiences SET changed_at = ? WHERE audience_id = ?",
                        (now, int(audience_id)),
                    )
        return changed

    def _log_groups(
        self,
        db: sqlite3.Connection,
        audience_id: int,
        op: int,
        groups: list[IdGroup],
        members: AudienceMembers,
    ) -> int:
        changed = 0
        rows = []
        for group in groups:
            if not group.digests:
                continue
            rows.append(
                (audience_id, op, group.id_type, b"".join(group.digests), bytes(group.flags))
            )
            changed += self._apply(members, op, group)
        db.executemany(
            "INSERT INTO member_log (audience_id, op, id_type, hashes, key_flags) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        return changed

    @staticmethod
    def _history(
        db: sqlite3.Connection, audience_id: int, action: str, msg: str, now: float
    ) -> None:
        db.execute(
            "INSERT INTO audience_history (audience_id, action, msg, opt_time) VALUES (?, ?, ?, ?)",
            (audience_id, action, msg, now),
        )

    # --- customer files ----------------------------------------------------------------

    def file_save(
        self, *, advertiser_id: str, calculate_type: str, name: str, content: bytes
    ) -> str:
        token = secrets.token_hex(16)
        suffix = ".txt" if name.lower().endswith(".txt") else ".csv"
        disk_name = token + suffix
        (self.files_dir / disk_name).write_bytes(content)
        file_path = f"tos-sandbox/{advertiser_id}/{disk_name}"
        with self.transaction() as db:
            db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    file_path,
                    advertiser_id,
                    calculate_type,
                    name,
                    len(content),
                    disk_name,
                    time.time(),
                ),
            )
        return file_path

    def file_get(self, file_path: str) -> tuple[str, str, bytes] | None:
        """(advertiser_id, calculate_type, content) of an uploaded file."""
        with self.lock:
            row = self.db.execute(
                "SELECT advertiser_id, calculate_type, disk_name FROM files WHERE file_path = ?",
                (file_path,),
            ).fetchone()
        if row is None:
            return None
        return row[0], row[1], (self.files_dir / row[2]).read_bytes()

    # --- offline events ----------------------------------------------------------------

    def event_set_create(self, advertiser_id: str, name: str, description: str) -> str:
        with self.transaction() as db:
            event_set_id = new_id()
            db.execute(
                "INSERT INTO event_sets VALUES (?, ?, ?, ?, ?)",
                (event_set_id, advertiser_id, name, description, time.time()),
            )
        return str(event_set_id)

    def event_sets(self, advertiser_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT event_set_id, advertiser_id, name, description, created_at FROM event_sets"
        params: tuple[Any, ...] = ()
        if advertiser_id is not None:
            sql += " WHERE advertiser_id = ?"
            params = (advertiser_id,)
        with self.lock:
            rows = self.db.execute(sql + " ORDER BY created_at", params).fetchall()
        return [
            {
                "event_set_id": str(r[0]),
                "advertiser_id": r[1],
                "name": r[2],
                "description": r[3],
                "created_at": r[4],
            }
            for r in rows
        ]

    def events_add(self, event_set_id: str, events: list[tuple[str, str, int, int, str]]) -> int:
        """Insert (event_id, event, event_time, attributed, payload); returns how many were new."""
        now = time.time()
        with self.transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(int(event_set_id), e[0], e[1], e[2], e[3], now, e[4]) for e in events],
            )
            return db.total_changes - before

    def events_of(self, event_set_id: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT event_id, event, event_time, attributed, payload FROM events "
                "WHERE event_set_id = ? ORDER BY received_at, event_id",
                (int(event_set_id),),
            ).fetchall()
        return [
            {
                "event_id": r[0],
                "event": r[1],
                "event_time": r[2],
                "attributed": bool(r[3]),
                "payload": json.loads(r[4]),
            }
            for r in rows
        ]


def split_digests(id_type: str, blob: bytes) -> list[bytes]:
    width = 16 if id_type.endswith("MD5") else 32
    return [blob[i : i + width] for i in range(0, len(blob), width)]


def _audience(row: tuple[Any, ...]) -> Audience:
    return Audience(str(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7])
