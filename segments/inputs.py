"""Shape checks for untrusted input, run before it reaches the compiler or the database.

A definition arrives as JSON from the browser (the segment editor, campaign sub-audience
criteria, live insights). Before anything compiles or stores it, it must be a tree of
bounded depth whose strings PostgreSQL can store (no NUL, no lone surrogates) and whose
numbers are finite and of a sane size. Each check raises ``InputRejected`` with a message
for a person; messages never repeat the offending value.
"""

from __future__ import annotations

import math
import re
from typing import Any

# Deeper than any definition the editor builds (definition → sections → section →
# conditions → condition → window/filters → list: 7 levels).
MAX_DEPTH = 20
# Beyond this a number is a typo or an attack; both SQLite (64-bit integers) and the
# compiler's Decimal handling stay far away from their limits.
MAX_ABS_NUMBER = 10**15

_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


class InputRejected(ValueError):
    """Input that cannot be used as given; the message is for the user."""


def text_problem(value: str) -> str | None:
    """Why a piece of text cannot be stored, or None when it can."""
    match = _BAD_CHARS.search(value)
    if match is None:
        return None
    if match.group() == "\x00":
        return "contains a NUL character"
    return "contains characters that are not valid Unicode"


def check_text(value: str, *, what: str) -> str:
    """`value`, or InputRejected naming `what` when it holds a NUL or a lone surrogate."""
    problem = text_problem(value)
    if problem:
        raise InputRejected(f"The {what} {problem}; remove it and try again.")
    return value


def check_definition_shape(value: Any) -> None:
    """Raise InputRejected unless `value` is a JSON tree within the limits above.

    Walks the tree without recursion, so a hostile depth cannot exhaust the stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise InputRejected(
                    f"The definition is nested too deeply (at most {MAX_DEPTH} levels)."
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InputRejected("The definition's keys must be text.")
                    _check_string(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_string(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_ABS_NUMBER:
                raise InputRejected(_number_message())
        elif isinstance(item, float):
            if not math.isfinite(item) or abs(item) > MAX_ABS_NUMBER:
                raise InputRejected(_number_message())
        else:
            raise InputRejected("The definition holds a value of an unsupported type.")


def _check_string(value: str) -> None:
    problem = text_problem(value)
    if problem:
        raise InputRejected(f"A value in the definition {problem}; remove it and try again.")


def _number_message() -> str:
    return f"Numbers in a definition must be finite and at most {MAX_ABS_NUMBER:,}."
