"""What every channel reader returns, and small helpers shared by the builders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ChannelData:
    """A channel's data as read from its sources: summary and items by key."""

    summary: dict[str, Any]
    items: dict[str, Any]


class Reader(Protocol):
    """Reads one channel's sources."""

    async def read(self) -> ChannelData | None:
        """Fresh data, or None when the sources are unchanged since the last good read."""

    async def close(self) -> None:
        """Release what the reader holds."""


def parse_json_text(value: Any) -> Any:
    """Decode a JSON column stored as text; keep the text when it isn't JSON."""
    if not isinstance(value, (str, bytes)):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def percentage(part: int | float, whole: int | float) -> float | None:
    """``part / whole`` as a percentage rounded to 1 decimal; None when ``whole`` is 0."""
    if not whole:
        return None
    return round(100.0 * part / whole, 1)
