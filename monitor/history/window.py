"""The last slots of every channel's series, in memory: what pages draw on every render, at no I/O.

A slot is one step of the sampler: slot ``k`` starts at ``int(k * step)`` unix seconds
(steps are at least a second, so slots never share a second). The window keeps the newest
``size`` slots of every channel; a slot with no value for a series (the console was not
running, the source failed) is None.
"""

from __future__ import annotations

import math

from monitor.history.series import SERIES, Point, Series, Values, series_spec

RECENT_SLOTS = 90


class RecentWindow:
    """The newest ``size`` slots of each channel's values, at the fine step."""

    def __init__(self, step: float, size: int = RECENT_SLOTS) -> None:
        self.step = step
        self.size = size
        self._slots: dict[str, dict[int, Values]] = {}  # channel -> slot start -> values, oldest first
        self._newest: int | None = None  # index of the newest slot sampled
        # channel -> (newest slot shown, its series): pages ask on every render, the answer changes once a step.
        self._recent: dict[str, tuple[int, dict[str, Series]]] = {}

    def slot_index(self, at: float) -> int:
        """The slot ``at`` (unix seconds) falls in."""
        return math.floor(at / self.step)

    def slot_start(self, index: int) -> int:
        """When slot ``index`` starts, in whole unix seconds (as stored)."""
        return int(index * self.step)

    def index_of(self, start: int) -> int:
        """The slot starting at ``start`` (as stored); the slot it falls in when written at another step."""
        guess = math.floor(start / self.step)
        # start = int(k * step) lies within a second below k * step, and a step is at least a second.
        for index in (guess, guess + 1):
            if self.slot_start(index) == start:
                return index
        return guess

    def put(self, channel: str, index: int, values: Values) -> None:
        """Record ``channel``'s values in slot ``index`` (a second sample of the slot replaces the first)."""
        slots = self._slots.setdefault(channel, {})
        self._recent.pop(channel, None)
        start = self.slot_start(index)
        slots.pop(start, None)  # re-inserted last: the dict stays in slot order
        slots[start] = values
        if self._newest is None or index > self._newest:
            self._newest = index
        self._trim(slots)

    def _trim(self, slots: dict[int, Values]) -> None:
        oldest = self.slot_start(self._newest - self.size + 1) if self._newest is not None else 0
        for start in [start for start in slots if start < oldest]:
            del slots[start]

    def end_index(self, now: float) -> int:
        """The newest slot a page shows: the current one once sampled, else the one before."""
        current = self.slot_index(now)
        return current if self._newest is not None and self._newest >= current else current - 1

    def first_index(self, now: float) -> int:
        """The oldest slot the window holds when ``now``."""
        return self.end_index(now) - self.size + 1

    def names(self, channel: str) -> list[str]:
        """``channel``'s series: the declared ones, then family members seen in the window (sorted)."""
        declared = [spec.name for spec in SERIES.get(channel, ())]
        seen = {name for values in self._slots.get(channel, {}).values() for name, value in values.items()
                if value is not None}
        return declared + sorted(seen - set(declared))

    def points(self, channel: str, name: str, first: int, last: int) -> list[Point]:
        """``(slot start, value)`` of slots ``first`` to ``last`` of one series; None where it has no value."""
        slots = self._slots.get(channel, {})
        points: list[Point] = []
        for index in range(first, last + 1):
            start = self.slot_start(index)
            values = slots.get(start)
            points.append((start, values.get(name) if values is not None else None))
        return points

    def recent(self, channel: str, now: float) -> dict[str, Series]:
        """Each of ``channel``'s series over the window's slots, oldest first (shared: never change them)."""
        last = self.end_index(now)
        cached = self._recent.get(channel)
        if cached is not None and cached[0] == last:
            return cached[1]
        first = last - self.size + 1
        result = {}
        for name in self.names(channel):
            spec = series_spec(channel, name)
            if spec is not None:
                result[name] = Series(name, spec.label, spec.format, self.step, self.points(channel, name, first, last))
        self._recent[channel] = (last, result)
        return result
