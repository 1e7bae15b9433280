"""The queue channel: phase_queue rows keyed by queue_id, plus the paused flag."""

from __future__ import annotations

from typing import Any

from monitor.channels.base import ChannelData, decoded_record
from monitor.channels.dbreader import DatabaseReader
from monitor.sources.database import Rows

QUEUE_STATUSES = ("queued", "ready", "running", "completed", "blocked", "failed")
JSON_COLUMNS = ("depends_on_phases", "phase_data")

DEFAULT_QUERIES = {
    "phase_queue": "SELECT * FROM phase_queue",
    "queue_config": "SELECT config_key, config_value FROM queue_config",
}


def build_queue(phase_rows: Rows, config_rows: Rows) -> ChannelData:
    """Summary and items of the queue channel from the two tables' rows."""
    items: dict[str, Any] = {}
    for row in phase_rows:
        record = decoded_record(row, JSON_COLUMNS)
        phase_data = record.get("phase_data")
        if isinstance(phase_data, dict) and phase_data.get("title") is not None:
            record["title"] = str(phase_data["title"])
        items[str(record["queue_id"])] = record
    by_status = {status: 0 for status in QUEUE_STATUSES}
    for record in items.values():
        if record.get("status") in by_status:
            by_status[record["status"]] += 1
    config = {str(r["config_key"]): r.get("config_value") for r in config_rows}
    paused = str(config.get("queue_paused", "false")).strip().lower() == "true"
    return ChannelData({"total": len(items), "paused": paused, "by_status": by_status}, items)


def build_queue_channel(rows: dict[str, Rows]) -> ChannelData:
    """The queue channel from the results of ``DEFAULT_QUERIES``."""
    return build_queue(rows["phase_queue"], rows["queue_config"])


def make_reader(sources) -> DatabaseReader:
    """The queue channel's reader on the shared database (queries overridable in [queries])."""
    queries = {name: sources.settings.query(name, sql) for name, sql in DEFAULT_QUERIES.items()}
    return DatabaseReader(sources.database, queries, build_queue_channel)
