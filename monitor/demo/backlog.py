"""The demo's backlog activity: queue phases get promoted, retried and added; planned features move.

The simulator calls these once per tick, with its own random source and activity levels.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime

from monitor.demo.records import WORK_ITEMS, Workspace, feature_row, insert_row, queue_row, utc_iso

# planned-feature action -> (status it applies to, SET clause; :now and :factor are bound per call)
_FEATURE_MOVES = {
    "start": ("planned", "status = 'in_progress', started_at = :now"),
    "finish": ("in_progress", "status = 'completed', completed_at = :now, completion_notes = 'Merged and deployed.',"
               " actual_hours = ROUND(COALESCE(estimated_hours, 1.0) * :factor, 1)"),
    "cancel": ("planned", "status = 'cancelled'"),
    "log_hours": ("in_progress", "actual_hours = COALESCE(actual_hours, 0) + 0.5"),
}
_FEATURE_ACTIONS = ("start", "start", "finish", "finish", "log_hours", "cancel", "add", "add", "add")  # by weight
_PROMOTE_NEXT_QUEUED = (  # the best queued phase whose earlier phases are all done becomes ready
    "UPDATE phase_queue SET status = 'ready', ready_timestamp = :now, updated_at = :now WHERE queue_id ="
    " (SELECT q.queue_id FROM phase_queue q WHERE q.status = 'queued' AND NOT EXISTS (SELECT 1 FROM phase_queue d"
    " WHERE d.feature_id = q.feature_id AND d.phase_number < q.phase_number AND d.status != 'completed')"
    " ORDER BY q.priority DESC, q.queue_position LIMIT 1)")
_MAX_OPEN_QUEUE_ROWS = 28  # new features join the queue only while fewer rows are open
_MAX_FEATURES = 36  # planned features (sessions aside) stop being added at this many


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
        feature_id, issue, position = conn.execute(
            "SELECT COALESCE(MAX(feature_id), 0) + 1, COALESCE(MAX(issue_number), 0),"
            " COALESCE(MAX(queue_position), 0) FROM phase_queue").fetchone()
        title = rng.choice(WORK_ITEMS)[0]
        with conn:
            for n in range(1, rng.randint(1, 3) + 1):
                insert_row(conn, "phase_queue", queue_row(rng, now, (feature_id, n, issue + n, title), "queued",
                                                          position + n, fresh=True))


def _retry_failed(conn: sqlite3.Connection, ws: Workspace, stamp: str) -> None:
    """Requeue a failed phase whose run's agent dir is gone, and unblock its feature."""
    agents = ws.agent_ids()  # a run still on disk keeps its failed row, which carries its status
    for queue_id, feature_id, adw_id in conn.execute(
            "SELECT queue_id, feature_id, adw_id FROM phase_queue WHERE status = 'failed' ORDER BY updated_at"
    ).fetchall():
        if adw_id not in agents:
            conn.execute("UPDATE phase_queue SET status = 'queued', error_message = NULL, adw_id = NULL,"
                         " updated_at = ? WHERE queue_id = ?", (stamp, queue_id))
            conn.execute("UPDATE phase_queue SET status = 'queued', error_message = NULL, updated_at = ?"
                         " WHERE feature_id = ? AND status = 'blocked'", (stamp, feature_id))
            return


def tick_features(conn: sqlite3.Connection, rng: random.Random, now: datetime, act_chance: float) -> None:
    """With `act_chance`, add a planned feature or start, finish, cancel or log hours on one."""
    if rng.random() >= act_chance:
        return
    counts = dict(conn.execute("SELECT status, COUNT(*) FROM planned_features WHERE item_type != 'session'"
                               " GROUP BY status").fetchall())
    can_add = sum(counts.values()) < _MAX_FEATURES
    # only moves that apply right now, so a tick that acts always changes something
    moves = [a for a in _FEATURE_ACTIONS if (can_add if a == "add" else counts.get(_FEATURE_MOVES[a][0]))]
    if not moves:
        return
    action = rng.choice(moves)
    with conn:
        if action == "add":
            session = conn.execute("SELECT id, session_number FROM planned_features WHERE item_type = 'session'"
                                   " ORDER BY id DESC LIMIT 1").fetchone() or (None, None)
            row = feature_row(rng, now, rng.choice(WORK_ITEMS), "planned", session[0], session[1], fresh=True)
            insert_row(conn, "planned_features", row)
            return
        wanted, assignments = _FEATURE_MOVES[action]
        rows = conn.execute("SELECT id FROM planned_features WHERE status = ? AND item_type != 'session'"
                            " ORDER BY id", (wanted,)).fetchall()
        conn.execute(f"UPDATE planned_features SET {assignments}, updated_at = :now WHERE id = :id",
                     {"now": utc_iso(now), "id": rng.choice(rows)[0], "factor": rng.uniform(0.6, 1.6)})
