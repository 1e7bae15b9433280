"""The adw-monitor channel: one item per ADW run (agent state file) with its live status.

A run's item joins its state file with what the database says about it (its phase_queue
row, its workflow_history row, its task_logs), its error.log, its worktree, and whether a
live process carries its adw_id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.channels.base import ChannelData
from monitor.demo.schema import ADW_PHASES
from monitor.sources.database import Database, Rows
from monitor.sources.processes import ProcessScanner
from monitor.sources.statefiles import ERROR_FIELD, StateFiles, StateView

DEFAULT_QUERIES = {
    "adw_monitor_phase_queue":
        "SELECT adw_id, status, current_phase, updated_at FROM phase_queue WHERE adw_id IS NOT NULL",
    "adw_monitor_workflow_history": "SELECT adw_id, status, current_phase FROM workflow_history",
    # One row per (run, phase): the database does the grouping, so the rows stay few.
    "adw_monitor_task_logs":
        "SELECT adw_id, phase_name, MAX(CASE WHEN phase_status = 'completed' THEN 1 ELSE 0 END) AS completed,"
        " SUM(cost_usd) AS cost_usd FROM task_logs GROUP BY adw_id, phase_name",
}
STATE_FIELDS = ("issue_number", "workflow_template", "issue_class", "estimated_cost_total",
                "branch_name", "github_url", "start_time", ERROR_FIELD)
RUN_STATUSES = ("running", "completed", "failed", "paused", "queued")
FINAL_STATUSES = ("completed", "failed")
INITIAL_PHASE = "init"  # phase_queue's default: the run has not entered a phase yet


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """What task_logs say about one run."""

    completed: frozenset[str] = frozenset()
    cost: float = 0.0
    furthest_phase: str | None = None


def latest_rows(rows: Rows) -> dict[str, dict[str, Any]]:
    """The most recently updated row of each adw_id (rows without an adw_id are skipped)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: str(r.get("updated_at") or "")):
        if row.get("adw_id"):
            latest[str(row["adw_id"])] = row
    return latest


def task_progress(rows: Rows) -> dict[str, TaskProgress]:
    """Completed phases, total cost and furthest logged phase of each run.

    Takes the default query's grouped rows (a ``completed`` flag) or raw task_logs rows
    (``phase_status``), so a plain ``SELECT * FROM task_logs`` override works too.
    """
    completed: dict[str, set[str]] = defaultdict(set)
    logged: dict[str, set[str]] = defaultdict(set)
    cost: dict[str, float] = defaultdict(float)
    for row in rows:
        adw_id, phase = row.get("adw_id"), row.get("phase_name")
        if not adw_id:
            continue
        adw_id = str(adw_id)
        cost[adw_id] += float(row.get("cost_usd") or 0.0)
        if phase:
            logged[adw_id].add(str(phase))
            if row.get("completed") or row.get("phase_status") == "completed":
                completed[adw_id].add(str(phase))
    return {adw_id: TaskProgress(frozenset(completed[adw_id]), round(cost[adw_id], 4), _furthest(logged[adw_id]))
            for adw_id in cost}


def _furthest(phases: Collection[str]) -> str | None:
    known = [phase for phase in phases if phase in ADW_PHASES]
    return max(known, key=ADW_PHASES.index) if known else None


def run_status(said: Collection[Any], live: bool, has_worktree: bool) -> str:
    """completed/failed when a source ``said`` so (first one wins); else running, paused or queued."""
    for status in said:
        if status in FINAL_STATUSES:
            return str(status)
    if live:
        return "running"
    return "paused" if has_worktree else "queued"


def current_phase(candidates: Collection[Any]) -> str:
    """The first candidate that names a phase past ``init``; ``init`` when none does."""
    for phase in candidates:
        if phase and phase != INITIAL_PHASE:
            return str(phase)
    return INITIAL_PHASE


def phase_progress(status: str, completed: Collection[str], phase: str) -> float:
    """Progress through the nine ADW phases as a percentage (0–100, 1 decimal).

    Completed phases count one each and the current phase, while not completed, half;
    a completed run is at 100 even when its template skipped phases.
    """
    if status == "completed":
        return 100.0
    units = len(completed) + (0.5 if phase in ADW_PHASES and phase not in completed else 0.0)
    return min(100.0, round(100.0 * units / len(ADW_PHASES), 1))


def adw_item(adw_id: str, view: StateView, live: Collection[str], queue_row: Mapping[str, Any],
             history_row: Mapping[str, Any], tasks: TaskProgress) -> dict[str, Any]:
    """One run's item from its state-file scan, live run ids and its database rows."""
    state, is_live = view.states[adw_id], adw_id in live
    said = (queue_row.get("status"), history_row.get("status"), state.get("status"))
    status = run_status(said, is_live, adw_id in view.trees)
    phase = current_phase((queue_row.get("current_phase"), history_row.get("current_phase"),
                           state.get("current_phase"), tasks.furthest_phase))
    item = {name: state[name] for name in STATE_FIELDS if state.get(name) is not None}
    item.update(adw_id=adw_id, status=status, current_phase=phase,
                phase_progress=phase_progress(status, tasks.completed, phase),
                phases_completed=len(tasks.completed), current_cost=tasks.cost,
                error_count=view.error_counts.get(adw_id, 0), is_process_active=is_live)
    return item


def build_adw_monitor(view: StateView, live: Collection[str], rows: Mapping[str, Rows]) -> ChannelData:
    """Summary and items of adw-monitor from a state-file scan, live run ids and query rows."""
    queue = latest_rows(rows.get("adw_monitor_phase_queue", []))
    history = latest_rows(rows.get("adw_monitor_workflow_history", []))
    tasks = task_progress(rows.get("adw_monitor_task_logs", []))
    items = {adw_id: adw_item(adw_id, view, live, queue.get(adw_id, {}), history.get(adw_id, {}),
                              tasks.get(adw_id, TaskProgress()))
             for adw_id in view.states}
    summary = {"total": len(items), **{status: 0 for status in RUN_STATUSES}}
    for item in items.values():
        summary[item["status"]] += 1
    return ChannelData(summary, items)


class AdwMonitorReader:
    """Reads adw-monitor's sources; returns None while none of them moved.

    The change signature is (state-file generation, live run ids, database change token):
    an unchanged system costs a directory scan, a /proc scan and one cheap database check.
    """

    def __init__(self, files: StateFiles, processes: ProcessScanner, db: Database, queries: Mapping[str, str]) -> None:
        self.files = files
        self.processes = processes
        self.db = db
        self.queries = dict(queries)
        self._signature: tuple | None = None

    async def read(self) -> ChannelData | None:
        """Fresh data, or None when files, processes and database are all unchanged."""
        last, self._signature = self._signature, None  # forgotten unless this read succeeds
        await self.files.scan()
        generation, view = self.files.generation, self.files.view
        live = await self.processes.live_adw_ids(view.states.keys())
        token = await self.db.change_token()
        signature = (generation, live, token)
        if token is not None and signature == last:
            self._signature = signature
            return None
        data = build_adw_monitor(view, live, await self.db.fetch_many(self.queries))
        self._signature = signature
        return data

    async def close(self) -> None:
        """Nothing of its own to release: the database is shared and scans keep nothing open."""


def make_reader(sources) -> AdwMonitorReader:
    """The adw-monitor reader: state files, /proc and the shared database ([queries] overridable)."""
    queries = {name: sources.settings.query(name, sql) for name, sql in DEFAULT_QUERIES.items()}
    paths = sources.settings.sources
    return AdwMonitorReader(StateFiles(paths.agents_dir, paths.trees_dir), ProcessScanner(), sources.database, queries)
