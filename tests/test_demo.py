"""The demo workspace, its simulator and the demo webhook service, on real files and sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
import structlog

from monitor.demo.schema import ADW_PHASES, QUEUE_STATUSES
from monitor.demo.simulator import Simulator
from monitor.demo.webhook_service import ApiCatalog, WebhookStats, start_webhook_service
from monitor.demo.workspace import Workspace, create_workspace

COLUMNS = {
    "phase_queue": {"queue_id", "feature_id", "phase_number", "issue_number", "status", "depends_on_phases",
                    "phase_data", "created_at", "updated_at", "error_message", "adw_id", "pr_number", "priority",
                    "queue_position", "ready_timestamp", "started_timestamp", "current_phase"},
    "queue_config": {"config_key", "config_value", "updated_at"},
    "workflow_history": {"id", "adw_id", "issue_number", "nl_input", "github_url", "workflow_template", "model_used",
                         "status", "start_time", "end_time", "duration_seconds", "error_message", "phase_count",
                         "current_phase", "retry_count", "actual_cost_total", "estimated_cost_total",
                         "created_at", "updated_at"},
    "planned_features": {"id", "item_type", "title", "description", "status", "priority", "estimated_hours",
                         "actual_hours", "session_number", "github_issue_number", "parent_id", "tags",
                         "completion_notes", "created_at", "updated_at", "started_at", "completed_at"},
    "task_logs": {"adw_id", "issue_number", "workflow_template", "phase_name", "phase_number", "phase_status",
                  "log_message", "error_message", "started_at", "completed_at", "duration_seconds", "tokens_used",
                  "cost_usd"},
}
STATE_FIELDS = {"adw_id", "issue_number", "branch_name", "plan_file", "issue_class", "worktree_path", "backend_port",
                "frontend_port", "model_set", "all_adws", "estimated_cost_total", "estimated_cost_breakdown",
                "workflow_template", "model_used", "start_time", "nl_input", "github_url"}


def query(ws: Workspace, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(ws.db_path)) as conn:
        return conn.execute(sql).fetchall()


def states(ws: Workspace) -> dict[str, str]:
    return {d.name: (d / "adw_state.json").read_text(encoding="utf-8") for d in ws.agents_dir.iterdir()}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return create_workspace(tmp_path / "demo", random.Random(7))


@pytest.fixture
def simulator(workspace: Workspace):
    sim = Simulator(workspace, random.Random(11), WebhookStats(), api=ApiCatalog())
    yield sim
    sim.close()


def test_workspace_has_every_table_populated_with_the_contract_columns(workspace, tmp_path):
    assert workspace == Workspace(tmp_path / "demo", tmp_path / "demo/db/database.db",
                                  tmp_path / "demo/agents", tmp_path / "demo/trees")
    for table, columns in COLUMNS.items():
        assert columns <= {row[1] for row in query(workspace, f"PRAGMA table_info({table})")}
        assert query(workspace, f"SELECT COUNT(*) FROM {table}")[0][0] > 0
    assert query(workspace, "PRAGMA journal_mode") == [("wal",)]
    assert query(workspace, "SELECT config_value FROM queue_config WHERE config_key = 'queue_paused'") == [("false",)]


def test_queue_rows_cover_all_six_statuses_with_phase_data(workspace):
    rows = query(workspace, "SELECT queue_id, status, phase_data, depends_on_phases, priority FROM phase_queue")
    assert 35 <= len(rows) <= 45
    assert {row[1] for row in rows} == set(QUEUE_STATUSES)
    for queue_id, _, phase_data, depends, priority in rows:
        assert uuid.UUID(queue_id).version == 4
        assert {"title", "content", "externalDocs", "predicted_patterns"} <= set(json.loads(phase_data))
        assert isinstance(json.loads(depends), list) and isinstance(priority, int)


def test_history_spans_forty_days_so_cost_windows_differ(workspace):
    rows = query(workspace, "SELECT status, start_time, actual_cost_total, estimated_cost_total FROM workflow_history")
    assert 55 <= len(rows) <= 65
    statuses = {row[0] for row in rows}
    assert {"running", "completed", "failed"} <= statuses <= {"pending", "running", "completed", "failed"}
    now = datetime.now(timezone.utc)
    ages = [now - datetime.fromisoformat(row[1]) for row in rows]
    assert any(age < timedelta(days=7) for age in ages) and any(age > timedelta(days=30) for age in ages)
    assert all(age <= timedelta(days=41) for age in ages)
    assert all(row[3] > 0 for row in rows)


def test_planned_features_mix_types_statuses_and_quick_wins(workspace):
    rows = query(workspace, "SELECT item_type, status, priority, estimated_hours, tags FROM planned_features")
    assert 22 <= len(rows) <= 28
    assert {row[0] for row in rows} == {"session", "feature", "bug", "enhancement"}
    assert {row[1] for row in rows} <= {"planned", "in_progress", "completed", "cancelled"}
    assert {"planned", "in_progress", "completed"} <= {row[1] for row in rows}
    assert {row[2] for row in rows} <= {"high", "medium", "low"}
    assert any(row[3] <= 2 for row in rows) and any(row[3] > 2 for row in rows)
    assert all(isinstance(json.loads(row[4]), list) for row in rows)


def test_state_files_carry_every_field_and_match_the_database(workspace):
    found = {name: json.loads(text) for name, text in states(workspace).items()}
    assert len(found) >= 8
    for name, state in found.items():
        assert STATE_FIELDS <= set(state) and state["adw_id"] == name and re.fullmatch(r"[0-9a-f]{8}", name)
        assert isinstance(state["issue_number"], str)
        assert state["issue_class"] in {"/feature", "/bug", "/chore", "/patch"}
        assert set(state["estimated_cost_breakdown"]) <= set(ADW_PHASES) and isinstance(state["all_adws"], list)
        assert state["model_set"] in {"base", "heavy"} and state["github_url"].startswith("https://github.com/")
    assert any((workspace.agents_dir / name / "error.log").exists() for name in found)
    assert {d.name for d in workspace.trees_dir.iterdir()} < set(found)
    running = {row[0] for row in query(workspace, "SELECT adw_id FROM workflow_history WHERE status = 'running'")}
    assert running and running <= set(found)
    logs = query(workspace, "SELECT adw_id, phase_name, phase_status, cost_usd FROM task_logs")
    assert {row[0] for row in logs} == set(found)
    assert {row[1] for row in logs} <= set(ADW_PHASES)
    assert {row[2] for row in logs} <= {"started", "completed", "failed", "skipped"}
    assert sum(row[3] for row in logs) > 0


def test_create_workspace_reuses_an_existing_one(workspace):
    counts = {table: query(workspace, f"SELECT COUNT(*) FROM {table}") for table in COLUMNS}
    files = states(workspace)
    again = create_workspace(workspace.root, random.Random(99))
    assert again == workspace
    assert {table: query(workspace, f"SELECT COUNT(*) FROM {table}") for table in COLUMNS} == counts
    assert states(workspace) == files


def test_steps_change_every_source(workspace):
    stats, api = WebhookStats(), ApiCatalog()
    simulator = Simulator(workspace, random.Random(5), stats, api=api)
    queue_sql = "SELECT queue_id, status FROM phase_queue"
    history_sql = "SELECT adw_id, status, current_phase, actual_cost_total FROM workflow_history"
    features_sql = "SELECT id, status, actual_hours FROM planned_features"
    before = (dict(query(workspace, queue_sql)), query(workspace, history_sql), query(workspace, features_sql),
              states(workspace), api.openapi())
    try:
        for _ in range(10):
            simulator.step()
    finally:
        simulator.close()
    after = (dict(query(workspace, queue_sql)), query(workspace, history_sql), query(workspace, features_sql),
             states(workspace), api.openapi())
    for old, new in zip(before, after):
        assert old != new
    assert any(before[3].get(name) not in (None, text) for name, text in after[3].items())  # rewritten in place
    assert stats.total_received > 0


def test_running_runs_have_a_process_carrying_their_id_until_close(workspace, simulator):
    simulator.step()
    earlier = simulator.live_processes()
    simulator.step()
    live = simulator.live_processes()
    active = query(workspace, "SELECT adw_id FROM workflow_history WHERE status IN ('pending', 'running')")
    assert 0 < len(live) <= 6 and set(live) <= {row[0] for row in active}
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc to read command lines")
    # a child spawned a moment ago may still be inside exec(); those from the step before are not
    settled = {adw_id: pid for adw_id, pid in live.items() if earlier.get(adw_id) == pid}
    assert settled and all(adw_id in cmdline(pid) for adw_id, pid in settled.items())
    simulator.close()
    assert simulator.live_processes() == {}
    assert not any(adw_id in cmdline(pid) for adw_id, pid in live.items())


def test_many_steps_stay_bounded(workspace, simulator):
    for _ in range(150):
        simulator.step()
        assert len(simulator.live_processes()) <= 6
    assert len(list(workspace.agents_dir.iterdir())) <= 14
    assert query(workspace, "SELECT COUNT(*) FROM phase_queue")[0][0] <= 60
    assert query(workspace, "SELECT COUNT(*) FROM workflow_history")[0][0] <= 110
    assert query(workspace, "SELECT COUNT(*) FROM planned_features")[0][0] <= 40


def test_a_new_simulator_adopts_the_runs_left_running(workspace, simulator):
    simulator.step()
    left_running = set(simulator.live_processes())
    simulator.close()
    successor = Simulator(workspace, random.Random(12), WebhookStats())
    try:
        successor.step()
        assert left_running & set(successor.live_processes())
    finally:
        successor.close()


async def test_run_logs_a_failing_step_continues_and_cleans_up(workspace):
    sim, stop, calls = Simulator(workspace, random.Random(3), WebhookStats()), asyncio.Event(), []
    loop, real_step = asyncio.get_running_loop(), sim.step

    def flaky_step() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        real_step()
        if len(calls) == 3:
            loop.call_soon_threadsafe(stop.set)

    sim.step = flaky_step
    with structlog.testing.capture_logs() as logs:
        await sim.run(stop, period=0.0)
    assert len(calls) == 3
    assert {"event": "demo_step_failed", "error": "disk on fire", "error_type": "RuntimeError",
            "log_level": "warning"} in logs
    assert sim.live_processes() == {}
    sim.step()  # a closed simulator does nothing, and starts no process
    assert sim.live_processes() == {}


async def test_webhook_service_answers_with_the_contract_shape():
    stats = WebhookStats()
    assert stats.status()["last_successful"] is None
    stats.record_success(123, "abcd1234", "adw_sdlc_iso")
    stats.record_failure(124, "Invalid webhook signature")
    runner, port = await start_webhook_service(stats, api=ApiCatalog())
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/webhook-status") as resp:
                assert resp.status == 200
                body = await resp.json()
            async with session.get(f"http://127.0.0.1:{port}/openapi.json") as resp:
                openapi = await resp.json()
    finally:
        await runner.cleanup()
    assert set(body) == {"status", "uptime", "stats", "recent_failures", "last_successful"}
    assert body["status"] == "healthy" and set(body["uptime"]) == {"seconds", "hours", "human"}
    assert body["stats"] == {"total_received": 2, "successful": 1, "failed": 1, "success_rate": 50.0}
    assert [set(f) for f in body["recent_failures"]] == [{"issue", "timestamp", "error"}]
    assert body["recent_failures"][0]["issue"] == 124
    assert set(body["last_successful"]) == {"issue", "adw_id", "workflow", "timestamp"}
    assert body["last_successful"]["adw_id"] == "abcd1234"
    assert "/webhook-status" in openapi["paths"]


def test_uptime_is_reported_in_seconds_hours_and_words():
    ticks = iter([1000.0, 1000.0 + 3725.0])
    stats = WebhookStats(clock=lambda: next(ticks))
    assert stats.status()["uptime"] == {"seconds": 3725, "hours": 1.03, "human": "1h 2m 5s"}


def test_api_catalog_adds_retags_retires_and_reverts_routes():
    api = ApiCatalog(max_added=2)
    api.add_route("get", "/api/a", "A", "preview")
    api.add_route("GET", "/api/a", "A", "feature")
    api.add_route("POST", "/api/b", "B", "preview")
    api.add_route("PUT", "/api/c", "C", "preview")
    added = [r for r in api.routes() if r[1].startswith("/api/")]
    assert added == [("POST", "/api/b", "B", "preview"), ("PUT", "/api/c", "C", "preview")]
    api.remove_route("POST", "/api/b")
    assert [r[1] for r in api.routes() if r[1].startswith("/api/")] == ["/api/c"]
    assert api.openapi()["paths"]["/api/c"]["put"]["tags"] == ["preview"]
