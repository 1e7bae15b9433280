"""A generated ADW workspace for the benchmarks, and the changes the driver makes to it.

The database uses the product's schema (``monitor.demo.schema``) with 500 queue rows and
120 (or any number of) realistic ``workflow_history`` rows (``benchmarks.history``); the
agents directory holds state files. Changes carry a marker string so a client can
tell the message that delivered them.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.history import fill_history
from monitor.adw import PHASES, QUEUE_STATUSES
from monitor.demo import vocabulary
from monitor.demo.schema import SQLITE_SCHEMA

QUEUE_ROWS = 500
AGENT_RUNS = 40
HISTORY_ROWS = 120
FEATURE_ROWS = 80
TEMPLATES = ("adw_sdlc_complete_iso", "adw_sdlc_from_build_iso", "adw_plan_build_iso", "adw_lightweight_iso")
CLASSES = ("/feature", "/bug", "/chore", "/patch")
WORDS = ("cache", "checkout", "invoice", "login", "search", "report", "webhook", "export", "cart",
         "pagination", "timezone", "coupon", "inventory", "audit", "theme", "profile", "upload")


@dataclass(frozen=True)
class Workspace(vocabulary.Workspace):
    """Where the generated workspace lives, and the ids the driver changes."""

    adw_ids: tuple[str, ...]
    queue_ids: tuple[str, ...]


def iso(moment: datetime) -> str:
    """UTC ISO-8601 text with second precision, as the ADW tables store it."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def create_workspace(root: Path, seed: int = 6, history_rows: int = HISTORY_ROWS) -> Workspace:
    """Create the database (with ``history_rows`` realistic history rows), state files and worktrees under ``root``."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    db_path, agents_dir, trees_dir = root / "db" / "database.db", root / "agents", root / "trees"
    for directory in (db_path.parent, agents_dir, trees_dir):
        directory.mkdir(parents=True, exist_ok=True)
    adw_ids = tuple(f"{rng.getrandbits(32):08x}" for _ in range(AGENT_RUNS))
    now = datetime.now(UTC)
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SQLITE_SCHEMA)
        with conn:
            queue_ids = _fill_queue(conn, rng, now, adw_ids)
            fill_history(conn, history_rows, adw_ids, now)
            _fill_features(conn, rng, now)
            conn.execute("INSERT INTO queue_config VALUES ('queue_paused', 'false', ?)", (iso(now),))
    finally:
        conn.close()
    for index, adw_id in enumerate(adw_ids):
        write_state_file(agents_dir, state_record(rng, adw_id, 200 + index, now))
        if index % 3 == 0:
            (trees_dir / adw_id).mkdir(exist_ok=True)
    return Workspace(root, db_path, agents_dir, trees_dir, adw_ids, queue_ids)


def _title(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(4)).capitalize()


def _fill_queue(conn: sqlite3.Connection, rng: random.Random, now: datetime, adw_ids) -> tuple[str, ...]:
    ids = []
    for position in range(QUEUE_ROWS):
        queue_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = now - timedelta(minutes=rng.randrange(1, 5000))
        phase_data = {"title": _title(rng), "content": " ".join(rng.choice(WORDS) for _ in range(40)),
                      "externalDocs": [], "predicted_patterns": rng.sample(WORDS, 3)}
        status = rng.choice(QUEUE_STATUSES)
        conn.execute(
            "INSERT INTO phase_queue (queue_id, feature_id, phase_number, issue_number, status, depends_on_phases,"
            " phase_data, created_at, updated_at, adw_id, priority, queue_position, current_phase)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (queue_id, 1 + position // 5, 1 + position % 5, 1000 + position, status,
             json.dumps([1 + position % 5 - 1] if position % 5 else []), json.dumps(phase_data),
             iso(created), iso(created), rng.choice(adw_ids), rng.choice((10, 50, 90)), position,
             rng.choice(PHASES)))
        ids.append(queue_id)
    return tuple(ids)


def _fill_features(conn: sqlite3.Connection, rng: random.Random, now: datetime) -> None:
    for _ in range(FEATURE_ROWS):
        conn.execute(
            "INSERT INTO planned_features (item_type, title, description, status, priority, estimated_hours,"
            " tags, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (rng.choice(("session", "feature", "bug", "enhancement")), _title(rng), _title(rng),
             rng.choice(("planned", "in_progress", "completed", "cancelled")), rng.choice(("high", "medium", "low")),
             rng.choice((2.0, 4.0, 8.0)), json.dumps(rng.sample(WORDS, 2)), iso(now), iso(now)))


def state_record(rng: random.Random, adw_id: str, issue: int, now: datetime) -> dict:
    """One agents/<adw_id>/adw_state.json record."""
    template = rng.choice(TEMPLATES)
    return {
        "adw_id": adw_id, "issue_number": str(issue), "branch_name": f"feature-issue-{issue}-adw-{adw_id}",
        "plan_file": f"specs/issue-{issue}-adw-{adw_id}.md", "issue_class": rng.choice(CLASSES),
        "worktree_path": f"/var/lib/adw/trees/{adw_id}", "backend_port": 9100 + issue % 15,
        "frontend_port": 9200 + issue % 15, "model_set": "base", "all_adws": [template],
        "estimated_cost_total": 2.5, "estimated_cost_breakdown": {"Plan": 0.45, "Build": 0.9},
        "workflow_template": template, "model_used": "sonnet", "start_time": iso(now),
        "nl_input": _title(rng), "github_url": f"https://github.com/acme/storefront/issues/{issue}",
    }


def write_state_file(agents_dir: Path, record: dict) -> None:
    """Rewrite a state file in place, as ADW writers do (no temp file and rename)."""
    path = agents_dir / record["adw_id"] / "adw_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(record, indent=2))


class WorkspaceChanges:
    """One-row changes carrying a marker: a queue row commit, a state file rewrite."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._rng = random.Random(7)
        self._others = -1

    def commit_queue_row(self, marker: str) -> None:
        """Update one phase_queue row (status, phase, updated_at, error_message=marker) and commit."""
        rng = self._rng
        conn = sqlite3.connect(self.workspace.db_path, timeout=5.0)
        try:
            with conn:
                conn.execute(
                    "UPDATE phase_queue SET status = ?, current_phase = ?, updated_at = ?, error_message = ?"
                    " WHERE queue_id = ?",
                    (rng.choice(QUEUE_STATUSES), rng.choice(PHASES), iso(datetime.now(UTC)),
                     marker, rng.choice(self.workspace.queue_ids)))
        finally:
            conn.close()

    def rewrite_state_file(self, marker: str) -> None:
        """Rewrite one agent's state file with ``nl_input`` carrying the marker."""
        rng = self._rng
        adw_id = rng.choice(self.workspace.adw_ids)
        record = state_record(rng, adw_id, 200 + self.workspace.adw_ids.index(adw_id), datetime.now(UTC))
        record["nl_input"] = f"benchmark change {marker}"
        write_state_file(self.workspace.agents_dir, record)

    def commit_other_table(self, marker: str) -> None:
        """Commit one row to a table the queue does not read: planned_features, task_logs, workflow_history in turn."""
        self._others += 1
        now = iso(datetime.now(UTC))
        statement, values = [
            ("UPDATE planned_features SET completion_notes = ?, updated_at = ? WHERE id = ?",
             (marker, now, 1 + self._others % FEATURE_ROWS)),
            ("INSERT INTO task_logs (adw_id, phase_name, phase_number, phase_status, log_message, started_at)"
             " VALUES (?, 'Build', 3, 'started', ?, ?)", (self.workspace.adw_ids[0], marker, now)),
            ("UPDATE workflow_history SET error_message = ?, updated_at = ? WHERE adw_id = ?",
             (marker, now, self.workspace.adw_ids[self._others % len(self.workspace.adw_ids)])),
        ][self._others % 3]
        conn = sqlite3.connect(self.workspace.db_path, timeout=5.0)
        try:
            with conn:
                conn.execute(statement, values)
        finally:
            conn.close()
