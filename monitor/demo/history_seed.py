"""A week of history for ``monitor demo``, agreeing with its workspace, so sparklines show something at once.

Hourly points for the seven days before the current hour and fine points for the last 90
slots. The seed reads the freshly created workspace first (``read_workspace``, off the
event loop), so what it draws leads up to what the console then samples:

- ``cost_per_day`` is the workspace's own: at each point the cost of the runs of
  workflow_history started that UTC day before the point's span ends (only runs with a
  positive cost, by ``start_time``: the sampler's ``cost_today``), so the 30-day chart adds
  up to the panel's cost windows.
- queue depth and running, adw-monitor running and failed, the workflow-history success
  rate and the planned-features completion rate keep a plausible daily wave, moved so it
  ENDS (its last fine slot, noise fading out over the last hour) at the value the console
  samples first: the channels' own builders and readers over the same tables. adw-monitor
  is approximated from workflow_history: its running runs are the agent-dir runs the
  history calls running or pending (the simulator adopts them and starts their processes),
  its failed runs those it calls failed.
- the webhook success rate keeps its free wave around 94 %: the demo service starts with
  nothing processed, which the console records as a gap, and its first rates (100 %, then
  an outage down to 79 % within the first minutes) depend on deliveries not made yet.
- health checks are healthy but for the odd degraded or failed hour.

A history file that already holds points (a workspace run before) is left as it is; a
workspace or history file that cannot be read only logs a warning.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.channels.base import ChannelData, parse_time
from monitor.channels.planned_features import build_planned_features
from monitor.channels.queue import build_queue
from monitor.channels.registry import (
    ADW_MONITOR,
    PLANNED_FEATURES,
    QUEUE,
    SYSTEM_STATUS,
    WEBHOOK_STATUS,
    WORKFLOW_HISTORY,
)
from monitor.channels.workflow_history import build_summary as history_summary
from monitor.demo.workspace import Workspace
from monitor.history.paths import history_path
from monitor.history.recovery import HistoryUnavailable, open_store
from monitor.history.series import CHECK_PREFIX, DAY, sample_channel
from monitor.history.store import HOUR, HistoryStore, Row
from monitor.history.window import RECENT_SLOTS
from monitor.settings import Settings

log = structlog.get_logger(__name__)

SEED_DAYS = 7
Key = tuple[str, str]  # (channel, series name)
Figure = Callable[[float, float], float]  # (start, seconds covered) -> the point for that span


@dataclass(frozen=True, slots=True)
class Shape:
    """A series' daily wave: its middle when nothing anchors it, swing, noise, reach either side and hard limits."""

    middle: float
    swing: float
    noise: float
    reach: float  # how far from its middle (or anchor) the wave may stray
    ceiling: float = math.inf  # and never below 0 nor above this


SHAPES: Mapping[Key, Shape] = {
    (QUEUE, "depth"): Shape(25.0, 4.0, 1.5, 10.0),
    (QUEUE, "running"): Shape(3.0, 1.5, 0.8, 3.0),
    (ADW_MONITOR, "running"): Shape(3.5, 1.5, 0.8, 2.5),
    (ADW_MONITOR, "failed"): Shape(2.5, 1.0, 0.4, 2.5),
    (WORKFLOW_HISTORY, "success_rate"): Shape(76.0, 2.5, 0.6, 11.0, 100.0),
    (PLANNED_FEATURES, "completion_rate"): Shape(55.0, 2.0, 0.3, 10.0, 100.0),
    (WEBHOOK_STATUS, "success_rate"): Shape(94.0, 3.0, 1.5, 14.0, 100.0),
}
ANCHORED = frozenset(SHAPES) - {(WEBHOOK_STATUS, "success_rate")}  # see the module docstring


@dataclass(frozen=True, slots=True)
class WorkspaceFigures:
    """What the seed takes from the workspace: each anchored series' first sample, and the costed runs."""

    anchors: Mapping[Key, float | None] = field(default_factory=dict)  # None or missing: free wave
    costs: Sequence[tuple[float, float]] = ()  # (start in unix seconds, actual_cost_total > 0) per run


def check_names(settings: Settings) -> list[str]:
    """The system-status checks a console with ``settings`` runs (built-in ones, then ``[[checks]]``)."""
    names = ["console", "database"]
    names += ["webhook"] if settings.sources.webhook_url else []
    names += ["backend"] if settings.sources.backend_url else []
    return list(dict.fromkeys(names + [check.name for check in settings.checks]))


def _rows(conn: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(sql)]


def _adw_summary(conn: sqlite3.Connection, ws: Workspace) -> dict[str, Any]:
    """adw-monitor's running and failed, approximated: its runs (agent dirs) by their workflow_history status."""
    agents = ws.agent_ids()
    statuses = [status for adw_id, status in conn.execute("SELECT adw_id, status FROM workflow_history")
                if adw_id in agents]
    return {"running": sum(status in ("running", "pending") for status in statuses),
            "failed": statuses.count("failed")}


def _costed_runs(conn: sqlite3.Connection) -> list[tuple[float, float]]:
    """(start, cost) of the runs with a positive cost and a readable start, as ``cost_today`` counts them."""
    costed = []
    for started, cost in conn.execute("SELECT start_time, actual_cost_total FROM workflow_history"
                                      " WHERE actual_cost_total > 0"):
        moment = parse_time(started)
        if moment is not None and isinstance(cost, (int, float)) and math.isfinite(cost):
            costed.append((moment.timestamp(), float(cost)))
    return costed


def _state(data: ChannelData) -> dict[str, Any]:
    """A channel's state as the broker holds it after a good read."""
    return {"summary": data.summary, "items": data.items, "meta": {"source": "ok"}}


def read_workspace(ws: Workspace, now: float) -> WorkspaceFigures:
    """The figures the console will first sample from ``ws`` (blocking: SQLite and a directory listing)."""
    conn = sqlite3.connect(ws.db_path, timeout=5.0)
    conn.row_factory = sqlite3.Row
    try:  # each channel's own build over its default queries' rows (workflow-history: the status counts)
        totals = _rows(conn, "SELECT status, COUNT(*) AS runs FROM workflow_history GROUP BY status")
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        states = {
            QUEUE: _state(build_queue(_rows(conn, "SELECT * FROM phase_queue"),
                                        _rows(conn, "SELECT config_key, config_value FROM queue_config"))),
            PLANNED_FEATURES: _state(build_planned_features(
                {"planned_features": _rows(conn, "SELECT * FROM planned_features")})),
            WORKFLOW_HISTORY: _state(ChannelData(history_summary(totals, None, moment), {})),
            ADW_MONITOR: _state(ChannelData(_adw_summary(conn, ws), {})),
        }
        costs = _costed_runs(conn)
    finally:
        conn.close()
    anchors = {(channel, name): value for channel, state in states.items()
               for name, value in sample_channel(channel, state, now).items() if (channel, name) in ANCHORED}
    return WorkspaceFigures(anchors, costs)


def _wave(rng: random.Random, shape: Shape, anchor: float | None = None, at: float = 0.0) -> Figure:
    """A daily cycle with a drifting second harmonic and noise; with an ``anchor``, one that is ``anchor`` at ``at``.

    Anchored, the noise fades out over the hour before ``at``, so the series arrives at
    the anchor as its live continuation would, and it stays within ``reach`` of it.
    """
    phase, drift = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)

    def cycle(moment: float) -> float:
        day = 2 * math.pi * moment / DAY
        return shape.swing * (math.sin(day + phase) + 0.3 * math.sin(day / 3.1 + drift))

    centre = shape.middle if anchor is None else anchor
    middle = shape.middle if anchor is None else anchor - cycle(at)
    low, high = max(0.0, centre - shape.reach), min(shape.ceiling, centre + shape.reach)

    def figure(start: float, span: float) -> float:
        moment = start + span / 2
        calm = 1.0 if anchor is None else min(1.0, max(0.0, (at - moment) / HOUR))
        return min(high, max(low, middle + cycle(moment) + rng.gauss(0, shape.noise * calm)))
    return figure


def _cost_so_far(costs: Sequence[tuple[float, float]]) -> Figure:
    """The cost of the runs started that UTC day before the span ends: the day-so-far sum the sampler records."""
    def figure(start: float, span: float) -> float:
        day_start, end = start - start % DAY, start + span  # spans never cross a UTC midnight
        return round(math.fsum(cost for started, cost in costs if day_start <= started < end), 4)
    return figure


def _health(rng: random.Random) -> Figure:
    """A check that is healthy but for the odd incident: in 3 % of hours degraded, in 1 % failed, for ten minutes."""
    incidents: dict[int, tuple[float, float]] = {}  # hour -> (value meanwhile, when it starts)

    def figure(start: float, span: float) -> float:
        hour = int(start // HOUR)
        value, begins = incidents.setdefault(hour, (rng.choices((1.0, 0.5, 0.0), weights=(96, 3, 1))[0],
                                                    hour * HOUR + rng.uniform(0, 50 * 60)))
        return value if start < begins + 600 and begins < start + span else 1.0  # a span the incident touches
    return figure


def demo_figures(rng: random.Random, checks: list[str], workspace: WorkspaceFigures | None = None,
                 at: float = 0.0) -> dict[Key, Figure]:
    """Every seeded series, by (channel, name), as a function of time; anchored ones pass their anchor at ``at``."""
    workspace = workspace or WorkspaceFigures()
    figures = {key: _wave(rng, shape, workspace.anchors.get(key), at) for key, shape in SHAPES.items()}
    figures[(WORKFLOW_HISTORY, "cost_per_day")] = _cost_so_far(workspace.costs)
    figures.update({(SYSTEM_STATUS, CHECK_PREFIX + name): _health(rng) for name in checks})
    return figures


COUNTS = ("depth", "running", "failed")  # whole numbers in a sample, fractions only as an hour's mean


def seed_rows(figures: dict[Key, Figure], starts: list[int], span: float, fine: bool) -> Iterator[Row]:
    """A point of every series for ``span`` seconds from each of ``starts``; health_percentage from the checks."""
    for start in starts:
        values = {key: figure(start, span) for key, figure in figures.items()}
        for (channel, name), value in values.items():
            digits = 0 if fine and name in COUNTS else 4 if name == "cost_per_day" else 1
            yield channel, name, start, round(value, digits)
        checks = [value for (channel, _), value in values.items() if channel == SYSTEM_STATUS]
        if checks:
            healthy = sum(value == 1.0 for value in checks)
            yield SYSTEM_STATUS, "health_percentage", start, round(100.0 * healthy / len(checks), 1)


async def _write_week(store: HistoryStore, settings: Settings, rng: random.Random, workspace: WorkspaceFigures,
                      now: float) -> None:
    """Hourly points for the week before ``now``'s hour, fine points for the slots before ``now``'s."""
    hour, step = int(now // HOUR * HOUR), settings.history.step
    current = math.floor(now / step)
    slots = [int(index * step) for index in range(current - RECENT_SLOTS, current)]  # the sampler adds the next
    figures = demo_figures(rng, check_names(settings), workspace, at=slots[-1] + step / 2)
    hours = [hour - i * HOUR for i in range(SEED_DAYS * 24, 0, -1)]
    await store.write(list(seed_rows(figures, hours, HOUR, fine=False)), "hourly")
    await store.write(list(seed_rows(figures, slots, step, fine=True)), "fine")


async def seed_history(settings: Settings, rng: random.Random, workspace: Workspace, now: float | None = None) -> bool:
    """Seed a week of history, agreeing with ``workspace``, unless the history holds points already; whether it did."""
    if not settings.history.enabled:
        return False
    path = history_path(settings.history.path)
    try:
        store = await open_store(path)
    except HistoryUnavailable as exc:
        log.warning("demo_history_not_seeded", path=str(path), reason=str(exc))
        return False
    try:
        if await store.count("fine") or await store.count("hourly"):
            return False
        at = time.time() if now is None else now
        figures = await asyncio.to_thread(read_workspace, workspace, at)
        await _write_week(store, settings, rng, figures, at)
    except (sqlite3.Error, OSError) as exc:
        log.warning("demo_history_not_seeded", path=str(path), reason=str(exc))
        return False
    finally:
        await store.close()
    log.info("demo_history_seeded", path=str(path), days=SEED_DAYS, anchors={
        f"{channel}.{name}": value for (channel, name), value in figures.anchors.items()})
    return True
