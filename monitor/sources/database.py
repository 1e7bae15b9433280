"""The database seam: one small interface, chosen by the URL scheme.

``sqlite:////abs/path.db`` (four slashes: absolute; three: relative) opens the file
read-only; ``postgresql://`` connects with asyncpg.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from monitor.sources.dbcommon import DatabaseError, RowReads, Rows, TableRead, sqlite_path
from monitor.sources.schema import Query

__all__ = ["Database", "DatabaseError", "RowReads", "Rows", "TableRead", "open_database", "sqlite_path",
           "validate_database_url"]


class Database(Protocol):
    """Read access to the monitored system's database."""

    url: str

    @property
    def generation(self) -> int:
        """Moves when what is read may be another database (a replaced SQLite file): rows kept from before are void."""

    async def change_token(self) -> Any:
        """A cheap value that changes whenever committed data may have changed; None = can't tell."""

    async def table_tokens(self, tables: Collection[str]) -> dict[str, Hashable]:
        """A token per table that moves whenever its rows may have changed (``sources.tables``)."""

    async def fetch_many(self, queries: Mapping[str, Query | str],
                         keys: Mapping[str, Sequence[str]] | None = None,
                         kept: Mapping[str, Rows] | None = None) -> dict[str, Rows]:
        """Run several SELECTs (``schema.Query`` or SQL text) in one read transaction; rows by query name.

        ``keys`` holds the keys of each keyed query (``{@keys}`` in its text). ``kept`` holds
        rows a query gave before: a backend may hand back such a row object in place of an
        identical fresh one (same values, same types, same place), so callers can tell an
        unchanged row by identity.
        """

    async def close(self) -> None:
        """Release connections and threads."""


def validate_database_url(url: str) -> str | None:
    """None when ``url`` is a usable database URL, else what is wrong with it."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:  # e.g. an unclosed [IPv6 bracket
        return f"not a readable URL ({exc})"
    if scheme == "sqlite":
        try:
            sqlite_path(url)
        except ValueError as exc:
            return str(exc)
        return None
    if scheme in ("postgresql", "postgres"):
        return None
    return f"expected sqlite:////path or postgresql://user@host:port/db, got {url!r}"


def open_database(url: str, busy_timeout: float, full_read_interval: float = 60.0) -> Database:
    """A ``Database`` for ``url``; nothing is connected until the first read."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from monitor.sources.sqlite import SqliteDatabase

        return SqliteDatabase(url, busy_timeout=busy_timeout, full_read_interval=full_read_interval)
    if scheme in ("postgresql", "postgres"):
        from monitor.sources.postgres import PostgresDatabase

        return PostgresDatabase(url, full_read_interval=full_read_interval)
    raise ValueError(validate_database_url(url))
