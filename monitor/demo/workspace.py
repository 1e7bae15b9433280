"""The demo workspace: an ADW database, agent state files and worktrees, seeded with history.

The seed walks its runs through their phases with the same functions (`records`) the
simulator uses later, so seeded and live runs look alike.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.adw import template_phases
from monitor.demo.backlog import Feature, PhaseTimes, feature_row, phase_title, pick_priority, queue_row
from monitor.demo.records import Run, begin_phase, end_run, finish_phase, history_row, new_state, open_run, similar_runs
from monitor.demo.schema import SQLITE_SCHEMA
from monitor.demo.vocabulary import (
    FAILURES,
    LAUNCH_SECONDS,
    NON_CRITICAL,
    WORK_ITEMS,
    WorkItem,
    Workspace,
    insert_row,
    new_adw_id,
    phase_actuals,
    phase_seconds,
    utc_iso,
    work_item_for,
)

__all__ = ["Workspace", "create_workspace"]  # Workspace is defined in vocabulary; callers import it from here

_QUEUE_ROWS = 38  # the seeded queue stops growing at about this many rows
# Queue features besides the runs' own, so every status shows: (phase statuses in order)
_SHOWCASE_FEATURES = (("completed", "failed", "blocked"), ("ready", "queued"), ("completed", "completed", "ready"))


def create_workspace(root: Path, rng: random.Random) -> Workspace:
    """Create (or reuse, when already seeded) a demo workspace under `root`."""
    ws = Workspace.at(root)
    for directory in (ws.db_path.parent, ws.agents_dir, ws.trees_dir):
        directory.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(ws.db_path, timeout=5.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SQLITE_SCHEMA)
        # queue_config is written last in the seeding transaction, so its row marks a finished seed
        if conn.execute("SELECT 1 FROM queue_config WHERE config_key = 'queue_paused'").fetchone() is None:
            with conn:
                _seed(conn, ws, rng, datetime.now(UTC))
    finally:
        conn.close()
    return ws


def _seed(conn: sqlite3.Connection, ws: Workspace, rng: random.Random, now: datetime) -> None:
    items = iter(rng.sample(WORK_ITEMS, len(WORK_ITEMS)))  # each piece of work once, so no two share a title
    old = sorted((_old_run(ws, rng, now, 40 + i, next(items)) for i in range(52)), key=lambda row: row["start_time"])
    for row in old:  # oldest first, so each names earlier runs of its template as similar
        similar = similar_runs(conn, row["workflow_template"])
        insert_row(conn, "workflow_history", {**row, "similar_workflow_ids": similar})
    # (outcome, phases done): one live run stands in Build, so the API changes on the first ticks; one was
    # just launched (the only pending one: the simulator adopts it, so no run stays pending for ever)
    plan = [("running", "Build"), *[("running", None)] * 2, ("pending", None), *[("completed", None)] * 3,
            ("failed", None)]
    runs = []
    for i, (outcome, at) in enumerate(plan):
        item, before = next(items), rng.randint(0, 1)  # before: phases of its feature completed before its own
        title = phase_title(item[0], before + 1)
        runs.append((_seed_run(conn, ws, rng, now, 100 + i, item, title, outcome, at), outcome, before))
    _seed_queue(conn, rng, now, runs, items)
    _seed_features(conn, rng, now, items)
    conn.execute("INSERT INTO queue_config VALUES ('queue_paused', 'false', ?)", (utc_iso(now),))


def _phases_done(rng: random.Random, phases: tuple[str, ...], outcome: str, at: str | None) -> int:
    """How many of its phases a seeded run has finished."""
    if outcome == "pending":
        return 0
    if outcome == "completed":
        return len(phases)
    if outcome == "failed":  # only a critical phase ends a run, and not before it has done something
        return rng.choice([i for i, phase in enumerate(phases) if i > 0 and phase not in NON_CRITICAL])
    return phases.index(at) if at in phases else rng.randrange(len(phases))


def _seed_run(conn: sqlite3.Connection, ws: Workspace, rng: random.Random, now: datetime,
              issue: int, item: WorkItem, title: str, outcome: str, at: str | None) -> Run:
    """Walk one agent run (state file, tracker, task logs, worktree, errors) to where it stands now."""
    state = new_state(ws, rng, new_adw_id(rng), issue, item, now, title)
    phases = template_phases(state["workflow_template"])
    done = _phases_done(rng, phases, outcome, at)
    walked = phases[: done + (outcome in ("running", "failed"))]
    durations = [timedelta(seconds=phase_seconds(rng, phase)) for phase in walked]
    # a live run's current phase is about to end (a pending one was launched seconds ago);
    # finished runs ended hours ago
    live = now - sum(durations, timedelta()) - timedelta(seconds=rng.uniform(*LAUNCH_SECONDS))
    start = live if outcome in ("running", "pending") else now - timedelta(hours=rng.uniform(1, 30))
    state["start_time"] = utc_iso(start)
    run, when = open_run(conn, ws, state), start
    for index, duration in enumerate(durations):
        phase = begin_phase(conn, ws, run, when)
        when += duration
        if index < done:  # the flaky non-critical phases sometimes fail without stopping the run
            finish_phase(conn, ws, run, rng, when, failed=phase in NON_CRITICAL and rng.random() < 0.25)
    if outcome == "failed":
        finish_phase(conn, ws, run, rng, when, failed=True)
    if outcome in ("completed", "failed"):
        end_run(conn, ws, run, when, outcome)
    return run


def _old_run(ws: Workspace, rng: random.Random, now: datetime, issue: int, item: WorkItem) -> dict[str, Any]:
    """The history row of a finished run whose agent dir was pruned long ago (no file is written)."""
    status = "failed" if rng.random() < 0.2 else "completed"
    start = now - timedelta(days=rng.uniform(0.2, 40))
    state = new_state(ws, rng, new_adw_id(rng), issue, item, start)
    phases = template_phases(state["workflow_template"])
    ran = _phases_done(rng, phases, status, None) + (status == "failed")
    usage = {phase: phase_actuals(rng, state["estimated_cost_breakdown"][phase]) for phase in phases[:ran]}
    end = start + timedelta(seconds=sum(phase_seconds(rng, phase) for phase in phases[:ran]))
    error = f"{phases[ran - 1]} phase failed: {FAILURES[phases[ran - 1]]}" if status == "failed" else None
    if "status" in state:
        state.update(status=status, current_phase=phases[ran - 1] if ran else None)
    state["end_time"] = utc_iso(end)
    return history_row(state, status, start, end, usage, now, error)


def _seed_queue(conn: sqlite3.Connection, rng: random.Random, now: datetime, runs: list[tuple[Run, str, int]],
                items: Iterator[WorkItem]) -> None:
    """About forty queue rows in all six statuses; each agent run works one phase of its own feature."""
    plans = [_run_feature(rng, run, outcome, before) for run, outcome, before in runs]
    showcase = list(_SHOWCASE_FEATURES)
    for item in items:  # one feature per work item, so no two features share a title
        if not showcase and sum(len(plan[2]) for plan in plans) >= _QUEUE_ROWS:
            break
        statuses = showcase.pop(0) if showcase else _waiting_statuses(rng)
        plans.append((now - timedelta(hours=rng.uniform(3, 72)), item[0], [(s, None) for s in statuses]))
    plans.sort(key=lambda plan: plan[0])  # positions follow creation: the queue is FIFO
    position = 0
    for feature_id, (created, title, phases) in enumerate(plans, start=1):
        feature = Feature(feature_id, title, pick_priority(rng), created)
        for number, ((status, run), times) in enumerate(zip(phases, _timeline(rng, created, phases, now),
                                                            strict=True), start=1):
            position += 1
            row = queue_row(rng, feature, number, status, position, times)
            _bind(rng, row, run, status, 300 + position)
            insert_row(conn, "phase_queue", row)


def _timeline(rng: random.Random, created: datetime, phases: list[tuple[str, Run | None]],
              now: datetime) -> list[PhaseTimes]:
    """When each phase of a feature created at `created` got ready, started and last changed.

    A phase gets ready only once the one before it completed, and one that waits behind a
    failed phase was blocked when that phase failed; a phase an agent run works on started
    with its run and last changed with it.
    """
    times, done = [], created  # done: when the phase before last changed
    for status, run in phases:
        if status in ("queued", "blocked"):
            times.append(PhaseTimes(updated=done if status == "blocked" else None))
            continue
        ready = min(done + timedelta(minutes=rng.uniform(1, 30)), now)
        if run is not None:
            ready, started, updated = min(ready, run.started), run.started, run.updated or run.started
        elif status == "ready":
            started, updated = None, ready
        else:  # completed or failed by a run long pruned from disk
            started = min(ready + timedelta(minutes=rng.uniform(0, 10)), now)
            updated = min(started + timedelta(minutes=rng.uniform(10, 50)), now)
        times.append(PhaseTimes(ready, started, updated))
        done = updated
    return times


def _run_feature(rng: random.Random, run: Run, outcome: str,
                 before: int) -> tuple[datetime, str, list[tuple[str, Run | None]]]:
    """(created, title, [(status, run)]) of the feature whose phase `run` works on, after `before` completed ones."""
    if outcome == "failed":
        after = ["blocked"] * rng.randint(1, 2)
    else:  # a later phase is ready only once every earlier one has completed
        after = ["ready" if outcome == "completed" and rng.random() < 0.5 else "queued", "queued"][: rng.randint(0, 2)]
    created = run.started - timedelta(hours=rng.uniform(2, 6))  # queued well before its phases ran
    title = work_item_for(run.state["nl_input"])[0]
    status = "running" if outcome == "pending" else outcome  # the queue shows a launched run as running
    return created, title, [*[("completed", None)] * before, (status, run), *((status, None) for status in after)]


def _waiting_statuses(rng: random.Random) -> list[str]:
    """The phase statuses of a feature still in the queue: some done, one up next, the rest waiting."""
    return ["completed"] * rng.randint(0, 2) + [rng.choice(("ready", "queued", "queued"))] + \
        ["queued"] * rng.randint(0, 2)


def _bind(rng: random.Random, row: dict[str, Any], run: Run | None, status: str, issue: int) -> None:
    """Give a queue row that has started its issue, its run and the phase the orchestrator last broadcast."""
    if run is not None:
        run.queue_id = row["queue_id"]
        row.update(issue_number=int(run.state["issue_number"]), adw_id=run.adw_id,
                   current_phase=run.queue_phase(status), error_message=run.error)
    elif status in ("completed", "failed"):  # a run long pruned from disk
        phase = "Verify" if status == "completed" else rng.choice(("Build", "Lint", "Test", "Review", "Ship"))
        row.update(issue_number=issue, current_phase=phase,
                   error_message=f"{phase} phase failed: {FAILURES[phase]}" if status == "failed" else None)


def _seed_features(conn: sqlite3.Connection, rng: random.Random, now: datetime, items: Iterator[WorkItem]) -> None:
    """Three planning sessions, ten days apart, and 22 work items planned in them; every item type shows."""
    statuses = ["completed"] * 9 + ["cancelled"] * 2 + ["in_progress"] * 5 + ["planned"] * 6
    work = _with_a_chore(items, len(statuses))
    # work under way has its GitHub issue, numbered below every run's so the panels never disagree on one
    issues = iter(rng.sample(range(10, 40), len(statuses)))
    for session in range(1, 4):
        started = now - timedelta(days=31 - 10 * session)  # the latest began a day ago and is still open
        ended = started + timedelta(hours=2) if session < 3 else None
        parent = insert_row(conn, "planned_features", {
            "item_type": "session", "title": f"Planning session {session}", "description": "Roadmap grooming",
            "status": "completed" if ended else "in_progress", "priority": "medium", "estimated_hours": 2.0,
            "session_number": session, "tags": "[]", "created_at": utc_iso(started),
            "updated_at": utc_iso(ended or started), "started_at": utc_iso(started),
            "completed_at": utc_iso(ended) if ended else None,
            "completion_notes": "Backlog groomed and estimated." if ended else None})
        for item, status in zip(work[(session - 1) * 7: session * 7 + (session == 3)],
                                statuses[(session - 1) * 7: session * 7 + (session == 3)], strict=True):
            planned = started + timedelta(hours=rng.uniform(0, 2))  # written down during the session
            issue = next(issues) if status in ("in_progress", "completed") else None
            insert_row(conn, "planned_features", feature_row(rng, now, item, status, parent, session, planned, issue))


def _with_a_chore(items: Iterator[WorkItem], count: int) -> list[WorkItem]:
    """The next `count` work items, the last swapped for a chore when none is among them (every type shows)."""
    work = [next(items) for _ in range(count)]
    if all(item[1] != "/chore" for item in work):
        work[-1] = next(item for item in items if item[1] == "/chore")
    return work
