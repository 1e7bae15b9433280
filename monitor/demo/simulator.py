"""The demo simulator: keeps a demo workspace changing the way a busy ADW system does.

Each `step` advances live runs through the nine phases, moves queue rows along, plans and
finishes features (`backlog`) and records webhook deliveries, so every channel's source
changes within a few one-second ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

import structlog

from monitor.demo.backlog import queue_paused, tick_features, tick_queue
from monitor.demo.processes import StandInProcesses
from monitor.demo.records import (
    FAILURES, PHASE_SCRIPTS, Workspace, append_error, history_row, insert_row, insert_task_log, new_adw_id,
    new_state, phase_actuals, slug, utc_iso, work_item_for, write_state,
)
from monitor.demo.schema import ADW_PHASES
from monitor.demo.webhook_service import ApiCatalog, WebhookStats

log = structlog.get_logger(__name__)

_WARNINGS = ("claude CLI timed out after 600s, retrying (1/3)", "GitHub API rate limited, sleeping 30s",
             "git push rejected (non-fast-forward), rebasing onto origin/main",
             "port in use, picked the next free backend port")
_WEBHOOK_ERRORS = ("Invalid webhook signature", "Issue is closed", "No ADW command in comment",
                   "GitHub API returned 502", "Duplicate delivery ignored")
_KEEP = {"completed_queue_rows": 15, "history_rows": 100, "closed_features": 20}  # what pruning leaves


@dataclass
class _Run:
    state: dict
    queue_id: str | None
    phase: int  # index into ADW_PHASES; -1 while the run is still pending
    started: datetime
    phase_started: datetime
    cost: float = 0.0
    paused: bool = False


class Simulator:
    """Drives a demo `Workspace`: one `step` is one tick of ADW activity."""

    def __init__(self, workspace: Workspace, rng: random.Random, webhook: WebhookStats, *,
                 api: ApiCatalog | None = None, max_live: int = 6, max_agents: int = 14) -> None:
        self._ws, self._rng, self._webhook, self._api = workspace, rng, webhook, api
        self._max_live, self._max_agents = max_live, max_agents
        self._runs: dict[str, _Run] = {}
        self._processes = StandInProcesses()
        self._lock = threading.Lock()  # close() may race a step still running in its worker thread
        self._conn: sqlite3.Connection | None = None
        self._adopted = self._closed = False
        self._ticks = 0

    def live_processes(self) -> dict[str, int]:
        """adw_id -> pid of every child process currently standing in for a running ADW."""
        return self._processes.live()

    def step(self) -> None:
        """Apply one tick of changes to the workspace (blocking: SQLite and file writes)."""
        with self._lock:
            if self._closed:
                return
            now, conn = datetime.now(timezone.utc), self._connection()
            if not self._adopted:
                self._adopt(conn, now)
            for run in list(self._runs.values()):
                self._tick_run(conn, run, now)
            tick_queue(conn, self._rng, self._ws, now, pause_chance=self._busy(0.01, warm_up=0.0))
            self._maybe_start_run(conn, now)
            tick_features(conn, self._rng, now, act_chance=self._busy(0.7))
            self._tick_webhook()
            self._prune(conn)
            self._ticks += 1

    async def run(self, stop: asyncio.Event, period: float = 1.0) -> None:
        """Call `step` every `period` seconds until `stop` is set; errors are logged, never raised."""
        try:
            while not stop.is_set():
                try:
                    await asyncio.to_thread(self.step)
                except Exception as exc:  # one bad tick must not end the demo
                    log.warning("demo_step_failed", error=str(exc), error_type=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=period)
        finally:
            self.close()

    def close(self) -> None:
        """Kill every child process and close the database; later steps do nothing."""
        with self._lock:
            self._closed = True
            self._processes.kill_all()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        # one connection for the simulator's life: steps run one at a time (under the lock) but in
        # different worker threads, and closing the last connection would checkpoint the WAL every tick
        if self._conn is None:
            self._conn = sqlite3.connect(self._ws.db_path, timeout=5.0, check_same_thread=False)
            self._conn.execute("PRAGMA synchronous = NORMAL")  # WAL stays consistent; a demo needs no fsync
        return self._conn

    def _busy(self, probability: float, warm_up: float = 1.0) -> float:
        # the first ticks always act (and never pause the queue): a new user sees every panel move at once
        return warm_up if self._ticks < 2 else probability

    def _adopt(self, conn: sqlite3.Connection, now: datetime) -> None:
        """Pick up the runs the seed (or a previous demo) left running."""
        self._adopted = True
        rows = conn.execute("SELECT adw_id, current_phase, actual_cost_total FROM workflow_history"
                            " WHERE status IN ('pending', 'running') ORDER BY start_time DESC").fetchall()
        for adw_id, phase, cost in rows:
            try:
                state = json.loads((self._ws.agents_dir / adw_id / "adw_state.json").read_text(encoding="utf-8"))
                started = datetime.fromisoformat(state["start_time"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a run without a readable state file stays mere history
            queue = conn.execute("SELECT queue_id FROM phase_queue WHERE adw_id = ?", (adw_id,)).fetchone()
            index = ADW_PHASES.index(phase) if phase in ADW_PHASES else -1
            self._runs[adw_id] = _Run(state, queue and queue[0], index, started, now, cost or 0.0)
            if len(self._runs) >= self._max_live:
                break

    def _tick_run(self, conn: sqlite3.Connection, run: _Run, now: datetime) -> None:
        adw_id, roll = run.state["adw_id"], self._rng.random()
        if run.paused:
            run.paused = roll >= 0.3
        elif run.phase >= 0 and roll < 0.03:
            run.paused = True  # an operator stopped it: the worktree stays, so it shows as paused
            self._processes.kill(adw_id)
        elif roll < 0.58:
            self._advance(conn, run, now)
        if adw_id in self._runs and not run.paused:
            self._processes.ensure(run.state)

    def _advance(self, conn: sqlite3.Connection, run: _Run, now: datetime) -> None:
        if run.phase >= 0:
            if self._rng.random() < 0.025:
                self._end_run(conn, run, now, failed=True)
                return
            self._complete_phase(conn, run, ADW_PHASES[run.phase], now)
            if run.phase == len(ADW_PHASES) - 1:
                self._end_run(conn, run, now, failed=False)
                return
        run.phase += 1
        while ADW_PHASES[run.phase] not in run.state["estimated_cost_breakdown"]:  # cleanup is never skipped
            with conn:
                insert_task_log(conn, run.state, ADW_PHASES[run.phase], "skipped", now)
            run.phase += 1
        phase, run.phase_started = ADW_PHASES[run.phase], now
        with conn:
            insert_task_log(conn, run.state, phase, "started", now)
        if PHASE_SCRIPTS.get(phase) and PHASE_SCRIPTS[phase] not in run.state["all_adws"]:
            run.state["all_adws"].append(PHASE_SCRIPTS[phase])
        if self._rng.random() < 0.1:
            append_error(self._ws, run.state["adw_id"], now, f"{phase}: {self._rng.choice(_WARNINGS)}")
        self._save_progress(conn, run, now, "running")

    def _complete_phase(self, conn: sqlite3.Connection, run: _Run, phase: str, now: datetime) -> None:
        cost, tokens = phase_actuals(self._rng, run.state["estimated_cost_breakdown"].get(phase, 0.0))
        with conn:
            insert_task_log(conn, run.state, phase, "completed", now, cost, tokens,
                            max(0.1, (now - run.phase_started).total_seconds()))
        run.cost += cost
        state = run.state
        if phase == "plan":
            state["plan_file"] = f"specs/issue-{state['issue_number']}-adw-{state['adw_id']}-sdlc_planner-" \
                                 f"{slug(state['nl_input'])}.md"
        elif phase in ("build", "ship") and self._api is not None:
            # the endpoint goes live on the dev API once built, and loses its preview tag once shipped
            title, issue_class, method, path = work_item_for(state["nl_input"])
            self._api.add_route(method, path, title, "preview" if phase == "build" else issue_class.strip("/"))
        elif phase == "cleanup":
            shutil.rmtree(self._ws.trees_dir / state["adw_id"], ignore_errors=True)

    def _end_run(self, conn: sqlite3.Connection, run: _Run, now: datetime, failed: bool) -> None:
        adw_id, phase = run.state["adw_id"], ADW_PHASES[run.phase]
        if failed:  # the worktree is kept for a post-mortem; later phases of the feature are blocked
            with conn:
                insert_task_log(conn, run.state, phase, "failed", now, error=FAILURES[phase])
                conn.execute("UPDATE phase_queue SET status = 'blocked', error_message = 'Dependency phase failed',"
                             " updated_at = ? WHERE status IN ('queued', 'ready') AND feature_id ="
                             " (SELECT feature_id FROM phase_queue WHERE queue_id = ?)", (utc_iso(now), run.queue_id))
            append_error(self._ws, adw_id, now, FAILURES[phase])
            if self._api is not None and run.phase > ADW_PHASES.index("build"):  # a failed change is reverted
                self._api.remove_route(*work_item_for(run.state["nl_input"])[2:])
        self._save_progress(conn, run, now, "failed" if failed else "completed")
        self._processes.kill(adw_id)
        del self._runs[adw_id]

    def _save_progress(self, conn: sqlite3.Connection, run: _Run, now: datetime, status: str) -> None:
        """Write a run's status to its history row, its queue row and its state file."""
        phase, ended = ADW_PHASES[run.phase], status != "running"
        row = history_row(run.state, status, phase, run.started, now if ended else None,
                          run.cost, run.phase + int(status == "completed"), now)
        with conn:
            assignments = ", ".join(f"{column} = :{column}" for column in row)
            conn.execute(f"UPDATE workflow_history SET {assignments} WHERE adw_id = :adw_id", row)
            conn.execute("UPDATE phase_queue SET status = ?, current_phase = ?, error_message = ?, updated_at = ?"
                         " WHERE queue_id = ?", (status, phase, row["error_message"], utc_iso(now), run.queue_id))
        if "status" in run.state:
            run.state.update(status=status, current_phase=phase)
        write_state(self._ws, run.state)

    def _maybe_start_run(self, conn: sqlite3.Connection, now: datetime) -> None:
        if len(self._runs) >= self._max_live or queue_paused(conn) or self._rng.random() >= self._busy(0.8):
            return
        ready = conn.execute("SELECT queue_id, issue_number, phase_data FROM phase_queue WHERE status = 'ready'"
                             " ORDER BY priority DESC, queue_position LIMIT 1").fetchone()
        if ready is None:
            return
        queue_id, issue, data = ready
        adw_id = new_adw_id(self._rng)
        while (self._ws.agents_dir / adw_id).exists() or conn.execute(
                "SELECT 1 FROM workflow_history WHERE adw_id = ?", (adw_id,)).fetchone():
            adw_id = new_adw_id(self._rng)
        state = new_state(self._ws, self._rng, adw_id, issue, work_item_for(json.loads(data).get("title", "")), now)
        write_state(self._ws, state)
        tree = self._ws.trees_dir / adw_id
        tree.mkdir(parents=True, exist_ok=True)
        (tree / ".ports.env").write_text(f"BACKEND_PORT={state['backend_port']}\n"
                                         f"FRONTEND_PORT={state['frontend_port']}\n", encoding="utf-8")
        with conn:
            insert_row(conn, "workflow_history", history_row(state, "pending", "init", now, None, 0.0, 0, now))
            conn.execute("UPDATE phase_queue SET status = 'running', adw_id = ?, started_timestamp = ?,"
                         " updated_at = ?, current_phase = 'init' WHERE queue_id = ?",
                         (adw_id, utc_iso(now), utc_iso(now), queue_id))
        self._runs[adw_id] = _Run(state, queue_id, -1, now, now)
        self._processes.ensure(state)
        self._webhook.record_success(issue, adw_id, state["workflow_template"])
        log.debug("demo_run_started", adw_id=adw_id, issue=issue, workflow=state["workflow_template"])

    def _tick_webhook(self) -> None:
        roll = self._rng.random()
        if roll < 0.3 and self._runs:  # follow-up deliveries (comments, reviews) on a live run's issue
            state = self._rng.choice(list(self._runs.values())).state
            self._webhook.record_success(int(state["issue_number"]), state["adw_id"], state["workflow_template"])
        elif roll < 0.45:
            self._webhook.record_failure(self._rng.randrange(100, 500), self._rng.choice(_WEBHOOK_ERRORS))

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Keep the workspace bounded: the oldest finished agents, queue rows, history and features go."""
        finished = sorted((self._ws.agents_dir / a for a in self._ws.agent_ids() - set(self._runs)),
                          key=lambda path: path.stat().st_mtime)
        with conn:
            for agent_dir in finished[: max(0, len(self._runs) + len(finished) - self._max_agents)]:
                shutil.rmtree(agent_dir, ignore_errors=True)
                shutil.rmtree(self._ws.trees_dir / agent_dir.name, ignore_errors=True)
                conn.execute("DELETE FROM task_logs WHERE adw_id = ?", (agent_dir.name,))
            agents = sorted(self._ws.agent_ids()) or [""]
            conn.execute(f"DELETE FROM phase_queue WHERE queue_id IN (SELECT queue_id FROM phase_queue WHERE status ="
                         f" 'completed' AND COALESCE(adw_id, '') NOT IN ({', '.join('?' * len(agents))})"
                         f" ORDER BY updated_at DESC LIMIT -1 OFFSET ?)", (*agents, _KEEP["completed_queue_rows"]))
            conn.execute("DELETE FROM workflow_history WHERE id IN (SELECT id FROM workflow_history WHERE status"
                         " IN ('completed', 'failed') ORDER BY start_time DESC LIMIT -1 OFFSET ?)",
                         (_KEEP["history_rows"],))
            conn.execute("DELETE FROM planned_features WHERE id IN (SELECT id FROM planned_features WHERE status"
                         " IN ('completed', 'cancelled') AND item_type != 'session'"
                         " ORDER BY id DESC LIMIT -1 OFFSET ?)", (_KEEP["closed_features"],))

