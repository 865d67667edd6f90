"""The reader hands workers raw runs of lines where it can: the rows and row numbers must be
exactly those of csv.reader over the whole file."""

from __future__ import annotations

import csv
import io
import random

import pytest

from customers.loading import NUL_BYTE, UNBALANCED_QUOTES, MalformedFile, _rows_of, _Source

FIELDS = ("plain", "", "  spaced  ", "comma,inside", 'say "hi"', "two\nlines", "cr\rhere")
FIELDS += ("crlf\r\ninside", "é ü 漢字 😀", '"', "trailing\\", "\t tab")


def reference(path):
    """The rows as the import read them before: csv.reader over the decoded file."""
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        next(reader)
        rows, row_no = [], 1
        for cells in reader:
            row_no += 1
            if cells and not (len(cells) == 1 and not cells[0].strip()):
                rows.append((row_no, cells))
        return rows


def read_with_errors(path, block):
    """(rows, errors of unreadable rows) as the import reads them."""
    source = _Source(path, block)
    rows, errors = [], []
    try:
        for work in source.work(3):
            good, bad = _rows_of(work)
            rows += good
            errors += bad
    finally:
        source.close()
    return rows, errors


def read(path, block):
    rows, errors = read_with_errors(path, block)
    assert errors == []
    return rows


def random_csv(rng: random.Random, quoted_share: float) -> bytes:
    out = io.StringIO()
    terminator = rng.choice(("\n", "\r\n"))
    writer = csv.writer(out, lineterminator=terminator)
    writer.writerow(["customer_id", "name", "note"])
    for n in range(300):
        roll = rng.random()
        if roll < 0.05:
            out.write(terminator)  # a blank line
            continue
        fancy = rng.random() < quoted_share
        note = rng.choice(FIELDS) if fancy else rng.choice(("a", "b c", "é", ""))
        cells = [f"C{n}", rng.choice(("Ann", "Bo", "Zoë")), note]
        if roll < 0.08:
            cells = cells[:2]  # a short row stays a row
        writer.writerow(cells)
    text = out.getvalue()
    if rng.random() < 0.5:
        text = text.rstrip("\r\n")  # no line end after the last row
    data = text.encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if rng.random() < 0.3 else data


@pytest.mark.parametrize("quoted_share", [0.0, 0.02, 0.3])
@pytest.mark.parametrize("block", [5, 64, 1000, 1 << 20])
def test_rows_and_row_numbers_match_csv_reader_over_the_whole_file(tmp_path, quoted_share, block):
    rng = random.Random(f"{quoted_share}-{block}")
    for attempt in range(8):
        path = tmp_path / f"f{attempt}.csv"
        path.write_bytes(random_csv(rng, quoted_share))
        assert read(path, block) == reference(path), attempt


def test_lone_carriage_returns_end_lines_like_csv_reader(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"customer_id,state\rC1,CA\rC2,NY\r\rC3,TX\n\r\nC4,WA")
    for block in (1, 3, 100):
        assert read(path, block) == reference(path)
    assert [r[0] for r in reference(path)] == [2, 3, 5, 7]


def test_a_file_with_only_carriage_returns_is_read_in_bounded_pieces(tmp_path):
    path = tmp_path / "old-mac.csv"
    path.write_bytes(b"customer_id,state\r" + b"".join(b"C%d,CA\r" % n for n in range(500)))
    source = _Source(path, 64)
    try:
        rows = []
        for work in source.work(10):
            assert len(source.buffer) <= 3 * 64
            rows += _rows_of(work)[0]
    finally:
        source.close()
    assert rows == reference(path) and len(rows) == 500


@pytest.mark.parametrize("block", [4, 4096])
def test_a_bad_byte_is_reported_near_its_row(tmp_path, block):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"customer_id,state\nC1,CA\nC2,NY\nC3,\xff\nC4,WA\n")
    with pytest.raises(MalformedFile, match="not UTF-8 text \\(invalid byte near row 4\\)"):
        read(path, block)


@pytest.mark.parametrize("block", [3, 1 << 20])
def test_a_row_with_a_nul_byte_is_a_bad_row_and_the_others_are_read(tmp_path, block):
    path = tmp_path / "nul.csv"
    path.write_bytes(b'customer_id,state\nC1,CA\nC2,\x00\x00\nC3,"N\x00Y"\nC4,TX\n')
    rows, errors = read_with_errors(path, block)
    assert rows == [(2, ["C1", "CA"]), (5, ["C4", "TX"])]
    assert errors == [(3, "", "", NUL_BYTE), (4, "", "", NUL_BYTE)]


@pytest.mark.parametrize("block", [4, 64, 1 << 20])
def test_an_unclosed_quote_is_one_bad_row_and_the_lines_after_it_are_read(tmp_path, block):
    path = tmp_path / "quote.csv"
    lines = ["customer_id,state", 'C1,"CA', "C2,NY", "C3,TX", 'C4,"W"A', "C5,OR", 'C6,"O', "C7,UT"]
    path.write_bytes("\n".join(lines).encode())
    rows, errors = read_with_errors(path, block)
    assert rows == [(3, ["C2", "NY"]), (4, ["C3", "TX"]), (6, ["C5", "OR"]), (8, ["C7", "UT"])]
    assert errors == [(n, "", "", UNBALANCED_QUOTES) for n in (2, 5, 7)]


def test_a_quoted_field_over_several_lines_is_still_one_row(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_bytes(b'customer_id,street\r\nC1,"1 Main St\r\nApt 2"\r\nC2,"x ""y"""\r\n')
    for block in (2, 1 << 20):
        assert read(path, block) == [(2, ["C1", "1 Main St\r\nApt 2"]), (3, ["C2", 'x "y"'])]


def test_a_field_over_the_csv_size_limit_is_a_bad_row(tmp_path):
    path = tmp_path / "long.csv"
    long = b"x" * (csv.field_size_limit() + 10)
    path.write_bytes(b"customer_id,state\nC1,CA\nC2," + long + b"\nC3,TX\n")
    for block in (1000, 1 << 20):
        rows, errors = read_with_errors(path, block)
        assert rows == [(2, ["C1", "CA"]), (4, ["C3", "TX"])]
        assert [(row, reason.startswith("a field is longer")) for row, _, _, reason in errors] == [
            (3, True)
        ]
