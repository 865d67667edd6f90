from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from destinations.tiktok.normalize import normalize, normalize_email, sha256_hex

# A copy of the shared vectors kept in the project (tests/testdata/README.md says where from).
VECTORS = Path(__file__).resolve().parents[1] / "testdata" / "normalization_vectors.csv"


def _vectors() -> list[dict[str, str]]:
    with VECTORS.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_the_vector_file_is_present_and_not_empty():
    assert len(_vectors()) >= 30


@pytest.mark.parametrize("row", _vectors(), ids=lambda r: f"{r['kind']}:{r['input']!r}")
def test_each_vector_normalizes_and_hashes_as_specified(row):
    result = normalize(row["kind"], row["input"], row["region"] or None)
    if row["normalized"] == "":
        assert result is None
    else:
        assert result is not None
        assert result.normalized == row["normalized"]
        assert result.sha256 == row["sha256"]


def test_spec_examples_hash_to_the_documented_values():
    assert sha256_hex("+12133734253") == (
        "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd"
    )


@given(st.text(max_size=40))
def test_email_normalization_is_idempotent(text):
    first = normalize_email(text)
    if first is not None:
        again = normalize_email(first.normalized)
        assert again is not None and again.sha256 == first.sha256


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown identifier kind"):
        normalize("fax", "123")
