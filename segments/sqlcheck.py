"""SQL segments: parse and check a marketer's SELECT with sqlglot before anything runs.

This is the first, friendly layer: it names the problem and its line and column. It is not
the only one: the query then runs read-only, with a statement timeout, on a connection that
can read only the customer store (see ``segments.runner``).

Rules:

- exactly one statement, a read-only query (SELECT, optionally WITH / UNION); no DML, DDL,
  COPY, SET, SELECT INTO, FOR UPDATE / SHARE anywhere in the tree (a CTE included);
- tables: only ``customers``, ``devices`` and ``orders``, unqualified, or a WITH query that is
  in scope where it is named. A WITH query is in scope in the body of the query that owns
  the WITH, in later WITH queries of the same list, inside its own body only under
  ``WITH RECURSIVE``, and in every subquery nested in those places. Anywhere else a name
  means a real table, so ``WITH django_session AS (SELECT * FROM django_session)`` is refused
  (inside its own non-recursive body the name is the real table) while
  ``WITH spend AS (...) SELECT ... FROM spend`` is fine. Names are compared the way the
  database compares them: PostgreSQL folds unquoted names to lower case and keeps quoted
  ones as written; SQLite ignores case. Referring to a later WITH query (which SQLite
  allows) is refused: that name would be checked as a table;
- a WITH query may not be named ``customers``, ``devices`` or ``orders``: a query in which
  ``customers`` means something else would read as the store but not be it, so the name
  is refused rather than silently shadowed; it may be named like any other table
  (the name only ever means the WITH query inside its scope, which the rule above checks);
- no system catalogs (``pg_*``, ``information_schema``, ``sqlite_*``), whether written
  plainly, quoted, or in a unicode escape (``U&"..."`` is refused outright), and no casts to
  catalog types (``regclass``, ``regproc`` ...);
- no session values (``current_user``, ``session_user``, ``user`` … unquoted);
- no server-side functions: a deny-list checked on the names as written (``pg_sleep``,
  ``pg_read_file``, ``set_config``, ``current_setting``, ``dblink``, ``lo_*``,
  ``query_to_xml``, ``load_extension`` ...), an allow-list of ordinary scalar functions for
  functions sqlglot does not know, no schema-qualified functions, and as a table only
  ``generate_series`` / ``unnest`` (plain or LATERAL);
- a single output column (the customer ids);
- no comment may contain a ``;`` (a comment hiding a second statement).

A refused query names the problem in a person's words with its line and column; when it
quotes anything, it quotes only the person's own SQL near that position.

The query that runs is sqlglot's re-rendering of the checked tree without comments, checked
again as rendered, so the database never sees text the checker did not parse and pass. It
then runs behind the database fence (``segments.fence``), read-only with a statement timeout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

ALLOWED_TABLES = {"customers", "devices", "orders"}
MAX_SQL_LENGTH = 20_000
MAX_NAME_LENGTH = 63  # PostgreSQL silently truncates longer names

DENIED_FUNCTIONS = {
    "pg_sleep", "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "lo_import", "lo_export",
    "lo_get", "lo_put", "lo_create", "lo_unlink", "lo_open", "loread", "lowrite",
    "set_config", "current_setting", "dblink", "dblink_exec", "dblink_connect", "copy",
    "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer",
    "query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema", "cursor_to_xml",
    "cursor_to_xmlschema", "table_to_xml", "table_to_xml_and_xmlschema", "table_to_xmlschema",
    "schema_to_xml", "database_to_xml", "ts_stat", "ts_rewrite", "xpath",
    "nextval", "setval", "currval", "lastval", "txid_current", "version",
    "inet_server_addr", "inet_server_port", "inet_client_addr", "inet_client_port",
    "current_user", "session_user", "current_role", "current_database", "current_catalog",
    "current_schema", "current_schemas", "current_query", "user",
    "has_table_privilege", "has_column_privilege", "has_schema_privilege", "to_regclass",
    "obj_description", "col_description", "shobj_description",
    "sqlite_version", "randomblob", "zeroblob", "sleep", "benchmark", "system", "exec",
    "read_csv", "read_json", "read_parquet", "read_text", "read_blob",
}  # fmt: skip
DENIED_PREFIXES = (
    "pg_", "lo_", "dblink", "sqlite_", "xp_", "txid_", "current_setting", "has_", "read_",
    "pragma_",
)  # fmt: skip
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
# Set-returning functions that may stand where a table does: they compute, they read nothing.
TABLE_FUNCTIONS = tuple(
    getattr(exp, name)
    for name in ("GenerateSeries", "ExplodingGenerateSeries", "Unnest", "Explode")
    if hasattr(exp, name)
)
FORBIDDEN_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterColumn",
        "Command", "Copy", "Set", "SetItem", "Transaction", "Commit", "Rollback", "Pragma",
        "Use", "Grant", "Revoke", "Into", "Lock", "LoadData", "Analyze", "TruncateTable",
        "Describe", "Show", "Cache", "Uncache", "Refresh", "Attach", "Detach", "Kill",
        "Execute", "Declare",
    )
    if hasattr(exp, name)
)  # fmt: skip
FORBIDDEN_WORDS = {"lock": "FOR UPDATE / FOR SHARE", "into": "INTO", "setitem": "SET"}
CATALOG_SCHEMAS = {"pg_catalog", "information_schema", "pg_toast", "pg_temp"}
NAME_TOKENS = {TokenType.VAR, TokenType.IDENTIFIER}
# SQL's special values that read the session, not the data (unquoted they are not columns).
SESSION_WORDS = {"user", "current_user", "session_user", "system_user", "current_role",
                 "current_catalog", "current_schema"}  # fmt: skip
OBJECT_TYPE_PREFIXES = ("reg", "oid")  # PostgreSQL's catalog lookups: regclass, regproc …


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


# -- positions -------------------------------------------------------------------------------


def line_column(sql: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based character offset into ``sql``."""
    offset = max(0, min(offset, len(sql)))
    before = sql[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _position(sql: str, word: str) -> tuple[int | None, int | None]:
    """Where ``word`` first appears in ``sql`` as a whole word (else anywhere)."""
    if not word:
        return None, None
    match = re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", sql, re.IGNORECASE)
    if match is None:
        match = re.search(re.escape(word), sql, re.IGNORECASE)
    if match is None:
        return None, None
    return line_column(sql, match.start())


def _node_position(sql: str, node: exp.Expr, word: str = "") -> tuple[int | None, int | None]:
    """Where a node starts in ``sql`` (sqlglot keeps token offsets on identifiers)."""
    for part in node.walk():
        start = part.meta.get("start") if part.meta else None
        if isinstance(start, int):
            return line_column(sql, start)
    return _position(sql, word or node.sql()[:30])


def _token_position(sql: str, token: Token) -> tuple[int, int]:
    return line_column(sql, token.start)


def _near(sql: str, line: int | None, column: int | None) -> str:
    """The person's own SQL token at a position, for “near …” (never anything else)."""
    if not line or not column:
        return ""
    lines = sql.split("\n")
    if line > len(lines):
        return ""
    rest = lines[line - 1][column - 1 :]
    match = re.match(r"\s*(\w+|\"[^\"]{0,30}\"?|'[^']{0,30}'?|[^\w\s]{1,2})", rest)
    return match.group(1)[:30] if match else ""


# -- the person's words for sqlglot's errors ---------------------------------------------------

_INCOMPLETE_AFTER = {
    "where": "WHERE needs a condition after it",
    "having": "HAVING needs a condition after it",
    "order": "ORDER BY needs at least one expression",
    "group": "GROUP BY needs at least one expression",
    "limit": "LIMIT needs a number",
    "offset": "OFFSET needs a number",
    "between": "BETWEEN needs both bounds: BETWEEN low AND high",
    "union": "UNION must be followed by another SELECT",
    "intersect": "INTERSECT must be followed by another SELECT",
    "except": "EXCEPT must be followed by another SELECT",
    "join": "The JOIN is incomplete",
    "cast": "Write CAST(value AS type)",
    "in": "IN needs a list or a subquery in parentheses",
}

_DESCRIPTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Expecting \)|^Expected \)|Missing \)"), "A “(” is not closed: “)” expected"),
    (re.compile(r"^Expect(?:ing|ed) \]"), "A “[” is not closed: “]” expected"),
    (re.compile(r"^Expect(?:ing|ed) \}"), "A “{” is not closed: “}” expected"),
    (re.compile(r"^Expecting \("), "“(” expected"),
    (re.compile(r"^Expected table name"), "A table name is missing"),
    (re.compile(r"^Expected END after CASE"), "CASE needs END after its last WHEN/ELSE"),
    (re.compile(r"^Expected (?:TYPE|AS) after CAST"), "Write CAST(value AS type)"),
    (re.compile(r"^Expected type"), "A type name is missing"),
    (re.compile(r"^Expected CTE to have alias"), "Each WITH query needs a name: WITH name AS (…)"),
    (re.compile(r"following CTE"), "The WITH queries must be followed by a SELECT"),
    (re.compile(r"^Expected FROM or comma after EXTRACT"), "Write EXTRACT(field FROM value)"),
    (re.compile(r"^Expecting IN"), "IN expected"),
    (re.compile(r"^Invalid expression / Unexpected token"), "Unexpected word or symbol"),
    (re.compile(r"^Cannot specify both ALL and DISTINCT"), "Choose ALL or DISTINCT, not both"),
    (re.compile(r"^Maximum number of AST nodes"), "The query is too large"),
]


def _required_keyword(description: str, near: str) -> str:
    """sqlglot's "Required keyword: 'x' missing for <class '...GT'>" in plain words."""
    match = re.search(r"<class '[\w.]*\.(\w+)'>", description)
    kind = (match.group(1) if match else "").lower()
    if kind in _INCOMPLETE_AFTER:
        return _INCOMPLETE_AFTER[kind]
    if near:
        return f"The expression is incomplete after “{near}”"
    return "The expression is incomplete"


def _parse_error(sql: str, exc: ParseError) -> SqlSegmentError:
    err = exc.errors[0] if exc.errors else {}
    line, col = err.get("line"), err.get("col")
    highlight = str(err.get("highlight") or "")
    if isinstance(line, int) and isinstance(col, int) and highlight:
        col = max(1, col - len(highlight) + 1)
    if not (isinstance(line, int) and isinstance(col, int)):
        line = col = None
    near = _near(sql, line, col)
    description = str(err.get("description") or "")
    if description.startswith("Required keyword"):
        message = _required_keyword(description, near)
        near = "" if "“" in message else near
    else:
        message = next(
            (plain for pattern, plain in _DESCRIPTIONS if pattern.search(description)),
            "The query could not be read",
        )
    suffix = f" near “{near}”" if near else ""
    return SqlSegmentError(f"Syntax error: {message}{suffix}.", line, col)


_UNCLOSED = {
    "'": "A text in single quotes is not closed: add the closing '",
    '"': 'A name in double quotes is not closed: add the closing "',
    "]": "A “[” is not closed",
    "`": "A name in backquotes is not closed",
}


def _token_error(sql: str, exc: TokenError) -> SqlSegmentError:
    cause = str(exc.__cause__ or "")
    missing = re.match(r"Missing (.+?) from (\d+):(\d+)$", cause)
    if missing:
        delimiter, offset = missing.group(1), int(missing.group(3))
        plain = _UNCLOSED.get(delimiter, "A quoted text ($…$) is not closed")
        return SqlSegmentError(f"Syntax error: {plain}.", *line_column(sql, offset))
    if "Numeric string" in cause:
        line, col = _position(sql, "0x") if "0x" in sql.lower() else (None, None)
        return SqlSegmentError("Syntax error: a number contains invalid characters.", line, col)
    unclosed = _unclosed_block_comment(sql)
    if unclosed is not None:
        return SqlSegmentError(
            "Syntax error: a comment “/*” is not closed: add “*/”.", *line_column(sql, unclosed)
        )
    return SqlSegmentError("Syntax error: the query could not be read (check quotes).")


def _unclosed_block_comment(sql: str) -> int | None:
    """Offset of a ``/*`` that is never closed (quotes and line comments skipped)."""
    i, depth, opened = 0, 0, None
    while i < len(sql):
        two = sql[i : i + 2]
        if depth:
            if two == "*/":
                depth, i = depth - 1, i + 2
                continue
            if two == "/*":
                depth, i = depth + 1, i + 2
                continue
            i += 1
            continue
        if two == "/*":
            depth, opened, i = 1, i, i + 2
        elif two == "--":
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
        elif sql[i] in "'\"":
            end = sql.find(sql[i], i + 1)
            i = len(sql) if end < 0 else end + 1
        else:
            i += 1
    return opened if depth else None


# -- checks ----------------------------------------------------------------------------------


def _function_name(func: exp.Func) -> str:
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower()
    return func.sql_name().lower()


def _dialect(vendor: str) -> str:
    return "postgres" if vendor == "postgresql" else "sqlite"


def _is_catalog_name(name: str) -> bool:
    name = name.lower()
    return name.startswith(("pg_", "sqlite_")) or name in CATALOG_SCHEMAS


def _check_tokens(sql: str, tokens: list[Token]) -> None:
    """Checks on the text as written, before sqlglot renames or normalizes anything."""
    for index, token in enumerate(tokens):
        if any(";" in comment for comment in token.comments):
            raise SqlSegmentError(
                "A comment contains “;”: comments must not hide a second statement.",
                *_token_position(sql, token),
            )
        if token.token_type == TokenType.SEMICOLON and index != len(tokens) - 1:
            raise SqlSegmentError(
                "Only one statement is allowed: remove the “;” and what follows.",
                *_token_position(sql, token),
            )
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.token_type == TokenType.UNICODE_STRING or (
            token.token_type == TokenType.VAR
            and token.text.lower() == "u"
            and following is not None
            and following.token_type == TokenType.AMP
            and following.start == token.end + 1
        ):
            raise SqlSegmentError(
                "Unicode escapes (U&'…' or U&\"…\") are not allowed: write the characters.",
                *_token_position(sql, token),
            )
        if token.token_type in NAME_TOKENS and len(token.text) > MAX_NAME_LENGTH:
            raise SqlSegmentError(
                f"A name is longer than {MAX_NAME_LENGTH} characters.", *_token_position(sql, token)
            )
        if token.token_type in NAME_TOKENS and _is_catalog_name(token.text):
            raise SqlSegmentError(
                f"System catalog “{token.text}” is not allowed.", *_token_position(sql, token)
            )
        if token.token_type != TokenType.IDENTIFIER and token.text.lower() in SESSION_WORDS:
            raise SqlSegmentError(
                f"“{token.text}” is not allowed: it reads the database session, "
                "not the customer store.",
                *_token_position(sql, token),
            )
        if following is not None and following.token_type == TokenType.L_PAREN:
            name = token.text.lower()
            if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
                raise SqlSegmentError(
                    f"Function {name}() is not allowed: it touches the server.",
                    *_token_position(sql, token),
                )


def _name(identifier: exp.Expression | None, dialect: str) -> str:
    """A table or WITH-query name as the database compares it."""
    if not isinstance(identifier, exp.Identifier):
        return str(identifier.name if identifier is not None else "").lower()
    text = str(identifier.this)
    if dialect == "postgres" and identifier.quoted:
        return text
    return text.lower()


def _with_of(node: exp.Expr) -> exp.With | None:
    found = node.args.get("with_") or node.args.get("with")
    return found if isinstance(found, exp.With) else None


class _ScopeChecker:
    """Checks every table reference against the WITH queries in scope where it appears.

    ``scope`` holds the WITH-query names a reference may mean; ``later`` the names of WITH
    queries written after the one being checked (named there, they would be real tables).
    """

    def __init__(self, sql: str, dialect: str) -> None:
        self.sql, self.dialect = sql, dialect

    def check(self, node: exp.Expr, scope: frozenset[str], later: frozenset[str]) -> None:
        with_ = _with_of(node)
        if with_ is not None:
            scope = self._check_with(with_, scope)
        if isinstance(node, exp.Table):
            self._check_table(node, scope, later)
        for child in node.iter_expressions():
            if child is not with_:
                self.check(child, scope, later)

    def _check_with(self, with_: exp.With, scope: frozenset[str]) -> frozenset[str]:
        recursive = bool(with_.args.get("recursive"))
        ctes = [cte for cte in with_.expressions if isinstance(cte, exp.CTE)]
        names = [_name(cte.args["alias"].this if cte.args.get("alias") else None, self.dialect)
                 for cte in ctes]  # fmt: skip
        for index, (cte, name) in enumerate(zip(ctes, names, strict=True)):
            where = _node_position(self.sql, cte.args.get("alias") or cte, name)
            if name.lower() in ALLOWED_TABLES:
                raise SqlSegmentError(
                    f"A WITH query may not be named “{name}”: that is a store table. "
                    "Choose another name.",
                    *where,
                )
            if name in names[:index]:
                raise SqlSegmentError(f"Two WITH queries are named “{name}”.", *where)
            # Without RECURSIVE a WITH query sees only the ones before it; its own name, in
            # its own body, is the real table.
            visible = scope | set(names[:index]) | ({name} if recursive else set())
            self.check(cte.this, frozenset(visible), frozenset(names[index + 1 :]))
        return scope | set(names)

    def _check_table(self, table: exp.Table, scope: frozenset[str], later: frozenset[str]) -> None:
        if isinstance(table.this, TABLE_FUNCTIONS):
            return
        if not isinstance(table.this, exp.Identifier):
            raise SqlSegmentError(
                "Table functions are not allowed (only generate_series and unnest); "
                "read from customers, devices or orders.",
                *_node_position(self.sql, table),
            )
        name = _name(table.this, self.dialect)
        qualifier = str(table.db or table.catalog or "")
        where = _node_position(self.sql, table.this, table.name)
        if _is_catalog_name(name) or _is_catalog_name(qualifier):
            raise SqlSegmentError(f"System catalog “{table.name}” is not allowed.", *where)
        if qualifier:
            raise SqlSegmentError(
                f"Write the table name without a schema: “{table.name}”.",
                *_node_position(self.sql, table.args.get("db") or table, qualifier),
            )
        if name in scope or name in ALLOWED_TABLES:
            return
        if name in later:
            raise SqlSegmentError(
                f"“{table.name}” is used before it is defined: a WITH query can only use "
                "the WITH queries written before it.",
                *where,
            )
        raise SqlSegmentError(
            f"Table “{table.name}” is not allowed; use customers, devices or orders.", *where
        )


def _check_functions(sql: str, tree: exp.Expr) -> None:
    for node in tree.walk():
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            raise SqlSegmentError(
                "Write function names without a schema.", *_node_position(sql, node)
            )
        if isinstance(node, exp.DataType) and str(node.args.get("kind") or "").lower().startswith(
            OBJECT_TYPE_PREFIXES
        ):
            raise SqlSegmentError(
                "Casts to system object types (regclass, regproc …) are not allowed.",
                *_position(sql, str(node.args.get("kind"))),
            )
        if isinstance(node, exp.ObjectIdentifier):
            raise SqlSegmentError(
                "Casts to system object types (regclass, regproc …) are not allowed.",
                *_position(sql, str(node.name) or "reg"),
            )
        if isinstance(node, exp.Lateral) and not isinstance(
            node.this, (exp.Subquery, *TABLE_FUNCTIONS)
        ):
            raise SqlSegmentError(
                "LATERAL may only be followed by a subquery, generate_series or unnest.",
                *_node_position(sql, node, "lateral"),
            )
        if not isinstance(node, exp.Func):
            continue
        name = _function_name(node)
        if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
            raise SqlSegmentError(
                f"Function {name}() is not allowed: it touches the server.",
                *_node_position(sql, node, name),
            )
        if isinstance(node, exp.Anonymous) and name not in ALLOWED_ANONYMOUS:
            raise SqlSegmentError(
                f"Function {name}() is not allowed in segment SQL.",
                *_node_position(sql, node, name),
            )


def _forbidden(sql: str, tree: exp.Expr) -> None:
    for node in tree.walk():
        if isinstance(node, FORBIDDEN_NODES):
            word = FORBIDDEN_WORDS.get(node.key, node.key.upper())
            if isinstance(node, exp.Command):
                word = str(node.this).upper()[:20] or "This statement"
            raise SqlSegmentError(
                f"{word} is not allowed: a segment only reads data.",
                *_position(sql, word.split()[-1] if node.key != "lock" else "for"),
            )


def _first_word(tokens: Iterable[Token]) -> str:
    first = next(iter(tokens), None)
    return first.text.upper() if first is not None else ""


def _check_tree(sql: str, tree: exp.Expr, dialect: str) -> None:
    _forbidden(sql, tree)
    _ScopeChecker(sql, dialect).check(tree, frozenset(), frozenset())
    _check_functions(sql, tree)


def _check_rendering(query: str, dialect: str) -> None:
    """The re-rendering is what runs: it must pass the same checks as what was typed, so a
    quirk of sqlglot's rendering (a name's quoting or case changed) cannot slip through."""
    try:
        _check_tokens(query, sqlglot.Dialect.get_or_raise(dialect).tokenize(query))
        _check_tree(query, sqlglot.parse_one(query, read=dialect), dialect)
    except (SqlSegmentError, ParseError, TokenError):
        raise SqlSegmentError(
            "This query cannot be checked safely as written; simplify it."
        ) from None


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
        raise _token_error(sql, exc) from None
    _check_tokens(sql, tokens)
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        raise _parse_error(sql, exc) from None
    except TokenError as exc:
        raise _token_error(sql, exc) from None
    if len(statements) != 1:
        raise SqlSegmentError("Write exactly one SELECT statement.")
    tree = statements[0]
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        keyword = _first_word(tokens) or "this"
        raise SqlSegmentError(
            f"Only a read-only SELECT is allowed, not {keyword}.", *_position(sql, keyword)
        )
    _check_tree(sql, tree, dialect)
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
    _check_rendering(query, dialect)
    # A CTE column list names the single column customer_id whatever the user called it.
    members = (
        "WITH q(customer_id) AS (" + query.replace("%", "%%") + ") "
        "SELECT DISTINCT q.customer_id FROM q"
    )
    return CheckedSQL(query=query, members_sql=members)


def to_sql_segment(sql: str, *, vendor: str) -> str:
    """Pretty-print compiled SQL so a person can edit it (used by "Convert to SQL")."""
    return sqlglot.transpile(sql, read=_dialect(vendor), write=_dialect(vendor), pretty=True)[0]
