"""The real-schema fixtures: each point builds in SQLite and PostgreSQL with the facts' columns."""

import datetime as dt
import json
import sqlite3
from decimal import Decimal

import asyncpg
import pytest

from tests.real_schemas import (
    PG_ONLY,
    POINTS,
    TABLES,
    columns,
    create_postgres,
    create_sqlite,
    insert_postgres,
    insert_sqlite,
)


@pytest.fixture
def empty_pg_url(postgres_server):
    """A fresh, empty database (no ADW tables) for this test alone."""
    return postgres_server.url(postgres_server.create_database())


def sqlite_columns(path, table):
    conn = sqlite3.connect(path)
    try:
        return tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
    finally:
        conn.close()


async def pg_column_types(url, table):
    """{column: (data_type, default)} in ordinal order, as information_schema reports them."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT column_name, data_type, column_default FROM information_schema.columns "
                                "WHERE table_name = $1 ORDER BY ordinal_position", table)
        return {row["column_name"]: (row["data_type"], row["column_default"]) for row in rows}
    finally:
        await conn.close()


@pytest.fixture(params=POINTS)
def point(request):
    return request.param


@pytest.fixture
def sqlite_db(tmp_path, point):
    path = tmp_path / f"{point}.db"
    create_sqlite(path, point)
    return path


@pytest.fixture
async def pg_db(empty_pg_url, point):
    await create_postgres(empty_pg_url, point)
    return empty_pg_url


def test_sqlite_has_the_columns_of_the_point(sqlite_db, point):
    for table in TABLES:
        assert sqlite_columns(sqlite_db, table) == columns(point, table, "sqlite")


async def test_postgres_has_the_columns_of_the_point(pg_db, point):
    for table in TABLES:
        assert tuple(await pg_column_types(pg_db, table)) == columns(point, table, "postgresql")


def test_engines_differ_only_in_the_pg_only_columns(point):
    for table in TABLES:
        pg, lite = columns(point, table, "postgresql"), columns(point, table, "sqlite")
        pg_only = PG_ONLY.get((point, table), frozenset())
        assert lite == tuple(name for name in pg if name not in pg_only)
        if not pg_only:
            assert columns(point, table) == pg


def test_pg_only_columns_need_an_engine():
    with pytest.raises(ValueError, match="engine"):
        columns("latest", "task_logs")
    assert "tool_calls" in columns("latest", "task_logs", "postgresql")


def test_current_phase_only_at_latest_in_postgres():
    for point in ("ddl", "production"):
        assert "current_phase" not in columns(point, "phase_queue", "postgresql")
        assert "current_phase" not in columns(point, "phase_queue", "sqlite")
    assert columns("latest", "phase_queue", "postgresql")[-1] == "current_phase"
    assert "current_phase" not in columns("latest", "phase_queue", "sqlite")  # the migration is PG-only


def test_phase_queue_layouts():
    assert [p for p in POINTS if "parent_issue" in columns(p, "phase_queue", "postgresql")] == ["production"]
    assert columns("production", "phase_queue")[5] == "depends_on_phase"
    assert columns("ddl", "phase_queue")[5] == "depends_on_phases"
    assert columns("latest", "phase_queue", "postgresql")[15] == "depends_on_phases"
    assert "feature_id" not in columns("production", "phase_queue")


def test_generated_plan_only_at_latest():
    for engine in ("sqlite", "postgresql"):
        assert [p for p in POINTS if "generated_plan" in columns(p, "planned_features", engine)] == ["latest"]
    assert columns("latest", "planned_features", "postgresql")[-2:] == ("generated_plan", "workflow_type")


def test_column_counts():
    assert len(columns("ddl", "workflow_history")) == 50
    assert len(columns("production", "workflow_history")) == 77
    assert len(columns("latest", "workflow_history", "postgresql")) == 77
    assert [len(columns("ddl", t)) for t in ("phase_queue", "queue_config", "planned_features", "task_logs")] == \
        [16, 3, 17, 16]


async def test_production_postgres_types(empty_pg_url):
    await create_postgres(empty_pg_url, "production")
    history = await pg_column_types(empty_pg_url, "workflow_history")
    assert len(history) == 77
    assert history["id"][0] == "bigint" and history["id"][1].startswith("nextval(")
    assert history["start_time"][0] == history["created_at"][0] == "timestamp without time zone"
    assert history["estimated_cost_total"][0] == "numeric"
    assert history["pr_merged"] == ("boolean", "false")
    assert sum(kind == "jsonb" for kind, _ in history.values()) == 8
    queue = await pg_column_types(empty_pg_url, "phase_queue")
    assert queue["queue_id"][0] == "character varying" and queue["phase_data"][0] == "jsonb"
    features = await pg_column_types(empty_pg_url, "planned_features")
    assert features["tags"] == ("jsonb", None) and features["status"][1] is None


async def test_latest_postgres_defaults(empty_pg_url):
    await create_postgres(empty_pg_url, "latest")
    row = await insert_postgres(empty_pg_url, "phase_queue", {"queue_id": "q1", "phase_number": 1})
    assert row["current_phase"] == "init" and row["status"] == "queued" and row["feature_id"] is None
    assert row["depends_on_phases"] is None and row["priority"] == 50
    log = await insert_postgres(empty_pg_url, "task_logs", {"adw_id": "a1", "issue_number": 1, "phase_name": "Plan",
                                                            "phase_status": "completed", "log_message": "ok"})
    assert json.loads(log["tool_calls"]) == []


def test_ddl_sqlite_defaults(tmp_path):
    create_sqlite(tmp_path / "d.db", "ddl")
    row = insert_sqlite(tmp_path / "d.db", "phase_queue", {"queue_id": "q1", "phase_number": 1})
    assert (row["status"], row["depends_on_phases"], row["priority"]) == ("queued", "[]", 50)
    feature = insert_sqlite(tmp_path / "d.db", "planned_features", {"item_type": "bug", "title": "x"})
    assert (feature["status"], feature["tags"]) == ("planned", "[]")


def test_sqlite_checks_hold(sqlite_db, point):
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        insert_sqlite(sqlite_db, "task_logs", {"adw_id": "a1", "issue_number": 1, "phase_name": "Plan",
                                               "phase_status": "paused", "log_message": "no"})


ROW = {"queue_id": "q1", "phase_number": 2, "status": "ready", "phase_data": {"title": "Build", "n": [1, 2]},
       "ready_timestamp": "2025-12-13T03:40:19"}


def queue_row(point, **changes):
    """ROW with the point's parent column (v1: parent_issue NOT NULL; v2: feature_id)."""
    return {**ROW, ("parent_issue" if point == "production" else "feature_id"): 7, **changes}


async def test_postgres_checks_hold(pg_db, point):
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_postgres(pg_db, "phase_queue", queue_row(point, status="paused"))


def test_sqlite_insert_round_trips_json_and_timestamp(sqlite_db, point):
    insert_sqlite(sqlite_db, "phase_queue", queue_row(point))
    conn = sqlite3.connect(sqlite_db)
    try:
        data, ready = conn.execute("SELECT phase_data, ready_timestamp FROM phase_queue").fetchone()
    finally:
        conn.close()
    assert json.loads(data) == ROW["phase_data"] and ready == "2025-12-13T03:40:19"


async def test_postgres_insert_round_trips_json_and_timestamp(pg_db, point):
    await insert_postgres(pg_db, "phase_queue", queue_row(point, ready_timestamp="2025-12-13T11:40:19Z"))
    conn = await asyncpg.connect(pg_db)
    try:
        row = await conn.fetchrow("SELECT phase_data, ready_timestamp, phase_data->>'title' AS title FROM phase_queue")
    finally:
        await conn.close()
    assert json.loads(row["phase_data"]) == ROW["phase_data"] and row["title"] == "Build"
    assert row["ready_timestamp"] == dt.datetime(2025, 12, 13, 11, 40, 19)


async def test_postgres_insert_converts_numeric_boolean_and_jsonb(empty_pg_url):
    await create_postgres(empty_pg_url, "production")
    row = await insert_postgres(empty_pg_url, "workflow_history", {
        "adw_id": "19db0b8b", "status": "completed", "actual_cost_total": 1.25, "pr_merged": 1,
        "retry_reasons": ["timeout"], "structured_input": {"a": 1}, "success_rate": 1,
        "start_time": "2025-12-13 03:35:02.98"})
    assert row["actual_cost_total"] == Decimal("1.2500") and row["pr_merged"] is True
    assert json.loads(row["retry_reasons"]) == ["timeout"] and json.loads(row["structured_input"]) == {"a": 1}
    assert row["start_time"] == dt.datetime(2025, 12, 13, 3, 35, 2, 980000) and row["id"] == 1


def test_sqlite_insert_into_production_history_stores_json_text(tmp_path):
    create_sqlite(tmp_path / "p.db", "production")
    row = insert_sqlite(tmp_path / "p.db", "workflow_history",
                        {"adw_id": "a1", "status": "running", "anomaly_flags": [{"kind": "slow"}]})
    assert json.loads(row["anomaly_flags"]) == [{"kind": "slow"}] and row["pr_merged"] == 0
