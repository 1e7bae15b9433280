"""How panels present channel state: value formats, sort orders, row groups, pipelines.

The browser applies the very same rules to live updates (``static/render.js``), so a
row updated live reads exactly like the same row on a fresh page: change both together.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

from monitor import adw

# Formats whose element also carries the raw value in data-value: for colour and symbols, and
# for the page's ticker (times).
VALUE_FORMATS = frozenset({"badge", "active", "errors", "paused", "quickwin", "time"})
SAFE_URL_SCHEMES = ("http://", "https://")


def text(value: Any) -> str:
    """A value as plain text, exactly as the browser's ``text()`` writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # JSON has one number type: the browser prints 3.0 as "3".
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {text(value[k])}" for k in sorted(value))
    return str(value)


def is_number(value: Any) -> bool:
    """True for JSON numbers (booleans are not numbers here, as in JavaScript)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, rounding halves up like JavaScript's Math.round."""
    scale = 10 ** digits
    units = math.floor(value * scale + 0.5)
    sign, units = ("-" if units < 0 else ""), abs(units)
    whole, fraction = divmod(units, scale)
    return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"


def duration(seconds: float) -> str:
    """Seconds as ``1h 02m``, ``3m 05s`` or ``42s``."""
    total = math.floor(seconds + 0.5)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _numeric(render: Callable[[float], str]) -> Callable[[Any], str]:
    return lambda value: render(value) if is_number(value) else text(value)


FORMATS: dict[str, Callable[[Any], str]] = {
    "badge": lambda v: text(v).replace("_", " "),
    "money": _numeric(lambda v: "$" + fixed(v, 2)),
    "duration": _numeric(duration),
    "percent": _numeric(lambda v: fixed(v, 1) + "%"),
    "hours": _numeric(lambda v: fixed(v, 1) + " h"),
    "ms": _numeric(lambda v: fixed(v, 0) + " ms"),
    "time": lambda v: text(v).replace("T", " ", 1)[:16],
    "issue": lambda v: "" if v is None or v == "" else "#" + text(v),
    "active": lambda v: "" if v is None else ("process up" if v is True else "no process"),
    "errors": _numeric(lambda v: "no errors" if v == 0 else f"{text(v)} error{'' if v == 1 else 's'}"),
    "paused": lambda v: "" if v is None else ("paused" if v is True else "accepting work"),
    "quickwin": lambda v: "quick win" if is_number(v) and v <= 2 else "",
    "overrun": lambda v: "over estimate" if v is True else "",
    "counts": lambda v: " · ".join(f"{k} {text(v[k])}" for k in sorted(v)) if isinstance(v, dict) else text(v),
}


def show(fmt: str, value: Any) -> str:
    """``value`` in the display format ``fmt`` (plain text when ``fmt`` is empty or unknown)."""
    return FORMATS.get(fmt, text)(value)


def value_attr(value: Any) -> str:
    """The raw value as written to ``data-value`` (what CSS keys colours and symbols on)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return text(value)


def lookup(record: Any, path: str, key: str = "") -> Any:
    """``record[a][b]`` for the path ``a.b``; ``_key`` names the item's key; None when absent."""
    if path == "_key":
        return key
    for part in path.split("."):
        if not isinstance(record, Mapping):
            return None
        record = record.get(part)
    return record


def safe_url(value: Any) -> str:
    """``value`` when it is an http(s) URL, else "" (never a ``javascript:`` link)."""
    return value if isinstance(value, str) and value.lower().startswith(SAFE_URL_SCHEMES) else ""


def _names(value: Any) -> set[str]:
    return {str(v) for v in value} if isinstance(value, (list, tuple)) else set()


def phase_state(item: Mapping[str, Any], phase: str) -> str:
    """skipped | done | failed | current | pending: where ``phase`` stands in a run's item."""
    if phase in _names(item.get("phases_skipped")):
        return "skipped"
    if phase in _names(item.get("phases_completed")):
        return "done"
    if phase == item.get("failed_phase"):
        return "failed"
    return "current" if phase == item.get("current_phase") else "pending"


def phase_states(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(phase, state) for the ten ADW phases of a run, in order."""
    return [(phase, phase_state(item, phase)) for phase in adw.PHASES]


def _sort_terms(spec: str) -> list[tuple[str, bool, list[str] | None]]:
    """``-priority queue_position status=running,queued`` → (field, descending, ranks)."""
    terms = []
    for word in spec.split():
        descending = word.startswith("-")
        name, _, ranks = word.lstrip("-").partition("=")
        terms.append((name, descending, ranks.split(",") if ranks else None))
    return terms


def _missing(value: Any) -> bool:
    return value is None or value == ""


def _compare_present(a: Any, b: Any) -> int:
    if is_number(a) != is_number(b):
        return -1 if is_number(a) else 1
    if not is_number(a):
        a, b = text(a), text(b)
    order: int = (a > b) - (a < b)
    return order


def _compare_term(a: Any, b: Any, descending: bool, ranks: list[str] | None) -> int:
    if ranks is not None:
        a = None if _missing(a) else (ranks.index(text(a)) if text(a) in ranks else len(ranks))
        b = None if _missing(b) else (ranks.index(text(b)) if text(b) in ranks else len(ranks))
    if _missing(a) or _missing(b):
        return _missing(a) - _missing(b)  # absent values go last in either direction
    order = _compare_present(a, b)
    return -order if descending else order


def sorted_items(items: Mapping[str, Any], spec: str) -> list[tuple[str, Any]]:
    """``items`` as (key, item) pairs in the order of the sort ``spec``, ties by key."""
    terms = _sort_terms(spec)

    def compare(left: tuple[str, Any], right: tuple[str, Any]) -> int:
        for name, descending, ranks in terms:
            order = _compare_term(lookup(left[1], name), lookup(right[1], name), descending, ranks)
            if order:
                return order
        return (left[0] > right[0]) - (left[0] < right[0])

    return sorted(items.items(), key=functools.cmp_to_key(compare))


def matches_where(item: Any, where: str) -> bool:
    """Whether ``item`` belongs in a row group: ``status=a,b`` or its negation ``!status=a,b``."""
    if not where:
        return True
    negated = where.startswith("!")
    name, _, values = where.lstrip("!").partition("=")
    return (text(lookup(item, name)) in values.split(",")) != negated


def grouped_rows(items: Mapping[str, Any], spec: str, where: str) -> list[tuple[str, Any]]:
    """The sorted (key, item) pairs of one row group."""
    return [(key, item) for key, item in sorted_items(items, spec) if matches_where(item, where)]


def utc(at: float) -> str:
    """Unix seconds as a UTC time to the second, for the alerts page."""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def count_where(items: Mapping[str, Any], where: str) -> int:
    """How many of ``items`` belong in the row group ``where``."""
    return sum(1 for item in items.values() if matches_where(item, where))


def template_globals() -> dict[str, Any]:
    """The helpers the panel templates call."""
    return {
        "show": show, "value_attr": value_attr, "lookup": lookup, "safe_url": safe_url,
        "phase_states": phase_states, "grouped_rows": grouped_rows, "count_where": count_where, "utc": utc,
        "VALUE_FORMATS": VALUE_FORMATS, "adw": adw,
    }
