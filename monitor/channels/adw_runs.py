"""One ADW run's adw-monitor item, from everything the sources say about it.

Sources disagree and are often silent; the rules (DESIGN §4): a run is completed or
failed when any source says so (phase_queue, workflow_history, an older state file, in
that order), else running while an ADW process carries its id, else paused while its
worktree exists, else queued. Phases come from task_logs and the ADWs' phase tracker
(``completed_phases.json``), compared case-insensitively; the phases a template does not
run are skipped, never pending.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.adw import FINAL_RUN_STATUSES, PHASES, canonical_phase, in_order, template_phases
from monitor.channels.base import finite_number
from monitor.sources.errorlog import clip_tail

TITLE_CHARS = 100
# Which of a phase's task_logs statuses stands when rows carry no id to order them by.
_STATUS_WEIGHT = {"completed": 3, "failed": 2, "skipped": 1, "started": 0}


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """What task_logs say about one run: each phase's latest status, and the cost reported."""

    phase_status: Mapping[str, str] = field(default_factory=dict)
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class RunSources:
    """Everything known about one run."""

    state: Mapping[str, Any]
    queue_row: Mapping[str, Any] = field(default_factory=dict)
    history_row: Mapping[str, Any] = field(default_factory=dict)
    tasks: TaskProgress = TaskProgress()
    tracker: Mapping[str, Any] = field(default_factory=dict)  # completed_phases.json
    error_log: str = ""  # the last entry of error.log
    live: bool = False
    has_worktree: bool = False


def task_progress(rows: list[dict[str, Any]]) -> dict[str, TaskProgress]:
    """Each run's phase statuses and cost from task_logs rows (grouped or raw)."""
    latest: dict[str, dict[str, tuple[Any, str]]] = {}
    costs: dict[str, list[float]] = {}
    for row in rows:
        adw_id, phase, status = row.get("adw_id"), canonical_phase(row.get("phase_name")), row.get("phase_status")
        if not adw_id:
            continue
        adw_id = str(adw_id)
        runs_costs = costs.setdefault(adw_id, [])
        if finite_number(row.get("cost_usd")):
            runs_costs.append(float(row["cost_usd"]))
        if phase is None or status not in _STATUS_WEIGHT:
            continue
        order = (row.get("last_id", row.get("id")) or 0, _STATUS_WEIGHT[status])
        phases = latest.setdefault(adw_id, {})
        if phase not in phases or order > phases[phase][0]:
            phases[phase] = (order, str(status))
    return {adw_id: TaskProgress({p: s for p, (_, s) in latest.get(adw_id, {}).items()},
                                 round(math.fsum(c), 4) if c else None)
            for adw_id, c in costs.items()}


def run_status(run: RunSources) -> str:
    """completed/failed when a source says so; else running, paused or queued."""
    for said in (run.queue_row.get("status"), run.history_row.get("status"), run.state.get("status")):
        if isinstance(said, str) and said.strip().lower() in FINAL_RUN_STATUSES:
            return said.strip().lower()
    if run.live:
        return "running"
    return "paused" if run.has_worktree else "queued"


def _said_phase(run: RunSources) -> str | None:
    """The phase a source names as current ('init', 'Completed' and unknown names name none)."""
    tracker_current = run.tracker.get("current") if isinstance(run.tracker, Mapping) else None
    for candidate in (run.queue_row.get("current_phase"), run.history_row.get("current_phase"),
                      run.state.get("current_phase"), tracker_current):
        phase = canonical_phase(candidate)
        if phase is not None:
            return phase
    return None


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A run's phases: those of its template, and where it stands in them."""

    phases: tuple[str, ...]
    completed: list[str]
    skipped: list[str]
    current: str | None
    failed: str | None


def pipeline(run: RunSources, status: str) -> Pipeline:
    """Completed, skipped, current and failed phase of a run with ``status``."""
    template = run.state.get("workflow_template") or run.history_row.get("workflow_template")
    phases = template_phases(template)
    logged = run.tasks.phase_status
    tracked = run.tracker.get("completed") if isinstance(run.tracker, Mapping) else None
    skipped = in_order([p for p in PHASES if p not in phases] + [p for p, s in logged.items() if s == "skipped"])
    failed = next((p for p in reversed(PHASES) if logged.get(p) == "failed"), None)
    done = {p for p, s in logged.items() if s == "completed"}
    if isinstance(tracked, list):
        done.update(p for p in map(canonical_phase, tracked) if p is not None)
    current = _said_phase(run)
    if status == "completed":
        done.update(p for p in phases if p not in skipped)
    elif status == "failed":
        failed = failed or current
    elif current is None and status == "running":
        current = next((p for p in phases if p not in done and p not in skipped), None)
    if failed in done:
        failed = None  # a non-critical phase that failed and was then passed over (or retried and done)
    return Pipeline(phases, in_order(done - set(skipped)), skipped, current, failed)


def phase_progress(status: str, line: Pipeline) -> float:
    """Percent of the template's phases completed, plus half of the current one (0–100, 1 decimal)."""
    if status == "completed":
        return 100.0
    if not line.phases:
        return 0.0
    done = [p for p in line.completed if p in line.phases]
    half = 0.5 if line.current in line.phases and line.current not in done and line.current != line.failed else 0.0
    return min(100.0, round(100.0 * (len(done) + half) / len(line.phases), 1))


def errors(run: RunSources) -> tuple[int, str | None]:
    """(error_count, last_error): the state file's when it has them, else from error.log."""
    count, last = run.state.get("error_count"), run.state.get("last_error")
    if not (isinstance(count, int) and not isinstance(count, bool) and count >= 0):
        count = 1 if run.error_log else 0
    if not (isinstance(last, str) and last.strip()):
        last = run.error_log or None
    else:
        last = clip_tail(last)
    return count, last
