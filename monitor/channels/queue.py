"""The queue channel: phase_queue rows keyed by queue_id, plus the paused flag."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from monitor.adw import QUEUE_STATUSES
from monitor.channels.base import ChannelData, DecodedRecords, channel_queries
from monitor.channels.dbreader import DatabaseReader
from monitor.channels.spec import DATABASE, ChannelSpec
from monitor.sources.database import Rows
from monitor.sources.resources import Sources
from monitor.sources.schema import Query

JSON_COLUMNS = ("depends_on_phases", "phase_data")

DEFAULT_QUERIES = MappingProxyType({
    "phase_queue": Query("phase_queue", "SELECT * FROM phase_queue", required=("queue_id", "status")),
    # Older installations have no queue_config: then whether the queue is paused is unknown.
    "queue_config": Query("queue_config", "SELECT config_key, config_value FROM queue_config",
                          required=("config_key", "config_value"), optional=True),
})


def paused_flag(config_rows: Rows | None) -> bool | None:
    """queue_config's ``queue_paused`` as a bool; None when the table is missing."""
    if config_rows is None:
        return None
    config = {str(r["config_key"]): r.get("config_value") for r in config_rows}
    return str(config.get("queue_paused", "false")).strip().lower() == "true"


def add_title(record: dict[str, Any]) -> None:
    """The phase's title, from its phase_data, as the record's own field."""
    phase_data = record.get("phase_data")
    if isinstance(phase_data, dict) and phase_data.get("title") is not None:
        record["title"] = str(phase_data["title"])


def build_queue(phase_rows: Rows, config_rows: Rows | None, records: DecodedRecords | None = None) -> ChannelData:
    """Summary and items of the queue channel from the two tables' rows (None = no queue_config)."""
    records = records or DecodedRecords(JSON_COLUMNS, "queue_id", add_title)
    items: dict[str, Any] = {str(record["queue_id"]): record for record in records.decode(phase_rows)}
    by_status = {status: 0 for status in QUEUE_STATUSES}
    for record in items.values():
        if record.get("status") in by_status:
            by_status[record["status"]] += 1
    summary = {"total": len(items), "paused": paused_flag(config_rows), "by_status": by_status}
    return ChannelData({key: value for key, value in summary.items() if value is not None}, items)


def build_queue_channel(rows: dict[str, Rows], records: DecodedRecords | None = None) -> ChannelData:
    """The queue channel from the results of ``DEFAULT_QUERIES`` (``records``: decoded rows kept between reads)."""
    return build_queue(rows["phase_queue"], rows.get("queue_config"), records)


def make_reader(sources: Sources) -> DatabaseReader:
    """The queue channel's reader on the shared database (queries overridable in [queries])."""
    records = DecodedRecords(JSON_COLUMNS, "queue_id", add_title)
    return DatabaseReader(sources.database, channel_queries(sources.settings, SPEC.queries),
                          lambda rows: build_queue_channel(rows, records))


SPEC = ChannelSpec(name="queue", title="Phase queue", make_reader=make_reader, queries=DEFAULT_QUERIES,
                   watches=frozenset({DATABASE}))
