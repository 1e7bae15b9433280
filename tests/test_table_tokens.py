"""Per-table change tokens: a commit moves the tokens of the tables it touched, and only those.

Unit tests drive ``TableTokens`` with a scripted probe and clock; the rest use real SQLite
files and a real PostgreSQL server, with workflow_history made large (over
``SMALL_TABLE_ROWS``) so it is compared by its signature rather than re-read.
"""

import asyncio
import sqlite3

import asyncpg
import pytest

from monitor.sources.postgres import PostgresDatabase
from monitor.sources.sqlite import SqliteDatabase
from monitor.sources.tables import SMALL_TABLE_ROWS, WHOLE_DATABASE, TableTokens

LARGE = SMALL_TABLE_ROWS + 100
HISTORY_ROW = ("INSERT INTO workflow_history (adw_id, status, start_time) VALUES ({mark}, 'completed', "
               "'2026-03-01T10:00:00')")


class Script:
    """A probe answering the signatures it is given, and a clock the test moves."""

    def __init__(self, **signatures):
        self.signatures = dict(signatures)
        self.now = 0.0
        self.probed: list[str] = []

    async def probe(self, tables):
        self.probed += sorted(tables)
        return {table: self.signatures.get(table) for table in tables}


async def test_a_small_table_moves_with_every_commit_a_large_one_with_its_signature():
    script, tokens = Script(big=("sig", 1)), TableTokens(60.0, clock=lambda: 0.0)
    before = await tokens.tokens(["small", "big"], "commit-1", script.probe)
    after = await tokens.tokens(["small", "big"], "commit-2", script.probe)
    assert after["small"] != before["small"] and after["big"] == before["big"]
    script.signatures["big"] = ("sig", 2)
    moved = await tokens.tokens(["small", "big"], "commit-3", script.probe)
    assert moved["big"] != after["big"]


async def test_an_unchanged_database_probes_nothing():
    script, tokens = Script(big=("sig", 1)), TableTokens(60.0, clock=lambda: 0.0)
    first = await tokens.tokens(["small", "big"], "commit-1", script.probe)
    script.probed.clear()
    assert await tokens.tokens(["small", "big"], "commit-1", script.probe) == first
    assert script.probed == []


async def test_a_commit_the_signature_missed_is_read_after_the_full_read_interval():
    script = Script(big=("sig", 1))
    tokens = TableTokens(60.0, clock=lambda: script.now)
    first = await tokens.tokens(["big"], "commit-1", script.probe)
    assert await tokens.tokens(["big"], "commit-2", script.probe) == first  # an older row changed, maybe
    script.now = 59.0
    assert await tokens.tokens(["big"], "commit-2", script.probe) == first
    script.now = 60.0
    due = await tokens.tokens(["big"], "commit-2", script.probe)
    assert due != first
    script.now = 500.0  # verified by that read: nothing more is due until the next commit
    assert await tokens.tokens(["big"], "commit-2", script.probe) == due


async def test_a_lagging_signature_is_probed_again_while_unverified():
    script = Script(big=("counters", 1))
    tokens = TableTokens(60.0, signature_lags=True, clock=lambda: script.now)
    first = await tokens.tokens(["big"], "commit-1", script.probe)
    assert await tokens.tokens(["big"], "commit-2", script.probe) == first  # counters not flushed yet
    script.signatures["big"], script.now = ("counters", 2), 1.0
    assert await tokens.tokens(["big"], "commit-2", script.probe) != first


async def test_the_whole_database_has_the_database_token_and_forget_starts_afresh():
    script, tokens = Script(), TableTokens(60.0, clock=lambda: 0.0)
    first = await tokens.tokens(["t", WHOLE_DATABASE], "commit-1", script.probe)
    assert first[WHOLE_DATABASE] == "commit-1" and script.probed == ["t"]
    tokens.forget()
    assert (await tokens.tokens(["t"], "commit-1", script.probe))["t"] != first["t"]


def fill_history(path, rows):
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO workflow_history (adw_id, status, start_time) VALUES (?, 'completed', ?)",
                         [(f"run{i:05d}", "2026-03-01T10:00:00") for i in range(rows)])
    conn.close()


def write(path, sql, *params):
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)
    conn.close()


@pytest.fixture
async def sqlite_db(db_path):
    fill_history(db_path, LARGE)
    db = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.2)
    yield db
    await db.close()


TABLES = ("phase_queue", "workflow_history")


async def test_sqlite_a_queue_commit_leaves_a_large_history_unmoved(sqlite_db, queue_table):
    before = await sqlite_db.table_tokens(TABLES)
    queue_table.insert()
    after = await sqlite_db.table_tokens(TABLES)
    assert after["phase_queue"] != before["phase_queue"]
    assert after["workflow_history"] == before["workflow_history"]


@pytest.mark.parametrize("change", [
    "INSERT INTO workflow_history (adw_id, status) VALUES ('new-run', 'running')",
    f"UPDATE workflow_history SET status = 'failed' WHERE adw_id = 'run{LARGE - 1:05d}'",
    f"DELETE FROM workflow_history WHERE adw_id = 'run{LARGE - 2:05d}'",
])
async def test_sqlite_inserts_deletes_and_recent_updates_move_a_large_table(sqlite_db, db_path, change):
    before = await sqlite_db.table_tokens(TABLES)
    write(db_path, change)
    after = await sqlite_db.table_tokens(TABLES)
    assert after["workflow_history"] != before["workflow_history"]


@pytest.mark.parametrize("change", ["UPDATE workflow_history SET status = 'failed' WHERE adw_id = 'run00000'",
                                    "DELETE FROM workflow_history WHERE adw_id = 'run00000'"])
async def test_sqlite_an_old_row_change_is_read_in_full_later(db_path, change):
    fill_history(db_path, LARGE)
    now = [0.0]
    db = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.2, full_read_interval=30.0)
    db._tables.clock = lambda: now[0]  # the clock is the only thing not real here
    try:
        before = await db.table_tokens(TABLES)
        write(db_path, change)
        assert (await db.table_tokens(TABLES))["workflow_history"] == before["workflow_history"]
        now[0] = 30.0
        assert (await db.table_tokens(TABLES))["workflow_history"] != before["workflow_history"]
    finally:
        await db.close()


async def test_sqlite_a_missing_table_counts_as_moved_with_every_commit(sqlite_db, queue_table):
    before = await sqlite_db.table_tokens(["no_such_table"])
    queue_table.insert()
    assert await sqlite_db.table_tokens(["no_such_table"]) != before


async def test_sqlite_keyed_queries_read_only_their_keys(sqlite_db):
    sql = "SELECT adw_id FROM workflow_history WHERE adw_id IN {@keys} ORDER BY adw_id"
    rows = await sqlite_db.fetch_many({"some": sql, "none": sql}, {"some": ["run00002", "run00001", "absent"]})
    assert rows == {"some": [{"adw_id": "run00001"}, {"adw_id": "run00002"}], "none": []}


async def test_sqlite_reads_run_side_by_side(sqlite_db):
    slow = "SELECT count(*) AS n FROM workflow_history a, workflow_history b WHERE a.id < 300 AND b.id < 300"
    results = await asyncio.gather(*(sqlite_db.fetch_many({"n": slow}) for _ in range(3)))
    assert results == [{"n": [{"n": 299 * 299}]}] * 3
    assert len(sqlite_db._idle) == 3  # one connection each: none waited for another's


async def fill_postgres_history(url, rows):
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany("INSERT INTO workflow_history (adw_id, status, start_time) VALUES ($1, 'completed', $2)",
                               [(f"run{i:05d}", "2026-03-01T10:00:00") for i in range(rows)])
    finally:
        await conn.close()


async def write_postgres(url, sql):
    """Commit ``sql`` and flush its statistics, as a writer going idle does within a second."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()


@pytest.fixture
async def pg_large(postgres_db_url):
    await fill_postgres_history(postgres_db_url, LARGE)
    db = PostgresDatabase(postgres_db_url)
    yield db
    await db.close()


async def moved_within(db, table, before, polls=100):
    """Whether ``table``'s token moves within ``polls`` probes a tenth of a second apart (stats flush late)."""
    for _ in range(polls):
        if (await db.table_tokens([table]))[table] != before:
            return True
        await asyncio.sleep(0.1)
    return False


async def test_postgres_a_queue_commit_leaves_a_large_history_unmoved(pg_large, postgres_db_url):
    before = await pg_large.table_tokens(TABLES)
    await write_postgres(postgres_db_url, "INSERT INTO phase_queue (queue_id, feature_id, phase_number, status)"
                                          " VALUES ('q-1', 1, 1, 'queued')")
    after = await pg_large.table_tokens(TABLES)
    assert after["phase_queue"] != before["phase_queue"]
    assert after["workflow_history"] == before["workflow_history"]


async def test_postgres_an_update_to_a_large_table_moves_it(pg_large, postgres_db_url):
    before = (await pg_large.table_tokens(TABLES))["workflow_history"]
    await write_postgres(postgres_db_url, "UPDATE workflow_history SET status = 'failed' WHERE adw_id = 'run00000'")
    assert await moved_within(pg_large, "workflow_history", before)


async def test_postgres_keyed_queries_read_only_their_keys(pg_large):
    sql = "SELECT adw_id FROM workflow_history WHERE adw_id IN {@keys} ORDER BY adw_id"
    rows = await pg_large.fetch_many({"some": sql, "none": sql}, {"some": ["run00002", "run00001", "absent"]})
    assert rows == {"some": [{"adw_id": "run00001"}, {"adw_id": "run00002"}], "none": []}
