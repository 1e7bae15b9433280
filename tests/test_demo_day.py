"""`monitor demo` looks like a real day: every record's times agree, titles stay distinct, deliveries count right.

A seeded workspace is stepped through simulated minutes (a clock the test advances, no
sleeping); after the seed and every few steps, every row, state file and webhook record
is read directly (sqlite3, json) and checked against the invariants an operator assumes.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.demo.simulator import Simulator
from monitor.demo.webhook_service import DELIVERY_OUTCOMES, ApiCatalog, DemoDeliveries, WebhookStats
from monitor.demo.workspace import Workspace, create_workspace
from tests.test_demo import SimulatedClock

FINAL = ("completed", "failed")
QUEUE_STATUS_OF_RUN = {"pending": "running", "running": "running", "completed": "completed", "failed": "failed"}


def at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def rows(ws: Workspace, table: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(ws.db_path)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]


def ordered(*moments: datetime | None) -> bool:
    present = [m for m in moments if m is not None]
    return present == sorted(present)


def queue_problems(ws: Workspace, now: datetime) -> Iterator[str]:
    """created <= ready <= started <= updated <= now; a phase is ready only after its earlier ones completed."""
    queue, runs = rows(ws, "phase_queue"), {run["adw_id"]: run for run in rows(ws, "workflow_history")}
    by_feature: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in queue:
        by_feature[row["feature_id"]].append(row)
        created, ready, started, updated = (at(row[c]) for c in ("created_at", "ready_timestamp",
                                                                   "started_timestamp", "updated_at"))
        if not ordered(created, ready, started, updated, now):
            yield f"queue {row['queue_id']} ({row['status']}): times out of order {created} {ready} {started} {updated}"
        run = runs.get(row["adw_id"])
        if run is None:
            continue
        if at(run["start_time"]) != started:
            yield f"queue {row['queue_id']} started {started}, its run {run['adw_id']} at {run['start_time']}"
        if QUEUE_STATUS_OF_RUN[run["status"]] != row["status"]:
            yield f"queue {row['queue_id']} is {row['status']}, its run {run['adw_id']} {run['status']}"
        if run["end_time"] and not ordered(at(run["end_time"]), updated):
            yield f"queue {row['queue_id']} last updated {updated}, before its run ended at {run['end_time']}"
    for phases in by_feature.values():
        yield from _dependency_problems(sorted(phases, key=lambda row: row["phase_number"]))


def _dependency_problems(phases: list[dict[str, Any]]) -> Iterator[str]:
    for n, row in enumerate(phases):
        earlier = phases[:n]
        if row["ready_timestamp"] is not None:
            for before in earlier:
                if before["status"] != "completed" or not ordered(at(before["updated_at"]),
                                                                 at(row["ready_timestamp"])):
                    yield (f"queue {row['queue_id']} phase {row['phase_number']} ready at {row['ready_timestamp']},"
                           f" phase {before['phase_number']} {before['status']} at {before['updated_at']}")
        if row["status"] == "blocked":
            failed = [before for before in earlier if before["status"] == "failed"]
            if failed and not ordered(at(failed[-1]["updated_at"]), at(row["updated_at"])):
                yield f"queue {row['queue_id']} blocked at {row['updated_at']} before its dependency failed"


def history_problems(ws: Workspace, now: datetime) -> Iterator[str]:
    """created <= start <= end <= updated <= now, duration = end - start, task logs inside their run."""
    logs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for log in rows(ws, "task_logs"):
        logs[log["adw_id"]].append(log)
    for run in rows(ws, "workflow_history"):
        name, start, end = run["adw_id"], at(run["start_time"]), at(run["end_time"])
        if (end is not None) != (run["status"] in FINAL):
            yield f"run {name} is {run['status']} with end_time {end}"
        if not ordered(at(run["created_at"]), start, end, at(run["updated_at"]), now):
            yield f"run {name}: times out of order {run['created_at']} {start} {end} {run['updated_at']}"
        expected = None if end is None or start is None else (end - start).total_seconds()
        if run["duration_seconds"] != expected:
            yield f"run {name}: duration {run['duration_seconds']} but end - start = {expected}"
        yield from _task_log_problems(run, logs.get(name, []), end or now)


def _task_log_problems(run: dict[str, Any], logs: list[dict[str, Any]], last: datetime) -> Iterator[str]:
    previous = at(run["start_time"])
    for log in logs:
        started, completed = at(log["started_at"]), at(log["completed_at"])
        if not ordered(previous, started, completed, last):
            yield f"run {run['adw_id']} {log['phase_name']} ran {started}..{completed}, outside its run or order"
        if started and completed and log["duration_seconds"] != (completed - started).total_seconds():
            yield f"run {run['adw_id']} {log['phase_name']}: duration {log['duration_seconds']} != completed - started"
        previous = completed
    if logs and run["actual_cost_total"] != pytest.approx(sum(log["cost_usd"] for log in logs), abs=1e-3):
        yield f"run {run['adw_id']} costs {run['actual_cost_total']}, its phases {sum(g['cost_usd'] for g in logs)}"


def state_problems(ws: Workspace, now: datetime) -> Iterator[str]:
    """A state file's start and end are its history row's; the phase tracker wrote within the run."""
    runs = {run["adw_id"]: run for run in rows(ws, "workflow_history")}
    for agent in ws.agents_dir.iterdir():
        state = json.loads((agent / "adw_state.json").read_text(encoding="utf-8"))
        run = runs[agent.name]
        if (state["start_time"], state.get("end_time")) != (run["start_time"], run["end_time"]):
            yield f"state {agent.name}: {state['start_time']}..{state.get('end_time')} but history says" \
                  f" {run['start_time']}..{run['end_time']}"
        tracker = agent / "completed_phases.json"
        if tracker.exists():
            written = datetime.fromisoformat(json.loads(tracker.read_text(encoding="utf-8"))["last_updated"])
            written = written.astimezone(UTC).replace(microsecond=0)  # naive local time, as the tracker writes it
            if not ordered(at(state["start_time"]), written, at(state.get("end_time")) or now):
                yield f"tracker {agent.name} written at {written}, outside its run"


def feature_problems(ws: Workspace, now: datetime) -> Iterator[str]:
    """created <= started <= completed <= updated <= now, within the session's time; hours fit the elapsed time."""
    features = rows(ws, "planned_features")
    sessions = {row["id"]: row for row in features if row["item_type"] == "session"}
    for row in features:
        created, started, completed, updated = (at(row[c]) for c in ("created_at", "started_at", "completed_at",
                                                                       "updated_at"))
        if not ordered(created, started, completed, now) or not ordered(created, started, completed, updated, now):
            yield f"feature {row['id']} ({row['status']}): times out of order {created} {started} {completed} {updated}"
        if (started is None) != (row["status"] in ("planned", "cancelled")) or \
                (completed is None) != (row["status"] in ("planned", "cancelled", "in_progress")):
            yield f"feature {row['id']} is {row['status']} with started {started}, completed {completed}"
        session = sessions.get(row["parent_id"])
        if session is not None and not ordered(at(session["started_at"]), created):
            yield f"feature {row['id']} created {created}, before its planning session began"
        worked = ((completed or now) - started).total_seconds() / 3600 if started else 0.0
        if row["item_type"] != "session" and (row["actual_hours"] or 0.0) > worked + 0.05:
            yield f"feature {row['id']}: {row['actual_hours']} h worked in {worked:.2f} h since it started"


def title_problems(ws: Workspace) -> Iterator[str]:
    """One title is one piece of work: one feature, one GitHub issue (its runs are that issue's retries)."""
    features = [row["title"] for row in rows(ws, "planned_features") if row["item_type"] != "session"]
    if len(features) != len(set(features)):
        yield f"planned features share titles: {sorted(t for t in features if features.count(t) > 1)}"
    queue, runs = rows(ws, "phase_queue"), rows(ws, "workflow_history")
    feature_titles: dict[int, str] = {}
    for row in queue:
        title = json.loads(row["phase_data"])["title"].rsplit(" (phase ", 1)[0]
        if feature_titles.setdefault(row["feature_id"], title) != title:
            yield f"feature {row['feature_id']} has phases titled {feature_titles[row['feature_id']]!r} and {title!r}"
    if len(set(feature_titles.values())) != len(feature_titles):
        yield f"queued features share titles: {sorted(feature_titles.values())}"
    run_titles = {run["adw_id"]: run["nl_input"].split(" (see issue")[0] for run in runs}
    for row in queue:
        if row["adw_id"] in run_titles and run_titles[row["adw_id"]] != json.loads(row["phase_data"])["title"]:
            yield f"queue {row['queue_id']} is {json.loads(row['phase_data'])['title']!r}, its run" \
                  f" {run_titles[row['adw_id']]!r}"
    issued = [*((run["issue_number"], run_titles[run["adw_id"]]) for run in runs),
              *((row["issue_number"], json.loads(row["phase_data"])["title"]) for row in queue if row["issue_number"]),
              *((row["github_issue_number"], row["title"]) for row in rows(ws, "planned_features")
                if row["github_issue_number"])]
    yield from _one_to_one(issued)


def _one_to_one(issued: list[tuple[int, str]]) -> Iterator[str]:
    titles: dict[int, str] = {}
    issues: dict[str, int] = {}
    for issue, title in issued:
        if titles.setdefault(issue, title) != title:
            yield f"issue #{issue} is both {titles[issue]!r} and {title!r}"
        if issues.setdefault(title, issue) != issue:
            yield f"{title!r} is both issue #{issues[title]} and #{issue}"


def webhook_problems(ws: Workspace, stats: WebhookStats, now: datetime, issues: set[int]) -> Iterator[str]:
    """Deliveries name runs and issues the other panels show (or showed: `issues`), at times that have passed."""
    runs = {run["adw_id"]: run for run in rows(ws, "workflow_history")}
    issues |= {run["issue_number"] for run in runs.values()} | {row["issue_number"] for row in rows(ws, "phase_queue")}
    status = stats.status()
    last = status["last_successful"]
    if last is not None:
        run = runs.get(last["adw_id"])
        if run is None or run["issue_number"] != last["issue"] or run["workflow_template"] != last["workflow"]:
            yield f"the last launch {last} is no run in the history"
        elif not ordered(at(run["start_time"]), at(last["timestamp"]), now):
            yield f"run {last['adw_id']} launched at {last['timestamp']}, it started at {run['start_time']}"
    for failure in status["recent_failures"]:
        if not ordered(at(failure["timestamp"]), now) or failure["issue"] not in issues:
            yield f"failure {failure} is in the future or on an issue no panel shows"


def day_problems(ws: Workspace, stats: WebhookStats, now: datetime, issues: set[int]) -> list[str]:
    return [*queue_problems(ws, now), *history_problems(ws, now), *state_problems(ws, now),
            *feature_problems(ws, now), *title_problems(ws), *webhook_problems(ws, stats, now, issues)]


@pytest.mark.parametrize("seed", [7, 19, 2024])
def test_a_simulated_day_keeps_every_record_consistent(tmp_path: Path, seed: int):
    ws = create_workspace(tmp_path / "demo", random.Random(seed))
    clock = SimulatedClock()
    stats, issues = WebhookStats(now=clock), set[int]()  # issues: every one the panels have shown so far
    assert day_problems(ws, stats, clock.now, issues) == []
    rng, seen = random.Random(seed + 1), {run["status"] for run in rows(ws, "workflow_history")}  # statuses shown
    for restart in range(2):  # the demo is stopped and started again halfway: its runs are adopted
        sim = Simulator(ws, rng, DemoDeliveries(stats, rng), api=ApiCatalog(), clock=clock)
        try:
            for step in range(1, 241):
                clock.advance(5.0)  # twenty simulated minutes per half: runs finish, fail and start
                sim.step()
                if step % 10 == 0:
                    assert day_problems(ws, stats, clock.now, issues) == [], f"after step {step} of run {restart}"
                    seen |= {run["status"] for run in rows(ws, "workflow_history")}
        finally:
            sim.close()
        clock.advance(600.0)
    assert seen == {"pending", "running", "completed", "failed"}  # the day had every kind of run in it


def test_deliveries_the_service_ignores_count_nowhere():
    stats = WebhookStats()
    deliveries = DemoDeliveries(stats, random.Random(1))
    for reason, outcome in DELIVERY_OUTCOMES.items():
        before = stats.status()["stats"]
        deliveries.record_unlaunched(5, reason)
        deliveries.outage = False  # an outage would fail what the service processes; this test counts reasons
        after = stats.status()["stats"]
        received, failed = after["total_received"] - before["total_received"], after["failed"] - before["failed"]
        assert (received, failed) == {"ignored": (0, 0), "ended_early": (1, 0), "failed": (1, 1)}[outcome], reason
        assert after["successful"] == before["successful"]
    assert {failure["error"] for failure in stats.recent_failures} <= {
        reason for reason, outcome in DELIVERY_OUTCOMES.items() if outcome == "failed"}


def test_an_ignored_delivery_stays_ignored_through_an_outage():
    stats = WebhookStats()
    deliveries = DemoDeliveries(stats, random.Random(1))
    for n in range(20):
        deliveries.record_success(n, "abcd1234", "adw_sdlc_complete_iso")
    deliveries.outage = True
    ignored = [reason for reason, outcome in DELIVERY_OUTCOMES.items() if outcome == "ignored"]
    for reason in ignored:
        deliveries.record_unlaunched(7, reason)
    assert stats.status()["stats"] == {"total_received": 20, "successful": 20, "failed": 0, "success_rate": "100.0%"}
    assert stats.status()["status"] == "healthy"


def test_a_simulated_hour_counts_deliveries_as_the_real_service(tmp_path: Path):
    ws = create_workspace(tmp_path / "demo", random.Random(3))
    stats, rng = WebhookStats(), random.Random(4)
    deliveries = DemoDeliveries(stats, rng)
    clock = SimulatedClock()
    sim = Simulator(ws, rng, deliveries, clock=clock)
    try:
        for _ in range(200):
            clock.advance(5.0)
            sim.step()
    finally:
        sim.close()
    counts = stats.status()["stats"]
    assert deliveries.outcomes["ignored"] > 0 and deliveries.outcomes["ended_early"] > 0
    # the real service: received = launched + failed + ended early; ignored deliveries are counted nowhere
    assert counts["total_received"] == counts["successful"] + counts["failed"] + deliveries.outcomes["ended_early"]
    shown_failures = {failure["error"] for failure in stats.recent_failures}
    assert not shown_failures & {reason for reason, outcome in DELIVERY_OUTCOMES.items() if outcome != "failed"}
