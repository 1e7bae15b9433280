"""The webhook-status channel: the webhook service's counters and its recent failures.

While the service cannot be read, the channel shows ``status: "unreachable"`` with no
failures *and* its ``meta`` is an error naming the cause; the reader raises
``SourceDown`` carrying that data. It recovers on the first good read.

``uptime_seconds`` is published to the second during the first minute and in whole
minutes after that: uptime grows on every poll, and at full precision an idle service
would cost every watching browser a patch per poll for a number people read as "3h 12m".
A restart still shows at once (uptime drops).
"""

from __future__ import annotations

import hashlib
from typing import Any

from monitor.channels.base import ChannelData, SourceDown, percentage
from monitor.sources.httpjson import HttpSourceError, get_json

CHANNEL = "webhook-status"
UNREACHABLE = "unreachable"
NOT_CONFIGURED = "not configured"
# The request gets this share of the poll timeout, so its own clear message wins the race.
REQUEST_TIMEOUT_SHARE = 0.8


def published_uptime(seconds: float) -> int:
    """Uptime as published: whole seconds in the first minute, whole minutes after."""
    whole = int(seconds)
    return whole if whole < 60 else whole - whole % 60


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _rate(stats: dict[str, Any], successful: int | None, received: int | None) -> float | None:
    given = stats.get("success_rate")
    if isinstance(given, (int, float)) and not isinstance(given, bool):
        return round(float(given), 1)
    if successful is None or received is None:
        return None
    return percentage(successful, received)


def build_summary(document: dict[str, Any]) -> dict[str, Any]:
    """The channel summary from the service's status document; unknown values are left out."""
    stats = document.get("stats") if isinstance(document.get("stats"), dict) else {}
    uptime = document.get("uptime")
    seconds = _count(uptime.get("seconds") if isinstance(uptime, dict) else uptime)
    received, successful = _count(stats.get("total_received")), _count(stats.get("successful"))
    last = document.get("last_successful")
    summary = {
        "status": str(document["status"]) if document.get("status") is not None else None,
        "uptime_seconds": published_uptime(seconds) if seconds is not None else None,
        "total_received": received,
        "successful": successful,
        "failed": _count(stats.get("failed")),
        "success_rate": _rate(stats, successful, received),
        "last_successful": dict(last) if isinstance(last, dict) else None,
    }
    return {key: value for key, value in summary.items() if value is not None}


def build_failures(failures: Any) -> dict[str, dict[str, Any]]:
    """Recent failures keyed by ``issue@timestamp``; exact repeats collapse into one item.

    Two different errors for one issue in the same second get the error's short hash as
    a suffix on the later one, so keys of failures already shown never change.
    """
    items: dict[str, dict[str, Any]] = {}
    for failure in failures if isinstance(failures, list) else []:
        if not isinstance(failure, dict):
            continue
        key = f"{failure.get('issue')}@{failure.get('timestamp')}"
        if key in items and items[key] != failure:
            key += "~" + hashlib.sha1(str(failure.get("error")).encode()).hexdigest()[:8]
        items[key] = dict(failure)
    return items


def build_webhook_status(document: Any) -> ChannelData:
    """Summary and items of the webhook-status channel from ``GET webhook_url``'s document."""
    if not isinstance(document, dict):
        raise ValueError(f"expected a JSON object, got {type(document).__name__}")
    return ChannelData(build_summary(document), build_failures(document.get("recent_failures")))


def unreachable() -> ChannelData:
    """What the channel shows while the service cannot be read."""
    return ChannelData({"status": UNREACHABLE}, {})


class WebhookStatusReader:
    """Reads the webhook service's status endpoint with the shared HTTP session."""

    def __init__(self, sources, url: str, timeout: float) -> None:
        self.sources = sources
        self.url = url
        self.timeout = timeout

    async def read(self) -> ChannelData:
        """The service's current status; raises ``SourceDown`` while it cannot be read."""
        if not self.url:
            return ChannelData({"status": NOT_CONFIGURED}, {})
        try:
            document = await get_json(self.sources.http, self.url, self.timeout)
            return build_webhook_status(document)
        except HttpSourceError as exc:
            raise SourceDown(str(exc), unreachable()) from exc
        except ValueError as exc:
            raise SourceDown(f"not a webhook status document: {exc}", unreachable()) from exc

    async def close(self) -> None:
        """Nothing of its own to release: the HTTP session is shared."""


def make_reader(sources) -> WebhookStatusReader:
    """The webhook-status reader on ``[sources] webhook_url``."""
    timeout = REQUEST_TIMEOUT_SHARE * sources.settings.channel(CHANNEL).timeout
    return WebhookStatusReader(sources, sources.settings.sources.webhook_url, timeout)
