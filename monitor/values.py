"""Source values made JSON-shaped, the same for every view (pages, JSON API, sockets, snapshot).

Numbers a JSON client cannot hold exactly — NaN, ±Infinity, integers beyond ±(2**53 - 1) —
become their text here (``"NaN"``, ``"Infinity"``, ``"-Infinity"``,
``"18446744073709551616"``); data that still cannot be encoded is the channel's error
(``monitor.state``), never a half-published change.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

MAX_SAFE_INTEGER = 2 ** 53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: larger integers lose digits


def utc_now_iso() -> str:
    """The current UTC time as ISO-8601 with seconds precision."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def to_json_value(value: Any) -> Any:
    """Make ``value`` JSON-shaped and drop ``None`` members: absent means null on the wire."""
    kind = type(value)
    if kind in _PLAIN:  # most values of a row: no conversion, decided in one lookup
        return value
    if kind is int:
        return value if abs(value) <= MAX_SAFE_INTEGER else str(value)
    if kind is float:  # x - x is 0.0 for every finite x, NaN for NaN and ±Infinity: no call needed
        return value if value - value == 0.0 else number_text(value)
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return _converted(value)


def _converted(value: Any) -> Any:
    """The JSON form of a value that is not a plain str, bool, int, float, dict or list."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):  # PostgreSQL numeric; it may be 'NaN'
        return "NaN" if value.is_nan() else to_json_value(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):  # subclasses such as StrEnum: by value
        return str.__str__(value)
    if isinstance(value, int):
        return to_json_value(int(value))
    if isinstance(value, float):
        return to_json_value(float(value))
    # UUIDs, intervals and whatever else a driver returns: their text, the same on every view.
    return str(value)


_PLAIN = frozenset({str, bool})


def number_text(value: float) -> str:
    """NaN and ±Infinity as text, spelled as JavaScript's ``String()`` spells them."""
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
