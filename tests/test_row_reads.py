"""A whole table read again in part: the rows a commit's WAL pages name, and new ones; never a stale row."""

import asyncio
import random
import sqlite3
import sys

import pytest

from monitor.channels.dbreader import QueryCache
from monitor.channels.queue import DEFAULT_QUERIES
from monitor.sources.btree_pages import leaf_rowids, read_varint
from monitor.sources.schema import Query
from monitor.sources.sqlite import SqliteDatabase

PHASE_QUEUE = DEFAULT_QUERIES["phase_queue"]


@pytest.fixture
def writer(db_path):
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # the tests checkpoint when they mean to
    conn.executemany("INSERT INTO phase_queue (queue_id, feature_id, phase_number, status, phase_data)"
                     " VALUES (?, 1, 1, 'queued', ?)", [(f"seed{n}", "s" * (n % 7 * 40)) for n in range(200)])
    yield conn
    conn.close()


@pytest.fixture
async def wal_db(db_path, writer):
    db = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.2)
    yield db
    await db.close()


def table_now(db_path, table="phase_queue", order=" ORDER BY rowid"):
    """The table as a plain read sees it, in rowid order."""
    conn = sqlite3.connect(db_path)
    try:
        cursor = conn.execute(f"SELECT * FROM {table}{order}")  # noqa: S608 - fixed names
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]
    finally:
        conn.close()


def typed(rows):
    """Rows with each value's type beside it: ``1``, ``1.0`` and ``True`` compare equal, and are not."""
    return [[(name, type(value), value) for name, value in row.items()] for row in rows]


async def read_whole_table(db, last):
    """phase_queue read by ``fetch_tables`` from ``last``."""
    _, reads = await db.fetch_tables({"phase_queue": PHASE_QUEUE}, {}, {}, {"phase_queue": last})
    return reads["phase_queue"]


def random_commit(rng, conn):
    """One commit to phase_queue or beside it: long values (overflow pages), same-size overwrites, odd rowids."""
    size = rng.choice((1, 60, 3000, 9000))
    text, row = rng.choice("xyz") * size, rng.randint(-3, 210)
    writes = (
        ("INSERT INTO phase_queue (queue_id, feature_id, phase_number, status, phase_data) VALUES (?, 1, 1, ?, ?)",
         (f"q{rng.getrandbits(40)}", rng.choice(("queued", "ready")), text)),
        ("INSERT INTO phase_queue (rowid, queue_id, feature_id, phase_number, status) VALUES (?, ?, 1, 1, 'queued')",
         (rng.choice((-(2 ** 63), -7, 2 ** 40 + rng.randint(0, 9), 2 ** 63 - 1 - rng.randint(0, 3))),
          f"odd{rng.getrandbits(40)}")),
        ("UPDATE phase_queue SET phase_data = ? WHERE rowid = ?", (text, row)),  # same size: written in place
        # the last byte of a long value: only an overflow page changes, no leaf
        ("UPDATE phase_queue SET phase_data = substr(phase_data, 1, length(phase_data) - 1) || ?"
         " WHERE rowid = ? AND length(phase_data) > 5000", (rng.choice("abc"), row)),
        ("UPDATE phase_queue SET status = ?, priority = ? WHERE rowid = ?", ("running", rng.randint(0, 9), row)),
        ("UPDATE phase_queue SET priority = 1.0 WHERE rowid = ?", (row,)),  # 1 → 1.0 is a change
        ("DELETE FROM phase_queue WHERE rowid = ?", (row,)),
        ("DELETE FROM phase_queue WHERE rowid IN (SELECT rowid FROM phase_queue ORDER BY random() LIMIT 5)", ()),
        ("INSERT INTO planned_features (item_type, title, description) VALUES ('feature', 't', ?)", (text,)),
        ("DELETE FROM planned_features WHERE rowid IN (SELECT rowid FROM planned_features LIMIT 3)", ()),
    )
    if rng.random() < 0.03:
        conn.execute(f"PRAGMA wal_checkpoint({rng.choice(('PASSIVE', 'TRUNCATE', 'RESTART'))})")
        return
    sql, params = rng.choice(writes)
    try:
        conn.execute(sql, params)
    except sqlite3.IntegrityError:
        pass  # that odd rowid is taken


async def test_random_commits_read_in_part_equal_a_whole_read(wal_db, writer, db_path):
    rng, cache = random.Random(14), QueryCache(wal_db, {"phase_queue": PHASE_QUEUE})
    await cache.refresh()
    for _ in range(300):
        for _ in range(rng.choice((1, 1, 1, 2, 4))):  # a poll may come after several commits
            random_commit(rng, writer)
        await cache.refresh()
        assert typed(cache.rows["phase_queue"]) == typed(table_now(db_path))
    assert wal_db.table_reads["partial"] >= 80, wal_db.table_reads


async def test_channels_probing_other_tables_between_commits_miss_nothing(wal_db, writer, db_path):
    """Another channel's probe takes in commits to this table: the log must still name their rows."""
    rng = random.Random(7)
    queue = QueryCache(wal_db, {"phase_queue": PHASE_QUEUE})
    features = QueryCache(wal_db, {"features": Query("planned_features", "SELECT * FROM planned_features")})
    for _ in range(3):
        await queue.refresh()
        await features.refresh()
    for _ in range(120):
        random_commit(rng, writer)
        await (features if rng.random() < 0.5 else queue).refresh()
        random_commit(rng, writer)
        await queue.refresh()
        assert typed(queue.rows["phase_queue"]) == typed(table_now(db_path))
        await features.refresh()
        assert typed(features.rows["features"]) == typed(table_now(db_path, "planned_features"))
    assert wal_db.table_reads["partial"] >= 40, wal_db.table_reads


async def warmed_cache(db, writer):
    """A cache whose reads go by the pages: the first looks list them."""
    cache = QueryCache(db, {"phase_queue": PHASE_QUEUE})
    for n in range(3):
        writer.execute("UPDATE phase_queue SET priority = ? WHERE rowid = 100", (n,))
        await cache.refresh()
    assert db.table_reads["partial"] == 1
    return cache


async def test_a_commit_between_the_probe_and_the_read_is_read_whole(wal_db, writer, db_path):
    cache = await warmed_cache(wal_db, writer)
    writer.execute("UPDATE phase_queue SET status = 'running' WHERE rowid = 3")
    await wal_db.table_tokens({"phase_queue"})  # the probe names rowid 3's page …
    writer.execute("UPDATE phase_queue SET status = 'failed' WHERE rowid = 190")  # … and this lands after it
    read = await read_whole_table(wal_db, cache._tables["phase_queue"])
    assert read.rows == table_now(db_path) and read.rows[189]["status"] == "failed"
    assert wal_db.table_reads["partial"] == 1


async def test_a_change_only_an_overflow_page_holds_is_read(wal_db, writer, db_path):
    """SQLite overwrites a same-size row in place, writing only the pages whose bytes differ: here no leaf."""
    writer.execute("UPDATE phase_queue SET phase_data = ? WHERE rowid = 7", ("x" * 9000 + "a",))
    cache = await warmed_cache(wal_db, writer)
    for ending in "bcd":
        writer.execute("UPDATE phase_queue SET phase_data = ? WHERE rowid = 7", ("x" * 9000 + ending,))
        await cache.refresh()
        assert cache.rows["phase_queue"][6]["phase_data"].endswith(ending)


async def test_a_read_with_no_commit_since_is_whole(wal_db, writer, db_path):
    """A caller reading although no page moved wants the periodic full read that catches the rest."""
    first = await read_whole_table(wal_db, None)
    await wal_db.table_tokens({"phase_queue"})
    second = await read_whole_table(wal_db, first)
    assert second.rows == table_now(db_path) and wal_db.table_reads == {"partial": 0, "whole": 2}


async def test_unchanged_rows_keep_their_objects_and_only_the_changed_row_is_new(wal_db, writer):
    cache = await warmed_cache(wal_db, writer)
    before = cache.rows["phase_queue"]
    writer.execute("UPDATE phase_queue SET status = 'running' WHERE rowid = 21")
    await cache.refresh()
    after = cache.rows["phase_queue"]
    assert [index for index, (a, b) in enumerate(zip(before, after, strict=True)) if a is not b] == [20]
    assert after[20]["status"] == "running" and wal_db.table_reads["partial"] == 2


async def test_a_probe_given_up_leaves_its_page_state_behind(wal_db, writer, db_path):
    """A timed-out probe may still run on its thread: reads go whole until a new connection lists the pages."""
    cache = await warmed_cache(wal_db, writer)
    given_up = wal_db._pages
    wal_db._discard(wal_db._conn)  # as a timed-out probe does
    writer.execute("UPDATE phase_queue SET status = 'failed' WHERE rowid = 150")
    probe = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    given_up.versions(probe, ["phase_queue"])  # the probe's thread goes on, on the page state it had
    probe.close()
    read = await read_whole_table(wal_db, cache._tables["phase_queue"])
    assert read.rows == table_now(db_path) and wal_db.table_reads["partial"] == 1


@pytest.mark.parametrize("ddl", ["CREATE TABLE odd (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID",
                                 "CREATE TABLE odd (rowid TEXT, _rowid_ TEXT, oid TEXT, v TEXT)",
                                 "CREATE TABLE odd (rowid TEXT, k TEXT, v TEXT)"])
async def test_tables_without_a_rowid_to_go_by_are_read_as_written(wal_db, writer, db_path, ddl):
    writer.execute(ddl)
    columns = "k, v" if "k TEXT" in ddl else "rowid, v"
    cache = QueryCache(wal_db, {"odd": Query("odd", "SELECT * FROM odd")})
    for n in range(4):
        writer.execute(f"INSERT INTO odd ({columns}) VALUES (?, ?)", (f"key{n}", f"value{n}"))  # noqa: S608
        await cache.refresh()
        assert sorted(map(repr, cache.rows["odd"])) == sorted(map(repr, table_now(db_path, "odd", "")))


async def test_a_rollback_journal_database_is_read_whole(db_path):
    db = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.2)
    try:
        cache = QueryCache(db, {"phase_queue": PHASE_QUEUE})
        await cache.refresh()
        with sqlite3.connect(db_path) as conn:
            conn.execute("INSERT INTO phase_queue (queue_id, feature_id, phase_number, status) VALUES ('a', 1, 1, 'x')")
        conn.close()
        await cache.refresh()
        assert cache.rows["phase_queue"] == table_now(db_path) and db.table_reads["partial"] == 0
    finally:
        await db.close()


def test_a_leaf_page_names_its_rowids_and_garbage_names_none(writer, db_path):
    root = writer.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'queue_config'").fetchone()[0]
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = writer.execute("PRAGMA page_size").fetchone()[0]
    with open(db_path, "rb") as file:
        file.seek((root - 1) * page_size)
        image = file.read(page_size)
    assert leaf_rowids(image, root) == frozenset(row[0] for row in writer.execute("SELECT rowid FROM queue_config"))
    assert leaf_rowids(b"\x0d\x00\x00\xff\xff" + b"\x00" * 20, 5) is None  # more cells than the page holds
    assert leaf_rowids(b"\x0a" + b"\x00" * 100, 5) is None  # an index page
    assert read_varint(b"\xff" * 9, 0) == (2 ** 64 - 1, 9) and read_varint(b"\x81", 0) == (None, -1)


LOCK_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)  # SQLite's "in use" byte of the -shm
except OSError:
    print("in use")
else:
    print("free")
"""


async def test_reading_the_shared_index_leaves_sqlites_locks_on_it(wal_db, writer, db_path):
    """Closing a descriptor of the -shm would drop this process's locks on it: the next writer to
    connect would truncate it under our connections' memory map (SIGBUS, seen in a benchmark)."""
    cache = await warmed_cache(wal_db, writer)  # the page versions and partial reads read the index
    writer.execute("UPDATE phase_queue SET status = 'failed' WHERE rowid = 150")
    await cache.refresh()
    probe = await asyncio.create_subprocess_exec(sys.executable, "-c", LOCK_PROBE, f"{db_path}-shm",
                                                 stdout=asyncio.subprocess.PIPE)
    out, _ = await probe.communicate()
    assert out.decode().strip() == "in use"
