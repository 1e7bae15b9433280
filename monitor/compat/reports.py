"""The original documents of system-status, workflow-history, planned-features and webhook-status.

As in ``runs``: each builder takes the console's state of the channel and returns the
``data`` tac-webbuilder's server sent, keys in its order, nulls explicit, and its own
figures where it computed them its own way (a success rate over every run, say).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from monitor.channels.base import finite_number, parse_time
from monitor.channels.webhook_status import NOT_CONFIGURED, UNREACHABLE
from monitor.compat.runs import items

SERVICES = {  # the original's service keys, its card names, and the console checks that answer for them
    "backend_api": ("Backend API", ("backend_api", "backend")),
    "database": ("Database", ("database",)),
    "webhook": ("Webhook Service", ("webhook",)),
    "cloudflare_tunnel": ("Cloudflare Tunnel", ("cloudflare_tunnel",)),
    "github_webhook": ("GitHub Webhook", ("github_webhook",)),
    "frontend": ("Frontend", ("frontend",)),
}
HISTORY_LIMIT = 50  # the original's newest 50 by created_at
HISTORY_KEYS = (
    "id", "adw_id", "issue_number", "nl_input", "github_url", "workflow_template", "model_used", "status",
    "branch_name", "plan_file", "issue_class", "start_time", "end_time", "duration_seconds", "created_at", "updated_at",
    "error_message", "phase_count", "current_phase", "success_rate", "retry_count", "steps_completed", "steps_total",
    "worktree_path", "backend_port", "frontend_port", "concurrent_workflows", "worktree_reused", "input_tokens",
    "output_tokens", "cached_tokens", "cache_hit_tokens", "cache_miss_tokens", "total_tokens",
    "cache_efficiency_percent", "estimated_cost_total", "actual_cost_total", "estimated_cost_per_step",
    "actual_cost_per_step", "cost_per_token", "structured_input", "cost_breakdown", "token_breakdown",
    "phase_durations", "idle_time_seconds", "bottleneck_phase", "error_category", "retry_reasons",
    "error_phase_distribution", "recovery_time_seconds", "complexity_estimated", "complexity_actual", "hour_of_day",
    "day_of_week", "nl_input_clarity_score", "cost_efficiency_score", "performance_score", "quality_score",
    "scoring_version", "anomaly_flags", "optimization_recommendations")
HISTORY_DEFAULTS = {  # what the original's model fills in for a NULL or missing column
    "retry_count": 0, "steps_completed": 0, "steps_total": 0, "concurrent_workflows": 0, "worktree_reused": False,
    "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "cache_hit_tokens": 0, "cache_miss_tokens": 0,
    "total_tokens": 0, "cache_efficiency_percent": 0.0, "estimated_cost_total": 0.0, "actual_cost_total": 0.0,
    "estimated_cost_per_step": 0.0, "actual_cost_per_step": 0.0, "cost_per_token": 0.0, "hour_of_day": -1,
    "day_of_week": -1, "nl_input_clarity_score": 0.0, "cost_efficiency_score": 0.0, "performance_score": 0.0,
    "quality_score": 0.0, "anomaly_flags": [], "optimization_recommendations": [],
}
OBJECT_COLUMNS = ("structured_input", "phase_durations", "error_phase_distribution")
LIST_COLUMNS = ("retry_reasons", "anomaly_flags", "optimization_recommendations")
COST_KEYS = ("estimated_total", "actual_total", "estimated_per_step", "actual_per_step", "cost_per_token")
TOKEN_KEYS = ("input_tokens", "output_tokens", "cached_tokens", "cache_hit_tokens", "cache_miss_tokens",
              "total_tokens")
FEATURE_LIMIT = 200  # the original's newest 200 by created_at
FEATURE_KEYS = ("id", "item_type", "title", "description", "status", "priority", "estimated_hours", "actual_hours",
                "session_number", "github_issue_number", "parent_id", "tags", "completion_notes", "generated_plan",
                "workflow_type", "created_at", "updated_at", "started_at", "completed_at")
FEATURE_STATUS_RANK = {"in_progress": 1, "planned": 2, "completed": 3, "cancelled": 4}
FEATURE_PRIORITY_RANK = {"high": 1, "medium": 2, "low": 3}


def system_status(state: dict[str, Any]) -> dict[str, Any]:
    """``{overall_status, timestamp, services, summary}`` over the original's six services."""
    checks = state.get("items", {})
    services = {key: _service(name, checks, aliases) for key, (name, aliases) in SERVICES.items()}
    statuses = [service["status"] for service in services.values()]
    overall = "error" if "error" in statuses else "degraded" if "degraded" in statuses else "healthy"
    healthy = statuses.count("healthy")
    return {"overall_status": overall, "timestamp": "", "services": services,
            "summary": {"healthy_services": healthy, "total_services": len(services),
                        "health_percentage": round(healthy / len(services) * 100, 1)}}


def _service(name: str, checks: dict[str, Any], aliases: tuple[str, ...]) -> dict[str, Any]:
    check = next((checks[alias] for alias in aliases if isinstance(checks.get(alias), dict)), None)
    if check is None:
        return {"name": name, "status": "unknown", "uptime_seconds": None, "uptime_human": None,
                "message": f"not checked by the console: add a [[checks]] entry named {aliases[0]}", "details": None}
    status = check.get("status") if check.get("status") in ("healthy", "degraded") else "error"
    details = {"target": check["target"]} if check.get("target") else None
    port = _port(check.get("target"))
    if port is not None:
        details = {"port": port, **(details or {})}
    return {"name": name, "status": status, "uptime_seconds": None, "uptime_human": None,
            "message": check.get("message"), "details": details}


def _port(target: Any) -> str | None:
    """The port a check's URL or host:port names, as text (the original's details.port)."""
    if not isinstance(target, str) or "://" not in target or target.startswith(("sqlite", "postgres")):
        return None
    try:
        port = urlsplit(target).port
    except ValueError:
        return None
    return str(port) if port is not None else None


def workflow_history(state: dict[str, Any]) -> dict[str, Any]:
    """``{workflows, total_count, analytics}``: the 50 newest runs by created_at, analytics over every run."""
    newest = sorted(items(state), key=_created, reverse=True)[:HISTORY_LIMIT]
    summary = state.get("summary", {})
    return {"workflows": [_history_row(row) for row in newest], "total_count": _int(summary.get("total")),
            "analytics": _analytics(summary)}


def _created(row: dict[str, Any]) -> float:
    moment = parse_time(row.get("created_at"))
    return moment.timestamp() if moment is not None else float("-inf")


def _history_row(row: dict[str, Any]) -> dict[str, Any]:
    record = {key: row.get(key, HISTORY_DEFAULTS.get(key)) for key in HISTORY_KEYS}
    record["scoring_version"] = row.get("scoring_version", "1.0")
    record["worktree_reused"] = bool(record["worktree_reused"])
    for key in OBJECT_COLUMNS:  # text that was not JSON: the original reads it as null
        record[key] = record[key] if isinstance(record[key], dict) else None
    for key in LIST_COLUMNS:
        record[key] = record[key] if isinstance(record[key], list) else HISTORY_DEFAULTS.get(key)
    costs, tokens = row.get("cost_breakdown"), row.get("token_breakdown")
    record["cost_breakdown"] = ({**{key: _float(costs.get(key), 0.0) for key in COST_KEYS},
                                 "by_phase": costs.get("by_phase") if isinstance(costs.get("by_phase"), dict) else None}
                                if isinstance(costs, dict) else None)
    record["token_breakdown"] = ({key: _int(tokens.get(key)) for key in TOKEN_KEYS}
                                 if isinstance(tokens, dict) else None)
    return record


def _analytics(summary: dict[str, Any]) -> dict[str, Any]:
    total, completed = _int(summary.get("total")), _int(summary.get("completed"))
    costed, total_cost = summary.get("costed_runs", 0), _float(summary.get("total_cost"), 0.0) or 0.0
    return {
        "total_workflows": total, "completed_workflows": completed, "failed_workflows": _int(summary.get("failed")),
        "avg_duration_seconds": _float(summary.get("avg_duration_seconds"), 0.0),
        "success_rate_percent": completed / total * 100 if total else 0.0,  # over every run, as the original
        "workflows_by_model": _occurring(summary.get("by_model")),
        "workflows_by_template": _occurring(summary.get("by_template")),
        "workflows_by_status": _occurring(summary.get("by_status")),
        "avg_cost": round(total_cost / costed, 4) if isinstance(costed, int) and costed > 0 else 0.0,
        "total_cost": total_cost,
        "avg_cost_per_completion": _float(summary.get("avg_cost_per_completion"), 0.0),
        "cost_trend_7day": _float(summary.get("cost_trend_7d"), 0.0),
        "cost_trend_30day": _float(summary.get("cost_trend_30d"), 0.0),
        "avg_tokens": _float(summary.get("avg_tokens"), 0.0),
        "avg_cache_efficiency": _float(summary.get("avg_cache_efficiency"), 0.0),
    }


def _float(value: Any, default: float | None) -> float | None:
    """A finite number as a float; ``default`` for anything else (text, "NaN", a bool)."""
    if finite_number(value):
        return float(value)
    return default


def _int(value: Any) -> int:
    """A count as the original sends it: an integer JSON parsers take whole; 0 for anything else."""
    if finite_number(value):
        return int(value) if abs(value) < 2**53 else 0
    return 0


def planned_features(state: dict[str, Any]) -> dict[str, Any]:
    """``{features, stats}``: the 200 newest, in progress first, then by priority, newest first."""
    newest = sorted(items(state), key=_created, reverse=True)[:FEATURE_LIMIT]
    ordered = sorted(newest, key=_feature_rank)  # stable: newest first within a rank
    summary = state.get("summary", {})
    by_status = _occurring(summary.get("by_status"))
    total = _int(summary.get("total"))
    return {"features": [_feature(feature) for feature in ordered],
            "stats": {"by_status": by_status, "by_priority": _occurring(summary.get("by_priority")),
                      "by_type": _occurring(summary.get("by_type")),
                      "total_estimated_hours": _float(summary.get("total_estimated_hours"), 0.0),
                      "total_actual_hours": _float(summary.get("total_actual_hours"), 0.0),
                      "completion_rate": by_status.get("completed", 0) * 100.0 / total if total else 0.0}}


def _feature_rank(feature: dict[str, Any]) -> tuple[int, int]:
    return (FEATURE_STATUS_RANK.get(str(feature.get("status")), 5),
            FEATURE_PRIORITY_RANK.get(str(feature.get("priority")), 4))


def _occurring(counts: Any) -> dict[str, int]:
    """The counts of the values that occur (the original groups rows; a value with none is no group)."""
    return {key: _int(count) for key, count in counts.items() if _int(count)} if isinstance(counts, dict) else {}


def _feature(feature: dict[str, Any]) -> dict[str, Any]:
    record = {key: feature.get(key) for key in FEATURE_KEYS}
    record["tags"] = feature["tags"] if isinstance(feature.get("tags"), list) else []
    record["generated_plan"] = feature["generated_plan"] if isinstance(feature.get("generated_plan"), dict) else None
    return record


def webhook_status(state: dict[str, Any]) -> dict[str, Any]:
    """The service's own document, rebuilt; ``{status: "error", message}`` while it cannot be read."""
    summary, meta = state.get("summary", {}), state.get("meta", {})
    if meta.get("source") == "error" or summary.get("status") in (None, UNREACHABLE, NOT_CONFIGURED):
        return {"status": "error", "message": meta.get("error") or "the webhook service is not configured"}
    seconds = _int(summary.get("uptime_seconds"))
    successful, failed = _int(summary.get("successful")), _int(summary.get("failed"))
    rate = _float(summary.get("success_rate"), None)
    if rate is None:
        rate = successful / (successful + failed) * 100 if successful + failed else 0.0
    failures = sorted(items(state), key=lambda f: str(f.get("timestamp")))[-5:]
    return {"status": summary["status"],
            "uptime": {"seconds": seconds, "hours": round(seconds / 3600, 2),
                       "human": f"{seconds // 3600}h {seconds % 3600 // 60}m"},
            "stats": {"total_received": _int(summary.get("total_received")), "successful": successful,
                      "failed": failed, "success_rate": f"{rate:.1f}%"},
            "recent_failures": failures, "last_successful": summary.get("last_successful")}

