"""Which figures the history keeps per channel, how each is read from a channel's state, and how it rolls up.

One table, ``SERIES``: for each channel the series it records, each with its label, the
page's value format (``""`` a plain number, ``percent``, ``money``, ``duration``), the
aggregate that rolls its points up into coarser buckets, and how its value is read from
the channel's current state (``{"summary", "items", "meta"}``). Aggregates:

- ``mean`` for counts and rates (an hour's queue depth is its average depth);
- ``max`` for ``cost_per_day``: each point is the cost of the runs started that UTC day
  so far, which only grows through a day, so the max of an hour or a day is its total
  (hours and days are aligned to UTC midnight, so no bucket spans two days);
- ``min`` for health (``health_percentage`` and each check): a bucket shows the worst
  moment in it, as a 90-slot health bar should.

system-status also records one series per check, named ``check:<check key>``: 1.0
healthy (or ok), 0.5 degraded (or warning), 0.0 any other status, None unknown. A channel
whose source is not ``ok`` records None for everything (a gap, never an invented value).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from monitor.channels.base import finite_number, parse_time
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

PLAIN, PERCENT, MONEY, DURATION = "", "percent", "money", "duration"
MEAN, MAX, MIN = "mean", "max", "min"
AGGREGATES = (MEAN, MAX, MIN)
CHECK_PREFIX = "check:"
DAY = 86_400

State = Mapping[str, Any]
Extract = Callable[[State, float], float | None]  # (channel state, sample time in unix seconds) -> value
Values = dict[str, float | None]
Point = tuple[float, float | None]


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """One recorded figure of a channel: its name, label, value format, rollup aggregate and reader."""

    name: str
    label: str
    format: str
    aggregate: str
    extract: Extract | None = None  # None: one of a family (the per-check series), read by its channel's sampler
    daily: bool = False  # drawn a point a day over a month (cost per day), not over the recent slots


@dataclass(frozen=True, slots=True)
class Series:
    """A series as pages and the API see it: points ``(unix seconds, value or None)``, oldest first."""

    name: str
    label: str
    format: str
    step: float
    points: list[Point]


def _number(value: Any) -> float | None:
    return float(value) if finite_number(value) else None


def summary_figure(key: str) -> Extract:
    """Reads ``summary[key]`` when it is a finite number."""
    return lambda state, at: _number(state.get("summary", {}).get(key))


def queue_status_count(status: str) -> Extract:
    """Reads ``summary.by_status[status]`` of the queue."""
    def extract(state: State, at: float) -> float | None:
        by_status = state.get("summary", {}).get("by_status")
        return _number(by_status.get(status)) if isinstance(by_status, Mapping) else None
    return extract


def queue_depth(state: State, at: float) -> float | None:
    """Queue items not completed: ``total`` less ``by_status.completed``."""
    summary = state.get("summary", {})
    total, completed = _number(summary.get("total")), queue_status_count("completed")(state, at)
    return None if total is None or completed is None else total - completed


def cost_today(state: State, at: float) -> float | None:
    """Cost of the runs (among workflow-history's items, the newest runs) started on ``at``'s UTC day so far."""
    day_start = dt.datetime.fromtimestamp(at - at % DAY, dt.UTC)
    day_end = day_start + dt.timedelta(days=1)
    total = 0.0
    for item in state.get("items", {}).values():
        cost = item.get("actual_cost_total") if isinstance(item, Mapping) else None
        if not finite_number(cost) or cost <= 0:
            continue  # 0.0 until a run reports a cost: checked first, so most rows are never parsed
        started = parse_time(item.get("start_time"))
        if started is not None and day_start <= started < day_end:
            total += cost
    return round(total, 4)


HEALTH_VALUES = MappingProxyType({"healthy": 1.0, "ok": 1.0, "degraded": 0.5, "warning": 0.5,
                                  "unknown": None, "pending": None})


def check_health(status: Any) -> float | None:
    """1.0 healthy/ok, 0.5 degraded/warning, None unknown (or no status), 0.0 any other status."""
    if not isinstance(status, str) or not status:
        return None
    return HEALTH_VALUES.get(status.lower(), 0.0)


def check_values(state: State) -> Values:
    """One ``check:<key>`` value per system-status item."""
    items = state.get("items", {})
    return {CHECK_PREFIX + str(key): check_health(item.get("status") if isinstance(item, Mapping) else None)
            for key, item in items.items()}


SERIES: Mapping[str, tuple[SeriesSpec, ...]] = MappingProxyType({
    QUEUE: (SeriesSpec("depth", "In the queue (not completed)", PLAIN, MEAN, queue_depth),
              SeriesSpec("running", "Running", PLAIN, MEAN, queue_status_count("running"))),
    ADW_MONITOR: (SeriesSpec("running", "Running", PLAIN, MEAN, summary_figure("running")),
                    SeriesSpec("failed", "Failed", PLAIN, MEAN, summary_figure("failed"))),
    SYSTEM_STATUS: (SeriesSpec("health_percentage", "Checks healthy", PERCENT, MIN,
                                 summary_figure("health_percentage")),),
    WORKFLOWS: (),
    ROUTES: (),
    WORKFLOW_HISTORY: (SeriesSpec("success_rate", "Success rate", PERCENT, MEAN, summary_figure("success_rate")),
                         SeriesSpec("cost_per_day", "Cost per day (UTC)", MONEY, MAX, cost_today, daily=True)),
    PLANNED_FEATURES: (SeriesSpec("completion_rate", "Completion rate", PERCENT, MEAN,
                                    summary_figure("completion_rate")),),
    WEBHOOK_STATUS: (SeriesSpec("success_rate", "Delivery success rate", PERCENT, MEAN,
                                  summary_figure("success_rate")),),
})
# Channels whose items each add a series of a family (the key follows the prefix).
FAMILIES: Mapping[str, str] = MappingProxyType({SYSTEM_STATUS: CHECK_PREFIX})


def series_spec(channel: str, name: str) -> SeriesSpec | None:
    """The spec of ``channel``'s series ``name`` (a family member gets one made); None when it has no such series."""
    for spec in SERIES.get(channel, ()):
        if spec.name == name:
            return spec
    prefix = FAMILIES.get(channel)
    if prefix is not None and name.startswith(prefix) and len(name) > len(prefix):
        return SeriesSpec(name, name[len(prefix):], PLAIN, MIN)
    return None


def sample_channel(channel: str, state: State, at: float) -> Values:
    """The value of each of ``channel``'s series in ``state`` at ``at``; all None unless its source is ok."""
    specs = SERIES.get(channel, ())
    if state.get("meta", {}).get("source") != "ok":
        return dict.fromkeys((spec.name for spec in specs), None)
    values: Values = {spec.name: spec.extract(state, at) for spec in specs if spec.extract is not None}
    if channel in FAMILIES:
        values.update(check_values(state))
    return values
