"""The import's phone fast path must give exactly normalize_phone's answers."""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

import customers.phones as phones_module
from customers.demo import DemoGenerator
from customers.phones import PhoneNormalizer
from destinations.tiktok.normalize import normalize_phone

VECTORS = Path(__file__).resolve().parents[1] / "testdata" / "normalization_vectors.csv"
TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.VOIP,
)


def assert_same(cases, fast=None):
    fast = fast or PhoneNormalizer()
    differences = [
        (value, region, fast.normalize(value, region), normalize_phone(value, region))
        for value, region in cases
        if fast.normalize(value, region) != normalize_phone(value, region)
    ]
    assert not differences, differences[:20]


def _mutations(rng: random.Random, digits: str) -> list[str]:
    """The number, and damaged copies: a digit changed, one dropped, one added, prefixes."""
    i = rng.randrange(len(digits))
    return [
        digits,
        digits[:i] + str(rng.randint(0, 9)) + digits[i + 1 :],
        digits[:i] + digits[i + 1 :],
        digits + str(rng.randint(0, 9)),
        "0" + digits,
        "1" + digits,
        digits[: max(1, len(digits) // 2)],
    ]


def _written(rng: random.Random, number: phonenumbers.PhoneNumber, region: str) -> list[str]:
    """The ways people write a number: national, international, E.164, with an IDD, dotted..."""
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    nsn = phonenumbers.national_significant_number(number)
    code = str(number.country_code)
    written = [national, international, e164, e164[1:], nsn, code + nsn, f"00{code}{nsn}"]
    written += [f"011 {code} {nsn}", f"({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}", ".".join(nsn)]
    written += [f"{international} x{rng.randint(1, 9999)}", f"{national}x{rng.randint(1, 99)}"]
    written += [f"+{code}-{nsn}", f"+ {code} {nsn}", f"(+{code}) {nsn}", f"-{nsn}-"]
    written += ["+" + m for m in _mutations(rng, code + nsn)]
    written += _mutations(rng, nsn)
    return written


def test_fast_path_agrees_on_every_region_type_and_way_of_writing():
    rng = random.Random(20250101)
    cases = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for value in _written(rng, example, region):
                for parse_region in (region, "US", "GB", "", "XX", "de"):
                    cases.append((value, parse_region))
    assert len(cases) > 50_000
    assert_same(cases)


def test_fast_path_agrees_on_random_digits_in_common_regions():
    rng = random.Random(7)
    regions = ("US", "CA", "GB", "DE", "FR", "IN", "AU", "MX", "ES", "IT", "BR", "JP", "RU")
    cases = []
    for _ in range(20_000):
        length = rng.randint(3, 16)
        digits = "".join(rng.choice("0123456789") for _ in range(length))
        prefix = rng.choice(("", "+", "0", "00", "011", "1", "(", "+1 ", "+44 "))
        cases.append((prefix + digits, rng.choice(regions)))
    assert_same(cases)


def test_fast_path_agrees_with_normalize_phone_on_generated_demo_numbers():
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
    assert_same(cases, fast)


def test_fast_path_agrees_on_odd_inputs():
    cases = [
        ("(415) 555-2671", "US"),
        ("415.555.2671", "US"),
        ("+1 415 555 2671 ext. 12", "US"),
        ("+1 415 555 2671 x", "US"),
        ("+1 415 555 2671 x1234567890", "US"),
        ("415 555 2671 X 12", "US"),
        ("1-800-FLOWERS", "US"),
        ("+44 (0)20 7946 0958", "FR"),
        ("  ", "US"),
        ("()", "US"),
        ("12", "US"),
        ("+12", "US"),
        ("x12", "US"),
        ("(+44) 20 7946 0958", "US"),
        ("0044 20 7946 0958", "DE"),
        ("00 0044 20 7946 0958", "DE"),
        ("011 44 20 7946 0958", "US"),
        ("011 0", "US"),
        ("+0 415 555 2671", "US"),
        ("+999 415 555 2671", "US"),
        ("+800 1234 5678", "US"),
        ("+882 1234 5678", "GB"),
        ("4155552671", None),
        ("4155552671", "us"),
        ("+14155552671", "ZZ"),
        ("1" * 64, "US"),
        ("1" * 20, "US"),
        ("+39 06 1234 5678", "IT"),
        ("06 1234 5678", "IT"),
        ("+1 684 633 1234", "US"),
        ("+1 809 555 1234", "US"),
        ("+7 7012 345678", "RU"),
        ("8 (7012) 345678", "KZ"),
        ("+262 269 61 1234", "FR"),
        ("+61 8 9162 1234", "AU"),
        ("555-PHONE", "US"),
        ("+1 (000) 111-2222", "US"),
        ("4155552671;ext=12", "US"),
        ("4155552671#", "US"),
        ("415 555 2671 / x12", "US"),
    ]
    assert_same(cases)


def test_fast_path_uses_libphonenumber_only_for_unusual_shapes(monkeypatch):
    calls = []

    def counting(value, region=None):
        calls.append(value)
        return normalize_phone(value, region)

    monkeypatch.setattr(phones_module, "normalize_phone", counting)
    fast = PhoneNormalizer()
    for value in ("(415) 555-2671", "+1-415-555-2672 x123", "+44 7911 123456", "0301234567"):
        fast.normalize(value, "US")
    assert calls == []
    fast.normalize("1-800-FLOWERS", "US")
    assert calls == ["1-800-FLOWERS"]


def test_fast_path_agrees_with_the_shared_vectors_for_phones():
    assert VECTORS.exists(), f"the normalization vectors are missing at {VECTORS}"
    with open(VECTORS, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("kind", "").lower() == "phone"]
    assert rows
    fast = PhoneNormalizer()
    for row in rows:
        region = row.get("region") or None
        assert fast.normalize(row["input"], region) == normalize_phone(row["input"], region)
