from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from customers.demo import DemoGenerator
from customers.phones import PhoneNormalizer
from destinations.tiktok.normalize import normalize_phone

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "normalization_vectors.csv"


def test_fast_path_agrees_with_normalize_phone_on_generated_numbers():
    generator = DemoGenerator(seed=3, today=dt.date(2025, 1, 1))
    fast = PhoneNormalizer(cache_size=500)  # small: exercises cache clearing too
    cases = [
        (generator.phone("US", (415, 212, 907)), r)
        for r in ("US", "CA", "GB", "")
        for _ in range(800)
    ]
    cases += [
        (generator.phone(c, ()), r)
        for c in ("GB", "DE", "FR", "IN", "AU", "MX", "ES")
        for r in (c, "US")
        for _ in range(300)
    ]
    cases += [
        ("(415) 555-2671", "US"),
        ("415.555.2671", "US"),
        ("+1 415 555 2671 ext. 12", "US"),
        ("1-800-FLOWERS", "US"),
        ("+44 (0)20 7946 0958", "FR"),
        ("  ", "US"),
        ("()", "US"),
        ("(+44) 20 7946 0958", "US"),
        ("0044 20 7946 0958", "DE"),
        ("011 44 20 7946 0958", "US"),
    ]
    for value, region in cases:
        assert fast.normalize(value, region) == normalize_phone(value, region), (value, region)


def test_fast_path_agrees_with_the_shared_vectors_for_phones():
    if not VECTORS.exists():
        pytest.skip(f"no shared vectors at {VECTORS}")
    with open(VECTORS, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("kind", "").lower() == "phone"]
    assert rows
    fast = PhoneNormalizer()
    for row in rows:
        region = row.get("region") or None
        assert fast.normalize(row["input"], region) == normalize_phone(row["input"], region)
