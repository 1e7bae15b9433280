"""What every channel reader returns, and small helpers shared by the builders."""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from monitor.sources.database import Rows
from monitor.sources.schema import Query, verbatim


@dataclass(frozen=True, slots=True)
class ChannelData:
    """A channel's data as read from its sources: summary and items by key."""

    summary: dict[str, Any]
    items: dict[str, Any]


class SourceDown(Exception):
    """The source failed, and the reader knows what the channel should show meanwhile.

    The poller publishes ``data`` together with the error (``meta.source == "error"``)
    in one patch; e.g. webhook-status shows ``status: "unreachable"``.
    """

    def __init__(self, message: str, data: ChannelData) -> None:
        super().__init__(message)
        self.data = data


class Reader(Protocol):
    """Reads one channel's sources."""

    async def read(self) -> ChannelData | None:
        """Fresh data, or None when the sources are unchanged since the last good read.

        Raises on failure; ``SourceDown`` when the channel has data to show with the error.
        """


def parse_json_text(value: Any) -> Any:
    """Decode a JSON column stored as text; keep the text when it isn't JSON."""
    if not isinstance(value, (str, bytes)):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):  # not JSON, or nested beyond what a reader should follow
        return value


def decoded_record(row: Any, json_columns: tuple[str, ...]) -> dict[str, Any]:
    """A row as a dict, with those of ``json_columns`` it has decoded from their JSON text."""
    record = dict(row)
    for column in json_columns:
        if column in record:
            record[column] = parse_json_text(record[column])
    return record


_NESTED = (dict, list, tuple)


def same_json(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down: ``1``, ``1.0`` and ``true`` are three JSON values.

    Called for every row of every read: the types of a row's values are compared as one
    tuple (C speed), and only nested values (PostgreSQL's decoded json) are walked. Values
    in another order count as different: the row is merely decoded again.
    """
    if a != b or type(a) is not type(b):
        return False
    if type(a) is dict:
        kinds = tuple(map(type, a.values()))
        if kinds != tuple(map(type, b.values())):
            return False
        if dict in kinds or list in kinds or tuple in kinds:
            return all(same_json(value, b[key]) for key, value in a.items() if type(value) in _NESTED)
        return True
    if type(a) in (list, tuple):
        return all(map(same_json, a, b))
    return True


def same_rows(a: Rows, b: Rows) -> bool:
    """Two reads of a query gave the same rows, type for type (``same_json``)."""
    return len(a) == len(b) and all(map(same_json, a, b))


def reuse_rows(kept: Rows, fresh: Rows) -> tuple[Rows, bool]:
    """``fresh`` with each row that is the same (``same_json``) as the kept row at its place replaced by
    that kept row, and whether every row was.

    One comparison per row: ``DecodedRecords`` then knows an unchanged row by identity
    instead of comparing it again.
    """
    merged = [old if old is new or same_json(old, new) else new for old, new in zip(kept, fresh, strict=False)]
    merged += fresh[len(merged):]
    return merged, len(kept) == len(fresh) and all(map(operator.is_, merged, kept))


class DecodedRecords:
    """Rows decoded once per version: a row equal to the last one under its key gives back the same record.

    A commit changes a few rows of hundreds; decoding the JSON columns of all of them
    again is most of what building a channel costs, and handing back the same record
    object lets the published state skip it by identity (``ChannelState``). Rows are
    compared type for type (``same_json``): PostgreSQL hands json columns over decoded,
    and ``true`` → ``1`` is a change. Records handed out are never changed afterwards, by
    the caller either: ``ChannelState`` relies on it, and nothing enforces it.
    """

    def __init__(self, json_columns: tuple[str, ...], key: str,
                 finish: Callable[[dict[str, Any]], None] = lambda record: None) -> None:
        """``finish`` completes each newly decoded record, before it is handed out."""
        self.json_columns, self.key, self.finish = json_columns, key, finish
        self._last: dict[Any, tuple[Any, dict[str, Any]]] = {}

    def decode(self, rows: Iterable[Any]) -> list[dict[str, Any]]:
        """``decoded_record`` of each row, reusing the record of an unchanged row."""
        last, fresh, records = self._last, {}, []
        for row in rows:
            key = row.get(self.key)
            seen = last.get(key) if key is not None else None
            if seen is not None and (seen[0] is row or same_json(seen[0], row)):
                record = seen[1]
            else:
                record = decoded_record(row, self.json_columns)
                self.finish(record)
            if key is not None:
                fresh[key] = (row, record)
            records.append(record)
        self._last = fresh
        return records


def finite_number(value: Any) -> TypeGuard[int | float]:
    """A real, finite number: not a bool (JSON's true is no count), not NaN or infinity."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def percentage(part: int | float, whole: int | float) -> float | None:
    """``part / whole`` as a percentage rounded to 1 decimal; None when ``whole`` is 0."""
    if not whole:
        return None
    return round(100.0 * part / whole, 1)


def channel_queries(settings: Any, defaults: Mapping[str, Query]) -> dict[str, Query]:
    """A channel's queries: the defaults, each replaced by its ``[queries]`` override (run as written)."""
    return {name: verbatim(settings.queries[name]) if name in settings.queries else query
            for name, query in defaults.items()}


def parse_time(value: Any) -> dt.datetime | None:
    """A time as an aware datetime (naive values are taken as UTC); None when unreadable."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
