"""One SQLite connection on a thread of its own, and the work that runs there whole.

A read transaction runs start to end in one call on the connection's thread: it never
waits for the event loop between statements. In rollback-journal mode a reader's SHARED
lock blocks the writer's commit, so a transaction paused on a busy (or blocked) loop
would hold the monitored system's writer up; it also saves a loop round trip per
statement. Rows become dicts on that thread too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from monitor.sources.dbcommon import Rows, TableRead
from monitor.sources.schema import KEYS, Query, render, render_all, tables_of
from monitor.sources.shm_file import SharedIndex, WalPoint
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


def read_all(conn: sqlite3.Connection, queries: Mapping[str, Query | str], keys: Mapping[str, Sequence[str]],
             kept: Mapping[str, Rows], plans: Mapping[str, TablePlan] | None = None,
             ) -> tuple[dict[str, Rows], dict[str, TableRows]]:
    """Every query that can run, in one read transaction, fitted to the columns it finds.

    A row identical to the one at its place in ``kept`` (by query name) is that kept object.
    The queries ``plans`` names are whole tables read by rowid (``read_by_rowid``); their
    rowids come back too.
    """
    conn.execute("BEGIN")
    try:
        columns = {table: have for table in tables_of(queries.values()) if (have := _columns(conn, table))}
        by_rowid = read_by_rowid(conn, queries, columns, plans or {})
        result = {name: read.rows for name, read in by_rowid.items()}
        for name, sql in render_all({n: q for n, q in queries.items() if n not in result}, columns).items():
            params = (json.dumps(list(keys.get(name, ()))),) if KEYS in sql else ()
            cursor = conn.execute(sql.replace(KEYS, KEYS_SQL), params)
            # Plain tuples zipped with the names: twice as fast as sqlite3.Row turned into dicts.
            names = [column[0] for column in cursor.description]
            result[name] = reuse_identical(names, cursor.fetchall(), kept.get(name, []))
        return result, by_rowid
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
        if len(old) == len(names) and _identical(tuple(old.values()), row):
            rows.append(old)
        else:
            rows.append(dict(zip(names, row, strict=True)))
    rows += [dict(zip(names, row, strict=True)) for row in values[len(rows):]]
    return rows


ROWID_NAMES = ("rowid", "_rowid_", "oid")  # a column may take a name: the rowid keeps the others


@dataclass(frozen=True, slots=True)
class TablePlan:
    """How to read a whole table again: from ``last``, with the rowids ``changed`` since, as of WAL ``point``."""

    last: TableRead | None
    changed: frozenset[int] | None
    point: WalPoint | None
    index: SharedIndex  # where the WAL stands now


@dataclass(frozen=True, slots=True)
class TableRows:
    """A whole table in rowid order, each row's rowid, and whether it was read in part."""

    rows: Rows
    rowids: tuple[int, ...]
    partial: bool


def read_by_rowid(conn: sqlite3.Connection, queries: Mapping[str, Query | str], columns: dict[str, frozenset[str]],
                  plans: Mapping[str, TablePlan]) -> dict[str, TableRows]:
    """The planned whole-table queries, inside the caller's transaction; one without a rowid is left out.

    A table is read in part (``_read_changed``) when its plan allows; if the WAL then stands
    past a plan's ``point``, the snapshot may hold commits no ``changed`` covers, and those
    tables are read whole instead, in the same transaction.
    """
    reads = {}
    for name, plan in plans.items():
        query = queries[name]
        if isinstance(query, Query) and render(query, columns) is not None:  # MissingColumns as a read would
            read = _read_table(conn, query.table, columns[query.table.lower()], plan)
            if read is not None:
                reads[name] = read
    moved = [name for name, read in reads.items() if read.partial and plans[name].index.point() != plans[name].point]
    for name in moved:
        query = queries[name]
        assert isinstance(query, Query)
        whole = dataclasses.replace(plans[name], changed=None)
        read = _read_table(conn, query.table, columns[query.table.lower()], whole)
        assert read is not None
        reads[name] = read
    return reads


def _read_table(conn: sqlite3.Connection, name: str, have: frozenset[str], plan: TablePlan) -> TableRows | None:
    """One table by rowid, in part when ``plan`` allows; None when it has no rowid to go by."""
    rowid = next((alias for alias in ROWID_NAMES if alias not in have), None)
    if rowid is None:
        return None
    table = '"' + name.replace('"', '""') + '"'
    kept = dict(zip(plan.last.rowids, plan.last.rows, strict=True)) if plan.last is not None else {}
    try:
        if plan.last is not None and plan.changed is not None and plan.point is not None:
            partial = _read_changed(conn, table, rowid, plan.last, kept, plan.changed)
            if partial is not None:
                return TableRows(*partial, partial=True)
        cursor = conn.execute(f"SELECT {rowid}, * FROM {table} ORDER BY {rowid}")
    except sqlite3.OperationalError as exc:
        if "no such column" in str(exc):
            return None  # WITHOUT ROWID: read as written
        raise
    return TableRows(*_rows_by_rowid(cursor, kept), partial=False)


def _read_changed(conn: sqlite3.Connection, table: str, rowid: str, last: TableRead, kept: dict[int, dict[str, Any]],
                  changed: frozenset[int]) -> tuple[Rows, tuple[int, ...]] | None:
    """The table from ``last`` (``kept``: its rows by rowid) and the rows ``changed`` or new; None when a
    whole read is as cheap."""
    current = tuple(row[0] for row in conn.execute(f"SELECT {rowid} FROM {table} ORDER BY {rowid}"))
    needed = (changed & frozenset(current)) | (frozenset(current) - kept.keys())
    if len(needed) > max(8, len(current) // 2):
        return None
    cursor = conn.execute(f"SELECT {rowid}, * FROM {table} WHERE {rowid} IN {KEYS_SQL} ORDER BY {rowid}",
                          (json.dumps(sorted(needed)),))
    fresh_rows, fresh_ids = _rows_by_rowid(cursor, kept)
    if last.rows and fresh_rows and list(fresh_rows[0]) != list(last.rows[0]):
        return None  # the columns changed
    fresh = dict(zip(fresh_ids, fresh_rows, strict=True))
    if any(key not in fresh and key not in kept for key in current):
        return None
    return [fresh[key] if key in fresh else kept[key] for key in current], current


def _rows_by_rowid(cursor: sqlite3.Cursor, kept: dict[int, dict[str, Any]]) -> tuple[Rows, tuple[int, ...]]:
    """Rows (without the leading rowid) and their rowids; a row identical to the ``kept`` one of its rowid is it."""
    names = [column[0] for column in cursor.description][1:]
    fetched = cursor.fetchall()
    rowids = tuple(row[0] for row in fetched)
    if kept and list(next(iter(kept.values()))) != names:
        kept = {}  # other columns: nothing to reuse
    rows: Rows = []
    for key, row in zip(rowids, fetched, strict=True):
        values, old = row[1:], kept.get(key)
        if old is not None and _identical(tuple(old.values()), values):
            rows.append(old)
        else:
            rows.append(dict(zip(names, values, strict=True)))
    return rows, rowids


def _identical(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Same values of the same types (``1``, ``1.0`` and ``"1"`` differ)."""
    return old == new and tuple(map(type, old)) == tuple(map(type, new))


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
