"""The adw-monitor channel on real state files, a real SQLite file and real child processes."""

import json
import sqlite3
import subprocess
import sys

import pytest

from monitor.channels import adw_monitor
from monitor.channels.adw_monitor import build_adw_monitor, current_phase, phase_progress, run_status
from monitor.sources.processes import ProcessScanner, adw_ids_in, scan_processes
from monitor.sources.registry import Sources
from monitor.sources.statefiles import StateFilesError, StateView

RUNNING = {"issue_number": "1", "workflow_template": "adw_sdlc_iso", "issue_class": "/feature",
           "estimated_cost_total": 3.1, "branch_name": "feature-issue-1-adw-aaaa0001",
           "github_url": "https://github.com/acme/storefront/issues/1", "start_time": "2026-01-01T00:00:00+00:00",
           "model_set": "base"}


def start_carrier(adw_id):
    """A real process whose command line carries ``adw-<adw_id>``, as an ADW orchestrator's does."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"adw-{adw_id}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def carrier():
    started = []

    def start(adw_id):
        started.append(start_carrier(adw_id))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()


def write_agent(agents, adw_id, state, error_lines=0):
    agent = agents / adw_id
    agent.mkdir()
    (agent / "adw_state.json").write_text(json.dumps(state), encoding="utf-8")
    if error_lines:
        (agent / "error.log").write_text("".join(f"ERROR number {n}\n" for n in range(error_lines)), encoding="utf-8")


def insert(db_path, table, *rows):
    with sqlite3.connect(db_path) as conn:
        for row in rows:
            conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))
    conn.close()


def task(adw_id, phase, status, cost=None):
    return {"adw_id": adw_id, "phase_name": phase, "phase_status": status, "cost_usd": cost}


@pytest.fixture
def six_runs(agents, trees, db_path):
    """Six runs, one per way of deciding a status (see the expected values in the tests)."""
    write_agent(agents, "aaaa0001", RUNNING, error_lines=2)
    write_agent(agents, "aaaa0002", {"workflow_template": "adw_patch_iso", "status": "completed",
                                     "current_phase": "cleanup"})
    write_agent(agents, "aaaa0003", {"workflow_template": "adw_sdlc_iso"}, error_lines=1)
    write_agent(agents, "aaaa0004", {"workflow_template": "adw_plan_build_iso"})
    write_agent(agents, "aaaa0005", {"issue_number": "5"})
    write_agent(agents, "aaaa0006", {"status": "pending"})
    for adw_id in ("aaaa0001", "aaaa0003", "aaaa0004"):
        (trees / adw_id).mkdir()
    insert(db_path, "phase_queue",
           {"queue_id": "q1", "adw_id": "aaaa0001", "status": "running", "current_phase": "build",
            "updated_at": "2026-01-01T00:05:00Z"},
           {"queue_id": "q3", "adw_id": "aaaa0003", "status": "failed", "current_phase": "test",
            "updated_at": "2026-01-01T00:06:00Z"},
           {"queue_id": "q6-old", "adw_id": "aaaa0006", "status": "failed", "updated_at": "2026-01-01T00:00:00Z"},
           {"queue_id": "q6-new", "adw_id": "aaaa0006", "status": "completed", "current_phase": "ship",
            "updated_at": "2026-01-02T00:00:00Z"},
           {"queue_id": "q9", "adw_id": "99999999", "status": "running"},  # no state file: no item
           {"queue_id": "q0", "status": "queued"})
    insert(db_path, "workflow_history", {"adw_id": "aaaa0004", "status": "running", "current_phase": "lint"})
    insert(db_path, "task_logs",
           task("aaaa0001", "plan", "started"), task("aaaa0001", "plan", "completed", 0.5),
           task("aaaa0001", "validate", "completed", 0.25), task("aaaa0001", "build", "started"),
           *(task("aaaa0002", phase, "completed", 0.1) for phase in ("build", "lint", "test", "review", "ship")),
           task("aaaa0002", "plan", "skipped"), task("aaaa0002", "cleanup", "completed", 0.05),
           *(task("aaaa0003", phase, "completed", 0.2) for phase in ("plan", "validate", "build", "lint")),
           task("aaaa0003", "test", "failed", 0.15),
           *(task("aaaa0004", phase, "completed", 1.0) for phase in ("plan", "validate", "build")),
           task("aaaa0004", "lint", "started"))


EXPECTED_RUNNING = {
    "adw_id": "aaaa0001", **{k: v for k, v in RUNNING.items() if k != "model_set"},
    "status": "running", "current_phase": "build", "phase_progress": 27.8, "phases_completed": 2,
    "current_cost": 0.75, "error_count": 2, "is_process_active": True,
}
EXPECTED_OTHERS = {
    "aaaa0002": {"adw_id": "aaaa0002", "workflow_template": "adw_patch_iso", "status": "completed",
                 "current_phase": "cleanup", "phase_progress": 100.0, "phases_completed": 6, "current_cost": 0.55,
                 "error_count": 0, "is_process_active": False},
    "aaaa0003": {"adw_id": "aaaa0003", "workflow_template": "adw_sdlc_iso", "status": "failed",
                 "current_phase": "test", "phase_progress": 50.0, "phases_completed": 4, "current_cost": 0.95,
                 "error_count": 1, "is_process_active": False},
    "aaaa0004": {"adw_id": "aaaa0004", "workflow_template": "adw_plan_build_iso", "status": "paused",
                 "current_phase": "lint", "phase_progress": 38.9, "phases_completed": 3, "current_cost": 3.0,
                 "error_count": 0, "is_process_active": False},
    "aaaa0005": {"adw_id": "aaaa0005", "issue_number": "5", "status": "queued", "current_phase": "init",
                 "phase_progress": 0.0, "phases_completed": 0, "current_cost": 0.0, "error_count": 0,
                 "is_process_active": False},
    "aaaa0006": {"adw_id": "aaaa0006", "status": "completed", "current_phase": "ship", "phase_progress": 100.0,
                 "phases_completed": 0, "current_cost": 0.0, "error_count": 0, "is_process_active": False},
}


async def test_items_and_summary_from_every_source(sources, six_runs, carrier):
    carrier("aaaa0001")
    data = await adw_monitor.make_reader(sources).read()
    assert data.summary == {"total": 6, "running": 1, "completed": 2, "failed": 1, "paused": 1, "queued": 1}
    assert data.items == {"aaaa0001": EXPECTED_RUNNING, **EXPECTED_OTHERS}


async def test_process_exit_turns_a_running_run_paused(sources, six_runs, carrier):
    reader = adw_monitor.make_reader(sources)
    process = carrier("aaaa0001")
    assert (await reader.read()).items["aaaa0001"]["status"] == "running"
    process.kill()
    process.wait()
    data = await reader.read()
    assert data.items["aaaa0001"] == {**EXPECTED_RUNNING, "status": "paused", "is_process_active": False}
    assert data.summary == {"total": 6, "running": 0, "completed": 2, "failed": 1, "paused": 2, "queued": 1}


async def test_nothing_changed_reads_no_rows_and_gives_none(sources, six_runs, db_path, agents):
    reader = adw_monitor.make_reader(sources)
    await reader.read()
    fetches = []
    fetch_many = reader.db.fetch_many
    reader.db.fetch_many = lambda queries: fetches.append(1) or fetch_many(queries)
    assert await reader.read() is None and await reader.read() is None
    assert fetches == []
    insert(db_path, "task_logs", task("aaaa0005", "plan", "completed", 0.4))
    assert (await reader.read()).items["aaaa0005"]["phases_completed"] == 1 and fetches == [1]
    assert await reader.read() is None
    with open(agents / "aaaa0005" / "error.log", "a", encoding="utf-8") as fh:
        fh.write("ERROR late\n")
    assert (await reader.read()).items["aaaa0005"]["error_count"] == 1


async def test_queries_can_be_overridden(make_settings, six_runs):
    without_plan = "SELECT * FROM task_logs WHERE phase_name != 'plan'"
    settings = make_settings({"queries": {"adw_monitor_task_logs": without_plan}})
    overridden = Sources(settings)
    try:
        data = await adw_monitor.make_reader(overridden).read()
    finally:
        await overridden.close()
    # Raw task_logs rows work as well as the default grouped ones; without plan, one phase less.
    assert data.items["aaaa0003"]["phases_completed"] == 3 and data.items["aaaa0003"]["current_cost"] == 0.75
    assert data.items["aaaa0004"]["phase_progress"] == 27.8


async def test_missing_agents_dir_is_an_error(sources):
    with pytest.raises(StateFilesError, match="agents_dir not found"):
        await adw_monitor.make_reader(sources).read()


def test_status_rule():
    assert run_status(("running", None, "completed"), live=True, has_worktree=True) == "completed"
    assert run_status((None, "failed", "completed"), live=True, has_worktree=True) == "failed"
    assert run_status(("blocked", "running", "pending"), live=True, has_worktree=True) == "running"
    assert run_status(("running", None, None), live=False, has_worktree=True) == "paused"
    assert run_status(("running", None, None), live=False, has_worktree=False) == "queued"


def test_phase_and_progress_rules():
    assert current_phase(("init", None, "", "review")) == "review" and current_phase((None, "init")) == "init"
    assert phase_progress("running", {"plan"}, "validate") == 16.7   # 1.5 of 9 phases
    assert phase_progress("running", {"plan", "validate"}, "validate") == 22.2  # current already done
    assert phase_progress("queued", set(), "init") == 0.0
    assert phase_progress("completed", {"plan"}, "cleanup") == 100.0
    nine = {"plan", "validate", "build", "lint", "test", "review", "doc", "ship", "cleanup"}
    assert phase_progress("running", nine | {"extra"}, "cleanup") == 100.0


def test_build_from_plain_values():
    view = StateView({"bbbb0001": {"adw_id": "bbbb0001", "state_file_error": "invalid JSON: x"}},
                     {"bbbb0001": 3}, frozenset({"bbbb0001"}))
    rows = {"adw_monitor_phase_queue": [], "adw_monitor_workflow_history": [],
            "adw_monitor_task_logs": [{"adw_id": "bbbb0001", "phase_name": "plan", "completed": 1, "cost_usd": 0.125}]}
    data = build_adw_monitor(view, frozenset(), rows)
    assert data.summary == {"total": 1, "running": 0, "completed": 0, "failed": 0, "paused": 1, "queued": 0}
    assert data.items == {"bbbb0001": {
        "adw_id": "bbbb0001", "state_file_error": "invalid JSON: x", "status": "paused", "current_phase": "plan",
        "phase_progress": 11.1, "phases_completed": 1, "current_cost": 0.125, "error_count": 3,
        "is_process_active": False}}


def test_adw_ids_in_a_command_line_are_whole_hex_words():
    assert adw_ids_in(b"python\0adw_sdlc_iso.py\0101\0AAAA0001\0") == {"aaaa0001"}
    assert adw_ids_in(b"adw-aaaa0002\0--branch=fix-adw-aaaa0003-x") == {"aaaa0002", "aaaa0003"}
    assert adw_ids_in(b"aaaa00045\0aaaa000\0") == set()


async def test_live_process_is_seen_until_it_is_gone():
    scanner = ProcessScanner()
    with start_carrier("c0ffee42") as process:
        assert await scanner.live_adw_ids({"c0ffee42", "c0ffee43"}) == {"c0ffee42"}
        process.kill()
        process.wait()
    assert await scanner.live_adw_ids({"c0ffee42", "c0ffee43"}) == frozenset()
    assert scanner.available


async def test_no_proc_means_unknown_not_an_error(tmp_path):
    scanner = ProcessScanner(tmp_path / "no-proc")
    assert await scanner.live_adw_ids({"c0ffee42"}) == frozenset() and not scanner.available
    assert scan_processes({"c0ffee42"}, tmp_path / "no-proc") is None
