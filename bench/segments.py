"""Segment counts on PostgreSQL with 1,000,000 customers and 5,000,000 orders.

    DEBUG=true .venv/bin/python bench/segments.py            # create data if missing, time
    DEBUG=true .venv/bin/python bench/segments.py --rebuild  # regenerate the data

Uses its own database ``bench_segments`` (created with the migrations on first run; data
from ``generate_series``, reproducible). For five representative segments it times the
count through the product (``segment_count``: compile, read-only transaction, timeout) and
the same count by hand-written SQL in the same run, then prints both and their ratio.
Each timing is the best of 3 runs after one warm-up. Targets: each count <= 1.5 s, ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = os.environ.get("BENCH_DB", "bench_segments")
BASE = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
os.environ["DATABASE_URL"] = f"{BASE}/{DB}"
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", 1_000_000))
ORDERS = int(os.environ.get("BENCH_ORDERS", 5_000_000))

GENERATE = f"""
TRUNCATE orders, devices, customers CASCADE;
INSERT INTO customers (customer_id, given_name, surname, email, phone, street, city, state,
  postal_code, country, birthdate, gender, loyalty_tier, email_opt_in, sms_opt_in,
  created_at, updated_at, email_normalized, email_sha256, phone_e164, phone_sha256)
SELECT 'C' || lpad(i::text, 8, '0'), 'Given' || (i % 997), 'Surname' || (i % 1999),
  CASE WHEN i % 10 < 8 THEN 'user' || i || '@example.com' ELSE '' END,
  CASE WHEN i % 10 < 6 THEN '+1213' || lpad((i % 10000000)::text, 7, '0') ELSE '' END,
  '', 'City' || (i % 500),
  (ARRAY['CA','NY','TX','FL','WA','IL','PA','OH','GA','NC','MI','NJ','VA','AZ','MA',
         'TN','IN','MO','MD','WI'])[1 + (hashint4(i) & 2147483647) % 20],
  '', 'US',
  CASE WHEN i % 20 = 0 THEN NULL
       ELSE DATE '1950-01-01' + ((hashint4(i + 7) & 2147483647) % 20000) END,
  (ARRAY['female','male','nonbinary',''])[1 + (hashint4(i + 3) & 2147483647) % 4],
  (ARRAY['Bronze','Silver','Gold','Platinum',''])[1 + (hashint4(i + 5) & 2147483647) % 5],
  (i % 3 = 0), (i % 4 = 0),
  now() - ((hashint4(i + 11) & 2147483647) % 2000) * interval '1 day', now(),
  CASE WHEN i % 10 < 8 THEN 'user' || i || '@example.com' ELSE '' END,
  CASE WHEN i % 10 < 8 THEN md5('e' || i) || md5('E' || i) ELSE '' END,
  CASE WHEN i % 10 < 6 THEN '+1213' || lpad((i % 10000000)::text, 7, '0') ELSE '' END,
  CASE WHEN i % 10 < 6 THEN md5('p' || i) || md5('P' || i) ELSE '' END
FROM generate_series(1, {CUSTOMERS}) AS i;
INSERT INTO devices (customer_id, kind, raw_id, normalized_id, sha256)
SELECT 'C' || lpad(i::text, 8, '0'), CASE WHEN i % 2 = 0 THEN 'IDFA' ELSE 'AAID' END,
  md5('d' || i), md5('d' || i), md5('d' || i) || md5('D' || i)
FROM generate_series(1, {CUSTOMERS}) AS i WHERE i % 3 = 0;
INSERT INTO orders (order_id, customer_id, ordered_at, channel, store, brand, product_name,
  product_category, quantity, amount, currency, is_return)
SELECT 'O' || lpad(j::text, 9, '0'),
  'C' || lpad((1 + (hashint4(j) & 2147483647) % {CUSTOMERS})::text, 8, '0'),
  now() - ((hashint4(j + 1) & 2147483647) % (4 * 365 * 24)) * interval '1 hour',
  (ARRAY['web','store','app','phone'])[1 + (hashint4(j + 2) & 2147483647) % 4],
  'Store ' || ((hashint4(j + 3) & 2147483647) % 60),
  (ARRAY['Northwind','Contoso','Fabrikam','Tailspin','Litware','Adatum'])
    [1 + (hashint4(j + 4) & 2147483647) % 6],
  'Product ' || ((hashint4(j + 5) & 2147483647) % 400),
  (ARRAY['Footwear','Bags','Apparel','Outdoor','Beauty','Home','Kids','Sports'])
    [1 + (hashint4(j + 6) & 2147483647) % 8],
  1, round((5 + (hashint4(j + 7) & 2147483647) % 50000 / 100.0)::numeric, 2), 'USD', (j % 25 = 0)
FROM generate_series(1, {ORDERS}) AS j;
VACUUM ANALYZE customers;
VACUUM ANALYZE devices;
VACUUM ANALYZE orders;
"""


def ensure_database(rebuild: bool) -> None:
    import psycopg

    with psycopg.connect(f"{BASE}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB}"')
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"], check=True, cwd=ROOT
    )
    with psycopg.connect(f"{BASE}/{DB}", autocommit=True) as conn:
        have = conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
        if rebuild or have != CUSTOMERS:
            print(f"generating {CUSTOMERS:,} customers and {ORDERS:,} orders ...", flush=True)
            started = time.perf_counter()
            for statement in GENERATE.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)


def best_of(fn, runs: int = 3) -> tuple[float, object]:
    fn()  # warm-up
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    ensure_database(args.rebuild)

    import django

    django.setup()
    from django.db import connection

    from segments.models import Segment, SegmentKind, SegmentStatus
    from segments.selectors import segment_count

    def section(*conditions, combinator="and"):
        return {"combinator": combinator, "conditions": list(conditions)}

    def attr(attribute, operator, value=None, **extra):
        return {"type": "attribute", "attribute": attribute, "operator": operator,
                "value": value, **extra}  # fmt: skip

    def definition(*sections, combinator="and", exclusions=()):
        return {"version": 1, "combinator": combinator, "sections": list(sections),
                "exclusions": {"combinator": "or", "conditions": list(exclusions)}}  # fmt: skip

    cases = [
        (
            "attributes only",
            {"definition": definition(section(
                attr("state", "in", ["CA", "NY", "TX"]), attr("loyalty_tier", "is", "Gold"),
                attr("birthdate", "more_than_ago", 30, unit="years")))},
            """SELECT COUNT(*) FROM customers WHERE state IN ('CA','NY','TX')
               AND loyalty_tier = 'Gold' AND birthdate < CURRENT_DATE - INTERVAL '30 years'""",
        ),
        (
            "attributes + purchase in a window",
            {"definition": definition(section(
                attr("loyalty_tier", "in", ["Gold", "Platinum"]),
                {"type": "purchase", "behaviour": "has_purchased",
                 "window": {"kind": "last", "amount": 90, "unit": "days"},
                 "filters": {"brand": ["Northwind"], "channel": ["web", "app"]}}))},
            """SELECT COUNT(*) FROM customers c WHERE c.loyalty_tier IN ('Gold','Platinum')
               AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id
                 AND NOT o.is_return AND o.brand = 'Northwind' AND o.channel IN ('web','app')
                 AND o.ordered_at >= now() - INTERVAL '90 days')""",
        ),
        (
            "nested OR of ANDs",
            {"definition": definition(
                section(attr("state", "is", "CA"), attr("gender", "is", "female")),
                section(attr("state", "is", "NY"), attr("loyalty_tier", "is", "Platinum")),
                section(attr("email_opt_in", "true"), attr("created_at", "within_last", 90,
                                                           unit="days")),
                combinator="or")},
            """SELECT COUNT(*) FROM customers WHERE (state = 'CA' AND gender = 'female')
               OR (state = 'NY' AND loyalty_tier = 'Platinum')
               OR (email_opt_in AND created_at >= now() - INTERVAL '90 days')""",
        ),
        (
            "SQL segment",
            {"kind": SegmentKind.SQL, "sql": """SELECT o.customer_id FROM orders o
                WHERE o.product_category = 'Footwear' AND NOT o.is_return
                GROUP BY o.customer_id HAVING SUM(o.amount) > 500"""},
            """SELECT COUNT(*) FROM (SELECT o.customer_id FROM orders o
                WHERE o.product_category = 'Footwear' AND NOT o.is_return
                GROUP BY o.customer_id HAVING SUM(o.amount) > 500) t""",
        ),
        (
            "with exclusions",
            {"definition": definition(
                section(attr("state", "in", ["CA", "TX", "FL", "WA"])),
                exclusions=[attr("email_opt_in", "false"),
                            {"type": "purchase", "behaviour": "has_purchased",
                             "window": {"kind": "last", "amount": 30, "unit": "days"}}])},
            """SELECT COUNT(*) FROM customers c WHERE c.state IN ('CA','TX','FL','WA')
               AND c.email_opt_in IS NOT FALSE
               AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id
                 AND NOT o.is_return AND o.ordered_at >= now() - INTERVAL '30 days')""",
        ),
    ]  # fmt: skip

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        pg_version = cursor.fetchone()[0].split(",")[0]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs; {pg_version}")
    print(f"data: {CUSTOMERS:,} customers, {ORDERS:,} orders")
    print(f"{'segment':36} {'count':>9} {'product s':>10} {'hand SQL s':>11} {'ratio':>6}")
    failures = 0
    Segment.objects.filter(name__startswith="bench: ").delete()
    for name, fields, hand_sql in cases:
        segment = Segment.objects.create(name=f"bench: {name}", status=SegmentStatus.ACTIVE,
                                         **fields)  # fmt: skip

        def hand(sql=hand_sql):
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchone()[0]

        product_s, product_n = best_of(lambda segment=segment: segment_count(segment))
        hand_s, hand_n = best_of(hand)
        ratio = product_s / hand_s if hand_s else float("inf")
        ok = product_n == hand_n and product_s <= 1.5 and ratio <= 1.3
        failures += not ok
        flag = "" if ok else ("  COUNTS DIFFER" if product_n != hand_n else "  over target")
        print(f"{name:36} {product_n:>9,} {product_s:>10.3f} {hand_s:>11.3f} {ratio:>6.2f}{flag}")
    Segment.objects.filter(name__startswith="bench: ").delete()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
