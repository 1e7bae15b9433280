"""The demo workspace: an ADW database, agent state files and worktrees, seeded with history.

The seed is built with the same record builders (`records`) the simulator uses later.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from monitor.demo.records import (
    FAILURES, PHASE_SCRIPTS, WORK_ITEMS, Workspace, append_error, feature_row, history_row, insert_row,
    insert_task_log, new_adw_id, new_state, phase_actuals, queue_row, slug, utc_iso, write_state,
)
from monitor.demo.schema import ADW_PHASES, SQLITE_SCHEMA

__all__ = ["Workspace", "create_workspace"]  # Workspace is defined in records; callers import it from here


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
                _seed(conn, ws, rng, datetime.now(timezone.utc))
    finally:
        conn.close()
    return ws


def _seed(conn: sqlite3.Connection, ws: Workspace, rng: random.Random, now: datetime) -> None:
    items = rng.sample(WORK_ITEMS, len(WORK_ITEMS))
    # (outcome, phases done): one live run stands in build, so the API changes on the first ticks
    plan = [("running", 2), *(("running", n) for n in rng.sample(range(1, 7), 3)),
            *[("completed", len(ADW_PHASES))] * 3, ("failed", rng.randrange(2, 6))]
    runs = [_seed_run(conn, ws, rng, now, 100 + i, items[i], outcome, done) for i, (outcome, done) in enumerate(plan)]
    history = runs + [_old_run(ws, rng, now, 40 + i, items[i % len(items)]) for i in range(52)]
    for row in history:
        insert_row(conn, "workflow_history", row)
    _seed_queue(conn, rng, now, history)
    # 22 of the 24 work items always include a chore, so every item type shows; older sessions are done
    statuses = ["completed"] * 9 + ["cancelled"] * 2 + ["in_progress"] * 5 + ["planned"] * 6
    work = list(zip(rng.sample(WORK_ITEMS, len(statuses)), statuses))
    for session in range(1, 4):
        started = now - timedelta(days=30 - 10 * session)
        parent = insert_row(conn, "planned_features", {
            "item_type": "session", "title": f"Planning session {session}", "description": "Roadmap grooming",
            "status": "completed" if session < 3 else "in_progress", "priority": "medium", "estimated_hours": 2.0,
            "session_number": session, "created_at": utc_iso(started), "updated_at": utc_iso(started)})
        for item, status in work[(session - 1) * 7: session * 7 + (session == 3)]:
            insert_row(conn, "planned_features", feature_row(rng, now, item, status, parent, session))
    conn.execute("INSERT INTO queue_config VALUES ('queue_paused', 'false', ?)", (utc_iso(now),))


def _seed_run(conn: sqlite3.Connection, ws: Workspace, rng: random.Random, now: datetime,
              issue: int, item: tuple, outcome: str, last: int) -> dict[str, Any]:
    """Write one agent run (state file, task logs, worktree, errors); return its history row."""
    adw_id = new_adw_id(rng)
    state = new_state(ws, rng, adw_id, issue, item, now)
    while last < len(ADW_PHASES) and ADW_PHASES[last] not in state["estimated_cost_breakdown"]:
        last += 1  # a run never stands in a phase its template skips
    durations = [rng.uniform(30, 240) for _ in range(last)]
    age = timedelta(seconds=sum(durations) + 20) if outcome == "running" else timedelta(hours=rng.uniform(1, 30))
    start = now - age
    state["start_time"] = utc_iso(start)
    when, cost = start, 0.0
    for phase, duration in zip(ADW_PHASES, durations):
        if phase not in state["estimated_cost_breakdown"]:
            insert_task_log(conn, state, phase, "skipped", when)
            continue
        phase_cost, tokens = phase_actuals(rng, state["estimated_cost_breakdown"][phase])
        when += timedelta(seconds=duration)
        insert_task_log(conn, state, phase, "completed", when, phase_cost, tokens, duration)
        cost += phase_cost
        state["all_adws"] += [PHASE_SCRIPTS[phase]] if phase in PHASE_SCRIPTS else []
        if phase == "plan":
            state["plan_file"] = f"specs/issue-{issue}-adw-{adw_id}-sdlc_planner-{slug(item[0])}.md"
    current = ADW_PHASES[min(last, len(ADW_PHASES) - 1)]
    if outcome == "running":
        insert_task_log(conn, state, current, "started", when)
        if rng.random() < 0.5:
            append_error(ws, adw_id, when, f"{ADW_PHASES[last - 1]}: claude CLI timed out after 600s, retried (1/3)")
    elif outcome == "failed":
        insert_task_log(conn, state, current, "failed", when, error=FAILURES[current])
        append_error(ws, adw_id, when, FAILURES[current])
    if outcome != "completed":
        (ws.trees_dir / adw_id).mkdir(exist_ok=True)
    if "status" in state:
        state.update(status=outcome, current_phase=current)
    write_state(ws, state)
    return history_row(state, outcome, current, start, None if outcome == "running" else when, cost, last, now)


def _old_run(ws: Workspace, rng: random.Random, now: datetime, issue: int, item: tuple) -> dict[str, Any]:
    """A finished run whose agent dir was pruned long ago; only its history row remains."""
    roll = rng.random()
    status = "pending" if roll < 0.04 else "failed" if roll < 0.24 else "completed"
    age = timedelta(minutes=rng.uniform(1, 10)) if status == "pending" else timedelta(days=rng.uniform(0.2, 40))
    start = now - age
    state = new_state(ws, rng, new_adw_id(rng), issue, item, start)
    if status == "pending":
        return history_row(state, status, "init", start, None, 0.0, 0, now)
    phases = len(ADW_PHASES) if status == "completed" else rng.randrange(1, 8)
    end = start + timedelta(seconds=rng.uniform(600, 3600) * phases / len(ADW_PHASES))
    cost = state["estimated_cost_total"] * rng.uniform(0.6, 1.4) * phases / len(ADW_PHASES)
    return history_row(state, status, ADW_PHASES[phases - 1], start, end, cost, phases, now)


def _seed_queue(conn: sqlite3.Connection, rng: random.Random, now: datetime, history: list[dict[str, Any]]) -> None:
    """About forty queue rows in all six statuses, grouped into multi-phase features."""
    # pop() takes from the end: agent runs go last, so each gets a queue row to carry its status
    by_status = {s: [r for r in reversed(history) if r["status"] == s] for s in ("running", "completed", "failed")}
    statuses = ["running"] * len(by_status["running"]) + ["completed"] * 14 + ["failed"] * 3
    statuses += ["ready"] * 5 + ["queued"] * 10 + ["blocked"] * 4
    rng.shuffle(statuses)
    order = ("completed", "running", "failed", "ready", "queued", "blocked")  # within a feature, by phase
    position, feature_id = 0, 1
    while statuses:
        size = min(len(statuses), rng.randint(1, 4))
        chunk, statuses = sorted(statuses[:size], key=order.index), statuses[size:]
        title = rng.choice(WORK_ITEMS)[0]
        for phase_number, status in enumerate(chunk, start=1):
            position += 1
            row = queue_row(rng, now, (feature_id, phase_number, 300 + position, title), status, position)
            if by_status.get(status):
                run = by_status[status].pop()
                row.update(issue_number=run["issue_number"], adw_id=run["adw_id"], started_timestamp=run["start_time"],
                           current_phase=run["current_phase"], error_message=run["error_message"])
            insert_row(conn, "phase_queue", row)
        feature_id += 1
