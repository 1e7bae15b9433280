"""Opening the history file: created when missing, set aside and recreated when unusable, never a crash.

A file that is not SQLite, fails ``PRAGMA quick_check`` or holds another schema is
renamed to ``<path>.corrupt-<UTC time>`` (with its ``-wal`` and ``-shm`` files; nothing is
deleted), a fresh one is created and one warning, ``history_file_recreated``, says why.
A file that cannot be opened or written at all (no permission, a read-only disk, a
directory that cannot be made) raises ``HistoryUnavailable``: the console then runs
without a history file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
from pathlib import Path

import aiosqlite
import structlog

from monitor.history.store import SCHEMA, SCHEMA_VERSION, TABLES, HistoryStore

log = structlog.get_logger(__name__)

BUSY_TIMEOUT = 2.0  # seconds a statement waits on another writer (a second console on the same file)
SIDE_FILES = ("-wal", "-shm")
# Tables others keep in the same file (monitor.alerts.store): neither history tables nor a sign of another file.
GUEST_TABLE_PREFIX = "alert_"


class HistoryUnavailable(Exception):
    """The history file cannot be opened or written; the message says why."""


async def open_store(path: Path) -> HistoryStore:
    """The history file at ``path``, ready to write; ``HistoryUnavailable`` when it cannot be."""
    try:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        raise HistoryUnavailable(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    conn = await _connect(path)
    problem = await _problem(conn)
    if problem is not None:
        await conn.close()
        try:
            moved_to = await asyncio.to_thread(set_aside, path)
        except OSError as exc:
            raise HistoryUnavailable(f"cannot set {path} aside ({problem}): {exc.strerror or exc}") from None
        log.warning("history_file_recreated", path=str(path), reason=problem, moved_to=str(moved_to))
        conn = await _connect(path)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit is not an fsync; a crash loses seconds
        await conn.executescript(SCHEMA)
        store = HistoryStore(conn, str(path))
        await store.load_ids()
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise HistoryUnavailable(f"cannot write {path}: {exc}") from None
    return store


async def _connect(path: Path) -> aiosqlite.Connection:
    try:
        return await aiosqlite.connect(path, timeout=BUSY_TIMEOUT)
    except (sqlite3.Error, OSError) as exc:
        raise HistoryUnavailable(f"cannot open {path}: {exc}") from None


async def _problem(conn: aiosqlite.Connection) -> str | None:
    """Why the open file is unusable as a history file; None when it is one, or empty."""
    try:
        check = [row[0] for row in await conn.execute_fetchall("PRAGMA quick_check")]
        if check != ["ok"]:
            return "failed PRAGMA quick_check: " + "; ".join(map(str, check[:3]))
        return await _schema_problem(conn)
    except sqlite3.OperationalError as exc:  # locked, unreadable: the file is not known to be bad
        await conn.close()
        raise HistoryUnavailable(f"cannot read the history file: {exc}") from None
    except sqlite3.DatabaseError as exc:
        return f"not a usable SQLite file: {exc}"


async def _schema_problem(conn: aiosqlite.Connection) -> str | None:
    tables = {row[0] for row in await conn.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        if not row[0].startswith(GUEST_TABLE_PREFIX)}
    if not tables:
        return None  # an empty file (or one just created): the schema is added
    if tables != set(TABLES):
        return f"not a history file: tables {', '.join(sorted(tables))}"
    for table, columns in TABLES.items():
        found = tuple(row[1] for row in await conn.execute_fetchall(f"PRAGMA table_info({table})"))
        if found != columns:
            return f"wrong schema: {table} has columns {', '.join(found)}"
    version = [row[0] for row in await conn.execute_fetchall("SELECT value FROM meta WHERE key = 'schema'")]
    if version != [SCHEMA_VERSION]:
        return f"schema version {version[0] if version else 'missing'}, expected {SCHEMA_VERSION}"
    return None


def set_aside(path: Path) -> Path:
    """Rename ``path`` (and its WAL files) to ``<path>.corrupt-<UTC time>``; the new name."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    attempt = 1
    while target.exists():  # twice in one second: never replace an earlier copy
        attempt += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{attempt}")
    os.replace(path, target)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target
