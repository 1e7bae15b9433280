"""Which original message each channel sends, and its encoding: ``{"type": …, "data": …}``, once per change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from monitor.channels import (
    adw_monitor,
    planned_features,
    queue,
    routes,
    system_status,
    webhook_status,
    workflow_history,
    workflows,
)
from monitor.compat import reports, runs


@dataclass(frozen=True)
class Document:
    """One channel's original message: its ``type``, how its ``data`` is built, and its time stamp, if any."""

    message_type: str
    build: Callable[[dict[str, Any]], Any]
    stamp: str | None = None  # a key of ``data`` the original set to the time it built it


DOCUMENTS = {
    queue.SPEC.name: Document("queue_update", runs.queue),
    adw_monitor.SPEC.name: Document("adw_monitor_update", runs.adw_monitor, stamp="last_updated"),
    system_status.SPEC.name: Document("system_status_update", reports.system_status, stamp="timestamp"),
    workflows.SPEC.name: Document("workflows_update", runs.workflows),
    routes.SPEC.name: Document("routes_update", runs.routes),
    workflow_history.SPEC.name: Document("workflow_history_update", reports.workflow_history),
    planned_features.SPEC.name: Document("planned_features_update", reports.planned_features),
    webhook_status.SPEC.name: Document("webhook_status_update", reports.webhook_status),
}


class Rendered(NamedTuple):
    """A document as sent (``frame``), and as compared: without its time stamp (``plain``)."""

    plain: bytes
    frame: bytes


def render(channel: str, state: dict[str, Any], previous: Rendered | None = None) -> Rendered:
    """``channel``'s message for ``state``; ``previous`` itself when nothing but its time stamp would change.

    A stamped document is compared without its stamp: a new time alone is no change to send.
    """
    document = DOCUMENTS[channel]
    data = document.build(state)
    plain = encode(document.message_type, data)  # a stamped document's builder leaves its stamp ""
    if previous is not None and previous.plain == plain:
        return previous
    if document.stamp is None:
        return Rendered(plain, plain)
    return Rendered(plain, encode(document.message_type, {**data, document.stamp: runs.local_now()}))


def encode(message_type: str, data: Any) -> bytes:
    """The message as compact JSON, keys in the order built."""
    return orjson.dumps({"type": message_type, "data": data})
