"""The adw-monitor channel: one item per ADW run (agent state file) with its live status.

A run's item joins its state file with what the database says about it (its phase_queue
row, its workflow_history row, its task_logs), its error.log, its worktree, and whether a
live process carries its adw_id.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, cast

from monitor.adw import RUN_STATUSES
from monitor.channels.adw_runs import (
    TITLE_CHARS,
    RunSources,
    TaskProgress,
    errors,
    phase_progress,
    pipeline,
    run_status,
    task_progress,
)
from monitor.channels.base import ChannelData, channel_queries, finite_number, parse_time
from monitor.channels.dbreader import QueryCache
from monitor.channels.spec import AGENTS, DATABASE, TREES, ChannelSpec
from monitor.sources.agentfiles import ERROR_FIELD
from monitor.sources.database import Database, Rows
from monitor.sources.processes import ProcessScanner
from monitor.sources.resources import Sources
from monitor.sources.schema import Query
from monitor.sources.statefiles import StateFiles, StateView, state_files

# Each query is optional: an installation without the table (or its key columns) still
# shows its runs from the state files. The history and task-log queries read only the runs
# shown ({@keys}: the state files' adw_ids), through the tables' adw_id indexes, so their
# cost follows the runs shown, not the tables' size.
DEFAULT_QUERIES = MappingProxyType({
    "adw_monitor_phase_queue": Query(
        "phase_queue",
        "SELECT adw_id, status, {current_phase} AS current_phase, {pr_number:integer} AS pr_number,"
        " {updated_at} AS updated_at FROM phase_queue WHERE adw_id IS NOT NULL",
        required=("adw_id", "status"), optional=True),
    "adw_monitor_workflow_history": Query(
        "workflow_history",
        "SELECT adw_id, status, {current_phase} AS current_phase, {nl_input} AS nl_input,"
        " {workflow_template} AS workflow_template, {start_time} AS start_time, {end_time} AS end_time,"
        " {duration_seconds:real} AS duration_seconds, {actual_cost_total:real} AS actual_cost_total"
        " FROM workflow_history WHERE adw_id IN {@keys}",
        required=("adw_id", "status"), optional=True),
    # One row per (run, phase, status): the database groups, so the rows stay few; the
    # highest id tells which status of a phase came last.
    "adw_monitor_task_logs": Query(
        "task_logs",
        "SELECT adw_id, phase_name, phase_status, MAX({id:integer}) AS last_id, SUM({cost_usd:real}) AS cost_usd"
        " FROM task_logs WHERE adw_id IN {@keys} GROUP BY adw_id, phase_name, phase_status",
        required=("adw_id", "phase_name", "phase_status"), optional=True),
})
T = TypeVar("T")
STATE_FIELDS = ("issue_number", "workflow_template", "issue_class", "estimated_cost_total", "model_set",
                "model_used", "branch_name", "github_url", "start_time", "end_time", "worktree_path", ERROR_FIELD)
HISTORY_FIELDS = ("workflow_template", "start_time", "end_time", "duration_seconds")


def latest_rows(rows: Rows) -> dict[str, dict[str, Any]]:
    """The most recently updated row of each adw_id (rows without an adw_id are skipped)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: str(r.get("updated_at") or "")):
        if row.get("adw_id"):
            latest[str(row["adw_id"])] = row
    return latest


def _seconds_between(start: Any, end: Any) -> float | None:
    began, ended = parse_time(start), parse_time(end)  # naive times are UTC, as in workflow-history
    if began is None or ended is None or ended < began:
        return None
    return round((ended - began).total_seconds(), 1)


def _known(*values: Any) -> Any:
    return next((value for value in values if value is not None and value != ""), None)


def over_estimate(cost: Any, estimate: Any) -> bool | None:
    """Whether a run has cost more than its estimate; None when either is unknown (or the estimate is 0)."""
    if not (finite_number(cost) and finite_number(estimate)) or estimate <= 0:
        return None
    return bool(cost > estimate)


def _cost(run: RunSources) -> float | None:
    """What the run has cost so far: its task logs' costs, else its history row's (0.0 = none yet)."""
    for cost in (run.tasks.cost, run.history_row.get("actual_cost_total")):
        if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost > 0:
            return round(float(cost), 4)
    return None


def adw_item(adw_id: str, run: RunSources) -> dict[str, Any]:
    """One run's item (DESIGN §4: status, title, phases, cost, errors, process, timing)."""
    status = run_status(run)
    line = pipeline(run, status)
    error_count, last_error = errors(run)
    item: dict[str, Any] = {name: run.state[name] for name in STATE_FIELDS if run.state.get(name) is not None}
    for name in HISTORY_FIELDS:
        item.setdefault(name, run.history_row.get(name))
    title = _known(run.state.get("nl_input"), run.history_row.get("nl_input"))
    end = item.get("end_time")
    item.update(
        adw_id=adw_id, status=status, title=str(title)[:TITLE_CHARS] if title is not None else None,
        current_phase=line.current, phase_progress=phase_progress(status, line),
        phases_completed=line.completed, phases_skipped=line.skipped, failed_phase=line.failed,
        total_phases=len(line.phases), current_cost=_cost(run), error_count=error_count, last_error=last_error,
        cost_over_estimate=over_estimate(_cost(run), item.get("estimated_cost_total")),
        is_process_active=run.live, pr_number=run.queue_row.get("pr_number"),
        duration_seconds=_known(item.get("duration_seconds"),
                                _seconds_between(item.get("start_time"), end) if end is not None else None))
    return {name: value for name, value in item.items() if value is not None}


class RunItems:
    """Each run's last item with the sources it was built from: a run whose sources are equal is not rebuilt."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[RunSources, dict[str, Any]]] = {}
        self._derived: dict[str, tuple[Rows, Any]] = {}

    def derived(self, rows: Mapping[str, Rows], query: str, derive: Callable[[Rows], T]) -> T:
        """``derive`` of a query's rows, reused while they are the same list (its table did not move)."""
        found = rows.get(query, [])
        last = self._derived.get(query)
        if last is not None and last[0] is found:
            return cast(T, last[1])
        result = derive(found)
        self._derived[query] = (found, result)
        return result

    def item(self, adw_id: str, run: RunSources) -> dict[str, Any]:
        """``adw_item(adw_id, run)``, reused while ``run`` is unchanged."""
        last = self._built.get(adw_id)
        if last is not None and last[0] == run:
            return last[1]
        item = adw_item(adw_id, run)
        self._built[adw_id] = (run, item)
        return item

    def keep_only(self, adw_ids: Collection[str]) -> None:
        """Forget the runs no longer shown."""
        for gone in self._built.keys() - set(adw_ids):
            del self._built[gone]


def build_adw_monitor(view: StateView, live: Collection[str], rows: Mapping[str, Rows],
                      items_of: RunItems | None = None) -> ChannelData:
    """Summary and items of adw-monitor from a state-file scan, live run ids and query rows."""
    made = items_of or RunItems()
    queue = made.derived(rows, "adw_monitor_phase_queue", latest_rows)
    history = made.derived(rows, "adw_monitor_workflow_history", latest_rows)
    tasks = made.derived(rows, "adw_monitor_task_logs", task_progress)
    items = {}
    for adw_id, state in view.states.items():
        run = RunSources(state, queue.get(adw_id, {}), history.get(adw_id, {}), tasks.get(adw_id, TaskProgress()),
                         view.phases.get(adw_id, {}), view.errors.get(adw_id, ""), adw_id in live,
                         adw_id in view.trees)
        items[adw_id] = made.item(adw_id, run)
    made.keep_only(items)
    summary = {"total": len(items), **{status: 0 for status in RUN_STATUSES}}
    for item in items.values():
        summary[item["status"]] += 1
    return ChannelData(summary, items)


class AdwMonitorReader:
    """Reads adw-monitor's sources; returns None while none of them moved.

    The change signature is (state-file generation, live run ids) plus the tokens of the
    three tables (``QueryCache``): an unchanged system costs a directory scan, a /proc
    scan and one cheap database check, and a commit to other tables costs no read.
    """

    def __init__(self, files: StateFiles, processes: ProcessScanner, db: Database,
                 queries: Mapping[str, Query]) -> None:
        self.files = files
        self.processes = processes
        self.cache = QueryCache(db, queries)
        self._items = RunItems()
        self._signature: tuple[int, frozenset[str]] | None = None

    @property
    def db(self) -> Database:
        """The database read."""
        return self.cache.db

    async def read(self) -> ChannelData | None:
        """Fresh data, or None when files, processes and tables are all unchanged."""
        last, self._signature = self._signature, None  # forgotten unless this read succeeds
        await self.files.scan()
        generation, view = self.files.generation, self.files.view
        live = await self.processes.live_adw_ids(view.states.keys())
        moved = await self.cache.refresh(sorted(view.states))
        signature = (generation, live)
        if not moved and signature == last:
            self._signature = signature
            return None
        data = build_adw_monitor(view, live, self.cache.rows, self._items)
        self._signature = signature
        return data


def make_reader(sources: Sources) -> AdwMonitorReader:
    """The adw-monitor reader: state files, /proc and the shared database ([queries] overridable)."""
    queries = channel_queries(sources.settings, SPEC.queries)
    return AdwMonitorReader(state_files(sources), ProcessScanner(), sources.database, queries)


SPEC = ChannelSpec(name="adw-monitor", title="ADW runs", make_reader=make_reader, queries=DEFAULT_QUERIES,
                   watches=frozenset({AGENTS, TREES, DATABASE}))
