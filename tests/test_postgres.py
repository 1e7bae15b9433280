"""PostgreSQL as the monitored database, on a real server started by the tests.

The same rows written into SQLite and PostgreSQL must give the same channel states;
errors name the URL with its password masked; a server restart and a timed-out read leave
the database usable on the next read.
"""

import asyncio
import datetime as dt
from types import SimpleNamespace

import asyncpg
import pytest

from monitor.channels import planned_features, queue, workflow_history
from monitor.channels.dbreader import DatabaseReader
from monitor.keys import BROKER
from monitor.redact import redact_url
from monitor.settings import Settings, settings_from_mapping
from monitor.sources.database import DatabaseError, open_database
from monitor.sources.postgres import PostgresDatabase
from monitor.sources.sqlite import SqliteDatabase
from monitor.state import ChannelState
from tests.pgserver import free_port, unavailable
from tests.support import poll
from tests.tables import PLANNED_FEATURES, RUNS_NOW, fill_postgres, fill_sqlite, insert_postgres

NEWEST_3 = ("SELECT * FROM workflow_history"
                 " ORDER BY (start_time IS NULL) DESC, start_time DESC, id DESC LIMIT 3")


def history_reader(sources, queries=None):
    settings = settings_from_mapping({"queries": queries or {}})
    return workflow_history.make_reader(SimpleNamespace(settings=settings, database=sources.database),
                                        clock=lambda: dt.datetime.fromisoformat(RUNS_NOW))


READERS = {
    "queue": queue.make_reader,
    "workflow-history": history_reader,
    "workflow-history newest 3": lambda sources: history_reader(sources, {"workflow_history": NEWEST_3}),
    "planned-features": planned_features.make_reader,
}
TOTALS = {"queue": 3, "workflow-history": 8, "workflow-history newest 3": 8, "planned-features": 6}


@pytest.fixture
async def pg(postgres_db_url):
    db = PostgresDatabase(postgres_db_url)
    yield db
    await db.close()


async def published(make_reader, db, channel):
    """``channel``'s state as clients would see it, read through ``db``."""
    state = ChannelState(channel, "e")
    state.accept(await make_reader(SimpleNamespace(settings=Settings(), database=db)).read())
    return {"summary": state.state["summary"], "items": state.state["items"]}


@pytest.mark.parametrize("channel", list(READERS))
async def test_same_rows_give_the_same_channel_state(channel, db_path, postgres_db_url, pg):
    fill_sqlite(db_path)
    await fill_postgres(postgres_db_url)
    sqlite_db = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.2)
    try:
        from_sqlite = await published(READERS[channel], sqlite_db, channel)
    finally:
        await sqlite_db.close()
    from_postgres = await published(READERS[channel], pg, channel)
    assert from_postgres == from_sqlite
    assert from_postgres["summary"]["total"] == TOTALS[channel]


async def test_rows_equal_sqlite_rows_column_for_column(db_path, postgres_db_url, pg):
    fill_sqlite(db_path)
    await fill_postgres(postgres_db_url)
    queries = {table: f"SELECT * FROM {table} ORDER BY 1" for table in
               ("phase_queue", "queue_config", "workflow_history", "planned_features", "task_logs")}
    sqlite_db = SqliteDatabase(f"sqlite:///{db_path}", busy_timeout=0.2)
    try:
        from_sqlite = await sqlite_db.fetch_many(queries)
    finally:
        await sqlite_db.close()
    from_postgres = await pg.fetch_many(queries)
    for rows in (from_sqlite["task_logs"], from_postgres["task_logs"]):
        for row in rows:
            row.pop("created_at")  # each server's own clock and format: CURRENT_TIMESTAMP
    assert from_postgres == from_sqlite


async def test_reads_run_in_a_read_only_transaction(pg):
    with pytest.raises(DatabaseError, match="read-only transaction"):
        await pg.fetch_many({"sneaky": "INSERT INTO queue_config VALUES ('x', 'y', 'z') RETURNING config_key"})
    assert await pg.fetch_many({"n": "SELECT count(*) AS n FROM queue_config"}) == {"n": [{"n": 0}]}


async def test_change_token_moves_on_commits_only(postgres_db_url, pg):
    before = await pg.change_token()
    await pg.fetch_many({"rows": "SELECT * FROM planned_features"})
    assert await pg.change_token() == before  # our own reads are not changes
    await insert_postgres(postgres_db_url, "planned_features", PLANNED_FEATURES[:1])
    assert await pg.change_token() != before


async def test_change_token_sees_a_commit_of_a_transaction_begun_earlier(postgres_db_url, pg):
    writer = await asyncpg.connect(postgres_db_url)
    try:
        open_write = writer.transaction()
        await open_write.start()
        await writer.execute("INSERT INTO queue_config VALUES ('queue_paused', 'true', NULL)")
        during = await pg.change_token()
        await open_write.commit()
    finally:
        await writer.close()
    assert await pg.change_token() != during


async def test_unchanged_database_is_not_read(postgres_db_url, pg):
    reader = DatabaseReader(pg, planned_features.DEFAULT_QUERIES, planned_features.build_planned_features)
    await reader.read()
    assert await reader.read() is None
    await insert_postgres(postgres_db_url, "planned_features", PLANNED_FEATURES[:2])
    assert (await reader.read()).summary["total"] == 2


async def test_errors_name_the_url_but_never_the_password(postgres_url):
    with_password = postgres_url.replace("postgres@", "postgres:s3cret-pw@")
    db = open_database(with_password, busy_timeout=0.2)
    try:
        with pytest.raises(DatabaseError) as failed:
            await db.fetch_many({"missing": "SELECT * FROM no_such_table"})
    finally:
        await db.close()
    shown = with_password.replace("s3cret-pw", "***")
    assert str(failed.value) == f'{shown}: relation "no_such_table" does not exist'


async def test_nothing_listening_is_connection_refused():
    url = f"postgresql://monitor:s3cret-pw@127.0.0.1:{free_port()}/adw"
    db = PostgresDatabase(url)
    try:
        with pytest.raises(DatabaseError) as failed:
            await db.change_token()
    finally:
        await db.close()
    assert str(failed.value) == f"{redact_url(url)}: connection refused"
    assert "s3cret" not in str(failed.value) and redact_url(url).startswith("postgresql://monitor:***@127.0.0.1:")


async def test_server_down_is_an_error_and_back_up_recovers(make_postgres_server):
    server = make_postgres_server()
    db = PostgresDatabase(server.url())
    try:
        assert await db.fetch_many({"one": "SELECT 1 AS one"}) == {"one": [{"one": 1}]}
        await asyncio.to_thread(server.stop)
        with pytest.raises(DatabaseError) as failed:
            await db.fetch_many({"one": "SELECT 1 AS one"})
        assert str(failed.value) == f"{server.url()}: connection refused"
        await asyncio.to_thread(server.start)
        assert await db.fetch_many({"one": "SELECT 1 AS one"}) == {"one": [{"one": 1}]}
        # Blocking the loop on purpose: asyncpg cannot notice the restart, so the pooled
        # connection is dead when the next read takes it, and that read must still succeed.
        server.stop()
        server.start()
        assert await db.fetch_many({"two": "SELECT 2 AS two"}) == {"two": [{"two": 2}]}
    finally:
        await db.close()


async def test_timed_out_read_is_cancelled_on_the_server_and_the_pool_stays_usable(postgres_db_url):
    db = PostgresDatabase(postgres_db_url)
    try:
        for _ in range(3):  # more than the pool holds: no connection may leak
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await db.fetch_many({"slow": "SELECT pg_sleep(60)"})
            assert await db.fetch_many({"one": "SELECT 1 AS one"}) == {"one": [{"one": 1}]}
    finally:
        await db.close()  # waits for the cancelled reads to settle
    check = await asyncpg.connect(postgres_db_url)
    try:
        sleeping = await check.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()")
    finally:
        await check.close()
    assert sleeping == 0


async def test_console_serves_a_channel_from_postgres(make_client, postgres_db_url):
    await fill_postgres(postgres_db_url)
    client = await make_client({"sources": {"database": postgres_db_url}})
    await poll(client, "queue")
    state = client.app[BROKER].current("queue").state
    assert state["meta"]["source"] == "ok"
    assert state["summary"] == {
        "total": 3, "paused": True,
        "by_status": {"queued": 1, "ready": 0, "running": 1, "completed": 0, "blocked": 0, "failed": 1},
    }


def test_missing_postgresql_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI: no server"):
        unavailable("no server")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no server"):
        unavailable("no server")
