"""The alerts' memory across restarts: their state and their log, in the console's history file.

Two tables of their own in the ``[history] path`` file, through a connection of their
own (aiosqlite: every statement runs off the event loop): ``alert_state`` (each pending
or firing alert: since, fired_at, last_sent), so a restarted console does not send again
what it sent, and ``alert_log`` (every event, the newest ``LOG_ROWS`` kept). The newest
events are also kept in memory, which is what ``recent`` reads.

A file that cannot be opened or written (no permission, not SQLite, tables of another
shape) is one warning, ``alerts_store_unavailable``; the alerts then live in memory for
this run. Open it after the history (``History.open``), which sets a corrupt file aside.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiosqlite
import structlog

from monitor.alerts.engine import AlertEntry, AlertEvent
from monitor.history.paths import history_path

log = structlog.get_logger(__name__)

BUSY_TIMEOUT = 2.0  # seconds a statement waits on another writer (the history's own connection)
LOG_ROWS = 10_000  # events kept in the file
MEMORY_EVENTS = 500  # newest events kept in memory for ``recent``
SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (rule TEXT NOT NULL, key TEXT NOT NULL, summary TEXT NOT NULL,
                                        channel TEXT NOT NULL, since REAL NOT NULL, fired_at REAL, last_sent REAL,
                                        PRIMARY KEY (rule, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_log (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, rule TEXT NOT NULL,
                                      key TEXT NOT NULL, summary TEXT NOT NULL, channel TEXT NOT NULL,
                                      since REAL NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alert_outbox (receiver TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
                                         queued_at REAL NOT NULL);
"""
TABLES: Mapping[str, tuple[str, ...]] = {
    "alert_state": ("rule", "key", "summary", "channel", "since", "fired_at", "last_sent"),
    "alert_log": ("id", "kind", "rule", "key", "summary", "channel", "since", "at"),
    # Messages a stopping console had not delivered; ``receiver`` is the URL's SHA-256, never the URL (a secret).
    "alert_outbox": ("receiver", "title", "body", "queued_at"),
}
EVENT_COLUMNS = "kind, rule, key, summary, channel, since, at"


def alerts_path(configured: str) -> Path:
    """The file the alerts are kept in: the history's (``[history] path``, or its default)."""
    return history_path(configured)


class AlertStore:
    """The alerts' state and log in a SQLite file; in memory only when there is none, or it fails."""

    def __init__(self) -> None:
        self.conn: aiosqlite.Connection | None = None
        self.path: Path | None = None
        self.write_errors = 0
        self._events: deque[AlertEvent] = deque(maxlen=MEMORY_EVENTS)
        self._saved: tuple[AlertEntry, ...] | None = None
        self._unwritten: list[AlertEvent] = []  # events a failed write left out of the file
        self._failing = False

    async def open(self, path: Path | None) -> None:
        """Open (or create) the alert tables in the file at ``path``; None or a failure: memory only."""
        self.path = path
        if path is None:
            return
        try:
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            self.conn = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT)
            await self.conn.execute("PRAGMA journal_mode=WAL")
            await self.conn.executescript(SCHEMA)
            await self._check_schema()
            self._events.extend(await self._newest(MEMORY_EVENTS))
        except (OSError, sqlite3.Error, ValueError) as exc:
            await self.close()
            log.warning("alerts_store_unavailable", path=str(path), reason=str(exc),
                        meanwhile="alerts kept in memory for this run only")

    async def _check_schema(self) -> None:
        assert self.conn is not None
        for table, columns in TABLES.items():
            found = tuple(row[1] for row in await self.conn.execute_fetchall(f"PRAGMA table_info({table})"))
            if found != columns:
                raise ValueError(f"wrong schema: {table} has columns {', '.join(found)}")

    async def load(self) -> tuple[AlertEntry, ...]:
        """The alerts saved by the last run (none without a file)."""
        if self.conn is None:
            return ()
        try:
            rows = await self.conn.execute_fetchall(
                "SELECT rule, key, summary, channel, since, fired_at, last_sent FROM alert_state")
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return ()
        entries = tuple(AlertEntry(*row) for row in rows)
        self._saved = entries
        return entries

    def note(self, events: Sequence[AlertEvent]) -> None:
        """Remember ``events`` for ``recent`` without writing them (a console that does not send the alerts)."""
        self._events.extend(events)

    async def save(self, events: Sequence[AlertEvent], entries: Sequence[AlertEntry]) -> None:
        """Log ``events`` and replace the saved state by ``entries`` (``engine.state()``); nothing new: no write."""
        self._events.extend(events)
        entries = tuple(entries)
        if self.conn is None:
            return
        self._unwritten.extend(events)
        if not self._unwritten and entries == self._saved:
            return
        try:
            await self._write(self._unwritten, entries)
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return
        self._saved, self._unwritten = entries, []
        if self._failing:
            self._failing = False
            log.info("alerts_store_writing_again", path=str(self.path))

    async def _write(self, events: Sequence[AlertEvent], entries: tuple[AlertEntry, ...]) -> None:
        assert self.conn is not None
        try:
            await self.conn.execute("DELETE FROM alert_state")
            await self.conn.executemany(
                "INSERT INTO alert_state (rule, key, summary, channel, since, fired_at, last_sent) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(e.rule, e.key, e.summary, e.channel, e.since, e.fired_at, e.last_sent) for e in entries])
            await self.conn.executemany(
                f"INSERT INTO alert_log ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(e.kind, e.rule, e.key, e.summary, e.channel, e.since, e.at) for e in events])
            await self.conn.execute("DELETE FROM alert_log WHERE id <= (SELECT MAX(id) FROM alert_log) - ?",
                                    (LOG_ROWS,))
            await self.conn.commit()
        except sqlite3.Error:
            await self.conn.rollback()
            raise

    def _write_failed(self, exc: sqlite3.Error) -> None:
        # Logged once per run of failures: the next save tries again.
        self.write_errors += 1
        del self._unwritten[:-LOG_ROWS]  # the file keeps no more than that anyway
        if not self._failing:
            self._failing = True
            log.warning("alerts_store_write_failed", path=str(self.path), reason=str(exc),
                        meanwhile="alerts kept in memory; the next change is written again")

    async def _newest(self, limit: int) -> list[AlertEvent]:
        assert self.conn is not None
        rows = await self.conn.execute_fetchall(
            f"SELECT {EVENT_COLUMNS} FROM alert_log ORDER BY id DESC LIMIT ?", (limit,))
        return [AlertEvent(*row) for row in reversed(list(rows))]

    async def recent(self, limit: int = 100) -> list[AlertEvent]:
        """The newest ``limit`` events (at most ``MEMORY_EVENTS``), newest first."""
        newest = list(self._events)[-limit:] if limit > 0 else []
        return newest[::-1]

    async def keep_outbox(self, rows: Sequence[tuple[str, str, str, float]]) -> None:
        """Keep undelivered messages (receiver hash, title, body, queued at) for the next run; failures are logged."""
        if self.conn is None or not rows:
            return
        try:
            await self.conn.executemany("INSERT INTO alert_outbox VALUES (?, ?, ?, ?)", rows)
            await self.conn.commit()
        except sqlite3.Error as exc:
            log.warning("alerts_outbox_lost", path=str(self.path), messages=len(rows), reason=str(exc))

    async def take_outbox(self) -> list[tuple[str, str, str, float]]:
        """What the last run left undelivered, oldest first; taken out of the file."""
        if self.conn is None:
            return []
        try:
            rows = await self.conn.execute_fetchall(
                "SELECT receiver, title, body, queued_at FROM alert_outbox ORDER BY rowid")
            await self.conn.execute("DELETE FROM alert_outbox")
            await self.conn.commit()
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return []
        return [(str(r), str(t), str(b), float(q)) for r, t, b, q in rows]

    async def close(self) -> None:
        """Close the file (the memory stays readable)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()
