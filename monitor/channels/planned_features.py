"""The planned-features channel: planned_features rows keyed by id, with status and hours totals.

Items and summary both come from the whole table (query ``planned_features``,
overridable in ``[queries]``). The ``by_*`` counts always list the known values (0 when
none) and add any other value found; rows with no value there are counted only in
``total``. Hours are rounded to 2 decimals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from monitor.adw import FEATURE_PRIORITIES, FEATURE_STATUSES, FEATURE_TYPES
from monitor.channels.base import ChannelData, DecodedRecords, channel_queries, percentage
from monitor.channels.dbreader import DatabaseReader
from monitor.channels.spec import DATABASE, ChannelSpec
from monitor.sources.database import Rows
from monitor.sources.resources import Sources
from monitor.sources.schema import Query

JSON_COLUMNS = ("tags", "generated_plan")

DEFAULT_QUERIES = MappingProxyType(
    {"planned_features": Query("planned_features", "SELECT * FROM planned_features", required=("id",))})


def build_items(rows: Rows, records: DecodedRecords | None = None) -> dict[str, Any]:
    """Items keyed by id as text, with the JSON columns decoded (``records``: kept between reads)."""
    records = records or DecodedRecords(JSON_COLUMNS, "id")
    return {str(record["id"]): record for record in records.decode(rows)}


def count_by(records: Iterable[dict[str, Any]], column: str, known: tuple[str, ...]) -> dict[str, int]:
    """How many records carry each value of ``column``: every known value, then any other."""
    counts = {value: 0 for value in known}
    for record in records:
        value = record.get(column)
        if value is not None:
            counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def hours(records: Iterable[dict[str, Any]], column: str) -> float:
    """The sum of ``column`` over the records that have it, rounded to 2 decimals."""
    return round(math.fsum(float(r[column]) for r in records if r.get(column) is not None), 2)


def build_summary(items: dict[str, Any]) -> dict[str, Any]:
    """total, by_status, by_priority, by_type, total_estimated_hours, total_actual_hours, completion_rate."""
    records = list(items.values())
    by_status = count_by(records, "status", FEATURE_STATUSES)
    summary = {
        "total": len(records),
        "by_status": by_status,
        "by_priority": count_by(records, "priority", FEATURE_PRIORITIES),
        "by_type": count_by(records, "item_type", FEATURE_TYPES),
        "total_estimated_hours": hours(records, "estimated_hours"),
        "total_actual_hours": hours(records, "actual_hours"),
        "completion_rate": percentage(by_status["completed"], len(records) - by_status["cancelled"]),
    }
    return {key: value for key, value in summary.items() if value is not None}


def build_planned_features(rows: dict[str, Rows], records: DecodedRecords | None = None) -> ChannelData:
    """The channel from the results of ``DEFAULT_QUERIES``."""
    items = build_items(rows["planned_features"], records)
    return ChannelData(build_summary(items), items)


def make_reader(sources: Sources) -> DatabaseReader:
    """The planned-features reader on the shared database (query overridable in [queries])."""
    queries = channel_queries(sources.settings, SPEC.queries)
    records = DecodedRecords(JSON_COLUMNS, "id")
    return DatabaseReader(sources.database, queries, lambda rows: build_planned_features(rows, records))


SPEC = ChannelSpec(name="planned-features", title="Planned features", make_reader=make_reader,
                   queries=DEFAULT_QUERIES, watches=frozenset({DATABASE}))
