"""Identifier normalization and hashing for TikTok audiences (PRODUCT.md 5.1).

One module serves import (the customer store's computed identity columns) and delivery.
Each function returns the normalized value and its SHA-256, or None when the value cannot
be used; a value that already is a 64-hex-digit SHA-256 is passed through, lowercased.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

import phonenumbers

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# One @, no white space, a dot in the domain, no empty labels: what "looks like an email".
_EMAIL = re.compile(r"^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


class Identifier(NamedTuple):
    normalized: str
    sha256: str


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _already_hashed(value: str) -> Identifier | None:
    lowered = value.lower()
    if _SHA256.match(lowered):
        return Identifier(lowered, lowered)
    return None


def normalize_email(value: str | None) -> Identifier | None:
    if not value:
        return None
    cleaned = value.strip().lower()
    if not cleaned:
        return None
    hashed = _already_hashed(cleaned)
    if hashed:
        return hashed
    if not _EMAIL.match(cleaned):
        return None
    return Identifier(cleaned, sha256_hex(cleaned))


def normalize_phone(value: str | None, region: str | None = None) -> Identifier | None:
    """E.164 with a leading +, parsed with `region` for numbers written without a country code.

    Numbers libphonenumber does not judge valid are dropped; extensions are dropped.
    """
    if not value:
        return None
    cleaned = value.strip()
    if not cleaned:
        return None
    hashed = _already_hashed(cleaned)
    if hashed:
        return hashed
    try:
        number = phonenumbers.parse(cleaned, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    number.extension = None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Identifier(e164, sha256_hex(e164))


def normalize_device_id(value: str | None) -> Identifier | None:
    """IDFA or AAID: lowercase UUID (hyphens restored from 32 hex digits), never all zeros."""
    if not value:
        return None
    cleaned = value.strip().lower()
    if not cleaned:
        return None
    hashed = _already_hashed(cleaned)
    if hashed:
        return hashed
    if _HEX32.match(cleaned):
        cleaned = "-".join(
            (cleaned[:8], cleaned[8:12], cleaned[12:16], cleaned[16:20], cleaned[20:])
        )
    if not _UUID.match(cleaned) or cleaned == _ZERO_UUID:
        return None
    return Identifier(cleaned, sha256_hex(cleaned))


def normalize(kind: str, value: str | None, region: str | None = None) -> Identifier | None:
    """Dispatch on the identifier kind: email, phone, idfa or aaid (any case)."""
    kind = kind.lower()
    if kind == "email":
        return normalize_email(value)
    if kind == "phone":
        return normalize_phone(value, region)
    if kind in ("idfa", "aaid"):
        return normalize_device_id(value)
    raise ValueError(f"unknown identifier kind {kind!r}")
