from __future__ import annotations

from pathlib import Path

import pytest

from customers.csv_columns import ImportKind
from customers.services import customers_import_file


@pytest.fixture
def write_csv(tmp_path):
    def _write(text: str | bytes, name: str = "data.csv") -> Path:
        path = tmp_path / name
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8")
        else:
            path.write_bytes(text)
        return path

    return _write


@pytest.fixture
def run_import(tmp_path):
    """Import a file; returns (result, error rows as lists)."""

    def _run(kind: ImportKind, path: Path, **kwargs):
        report = tmp_path / f"{path.stem}.errors.csv"
        result = customers_import_file(kind=kind, path=path, error_report=report, **kwargs)
        lines = report.read_text(encoding="utf-8").splitlines()[1:] if report.exists() else []
        import csv

        return result, list(csv.reader(lines))

    return _run
