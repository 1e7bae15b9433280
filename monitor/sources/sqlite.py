"""SQLite, read-only, with near-free change checks and reads side by side.

``PRAGMA data_version`` on a kept connection changes whenever another connection
commits; with the file's identity (device, inode) it forms the change token, so an
unchanged database costs one stat and one pragma. Per-table tokens (``sources.tables``)
probe only the tables asked about, and only after such a change. Reads run on a small
pool of their own connections, so channels read in parallel, each read one transaction
run whole on its connection's thread (``sources.sqlite_thread``). Opened with
``mode=ro`` so the monitored system's writers are never blocked by us holding a write lock.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from monitor.sources import sqlite_thread
from monitor.sources.dbcommon import DatabaseError, Rows, TableRead, sqlite_path
from monitor.sources.schema import MissingColumns, Query
from monitor.sources.shm_file import SharedIndex
from monitor.sources.sqlite_thread import TablePlan, ThreadConnection
from monitor.sources.tables import TableTokens
from monitor.sources.wal_pages import TablePages

T = TypeVar("T")
READERS = 4  # connections reading at once: one per database channel
Identity = tuple[int, int]  # (device, inode): a replaced file is another database


class SqliteDatabase:
    """A read-only SQLite database file."""

    def __init__(self, url: str, busy_timeout: float, full_read_interval: float = 60.0) -> None:
        self.url = url
        self.path = Path(sqlite_path(url))
        self._busy_timeout = busy_timeout
        self._conn: ThreadConnection | None = None  # change checks: data_version is per connection
        self._identity: Identity | None = None
        self._generation = 0  # data_version is only comparable within one connection
        self._lock = asyncio.Lock()
        self._idle: list[tuple[Identity, ThreadConnection]] = []
        self._reading = asyncio.Semaphore(READERS)
        self._closing: set[asyncio.Task[None]] = set()
        self._tables = TableTokens(full_read_interval)
        # Opened once, closed after the connections: closing it would drop their locks (shm_file).
        self._index = SharedIndex(self.path)
        self.table_reads = {"partial": 0, "whole": 0}  # whole-table reads (fetch_tables), by how much they read
        # Which small tables a commit touched: one per change-check connection, so that a probe
        # still running on a connection given up (a poll timed out) never shares it.
        self._pages = TablePages(self.path, self._index)

    @property
    def generation(self) -> int:
        """Moves with every new connection: a new or replaced file."""
        return self._generation

    async def change_token(self) -> tuple[int, int, int, int]:
        """(device, inode, connection generation, data_version): changes on every commit."""
        async with self._lock:
            return await self._gate()

    async def table_tokens(self, tables: Collection[str]) -> dict[str, Hashable]:
        """A token per table that moves whenever its rows may have changed (``sources.tables``)."""
        async with self._lock:
            gate = await self._gate()
            conn, pages = self._conn, self._pages
            assert conn is not None  # _gate opened it

            async def probe(names: Collection[str]) -> dict[str, Hashable | None]:
                return await self._guarded(conn, lambda c: sqlite_thread.probe(c, names, pages))
            return await self._tables.tokens(tables, gate, probe)

    async def fetch_many(self, queries: Mapping[str, Query | str],
                         keys: Mapping[str, Sequence[str]] | None = None,
                         kept: Mapping[str, Rows] | None = None) -> dict[str, Rows]:
        """Run the queries in one read transaction, so they see one consistent state.

        ``Query`` objects are fitted to the tables' current columns; optional ones that
        cannot run are left out of the result. ``keys`` gives keyed queries their keys.
        A row identical to the ``kept`` row at its place is that kept object
        (``sqlite_thread.reuse_identical``), compared on the reading thread.
        """
        return (await self.fetch_tables(queries, keys or {}, kept or {}, {}))[0]

    async def fetch_tables(self, queries: Mapping[str, Query | str], keys: Mapping[str, Sequence[str]],
                           kept: Mapping[str, Rows], tables: Mapping[str, TableRead | None],
                           ) -> tuple[dict[str, Rows], dict[str, TableRead]]:
        """``fetch_many``; the whole-table queries named in ``tables`` come in rowid order, with their reads.

        In WAL mode the pages a commit wrote name the rows it may have changed
        (``wal_pages.TablePages.rows_changed``): from its last read, such a table's named and
        new rows are read and the others kept. Otherwise (a rollback journal, a large
        table, too many rows named, no rowid) it is read whole.
        """
        plans, marks = await self._plans(queries, tables)
        async with self._reading:
            identity = await self._file_identity()
            conn = await self._reader(identity)
            try:
                rows, by_rowid = await self._guarded(
                    conn, lambda c: sqlite_thread.read_all(c, queries, keys, kept, plans))
            except MissingColumns:
                self._idle.append((identity, conn))  # refused before running: the connection is fine
                raise
            self._idle.append((identity, conn))
        for read in by_rowid.values():
            self.table_reads["partial" if read.partial else "whole"] += 1
        return rows, {name: TableRead(read.rows, read.rowids, marks[name]) for name, read in by_rowid.items()}

    async def _plans(self, queries: Mapping[str, Query | str], tables: Mapping[str, TableRead | None],
                     ) -> tuple[dict[str, TablePlan], dict[str, Any]]:
        """How to read each table again, and the mark its read will carry: (generation, page version)."""
        plans, marks = {}, {}
        async with self._lock:  # no probe runs meanwhile: the page versions stand still
            pages, generation, live = self._pages, self._generation, self._conn is not None
            for name, last in tables.items():
                query = queries[name]
                table = query.table.lower() if isinstance(query, Query) else ""
                version = pages.version(table) if live and table else None
                changed = None
                if last is not None and version is not None and isinstance(last.mark, tuple) \
                        and last.mark[0] == generation and len(last.rowids) == len(last.rows):
                    changed = pages.rows_changed(table, last.mark[1], version)
                plans[name] = TablePlan(last, changed, pages.point, self._index)
                marks[name] = (generation, version) if version is not None else None
        return plans, marks

    async def close(self) -> None:
        """Close every connection (their threads end with them), then the shared index file."""
        await self._drop()
        idle, self._idle = self._idle, []
        for _, conn in idle:
            await _close_quietly(conn)
        if self._closing:
            await asyncio.wait(self._closing, timeout=2.0)
        if all(task.done() for task in self._closing):  # else a stuck connection may still hold its locks
            self._index.close()

    async def _gate(self) -> tuple[int, int, int, int]:
        identity = await self._file_identity()
        conn = await self._connection(identity)
        return (*identity, self._generation, await self._guarded(conn, sqlite_thread.data_version))

    async def _guarded(self, conn: ThreadConnection, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await conn.run(work)
        except asyncio.CancelledError:
            # A poll timed out: stop the query in its thread and start afresh next time,
            # without waiting here for a thread that may still be stuck.
            conn.interrupt()
            self._discard(conn)
            raise
        except sqlite3.Error as exc:
            self._discard(conn)
            raise DatabaseError(f"{self.path}: {exc}") from exc

    async def _file_identity(self) -> Identity:
        try:
            st = await asyncio.to_thread(os.stat, self.path)
        except FileNotFoundError:
            await self._drop()
            raise DatabaseError(f"{self.path}: database file not found") from None
        except OSError as exc:
            await self._drop()
            raise DatabaseError(f"{self.path}: {exc.strerror or exc}") from None
        return st.st_dev, st.st_ino

    async def _connection(self, identity: Identity) -> ThreadConnection:
        if self._conn is not None and identity != self._identity:
            await self._drop()  # the file was replaced: the old handle sees the old file
        if self._conn is None:
            self._conn, self._identity = await self._open(), identity
            self._generation += 1
            self._tables.forget()
            self._pages = TablePages(self.path, self._index)
        return self._conn

    async def _reader(self, identity: Identity) -> ThreadConnection:
        """An idle reading connection to the file as it is now, or a new one."""
        while self._idle:
            opened_on, conn = self._idle.pop()
            if opened_on == identity:
                return conn
            self._discard(conn)  # opened on a file since replaced
        return await self._open()

    async def _open(self) -> ThreadConnection:
        conn = ThreadConnection()
        try:
            await conn.open(f"file:{quote(str(self.path.absolute()))}?mode=ro", self._busy_timeout)
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self.path}: {exc}") from exc
        return conn

    def _discard(self, conn: ThreadConnection) -> None:
        """Close ``conn`` in the background; the change-check connection starts afresh if it was that."""
        if conn is self._conn:
            self._conn, self._identity = None, None
            # A probe may still run on its thread: it keeps the old page state, not ours.
            self._pages = TablePages(self.path, self._index)
        task = asyncio.get_running_loop().create_task(_close_quietly(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _drop(self) -> None:
        conn, self._conn, self._identity = self._conn, None, None
        if conn is not None:
            await _close_quietly(conn)


async def _close_quietly(conn: ThreadConnection) -> None:
    try:
        await conn.close()
    except sqlite3.Error:
        pass
