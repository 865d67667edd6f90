"""Database errors from segment SQL, in a person's words, without the data in them.

A database's error text can carry values from the data: PostgreSQL's
``invalid input syntax for type integer: "alice@example.com"`` quotes the value it could not
convert, so a query that casts a column to a number reads that column out through the error.
``explain_database_error`` therefore never shows the database's text. It classifies the
error (PostgreSQL by SQLSTATE, SQLite by its fixed message prefixes) and writes its own
message. The only thing it may quote is a name the person wrote (a column, table or function
named in the error), and only when that name appears in the submitted SQL.

Positions: PostgreSQL reports ``statement_position``, a 1-based character offset into the
statement that ran. That statement usually wraps the person's query, and the query in it is
the checked re-rendering (``CheckedSQL.query``), not the text the person typed. Pass:

- ``sql``: the person's SQL (messages and line/column refer to it);
- ``ran``: the query text as it was embedded in the statement (``CheckedSQL.query``, or
  ``sql`` itself when the person's SQL ran verbatim). Without it the reported offset is
  not used (it could point anywhere in ``sql``);
- ``offset``: how many characters precede ``ran`` in the executed statement (``0`` when the
  statement is the query itself; ``len(prefix)`` for ``prefix + query + suffix``).

Call it as::

    try:
        cursor.execute(prefix + checked.query + suffix)
    except DatabaseError as exc:
        message, line, column = explain_database_error(
            exc, sql=person_sql, vendor=connection.vendor, timeout_ms=limit,
            ran=checked.query, offset=len(prefix),
        )

The word at the reported offset of ``ran`` is mapped to the same occurrence of that word in
``sql``. SQLite reports no positions; then, and whenever the offset falls outside the
person's query, the named column, table or function is located in ``sql`` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NAME = 63
GENERIC = "The database could not run this query."

# PostgreSQL SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
UNDEFINED_COLUMN = "42703"
UNDEFINED_TABLE = "42P01"
UNDEFINED_FUNCTION = "42883"
AMBIGUOUS_COLUMN = "42702"
AMBIGUOUS_FUNCTION = "42725"
GROUPING_ERROR = "42803"
SYNTAX_ERROR = "42601"
DATATYPE_MISMATCH = "42804"
INDETERMINATE_DATATYPE = "42P18"
INSUFFICIENT_PRIVILEGE = "42501"
READ_ONLY_TRANSACTION = "25006"
QUERY_CANCELED = "57014"
DIVISION_BY_ZERO = "22012"
NUMERIC_OUT_OF_RANGE = "22003"
INVALID_TEXT_REPRESENTATION = "22P02"
CARDINALITY_VIOLATION = "21000"
INVALID_RECURSION = "42P19"
WINDOWING_ERROR = "42P20"
STATEMENT_TOO_COMPLEX = "54001"

_DATETIME_CODES = {"22007", "22008", "22009", "2200D", "22015"}


@dataclass(frozen=True)
class _Failure:
    vendor: str
    code: str  # SQLSTATE on PostgreSQL; "" on SQLite
    text: str  # the database's message: read to classify, never shown
    position: int | None  # 1-based character offset into the executed statement


def _failure(exc: BaseException, vendor: str) -> _Failure:
    """The driver's error under Django's wrapper (``DatabaseError.__cause__``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    chain: list[BaseException] = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in chain:
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if code:
            diag = getattr(error, "diag", None)
            raw = getattr(diag, "statement_position", None) if diag is not None else None
            primary = getattr(diag, "message_primary", None) if diag is not None else None
            position = int(raw) if raw and str(raw).isdigit() else None
            return _Failure("postgresql", str(code), str(primary or error), position)
    text = " ".join(str(e) for e in chain[:1]).strip()
    return _Failure(vendor, "", text, None)


def _find(name: str, sql: str) -> re.Match[str] | None:
    if not name or len(name) > MAX_NAME * 2 + 1:
        return None
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", sql, re.I)


def _user_name(candidate: str | None, sql: str) -> str:
    """``candidate`` if the person wrote it (whole, or its last dotted part), else ""."""
    if not candidate:
        return ""
    candidate = candidate.strip().strip('"').strip()
    if not candidate or len(candidate) > MAX_NAME * 2 + 1:
        return ""
    for option in (candidate, candidate.replace('"', ""), candidate.split(".")[-1]):
        found = _find(option, sql)
        if found is not None:
            return found.group(0)  # as the person wrote it
    return ""


def _line_column(sql: str, offset: int) -> tuple[int, int]:
    before = sql[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _locate(sql: str, name: str) -> tuple[int | None, int | None]:
    if not name:
        return None, None
    match = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", sql, re.I) or re.search(
        rf"(?<!\w){re.escape(name)}(?!\w)", sql, re.I
    )
    return _line_column(sql, match.start()) if match else (None, None)


_WORD = re.compile(r"\w+|\"[^\"]*\"|'[^']*'|\S")


def _map_position(
    position: int | None, *, sql: str, ran: str | None, offset: int
) -> tuple[int | None, int | None]:
    """Line and column in ``sql`` of a 1-based offset into the executed statement."""
    if position is None or ran is None:
        return None, None
    index = position - 1 - offset
    text = ran
    if not 0 <= index < len(text):
        return None, None
    if ran == sql:
        return _line_column(sql, index)
    match = next((m for m in _WORD.finditer(text) if m.start() <= index < m.end()), None)
    if match is None:
        following = _WORD.search(text, index)
        if following is None:
            return None, None
        match = following
    word = match.group(0)
    pattern = re.compile(
        rf"(?<!\w){re.escape(word)}(?!\w)"
        if word[0].isalnum() or word[0] == "_"
        else re.escape(word),
        re.I,
    )
    nth = sum(1 for m in pattern.finditer(text) if m.start() < match.start())
    in_sql = list(pattern.finditer(sql))
    if not in_sql:
        return None, None
    chosen = in_sql[nth] if nth < len(in_sql) else in_sql[0]
    return _line_column(sql, chosen.start())


def _quoted(text: str, patterns: tuple[str, ...]) -> str | None:
    for pattern in patterns:
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    return None


def _classify_postgres(failure: _Failure, sql: str, timeout_ms: int) -> tuple[str, str]:
    """(message, name to locate) for a PostgreSQL error."""
    code, text = failure.code, failure.text
    if code == UNDEFINED_COLUMN:
        name = _user_name(_quoted(text, (r'column "?([^"]+?)"? does not exist',)), sql)
        if name:
            return f"Column “{name}” does not exist (check its spelling and its table).", name
        return "A column in the query does not exist (check spelling and tables).", ""
    if code == UNDEFINED_TABLE:
        name = _user_name(_quoted(text, (r'relation "([^"]+)" does not exist',)), sql)
        if name:
            return (
                f"Table “{name}” does not exist; use customers, devices or orders.",
                name,
            )
        return "A table in the query does not exist; use customers, devices or orders.", ""
    if code == UNDEFINED_FUNCTION and text.startswith("operator does not exist"):
        return (
            "Values of different types are compared or combined "
            "(type mismatch): add a CAST to make them the same type.",
            "",
        )
    if code == UNDEFINED_FUNCTION:
        name = _user_name(_quoted(text, (r"function ([\w.]+)\(",)), sql)
        if name:
            return (
                f"Function {name}() does not exist, or not for these types of values.",
                name,
            )
        return "A function in the query does not exist, or not for these types of values.", ""
    if code in (AMBIGUOUS_COLUMN,):
        name = _user_name(_quoted(text, (r'column reference "([^"]+)" is ambiguous',)), sql)
        if name:
            return (
                f"Column “{name}” is ambiguous: prefix it with its table (for example c.{name}).",
                name,
            )
        return "A column name is ambiguous: prefix it with its table (for example c.name).", ""
    if code == AMBIGUOUS_FUNCTION:
        return "A function call is ambiguous: add a CAST to its arguments.", ""
    if code == GROUPING_ERROR:
        name = _user_name(_quoted(text, (r'column "([^"]+)" must appear',)), sql)
        if name:
            return (
                f"Column “{name}” must be in GROUP BY or inside an aggregate such as "
                "MAX() or COUNT().",
                name,
            )
        return (
            "An aggregate or GROUP BY is used wrongly: each selected column must be in "
            "GROUP BY or inside an aggregate, and aggregates cannot be used in WHERE.",
            "",
        )
    if code == WINDOWING_ERROR:
        return "A window function is used where it is not allowed (e.g. in WHERE).", ""
    if code == SYNTAX_ERROR:
        return "Syntax error: the database could not read the query here.", ""
    if code in (DATATYPE_MISMATCH, INDETERMINATE_DATATYPE):
        return "Values of different types are mixed (type mismatch): add a CAST.", ""
    if code == INVALID_TEXT_REPRESENTATION:
        return (
            "A value could not be converted to the type asked for (type mismatch), "
            "for example text to a number.",
            "",
        )
    if code == NUMERIC_OUT_OF_RANGE:
        return "A number is out of range for its type.", ""
    if code == DIVISION_BY_ZERO:
        return "The query divides by zero (use NULLIF(divisor, 0)).", ""
    if code in _DATETIME_CODES:
        return "A value could not be used as a date or time (type mismatch or out of range).", ""
    if code == CARDINALITY_VIOLATION:
        return "A subquery used as a single value returned more than one row.", ""
    if code == INVALID_RECURSION:
        return "The recursive WITH query is not written the way the database allows.", ""
    if code == QUERY_CANCELED and "user request" in text:
        return "The query was stopped (a newer one replaced it, or it was cancelled).", ""
    if code == QUERY_CANCELED:
        return _timeout(timeout_ms), ""
    if code == READ_ONLY_TRANSACTION:
        return "The query tried to change data; segments only read.", ""
    if code == INSUFFICIENT_PRIVILEGE:
        return _not_allowed(), ""
    if code == STATEMENT_TOO_COMPLEX or code.startswith("53") or code.startswith("54"):
        return "The query is too large or needs too many resources; simplify it.", ""
    if code.startswith("22"):
        return "A value could not be used as written (type mismatch or out of range).", ""
    if code.startswith("0A"):
        return "The query uses a feature the database does not support here.", ""
    return GENERIC, ""


_SQLITE_NAMED = (
    (r"^no such column: (.+)$", "column"),
    (r"^no such table: (.+)$", "table"),
    (r"^no such function: (.+)$", "function"),
    (r"^wrong number of arguments to function (\w+)\(\)", "arguments"),
    (r"^ambiguous column name: (.+)$", "ambiguous"),
    (r"^misuse of aggregate(?: function)?:? ?(\w*)", "aggregate"),
    (r"^misuse of window function (\w+)\(\)", "window"),
    (r"^circular reference: (.+)$", "circular"),
)


def _classify_sqlite(failure: _Failure, sql: str, timeout_ms: int) -> tuple[str, str]:
    text = failure.text.strip()
    lower = text.lower()
    if lower.startswith("interrupted"):
        return _timeout(timeout_ms), ""
    if "readonly" in lower or "read-only" in lower or lower.startswith("attempt to write"):
        return "The query tried to change data; segments only read.", ""
    if lower.startswith("not authorized") or re.match(r"^access to .* is prohibited", lower):
        return _not_allowed(), ""
    for pattern, kind in _SQLITE_NAMED:
        match = re.match(pattern, text, re.I)
        if not match:
            continue
        name = _user_name(match.group(1), sql)
        return _sqlite_named(kind, name), name
    if "syntax error" in lower or lower.startswith(("unrecognized token", "incomplete input")):
        near = _quoted(text, (r'near "([^"]*)": syntax error',))
        name = _user_name(near, sql)
        if name:
            return f"Syntax error near “{name}”.", name
        return "Syntax error: the database could not read the query.", ""
    if "group by" in lower or "aggregate" in lower:
        return (
            "An aggregate or GROUP BY is used wrongly: each selected column must be in "
            "GROUP BY or inside an aggregate, and aggregates cannot be used in WHERE.",
            "",
        )
    if "datatype mismatch" in lower:
        return "Values of different types are mixed (type mismatch): add a CAST.", ""
    if "integer overflow" in lower:
        return "A number is out of range for its type.", ""
    if (
        "too big" in lower
        or "out of memory" in lower
        or "too large" in lower
        or ("too many" in lower)
        or "stack overflow" in lower
        or "too deep" in lower
    ):
        return "The query is too large or needs too many resources; simplify it.", ""
    if "returned more than one row" in lower:
        return "A subquery used as a single value returned more than one row.", ""
    return GENERIC, ""


def _sqlite_named(kind: str, name: str) -> str:
    if kind == "column":
        return (
            f"Column “{name}” does not exist (check its spelling and its table)."
            if name
            else "A column in the query does not exist (check spelling and tables)."
        )
    if kind == "table":
        return (
            f"Table “{name}” does not exist; use customers, devices or orders."
            if name
            else "A table in the query does not exist; use customers, devices or orders."
        )
    if kind == "function":
        return (
            f"Function {name}() does not exist here."
            if name
            else "A function in the query does not exist here."
        )
    if kind == "arguments":
        return (
            f"Function {name}() is called with the wrong number of values."
            if name
            else ("A function is called with the wrong number of values.")
        )
    if kind == "ambiguous":
        return (
            f"Column “{name}” is ambiguous: prefix it with its table (for example c.{name})."
            if name
            else "A column name is ambiguous: prefix it with its table (for example c.name)."
        )
    if kind == "window":
        return "A window function is used where it is not allowed (e.g. in WHERE)."
    if kind == "circular":
        return (
            f"WITH query “{name}” refers to itself; write WITH RECURSIVE or rename it."
            if name
            else "A WITH query refers to itself; write WITH RECURSIVE or rename it."
        )
    return (
        "An aggregate (COUNT, SUM, MAX …) is used where it is not allowed, "
        "for example in WHERE (use HAVING)."
    )


def _timeout(timeout_ms: int) -> str:
    return f"The query took longer than {timeout_ms / 1000:g} s and was stopped."


def _not_allowed() -> str:
    return (
        "The query reads something segments may not read: "
        "use only the tables customers, devices and orders and plain functions."
    )


def explain_database_error(
    exc: BaseException,
    *,
    sql: str,
    vendor: str,
    timeout_ms: int,
    ran: str | None = None,
    offset: int = 0,
) -> tuple[str, int | None, int | None]:
    """``(message, line, column)`` for an error raised while segment SQL ran.

    ``exc`` is Django's ``DatabaseError`` or the driver's own error (psycopg, sqlite3);
    ``sql`` the person's SQL; ``vendor`` ``connection.vendor``; ``timeout_ms`` the statement
    timeout that applied; ``ran`` / ``offset`` locate the person's query in the executed
    statement (see the module docstring). The message never contains the database's text;
    line and column (1-based) point into ``sql`` or are ``None``.
    """
    failure = _failure(exc, vendor)
    if failure.vendor == "postgresql":
        message, name = _classify_postgres(failure, sql, timeout_ms)
        line, column = _map_position(failure.position, sql=sql, ran=ran, offset=offset)
    else:
        message, name = _classify_sqlite(failure, sql, timeout_ms)
        line, column = None, None
    if line is None and name:
        line, column = _locate(sql, name)
    return message, line, column
