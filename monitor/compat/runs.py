"""The original documents of queue, adw-monitor, workflows and routes, from the console's channel states.

Each builder takes a channel's state (``summary``, ``items``; nulls dropped, as the
native protocol publishes it) and returns the ``data`` tac-webbuilder's server sent:
every key it sent, in its order, nulls explicit, its own figures (see README,
"Fronting an existing tac-webbuilder", for where the console's sources differ).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from monitor.channels.base import finite_number, parse_time

QUEUE_LIMIT = 100  # the original's SELECT … LIMIT 100
QUEUE_KEYS = ("queue_id", "feature_id", "phase_number", "issue_number", "status", "current_phase",
              "depends_on_phases", "phase_data", "created_at", "updated_at", "error_message", "adw_id", "pr_number",
              "priority", "queue_position", "ready_timestamp", "started_timestamp")
TOTAL_PHASES = 9  # the original measures every run against its nine-phase pipeline
STATUS_RANK = {"running": 0, "paused": 1, "failed": 2, "completed": 3}
WORKFLOW_PHASES = ("ship", "document", "review", "test", "build", "plan")  # latest first, as the original looks


def items(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The state's items as a list (records only: anything else a source put there is skipped)."""
    return [item for item in state.get("items", {}).values() if isinstance(item, dict)]


def local_now() -> str:
    """The time as the original stamps its documents: local, naive, ISO 8601."""
    return dt.datetime.now().isoformat()


def queue(state: dict[str, Any]) -> dict[str, Any]:
    """``{phases, total, paused}``: the first 100 phases by feature then phase number."""
    ordered = sorted(items(state), key=_queue_order)[:QUEUE_LIMIT]
    phases = [_phase(item) for item in ordered]
    return {"phases": phases, "total": len(phases), "paused": state.get("summary", {}).get("paused") is True}


def _queue_order(item: dict[str, Any]) -> tuple[Any, ...]:
    feature, phase = item.get("feature_id"), item.get("phase_number")
    # PostgreSQL's ascending order puts a NULL feature last; numbers before anything else.
    return (feature is None, _number_or_inf(feature), str(feature), _number_or_inf(phase), str(phase))


def _number_or_inf(value: Any) -> float:
    return float(value) if finite_number(value) else float("inf")


def _phase(item: dict[str, Any]) -> dict[str, Any]:
    phase = {key: item.get(key) for key in QUEUE_KEYS}
    phase["current_phase"] = item.get("current_phase", "init")  # the original's value for a schema without it
    phase["depends_on_phases"] = item["depends_on_phases"] if isinstance(item.get("depends_on_phases"), list) else []
    phase["phase_data"] = item["phase_data"] if isinstance(item.get("phase_data"), dict) else {}
    for key in ("created_at", "updated_at"):  # never null in the original: it stamps "now"
        phase[key] = item.get(key) or local_now()
    return phase


def adw_monitor(state: dict[str, Any]) -> dict[str, Any]:
    """``{summary, workflows, last_updated}``: every run, running first, newest first within a status."""
    runs = sorted((_run(item) for item in items(state)), key=_run_order)
    counts = {status: sum(run["status"] == status for run in runs) for status in ("running", "completed", "failed",
                                                                                     "paused")}
    return {"summary": {"total": len(runs), **counts}, "workflows": runs, "last_updated": ""}


def _run(item: dict[str, Any]) -> dict[str, Any]:
    phases = item.get("phases_completed")
    completed = [phase.lower() for phase in phases if isinstance(phase, str)] if isinstance(phases, list) else []
    current = str(item["current_phase"]).lower() if item.get("current_phase") else None
    progress = len(completed) / TOTAL_PHASES * 100
    if current is not None and current not in completed:
        progress += 100 / TOTAL_PHASES * 0.5  # the original's half phase for the one under way
    cost = item.get("current_cost")
    return {
        "adw_id": item.get("adw_id"), "issue_number": item.get("issue_number"), "pr_number": item.get("pr_number"),
        "issue_class": item.get("issue_class") or "", "title": item.get("title") or "",
        "status": item.get("status") or "unknown", "current_phase": current,
        "phase_progress": round(min(progress, 100.0), 1), "workflow_template": item.get("workflow_template") or "",
        "start_time": item.get("start_time"), "end_time": item.get("end_time"),
        "duration_seconds": item.get("duration_seconds"), "github_url": item.get("github_url"),
        "worktree_path": item.get("worktree_path"), "current_cost": cost if cost else None,
        "estimated_cost_total": item.get("estimated_cost_total"), "error_count": item.get("error_count", 0),
        "last_error": item.get("last_error"), "is_process_active": item.get("is_process_active") is True,
        "phases_completed": list(dict.fromkeys(completed)), "total_phases": TOTAL_PHASES,
    }


def _run_order(run: dict[str, Any]) -> tuple[int, float, float]:
    started = parse_time(run["start_time"])
    rank = STATUS_RANK.get(run["status"], 4) if isinstance(run["status"], str) else 4
    return (rank, -(started.timestamp() if started else 0.0), -run["phase_progress"])


def workflows(state: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{adw_id, issue_number, phase, github_url}]``: one per state file, the issue as a number."""
    return [{"adw_id": item.get("adw_id"), "issue_number": issue_int(item.get("issue_number")),
             "phase": _latest_phase(item.get("all_adws")), "github_url": item.get("github_url")}
            for item in items(state)]


def issue_int(value: Any) -> int:
    """The issue number as the original reads it (``int(...)``); 0 when it is no number."""
    try:
        number = int(value) if isinstance(value, (int, float)) else int(str(value).strip().replace("_", ""))
    except (ValueError, OverflowError):  # text that is no number; an infinite float
        return 0
    return number if -(2**63) <= number < 2**63 else 0  # beyond what JSON parsers take as an integer


def _latest_phase(adws: Any) -> str:
    """The latest phase whose ``adw_<phase>_iso`` has run; ``plan`` before any."""
    ran = {str(name) for name in adws} if isinstance(adws, list) else set()
    return next((phase for phase in WORKFLOW_PHASES if f"adw_{phase}_iso" in ran), "plan")


def routes(state: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{path, method, name, summary, description, tags}]``, as the original lists its own routes."""
    listed: list[dict[str, Any]] = []
    for item in items(state):
        method, path = str(item.get("method", "")), str(item.get("path", ""))
        if method == "OPTIONS" or path.startswith(("/docs", "/redoc", "/openapi")):
            continue
        docstring = item.get("description") or item.get("summary")
        listed.append({"path": path, "method": method, "name": function_name(item.get("name"), method, path),
                       "summary": str(docstring).split("\n")[0].strip() if docstring else None,
                       "description": None, "tags": item.get("tags") if isinstance(item.get("tags"), list) else []})
    return listed


def function_name(operation_id: Any, method: str, path: str) -> str | None:
    """The handler's name: FastAPI's default operationId is ``<name><path>_<method>`` with non-word characters as _."""
    if not isinstance(operation_id, str):
        return None
    suffix = re.sub(r"\W", "_", path) + "_" + method.lower()
    name = operation_id.removesuffix(suffix)
    return name if name and name != operation_id else operation_id
