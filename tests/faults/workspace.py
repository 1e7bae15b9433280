"""A monitored ADW system on disk and loopback: its database, state files, worktrees and webhook service.

Writers behave like the ADW system's: their own SQLite connections that commit, state
files rewritten in place (so a reader can meet one half-written), worktree directories
that come and go, and a webhook service that can go down and come back on its port.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.adw import PHASES
from monitor.channels.registry import CHANNEL_NAMES
from monitor.demo.schema import SQLITE_SCHEMA
from monitor.demo.webhook_service import WebhookStats, start_webhook_service
from monitor.settings import Settings, settings_from_mapping
from tests.support import QueueTable

AGENT_IDS = ("a1b2c3d4", "b2c3d4e5", "c3d4e5f6", "d4e5f6a7")
TEMPLATES = ("adw_sdlc_complete_iso", "adw_sdlc_from_build_iso", "adw_plan_build_iso")
RUN_STATUSES = ("pending", "running", "completed", "failed")
FEATURE_STATUSES = ("planned", "in_progress", "completed", "cancelled")
# Below the biggest queue snapshot a run builds (bursts of 12 KB rows), so the rule that a
# single frame may exceed the bound (test_large_state.py) is exercised too.
BACKLOG_BYTES = 64 * 1024


def create_database(path: Path) -> None:
    """An ADW database file with the five tables and the queue not paused."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SQLITE_SCHEMA)
        with conn:
            conn.execute("INSERT INTO queue_config VALUES ('queue_paused', 'false', '2026-01-01T00:00:00Z')")
    finally:
        conn.close()


def state_record(adw_id: str, variant: int) -> dict[str, Any]:
    """An adw_state.json document; ``variant`` picks its field values (older files carry status and phase)."""
    record = {"adw_id": adw_id, "issue_number": str(100 + variant % 7), "branch_name": f"feature-{variant % 5}",
              "issue_class": ("/feature", "/bug", "/chore")[variant % 3], "workflow_template": TEMPLATES[variant % 3],
              "model_set": ("base", "heavy")[variant % 2], "model_used": ("sonnet", "opus")[variant % 2],
              "estimated_cost_total": round(0.25 * (variant % 9), 2),
              "all_adws": ["adw_plan_iso", "adw_build_iso"][: variant % 3]}
    if variant % 4 == 0:
        record["status"] = ("running", "completed", "failed")[variant % 3]
        record["current_phase"] = PHASES[variant % len(PHASES)]
    return record


class Workspace:
    """The files and database of one ADW system, and writers that change them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db_path = root / "database.db"
        self.agents = root / "agents"
        self.trees = root / "trees"
        self.agents.mkdir(parents=True, exist_ok=True)
        self.trees.mkdir(exist_ok=True)
        create_database(self.db_path)
        self.queue = QueueTable(self.db_path)
        self.half_written: dict[str, str] = {}  # adw_id -> the full text still to be written

    def execute(self, sql: str, params: tuple = ()) -> None:
        """Run one statement in its own committed transaction, as the ADW system would."""
        conn = sqlite3.connect(self.db_path)
        try:
            with conn:
                conn.execute(sql, params)
        finally:
            conn.close()

    def queue_ids(self) -> list[str]:
        """The queue_ids now in phase_queue, in a stable order."""
        conn = sqlite3.connect(self.db_path)
        try:
            return [row[0] for row in conn.execute("SELECT queue_id FROM phase_queue ORDER BY queue_id")]
        finally:
            conn.close()

    def upsert_run(self, adw_id: str, variant: int) -> None:
        """Insert or update this run's workflow_history row."""
        self.execute(
            "INSERT INTO workflow_history (adw_id, issue_number, status, workflow_template, start_time,"
            " duration_seconds, actual_cost_total, current_phase) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(adw_id) DO UPDATE SET status = excluded.status, duration_seconds ="
            " excluded.duration_seconds, actual_cost_total = excluded.actual_cost_total,"
            " current_phase = excluded.current_phase",
            (adw_id, 100 + variant % 7, RUN_STATUSES[variant % 4], TEMPLATES[variant % 3],
             "2025-06-01T10:00:00Z", 10.0 * (variant % 5), 0.5 * (variant % 3) or None, PHASES[variant % len(PHASES)]))

    def upsert_feature(self, feature_id: int, variant: int) -> None:
        """Insert or update one planned_features row."""
        self.execute(
            "INSERT INTO planned_features (id, item_type, title, status, priority, estimated_hours, tags)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET status = excluded.status,"
            " estimated_hours = excluded.estimated_hours",
            (feature_id, ("feature", "bug", "session")[variant % 3], f"feature {feature_id}",
             FEATURE_STATUSES[variant % 4], ("high", "medium", "low")[variant % 3], 0.5 * (variant % 8),
             json.dumps(["ui"] if variant % 2 else [])))

    def log_task(self, adw_id: str, variant: int) -> None:
        """Append one task_logs row for a run's phase, as the phase scripts log them (completed or failed)."""
        self.execute(
            "INSERT INTO task_logs (adw_id, phase_name, phase_number, phase_status, cost_usd) VALUES (?, ?, ?, ?, ?)",
            (adw_id, PHASES[variant % len(PHASES)], 1 + variant % len(PHASES), ("completed", "failed")[variant % 2],
             0.01 * (variant % 4)))

    def state_path(self, adw_id: str) -> Path:
        """Where this run's adw_state.json lives."""
        return self.agents / adw_id / "adw_state.json"

    def write_state(self, adw_id: str, variant: int, half: bool = False) -> None:
        """Rewrite the state file in place; with ``half``, stop half-way (completed later)."""
        text = json.dumps(state_record(adw_id, variant), indent=1)
        path = self.state_path(adw_id)
        path.parent.mkdir(exist_ok=True)
        if half:
            self.half_written[adw_id] = text
            text = text[: len(text) // 2]
        else:
            self.half_written.pop(adw_id, None)
        with open(path, "w", encoding="utf-8") as fh:  # in place: same inode, like the ADW writers
            fh.write(text)

    def complete_state(self, adw_id: str) -> None:
        """Finish a half-written state file."""
        text = self.half_written.pop(adw_id, None)
        if text is not None and self.state_path(adw_id).parent.is_dir():
            self.state_path(adw_id).write_text(text, encoding="utf-8")

    def complete_all(self) -> None:
        """Finish every half-written state file."""
        for adw_id in list(self.half_written):
            self.complete_state(adw_id)

    def remove_agent(self, adw_id: str) -> None:
        """Delete a run's agent directory."""
        self.half_written.pop(adw_id, None)
        shutil.rmtree(self.agents / adw_id, ignore_errors=True)

    def log_error(self, adw_id: str, line: str) -> None:
        """Append a line to a run's error.log (when the run has a directory)."""
        if (self.agents / adw_id).is_dir():
            with open(self.agents / adw_id / "error.log", "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def toggle_tree(self, adw_id: str) -> None:
        """Create the run's worktree directory, or remove it when it exists."""
        tree = self.trees / adw_id
        if tree.is_dir():
            shutil.rmtree(tree)
        else:
            tree.mkdir()


class WebhookService:
    """The demo webhook service on a loopback port that survives going down and up."""

    def __init__(self) -> None:
        self.stats = WebhookStats(clock=lambda: 0.0)  # a frozen clock: uptime never moves on its own
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The status endpoint's URL."""
        return f"http://127.0.0.1:{self.port}/webhook-status"

    @property
    def is_up(self) -> bool:
        """True while the service listens."""
        return self._runner is not None

    async def up(self) -> None:
        """Listen again (on the same port once one was chosen)."""
        if self._runner is None:
            self._runner, self.port = await start_webhook_service(self.stats, port=self.port)

    async def down(self) -> None:
        """Stop listening: connections are refused until ``up``."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


def workspace_settings(workspace: Workspace, webhook_url: str, server: dict | None = None) -> Settings:
    """Settings on ``workspace``: polls only when asked, no file watching, small ring and backlog."""
    raw = {
        "server": {"host": "127.0.0.1", "port": 0, "heartbeat": 30.0, "close_grace": 0.2,
                   "shutdown_timeout": 2.0, "ring_size": 6, "max_backlog_messages": 4,
                   "max_backlog_bytes": BACKLOG_BYTES, **(server or {})},
        # no ADW backend: routes lists the console's own, and nothing probes whatever listens on :8002
        "sources": {"database": f"sqlite:///{workspace.db_path}", "agents_dir": str(workspace.agents),
                    "trees_dir": str(workspace.trees), "webhook_url": webhook_url, "watch": False,
                    "openapi_url": "", "backend_url": ""},
        "channels": {name: {"interval": 3600.0, "timeout": 2.0} for name in CHANNEL_NAMES},
    }
    return settings_from_mapping(raw, label="<faults>")

