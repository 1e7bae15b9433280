"""workflow-history read by its tail: after each kind of commit it publishes what a full read would.

Real SQLite files and a real PostgreSQL server; the history is made large (over
``SMALL_TABLE_ROWS``) so the tail path runs. The reference is the same channel reading every
query in full (``WholeHistory``); only the clocks are the test's.
"""

import asyncio
import datetime as dt
import sqlite3
from types import SimpleNamespace

import asyncpg
import pytest

from monitor.channels import workflow_history
from monitor.channels.history_tail import HistoryTail, WholeHistory
from monitor.settings import Settings
from monitor.sources.postgres import PostgresDatabase
from monitor.sources.sqlite import SqliteDatabase
from monitor.sources.tables import SMALL_TABLE_ROWS
from monitor.state import ChannelState

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
COLUMNS = ("adw_id", "status", "start_time", "duration_seconds", "actual_cost_total", "workflow_template")
STATUSES = ("completed", "failed", "running", "completed")


def run_row(i: int, status: str | None = None, days_ago: float | None = None) -> tuple:
    """A run: statuses, templates, costs and start times varied so totals and windows all move."""
    started = NOW - dt.timedelta(days=days_ago if days_ago is not None else 40 - i * 30 / 3000)
    return (f"run{i:05d}", status or STATUSES[i % 4], started.isoformat(), float(i % 7 * 60) or None,
            round(i % 5 * 0.25, 2), ("adw_sdlc_iso", "adw_patch_iso", None)[i % 3])


class History:
    """The workflow_history table of one backend: writes commit (and, on PostgreSQL, flush statistics)."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind, self.target = kind, target

    async def write(self, sql: str, *rows: tuple) -> None:
        """Run ``sql`` (``?`` placeholders) once, or once per row."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.target) as conn:
                conn.executemany(sql, rows) if rows else conn.execute(sql)
            conn.close()
            return
        sql = _numbered(sql)
        conn = await asyncpg.connect(self.target)
        try:
            await (conn.executemany(sql, rows) if rows else conn.execute(sql))
            await conn.execute("SELECT pg_stat_force_next_flush()")  # the counters the token reads
        finally:
            await conn.close()

    async def insert(self, *rows: tuple) -> None:
        """Insert runs made by ``run_row``."""
        await self.write(f"INSERT INTO workflow_history ({', '.join(COLUMNS)}) VALUES"
                         f" ({', '.join('?' * len(COLUMNS))})", *rows)


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …``."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" if i < len(parts) else part for i, part in enumerate(parts, 1))


@pytest.fixture
async def db(db_path):
    """A SqliteDatabase on the test file (it connects at its first read); closed afterwards."""
    database = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.5)
    yield database
    await database.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def history(request, tmp_path):
    """(History, Database) with SMALL_TABLE_ROWS + 100 runs; the database closed afterwards."""
    if request.param == "sqlite":
        path = request.getfixturevalue("db_path")
        table, db = History("sqlite", str(path)), SqliteDatabase(f"sqlite:///{path}", busy_timeout=0.5)
    else:
        url = request.getfixturevalue("postgres_db_url")
        table, db = History("postgres", url), PostgresDatabase(url)
    await table.insert(*(run_row(i) for i in range(SMALL_TABLE_ROWS + 100)))
    yield table, db
    await db.close()


class Readers:
    """The tail reader and the full-read reference on one database, with a monotonic clock the test moves."""

    def __init__(self, db) -> None:
        self.db, self.now = db, 0.0
        sources = SimpleNamespace(settings=Settings(), database=db)
        self.tail = workflow_history.make_reader(sources, clock=lambda: NOW)
        assert isinstance(self.tail.source, HistoryTail)
        self.tail.source.clock = lambda: self.now
        if hasattr(db, "_tables"):
            db._tables.clock = lambda: self.now  # the tokens' full_read_interval on the same clock
        whole = WholeHistory(db, workflow_history.DEFAULT_QUERIES)
        self.whole = workflow_history.WorkflowHistoryReader(whole, clock=lambda: NOW)
        self.shown: dict = {}

    async def read(self) -> dict:
        """The tail reader's published state (its last one if it read nothing new)."""
        data = await self.tail.read()
        if data is not None:
            self.shown = published(data)
        return self.shown

    async def reference(self) -> dict:
        """What a full read publishes now."""
        self.whole.source.cache._stamps.clear()
        return published(await self.whole.read())

    async def read_after(self, before: dict) -> dict:
        """Read until the state differs from ``before`` (PostgreSQL's counters flush within a second)."""
        for _ in range(50):
            if (state := await self.read()) != before:
                return state
            await asyncio.sleep(0.1)
        return state


def published(data) -> dict:
    """Summary and items as clients get them (meta carries the wall clock: left out)."""
    state = ChannelState("workflow-history", "e")
    state.accept(data)
    return {key: value for key, value in state.state.items() if key != "meta"}


@pytest.mark.parametrize("change", [
    ("INSERT", run_row(90001)),
    ("INSERT", run_row(90002, "running", days_ago=60)),  # new, but older than the newest 500: not shown
    ("UPDATE", f"UPDATE workflow_history SET status = 'failed', actual_cost_total = 9.5"
               f" WHERE adw_id = 'run{SMALL_TABLE_ROWS + 99:05d}'"),
    ("UPDATE", f"UPDATE workflow_history SET start_time = '2026-02-01T00:00:00+00:00'"
               f" WHERE adw_id = 'run{SMALL_TABLE_ROWS + 90:05d}'"),  # leaves the newest 500
])
async def test_appends_and_recent_changes_read_by_the_tail_match_a_full_read(history, change):
    table, db = history
    readers = Readers(db)
    before = await readers.read()
    kind, what = change
    await (table.insert(what) if kind == "INSERT" else table.write(what))
    after = await readers.read_after(before)
    assert after != before and after == await readers.reference()
    assert readers.tail.source.rebases == 1


async def test_a_deleted_recent_row_is_gone_at_once(history):
    table, db = history
    readers = Readers(db)
    before = await readers.read()
    await table.write(f"DELETE FROM workflow_history WHERE adw_id = 'run{SMALL_TABLE_ROWS + 95:05d}'")
    after = await readers.read_after(before)
    assert after["summary"]["total"] == SMALL_TABLE_ROWS + 99 and after == await readers.reference()
    assert readers.tail.source.rebases == 1


@pytest.mark.parametrize("change", ["UPDATE workflow_history SET status = 'failed' WHERE adw_id = 'run00008'",
                                    "DELETE FROM workflow_history WHERE adw_id = 'run00008'"])
async def test_an_old_row_change_is_seen_once_the_full_read_interval_passed(history, change):
    table, db = history
    readers = Readers(db)
    before = await readers.read()
    await table.write(change)
    await table.insert(run_row(90003))  # a tail commit after it: the tokens take the table as verified
    shown = await readers.read_after(before)
    # the new run counts at once; run00008 (completed) is below the cut: not yet
    assert shown["summary"]["completed"] == before["summary"]["completed"] + 1
    readers.now = 60.0  # no commit since: the next poll rebases anyway
    assert await readers.read() == await readers.reference()
    assert readers.tail.source.rebases == 2


async def test_a_tail_past_its_limit_rebases(history):
    table, db = history
    readers = Readers(db)
    readers.tail.source.tail_limit = 100
    before = await readers.read()
    await table.insert(*(run_row(i) for i in range(91000, 91100)))
    after = await readers.read_after(before)
    assert after == await readers.reference() and readers.tail.source.rebases == 2


async def test_a_small_table_is_read_whole_on_every_commit(db_path, db):
    table = History("sqlite", str(db_path))
    await table.insert(*(run_row(i) for i in range(20)))
    readers = Readers(db)
    before = await readers.read()
    await table.write("UPDATE workflow_history SET status = 'running' WHERE adw_id = 'run00000'")
    after = await readers.read()
    assert after["summary"]["running"] == before["summary"]["running"] + 1
    assert after == await readers.reference() and readers.tail.source.rebases == 1


async def test_a_table_without_an_id_column_is_read_whole(db_path, db):
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TABLE workflow_history")
        conn.execute("CREATE TABLE workflow_history (adw_id TEXT, status TEXT, start_time TEXT)")
        conn.execute("INSERT INTO workflow_history VALUES ('a1', 'completed', '2026-03-01T10:00:00')")
    conn.close()
    state = await Readers(db).read()
    assert list(state["items"]) == ["a1"] and state["summary"]["completed"] == 1


async def test_a_replaced_database_file_is_read_afresh(db_path, db, tmp_path):
    table = History("sqlite", str(db_path))
    await table.insert(*(run_row(i) for i in range(SMALL_TABLE_ROWS + 100)))
    readers = Readers(db)
    await readers.read()
    other = tmp_path / "other.db"
    source, copy = sqlite3.connect(db_path), sqlite3.connect(other)
    source.backup(copy)  # the same schema and rows, then another history
    copy.execute("DELETE FROM workflow_history WHERE id > 5")
    copy.commit()
    source.close()
    copy.close()
    other.replace(db_path)
    state = await readers.read()
    assert state["summary"]["total"] == 5 and state == await readers.reference()


async def test_ids_that_are_not_integers_are_read_whole_not_written_into_sql(db_path, db):
    with sqlite3.connect(db_path) as conn:
        conn.execute("DROP TABLE workflow_history")
        conn.execute("CREATE TABLE workflow_history (id, adw_id TEXT, status TEXT, start_time TEXT)")
        conn.executemany("INSERT INTO workflow_history VALUES (?, ?, 'completed', '2026-03-01T10:00:00')",
                         [(i, f"run{i:05d}") for i in range(SMALL_TABLE_ROWS + 10)])
        conn.execute("UPDATE workflow_history SET id = '1) OR (1=1' WHERE id = 5")  # hostile text: sorts last
        conn.execute("UPDATE workflow_history SET id = 1500.5 WHERE id = 1500")  # among the base's newest 500
    conn.close()
    readers = Readers(db)
    state = await readers.read()
    assert state["summary"]["total"] == SMALL_TABLE_ROWS + 10 and state == await readers.reference()
    assert readers.tail.source.rebases == 0  # read whole: no id went into SQL text
