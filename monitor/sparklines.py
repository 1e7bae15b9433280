"""Trends drawn on the server: a sparkline's SVG path and a health bar's slots, from a history series.

Mirrored by ``static/trend.js``, which redraws them live from ``/api/v1/<channel>/history``:
a sparkline redrawn by the script must read exactly like the one on a freshly rendered page.
Change both together.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.display import fixed, show
from monitor.history.series import PERCENT, Point

WIDTH, HEIGHT = 100.0, 24.0  # the viewBox of every sparkline; CSS stretches it to its box


def value_range(values: Sequence[float], fmt: str) -> tuple[float, float]:
    """The (low, high) a sparkline spans: counts and money from zero, rates from their own lowest."""
    low, high = min(values), max(values)
    return (low if fmt == PERCENT else min(0.0, low)), high


def spark_path(points: Sequence[Point], fmt: str = "") -> str:
    """An SVG path through ``points``, one ``M`` per run of known values, so a gap stays a gap."""
    values = [value for _, value in points if value is not None]
    if not values:
        return ""
    low, high = value_range(values, fmt)
    last = max(len(points) - 1, 1)
    path: list[str] = []
    drawing = False
    for index, (_, value) in enumerate(points):
        if value is None:
            if drawing and path[-1][0] == "M":
                path.append("h0")  # a lone point: a zero-length line, which the round cap shows as a dot
            drawing = False
            continue
        x = fixed(index * WIDTH / last, 1)
        y = fixed(HEIGHT / 2 if high == low else HEIGHT - (value - low) / (high - low) * HEIGHT, 1)
        path.append(f"{'L' if drawing else 'M'}{x} {y}")
        drawing = True
    if drawing and path[-1][0] == "M":
        path.append("h0")
    return "".join(path)


def spark_caption(points: Sequence[Point], fmt: str) -> str:
    """What a sparkline spans, in words: ``"12–30"``, or ``"no data yet"``."""
    values = [value for _, value in points if value is not None]
    if not values:
        return "no data yet"
    low, high = min(values), max(values)
    return show(fmt, low) if low == high else f"{show(fmt, low)}–{show(fmt, high)}"


def span_words(step: float, count: int) -> str:
    """How long ``count`` slots of ``step`` seconds are, in words: ``"90 min"``, ``"30 days"``."""
    seconds = step * count
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h" if seconds < 2 * 86_400 else f"{round(seconds / 86_400)} days"


def health_slot(value: float | None) -> str:
    """A health bar slot's state: ``ok`` (1), ``warn`` (from 0.5), ``bad`` (below), ``none`` (unknown)."""
    if value is None:
        return "none"
    return "ok" if value >= 1 else "warn" if value >= 0.5 else "bad"


def health_slots(points: Sequence[Point]) -> list[str]:
    """Each slot's state, oldest first."""
    return [health_slot(value) for _, value in points]


def template_globals() -> dict[str, object]:
    """The helpers the trend macros call."""
    return {"spark_path": spark_path, "spark_caption": spark_caption, "health_slots": health_slots,
            "span_words": span_words}
