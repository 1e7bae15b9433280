"""Queries written against the columns an installation really has.

The monitored system's schema grew by migrations, and live installations sit at
different points of that history. A ``Query`` therefore names its table, the columns
it cannot do without, and marks every other column as ``{column}``: when the table has
that column it is read, when it does not the placeholder becomes a typed ``NULL`` (and,
since records carry no nulls, the field is simply absent). A missing required column (or a
missing table) is the channel's error naming table and column, or, for a query marked
``optional``, a query that is skipped: its name is absent from ``fetch_many``'s result.

A query may also be *keyed*: ``{@keys}`` in its text stands for the list of keys the
reader passes with it (``... WHERE adw_id IN {@keys}``), so it reads only the rows it
needs; each backend binds the list as one parameter in its own dialect.

The databases read the tables' columns with each fetch, in its transaction (SQLite's
``pragma_table_info``, PostgreSQL's catalog): a migration is seen by the next read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.sources.dbcommon import DatabaseError

# {column} or {column:type}; a missing column becomes a typed NULL (PostgreSQL refuses bare
# NULL constants in GROUP BY / ORDER BY and cannot choose sum(unknown)).
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(text|real|integer))?\}")
KEYS = "{@keys}"  # a keyed query's list of keys, bound as one parameter by the backend
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Columns = Mapping[str, frozenset[str]]  # table -> its columns, all lower-case; absent table = no such table


class MissingColumns(DatabaseError):
    """A query's table or required column does not exist in this installation."""


@dataclass(frozen=True)
class Query:
    """A SELECT on one table; ``{column}`` marks a column that may be missing.

    ``{column:real}`` or ``{column:integer}`` types the NULL a missing column becomes (``text`` by default).
    """

    table: str
    sql: str
    required: tuple[str, ...] = ()
    optional: bool = False  # a missing table or required column skips the query instead of failing it

    def __post_init__(self) -> None:
        if not self.table:
            return  # verbatim: nothing to fit
        for name in (self.table, *self.required, *(m.group(1) for m in PLACEHOLDER.finditer(self.sql))):
            if not IDENTIFIER.fullmatch(name):
                raise ValueError(f"not a plain SQL identifier: {name!r}")


def verbatim(sql: str) -> Query:
    """A query run exactly as written (``[queries]`` overrides): the operator owns its columns."""
    return Query(table="", sql=sql)


def tables_of(queries: Iterable[Query | str]) -> frozenset[str]:
    """The tables whose columns the queries need to know."""
    return frozenset(q.table.lower() for q in queries if isinstance(q, Query) and q.table)


def render(query: Query | str, columns: Columns) -> str | None:
    """The SQL to run on an installation with ``columns``; None when an optional query cannot run.

    Raises ``MissingColumns`` naming the table and columns a required query lacks.
    """
    if isinstance(query, str) or not query.table:
        return query if isinstance(query, str) else query.sql
    have = columns.get(query.table.lower())
    if have is None:
        if query.optional:
            return None
        raise MissingColumns(f"table {query.table} does not exist")
    missing = [name for name in query.required if name.lower() not in have]
    if missing:
        if query.optional:
            return None
        plural = "s" if len(missing) > 1 else ""
        raise MissingColumns(f"table {query.table} has no column{plural} {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: _column_or_null(m, have), query.sql)


def _column_or_null(match: re.Match[str], have: frozenset[str]) -> str:
    name, sql_type = match.group(1), match.group(2) or "text"
    return name if name.lower() in have else f"CAST(NULL AS {sql_type.upper()})"


def render_all(queries: Mapping[str, Query | str], columns: Columns) -> dict[str, str]:
    """Every query that can run, rendered, by name (optional queries that cannot are left out)."""
    rendered = {}
    for name, query in queries.items():
        sql = render(query, columns)
        if sql is not None:
            rendered[name] = sql
    return rendered
