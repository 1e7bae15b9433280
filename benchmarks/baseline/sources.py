"""The seed console's data reads, replicated: blocking sqlite3 and file reads, whole payloads.

The seed ran these on the event loop; so does the replica, since that is the pattern
being measured.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path


class SeedSources:
    """Reads every panel's whole payload from the same workspace the console watches."""

    def __init__(self, db_path: str, agents_dir: str, trees_dir: str, webhook_url: str) -> None:
        self.db_path = db_path
        self.agents_dir = Path(agents_dir)
        self.trees_dir = Path(trees_dir)
        self.webhook_url = webhook_url

    def _rows(self, sql: str) -> list[dict]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5.0)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute(sql)]
        finally:
            conn.close()

    def queue(self) -> dict:
        """Every phase_queue row with its JSON columns decoded, and the paused flag."""
        phases = self._rows("SELECT * FROM phase_queue ORDER BY queue_position")
        for phase in phases:
            for column in ("depends_on_phases", "phase_data"):
                phase[column] = json.loads(phase[column]) if phase[column] else None
        config = {r["config_key"]: r["config_value"] for r in self._rows("SELECT * FROM queue_config")}
        return {"phases": phases, "total": len(phases), "paused": config.get("queue_paused") == "true"}

    def _states(self) -> list[dict]:
        states = []
        for path in sorted(self.agents_dir.glob("*/adw_state.json")):
            try:
                states.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # half-written: skipped this round
        return states

    def workflows(self) -> dict:
        """Every agent state file."""
        return {"workflows": self._states()}

    def adw_monitor(self) -> dict:
        """State files joined with their queue status and worktree presence."""
        status = {r["adw_id"]: r["status"] for r in self._rows("SELECT adw_id, status FROM phase_queue")}
        runs = [{**state, "queue_status": status.get(state.get("adw_id")),
                 "has_worktree": (self.trees_dir / str(state.get("adw_id"))).is_dir()} for state in self._states()]
        return {"workflows": runs, "summary": {"total": len(runs)}}

    def workflow_history(self) -> dict:
        """The newest 50 history rows."""
        return {"workflows": self._rows("SELECT * FROM workflow_history ORDER BY start_time DESC LIMIT 50")}

    def planned_features(self) -> dict:
        """Every planned feature."""
        return {"features": self._rows("SELECT * FROM planned_features")}

    def system_status(self) -> dict:
        """Database and webhook checks, run inline."""
        services = {"database": "healthy", "webhook": "healthy"}
        try:
            self._rows("SELECT 1")
        except sqlite3.Error:
            services["database"] = "error"
        if "error" in self.webhook_status():
            services["webhook"] = "error"
        healthy = sum(1 for s in services.values() if s == "healthy")
        return {"overall_status": "healthy" if healthy == len(services) else "degraded", "services": services}

    def webhook_status(self) -> dict:
        """The webhook service's status document (blocking HTTP GET)."""
        try:
            with urllib.request.urlopen(self.webhook_url, timeout=2.0) as response:
                return json.loads(response.read())
        except (OSError, ValueError) as exc:
            return {"status": "unreachable", "error": str(exc)}
