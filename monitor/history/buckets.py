"""Buckets of a time range: which bucket a moment falls in, and a bucket's value by its series' aggregate.

Buckets are aligned to multiples of their width since the epoch (so one-day buckets start
at UTC midnight), the same in memory and in SQL (``store``). A bucket without a value is
None: a gap, never a value made up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from monitor.history.series import MAX, MIN, Point

DIGITS = 4  # aggregated values are rounded: a mean of 70.1 and 80.3 need not carry 15 digits


def bucket_index(ts: float, step: float) -> int:
    """The bucket of width ``step`` that ``ts`` falls in."""
    return math.floor(ts / step)


def bucket_start(index: int, step: float) -> float:
    """When bucket ``index`` of width ``step`` starts (an int when whole, as JSON shows it)."""
    start = index * step
    return int(start) if float(start).is_integer() else round(start, 3)


def aggregate(values: list[float], how: str) -> float | None:
    """``values`` rolled up by ``how`` (mean, max or min), rounded; None when there are none."""
    if not values:
        return None
    if how == MAX:
        result = max(values)
    elif how == MIN:
        result = min(values)
    else:
        result = math.fsum(values) / len(values)
    return round(result, DIGITS)


def bucketed(points: Iterable[Point], first: int, count: int, step: float, how: str) -> list[Point]:
    """``points`` rolled up into ``count`` buckets of width ``step`` from bucket ``first`` on, oldest first."""
    grouped: dict[int, list[float]] = {}
    for ts, value in points:
        if value is None:
            continue
        index = bucket_index(ts, step)
        if first <= index < first + count:
            grouped.setdefault(index, []).append(value)
    return [(bucket_start(index, step), aggregate(grouped.get(index, []), how))
            for index in range(first, first + count)]


def filled(values: dict[int, float], first: int, count: int, step: float) -> list[Point]:
    """Points of ``count`` buckets from ``first`` on, each bucket's value from ``values`` by index, else None."""
    return [(bucket_start(index, step), values.get(index)) for index in range(first, first + count)]
