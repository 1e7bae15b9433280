"""The demo simulator: keeps a demo workspace changing the way a busy ADW system does.

Each `step` advances live runs through the nine phases, moves queue rows along, plans and
finishes features and records webhook deliveries, so every channel's source changes
within a few one-second ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

import structlog

from monitor.demo.schema import ADW_PHASES
from monitor.demo.webhook_service import ApiCatalog, WebhookStats
from monitor.demo.workspace import (
    FAILURES, PHASE_SCRIPTS, WORK_ITEMS, Workspace, append_error, feature_row, history_row, insert_row,
    insert_task_log, new_adw_id, new_state, phase_actuals, queue_row, slug, utc_iso, write_state,
)

log = structlog.get_logger(__name__)

# Stands in for an ADW orchestrator: its command line carries the adw_id, and it exits by
# itself once its parent is gone, so even a killed demo leaves no stray processes behind.
_CHILD_CODE = "import os, time\nparent = os.getppid()\nwhile os.getppid() == parent:\n    time.sleep(1)\n"
_WARNINGS = ("claude CLI timed out after 600s, retrying (1/3)", "GitHub API rate limited, sleeping 30s",
             "git push rejected (non-fast-forward), rebasing onto origin/main",
             "port in use, picked the next free backend port")
_WEBHOOK_ERRORS = ("Invalid webhook signature", "Issue is closed", "No ADW command in comment",
                   "GitHub API returned 502", "Duplicate delivery ignored")
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
_KEEP = {"completed_queue_rows": 15, "open_queue_rows": 28, "history_rows": 100, "features": 36, "closed_features": 20}


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
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()  # close() may race a step still running in its worker thread
        self._conn: sqlite3.Connection | None = None
        self._adopted = self._closed = False
        self._ticks = 0

    def live_processes(self) -> dict[str, int]:
        """adw_id -> pid of every child process currently standing in for a running ADW."""
        return {adw_id: proc.pid for adw_id, proc in self._procs.items() if proc.poll() is None}

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
            self._tick_queue(conn, now)
            self._maybe_start_run(conn, now)
            self._tick_features(conn, now)
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
            for adw_id in list(self._procs):
                self._kill(adw_id)
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
            self._kill(adw_id)
        elif roll < 0.58:
            self._advance(conn, run, now)
        if adw_id in self._runs and not run.paused:
            self._ensure_process(run)

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
            title, issue_class, method, path = _work_item(state["nl_input"])
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
                self._api.remove_route(*_work_item(run.state["nl_input"])[2:])
        self._save_progress(conn, run, now, "failed" if failed else "completed")
        self._kill(adw_id)
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
        if len(self._runs) >= self._max_live or _queue_paused(conn) or self._rng.random() >= self._busy(0.8):
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
        state = new_state(self._ws, self._rng, adw_id, issue, _work_item(json.loads(data).get("title", "")), now)
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
        self._ensure_process(self._runs[adw_id])
        self._webhook.record_success(issue, adw_id, state["workflow_template"])
        log.debug("demo_run_started", adw_id=adw_id, issue=issue, workflow=state["workflow_template"])

    def _ensure_process(self, run: _Run) -> None:
        adw_id = run.state["adw_id"]
        proc = self._procs.get(adw_id)
        if proc is not None and proc.poll() is None:
            return
        argv = [sys.executable, "-c", _CHILD_CODE, f"{run.state['workflow_template']}.py",
                run.state["issue_number"], adw_id]
        self._procs[adw_id] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)

    def _kill(self, adw_id: str) -> None:
        proc = self._procs.pop(adw_id, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    def _tick_queue(self, conn: sqlite3.Connection, now: datetime) -> None:
        rng, stamp = self._rng, utc_iso(now)
        with conn:
            if rng.random() < 0.5:
                conn.execute(_PROMOTE_NEXT_QUEUED, {"now": stamp})
            if rng.random() < 0.2:
                self._retry_failed(conn, stamp)
            paused = _queue_paused(conn)
            if rng.random() < (0.25 if paused else self._busy(0.01, warm_up=0.0)):
                conn.execute("UPDATE queue_config SET config_value = ?, updated_at = ?"
                             " WHERE config_key = 'queue_paused'", ("false" if paused else "true", stamp))
        open_rows = conn.execute("SELECT COUNT(*) FROM phase_queue WHERE status != 'completed'").fetchone()[0]
        if open_rows < _KEEP["open_queue_rows"] and rng.random() < 0.3:
            feature_id, issue, position = conn.execute(
                "SELECT COALESCE(MAX(feature_id), 0) + 1, COALESCE(MAX(issue_number), 0),"
                " COALESCE(MAX(queue_position), 0) FROM phase_queue").fetchone()
            title = rng.choice(WORK_ITEMS)[0]
            with conn:
                for n in range(1, rng.randint(1, 3) + 1):
                    insert_row(conn, "phase_queue", queue_row(rng, now, (feature_id, n, issue + n, title), "queued",
                                                              position + n, fresh=True))

    def _retry_failed(self, conn: sqlite3.Connection, stamp: str) -> None:
        """Requeue a failed phase whose run's agent dir is gone, and unblock its feature."""
        agents = _agent_ids(self._ws)  # a run still on disk keeps its failed row, which carries its status
        for queue_id, feature_id, adw_id in conn.execute(
                "SELECT queue_id, feature_id, adw_id FROM phase_queue WHERE status = 'failed' ORDER BY updated_at"
        ).fetchall():
            if adw_id not in agents:
                conn.execute("UPDATE phase_queue SET status = 'queued', error_message = NULL, adw_id = NULL,"
                             " updated_at = ? WHERE queue_id = ?", (stamp, queue_id))
                conn.execute("UPDATE phase_queue SET status = 'queued', error_message = NULL, updated_at = ?"
                             " WHERE feature_id = ? AND status = 'blocked'", (stamp, feature_id))
                return

    def _tick_features(self, conn: sqlite3.Connection, now: datetime) -> None:
        rng = self._rng
        if rng.random() >= self._busy(0.7):
            return
        counts = dict(conn.execute("SELECT status, COUNT(*) FROM planned_features WHERE item_type != 'session'"
                                   " GROUP BY status").fetchall())
        can_add = sum(counts.values()) < _KEEP["features"]
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

    def _tick_webhook(self) -> None:
        roll = self._rng.random()
        if roll < 0.3 and self._runs:  # follow-up deliveries (comments, reviews) on a live run's issue
            state = self._rng.choice(list(self._runs.values())).state
            self._webhook.record_success(int(state["issue_number"]), state["adw_id"], state["workflow_template"])
        elif roll < 0.45:
            self._webhook.record_failure(self._rng.randrange(100, 500), self._rng.choice(_WEBHOOK_ERRORS))

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Keep the workspace bounded: the oldest finished agents, queue rows, history and features go."""
        finished = sorted((self._ws.agents_dir / a for a in _agent_ids(self._ws) - set(self._runs)),
                          key=lambda path: path.stat().st_mtime)
        with conn:
            for agent_dir in finished[: max(0, len(self._runs) + len(finished) - self._max_agents)]:
                shutil.rmtree(agent_dir, ignore_errors=True)
                shutil.rmtree(self._ws.trees_dir / agent_dir.name, ignore_errors=True)
                conn.execute("DELETE FROM task_logs WHERE adw_id = ?", (agent_dir.name,))
            agents = sorted(_agent_ids(self._ws)) or [""]
            conn.execute(f"DELETE FROM phase_queue WHERE queue_id IN (SELECT queue_id FROM phase_queue WHERE status ="
                         f" 'completed' AND COALESCE(adw_id, '') NOT IN ({', '.join('?' * len(agents))})"
                         f" ORDER BY updated_at DESC LIMIT -1 OFFSET ?)", (*agents, _KEEP["completed_queue_rows"]))
            conn.execute("DELETE FROM workflow_history WHERE id IN (SELECT id FROM workflow_history WHERE status"
                         " IN ('completed', 'failed') ORDER BY start_time DESC LIMIT -1 OFFSET ?)",
                         (_KEEP["history_rows"],))
            conn.execute("DELETE FROM planned_features WHERE id IN (SELECT id FROM planned_features WHERE status"
                         " IN ('completed', 'cancelled') AND item_type != 'session'"
                         " ORDER BY id DESC LIMIT -1 OFFSET ?)", (_KEEP["closed_features"],))


def _agent_ids(ws: Workspace) -> set[str]:
    return {path.name for path in ws.agents_dir.iterdir() if path.is_dir()}


def _queue_paused(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT config_value FROM queue_config WHERE config_key = 'queue_paused'").fetchone()
    return row is not None and row[0] == "true"


def _work_item(text: str) -> tuple[str, str, str, str]:
    """The work item a queue title or nl_input talks about (a stable fallback otherwise)."""
    return next((item for item in WORK_ITEMS if text.startswith(item[0])), WORK_ITEMS[len(text) % len(WORK_ITEMS)])
