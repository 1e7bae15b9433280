"""The demo simulator: keeps a demo workspace changing the way a busy ADW system does.

Each `step` walks live runs through their template's phases (`records`), moves queue rows
along, plans and finishes features (`backlog`), keeps a stand-in process per running ADW
and one leftover dev server (`processes`), and records webhook deliveries, so every
channel's source changes within a few one-second ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from monitor.adw import canonical_phase
from monitor.demo.backlog import queue_paused, tick_features, tick_queue
from monitor.demo.processes import StandInProcesses
from monitor.demo.records import Run, begin_phase, end_run, finish_phase, new_state, open_run
from monitor.demo.vocabulary import (
    LAUNCH_SECONDS,
    NON_CRITICAL,
    Workspace,
    new_adw_id,
    phase_script,
    phase_seconds,
    utc_iso,
    work_item_for,
)
from monitor.demo.webhook_service import ApiCatalog, draw_unlaunched_reason

log = structlog.get_logger(__name__)

# What pruning leaves: the history keeps its older runs apart, so its cost windows still span weeks.
_KEEP = {"completed_queue_rows": 15, "history_today": 100, "history_older": 60, "completed_features": 15,
         "cancelled_features": 5}
# Chance that a phase fails when it ends: the non-critical ones are the flaky ones.
_FAIL_CHANCE = {"critical": 0.025, "non_critical": 0.12}
# Per tick: an operator pauses a running run about once in its life, and resumes it within ten seconds or so.
_PAUSE_CHANCE = {"pause": 0.002, "resume": 0.1}
ADOPTED_SECONDS = (5.0, 10.0)  # what is left of an adopted run's phase (or launch) when the demo starts


class Deliveries(Protocol):
    """Where the simulator reports webhook deliveries (`DemoDeliveries` counts them as the real service does)."""

    def record_success(self, issue: int, adw_id: str, workflow: str) -> bool:
        """A delivery that launches the workflow of run `adw_id`; False when it failed and launched nothing."""

    def record_unlaunched(self, issue: int, reason: str) -> None:
        """A delivery that launched nothing for `reason` (a key of `webhook_service.DELIVERY_OUTCOMES`)."""


class Simulator:
    """Drives a demo `Workspace`: one `step` is one tick of ADW activity."""

    def __init__(self, workspace: Workspace, rng: random.Random, webhook: Deliveries, *,
                 api: ApiCatalog | None = None, max_live: int = 6, max_agents: int = 14,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._ws, self._rng, self._webhook, self._api = workspace, rng, webhook, api
        self._clock = clock  # a test steps a simulated day without sleeping through it
        self._max_live, self._max_agents = max_live, max_agents
        self._runs: dict[str, Run] = {}
        self._processes = StandInProcesses(workspace.root)
        self._lock = threading.Lock()  # close() may race a step still running in its worker thread
        self._conn: sqlite3.Connection | None = None
        self._adopted = self._closed = False
        self._ticks = 0

    def live_processes(self) -> dict[str, int]:
        """adw_id -> pid of every child process currently standing in for a running ADW."""
        return self._processes.live()

    def leftover_processes(self) -> dict[str, int]:
        """adw_id -> pid of the dev server a finished run left behind (not an ADW)."""
        dev = self._processes.dev_server()
        return dict([dev]) if dev else {}

    def step(self) -> None:
        """Apply one tick of changes to the workspace (blocking: SQLite and file writes)."""
        with self._lock:
            if self._closed:
                return
            now, conn = self._clock(), self._connection()
            if not self._adopted:
                self._adopt(conn, now)
            for run in list(self._runs.values()):
                self._tick_run(conn, run, now)
            tick_queue(conn, self._rng, self._ws, now, pause_chance=self._busy(0.01, warm_up=0.0))
            self._maybe_start_run(conn, now)
            tick_features(conn, self._rng, now, act_chance=self._busy(0.1))
            self._tick_webhook(conn)
            self._prune(conn, now)
            self._tend_dev_server(conn)
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
        """Pick up the runs the seed (or a previous demo) left pending or running.

        Their phases end a few seconds in (``ADOPTED_SECONDS``), not at the first tick: that
        comes before the console serves, and the Build the seed left about to end would put
        its route in the console's first snapshot, where no one sees it change.
        """
        self._adopted = True
        rows = conn.execute("SELECT adw_id, status FROM workflow_history WHERE status IN ('pending', 'running')"
                            " ORDER BY start_time DESC").fetchall()
        for adw_id, status in rows:
            run = self._resume(conn, adw_id, status)
            if run is not None:
                run.due = now + timedelta(seconds=self._rng.uniform(*ADOPTED_SECONDS))
                self._runs[adw_id] = run
            if len(self._runs) >= self._max_live:
                break

    def _resume(self, conn: sqlite3.Connection, adw_id: str, status: str) -> Run | None:
        """A run rebuilt from its state file and task logs; None when its state file is unreadable."""
        try:
            state = json.loads((self._ws.agents_dir / adw_id / "adw_state.json").read_text(encoding="utf-8"))
            start = datetime.fromisoformat(state["start_time"])
            run = Run(state, None, start, phase_started=start)
            phases = run.phases
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # a run without a readable state file stays mere history
        queue = conn.execute("SELECT queue_id FROM phase_queue WHERE adw_id = ?", (adw_id,)).fetchone()
        run.queue_id = queue and queue[0]
        for name, outcome, cost, tokens, ended in conn.execute(
                "SELECT phase_name, phase_status, cost_usd, tokens_used, completed_at FROM task_logs WHERE adw_id = ?"
                " ORDER BY id", (adw_id,)).fetchall():
            if ended:  # its current phase began as the last one ended
                run.phase_started = datetime.fromisoformat(ended)
            phase = canonical_phase(name)
            if phase in phases:
                run.usage[phase] = (cost or 0.0, tokens or 0)
                if outcome == "completed" or phase in NON_CRITICAL:
                    run.completed.append(phase)
        # a running run stands in the phase after the last one it finished
        run.phase = min(len(run.completed), len(phases) - 1) if status == "running" else -1
        return run

    def _tick_run(self, conn: sqlite3.Connection, run: Run, now: datetime) -> None:
        roll = self._rng.random()
        if run.paused:
            run.paused = roll >= _PAUSE_CHANCE["resume"]
        elif run.phase >= 0 and roll < _PAUSE_CHANCE["pause"]:
            run.paused = True  # an operator stopped it: the worktree stays, so it shows as paused
            self._processes.kill(run.adw_id)
        elif run.due is None or now >= run.due:  # its phase (or its launch) has taken its time
            with conn:  # one transaction per move of a run, as the ADW system commits them
                self._advance(conn, run, now)
        if run.adw_id in self._runs and not run.paused:
            # the orchestrator runs alone until the first phase, then each phase runs its own script
            script = phase_script(run.current) if run.current else run.state["workflow_template"]
            self._processes.ensure(run.adw_id, run.state["issue_number"], script)

    def _advance(self, conn: sqlite3.Connection, run: Run, now: datetime) -> None:
        if run.current is not None:
            phase = run.current
            failed = self._rng.random() < _FAIL_CHANCE["non_critical" if phase in NON_CRITICAL else "critical"]
            goes_on = finish_phase(conn, self._ws, run, self._rng, now, failed)
            if not goes_on:
                self._end_run(conn, run, now, "failed")
                return
            self._publish(run, phase, failed)
            if run.phase == len(run.phases) - 1:
                self._end_run(conn, run, now, "completed")
                return
        phase = begin_phase(conn, self._ws, run, now)
        run.due = now + timedelta(seconds=phase_seconds(self._rng, phase))

    def _publish(self, run: Run, phase: str, failed: bool) -> None:
        """The endpoint goes live on the dev API once built, and loses its preview tag once shipped."""
        if self._api is not None and not failed and phase in ("Build", "Ship"):
            title, issue_class, method, path = work_item_for(run.state["nl_input"])
            self._api.add_route(method, path, title, "preview" if phase == "Build" else issue_class.strip("/"))

    def _end_run(self, conn: sqlite3.Connection, run: Run, now: datetime, status: str) -> None:
        if status == "failed":  # the worktree is kept for a post-mortem; later phases of the feature are blocked
            conn.execute("UPDATE phase_queue SET status = 'blocked', error_message = 'Dependency phase failed',"
                         " ready_timestamp = NULL, updated_at = ? WHERE status IN ('queued', 'ready') AND"
                         " feature_id = (SELECT feature_id FROM phase_queue WHERE queue_id = ?)",
                         (utc_iso(now), run.queue_id))
            built = "Build" in run.phases and run.phase > run.phases.index("Build")
            if self._api is not None and built:  # a failed change is reverted
                self._api.remove_route(*work_item_for(run.state["nl_input"])[2:])
        end_run(conn, self._ws, run, now, status)
        self._processes.kill(run.adw_id)
        del self._runs[run.adw_id]

    def _maybe_start_run(self, conn: sqlite3.Connection, now: datetime) -> None:
        if len(self._runs) >= self._max_live or queue_paused(conn) or self._rng.random() >= self._busy(0.8):
            return
        ready = conn.execute("SELECT queue_id, issue_number, phase_data FROM phase_queue WHERE status = 'ready'"
                             " ORDER BY priority, queue_position LIMIT 1").fetchone()  # the hopper's order
        if ready is None:
            return
        queue_id, issue, data = ready
        if issue is None:  # the hopper opens the phase's GitHub issue before it launches the workflow
            issue = self._next_issue(conn)
            with conn:
                conn.execute("UPDATE phase_queue SET issue_number = ?, updated_at = ? WHERE queue_id = ?",
                             (issue, utc_iso(now), queue_id))
        adw_id = new_adw_id(self._rng)
        while (self._ws.agents_dir / adw_id).exists() or conn.execute(
                "SELECT 1 FROM workflow_history WHERE adw_id = ?", (adw_id,)).fetchone():
            adw_id = new_adw_id(self._rng)
        title = json.loads(data or "{}").get("title", "")  # the run's title is its phase's: one issue, one title
        state = new_state(self._ws, self._rng, adw_id, issue, work_item_for(title), now, title or None)
        if not self._webhook.record_success(issue, adw_id, state["workflow_template"]):
            return  # the delivery failed (a GitHub outage): nothing launched, the phase stays ready
        with conn:
            run = open_run(conn, self._ws, state, queue_id)
            run.due = now + timedelta(seconds=self._rng.uniform(*LAUNCH_SECONDS))
            conn.execute("UPDATE phase_queue SET status = 'running', adw_id = ?, issue_number = ?,"
                         " started_timestamp = ?, updated_at = ?, current_phase = 'init' WHERE queue_id = ?",
                         (adw_id, issue, utc_iso(now), utc_iso(now), queue_id))
        self._runs[adw_id] = run
        self._processes.ensure(adw_id, run.state["issue_number"], run.state["workflow_template"])
        log.debug("demo_run_started", adw_id=adw_id, issue=issue, workflow=run.state["workflow_template"])

    @staticmethod
    def _next_issue(conn: sqlite3.Connection) -> int:
        newest: int = conn.execute("SELECT MAX(n) FROM (SELECT MAX(issue_number) AS n FROM phase_queue"
                                   " UNION ALL SELECT MAX(issue_number) FROM workflow_history)").fetchone()[0]
        return 1 + newest

    def _tick_webhook(self, conn: sqlite3.Connection) -> None:
        roll = self._rng.random()
        if roll < 0.3 and self._runs:  # follow-up deliveries (comments, reviews) on a live run's issue
            state = self._rng.choice(list(self._runs.values())).state
            self._webhook.record_success(int(state["issue_number"]), state["adw_id"], state["workflow_template"])
        elif roll < 0.45:  # on an issue the other panels show, so a listed failure can be looked up
            issues = [row[0] for row in conn.execute("SELECT issue_number FROM workflow_history UNION SELECT"
                                                     " issue_number FROM phase_queue WHERE issue_number IS NOT NULL"
                                                     " ORDER BY 1")]
            if issues:
                self._webhook.record_unlaunched(self._rng.choice(issues), draw_unlaunched_reason(self._rng))

    def _tend_dev_server(self, conn: sqlite3.Connection) -> None:
        """Keep one dev server left behind by the latest finished run that is still on disk."""
        agents = self._ws.agent_ids()
        dev = self._processes.dev_server()
        if dev is not None and dev[0] in agents:
            return
        finished = conn.execute("SELECT adw_id FROM workflow_history WHERE status IN ('completed', 'failed')"
                                " ORDER BY end_time DESC").fetchall()
        adw_id = next((row[0] for row in finished if row[0] in agents and row[0] not in self._runs), None)
        if adw_id is None:
            self._processes.stop_dev_server()
        else:
            self._processes.start_dev_server(adw_id)

    def _prune(self, conn: sqlite3.Connection, now: datetime) -> None:
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
            for since_yesterday, keep in ((True, _KEEP["history_today"]), (False, _KEEP["history_older"])):
                conn.execute("DELETE FROM workflow_history WHERE id IN (SELECT id FROM workflow_history WHERE status"
                             " IN ('completed', 'failed') AND (start_time >= ?) = ? ORDER BY start_time DESC"
                             " LIMIT -1 OFFSET ?)", (utc_iso(now - timedelta(days=1)), since_yesterday, keep))
            for status in ("completed", "cancelled"):
                conn.execute("DELETE FROM planned_features WHERE id IN (SELECT id FROM planned_features WHERE"
                             " status = ? AND item_type != 'session' ORDER BY id DESC LIMIT -1 OFFSET ?)",
                             (status, _KEEP[f"{status}_features"]))
