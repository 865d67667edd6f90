"""SQL segments: parse and check a marketer's SELECT with sqlglot before anything runs.

Rules (each refusal names the problem and its line/column):

- exactly one statement, a read-only query (SELECT, optionally WITH / UNION); no DML, DDL,
  COPY, SET, SELECT INTO, FOR UPDATE anywhere in the tree;
- only the tables ``customers``, ``devices`` and ``orders`` (plus the query's own CTEs),
  unqualified; no system catalogs (``pg_*``, ``information_schema``, ``sqlite_*``);
- no server-side functions: a deny-list (``pg_sleep``, ``pg_read_file``, ``set_config``,
  ``dblink``, ``lo_import``, ``query_to_xml``, ``load_extension`` ...) and, for functions
  sqlglot does not know, an allow-list of ordinary scalar functions;
- a single output column (the customer ids);
- no comment may contain a ``;`` (a comment hiding a second statement).

The query that runs is sqlglot's re-rendering of the checked tree without comments, so the
database never sees text the checker did not parse. It then runs through
``segments.runner`` in a read-only transaction with a statement timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

ALLOWED_TABLES = {"customers", "devices", "orders"}
MAX_SQL_LENGTH = 20_000

DENIED_FUNCTIONS = {
    "pg_sleep", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "lo_import", "lo_export",
    "lo_get", "lo_put", "lo_create", "lo_unlink", "set_config", "current_setting", "dblink",
    "dblink_exec", "dblink_connect", "copy", "load_extension", "readfile", "writefile",
    "query_to_xml", "query_to_xml_and_xmlschema", "cursor_to_xml", "table_to_xml",
    "schema_to_xml", "database_to_xml", "xpath", "nextval", "setval", "currval", "lastval",
    "txid_current", "version", "inet_server_addr", "inet_server_port", "sqlite_version",
    "randomblob", "zeroblob", "fts3_tokenizer", "sleep", "benchmark", "system", "exec",
}  # fmt: skip
DENIED_PREFIXES = ("pg_", "lo_", "dblink", "sqlite_", "xp_", "txid_", "current_setting")
# Functions sqlglot parses as "anonymous" that are still plain scalar functions.
ALLOWED_ANONYMOUS = {
    "date_part", "date_trunc", "age", "extract", "strftime", "julianday", "date", "datetime",
    "now", "justify_days", "make_date", "make_interval", "to_char", "to_date", "to_number",
    "initcap", "btrim", "ltrim", "rtrim", "split_part", "position", "strpos", "instr",
    "substring", "substr", "replace", "translate", "left", "right", "length", "char_length",
    "lower", "upper", "trim", "abs", "round", "floor", "ceil", "ceiling", "greatest", "least",
    "nullif", "coalesce", "ifnull", "iif", "random", "md5", "concat", "concat_ws",
    "printf", "format", "regexp_replace", "unicode", "hex", "typeof", "total",
}  # fmt: skip
FORBIDDEN_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterColumn",
        "Command", "Copy", "Set", "SetItem", "Transaction", "Commit", "Rollback", "Pragma",
        "Use", "Grant", "Revoke", "Into", "Lock", "LoadData", "Analyze", "TruncateTable",
        "Describe", "Show", "Cache", "Uncache", "Refresh",
    )
    if hasattr(exp, name)
)  # fmt: skip


class SqlSegmentError(ValueError):
    """A refused SQL segment: ``message``, and ``line``/``column`` (1-based) when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        self.message, self.line, self.column = message, line, column
        where = f" (line {line}, column {column})" if line else ""
        super().__init__(f"{message}{where}")


@dataclass(frozen=True)
class CheckedSQL:
    query: str  # the re-rendered, checked query (plain SQL, no parameters)
    members_sql: str  # one column `customer_id`, no duplicates; % doubled for DB-API use


def _position(sql: str, word: str) -> tuple[int | None, int | None]:
    match = re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", sql, re.IGNORECASE)
    if match is None:
        match = re.search(re.escape(word), sql, re.IGNORECASE)
    if match is None:
        return None, None
    before = sql[: match.start()]
    return before.count("\n") + 1, match.start() - (before.rfind("\n") + 1) + 1


def _function_name(func: exp.Func) -> str:
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower()
    return func.sql_name().lower()


def _dialect(vendor: str) -> str:
    return "postgres" if vendor == "postgresql" else "sqlite"


def check_sql(sql: str, *, vendor: str) -> CheckedSQL:
    """Check a SQL segment; return the query to run or raise ``SqlSegmentError``."""
    if not sql or not sql.strip():
        raise SqlSegmentError("Write a SELECT that returns one column of customer ids.")
    if len(sql) > MAX_SQL_LENGTH:
        raise SqlSegmentError(f"The query is longer than {MAX_SQL_LENGTH} characters.")
    if "\x00" in sql:
        raise SqlSegmentError("The query contains a NUL character.")
    dialect = _dialect(vendor)
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except TokenError as exc:
        raise SqlSegmentError(f"The query cannot be read: {exc}") from None
    for index, token in enumerate(tokens):
        if any(";" in comment for comment in token.comments):
            raise SqlSegmentError(
                "A comment contains “;”: comments must not hide a second statement.",
                token.line,
                token.col,
            )
        if token.token_type == sqlglot.TokenType.SEMICOLON and index != len(tokens) - 1:
            raise SqlSegmentError(
                "Only one statement is allowed: remove the “;” and what follows.",
                token.line,
                token.col,
            )
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        line, col = err.get("line"), err.get("col")
        highlight = err.get("highlight") or ""
        if col and highlight:
            col = max(1, col - len(highlight) + 1)
        message = err.get("description") or "Syntax error"
        near = f" near “{highlight}”" if highlight else ""
        raise SqlSegmentError(f"Syntax error: {message}{near}", line, col) from None
    if len(statements) != 1:
        raise SqlSegmentError("Write exactly one SELECT statement.")
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        keyword = sql.strip().split(None, 1)[0]
        raise SqlSegmentError(
            f"Only a read-only SELECT is allowed, not {keyword.upper()}.", *_position(sql, keyword)
        )
    for node in tree.walk():
        if isinstance(node, FORBIDDEN_NODES):
            word = node.key.upper() if node.key != "into" else "INTO"
            raise SqlSegmentError(
                f"{word} is not allowed: a segment only reads data.", *_position(sql, word)
            )
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise SqlSegmentError(
                "Table functions are not allowed; read from customers, devices or orders.",
                *_position(sql, table.sql(dialect=dialect)[:20]),
            )
        name = table.name.lower()
        qualifier = (table.db or table.catalog or "").lower()
        if (
            name.startswith(("pg_", "sqlite_"))
            or qualifier in ("pg_catalog", "information_schema")
            or name in ("information_schema", "sqlite_master", "sqlite_schema")
        ):
            raise SqlSegmentError(
                f"System catalog “{table.sql(dialect=dialect)}” is not allowed.",
                *_position(sql, table.name),
            )
        if qualifier:
            raise SqlSegmentError(
                f"Write the table name without a schema: “{table.name}”.",
                *_position(sql, qualifier),
            )
        if name not in ALLOWED_TABLES and name not in cte_names:
            raise SqlSegmentError(
                f"Table “{table.name}” is not allowed; use customers, devices or orders.",
                *_position(sql, table.name),
            )
    for func in tree.find_all(exp.Func):
        name = _function_name(func)
        if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
            raise SqlSegmentError(
                f"Function {name}() is not allowed: it touches the server.",
                *_position(sql, name),
            )
        if isinstance(func, exp.Anonymous) and name not in ALLOWED_ANONYMOUS:
            raise SqlSegmentError(
                f"Function {name}() is not allowed in segment SQL.", *_position(sql, name)
            )
    first: exp.Expression = tree
    while isinstance(first, exp.Union | exp.Intersect | exp.Except):
        first = first.left  # type: ignore[assignment]
    projections = first.expressions if isinstance(first, exp.Select) else []
    if len(projections) != 1 or isinstance(projections[0], exp.Star) or projections[0].is_star:
        raise SqlSegmentError(
            "Return exactly one column: the customer ids (e.g. SELECT c.customer_id ...).",
            *_position(sql, "select"),
        )
    query = tree.sql(dialect=dialect, comments=False)
    # A CTE column list names the single column customer_id whatever the user called it.
    members = (
        "WITH q(customer_id) AS (" + query.replace("%", "%%") + ") "
        "SELECT DISTINCT q.customer_id FROM q"
    )
    return CheckedSQL(query=query, members_sql=members)


def to_sql_segment(sql: str, *, vendor: str) -> str:
    """Pretty-print compiled SQL so a person can edit it (used by "Convert to SQL")."""
    return sqlglot.transpile(sql, read=_dialect(vendor), write=_dialect(vendor), pretty=True)[0]
