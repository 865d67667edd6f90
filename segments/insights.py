"""Insights over any members query (a segment, a campaign audience, an inline definition).

Public API: ``insights_for_sql(compiled) -> Insights``; campaign counts reuse it. Also
``breakdowns_for_sql`` (detail page charts) and ``overlap_for`` (compare up to 5 segments).
Everything is one aggregate query per call; no customer is looked at in Python.

"Reachable for TikTok" means the customer has an email hash, a phone hash or a device hash
(section 5.1); counts per identifier type are customers having that identifier.
"1-year" figures count non-return orders in the last 365 days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import combinations

from django.db import connection
from django.utils import timezone

from segments.compiler import CompiledSQL, Dialect
from segments.runner import fetch_all, fetch_one


@dataclass(frozen=True)
class Insights:
    unique: int
    active_1y: int
    revenue_1y: Decimal
    reachable: int
    email: int
    phone: int
    idfa: int
    aaid: int

    @property
    def by_identifier(self) -> list[tuple[str, int]]:
        return [
            ("Email", self.email),
            ("Phone", self.phone),
            ("IDFA", self.idfa),
            ("AAID", self.aaid),
        ]

    @property
    def reachable_percent(self) -> float:
        return 100 * self.reachable / self.unique if self.unique else 0.0


def _one_year() -> tuple[str, list]:
    return Dialect(connection.vendor).now_minus(1, "years", date_only=False)


def insights_for_sql(compiled: CompiledSQL) -> Insights:
    since, since_params = _one_year()
    sql = f"""
SELECT COUNT(*),
  SUM(CASE WHEN o.customer_id IS NOT NULL THEN 1 ELSE 0 END),
  COALESCE(SUM(o.revenue), 0),
  SUM(CASE WHEN c.email_sha256 <> '' OR c.phone_sha256 <> '' OR d.customer_id IS NOT NULL
      THEN 1 ELSE 0 END),
  SUM(CASE WHEN c.email_sha256 <> '' THEN 1 ELSE 0 END),
  SUM(CASE WHEN c.phone_sha256 <> '' THEN 1 ELSE 0 END),
  SUM(COALESCE(d.idfa, 0)),
  SUM(COALESCE(d.aaid, 0))
FROM customers c
JOIN ({compiled.sql}) m ON m.customer_id = c.customer_id
LEFT JOIN (
  SELECT customer_id, MAX(CASE WHEN kind = 'IDFA' THEN 1 ELSE 0 END) AS idfa,
         MAX(CASE WHEN kind = 'AAID' THEN 1 ELSE 0 END) AS aaid
  FROM devices WHERE sha256 <> '' GROUP BY customer_id
) d ON d.customer_id = c.customer_id
LEFT JOIN (
  SELECT customer_id, SUM(amount) AS revenue FROM orders
  WHERE NOT is_return AND ordered_at >= {since} GROUP BY customer_id
) o ON o.customer_id = c.customer_id
"""
    row = fetch_one(CompiledSQL(sql, [*compiled.params, *since_params]))
    values = [v or 0 for v in row]
    return Insights(
        unique=int(values[0]),
        active_1y=int(values[1]),
        revenue_1y=Decimal(str(values[2])).quantize(Decimal("0.01")),
        reachable=int(values[3]),
        email=int(values[4]),
        phone=int(values[5]),
        idfa=int(values[6]),
        aaid=int(values[7]),
    )


@dataclass(frozen=True)
class Breakdown:
    title: str
    rows: list[tuple[str, int]] = field(default_factory=list)

    @property
    def max(self) -> int:
        return max((n for _, n in self.rows), default=0)


AGE_BANDS = [(18, "Under 18"), (25, "18–24"), (35, "25–34"), (45, "35–44"), (55, "45–54"),
             (65, "55–64")]  # fmt: skip


def _years_ago(today: dt.date, years: int) -> dt.date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def breakdowns_for_sql(compiled: CompiledSQL, *, top: int = 10) -> list[Breakdown]:
    """Members by loyalty tier, state (top N), gender, age band and purchase channel."""
    dialect = Dialect(connection.vendor)
    members = f"JOIN ({compiled.sql}) m ON m.customer_id = c.customer_id"
    result = []
    for title, column in (("Loyalty tier", "loyalty_tier"), ("State", "state"),
                          ("Gender", "gender")):  # fmt: skip
        rows = fetch_all(
            CompiledSQL(
                f"SELECT COALESCE(NULLIF(c.{column}, ''), '(none)') AS v, COUNT(*) AS n "
                f"FROM customers c {members} GROUP BY v ORDER BY n DESC, v",
                compiled.params,
            )
        )
        shown = [(str(v), int(n)) for v, n in rows[:top]]
        rest = sum(int(n) for _, n in rows[top:])
        if rest:
            shown.append(("Other", rest))
        result.append(Breakdown(title, shown))
    today = timezone.now().date()
    cases, params = [], []
    for age, label in AGE_BANDS:
        cases.append("WHEN c.birthdate > %s THEN %s")
        params += [dialect.date_param(_years_ago(today, age)), label]
    rows = fetch_all(
        CompiledSQL(
            "SELECT CASE WHEN c.birthdate IS NULL THEN 'Unknown' "
            + " ".join(cases)
            + f" ELSE '65+' END AS band, COUNT(*) FROM customers c {members} GROUP BY band",
            params + compiled.params,
        )
    )
    counts = {str(b): int(n) for b, n in rows}
    order = [label for _, label in AGE_BANDS] + ["65+", "Unknown"]
    result.append(Breakdown("Age band", [(b, counts[b]) for b in order if counts.get(b)]))
    rows = fetch_all(
        CompiledSQL(
            "SELECT o.channel, COUNT(DISTINCT o.customer_id) AS n FROM orders o "
            f"JOIN ({compiled.sql}) m ON m.customer_id = o.customer_id "
            "WHERE NOT o.is_return GROUP BY o.channel ORDER BY n DESC",
            compiled.params,
        )
    )
    result.append(Breakdown("Purchase channel (customers)", [(str(v), int(n)) for v, n in rows]))
    return result


@dataclass(frozen=True)
class Overlap:
    labels: list[str]
    sizes: list[int]
    union: int
    pairs: dict[tuple[int, int], int]
    regions: list[tuple[list[str], int]]  # exact Venn regions: (segments, customers)

    def matrix(self) -> list[tuple[str, list[tuple[int, float]]]]:
        rows = []
        for i, label in enumerate(self.labels):
            cells = []
            for j in range(len(self.labels)):
                n = self.sizes[i] if i == j else self.pairs[(min(i, j), max(i, j))]
                cells.append((n, 100 * n / self.sizes[i] if self.sizes[i] else 0.0))
            rows.append((label, cells))
        return rows


MAX_COMPARE = 5


def overlap_for(items: list[tuple[str, CompiledSQL]]) -> Overlap:
    """Exact overlap of up to 5 member sets, in one query over a bitmask per customer."""
    if not 1 <= len(items) <= MAX_COMPARE:
        raise ValueError(f"Compare between 1 and {MAX_COMPARE} segments.")
    parts, params = [], []
    for i, (_label, compiled) in enumerate(items):
        parts.append(f"SELECT s{i}.customer_id, {1 << i} AS bit FROM ({compiled.sql}) s{i}")
        params += compiled.params
    sql = (
        "SELECT mask, COUNT(*) FROM (SELECT u.customer_id, SUM(u.bit) AS mask FROM ("
        + " UNION ALL ".join(parts)
        + ") u GROUP BY u.customer_id) t GROUP BY mask"
    )
    masks = {int(mask): int(n) for mask, n in fetch_all(CompiledSQL(sql, params))}
    labels = [label for label, _ in items]
    n = len(items)
    sizes = [sum(c for m, c in masks.items() if m & (1 << i)) for i in range(n)]
    pairs = {
        (i, j): sum(c for m, c in masks.items() if m & (1 << i) and m & (1 << j))
        for i, j in combinations(range(n), 2)
    }
    regions = sorted(
        (([labels[i] for i in range(n) if m & (1 << i)], c) for m, c in masks.items()),
        key=lambda r: (-len(r[0]), -r[1]),
    )
    return Overlap(labels, sizes, sum(masks.values()), pairs, regions)
