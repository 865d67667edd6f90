"""Phone normalization for bulk import: the same answers as normalize_phone, faster.

Phone parsing is most of the cost of a customer import (about 30 us a number with
libphonenumber's pure-Python port, against a few us for everything else in a row). Two
exact shortcuts, both checked against `normalize_phone` in tests/customers/test_phones.py:

* A cache keyed by (region, the number's digits with its leading +) when the number is
  written only with digits, spaces, dots, hyphens and parentheses. libphonenumber
  removes exactly that punctuation before it looks at the digits, so every formatting of
  one number gets one answer; letters, '#', '/', 'x' or ';' (vanity numbers and
  extensions) skip the cache.
* Validity: `is_valid_number` looks up which of the regions sharing a country code the
  number belongs to (for +1 that walks up to 25 NANP regions). When the customer's region
  is the main region of the number's country code and that region has no leading-digits
  rule, `is_valid_number_for_region` gives the same answer directly, because the main
  region is the first one `region_code_for_number` would try.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberFormat

from destinations.tiktok.normalize import Identifier, normalize_phone, sha256_hex

_SIMPLE = re.compile(r"^\+?[0-9 ().\-]+$")
_PUNCTUATION = str.maketrans("", "", " ().-")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _main_region_without_leading_digits(country_code: int) -> str | None:
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if metadata is None or metadata.leading_digits is not None:
        return None
    return region


class PhoneNormalizer:
    """Normalizes phones like destinations.tiktok.normalize.normalize_phone, with a cache."""

    def __init__(self, cache_size: int = 100_000) -> None:
        self._cache: dict[str, Identifier | None] = {}
        self._cache_size = cache_size
        self._main_region: dict[int, str | None] = {}

    def normalize(self, value: str | None, region: str | None) -> Identifier | None:
        if not value:
            return None
        cleaned = value.strip()
        if not _SIMPLE.match(cleaned):
            return normalize_phone(value, region)
        region = (region or "").upper()
        key = f"{region}|{cleaned.translate(_PUNCTUATION)}"
        try:
            return self._cache[key]
        except KeyError:
            pass
        result = self._parse(cleaned, region)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # bounded memory; a fresh cache refills from the next rows
        self._cache[key] = result
        return result

    def _parse(self, cleaned: str, region: str) -> Identifier | None:
        if _SHA256.match(cleaned):
            return Identifier(cleaned.lower(), cleaned.lower())
        try:
            number = phonenumbers.parse(cleaned, region or None)
        except phonenumbers.NumberParseException:
            return None
        code = number.country_code
        if code not in self._main_region:
            self._main_region[code] = _main_region_without_leading_digits(code)
        # The shortcut can only say yes: a number valid in another region sharing the code
        # (a Canadian number parsed with region US) still needs the full check.
        shortcut = self._main_region[code] == region != "" and (
            phonenumbers.is_valid_number_for_region(number, region)
        )
        if not shortcut and not phonenumbers.is_valid_number(number):
            return None
        number.extension = None
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        return Identifier(e164, sha256_hex(e164))
