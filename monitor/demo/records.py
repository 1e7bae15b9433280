"""The demo's ADW runs: state files, phase trackers, task logs, error.log entries and run records.

Both the seeding (`workspace`) and the live simulation (`simulator`) walk runs through
their phases with the functions here (which leave committing to their caller), so seeded
and live runs write the same formats as the real ADWs: Title-case phases in task_logs,
phase_queue and completed_phases.json, state files in the current format (some in the
older one with status and current_phase), and an error.log entry when a phase fails.
The phase facts come from `monitor.adw`; the shared vocabulary (work items, failures, the
workspace layout) from `vocabulary`.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.adw import FINAL_RUN_STATUSES, PHASES, template_phases
from monitor.demo.vocabulary import (
    FAILURES,
    NON_CRITICAL,
    WorkItem,
    Workspace,
    insert_row,
    phase_actuals,
    phase_script,
    seconds_between,
    slug,
    utc_iso,
)

# How often each workflow template runs: mostly the recommended complete SDLC.
TEMPLATE_WEIGHTS = {"adw_sdlc_complete_iso": 12, "adw_sdlc_from_build_iso": 3, "adw_sdlc_complete_zte_iso": 2,
                    "adw_plan_build_iso": 2, "adw_lightweight_iso": 2}
MODELS = {"base": "sonnet", "heavy": "opus", "lightweight": "haiku"}  # model_set -> model_used
# Only these orchestrators keep agents/<adw_id>/completed_phases.json (the PhaseTracker).
TRACKED_TEMPLATES = frozenset({"adw_sdlc_complete_iso", "adw_sdlc_from_build_iso"})
OLD_FORMAT_SHARE = 0.3  # state files written before status/current_phase left the format
_PHASE_COST = {"Plan": 0.45, "Validate": 0.15, "Build": 0.9, "Lint": 0.1, "Test": 0.6,
               "Review": 0.5, "Document": 0.25, "Ship": 0.1, "Cleanup": 0.05, "Verify": 0.2}
REPO_URL = "https://github.com/acme/storefront"


def new_state(ws: Workspace, rng: random.Random, adw_id: str, issue: int, item: WorkItem,
              start: datetime, title: str | None = None) -> dict[str, Any]:
    """A fresh adw_state.json record for a run on work `item` (a queued phase of it: `title`) from `start`."""
    title, issue_class = title or item[0], item[1]
    template = rng.choices(list(TEMPLATE_WEIGHTS), weights=list(TEMPLATE_WEIGHTS.values()))[0]
    model_set = "lightweight" if template == "adw_lightweight_iso" else "heavy" if rng.random() < 0.25 else "base"
    factor = {"heavy": 2.5, "lightweight": 0.4}.get(model_set, 1.0)
    breakdown = {p: round(_PHASE_COST[p] * factor, 2) for p in template_phases(template)}
    plan_file = f"specs/issue-{issue}-adw-{adw_id}-sdlc_planner-{slug(title)}.md"
    state = {
        "adw_id": adw_id, "issue_number": str(issue),
        "branch_name": f"{issue_class.strip('/')}-issue-{issue}-adw-{adw_id}-{slug(title)}",
        # a run that starts at Build continues an earlier plan, so its plan file exists already
        "plan_file": plan_file if "Plan" not in breakdown else None,
        "issue_class": issue_class, "worktree_path": str((ws.trees_dir / adw_id).absolute()),
        "backend_port": 9100 + rng.randrange(100), "frontend_port": 9200 + rng.randrange(100),
        "model_set": model_set, "all_adws": [template],
        "estimated_cost_total": round(sum(breakdown.values()), 2), "estimated_cost_breakdown": breakdown,
        "workflow_template": template, "model_used": MODELS[model_set], "start_time": utc_iso(start),
        "nl_input": f"{title} (see issue #{issue})", "github_url": f"{REPO_URL}/issues/{issue}",
    }
    if rng.random() < OLD_FORMAT_SHARE:  # older ADW writers also kept status and current_phase in the file
        state.update(status="pending", current_phase=None)
    return state


def write_state(ws: Workspace, state: dict[str, Any]) -> None:
    """Rewrite a run's adw_state.json in place."""
    path = ws.agents_dir / state["adw_id"] / "adw_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Deliberately not atomic (no temp file + rename): real ADW writers truncate and
    # rewrite in place, so the console must cope with meeting half-written JSON.
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(state, indent=2))


def append_error(ws: Workspace, adw_id: str, entry: str) -> None:
    """Append one entry (a line, or a multi-line traceback) to a run's error.log."""
    path = ws.agents_dir / adw_id / "error.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(entry.rstrip("\n") + "\n")


def error_entry(rng: random.Random, phase: str, message: str) -> str:
    """What a failed phase leaves in error.log: usually its message, sometimes the traceback ending in it."""
    if rng.random() < 0.7:
        return message
    script = phase_script(phase)
    return (f"Traceback (most recent call last):\n"
            f'  File "adws/{script}.py", line {rng.randrange(300, 900)}, in main\n'
            f"    run_phase(issue_number, adw_id, logger)\n"
            f'  File "adws/adw_modules/workflow_ops.py", line {rng.randrange(100, 1100)}, in run_phase\n'
            f"    raise PhaseError(message)\n"
            f"adw_modules.exceptions.PhaseError: {message}")


def insert_task_log(conn: sqlite3.Connection, state: dict[str, Any], phase: str, status: str, when: datetime,
                    cost: float | None = None, tokens: int | None = None, duration: float | None = None,
                    error: str | None = None) -> None:
    """Record how a phase of a run ended (completed|failed), as its phase script logs it."""
    icon = "✅" if status == "completed" else "❌"
    insert_row(conn, "task_logs", {
        "adw_id": state["adw_id"], "issue_number": int(state["issue_number"]),
        # the phase scripts log under their own name, not the orchestrator's
        "workflow_template": phase_script(phase), "phase_name": phase,
        "phase_number": PHASES.index(phase) + 1, "phase_status": status,
        "log_message": f"{icon} {phase} phase {status}", "error_message": error,
        "started_at": utc_iso(when - timedelta(seconds=duration or 0)), "completed_at": utc_iso(when),
        "duration_seconds": duration, "tokens_used": tokens, "cost_usd": cost, "created_at": utc_iso(when),
    })


def history_row(state: dict[str, Any], status: str, start: datetime, end: datetime | None,
                usage: dict[str, tuple[float, int]], now: datetime, error: str | None = None) -> dict[str, Any]:
    """The workflow_history row (column -> value) of a run described by its state and phase usage."""
    tokens = sum(t for _, t in usage.values())
    return {
        "adw_id": state["adw_id"], "issue_number": int(state["issue_number"]), "nl_input": state["nl_input"],
        "github_url": state["github_url"], "gh_issue_state": "closed" if status == "completed" else "open",
        "workflow_template": state["workflow_template"], "model_used": state["model_used"], "status": status,
        "start_time": utc_iso(start), "end_time": utc_iso(end) if end else None,
        "duration_seconds": seconds_between(start, end) if end else None,  # as end_time - start_time reads
        "error_message": error, "phase_count": len(usage),
        # the history sync copies the state file's current_phase, which only older files carry
        "current_phase": state.get("current_phase"), "retry_count": 0, "worktree_path": state["worktree_path"],
        "input_tokens": int(tokens * 0.8), "output_tokens": tokens - int(tokens * 0.8), "total_tokens": tokens,
        "actual_cost_total": round(sum(c for c, _ in usage.values()), 4),
        "estimated_cost_total": state["estimated_cost_total"], **_history_json(state, status, usage),
        "created_at": utc_iso(start), "updated_at": utc_iso(end or now),
    }


def _history_json(state: dict[str, Any], status: str, usage: dict[str, tuple[float, int]]) -> dict[str, str]:
    """The JSON columns of a history row, as JSON text (the real SQLite schema stores them so)."""
    actual = round(sum(c for c, _ in usage.values()), 4)
    estimate = sum(state["estimated_cost_breakdown"].get(phase, 0.0) for phase in usage)
    flags = (["cost_over_estimate"] if usage and actual > 1.2 * estimate else []) + \
            (["workflow_failed"] if status == "failed" else [])
    advice = (["Split the plan into smaller phases to keep cost near the estimate"] if flags[:1] else []) + \
             ([f"Use the base model set for {state['issue_class']} issues"]
              if state["model_set"] == "heavy" and state["issue_class"] != "/feature" else [])
    tokens = sum(t for _, t in usage.values())
    return {
        "structured_input": json.dumps({
            "issue_number": int(state["issue_number"]), "issue_class": state["issue_class"],
            "title": state["nl_input"].split(" (see issue")[0], "workflow": state["workflow_template"],
            "model_set": state["model_set"]}),
        "cost_breakdown": json.dumps({"estimated_total": state["estimated_cost_total"], "actual_total": actual,
                                      "estimated_per_phase": state["estimated_cost_breakdown"],
                                      "actual_per_phase": {phase: c for phase, (c, _) in usage.items()}}),
        "token_breakdown": json.dumps({"input_tokens": int(tokens * 0.8), "output_tokens": tokens - int(tokens * 0.8),
                                       "by_phase": {phase: t for phase, (_, t) in usage.items()}}),
        "anomaly_flags": json.dumps(flags), "optimization_recommendations": json.dumps(advice),
    }


def similar_runs(conn: sqlite3.Connection, template: str) -> str:
    """similar_workflow_ids for a new run: the latest completed runs of its template, as JSON text."""
    rows = conn.execute("SELECT adw_id FROM workflow_history WHERE workflow_template = ? AND status = 'completed'"
                        " ORDER BY start_time DESC LIMIT 3", (template,)).fetchall()
    return json.dumps([row[0] for row in rows])


@dataclass
class Run:
    """An ADW run as its orchestrator sees it: its state record, where it stands, what it spent."""

    state: dict[str, Any]
    queue_id: str | None
    started: datetime
    phase: int = -1  # index into `phases`; -1 before the first phase starts
    phase_started: datetime | None = None
    usage: dict[str, tuple[float, int]] = field(default_factory=dict)  # phase -> (cost $, tokens)
    completed: list[str] = field(default_factory=list)  # as the PhaseTracker records them
    error: str | None = None
    paused: bool = False
    updated: datetime | None = None  # when its records last changed
    due: datetime | None = None  # when the simulator moves it on (its current phase ends); None: at once

    @property
    def adw_id(self) -> str:
        """The run's id."""
        adw_id: str = self.state["adw_id"]
        return adw_id

    @property
    def phases(self) -> tuple[str, ...]:
        """The phases its template walks, in order."""
        return template_phases(self.state["workflow_template"])

    @property
    def current(self) -> str | None:
        """The phase it stands in; None before the first one."""
        return self.phases[self.phase] if self.phase >= 0 else None

    def queue_phase(self, status: str) -> str:
        """phase_queue.current_phase as the orchestrators broadcast it."""
        if status == "completed" and self.state["workflow_template"] == "adw_sdlc_from_build_iso":
            return "Completed"  # the only orchestrator that broadcasts its end
        return self.current or "init"


def open_run(conn: sqlite3.Connection, ws: Workspace, state: dict[str, Any], queue_id: str | None = None) -> Run:
    """Create a pending run from its new state record: state file, worktree, history row (no cost yet)."""
    start = datetime.fromisoformat(state["start_time"])
    write_state(ws, state)
    tree = ws.trees_dir / state["adw_id"]
    tree.mkdir(parents=True, exist_ok=True)
    (tree / ".ports.env").write_text(f"BACKEND_PORT={state['backend_port']}\nFRONTEND_PORT={state['frontend_port']}\n"
                                     f"VITE_BACKEND_URL=http://localhost:{state['backend_port']}\n", encoding="utf-8")
    row = history_row(state, "pending", start, None, {}, start)
    insert_row(conn, "workflow_history", {**row, "similar_workflow_ids": similar_runs(conn, row["workflow_template"])})
    return Run(state, queue_id, start)


def write_tracker(ws: Workspace, run: Run, current: str | None, when: datetime) -> None:
    """Rewrite completed_phases.json as the PhaseTracker does (only its orchestrators keep one)."""
    if run.state["workflow_template"] not in TRACKED_TEMPLATES:
        return
    data = {"completed": list(run.completed), "current": current,
            "last_updated": when.astimezone().replace(tzinfo=None).isoformat()}  # naive local time, as written
    with open(ws.agents_dir / run.adw_id / "completed_phases.json", "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)


def begin_phase(conn: sqlite3.Connection, ws: Workspace, run: Run, when: datetime) -> str:
    """Start the run's next phase: broadcast it, record it as current; return its name."""
    run.phase += 1
    phase, run.phase_started = run.phases[run.phase], when
    if phase_script(phase) not in run.state["all_adws"]:
        run.state["all_adws"].append(phase_script(phase))
    if "status" in run.state:  # the older orchestrators kept status and phase in the state file
        run.state.update(status="running", current_phase=phase)
    write_tracker(ws, run, phase, when)
    save_run(conn, ws, run, "running", when)
    return phase


def finish_phase(conn: sqlite3.Connection, ws: Workspace, run: Run, rng: random.Random, when: datetime,
                 failed: bool = False) -> bool:
    """End the current phase; True when the run goes on (it passed, or failed but is not critical)."""
    phase = run.current
    if phase is None:
        raise ValueError(f"run {run.adw_id}: no phase has begun")
    run.usage[phase] = phase_actuals(rng, run.state["estimated_cost_breakdown"].get(phase, 0.0))
    duration = seconds_between(run.phase_started or when, when)  # completed_at - started_at, to the second
    error = f"{phase} phase failed: {FAILURES[phase]}" if failed else None
    insert_task_log(conn, run.state, phase, "failed" if failed else "completed", when, *run.usage[phase],
                    duration, error)
    if error is not None:  # the phase failed
        append_error(ws, run.adw_id, error_entry(rng, phase, error))
        if phase not in NON_CRITICAL:
            run.error = error
            return False
    run.completed.append(phase)
    write_tracker(ws, run, None, when)
    if phase == "Plan":
        run.state["plan_file"] = f"specs/issue-{run.state['issue_number']}-adw-{run.adw_id}-sdlc_planner-" \
                                 f"{slug(run.state['nl_input'])}.md"
    elif phase == "Cleanup":
        shutil.rmtree(ws.trees_dir / run.adw_id, ignore_errors=True)
    return True


def end_run(conn: sqlite3.Connection, ws: Workspace, run: Run, when: datetime, status: str) -> None:
    """Finish the run (completed|failed): end_time in its state file, the end in every record."""
    run.state["end_time"] = utc_iso(when)
    if "status" in run.state:
        run.state["status"] = status
    save_run(conn, ws, run, status, when)


def save_run(conn: sqlite3.Connection, ws: Workspace, run: Run, status: str, when: datetime) -> None:
    """Write the run's status to its history row, its queue row and its state file."""
    ended, run.updated = status in FINAL_RUN_STATUSES, when
    row = history_row(run.state, status, run.started, when if ended else None, run.usage, when, run.error)
    assignments = ", ".join(f"{column} = :{column}" for column in row)
    conn.execute(f"UPDATE workflow_history SET {assignments} WHERE adw_id = :adw_id", row)
    if run.queue_id is not None:
        conn.execute("UPDATE phase_queue SET status = ?, current_phase = ?, error_message = ?, updated_at = ?"
                     " WHERE queue_id = ?", ("running" if status == "pending" else status,
                                             run.queue_phase(status), run.error, utc_iso(when), run.queue_id))
    write_state(ws, run.state)
