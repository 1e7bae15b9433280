"""Every database channel on the real system's three schema points, in SQLite and PostgreSQL.

The schemas are those of tac-webbuilder (tests/real_schemas.py): the SQLite DDL of its
phase-queue module ("ddl"), its production PostgreSQL dump of 2025-12-13 ("production")
and its latest migrations ("latest"). One hand-built workload is written at each point
with only the columns that point has; every expected figure is worked out below.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from types import SimpleNamespace

import asyncpg
import pytest

from monitor import adw, display
from monitor.channels import adw_monitor, planned_features, queue, workflow_history
from monitor.channels.history_tail import WholeHistory
from monitor.compat import reports
from monitor.compat import runs as compat_runs
from monitor.probe import probe_sources
from monitor.settings_table import SourcesSettings
from monitor.sources.database import open_database
from monitor.state import ChannelState
from tests import real_schemas
from tests.support import write_state

NOW = "2026-03-01T12:00:00+00:00"
CASES = [(point, engine) for point in real_schemas.POINTS for engine in real_schemas.ENGINES]

QUEUE = [
    {"queue_id": "q-1", "feature_id": 7, "parent_issue": 7, "phase_number": 1, "issue_number": 101,
     "status": "running", "depends_on_phases": [], "phase_data": {"title": "Plan the login page", "content": "…"},
     "adw_id": "a1b2c3d4", "pr_number": 5, "priority": 20, "queue_position": 1, "current_phase": "Build",
     "created_at": "2026-03-01T10:00:00Z", "updated_at": "2026-03-01T11:00:00Z"},
    {"queue_id": "q-2", "feature_id": 7, "parent_issue": 7, "phase_number": 2, "status": "queued",
     "depends_on_phases": [1], "depends_on_phase": 1, "phase_data": {"title": "Build the login page"},
     "priority": 70, "queue_position": 2},
    {"queue_id": "q-3", "feature_id": 8, "parent_issue": 8, "phase_number": 1, "status": "ready",
     "phase_data": {"title": "Urgent fix"}, "priority": 10, "queue_position": 3},
    {"queue_id": "q-4", "feature_id": 9, "parent_issue": 9, "phase_number": 1, "status": "failed",
     "phase_data": {"title": "Broken thing"}, "error_message": "boom", "priority": 50, "queue_position": 4},
]
HISTORY = [
    {"adw_id": "a1b2c3d4", "status": "running", "workflow_template": "adw_sdlc_complete_iso", "model_used": "sonnet",
     "start_time": "2026-03-01T11:00:00Z", "actual_cost_total": 0.0, "nl_input": "Plan the login page",
     "structured_input": {"type": "feature"}},
    {"adw_id": "b2c3d4e5", "status": "completed", "workflow_template": "adw_sdlc_complete_iso",
     "model_used": "sonnet", "start_time": "2026-02-27T12:00:00Z", "end_time": "2026-02-27T12:10:00Z",
     "duration_seconds": 600, "actual_cost_total": 2.0, "cost_breakdown": {"Plan": 0.5}, "anomaly_flags": []},
    {"adw_id": "c3d4e5f6", "status": "completed", "workflow_template": "adw_sdlc_from_build_iso",
     "model_used": "opus", "start_time": "2026-02-19T12:00:00Z", "duration_seconds": 1200, "actual_cost_total": 3.0},
    {"adw_id": "d4e5f6a7", "status": "completed", "workflow_template": "adw_lightweight_iso", "model_used": "haiku",
     "start_time": "2026-02-26T12:00:00Z", "duration_seconds": 300, "actual_cost_total": 0.0},
    {"adw_id": "e5f6a7b8", "status": "failed", "workflow_template": "adw_sdlc_complete_iso", "model_used": "sonnet",
     "start_time": "2026-01-20T12:00:00Z", "actual_cost_total": 1.0, "error_message": "tests failed"},
]
FEATURES = [
    {"id": 1, "item_type": "feature", "title": "Login page", "description": "Sign in with a token",
     "status": "completed", "priority": "high", "estimated_hours": 4.0, "actual_hours": 5.5, "tags": ["ui", "auth"],
     "completion_notes": "Shipped in #101", "completed_at": "2026-02-20T10:00:00Z",
     "generated_plan": {"feature_id": 1, "total_phases": 2, "total_estimated_hours": 4.0, "phases": []}},
    {"id": 2, "item_type": "bug", "title": "Fix crash", "status": "in_progress", "priority": "high",
     "estimated_hours": 2.0, "actual_hours": 1.25, "tags": ["backend"]},
    {"id": 3, "item_type": "session", "title": "Session 12", "status": "planned", "priority": "medium",
     "estimated_hours": 8.0, "session_number": 12},
    {"id": 4, "item_type": "enhancement", "title": "Faster search", "status": "cancelled", "priority": "low",
     "estimated_hours": 3.0, "actual_hours": 0.5, "tags": []},
]
TASKS = [
    {"adw_id": "a1b2c3d4", "issue_number": 101, "phase_name": "Plan", "phase_number": 1, "phase_status": "completed",
     "log_message": "Plan phase completed", "cost_usd": 0.3},
    {"adw_id": "a1b2c3d4", "issue_number": 101, "phase_name": "Validate", "phase_number": 2,
     "phase_status": "completed", "log_message": "Validate phase completed", "cost_usd": 0.2},
    {"adw_id": "a1b2c3d4", "issue_number": 101, "phase_name": "webhook_event", "phase_status": "completed",
     "log_message": "webhook received"},
]
WORKLOAD = {"phase_queue": QUEUE, "queue_config": [{"config_key": "queue_paused", "config_value": "true"}],
            "workflow_history": HISTORY, "planned_features": FEATURES, "task_logs": TASKS}


def has_column(point, engine, table, column):
    return column in real_schemas.columns(point, table, engine)


@pytest.fixture(params=CASES, ids=[f"{point}-{engine}" for point, engine in CASES])
async def real_db(request, tmp_path):
    """A database at one schema point holding the workload (each row cut to the point's columns)."""
    point, engine = request.param
    if engine == "sqlite":
        path = tmp_path / "real.db"
        real_schemas.create_sqlite(path, point)
        url, insert = f"sqlite:///{path}", lambda table, row: _sync(real_schemas.insert_sqlite(path, table, row))
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database())
        await real_schemas.create_postgres(url, point)
        insert = lambda table, row: real_schemas.insert_postgres(url, table, row)  # noqa: E731
    for table, rows in WORKLOAD.items():
        names = real_schemas.columns(point, table, engine)
        for row in rows:
            await insert(table, {k: v for k, v in row.items() if k in names})
    return SimpleNamespace(point=point, engine=engine, url=url)


async def _sync(value):
    return value


async def read(reader_module, real_db, **kwargs):
    """The channel's published state, read by its reader with default queries."""
    database = open_database(real_db.url, busy_timeout=0.5)
    settings = SimpleNamespace(queries={}, sources=SourcesSettings())
    try:
        data = await reader_module.make_reader(SimpleNamespace(settings=settings, database=database), **kwargs).read()
    finally:
        await database.close()
    state = ChannelState("test", "e")
    state.accept(data)
    return state.state


async def test_queue(real_db):
    state = await read(queue, real_db)
    assert state["summary"] == {"total": 4, "paused": True, "by_status": {
        "queued": 1, "ready": 1, "running": 1, "completed": 0, "blocked": 0, "failed": 1}}
    first = state["items"]["q-1"]
    assert first["title"] == "Plan the login page" and first["phase_data"]["content"] == "…"
    assert ("current_phase" in first) == has_column(real_db.point, real_db.engine, "phase_queue", "current_phase")
    if has_column(real_db.point, real_db.engine, "phase_queue", "depends_on_phases"):
        assert state["items"]["q-2"]["depends_on_phases"] == [1]  # decoded, not the text "[1]"
    # The hopper's order: lower priority value first (10 before 20 before 70).
    in_progress = display.grouped_rows(state["items"], adw.QUEUE_ORDER, "!status=completed,failed,blocked")
    assert [key for key, _ in in_progress] == ["q-3", "q-1", "q-2"]


async def test_workflow_history(real_db):
    clock = lambda: dt.datetime.fromisoformat(NOW)  # noqa: E731
    state = await read(workflow_history, real_db, clock=clock)
    # completed b2 c3 d4, failed e5, running a1: success 3 / (3 + 1) = 75.0
    # durations of completed runs 600 1200 300 → 700.0
    # avg_cost over completed runs with a cost above 0: (2.0 + 3.0) / 2 = 2.5. The real
    # dashboard averages every run's cost above 0 whatever its status ((2 + 3 + 1) / 3 = 2.0)
    # and its success rate divides by all runs, unfinished ones included (3 / 5 = 60 %).
    # 7 days (from 02-22 12:00): b2 2.0 (a1 and d4 cost 0.0); 30 days (from 01-30): + c3 3.0
    # trends, mean cost per costed run against the window before: 7 days 2.0 against c3's 3.0
    # (-33.33 %), 30 days 2.5 against e5's 1.0 (+150 %); the dashboard's per-completion mean
    # covers completed and failed runs with a cost: (2 + 3 + 1) / 3
    assert state["summary"] == {
        "total": 5, "completed": 3, "failed": 1, "running": 1, "success_rate": 75.0, "avg_duration_seconds": 700.0,
        "avg_cost": 2.5, "cost_7d": 2.0, "cost_30d": 5.0, "by_model": {"haiku": 1, "opus": 1, "sonnet": 3},
        "by_template": {"adw_lightweight_iso": 1, "adw_sdlc_complete_iso": 3, "adw_sdlc_from_build_iso": 1},
        "by_status": {"completed": 3, "failed": 1, "running": 1}, "costed_runs": 3, "total_cost": 6.0,
        "avg_cost_per_completion": 2.0, "cost_trend_7d": -33.33, "cost_trend_30d": 150.0}
    items = state["items"]
    assert items["b2c3d4e5"]["cost_breakdown"] == {"Plan": 0.5} and items["b2c3d4e5"]["anomaly_flags"] == []
    assert items["a1b2c3d4"]["structured_input"] == {"type": "feature"}
    assert json.loads(json.dumps(items)) == items  # every value plain JSON


async def test_planned_features(real_db):
    state = await read(planned_features, real_db)
    # completion_rate = completed / (total − cancelled) = 1 / 3; the real stats endpoint
    # divides by every row of the four statuses, cancelled included (1 / 4 = 25 %).
    assert state["summary"] == {
        "total": 4, "by_status": {"planned": 1, "in_progress": 1, "completed": 1, "cancelled": 1},
        "by_priority": {"high": 2, "medium": 1, "low": 1},
        "by_type": {"session": 1, "feature": 1, "bug": 1, "enhancement": 1},
        "total_estimated_hours": 17.0, "total_actual_hours": 7.25, "completion_rate": 33.3}
    login = state["items"]["1"]
    assert login["tags"] == ["ui", "auth"] and login["completion_notes"] == "Shipped in #101"
    if has_column(real_db.point, real_db.engine, "planned_features", "generated_plan"):
        assert login["generated_plan"]["total_phases"] == 2
    else:
        assert "generated_plan" not in login


async def test_adw_monitor(real_db, make_settings, agents, trees):
    write_state(agents, "a1b2c3d4", {"adw_id": "a1b2c3d4", "issue_number": "101",
                                     "workflow_template": "adw_sdlc_complete_iso", "nl_input": "Plan the login page"})
    (trees / "a1b2c3d4").mkdir()
    settings = make_settings({"sources": {"database": real_db.url}})
    reader = adw_monitor.make_reader(SimpleNamespace(settings=settings, database=open_database(real_db.url, 0.5)))
    try:
        item = (await reader.read()).items["a1b2c3d4"]
    finally:
        await reader.db.close()
    # Only the latest PostgreSQL schema has phase_queue.current_phase ("Build"): half a phase more.
    current = has_column(real_db.point, real_db.engine, "phase_queue", "current_phase")
    assert item["status"] == "paused" and item["title"] == "Plan the login page" and item["pr_number"] == 5
    assert item["phases_completed"] == ["Plan", "Validate"] and item["current_cost"] == 0.5
    assert item.get("current_phase") == ("Build" if current else None)
    assert item["phase_progress"] == (25.0 if current else 20.0)


async def test_monitor_check_passes(real_db, make_settings, agents, trees):
    settings = make_settings({"sources": {"database": real_db.url, "webhook_url": ""}})
    assert await probe_sources(settings) == {name: None for name in await probe_sources(settings)}


async def execute(real_db, *statements):
    """Run DDL/DML as the real system's migrations would: its own connection, committed."""
    if real_db.engine == "sqlite":
        import sqlite3

        conn = sqlite3.connect(real_db.url[len("sqlite:///"):])
        with conn:
            for sql in statements:
                conn.execute(sql)
        conn.close()
    else:
        import asyncpg

        conn = await asyncpg.connect(real_db.url)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()


@pytest.mark.parametrize("real_db", [("ddl", "sqlite"), ("ddl", "postgresql")], indirect=True,
                         ids=["sqlite", "postgresql"])
async def test_migrations_while_running_add_fields_and_drop_only_theirs(real_db):
    database = open_database(real_db.url, busy_timeout=0.5)
    reader = queue.make_reader(SimpleNamespace(settings=SimpleNamespace(queries={}), database=database))
    try:
        assert "current_phase" not in (await reader.read()).items["q-1"]
        await execute(real_db, "ALTER TABLE phase_queue ADD COLUMN current_phase TEXT NOT NULL DEFAULT 'init'",
                      "UPDATE phase_queue SET current_phase = 'Build' WHERE queue_id = 'q-1'")
        assert (await reader.read()).items["q-1"]["current_phase"] == "Build"
        await execute(real_db, "ALTER TABLE phase_queue DROP COLUMN pr_number")
        data = await reader.read()
        assert "pr_number" not in data.items["q-1"] and data.summary["total"] == 4
    finally:
        await database.close()


# PostgreSQL drops a column that carries a CHECK constraint; SQLite refuses to.
@pytest.mark.parametrize("real_db", [("production", "postgresql")], indirect=True, ids=["postgresql"])
async def test_a_missing_required_column_is_the_channels_error_naming_it(real_db):
    await execute(real_db, "ALTER TABLE phase_queue DROP COLUMN status")
    database = open_database(real_db.url, busy_timeout=0.5)
    reader = queue.make_reader(SimpleNamespace(settings=SimpleNamespace(queries={}), database=database))
    try:
        with pytest.raises(Exception, match="table phase_queue has no column status"):
            await reader.read()
        # the other channels of the same database are untouched
        assert (await planned_features.make_reader(SimpleNamespace(
            settings=SimpleNamespace(queries={}), database=database)).read()).summary["total"] == 4
    finally:
        await database.close()


BULK_HISTORY = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2100)"
                " INSERT INTO workflow_history (adw_id, status, start_time)"
                " SELECT 'bulk' || i, 'completed', '2026-01-15 10:00:00' FROM n")


async def _commit(real_db, sql):
    """Commit ``sql`` to the real database (PostgreSQL: and flush the counters its tokens read)."""
    if real_db.engine == "sqlite":
        with sqlite3.connect(real_db.url.removeprefix("sqlite:///")) as conn:
            conn.execute(sql)
        conn.close()
        return
    conn = await asyncpg.connect(real_db.url)
    try:
        await conn.execute(sql)
        await conn.execute("SELECT pg_stat_force_next_flush()")
    finally:
        await conn.close()


async def test_a_large_history_read_by_its_tail_matches_a_full_read(real_db):
    await _commit(real_db, BULK_HISTORY)
    clock = lambda: dt.datetime.fromisoformat(NOW)  # noqa: E731
    database = open_database(real_db.url, busy_timeout=0.5)
    try:
        sources = SimpleNamespace(settings=SimpleNamespace(queries={}, sources=SourcesSettings()), database=database)
        tail = workflow_history.make_reader(sources, clock=clock)
        whole = workflow_history.WorkflowHistoryReader(
            WholeHistory(database, workflow_history.DEFAULT_QUERIES), clock=clock)
        first = _published(await tail.read())
        assert first == _published(await whole.read()) and first["summary"]["total"] == 2105
        await _commit(real_db, "UPDATE workflow_history SET status = 'failed' WHERE adw_id = 'bulk2100'")
        for _ in range(50):  # PostgreSQL flushes the counters its token reads within a second
            if (data := await tail.read()) is not None:
                break
            await asyncio.sleep(0.1)
        assert data is not None and _published(data) == _published(await whole.read())
        assert _published(data)["summary"]["failed"] == first["summary"]["failed"] + 1
        assert tail.source.rebases == 1  # the change was read from the tail
    finally:
        await database.close()


def _published(data):
    state = ChannelState("test", "e")
    state.accept(data)
    return {key: value for key, value in state.state.items() if key != "meta"}


async def test_compat_documents(real_db):
    """tac-webbuilder's own documents, rendered from what the console read at each schema point."""
    point, engine = real_db.point, real_db.engine
    queue_doc = compat_runs.queue(await read(queue, real_db))
    assert queue_doc["total"] == 4 and queue_doc["paused"] is True
    assert all(list(phase) == list(compat_runs.QUEUE_KEYS) for phase in queue_doc["phases"])
    phases = {phase["queue_id"]: phase for phase in queue_doc["phases"]}
    if has_column(point, engine, "phase_queue", "feature_id"):  # by feature, then phase
        assert list(phases) == ["q-1", "q-2", "q-3", "q-4"]
    first = phases["q-1"]
    assert first["status"] == "running" and first["priority"] == 20 and first["phase_number"] == 1
    assert first["phase_data"] == {"title": "Plan the login page", "content": "…"} and first["depends_on_phases"] == []
    assert first["current_phase"] == ("Build" if has_column(point, engine, "phase_queue", "current_phase") else "init")
    assert first["error_message"] is None and phases["q-4"]["error_message"] == "boom"
    assert isinstance(first["created_at"], str) and first["created_at"].startswith("2026-03-01")

    history = reports.workflow_history(await read(workflow_history, real_db,
                                                  clock=lambda: dt.datetime.fromisoformat(NOW)))
    assert history["total_count"] == 5 and len(history["workflows"]) == 5
    assert all(len(row) == 61 for row in history["workflows"])
    analytics = history["analytics"]
    # the original's figures: success 3 of all 5 runs; mean cost of every finished run with one (2 + 3 + 1) / 3
    assert analytics["success_rate_percent"] == 60.0 and analytics["avg_cost"] == 2.0
    assert analytics["avg_cost_per_completion"] == 2.0 and analytics["total_cost"] == 6.0
    assert analytics["cost_trend_7day"] == -33.33 and analytics["cost_trend_30day"] == 150.0
    rows = {row["adw_id"]: row for row in history["workflows"]}
    assert rows["a1b2c3d4"]["structured_input"] == {"type": "feature"}
    # {"Plan": 0.5} is no cost breakdown of the original's model: every field at its default
    assert rows["b2c3d4e5"]["cost_breakdown"] == {"estimated_total": 0.0, "actual_total": 0.0,
                                                  "estimated_per_step": 0.0, "actual_per_step": 0.0,
                                                  "cost_per_token": 0.0, "by_phase": None}

    features = reports.planned_features(await read(planned_features, real_db))
    assert [f["id"] for f in features["features"]] == [2, 3, 1, 4]  # in progress, planned, completed, cancelled
    assert features["stats"]["by_status"] == {"planned": 1, "in_progress": 1, "completed": 1, "cancelled": 1}
    assert features["stats"]["completion_rate"] == 25.0  # the original's: completed ÷ every feature
    login = features["features"][2]
    assert login["tags"] == ["ui", "auth"] and login["title"] == "Login page"
    has_plan = has_column(point, engine, "planned_features", "generated_plan")
    assert login["generated_plan"] == (FEATURES[0]["generated_plan"] if has_plan else None)


@pytest.mark.parametrize("real_db", [(point, "sqlite") for point in real_schemas.POINTS], indirect=True,
                         ids=list(real_schemas.POINTS))
async def test_in_wal_mode_a_commit_moves_only_its_own_tables(real_db):
    with sqlite3.connect(real_db.url.removeprefix("sqlite:///")) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    database = open_database(real_db.url, busy_timeout=0.5)
    sources = SimpleNamespace(settings=SimpleNamespace(queries={}, sources=SourcesSettings()), database=database)
    reader = queue.make_reader(sources)

    async def moved_by(sql):
        before = await database.table_tokens(real_schemas.TABLES)
        await _commit(real_db, sql)
        after = await database.table_tokens(real_schemas.TABLES)
        return {table for table in real_schemas.TABLES if before[table] != after[table]}

    try:
        for position in (5, 6):  # the first look at the WAL knows no pages; the next commit lists them
            await moved_by(f"UPDATE phase_queue SET queue_position = {position} WHERE queue_id = 'q-4'")
        await reader.read()
        assert await moved_by("UPDATE phase_queue SET status = 'completed' WHERE queue_id = 'q-2'") == {"phase_queue"}
        assert (await reader.read()).items["q-2"]["status"] == "completed"
        assert database.table_reads["partial"] == 1  # read by the rows the commit's pages name
        await _commit(real_db, "UPDATE phase_queue SET status = 'failed', error_message = 'x' WHERE queue_id = 'q-1'")
        items = (await reader.read()).items
        assert (items["q-1"]["status"], items["q-2"]["status"]) == ("failed", "completed")
        assert database.table_reads["partial"] == 2
        assert await moved_by("UPDATE planned_features SET title = 'Sign-in page' WHERE id = 1") == {"planned_features"}
        assert await moved_by("UPDATE task_logs SET log_message = 'again' WHERE phase_name = 'Plan'") == {"task_logs"}
    finally:
        await database.close()
