"""A week of plausible history for ``monitor demo``, so sparklines and health bars show something on the first run.

Hourly points for the seven days before the current hour and fine points for the last 90
slots, on the demo's scale: a queue of 15–34 open items with a few running, up to six
runs at once, a success rate in the mid seventies, $2–14 of runs a day (recorded as the
day-so-far sum, as the sampler does), a webhook service mostly above 90 % and health
checks that are healthy but for the odd degraded or failed hour. A history file that
already holds points (a workspace run before) is left as it is.
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from collections.abc import Callable, Iterator

import structlog

from monitor.history.paths import history_path
from monitor.history.recovery import HistoryUnavailable, open_store
from monitor.history.series import CHECK_PREFIX, DAY
from monitor.history.store import HOUR, HistoryStore, Row
from monitor.history.window import RECENT_SLOTS
from monitor.settings import Settings

log = structlog.get_logger(__name__)

SEED_DAYS = 7
Figure = Callable[[float, float], float]  # (start, seconds covered) -> the point for that span


def check_names(settings: Settings) -> list[str]:
    """The system-status checks a console with ``settings`` runs (built-in ones, then ``[[checks]]``)."""
    names = ["console", "database"]
    names += ["webhook"] if settings.sources.webhook_url else []
    names += ["backend"] if settings.sources.backend_url else []
    return list(dict.fromkeys(names + [check.name for check in settings.checks]))


def _wave(rng: random.Random, middle: float, swing: float, noise: float, low: float, high: float) -> Figure:
    """A daily cycle around ``middle`` with a drifting second harmonic and noise, kept in [low, high]."""
    phase, drift = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)

    def figure(start: float, span: float) -> float:
        day = 2 * math.pi * (start + span / 2) / DAY
        value = middle + swing * math.sin(day + phase) + 0.3 * swing * math.sin(day / 3.1 + drift)
        return min(high, max(low, value + rng.gauss(0, noise)))
    return figure


def _cost_so_far(rng: random.Random) -> Figure:
    """The cost of the runs started so far that UTC day: a day's total of $2–14, mostly spent in working hours."""
    totals: dict[int, float] = {}

    def figure(start: float, span: float) -> float:
        at = start + span - 1  # the last moment of the span: the day-so-far sum only grows, so that is its max
        total = totals.setdefault(int(at // DAY), rng.uniform(2.0, 14.0))
        elapsed = (at % DAY) / DAY
        return round(total * (elapsed - math.sin(2 * math.pi * elapsed) / (2 * math.pi)), 4)
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


def demo_figures(rng: random.Random, checks: list[str]) -> dict[tuple[str, str], Figure]:
    """Every seeded series, by (channel, name), as a function of time."""
    figures = {
        ("queue", "depth"): _wave(rng, 25.0, 4.0, 1.5, 15.0, 34.0),
        ("queue", "running"): _wave(rng, 4.0, 1.5, 0.8, 0.0, 6.0),
        ("adw-monitor", "running"): _wave(rng, 4.0, 1.5, 0.8, 1.0, 6.0),
        ("adw-monitor", "failed"): _wave(rng, 2.5, 1.0, 0.4, 0.0, 5.0),
        ("workflow-history", "success_rate"): _wave(rng, 76.0, 2.5, 0.6, 65.0, 88.0),
        ("workflow-history", "cost_per_day"): _cost_so_far(rng),
        ("planned-features", "completion_rate"): _wave(rng, 55.0, 2.0, 0.3, 45.0, 65.0),
        ("webhook-status", "success_rate"): _wave(rng, 94.0, 3.0, 1.5, 80.0, 100.0),
    }
    figures.update({("system-status", CHECK_PREFIX + name): _health(rng) for name in checks})
    return figures


COUNTS = ("depth", "running", "failed")  # whole numbers in a sample, fractions only as an hour's mean


def seed_rows(figures: dict[tuple[str, str], Figure], starts: list[int], span: float, fine: bool) -> Iterator[Row]:
    """A point of every series for ``span`` seconds from each of ``starts``; health_percentage from the checks."""
    for start in starts:
        values = {key: figure(start, span) for key, figure in figures.items()}
        for (channel, name), value in values.items():
            digits = 0 if fine and name in COUNTS else 4 if name == "cost_per_day" else 1
            yield channel, name, start, round(value, digits)
        checks = [value for (channel, _), value in values.items() if channel == "system-status"]
        if checks:
            healthy = sum(value == 1.0 for value in checks)
            yield "system-status", "health_percentage", start, round(100.0 * healthy / len(checks), 1)


async def _write_week(store: HistoryStore, settings: Settings, rng: random.Random, now: float) -> None:
    """Hourly points for the week before ``now``'s hour, fine points for the slots before ``now``'s."""
    figures = demo_figures(rng, check_names(settings))
    hour, step = int(now // HOUR * HOUR), settings.history.step
    hours = [hour - i * HOUR for i in range(SEED_DAYS * 24, 0, -1)]
    await store.write(list(seed_rows(figures, hours, HOUR, fine=False)), "hourly")
    current = math.floor(now / step)
    slots = [int(index * step) for index in range(current - RECENT_SLOTS, current)]  # the sampler adds the next
    await store.write(list(seed_rows(figures, slots, step, fine=True)), "fine")


async def seed_history(settings: Settings, rng: random.Random, now: float | None = None) -> bool:
    """Seed a week of history into the demo console's history file unless it holds points already; whether it did."""
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
        await _write_week(store, settings, rng, time.time() if now is None else now)
    except sqlite3.Error as exc:
        log.warning("demo_history_not_seeded", path=str(path), reason=str(exc))
        return False
    finally:
        await store.close()
    log.info("demo_history_seeded", path=str(path), days=SEED_DAYS)
    return True
