"""ADW rows for the database channels, and writers that store them the way the ADW system would.

The same rows go into SQLite (sqlite3) and PostgreSQL (asyncpg), each through its own
client, so the channels can be compared across the two. The expected summaries are
written out by hand in the tests that use these rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import asyncpg

Row = Mapping[str, Any]

# "Now" for the workflow runs: 7 days before is 2026-02-22T12:00Z, 30 days before 2026-01-30T12:00Z.
RUNS_NOW = "2026-03-01T12:00:00+00:00"
WORKFLOW_RUNS: tuple[Row, ...] = (
    {"adw_id": "a1b2c3d4", "issue_number": 101, "status": "completed", "workflow_template": "adw_sdlc",
     "model_used": "sonnet", "start_time": "2026-02-28T10:00:00Z", "end_time": "2026-02-28T10:01:40Z",
     "duration_seconds": 100.0, "actual_cost_total": 1.25, "estimated_cost_total": 1.0, "phase_count": 9},
    {"adw_id": "b2c3d4e5", "issue_number": 102, "status": "completed", "workflow_template": "adw_sdlc",
     "start_time": "2026-02-20T12:00:00+00:00", "duration_seconds": 200.0, "actual_cost_total": 0.75},
    # naive, space-separated: taken as UTC
    {"adw_id": "c3d4e5f6", "issue_number": 103, "status": "failed", "workflow_template": "adw_patch",
     "start_time": "2026-02-05 08:00:00", "duration_seconds": 50.0, "actual_cost_total": 2.0,
     "error_message": "tests failed"},
    {"adw_id": "d4e5f6a7", "issue_number": 104, "status": "running", "workflow_template": "adw_sdlc",
     "start_time": "2026-03-01T11:00:00Z", "current_phase": "build"},
    {"adw_id": "e5f6a7b8", "issue_number": 105, "status": "pending", "nl_input": "add dark mode"},
    {"adw_id": "f6a7b8c9", "issue_number": 106, "status": "completed", "workflow_template": "adw_plan",
     "start_time": "2025-12-01T00:00:00Z", "duration_seconds": 400.0, "actual_cost_total": 3.0},
    # exactly 7 days before now: inside the 7-day window
    {"adw_id": "a7b8c9d0", "issue_number": 107, "status": "failed", "workflow_template": "adw_patch",
     "start_time": "2026-02-22T12:00:00Z", "actual_cost_total": 0.5},
    # one second before the 7-day window opens
    {"adw_id": "b8c9d0e1", "issue_number": 108, "status": "completed", "workflow_template": "adw_sdlc",
     "start_time": "2026-02-22T11:59:59Z", "duration_seconds": 300.0, "actual_cost_total": 0.25},
)

PLANNED_FEATURES: tuple[Row, ...] = (
    {"id": 1, "item_type": "feature", "title": "Login page", "status": "completed", "priority": "high",
     "estimated_hours": 4.0, "actual_hours": 5.5, "tags": json.dumps(["ui", "auth"]),
     "completed_at": "2026-02-01T10:00:00Z"},
    {"id": 2, "item_type": "bug", "title": "Fix crash", "status": "in_progress", "priority": "high",
     "estimated_hours": 2.0, "actual_hours": 1.25, "tags": json.dumps(["backend"]), "github_issue_number": 17},
    {"id": 3, "item_type": "session", "title": "Session 12", "status": "planned", "priority": "medium",
     "estimated_hours": 8.0, "session_number": 12, "tags": "[]"},
    {"id": 4, "item_type": "enhancement", "title": "Faster search", "status": "cancelled", "priority": "low",
     "estimated_hours": 3.0, "actual_hours": 0.5, "tags": "not json"},
    {"id": 5, "item_type": "feature", "title": "Dark mode", "status": "completed",
     "actual_hours": 2.0, "tags": None, "parent_id": 1},
    {"id": 6, "item_type": "bug", "title": "Odd thing", "status": "blocked", "priority": "medium",
     "estimated_hours": 1.5},
)

QUEUE_ROWS: tuple[Row, ...] = (
    {"queue_id": "5f0c9a52-5d47-4f0e-9a7e-0f6f3e4b1a01", "feature_id": 7, "phase_number": 1, "issue_number": 101,
     "status": "running", "depends_on_phases": "[]", "adw_id": "a1b2c3d4", "priority": 10,
     "phase_data": json.dumps({"title": "Plan", "content": "…", "predicted_patterns": ["api"]})},
    {"queue_id": "5f0c9a52-5d47-4f0e-9a7e-0f6f3e4b1a02", "feature_id": 7, "phase_number": 2, "issue_number": 101,
     "status": "queued", "depends_on_phases": "[1]", "phase_data": json.dumps({"title": "Build"})},
    {"queue_id": "5f0c9a52-5d47-4f0e-9a7e-0f6f3e4b1a03", "status": "failed", "error_message": "boom",
     "phase_data": "{not json"},
)
QUEUE_CONFIG: tuple[Row, ...] = ({"config_key": "queue_paused", "config_value": "true"},)

TASK_LOGS: tuple[Row, ...] = (
    {"adw_id": "a1b2c3d4", "issue_number": 101, "workflow_template": "adw_sdlc", "phase_name": "plan",
     "phase_number": 1, "phase_status": "completed", "started_at": "2026-02-28T10:00:00Z",
     "completed_at": "2026-02-28T10:00:20Z", "duration_seconds": 20.0, "tokens_used": 12000, "cost_usd": 0.125},
    {"adw_id": "a1b2c3d4", "issue_number": 101, "phase_name": "build", "phase_number": 3,
     "phase_status": "failed", "error_message": "compile error"},
)


def _insert_sql(table: str, row: Row, placeholder) -> str:
    names = ", ".join(row)
    marks = ", ".join(placeholder(i) for i in range(1, len(row) + 1))
    return f"INSERT INTO {table} ({names}) VALUES ({marks})"


def insert_sqlite(path: Path, table: str, rows: Iterable[Row]) -> None:
    """Insert ``rows`` into ``table`` of the SQLite file at ``path``, in one commit."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            for row in rows:
                conn.execute(_insert_sql(table, row, lambda i: "?"), tuple(row.values()))
    finally:
        conn.close()


async def insert_postgres(url: str, table: str, rows: Iterable[Row]) -> None:
    """Insert ``rows`` into ``table`` of the PostgreSQL database at ``url``, in one commit."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for row in rows:
                await conn.execute(_insert_sql(table, row, lambda i: f"${i}"), *row.values())
    finally:
        await conn.close()


ALL_TABLES = {"workflow_history": WORKFLOW_RUNS, "planned_features": PLANNED_FEATURES,
              "phase_queue": QUEUE_ROWS, "task_logs": TASK_LOGS}


def fill_sqlite(path: Path) -> None:
    """All the rows above into the SQLite file (whose queue_config already says not paused)."""
    for table, rows in ALL_TABLES.items():
        insert_sqlite(path, table, rows)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM queue_config")
    conn.close()
    insert_sqlite(path, "queue_config", QUEUE_CONFIG)


async def fill_postgres(url: str) -> None:
    """All the rows above into the PostgreSQL database at ``url``."""
    for table, rows in {**ALL_TABLES, "queue_config": QUEUE_CONFIG}.items():
        await insert_postgres(url, table, rows)
