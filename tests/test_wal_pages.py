"""A WAL database: a commit moves exactly the small tables whose pages it wrote, and never misses one."""

import hashlib
import os
import random
import sqlite3

import pytest

from monitor.sources.sqlite import SqliteDatabase
from monitor.sources.wal_pages import WalFrames

SMALL = ("phase_queue", "planned_features", "queue_config", "task_logs", "workflow_history")


@pytest.fixture
def wal_path(db_path):
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return db_path


@pytest.fixture
def writer(wal_path):
    conn = sqlite3.connect(wal_path, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint=0")  # the tests checkpoint when they mean to

    def write(sql, *params):
        conn.execute(sql, params)  # autocommit: each statement its own commit

    write.conn = conn
    yield write
    conn.close()


@pytest.fixture
async def wal_db(wal_path, writer):
    writer("INSERT INTO planned_features (item_type, title) VALUES ('feature', 'first')")  # the WAL exists
    db = SqliteDatabase(f"sqlite:///{wal_path}", busy_timeout=0.2)
    await db.table_tokens(SMALL)  # the first look knows nothing: everything counts as moved
    writer("UPDATE queue_config SET config_value = 'listed'")
    await db.table_tokens(SMALL)  # the next one lists the pages (everything moves once more)
    yield db
    await db.close()


def moved(before, after):
    return {table for table in before if before[table] != after[table]}


async def moved_by(db, write, sql, *params, tables=SMALL):
    """The tables whose tokens one commit of ``sql`` moved."""
    before = await db.table_tokens(tables)
    write(sql, *params)
    return moved(before, await db.table_tokens(tables))


async def test_a_queue_commit_moves_the_queue_and_no_other_small_table(wal_db, writer):
    insert = "INSERT INTO phase_queue (queue_id, feature_id, phase_number, status) VALUES ('q1', 1, 1, 'queued')"
    assert await moved_by(wal_db, writer, insert) == {"phase_queue"}


async def test_a_commit_to_another_table_moves_that_table(wal_db, writer):
    assert await moved_by(wal_db, writer, "UPDATE planned_features SET title = 'renamed'") == {"planned_features"}


async def test_creating_a_missing_table_moves_it(wal_db, writer):
    assert await moved_by(wal_db, writer, "CREATE TABLE late_table (x)", tables=["late_table"]) == {"late_table"}


async def test_a_restarted_wal_moves_everything_until_the_pages_are_listed_again(wal_db, writer):
    writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for value in ("true", "false"):  # a new WAL generation: unknown, then the pages listed afresh
        assert await moved_by(wal_db, writer, "UPDATE queue_config SET config_value = ?", value) == set(SMALL)
    assert await moved_by(wal_db, writer, "UPDATE queue_config SET config_value = 'true'") == {"queue_config"}


async def test_a_schema_change_moves_every_table(wal_db, writer):
    assert await moved_by(wal_db, writer, "ALTER TABLE task_logs ADD COLUMN extra TEXT") == set(SMALL)


async def test_a_view_moves_with_every_commit(wal_db, writer):
    writer("CREATE VIEW late_view AS SELECT * FROM planned_features")
    for _ in range(2):  # the schema change, then the listing
        await wal_db.table_tokens(["late_view"])
        writer("UPDATE queue_config SET config_value = 'x'")
    change = "UPDATE planned_features SET title = 'seen through the view'"
    assert await moved_by(wal_db, writer, change, tables=["late_view"]) == {"late_view"}


async def test_a_rollback_journal_database_moves_every_small_table(db_path):
    frames = WalFrames(db_path)
    assert frames.committed_pages() is None
    db = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.2)
    try:
        before = await db.table_tokens(SMALL)
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE queue_config SET config_value = 'true'")
        conn.close()
        assert moved(before, await db.table_tokens(SMALL)) == set(SMALL)
    finally:
        await db.close()


def contents(conn):
    """A digest of every small table's rows, to tell which a commit really changed."""
    digests = {}
    for table in SMALL:
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()  # noqa: S608 - fixed names
        digests[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digests


def random_write(rng, write):
    """One random commit: short and long values (overflow and new pages), deletions, or a checkpoint."""
    text, row = "x" * rng.choice((1, 50, 3000, 9000)), rng.randint(1, 40)
    writes = (
        ("INSERT INTO phase_queue (queue_id, feature_id, phase_number, status, phase_data)"
         " VALUES (?, 1, 1, 'queued', ?)",
         (f"q{rng.getrandbits(40)}", text)),
        ("UPDATE phase_queue SET phase_data = ? WHERE rowid = ?", (text, row)),
        ("DELETE FROM phase_queue WHERE rowid = ?", (row,)),
        ("INSERT INTO planned_features (item_type, title, description) VALUES ('feature', 't', ?)", (text,)),
        ("UPDATE planned_features SET description = ? WHERE rowid = ?", (text, row)),
        ("INSERT INTO task_logs (adw_id, issue_number, phase_name, phase_number, phase_status, log_message)"
         " VALUES ('r', 1, 'build', 1, 'started', ?)", (text,)),
        ("UPDATE queue_config SET config_value = ?", (text,)),
    )
    if rng.random() < 0.1:
        write.conn.execute(f"PRAGMA wal_checkpoint({rng.choice(('PASSIVE', 'TRUNCATE', 'RESTART'))})")
        return
    sql, params = rng.choice(writes)
    write(sql, *params)  # a statement that changes no row still commits


async def test_random_commits_never_leave_a_changed_table_unmoved(wal_db, writer, wal_path):
    rng, reader = random.Random(20261203), sqlite3.connect(wal_path)
    try:
        seen, tokens, exact = contents(reader), await wal_db.table_tokens(SMALL), 0
        for _ in range(300):
            random_write(rng, writer)
            now, after = contents(reader), await wal_db.table_tokens(SMALL)
            changed = {table for table in SMALL if now[table] != seen[table]}
            assert changed <= moved(tokens, after)
            exact += changed == moved(tokens, after)
            seen, tokens = now, after
        assert exact >= 150, "most commits move only the tables they changed"
    finally:
        reader.close()


@pytest.mark.parametrize("wal, shm", [(b"", b""), (b"\xff" * 32, b"\x00" * 96), (os.urandom(5000), os.urandom(200)),
                                      (b"\x37\x7f\x06\x82" + b"\xff" * 28, (b"\x01" * 48) * 2)])
def test_garbage_wal_files_are_unknown_not_a_crash(tmp_path, wal, shm):
    database = tmp_path / "garbage.db"
    database.with_name("garbage.db-wal").write_bytes(wal)
    database.with_name("garbage.db-shm").write_bytes(shm)
    frames = WalFrames(database)
    assert frames.committed_pages() is None and frames.committed_pages() is None
