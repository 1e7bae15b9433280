"""The summary figures a threshold rule may watch: every numeric summary field of every channel, by dotted path.

One table, ``SUMMARY_FIELDS``: for each channel the numbers its module puts in ``summary``
(``monitor/channels/<name>.py``), and its maps of counts (``by_status`` and the like) with the
keys they can hold. A closed map's keys come from ``monitor.adw`` (or the channel's own
constants); an open map (``by_model``) takes any key, since its keys are the data's own
(model names). Text and flags (``overall_status``, ``paused``) are not figures: a rule
compares numbers. A count missing from a map that is there reads as 0 (channels leave out
the values nothing counted, e.g. a template no run used).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from monitor.adw import (
    FEATURE_PRIORITIES,
    FEATURE_STATUSES,
    FEATURE_TYPES,
    HISTORY_STATUSES,
    QUEUE_STATUSES,
    RUN_STATUSES,
    TEMPLATE_PHASES,
)
from monitor.channels.base import finite_number
from monitor.channels.registry import (
    ADW_MONITOR,
    PLANNED_FEATURES,
    QUEUE,
    ROUTES,
    SYSTEM_STATUS,
    WEBHOOK_STATUS,
    WORKFLOW_HISTORY,
    WORKFLOWS,
)
from monitor.channels.routes import OPENAPI_METHODS


@dataclass(frozen=True, slots=True)
class Counts:
    """A map of counts in a summary: ``keys`` it may hold, or None for any key (``what`` names one in messages)."""

    keys: tuple[str, ...] | None
    what: str = "key"


Figure = None  # a plain number in the summary
FieldTable = Mapping[str, Counts | None]

TEMPLATES = Counts(tuple(TEMPLATE_PHASES))
SUMMARY_FIELDS: Mapping[str, FieldTable] = MappingProxyType({
    QUEUE: {"total": Figure, "by_status": Counts(QUEUE_STATUSES)},
    ADW_MONITOR: {"total": Figure, **dict.fromkeys(RUN_STATUSES, Figure)},
    SYSTEM_STATUS: {"healthy": Figure, "total": Figure, "health_percentage": Figure},
    WORKFLOWS: {"total": Figure, "by_template": TEMPLATES},
    ROUTES: {"total": Figure, "by_method": Counts(tuple(method.upper() for method in OPENAPI_METHODS))},
    WORKFLOW_HISTORY: {
        **dict.fromkeys(("total", "completed", "failed", "running", "success_rate", "avg_duration_seconds",
                         "avg_cost", "costed_runs", "total_cost", "avg_cost_per_completion", "avg_tokens",
                         "avg_cache_efficiency", "cost_7d", "cost_30d", "cost_trend_7d", "cost_trend_30d"), Figure),
        "by_model": Counts(None, "model"), "by_template": TEMPLATES, "by_status": Counts(HISTORY_STATUSES)},
    PLANNED_FEATURES: {
        **dict.fromkeys(("total", "total_estimated_hours", "total_actual_hours", "completion_rate"), Figure),
        "by_status": Counts(FEATURE_STATUSES), "by_priority": Counts(FEATURE_PRIORITIES),
        "by_type": Counts(FEATURE_TYPES)},
    WEBHOOK_STATUS: dict.fromkeys(("uptime_seconds", "total_received", "successful", "failed", "success_rate"),
                                    Figure),
})

# What else the channels put in their summaries: text, flags and records, which a rule cannot compare.
NOT_FIGURES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    QUEUE: ("paused",), SYSTEM_STATUS: ("overall_status",), WEBHOOK_STATUS: ("status", "last_successful")})


def is_summary_field(channel: str, path: str) -> bool:
    """Whether ``path`` (``total``, ``by_status.failed``) names a numeric summary field of ``channel``."""
    table = SUMMARY_FIELDS.get(channel, {})
    name, dot, key = path.partition(".")
    if name not in table:
        return False
    counts = table[name]
    if counts is None:
        return not dot
    return bool(key) and (counts.keys is None or key in counts.keys)


def spelled_fields(channel: str) -> str:
    """``channel``'s summary fields as a message lists them: ``total, by_status.<queued|ready|…>``."""
    spelled = []
    for name, counts in SUMMARY_FIELDS.get(channel, {}).items():
        if counts is None:
            spelled.append(name)
        elif counts.keys is None:
            spelled.append(f"{name}.<{counts.what}>")
        else:
            spelled.append(f"{name}.<{'|'.join(counts.keys)}>")
    return ", ".join(spelled)


def read_field(summary: Mapping[str, Any], path: str) -> float | None:
    """The finite number at ``path`` in ``summary``; a count missing from a map that is there is 0; else None."""
    name, dot, key = path.partition(".")
    value = summary.get(name)
    if dot:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key, 0)
    return float(value) if finite_number(value) else None
