"""The adw-monitor channel on real state files, a real SQLite file and real child processes."""

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from monitor.channels import adw_monitor
from monitor.channels.adw_monitor import build_adw_monitor
from monitor.channels.adw_runs import (
    RunSources,
    TaskProgress,
    errors,
    phase_progress,
    pipeline,
    run_status,
    task_progress,
)
from monitor.channels.workflows import make_reader as make_workflows_reader
from monitor.sources.processes import ProcessScanner, adw_ids_in, scan_processes
from monitor.sources.resources import Sources
from monitor.sources.statefiles import StateFilesError, StateView

RUNNING = {"adw_id": "aaaa0001", "issue_number": "1", "workflow_template": "adw_sdlc_complete_iso",
           "issue_class": "/feature", "estimated_cost_total": 3.1, "branch_name": "feature-issue-1-adw-aaaa0001",
           "github_url": "https://github.com/acme/storefront/issues/1", "start_time": "2026-01-01T00:00:00+00:00",
           "model_set": "base", "model_used": "sonnet", "all_adws": ["adw_sdlc_complete_iso"],
           "nl_input": "Add a dark mode toggle to the settings page so that operators can read the wall screen "
                       "at night"}
TRACEBACK = """Traceback (most recent call last):
  File "adws/adw_build_iso.py", line 12, in <module>
    main()
RuntimeError: claude exited 1
"""


def start_process(argv):
    """A real process with the given arguments after ``python -c <sleep>``."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_carrier(adw_id):
    """A real process that looks like an ADW phase: ``… adws/adw_build_iso.py 1 <adw_id>``."""
    return start_process(["adws/adw_build_iso.py", "1", adw_id])


@pytest.fixture
def carrier():
    started = []

    def start(adw_id, argv=None):
        started.append(start_process(argv) if argv else start_carrier(adw_id))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()


def write_agent(agents, adw_id, state, error_log=""):
    agent = agents / adw_id
    agent.mkdir()
    (agent / "adw_state.json").write_text(json.dumps(state), encoding="utf-8")
    if error_log:
        (agent / "error.log").write_text(error_log, encoding="utf-8")


def insert(db_path, table, *rows):
    with sqlite3.connect(db_path) as conn:
        for row in rows:
            conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))
    conn.close()


def task(adw_id, phase, status, cost=None):
    return {"adw_id": adw_id, "phase_name": phase, "phase_status": status, "cost_usd": cost}


@pytest.fixture
def seven_runs(agents, trees, db_path):
    """Seven runs in the real formats, one per way of deciding a status (expected values below)."""
    write_agent(agents, "aaaa0001", RUNNING, error_log="claude CLI timed out, retried\n" + TRACEBACK)
    write_agent(agents, "aaaa0002", {"workflow_template": "adw_sdlc_from_build_iso", "status": "completed",
                                     "current_phase": "Cleanup"})  # an older state file
    write_agent(agents, "aaaa0003", {"workflow_template": "adw_sdlc_complete_iso"}, error_log="Tests failed: 3\n")
    write_agent(agents, "aaaa0004", {"workflow_template": "adw_lightweight_iso"})
    write_agent(agents, "aaaa0005", {"issue_number": "5"})
    write_agent(agents, "aaaa0006", {})
    write_agent(agents, "aaaa0007", {"status": "running", "current_phase": "Review", "error_count": 3,
                                     "last_error": "boom"}, error_log="something else\n")
    for adw_id in ("aaaa0001", "aaaa0003", "aaaa0004", "aaaa0005"):
        (trees / adw_id).mkdir()
    insert(db_path, "phase_queue",
           {"queue_id": "q1", "adw_id": "aaaa0001", "status": "running", "current_phase": "Build", "pr_number": 42,
            "updated_at": "2026-01-01T00:05:00Z"},
           {"queue_id": "q3", "adw_id": "aaaa0003", "status": "failed", "current_phase": "test",
            "updated_at": "2026-01-01T00:06:00Z"},
           {"queue_id": "q6-old", "adw_id": "aaaa0006", "status": "failed", "updated_at": "2026-01-01T00:00:00Z"},
           {"queue_id": "q6-new", "adw_id": "aaaa0006", "status": "completed", "current_phase": "Completed",
            "updated_at": "2026-01-02T00:00:00Z"},
           {"queue_id": "q9", "adw_id": "99999999", "status": "running"},  # no state file: no item
           {"queue_id": "q0", "status": "queued"})
    insert(db_path, "workflow_history",
           {"adw_id": "aaaa0003", "status": "failed", "nl_input": "Fix the flaky checkout test",
            "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:20:30Z"},
           {"adw_id": "aaaa0004", "status": "running", "current_phase": "ship"})
    insert(db_path, "task_logs",
           task("aaaa0001", "Plan", "completed", 0.5), task("aaaa0001", "Validate", "completed", 0.25),
           *(task("aaaa0002", phase, "completed", 0.1) for phase in ("Build", "Lint", "Test", "Review", "Ship")),
           task("aaaa0002", "Cleanup", "completed", 0.05), task("aaaa0002", "webhook_event", "completed"),
           *(task("aaaa0003", phase, "completed", 0.2) for phase in ("Plan", "Validate", "Build", "Lint")),
           task("aaaa0003", "Test", "failed", 0.15),
           task("aaaa0004", "Plan", "completed", 1.0), task("aaaa0004", "Build", "completed", 1.0))


TEN = ["Plan", "Validate", "Build", "Lint", "Test", "Review", "Document", "Ship", "Cleanup", "Verify"]
EXPECTED_RUNNING = {
    **{k: v for k, v in RUNNING.items() if k not in ("nl_input", "all_adws")},
    "title": RUNNING["nl_input"][:100], "status": "running", "current_phase": "Build",
    # 2 of 10 phases done, half of Build: 2.5 / 10
    "phase_progress": 25.0, "phases_completed": ["Plan", "Validate"], "phases_skipped": [], "total_phases": 10,
    "current_cost": 0.75, "error_count": 1, "last_error": "claude CLI timed out, retried\n" + TRACEBACK.strip(),
    "is_process_active": True, "pr_number": 42, "cost_over_estimate": False,  # $0.75 of an estimated $3.10
}
EXPECTED_OTHERS = {
    # completed (said by the older state file); from_build skips Plan and Validate: all 8 others done
    "aaaa0002": {"adw_id": "aaaa0002", "workflow_template": "adw_sdlc_from_build_iso", "status": "completed",
                 "current_phase": "Cleanup", "phase_progress": 100.0, "phases_completed": TEN[2:],
                 "phases_skipped": ["Plan", "Validate"], "total_phases": 8, "current_cost": 0.55,
                 "error_count": 0, "is_process_active": False},
    # failed at Test (its queue row, lower case): 4 of 10 done, no half phase for the failed one
    "aaaa0003": {"adw_id": "aaaa0003", "workflow_template": "adw_sdlc_complete_iso", "status": "failed",
                 "title": "Fix the flaky checkout test", "current_phase": "Test", "failed_phase": "Test",
                 "phase_progress": 40.0, "phases_completed": TEN[:4], "phases_skipped": [], "total_phases": 10,
                 "current_cost": 0.95, "error_count": 1, "last_error": "Tests failed: 3", "is_process_active": False,
                 "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:20:30Z", "duration_seconds": 1230.0},
    # paused (worktree, no process); lightweight runs Plan, Build, Ship: (2 + 0.5) / 3
    "aaaa0004": {"adw_id": "aaaa0004", "workflow_template": "adw_lightweight_iso", "status": "paused",
                 "current_phase": "Ship", "phase_progress": 83.3, "phases_completed": ["Plan", "Build"],
                 "phases_skipped": [p for p in TEN if p not in ("Plan", "Build", "Ship")], "total_phases": 3,
                 "current_cost": 2.0, "error_count": 0, "is_process_active": False},
    # a leftover dev server mentions trees/aaaa0005 but is no ADW: paused, not running
    "aaaa0005": {"adw_id": "aaaa0005", "issue_number": "5", "status": "paused", "phase_progress": 0.0,
                 "phases_completed": [], "phases_skipped": [], "total_phases": 10, "error_count": 0,
                 "is_process_active": False},
    # the newest queue row says completed ("Completed" names no phase)
    "aaaa0006": {"adw_id": "aaaa0006", "status": "completed", "phase_progress": 100.0, "phases_completed": TEN,
                 "phases_skipped": [], "total_phases": 10, "error_count": 0, "is_process_active": False},
    # an older state file says running, but no process and no worktree: queued; its own error figures win
    "aaaa0007": {"adw_id": "aaaa0007", "status": "queued", "current_phase": "Review", "phase_progress": 5.0,
                 "phases_completed": [], "phases_skipped": [], "total_phases": 10, "error_count": 3,
                 "last_error": "boom", "is_process_active": False},
}


async def test_items_and_summary_from_every_source(sources, seven_runs, carrier, trees):
    carrier("aaaa0001")
    carrier("aaaa0005", ["npm", "run", "dev", "--prefix", str(trees / "aaaa0005" / "app" / "client")])
    data = await adw_monitor.make_reader(sources).read()
    assert data.summary == {"total": 7, "running": 1, "completed": 2, "failed": 1, "paused": 2, "queued": 1}
    assert data.items == {"aaaa0001": EXPECTED_RUNNING, **EXPECTED_OTHERS}


async def test_process_exit_turns_a_running_run_paused(sources, seven_runs, carrier):
    reader = adw_monitor.make_reader(sources)
    process = carrier("aaaa0001")
    assert (await reader.read()).items["aaaa0001"]["status"] == "running"
    process.kill()
    process.wait()
    data = await reader.read()
    assert data.items["aaaa0001"] == {**EXPECTED_RUNNING, "status": "paused", "is_process_active": False}
    assert data.summary == {"total": 7, "running": 0, "completed": 2, "failed": 1, "paused": 3, "queued": 1}


async def test_nothing_changed_reads_no_rows_and_gives_none(sources, seven_runs, db_path, agents):
    reader = adw_monitor.make_reader(sources)
    await reader.read()
    fetches = []
    fetch_tables = reader.db.fetch_tables  # what every read of a channel goes through on SQLite
    reader.db.fetch_tables = lambda *args: fetches.append(1) or fetch_tables(*args)
    assert await reader.read() is None and await reader.read() is None
    assert fetches == []
    insert(db_path, "task_logs", task("aaaa0005", "plan", "completed", 0.4))
    assert (await reader.read()).items["aaaa0005"]["phases_completed"] == ["Plan"] and fetches == [1]
    assert await reader.read() is None
    with open(agents / "aaaa0005" / "error.log", "a", encoding="utf-8") as fh:
        fh.write("ERROR late\n")
    item = (await reader.read()).items["aaaa0005"]
    assert item["error_count"] == 1 and item["last_error"] == "ERROR late"


async def test_queries_can_be_overridden(make_settings, seven_runs):
    without_plan = "SELECT * FROM task_logs WHERE phase_name != 'Plan'"
    settings = make_settings({"queries": {"adw_monitor_task_logs": without_plan}})
    overridden = Sources(settings)
    try:
        data = await adw_monitor.make_reader(overridden).read()
    finally:
        await overridden.close()
    # Raw task_logs rows work as well as the default grouped ones; without Plan, one phase less.
    assert data.items["aaaa0003"]["phases_completed"] == TEN[1:4] and data.items["aaaa0003"]["current_cost"] == 0.75
    assert data.items["aaaa0004"]["phase_progress"] == 50.0  # (1 + 0.5) / 3


async def test_phase_tracker_file_gives_completed_and_current_phases(sources, agents, trees, carrier):
    write_agent(agents, "bbbb0001", {"workflow_template": "adw_sdlc_complete_iso"})
    (trees / "bbbb0001").mkdir()
    tracker = {"completed": ["Plan", "Validate", "Build"], "current": "Lint", "last_updated": "2026-01-01T00:00:00"}
    (agents / "bbbb0001" / "completed_phases.json").write_text(json.dumps(tracker), encoding="utf-8")
    carrier("bbbb0001")
    item = (await adw_monitor.make_reader(sources).read()).items["bbbb0001"]
    assert item["phases_completed"] == TEN[:3] and item["current_phase"] == "Lint" and item["phase_progress"] == 35.0


async def test_missing_agents_dir_is_an_error(sources):
    with pytest.raises(StateFilesError, match="agents_dir not found"):
        await adw_monitor.make_reader(sources).read()


def run(state=None, **fields):
    return RunSources(state or {}, **fields)


def test_status_rule():
    assert run_status(run(queue_row={"status": "running"}, state={"status": "Completed"}, live=True)) == "completed"
    assert run_status(run(history_row={"status": "failed"}, state={"status": "completed"}, live=True)) == "failed"
    assert run_status(run(queue_row={"status": "blocked"}, history_row={"status": "running"}, live=True)) == "running"
    assert run_status(run(queue_row={"status": "running"}, has_worktree=True)) == "paused"
    assert run_status(run(queue_row={"status": "running"})) == "queued"


def test_a_running_run_without_a_said_phase_is_in_its_first_phase_not_done():
    line = pipeline(run({"workflow_template": "adw_sdlc_from_build_iso"},
                        tasks=TaskProgress({"Build": "completed", "Lint": "skipped"}), live=True), "running")
    assert (line.current, line.completed, line.skipped) == ("Test", ["Build"], ["Plan", "Validate", "Lint"])
    assert phase_progress("running", line) == 18.8  # (1 + 0.5) / 8


def test_a_phase_retried_after_failing_counts_by_its_latest_row():
    rows = [{"adw_id": "cccc0001", "phase_name": "Test", "phase_status": "failed", "last_id": 3, "cost_usd": 0.1},
            {"adw_id": "cccc0001", "phase_name": "test", "phase_status": "completed", "last_id": 5, "cost_usd": 0.2},
            {"adw_id": "cccc0001", "phase_name": "Lint", "phase_status": "completed", "last_id": 2},
            {"adw_id": "cccc0001", "phase_name": "Lint", "phase_status": "failed", "last_id": 4}]
    assert task_progress(rows)["cccc0001"] == TaskProgress({"Test": "completed", "Lint": "failed"}, 0.3)


def test_error_figures_from_state_then_log():
    assert errors(run({"error_count": 2, "last_error": "x" * 3000}, error_log="y"))[0] == 2
    assert len(errors(run({"last_error": "x" * 3000}))[1]) == 2000
    assert errors(run(error_log="a traceback")) == (1, "a traceback")
    assert errors(run({"error_count": "lots"})) == (0, None)


def test_build_from_plain_values():
    view = StateView({"bbbb0001": {"adw_id": "bbbb0001", "state_file_error": "invalid JSON: x"}},
                     {"bbbb0001": "Error: boom"}, {}, frozenset({"bbbb0001"}))
    rows = {"adw_monitor_task_logs": [{"adw_id": "bbbb0001", "phase_name": "PLAN", "phase_status": "completed",
                                       "cost_usd": 0.125}]}
    data = build_adw_monitor(view, frozenset(), rows)
    assert data.summary == {"total": 1, "running": 0, "completed": 0, "failed": 0, "paused": 1, "queued": 0}
    assert data.items == {"bbbb0001": {
        "adw_id": "bbbb0001", "state_file_error": "invalid JSON: x", "status": "paused", "phase_progress": 10.0,
        "phases_completed": ["Plan"], "phases_skipped": [], "total_phases": 10, "current_cost": 0.125,
        "error_count": 1, "last_error": "Error: boom", "is_process_active": False}}


def test_adw_processes_are_those_running_an_adw_script_with_the_id():
    assert adw_ids_in(b"uv\0run\0/repo/adws/adw_sdlc_complete_iso.py\x00101\0AAAA0001\0") == {"aaaa0001"}
    assert adw_ids_in(b"python3\0adw_build_iso.py\x00101\0aaaa0002\0--skip-e2e") == {"aaaa0002"}
    assert adw_ids_in(b"node\0/repo/trees/aaaa0003/app/client/node_modules/.bin/vite\0--port\09203") == set()
    assert adw_ids_in(b"python\0-m\0pytest\0aaaa0004") == set()  # an id, but no ADW script
    assert adw_ids_in(b"python\0adw_build_iso.py\0adw-aaaa0005\0aaaa00045") == set()


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


def test_a_failed_phase_the_run_then_completed_is_not_its_failed_phase():
    tracker = {"completed": ["Plan", "Validate", "Build"], "current": "Lint"}
    line = pipeline(run({}, tasks=TaskProgress({"Validate": "failed"}), tracker=tracker, live=True), "running")
    assert (line.failed, line.completed, line.current) == (None, ["Plan", "Validate", "Build"], "Lint")


async def test_both_state_file_channels_read_a_changed_file_once(sources, agents, trees):
    write_agent(agents, "dddd0001", {"workflow_template": "adw_sdlc_complete_iso"}, error_log="first\n")
    settled = time.time() - 10  # out of the racy window, where a file is read again on every scan
    for name in ("adw_state.json", "error.log"):
        os.utime(agents / "dddd0001" / name, (settled, settled))
    runs, workflows = adw_monitor.make_reader(sources), make_workflows_reader(sources)
    await runs.read()
    await workflows.read()
    before = sources.state_files.files_read
    with open(agents / "dddd0001" / "error.log", "a", encoding="utf-8") as fh:
        fh.write("Error: second\n")
    os.utime(agents / "dddd0001" / "error.log", (settled, settled + 1))
    assert (await runs.read()).items["dddd0001"]["last_error"] == "Error: second"
    assert (await workflows.read()) is not None
    assert sources.state_files.files_read == before + 1


def test_a_run_over_its_estimate_is_flagged_and_an_unknown_estimate_is_not():
    assert adw_monitor.over_estimate(3.5, 3.1) is True
    assert adw_monitor.over_estimate(3.1, 3.1) is False
    assert adw_monitor.over_estimate(1.0, 0) is None  # no estimate to be over
    assert adw_monitor.over_estimate(None, 3.1) is None
    assert adw_monitor.over_estimate(float("nan"), 3.1) is None
