"""The demo workspace, its simulator and the demo webhook service, on real files and sockets.

The demo must write the real ADW system's formats (DESIGN §4): these tests read its rows
and files directly (sqlite3, json, /proc), never through a channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import sqlite3
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import structlog

from monitor.adw import PHASES, QUEUE_STATUSES, TEMPLATE_PHASES, adw_ids_of_command, template_phases
from monitor.demo.records import (
    TRACKED_TEMPLATES,
    begin_phase,
    error_entry,
    finish_phase,
    new_state,
    open_run,
)
from monitor.demo.simulator import Simulator
from monitor.demo.vocabulary import NON_CRITICAL, WORK_ITEMS
from monitor.demo.webhook_service import ApiCatalog, DemoDeliveries, WebhookStats, start_webhook_service
from monitor.demo.workspace import Workspace, create_workspace

COLUMNS = {
    "phase_queue": {"queue_id", "feature_id", "phase_number", "issue_number", "status", "depends_on_phases",
                    "phase_data", "created_at", "updated_at", "error_message", "adw_id", "pr_number", "priority",
                    "queue_position", "ready_timestamp", "started_timestamp", "current_phase"},
    "queue_config": {"config_key", "config_value", "updated_at"},
    "workflow_history": {"id", "adw_id", "issue_number", "nl_input", "github_url", "gh_issue_state",
                         "workflow_template", "model_used", "status", "start_time", "end_time", "duration_seconds",
                         "error_message", "phase_count", "current_phase", "retry_count", "worktree_path",
                         "input_tokens", "output_tokens", "total_tokens", "actual_cost_total", "estimated_cost_total",
                         "structured_input", "cost_breakdown", "token_breakdown", "anomaly_flags",
                         "optimization_recommendations", "similar_workflow_ids", "created_at", "updated_at"},
    "planned_features": {"id", "item_type", "title", "description", "status", "priority", "estimated_hours",
                         "actual_hours", "session_number", "github_issue_number", "parent_id", "tags",
                         "completion_notes", "created_at", "updated_at", "started_at", "completed_at",
                         "generated_plan"},
    "task_logs": {"adw_id", "issue_number", "workflow_template", "phase_name", "phase_number", "phase_status",
                  "log_message", "error_message", "started_at", "completed_at", "duration_seconds", "tokens_used",
                  "cost_usd", "created_at"},
}
STATE_FIELDS = {"adw_id", "issue_number", "branch_name", "plan_file", "issue_class", "worktree_path", "backend_port",
                "frontend_port", "model_set", "all_adws", "estimated_cost_total", "estimated_cost_breakdown",
                "workflow_template", "model_used", "start_time", "nl_input", "github_url"}
DEMO_TEMPLATES = {"adw_sdlc_complete_iso", "adw_sdlc_from_build_iso", "adw_sdlc_complete_zte_iso",
                  "adw_plan_build_iso", "adw_lightweight_iso"}
HISTORY_JSON = {"structured_input": dict, "cost_breakdown": dict, "token_breakdown": dict, "anomaly_flags": list,
                "optimization_recommendations": list, "similar_workflow_ids": list}


class SimulatedClock:
    """The simulator's clock: starts at the real now, moves `tick` seconds a reading (a step reads it once)."""

    def __init__(self, tick: float = 0.0) -> None:
        self.now, self.tick = datetime.now(UTC), timedelta(seconds=tick)

    def __call__(self) -> datetime:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def query(ws: Workspace, sql: str, params: tuple = ()) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(ws.db_path)) as conn:
        return conn.execute(sql, params).fetchall()


def states(ws: Workspace) -> dict[str, str]:
    return {d.name: (d / "adw_state.json").read_text(encoding="utf-8") for d in ws.agents_dir.iterdir()}


def argv_of(pid: int) -> list[str]:
    try:
        return [arg.decode() for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if arg]
    except OSError:
        return []


def run_statuses(ws: Workspace) -> dict[str, str]:
    return dict(query(ws, "SELECT adw_id, status FROM workflow_history"))


TICK = 5.0  # simulated seconds a step: phases take tens of seconds, so a minute of steps is five of a demo


def deliveries(seed: int) -> DemoDeliveries:
    return DemoDeliveries(WebhookStats(), random.Random(seed))


def steps(simulator: Simulator, count: int) -> None:
    for _ in range(count):
        simulator.step()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return create_workspace(tmp_path / "demo", random.Random(7))


@pytest.fixture(scope="module")
def stepped(tmp_path_factory) -> Workspace:
    """A workspace after a minute of simulated activity (the simulator closed), for tests that only read."""
    ws = create_workspace(tmp_path_factory.mktemp("stepped") / "demo", random.Random(7))
    sim = Simulator(ws, random.Random(11), deliveries(11), api=ApiCatalog(), clock=SimulatedClock(TICK))
    try:
        steps(sim, 60)
    finally:
        sim.close()
    return ws


@pytest.fixture
def simulator(workspace: Workspace):
    sim = Simulator(workspace, random.Random(11), deliveries(11), api=ApiCatalog(), clock=SimulatedClock(TICK))
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


def assert_queue_is_consistent(ws: Workspace) -> None:
    rows = query(ws, "SELECT phase_data, priority, created_at, ready_timestamp, started_timestamp, updated_at,"
                     " status, current_phase FROM phase_queue ORDER BY queue_position")
    titles = [json.loads(row[0])["title"] for row in rows]
    assert len(titles) == len(set(titles))
    assert {row[1] for row in rows} <= {10, 20, 50, 70, 90}
    assert [row[2] for row in rows] == sorted(row[2] for row in rows)  # queue_position is FIFO
    for *_, created, ready, started, updated, status, phase in rows:
        times = [t for t in (created, ready, started) if t]
        assert times == sorted(times) and max(times) <= updated
        assert (ready is None) == (status in ("queued", "blocked"))
        assert (started is None) == (status in ("queued", "ready", "blocked"))
        assert phase == "init" if status in ("queued", "ready", "blocked") else phase in {"init", "Completed", *PHASES}


def test_queue_priorities_are_the_hoppers_and_rows_stay_consistent(workspace, stepped):
    priorities = Counter(row[0] for row in query(workspace, "SELECT priority FROM phase_queue"))
    assert priorities.most_common(1)[0][0] == 50 and len(priorities) >= 3
    assert_queue_is_consistent(workspace)
    assert_queue_is_consistent(stepped)


def test_the_most_urgent_ready_phase_starts_first(workspace, simulator):
    with contextlib.closing(sqlite3.connect(workspace.db_path)) as conn, conn:
        conn.execute("UPDATE phase_queue SET priority = CASE status WHEN 'ready' THEN 50 ELSE 90 END")
        urgent = conn.execute("SELECT queue_id FROM phase_queue WHERE status = 'ready'"
                              " ORDER BY queue_position DESC LIMIT 1").fetchone()[0]
        conn.execute("UPDATE phase_queue SET priority = 10 WHERE queue_id = ?", (urgent,))
    simulator.step()
    status, adw_id = query(workspace, "SELECT status, adw_id FROM phase_queue WHERE queue_id = ?", (urgent,))[0]
    assert status == "running" and run_statuses(workspace)[adw_id] in ("pending", "running")


def test_history_spans_forty_days_so_cost_windows_differ(workspace):
    rows = query(workspace, "SELECT status, start_time, actual_cost_total, estimated_cost_total FROM workflow_history")
    assert 55 <= len(rows) <= 65
    statuses = {row[0] for row in rows}
    assert statuses == {"pending", "running", "completed", "failed"}  # one run just launched
    now = datetime.now(UTC)
    ages = [now - datetime.fromisoformat(row[1]) for row in rows]
    assert any(age < timedelta(days=7) for age in ages) and any(age > timedelta(days=30) for age in ages)
    assert all(age <= timedelta(days=41) for age in ages)
    assert all(row[3] > 0 for row in rows)


def test_history_rows_carry_json_columns_tokens_and_real_costs(stepped):
    columns = ", ".join(HISTORY_JSON)
    rows = query(stepped, f"SELECT status, actual_cost_total, input_tokens, output_tokens, total_tokens,"
                            f" gh_issue_state, worktree_path, workflow_template, current_phase, {columns}"
                            f" FROM workflow_history")
    for status, cost, tokens_in, tokens_out, tokens, issue_state, tree, template, phase, *blobs in rows:
        assert [type(json.loads(blob)) for blob in blobs] == list(HISTORY_JSON.values())
        assert cost == 0.0 if status == "pending" else cost > 0 if status in ("completed", "failed") else cost >= 0
        assert tokens_in + tokens_out == tokens and issue_state in ("open", "closed")
        assert tree.endswith("/trees/" + tree.rsplit("/", 1)[1]) and template in DEMO_TEMPLATES
        assert phase is None or phase in PHASES
    assert any(json.loads(row[-1]) for row in rows)  # similar_workflow_ids name earlier runs
    assert {row[0] for row in rows} >= {"running", "completed", "failed"}


def test_planned_features_mix_types_statuses_and_quick_wins(workspace):
    rows = query(workspace, "SELECT item_type, status, priority, estimated_hours, tags FROM planned_features")
    assert 22 <= len(rows) <= 28
    assert {row[0] for row in rows} == {"session", "feature", "bug", "enhancement"}
    assert {row[1] for row in rows} <= {"planned", "in_progress", "completed", "cancelled"}
    assert {"planned", "in_progress", "completed"} <= {row[1] for row in rows}
    assert {row[2] for row in rows} <= {"high", "medium", "low"}
    assert any(row[3] <= 2 for row in rows) and any(row[3] > 2 for row in rows)
    assert all(isinstance(json.loads(row[4]), list) for row in rows)


def test_planned_features_carry_plans_notes_and_completion(workspace):
    rows = query(workspace, "SELECT title, status, description, completion_notes, completed_at, generated_plan"
                            " FROM planned_features WHERE item_type != 'session'")
    assert len({row[0] for row in rows}) == len(rows)
    plans = [json.loads(row[5]) for row in rows if row[5]]
    assert 0 < len(plans) < len(rows)
    for plan in plans:
        assert plan["total_phases"] == len(plan["phases"]) >= 2
        assert plan["total_estimated_hours"] == pytest.approx(sum(p["estimated_hours"] for p in plan["phases"]))
        assert all({"title", "estimated_hours", "files_to_modify"} <= set(p) for p in plan["phases"])
    assert all(row[2] for row in rows)
    assert all(row[3] and row[4] for row in rows if row[1] == "completed")


def test_state_files_carry_every_field_and_match_the_database(workspace):
    found = {name: json.loads(text) for name, text in states(workspace).items()}
    assert len(found) >= 8
    status = run_statuses(workspace)
    for name, state in found.items():
        assert STATE_FIELDS <= set(state) and state["adw_id"] == name and re.fullmatch(r"[0-9a-f]{8}", name)
        assert isinstance(state["issue_number"], str) and state["workflow_template"] in DEMO_TEMPLATES
        assert state["issue_class"] in {"/feature", "/bug", "/chore", "/patch"}
        assert tuple(state["estimated_cost_breakdown"]) == template_phases(state["workflow_template"])
        assert state["model_set"] in {"base", "heavy", "lightweight"}
        assert state["model_used"] in {"sonnet", "opus", "haiku"}
        assert isinstance(state["all_adws"], list) and state["github_url"].startswith("https://github.com/")
        assert ("end_time" in state) == (status[name] in ("completed", "failed"))
    assert any((workspace.agents_dir / name / "error.log").exists() for name in found)
    assert {d.name for d in workspace.trees_dir.iterdir()} < set(found)
    running = {adw_id for adw_id, s in status.items() if s == "running"}
    assert running and running <= set(found)
    logs = query(workspace, "SELECT adw_id, phase_name, phase_status, cost_usd, created_at FROM task_logs")
    assert {row[0] for row in logs} == {name for name in found if status[name] != "pending"}  # pending: no phase yet
    assert {row[1] for row in logs} <= set(PHASES) and {row[2] for row in logs} <= {"completed", "failed"}
    assert sum(row[3] for row in logs) > 0 and all(row[4] for row in logs)


def test_state_files_come_in_the_current_and_the_older_format(stepped):
    found = [json.loads(text) for text in states(stepped).values()]
    older = [state for state in found if "status" in state]
    assert older and len(older) < len(found)
    assert all("current_phase" not in state for state in found if "status" not in state)
    for state in older:
        assert state["status"] in ("pending", "running", "completed", "failed")
        assert state["current_phase"] in PHASES or (state["status"] == "pending" and state["current_phase"] is None)
    share = sum("status" in new_state(stepped, random.Random(n), "abcd1234", 5, WORK_ITEMS[0],
                                      datetime.now(UTC)) for n in range(400))
    assert 80 <= share <= 160  # about 30%


def test_runs_use_the_real_templates_and_models():
    ws = Workspace.at(Path("/nonexistent"))
    drawn = [new_state(ws, random.Random(n), "abcd1234", 5, WORK_ITEMS[n % 24], datetime.now(UTC))
             for n in range(300)]
    templates = Counter(state["workflow_template"] for state in drawn)
    assert set(templates) == DEMO_TEMPLATES and templates.most_common(1)[0][0] == "adw_sdlc_complete_iso"
    models = {"base": "sonnet", "heavy": "opus", "lightweight": "haiku"}
    assert all(models[state["model_set"]] == state["model_used"] for state in drawn)
    assert all((state["model_set"] == "lightweight") == (state["workflow_template"] == "adw_lightweight_iso")
               for state in drawn)


def test_runs_walk_only_their_templates_phases_in_order(stepped):
    templates = dict(query(stepped, "SELECT adw_id, workflow_template FROM workflow_history"))
    walked: dict[str, list[tuple[str, str]]] = {}
    for adw_id, phase, outcome in query(stepped, "SELECT adw_id, phase_name, phase_status FROM task_logs"
                                                   " ORDER BY id"):
        walked.setdefault(adw_id, []).append((phase, outcome))
    assert len({templates[adw_id] for adw_id in walked}) >= 3
    for adw_id, logs in walked.items():
        phases = TEMPLATE_PHASES[templates[adw_id]]
        assert [phase for phase, _ in logs] == list(phases[: len(logs)])  # Plan and Validate never for from_build
        failed = [phase for phase, outcome in logs[:-1] if outcome == "failed"]
        assert set(failed) <= NON_CRITICAL  # only a non-critical failure lets a run go on


def test_a_from_build_run_starts_at_build_and_skips_plan_and_validate(workspace):
    state = new_state(workspace, random.Random(1), "0123abcd", 77, WORK_ITEMS[0], datetime.now(UTC))
    state.update(workflow_template="adw_sdlc_from_build_iso")
    with contextlib.closing(sqlite3.connect(workspace.db_path)) as conn, conn:
        run = open_run(conn, workspace, state)
        for _ in range(3):
            begin_phase(conn, workspace, run, datetime.now(UTC))
            finish_phase(conn, workspace, run, random.Random(2), datetime.now(UTC))
        begin_phase(conn, workspace, run, datetime.now(UTC))
    logs = query(workspace, "SELECT phase_name, phase_number FROM task_logs WHERE adw_id = '0123abcd' ORDER BY id")
    assert logs == [("Build", 3), ("Lint", 4), ("Test", 5)]  # Plan and Validate are skipped, never logged
    tracker = json.loads((workspace.agents_dir / "0123abcd" / "completed_phases.json").read_text(encoding="utf-8"))
    assert tracker["completed"] == ["Build", "Lint", "Test"] and tracker["current"] == "Review"


def test_completed_phases_json_is_the_phase_trackers(stepped):
    status = run_statuses(stepped)
    for agent in stepped.agents_dir.iterdir():
        state = json.loads((agent / "adw_state.json").read_text(encoding="utf-8"))
        tracker = agent / "completed_phases.json"
        assert tracker.exists() == (state["workflow_template"] in TRACKED_TEMPLATES and status[agent.name] != "pending")
        if not tracker.exists():
            continue
        data = json.loads(tracker.read_text(encoding="utf-8"))
        phases = template_phases(state["workflow_template"])
        assert set(data) == {"completed", "current", "last_updated"} and datetime.fromisoformat(data["last_updated"])
        assert data["completed"] == list(phases[: len(data["completed"])])
        if status[agent.name] == "running":
            assert data["current"] == phases[len(data["completed"])]
        elif status[agent.name] == "completed":
            assert data["current"] is None and data["completed"] == list(phases)


def test_queue_rows_follow_their_runs_phase(stepped):
    rows = query(stepped, "SELECT q.current_phase, q.status, h.status, h.workflow_template FROM phase_queue q"
                            " JOIN workflow_history h ON h.adw_id = q.adw_id")
    assert {row[2] for row in rows} >= {"running", "completed"}
    for phase, queue_status, run_status, template in rows:
        if run_status == "pending":
            assert (phase, queue_status) == ("init", "running")
        elif run_status == "running":
            assert queue_status == "running" and phase in template_phases(template)
        elif run_status == "completed":
            assert phase == ("Completed" if template == "adw_sdlc_from_build_iso" else template_phases(template)[-1])


def test_a_failed_phase_appends_its_error_to_error_log(workspace, stepped):
    sql = "SELECT adw_id, error_message FROM task_logs WHERE phase_status = 'failed'"
    seeded = query(workspace, sql)
    assert seeded  # the seeded failed run failed a phase
    for ws, (adw_id, message) in [*((workspace, f) for f in seeded), *((stepped, f) for f in query(stepped, sql))]:
        assert message in (ws.agents_dir / adw_id / "error.log").read_text(encoding="utf-8")
    entries = {error_entry(random.Random(n), "Build", "Build phase failed: boom") for n in range(40)}
    tracebacks = [entry for entry in entries if entry.startswith("Traceback (most recent call last):\n")]
    assert "Build phase failed: boom" in entries and tracebacks
    assert all(entry.splitlines()[-1].endswith("Error: Build phase failed: boom") for entry in tracebacks)


def test_create_workspace_reuses_an_existing_one(workspace):
    counts = {table: query(workspace, f"SELECT COUNT(*) FROM {table}") for table in COLUMNS}
    files = states(workspace)
    again = create_workspace(workspace.root, random.Random(99))
    assert again == workspace
    assert {table: query(workspace, f"SELECT COUNT(*) FROM {table}") for table in COLUMNS} == counts
    assert states(workspace) == files


def test_steps_change_every_source(workspace):
    stats, api = WebhookStats(), ApiCatalog()
    simulator = Simulator(workspace, random.Random(5), DemoDeliveries(stats, random.Random(5)), api=api,
                          clock=SimulatedClock(TICK))
    queue_sql = "SELECT queue_id, status FROM phase_queue"
    history_sql = "SELECT adw_id, status, current_phase, actual_cost_total FROM workflow_history"
    features_sql = "SELECT id, status, actual_hours FROM planned_features"
    before = (dict(query(workspace, queue_sql)), query(workspace, history_sql), query(workspace, features_sql),
              states(workspace), api.openapi())
    try:
        steps(simulator, 10)
    finally:
        simulator.close()
    after = (dict(query(workspace, queue_sql)), query(workspace, history_sql), query(workspace, features_sql),
             states(workspace), api.openapi())
    for old, new in zip(before, after, strict=True):
        assert old != new
    assert any(before[3].get(name) not in (None, text) for name, text in after[3].items())  # rewritten in place
    assert stats.total_received > 0


def settled_processes(simulator: Simulator) -> tuple[dict[str, int], dict[str, int]]:
    """(ADW stand-ins, leftover dev servers) that already ran a step ago, stepping until both show.

    A child spawned a moment ago may still be inside exec(), its command line still empty.
    """
    seen: dict[str, int] = {}
    for _ in range(20):
        earlier = seen
        simulator.step()
        adws, devs = simulator.live_processes(), simulator.leftover_processes()
        seen = {**adws, **devs}
        settled = {adw_id: pid for adw_id, pid in seen.items() if earlier.get(adw_id) == pid}
        if settled.keys() & adws.keys() and settled.keys() & devs.keys():
            return ({a: p for a, p in settled.items() if a in adws}, {a: p for a, p in settled.items() if a in devs})
    raise AssertionError("no stand-in and dev server lived through a step")


def test_stand_ins_look_like_adws_and_the_leftover_dev_server_does_not(workspace, simulator):
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc to read command lines")
    adws, devs = settled_processes(simulator)
    assert 0 < len(simulator.live_processes()) <= 6 and len(devs) == 1
    status, queue = run_statuses(workspace), dict(query(workspace, "SELECT adw_id, current_phase FROM phase_queue"))
    for adw_id, pid in adws.items():
        argv, state = argv_of(pid), json.loads(states(workspace)[adw_id])
        assert adw_ids_of_command(argv) == {adw_id} and argv[2:] == [state["issue_number"], adw_id]
        script = Path(argv[1])  # the phase's script, or the orchestrator's before the first phase
        expected = state["workflow_template"] if queue[adw_id] == "init" else f"adw_{queue[adw_id].lower()}_iso"
        assert script == workspace.scripts_dir / f"{expected}.py" and script.is_file()
        assert status[adw_id] in ("pending", "running")
    (dev_id, dev_pid), = devs.items()
    argv = argv_of(dev_pid)
    assert adw_ids_of_command(argv) == frozenset() and any(f"trees/{dev_id}/" in arg for arg in argv)
    assert status[dev_id] in ("completed", "failed")
    simulator.close()
    assert simulator.live_processes() == {} and simulator.leftover_processes() == {}
    assert not any(adw_id in " ".join(argv_of(pid)) for adw_id, pid in {**adws, **devs}.items())


def test_many_steps_stay_bounded(workspace, simulator):
    for _ in range(150):
        simulator.step()
        assert len(simulator.live_processes()) <= 6
    assert len(list(workspace.agents_dir.iterdir())) <= 14
    assert query(workspace, "SELECT COUNT(*) FROM phase_queue")[0][0] <= 60
    assert query(workspace, "SELECT COUNT(*) FROM workflow_history")[0][0] <= 100 + 60 + 6  # today, older, live
    assert query(workspace, "SELECT COUNT(*) FROM planned_features")[0][0] <= 40


def test_a_new_simulator_adopts_the_runs_left_running(workspace, simulator):
    simulator.step()
    left_running = set(simulator.live_processes())
    simulator.close()
    successor = Simulator(workspace, random.Random(12), deliveries(12), clock=SimulatedClock(TICK))
    try:
        successor.step()
        assert left_running & set(successor.live_processes())
    finally:
        successor.close()


async def test_run_logs_a_failing_step_continues_and_cleans_up(workspace):
    sim = Simulator(workspace, random.Random(3), deliveries(3), clock=SimulatedClock(TICK))
    stop, calls = asyncio.Event(), []
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
    stats.record_success(123, "abcd1234", "adw_sdlc_complete_iso")
    stats.record_failure(124, "[Errno 2] No such file or directory: 'uv'")  # raised: a failure
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
    # the real service: degraded once it has failures and a success rate of 80% or less; the rate is text
    assert body["status"] == "degraded" and set(body["uptime"]) == {"seconds", "hours", "human"}
    assert body["stats"] == {"total_received": 2, "successful": 1, "failed": 1, "success_rate": "50.0%"}
    assert [set(f) for f in body["recent_failures"]] == [{"issue", "timestamp", "error"}]
    assert body["recent_failures"][0]["issue"] == 124
    assert set(body["last_successful"]) == {"issue", "adw_id", "workflow", "timestamp"}
    assert body["last_successful"]["adw_id"] == "abcd1234"
    assert "/webhook-status" in openapi["paths"]


def test_uptime_is_reported_in_seconds_hours_and_words():
    ticks = iter([1000.0, 1000.0 + 3725.0])
    stats = WebhookStats(clock=lambda: next(ticks))
    assert stats.status()["uptime"] == {"seconds": 3725, "hours": 1.03, "human": "1h 2m"}  # as the real service


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


def test_stand_ins_find_their_scripts_from_a_relative_workspace(tmp_path, monkeypatch):
    from monitor.demo.processes import StandInProcesses

    monkeypatch.chdir(tmp_path)
    procs = StandInProcesses(Path("demo"))  # `monitor demo` without --dir: ./demo
    try:
        procs.ensure("abcdef01", "7", "adw_build_iso")
        argv = procs._procs["abcdef01"][1].args
        # The stand-ins run inside the workspace: a relative script path would point nowhere.
        assert Path(argv[1]).is_absolute() and Path(argv[1]).is_file()
        assert adw_ids_of_command(argv) == {"abcdef01"}
    finally:
        procs.kill_all()
