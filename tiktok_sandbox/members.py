"""Audience membership held in memory, rebuilt from the SQLite member log at start-up.

Why not one SQLite row per hashed id: with random (hash) keys every 10,000-person batch
dirties most pages of a multi-million-row index, so inserts slow to ~0.5 s per batch
(measured). Instead each request appends one compact row per (audience, id type) to a
log (sequential writes), and sets in memory answer "is this id already there?".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

BUCKETS = 10_000


@dataclass
class IdGroup:
    """Hashed ids of one type from one request, with a flag marking each person's first id."""

    id_type: str
    digests: list[bytes] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)


def bucket(digest: bytes) -> int:
    """Where an id falls in the synthetic TikTok user base: matched when < rate * 10,000."""
    return int.from_bytes(digest[:4], "big") % BUCKETS


@dataclass
class AudienceMembers:
    """Hashed ids per id type. A person is counted through their first id ("key")."""

    ids: dict[str, set[bytes]] = field(default_factory=dict)
    keys: dict[str, set[bytes]] = field(default_factory=dict)
    histogram: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, id_type: str, digests: Iterable[bytes], key_flags: Iterable[int]) -> int:
        members = self.ids.setdefault(id_type, set())
        keys = self.keys.setdefault(id_type, set())
        histogram = self.histogram
        added = 0
        for digest, is_key in zip(digests, key_flags, strict=True):
            if digest in members:
                continue
            members.add(digest)
            added += 1
            if is_key:
                keys.add(digest)
                histogram[int.from_bytes(digest[:4], "big") % BUCKETS] += 1
        return added

    def remove(self, id_type: str, digests: Iterable[bytes]) -> int:
        members = self.ids.get(id_type)
        if not members:
            return 0
        keys = self.keys[id_type]
        removed = 0
        for digest in digests:
            if digest not in members:
                continue
            members.discard(digest)
            removed += 1
            if digest in keys:
                keys.discard(digest)
                self.histogram[bucket(digest)] -= 1
        return removed

    def clear(self) -> None:
        self.ids.clear()
        self.keys.clear()
        self.histogram = [0] * BUCKETS

    @property
    def people(self) -> int:
        return sum(self.histogram)

    def matched(self, match_rate: float) -> int:
        return sum(self.histogram[: round(match_rate * BUCKETS)])

    def people_after(self, action: str, groups: list[IdGroup]) -> int:
        """How many people an APPEND / REMOVE / REPLACE of these ids would leave."""
        if action == "REPLACE":
            return len(
                {
                    (g.id_type, d)
                    for g in groups
                    for d, f in zip(g.digests, g.flags, strict=True)
                    if f
                }
            )
        if action == "APPEND":
            new = {
                (g.id_type, d)
                for g in groups
                for d, f in zip(g.digests, g.flags, strict=True)
                if f and d not in self.ids.get(g.id_type, ())
            }
            return self.people + len(new)
        gone = {
            (g.id_type, d) for g in groups for d in g.digests if d in self.keys.get(g.id_type, ())
        }
        return self.people - len(gone)

    def as_hex(self) -> dict[str, list[str]]:
        return {t: sorted(d.hex() for d in ids) for t, ids in self.ids.items() if ids}
