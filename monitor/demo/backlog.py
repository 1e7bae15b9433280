"""The demo's backlog: phase_queue and planned_features rows, and how they move each tick.

Queue phases get promoted, retried and added; planned features are added, started,
finished and cancelled. The simulator calls the ticks once per tick, with its own random
source and activity levels; the seeding builds its rows with the same builders.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.adw import DEFAULT_PRIORITY
from monitor.demo.vocabulary import WORK_ITEMS, WorkItem, Workspace, insert_row, utc_iso

# phase_queue.priority as the hopper reads it: lower is more urgent; most work is normal (50).
PRIORITY_WEIGHTS = {10: 1, 20: 2, DEFAULT_PRIORITY: 8, 70: 2, 90: 1}
TAGS = ("frontend", "backend", "api", "database", "infra", "ux", "security", "testing", "docs")
_PATTERNS = ("api_endpoint", "db_migration", "ui_component", "background_job", "config_change", "test_fixture")
_PLAN_STEPS = ("Data model and migration", "Backend endpoint", "Frontend wiring", "Tests", "Docs and rollout")
_FILES = ("app/server/routes/{}.py", "app/server/services/{}_service.py", "app/client/src/components/{}.tsx",
          "app/server/tests/test_{}.py")
# Hours a planned feature has been in progress at :now, and the same cut down to whole tenths.
_HOURS_IN_PROGRESS = "((julianday(:now) - julianday(started_at)) * 24)"
_TENTHS_IN_PROGRESS = f"(CAST({_HOURS_IN_PROGRESS} * 10 AS INTEGER) / 10.0)"
_MAX_IN_PROGRESS = 8  # a team works on this many planned items at once; the others wait
_BACKLOG = (6, 10)  # planned items: fewer than the first are never cancelled, the last stops new ones
_PLANNED = "(SELECT COUNT(*) FROM planned_features WHERE status = 'planned' AND item_type != 'session')"
# planned-feature action -> (the items it applies to, SET clause; :now and :factor are bound per call).
# Nobody logs more hours than have passed since the work started, and work is finished after an hour at least.
_FEATURE_MOVES = {
    "start": ("status = 'planned' AND (SELECT COUNT(*) FROM planned_features WHERE status = 'in_progress'"
              f" AND item_type != 'session') < {_MAX_IN_PROGRESS}", "status = 'in_progress', started_at = :now"),
    "finish": (f"status = 'in_progress' AND {_HOURS_IN_PROGRESS} >= 1",
               "status = 'completed', completed_at = :now, completion_notes = 'Merged and deployed.', actual_hours ="
               f" MIN(MAX(COALESCE(actual_hours, 0), ROUND(COALESCE(estimated_hours, 1.0) * :factor, 1)),"
               f" {_TENTHS_IN_PROGRESS})"),
    "cancel": (f"status = 'planned' AND {_PLANNED} > {_BACKLOG[0]}", "status = 'cancelled'"),
    "log_hours": (f"status = 'in_progress' AND COALESCE(actual_hours, 0) + 0.5 <= {_HOURS_IN_PROGRESS}",
                  "actual_hours = COALESCE(actual_hours, 0) + 0.5"),
}
_FEATURE_ACTIONS = ("log_hours",) * 3 + ("start",) * 2 + ("finish",) * 3 + ("add",) * 3 + ("cancel",)  # by weight
_PROMOTE_NEXT_QUEUED = (  # the most urgent queued phase (FIFO among equals) whose earlier phases are done
    "UPDATE phase_queue SET status = 'ready', ready_timestamp = :now, updated_at = :now WHERE queue_id ="
    " (SELECT q.queue_id FROM phase_queue q WHERE q.status = 'queued' AND NOT EXISTS (SELECT 1 FROM phase_queue d"
    " WHERE d.feature_id = q.feature_id AND d.phase_number < q.phase_number AND d.status != 'completed')"
    " ORDER BY q.priority, q.queue_position LIMIT 1)")
_MAX_OPEN_QUEUE_ROWS = 28  # new features join the queue only while fewer rows are open
_MAX_FEATURES = 36  # planned features (sessions aside) stop being added at this many


@dataclass(frozen=True)
class Feature:
    """Queued multi-phase work: its phase rows share id, title, priority and creation time."""

    feature_id: int
    title: str
    priority: int
    created: datetime


def pick_priority(rng: random.Random) -> int:
    """A phase_queue priority, mostly the default."""
    return rng.choices(list(PRIORITY_WEIGHTS), weights=list(PRIORITY_WEIGHTS.values()))[0]


def phase_title(title: str, phase_number: int) -> str:
    """phase_data.title of a feature's phase."""
    return f"{title} (phase {phase_number})"


@dataclass(frozen=True)
class PhaseTimes:
    """When a queued phase became ready, started and last changed; None: not yet (updated: at creation)."""

    ready: datetime | None = None
    started: datetime | None = None
    updated: datetime | None = None


def queue_row(rng: random.Random, feature: Feature, phase_number: int, status: str, position: int,
              times: PhaseTimes = PhaseTimes()) -> dict[str, Any]:
    """A phase_queue row of a feature's phase at `times` (created with its feature, as the real queue does)."""
    updated = times.updated or times.started or times.ready or feature.created
    return {
        "queue_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "feature_id": feature.feature_id,
        "phase_number": phase_number, "issue_number": None, "status": status,
        "depends_on_phases": json.dumps(list(range(1, phase_number))),
        "phase_data": json.dumps({
            "title": phase_title(feature.title, phase_number),
            "content": f"Phase {phase_number} of '{feature.title}': implement, test and document the change.",
            "externalDocs": rng.sample(["docs/api.md", "docs/architecture.md", "README.md", "docs/testing.md"], 2),
            "predicted_patterns": rng.sample(_PATTERNS, 2),
        }),
        "created_at": utc_iso(feature.created), "updated_at": utc_iso(updated),
        "error_message": "Dependency phase failed" if status == "blocked" else None,
        "priority": feature.priority, "queue_position": position,
        "ready_timestamp": utc_iso(times.ready) if times.ready else None,
        "started_timestamp": utc_iso(times.started) if times.started else None,
        "current_phase": "init",
    }


def unused_items(conn: sqlite3.Connection) -> list[WorkItem]:
    """Work items no run, queued feature or planned feature is about: new work takes one, so titles stay distinct."""
    titles = {json.loads(data or "{}").get("title", "").rsplit(" (phase ", 1)[0]
              for (data,) in conn.execute("SELECT phase_data FROM phase_queue")}
    titles.update(title for (title,) in conn.execute("SELECT title FROM planned_features"))
    titles.update(text.split(" (see issue")[0].rsplit(" (phase ", 1)[0]
                  for (text,) in conn.execute("SELECT nl_input FROM workflow_history WHERE nl_input IS NOT NULL"))
    return [item for item in WORK_ITEMS if item[0] not in titles]


def generated_plan(rng: random.Random, title: str, hours: float) -> str:
    """planned_features.generated_plan: a PlanSummary (its phases and hours) as JSON text."""
    steps = rng.sample(_PLAN_STEPS, rng.randint(2, 4))
    word = title.split()[-1].lower().strip(".,")
    phases: list[dict[str, Any]] = [{
        "phase_number": n, "total_phases": len(steps), "title": step,
        "description": f"{step} for '{title}'.", "estimated_hours": round(hours / len(steps), 1),
        "files_to_modify": [pattern.format(word) for pattern in rng.sample(_FILES, 2)],
        "depends_on": [], "prompt_filename": f"phase_{n}_{slug_word(step)}.md",
        "markdown_prompt": f"# Phase {n}: {step}\n\nImplement {step.lower()} for {title}.",
    } for n, step in enumerate(steps, start=1)]
    return json.dumps({"feature_title": title, "total_phases": len(steps),
                       "total_estimated_hours": round(sum(p["estimated_hours"] for p in phases), 1),
                       "phases": phases})


def slug_word(text: str) -> str:
    """A file-name form of a short text."""
    return "_".join(text.lower().split())


def feature_row(rng: random.Random, now: datetime, item: WorkItem, status: str, parent_id: int | None,
                session: int | None, created: datetime, issue: int | None = None) -> dict[str, Any]:
    """A planned_features row for work `item` (a feature, bug or enhancement) planned at `created`."""
    title, issue_class, _, _ = item
    estimate = rng.choice((0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0))
    started = None
    if status in ("in_progress", "completed"):  # a completed item had some hours to be worked on
        latest = now - timedelta(hours=rng.uniform(1, 6)) if status == "completed" else now
        started = max(created, min(created + timedelta(hours=rng.uniform(2, 48)), latest))
    completed = hours = None
    if status == "completed" and started is not None:  # worked no longer than the time it had
        hours = min(round(estimate * rng.uniform(0.6, 1.6), 1), _hours_between(started, now))
        completed = started + timedelta(hours=hours)
    planned = rng.random() < (0.8 if started else 0.2 if status == "cancelled" else 0.5)  # plans come before work
    return {
        "item_type": {"/bug": "bug", "/patch": "bug", "/chore": "enhancement"}.get(issue_class, "feature"),
        "title": title, "description": f"{title}. Acceptance criteria in the linked issue.", "status": status,
        "priority": rng.choice(("high", "medium", "medium", "low")), "estimated_hours": estimate,
        "actual_hours": hours, "session_number": session,
        "github_issue_number": issue, "parent_id": parent_id,
        "tags": json.dumps(rng.sample(TAGS, rng.randint(1, 3))),
        "completion_notes": "Shipped behind a feature flag." if completed else None,
        "created_at": utc_iso(created), "updated_at": utc_iso(completed or started or created),
        "started_at": utc_iso(started) if started else None, "completed_at": utc_iso(completed) if completed else None,
        "generated_plan": generated_plan(rng, title, estimate) if planned else None,
    }


def _hours_between(start: datetime, end: datetime) -> float:
    """Whole tenths of an hour from `start` to `end`, rounded down (so they never exceed the span)."""
    return int((end - start).total_seconds() / 360) / 10


def queue_paused(conn: sqlite3.Connection) -> bool:
    """Whether the queue_config row says the queue is paused."""
    row = conn.execute("SELECT config_value FROM queue_config WHERE config_key = 'queue_paused'").fetchone()
    return row is not None and row[0] == "true"


def tick_queue(conn: sqlite3.Connection, rng: random.Random, ws: Workspace, now: datetime,
               pause_chance: float) -> None:
    """Promote, retry and add queue phases, and pause (with `pause_chance`) or resume the queue."""
    stamp = utc_iso(now)
    with conn:
        if rng.random() < 0.5:
            conn.execute(_PROMOTE_NEXT_QUEUED, {"now": stamp})
        if rng.random() < 0.2:
            _retry_failed(conn, ws, stamp)
        paused = queue_paused(conn)
        if rng.random() < (0.25 if paused else pause_chance):
            conn.execute("UPDATE queue_config SET config_value = ?, updated_at = ?"
                         " WHERE config_key = 'queue_paused'", ("false" if paused else "true", stamp))
    open_rows = conn.execute("SELECT COUNT(*) FROM phase_queue WHERE status != 'completed'").fetchone()[0]
    if open_rows < _MAX_OPEN_QUEUE_ROWS and rng.random() < 0.3:
        _add_feature(conn, rng, now)


def _add_feature(conn: sqlite3.Connection, rng: random.Random, now: datetime) -> None:
    """Queue a new multi-phase feature about work no queued feature covers (titles stay distinct)."""
    items = unused_items(conn)
    if not items:
        return
    feature_id, position = conn.execute(
        "SELECT COALESCE(MAX(feature_id), 0) + 1, COALESCE(MAX(queue_position), 0) FROM phase_queue").fetchone()
    feature = Feature(feature_id, rng.choice(items)[0], pick_priority(rng), now)
    with conn:
        for n in range(1, rng.randint(1, 3) + 1):  # new rows go to the back of the queue: FIFO among equals
            insert_row(conn, "phase_queue", queue_row(rng, feature, n, "queued", position + n))


def _retry_failed(conn: sqlite3.Connection, ws: Workspace, stamp: str) -> None:
    """Requeue a failed phase whose run's agent dir is gone, and unblock its feature."""
    agents = ws.agent_ids()  # a run still on disk keeps its failed row, which carries its status
    for queue_id, feature_id, adw_id in conn.execute(
            "SELECT queue_id, feature_id, adw_id FROM phase_queue WHERE status = 'failed' ORDER BY updated_at"
    ).fetchall():
        if adw_id not in agents:
            # waiting again: it gets fresh ready/started times, so they never run backwards
            conn.execute("UPDATE phase_queue SET status = 'queued', error_message = NULL, adw_id = NULL,"
                         " current_phase = 'init', ready_timestamp = NULL, started_timestamp = NULL,"
                         " updated_at = ? WHERE queue_id = ?", (stamp, queue_id))
            conn.execute("UPDATE phase_queue SET status = 'queued', error_message = NULL, updated_at = ?"
                         " WHERE feature_id = ? AND status = 'blocked'", (stamp, feature_id))
            return


def tick_features(conn: sqlite3.Connection, rng: random.Random, now: datetime, act_chance: float) -> None:
    """With `act_chance`, add a planned feature or start, finish, cancel or log hours on one."""
    if rng.random() >= act_chance:
        return
    stamp = utc_iso(now)
    items = unused_items(conn)
    total, planned = conn.execute(f"SELECT COUNT(*), {_PLANNED} FROM planned_features WHERE item_type != 'session'"
                                  ).fetchone()
    can_add = total < _MAX_FEATURES and planned < _BACKLOG[1] and bool(items)
    targets = {action: [row[0] for row in conn.execute(
        f"SELECT id FROM planned_features WHERE item_type != 'session' AND {where} ORDER BY id", {"now": stamp})]
        for action, (where, _) in _FEATURE_MOVES.items()}
    # only moves that apply right now, so a tick that acts always changes something
    moves = [a for a in _FEATURE_ACTIONS if (can_add if a == "add" else targets[a])]
    if not moves:
        return
    action = rng.choice(moves)
    with conn:
        if action == "add":
            session = conn.execute("SELECT id, session_number FROM planned_features WHERE item_type = 'session'"
                                   " ORDER BY id DESC LIMIT 1").fetchone() or (None, None)
            row = feature_row(rng, now, rng.choice(items), "planned", session[0], session[1], now)
            insert_row(conn, "planned_features", row)
            return
        conn.execute(f"UPDATE planned_features SET {_FEATURE_MOVES[action][1]}, updated_at = :now WHERE id = :id",
                     {"now": stamp, "id": rng.choice(targets[action]), "factor": rng.uniform(0.6, 1.6)})
