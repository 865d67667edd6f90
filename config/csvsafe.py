"""CSV files that are safe to open in a spreadsheet.

Excel, LibreOffice and Google Sheets run a cell that starts with `=`, `+`, `-` or `@` as a
formula (a tab or carriage return in front is skipped, so those count too), which lets a
value someone typed into an imported file call out to the network or run a command on the
machine of whoever opens an export ("CSV injection"). OWASP's advice is to prefix such a
cell with a single quote, which makes the spreadsheet show it as text:
https://owasp.org/www-community/attacks/CSV_Injection

Every CSV the product serves or writes for people goes through `writer()`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value, prefixed with a single quote when a spreadsheet would run it."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose rows have every cell passed through `safe_cell`."""

    def __init__(self, out: Any, **kwargs: Any) -> None:
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: Any, **kwargs: Any) -> SafeWriter:
    """A csv.writer for a file people open (same arguments), safe in spreadsheets."""
    return SafeWriter(out, **kwargs)


class Echo:
    """A file that hands back what is written, for streaming a CSV response row by row."""

    def write(self, value: str) -> str:
        return value
