"""SQLite, read-only through aiosqlite, with a near-free change check.

``PRAGMA data_version`` on a kept connection changes whenever another connection
commits; with the file's identity (device, inode) it forms the change token, so an
unchanged database costs one stat and one pragma. Opened with ``mode=ro`` so the
monitored system's writers are never blocked by us holding a write lock.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import aiosqlite

from monitor.sources.dbcommon import DatabaseError, Rows, sqlite_path
from monitor.sources.schema import Query, render_all, tables_of

T = TypeVar("T")


class SqliteDatabase:
    """A read-only SQLite database file."""

    def __init__(self, url: str, busy_timeout: float) -> None:
        self.url = url
        self.path = Path(sqlite_path(url))
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self._conn: aiosqlite.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._generation = 0  # data_version is only comparable within one connection
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._schema_key: tuple[int, int] | None = None  # (connection generation, schema_version)
        self._columns: dict[str, frozenset[str] | None] = {}

    async def change_token(self) -> tuple[int, int, int, int]:
        """(device, inode, connection generation, data_version): changes on every commit."""
        async with self._lock:
            identity = await self._file_identity()
            conn = await self._connection(identity)
            rows = await self._guarded(conn, conn.execute_fetchall("PRAGMA data_version"))
            return (*identity, self._generation, list(rows)[0][0])

    async def fetch_many(self, queries: Mapping[str, Query | str]) -> dict[str, Rows]:
        """Run the queries in one read transaction, so they see one consistent state.

        ``Query`` objects are fitted to the tables' current columns; optional ones that
        cannot run are left out of the result.
        """
        async with self._lock:
            conn = await self._connection(await self._file_identity())
            return await self._guarded(conn, self._read_all(conn, queries))

    async def close(self) -> None:
        """Close the kept connection (its thread ends with it)."""
        await self._drop()
        if self._closing:
            await asyncio.wait(self._closing, timeout=2.0)

    async def _read_all(self, conn: aiosqlite.Connection, queries: Mapping[str, Query | str]) -> dict[str, Rows]:
        await conn.execute("BEGIN")
        try:
            columns = await self._table_columns(conn, tables_of(queries.values()))
            result = {}
            for name, sql in render_all(queries, columns).items():
                rows = await conn.execute_fetchall(sql)
                result[name] = [dict(row) for row in rows]
            return result
        finally:
            await conn.execute("COMMIT")

    async def _table_columns(self, conn: aiosqlite.Connection, tables: frozenset[str]) -> dict[str, frozenset[str]]:
        """The columns of ``tables`` (those that exist), re-learnt whenever the schema changed."""
        rows = await conn.execute_fetchall("PRAGMA schema_version")
        key = (self._generation, list(rows)[0][0])
        if key != self._schema_key:
            self._schema_key, self._columns = key, {}
        for table in tables - self._columns.keys():
            found = await conn.execute_fetchall("SELECT name FROM pragma_table_info(?)", (table,))
            self._columns[table] = frozenset(str(row[0]).lower() for row in found) or None
        return {table: have for table in tables if (have := self._columns[table]) is not None}

    async def _guarded(self, conn: aiosqlite.Connection, work: Awaitable[T]) -> T:
        try:
            return await work
        except asyncio.CancelledError:
            # A poll timed out: stop the query in its thread and start afresh next time,
            # without waiting here for a thread that may still be stuck.
            await conn.interrupt()
            self._detach()
            raise
        except sqlite3.Error as exc:
            await self._drop()
            raise DatabaseError(f"{self.path}: {exc}") from exc

    async def _file_identity(self) -> tuple[int, int]:
        try:
            st = await asyncio.to_thread(os.stat, self.path)
        except FileNotFoundError:
            await self._drop()
            raise DatabaseError(f"{self.path}: database file not found") from None
        except OSError as exc:
            await self._drop()
            raise DatabaseError(f"{self.path}: {exc.strerror or exc}") from None
        return st.st_dev, st.st_ino

    async def _connection(self, identity: tuple[int, int]) -> aiosqlite.Connection:
        if self._conn is not None and identity != self._identity:
            await self._drop()  # the file was replaced: the old handle sees the old file
        if self._conn is None:
            uri = f"file:{quote(str(self.path.absolute()))}?mode=ro"
            try:
                conn = await aiosqlite.connect(uri, uri=True, timeout=self._busy_timeout_ms / 1000)
            except sqlite3.Error as exc:
                raise DatabaseError(f"{self.path}: {exc}") from exc
            conn.row_factory = sqlite3.Row
            self._conn, self._identity = conn, identity
            self._generation += 1
        return self._conn

    def _detach(self) -> None:
        conn, self._conn, self._identity = self._conn, None, None
        if conn is not None:
            task = asyncio.get_running_loop().create_task(_close_quietly(conn))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _drop(self) -> None:
        conn, self._conn, self._identity = self._conn, None, None
        if conn is not None:
            await _close_quietly(conn)


async def _close_quietly(conn: aiosqlite.Connection) -> None:
    try:
        await conn.close()
    except (sqlite3.Error, ValueError):
        pass
