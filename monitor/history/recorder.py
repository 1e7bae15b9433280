"""The history on the app: samples every channel's figures each step, keeps them in memory and in its file.

Sampling reads the broker's current state of every channel, the state the pollers publish,
so the history is written by the pollers without a poll doing any of its work: one sampler
pass every ``[history] step`` seconds, aligned to the step, whatever the channels'
intervals. Memory is updated first (pages read it), then the points go to the file off
the event loop. A failing write is logged once, counted, and the next step tries again.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor.channels.registry import CHANNEL_NAMES
from monitor.history.buckets import DIGITS, bucket_index, bucket_start, bucketed, filled
from monitor.history.recovery import HistoryUnavailable, open_store
from monitor.history.series import DAY, SERIES, Series, State, sample_channel, series_spec
from monitor.history.store import FINE_HOURS, HOUR, HistoryStore, Row
from monitor.history.window import RECENT_SLOTS, RecentWindow
from monitor.keys import BROKER, HISTORY, METRICS
from monitor.settings_table import HistorySettings

log = structlog.get_logger(__name__)

SLOT_MARGIN = 0.05  # seconds after a slot starts that the sampler wakes, so it never lands in the slot before


class History:
    """Each channel's figures over time: the newest slots in memory (``recent``), the rest in the file (``query``)."""

    def __init__(self, settings: HistorySettings, path: Path | None, now: Callable[[], float] = time.time,
                 slots: int = RECENT_SLOTS) -> None:
        self.enabled = settings.enabled
        self.step = settings.step
        self.days = settings.days
        self.path = path
        self.now = now
        self.window = RecentWindow(settings.step, slots)
        self.store: HistoryStore | None = None
        self.writes = 0
        self.write_errors = 0
        self._failing = False
        self._rolled_until: int | None = None
        # channel -> (slot it was read in, its series by day): pages ask on every render, the file changes once a step
        self._by_day: dict[str, tuple[int, dict[str, Series]]] = {}
        # Writes reach the file in the order their samples reached memory (the lock is first come, first served).
        self._writing = asyncio.Lock()

    async def open(self) -> None:
        """Open (or create, or recreate) the file and load its newest slots; without one, memory only."""
        if not self.enabled or self.path is None:
            return
        try:
            self.store = await open_store(self.path)
            self._rolled_until = await self.store.rolled_until()
            await self._load_window()
        except (HistoryUnavailable, sqlite3.Error) as exc:
            await self.close()
            log.warning("history_disabled", path=str(self.path), reason=str(exc),
                        meanwhile="figures kept in memory for this run only")

    async def _load_window(self) -> None:
        assert self.store is not None
        first = self.window.slot_start(self.window.slot_index(self.now()) - self.window.size)
        by_slot: dict[tuple[str, int], dict[str, float | None]] = {}
        for channel, name, ts, value in await self.store.fine_since(first):
            by_slot.setdefault((channel, self.window.index_of(ts)), {})[name] = value
        for (channel, index), values in by_slot.items():
            self.window.put(channel, index, values)

    async def close(self) -> None:
        """Close the file (memory stays readable)."""
        store, self.store = self.store, None
        if store is not None:
            await store.close()

    def recent(self, channel: str) -> dict[str, Series]:
        """``channel``'s series over the newest slots at the fine step, oldest first; from memory, no I/O.

        The answer is shared by every caller until the next sample: read it, never change it.
        """
        if not self.enabled:
            return {spec.name: Series(spec.name, spec.label, spec.format, self.step, [])
                    for spec in SERIES.get(channel, ())}
        return self.window.recent(channel, self.now())

    async def sample(self, states: Mapping[str, State]) -> None:
        """One sampler pass: each channel's values in ``states`` into the current slot, in memory and the file."""
        if not self.enabled:
            return
        at = self.now()
        index = self.window.slot_index(at)
        start = self.window.slot_start(index)
        rows: list[Row] = []
        for channel, state in states.items():
            values = sample_channel(channel, state, at)
            self.window.put(channel, index, values)
            rows.extend((channel, name, start, value) for name, value in values.items() if value is not None)
        await self._write(rows, at)
        self._by_day.clear()  # a page after this pass reads the day series with its point

    async def _write(self, rows: list[Row], at: float) -> None:
        try:
            async with self._writing:
                if self.store is None:
                    return
                await self.store.write(rows)
                await self._roll_up(at)
        except (sqlite3.Error, OSError) as exc:
            self.write_errors += 1
            if not self._failing:
                log.warning("history_write_failed", path=str(self.path), error=str(exc),
                            meanwhile="retried every step; logged again only after it works")
            self._failing = True
            return
        self.writes += 1
        if self._failing:
            log.info("history_write_recovered", path=str(self.path), failed_writes=self.write_errors)
        self._failing = False

    async def _roll_up(self, at: float) -> None:
        """Once an hour: the hours completed since the last roll-up into hourly points, then the expired dropped."""
        assert self.store is not None
        hour = int(at // HOUR * HOUR)
        if self._rolled_until is not None and self._rolled_until >= hour:
            return
        fine_before = hour - FINE_HOURS * HOUR
        start = fine_before if self._rolled_until is None else min(self._rolled_until, hour)
        await self.store.roll_up_and_prune(start, hour, fine_before, hour - self.days * DAY)
        self._rolled_until = hour

    def next_sample_delay(self) -> float:
        """Seconds from now until just after the next slot starts."""
        now = self.now()
        return max(0.0, (math.floor(now / self.step) + 1) * self.step - now) + SLOT_MARGIN

    async def query(self, channel: str, since: float, until: float, step: float) -> dict[str, Series]:
        """``channel``'s series in buckets of ``step`` seconds from ``since`` to ``until``, by each one's aggregate.

        From memory when the range lies within the window (or there is no file), else from the file.
        """
        first = bucket_index(since, step)
        count = bucket_index(until, step) - first + 1
        if not self.enabled:
            return self.recent(channel)
        now = self.now()
        window_start = self.window.slot_start(self.window.first_index(now))
        if self.store is None or bucket_start(first, step) >= window_start:
            return self._from_window(channel, first, count, step, now)
        rolled = self._rolled_until if self._rolled_until is not None else int(now // HOUR * HOUR)
        values = await self.store.bucketed(channel, bucket_start(first, step), until, step, rolled, DIGITS)
        names = [spec.name for spec in SERIES.get(channel, ())]
        names += sorted(set(values) - set(names))
        return {name: Series(name, spec.label, spec.format, step, filled(values.get(name, {}), first, count, step))
                for name in names if (spec := series_spec(channel, name)) is not None}

    async def by_day(self, channel: str, days: int) -> dict[str, Series]:
        """``channel``'s series a point a UTC day over the last ``days`` days; read from the file once a step."""
        slot = self.window.slot_index(self.now())
        cached = self._by_day.get(channel)
        if cached is None or cached[0] != slot:
            now = self.now()
            cached = self._by_day[channel] = (slot, await self.query(channel, now - (days - 1) * DAY, now, DAY))
        return cached[1]

    def _from_window(self, channel: str, first: int, count: int, step: float, now: float) -> dict[str, Series]:
        window = self.window
        slots = (window.first_index(now), window.end_index(now))
        result = {}
        for name in window.names(channel):
            spec = series_spec(channel, name)
            if spec is not None:
                points = window.points(channel, name, *slots)
                result[name] = Series(name, spec.label, spec.format, step,
                                      bucketed(points, first, count, step, spec.aggregate))
        return result


async def run_sampler(history: History, states: Callable[[], Mapping[str, State]]) -> None:
    """Sample ``states()`` into ``history`` now and just after every slot starts, until cancelled."""
    reported = False
    while True:
        try:
            await history.sample(states())
            reported = False
        except Exception:  # a state no series can read must not end the history: logged once per run of failures
            if not reported:
                log.exception("history_sample_failed")
            reported = True
        await asyncio.sleep(history.next_sample_delay())


class HistoryCollector:
    """``monitor_history_writes_total`` and ``monitor_history_write_errors_total``, read when Prometheus scrapes."""

    def __init__(self, history: History) -> None:
        self.history = history

    def collect(self) -> list[Metric]:
        """The history's write counters and whether it has a file."""
        writes = CounterMetricFamily("monitor_history_writes", "Sampler passes written to the history file",
                                     value=self.history.writes)
        errors = CounterMetricFamily("monitor_history_write_errors", "Sampler passes the history file refused",
                                     value=self.history.write_errors)
        stored = GaugeMetricFamily("monitor_history_file_open", "1 while the history is kept in its file",
                                   value=1 if self.history.store is not None else 0)
        return [writes, errors, stored]


async def history_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the history, sample the broker's channels every step, and close the file at shutdown."""
    history, broker = app[HISTORY], app[BROKER]
    await history.open()
    app[METRICS].registry.register(HistoryCollector(history))

    def states() -> dict[str, State]:
        return {name: broker.current(name).state for name in CHANNEL_NAMES}

    task = asyncio.get_running_loop().create_task(run_sampler(history, states))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await history.close()
