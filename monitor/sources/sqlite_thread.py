"""One SQLite connection on a thread of its own, and the work that runs there whole.

A read transaction runs start to end in one call on the connection's thread: it never
waits for the event loop between statements. In rollback-journal mode a reader's SHARED
lock blocks the writer's commit, so a transaction paused on a busy (or blocked) loop
would hold the monitored system's writer up; it also saves a loop round trip per
statement. Rows become dicts on that thread too.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from monitor.sources.dbcommon import Rows
from monitor.sources.schema import KEYS, Query, render_all, tables_of
from monitor.sources.tables import NEWEST_ROWS, SMALL_TABLE_ROWS
from monitor.sources.wal_pages import TablePages

T = TypeVar("T")
U = TypeVar("U")
KEYS_SQL = "(SELECT value FROM json_each(?))"
SMALL = ("small",)  # a table's signature until its pages' version stands in


class ThreadConnection:
    """A read-only sqlite3 connection used from one worker thread only."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def open(self, uri: str, busy_timeout: float) -> None:
        """Connect on the worker thread (``sqlite3.Error`` when the file cannot be opened)."""
        def connect(_: None) -> sqlite3.Connection:
            conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, check_same_thread=False,
                                   isolation_level=None)  # we say BEGIN and COMMIT ourselves
            return conn
        try:
            self._conn = await self._submit(connect, None)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` on the worker thread."""
        if self._conn is None:
            raise sqlite3.ProgrammingError("connection is closed")
        return await self._submit(work, self._conn)

    def interrupt(self) -> None:
        """Stop the statement running now (safe from any thread)."""
        if self._conn is not None:
            self._conn.interrupt()

    async def close(self) -> None:
        """Close after whatever runs now; the thread ends with it."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                await self._submit(lambda c: c.close(), conn)
        finally:
            self._executor.shutdown(wait=False)

    async def _submit(self, work: Callable[[U], T], arg: U) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, arg)



def data_version(conn: sqlite3.Connection) -> int:
    """``PRAGMA data_version``: moves whenever another connection commits."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def read_all(conn: sqlite3.Connection, queries: Mapping[str, Query | str],
             keys: Mapping[str, Sequence[str]], kept: Mapping[str, Rows]) -> dict[str, Rows]:
    """Every query that can run, in one read transaction, fitted to the columns it finds.

    A row identical to the one at its place in ``kept`` (by query name) is that kept object.
    """
    conn.execute("BEGIN")
    try:
        tables = tables_of(queries.values())
        columns = {table: have for table in tables if (have := _columns(conn, table))}
        result = {}
        for name, sql in render_all(queries, columns).items():
            params = (json.dumps(list(keys.get(name, ()))),) if KEYS in sql else ()
            cursor = conn.execute(sql.replace(KEYS, KEYS_SQL), params)
            # Plain tuples zipped with the names: twice as fast as sqlite3.Row turned into dicts.
            names = [column[0] for column in cursor.description]
            result[name] = reuse_identical(names, cursor.fetchall(), kept.get(name, []))
        return result
    finally:
        conn.execute("COMMIT")


def reuse_identical(names: list[str], values: list[tuple[Any, ...]], kept: Rows) -> Rows:
    """Rows as dicts of ``names``; where the kept row at the same place has the same names, values and
    value types (``1``, ``1.0`` and ``"1"`` differ), that kept dict itself.

    Comparing the plain tuples costs a fraction of comparing dicts on the event loop, and
    the dicts of unchanged rows are not built at all.
    """
    if not kept or list(kept[0]) != names:
        return [dict(zip(names, row, strict=True)) for row in values]
    rows: Rows = []
    for old, row in zip(kept, values, strict=False):
        old_values = tuple(old.values())
        if old_values == row and tuple(map(type, old_values)) == tuple(map(type, row)) and len(old) == len(names):
            rows.append(old)
        else:
            rows.append(dict(zip(names, row, strict=True)))
    rows += [dict(zip(names, row, strict=True)) for row in values[len(rows):]]
    return rows


def _columns(conn: sqlite3.Connection, table: str) -> frozenset[str]:
    return frozenset(str(row[0]).lower() for row in conn.execute("SELECT name FROM pragma_table_info(?)", (table,)))


def probe(conn: sqlite3.Connection, tables: Collection[str], pages: TablePages) -> dict[str, Hashable | None]:
    """Each table's signature: its newest rows when large, its pages' version when small (None: can't tell).

    A small table's version comes from the WAL (``wal_pages``); a rollback-journal file,
    a view or a table the probe cannot read has none, and moves with every commit.
    """
    signatures: dict[str, Hashable | None] = {}
    small = []
    for table in tables:
        try:
            signature = _signature(conn, table)
        except sqlite3.OperationalError:  # no such table, or no rowid: read it whenever anything moved
            signature = None
        if signature is SMALL:
            small.append(table)
        else:
            signatures[table] = signature
    versions = pages.versions(conn, small) if small else {}
    for table in small:
        version = versions.get(table)
        signatures[table] = None if version is None else ("pages", version)
    return signatures


def _signature(conn: sqlite3.Connection, table: str) -> Hashable | None:
    name = '"' + table.replace('"', '""') + '"'
    small = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {name} LIMIT {SMALL_TABLE_ROWS + 1})").fetchone()[0]
    if small <= SMALL_TABLE_ROWS:
        return SMALL
    # One b-tree path, whatever the size. No count(*): it walks a whole index, and after
    # another connection's commit that index is no longer in this connection's page cache
    # (16 ms at 200k rows, on every commit). A deleted older row is an older row changed.
    # The rows themselves, not their hash: hash(-1) == hash(-2), and a status flag may go from one to the other.
    return tuple(conn.execute(f"SELECT rowid, * FROM {name} ORDER BY rowid DESC LIMIT {NEWEST_ROWS}"))
