"""The webhook-status channel: the webhook service's counters and its recent failures.

The service's ``stats.total_received`` also counts deliveries that ended neither
successful nor failed, so the success rate is successful / (successful + failed): the
service's own figure (it sends ``"91.7%"``), computed from the counts only when it sends
none that parses (DESIGN §4).

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
from monitor.channels.spec import ChannelSpec
from monitor.sources.checks import DEGRADED, ERROR, HEALTHY
from monitor.sources.httpjson import HttpSourceError, get_json
from monitor.sources.resources import Sources

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


def parse_rate(value: Any) -> float | None:
    """A success rate as the service sends it (``"91.7%"``, or a number) in percent; None if neither."""
    if isinstance(value, str):
        try:
            value = float(value.strip().removesuffix("%"))
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # nan, inf and "250%" are garbage too: the caller falls back to the counts.
    return round(float(value), 1) if 0.0 <= value <= 100.0 else None


def success_rate(given: Any, successful: int | None, failed: int | None) -> float | None:
    """The service's own rate when it sends a usable one, else successful / (successful + failed).

    With nothing processed yet (both counts 0) there is no rate, whatever the service
    sends: it reports "0.0%" then, which would read as "every delivery failed".
    """
    if successful == 0 and failed == 0:
        return None
    rate = parse_rate(given)
    if rate is not None or successful is None or failed is None:
        return rate
    return percentage(successful, successful + failed)


def build_summary(document: dict[str, Any]) -> dict[str, Any]:
    """The channel summary from the service's status document; unknown values are left out."""
    given_stats = document.get("stats")
    stats: dict[str, Any] = given_stats if isinstance(given_stats, dict) else {}
    uptime = document.get("uptime")
    seconds = _count(uptime.get("seconds") if isinstance(uptime, dict) else uptime)
    successful, failed = _count(stats.get("successful")), _count(stats.get("failed"))
    last = document.get("last_successful")
    summary = {
        "status": str(document["status"]) if document.get("status") is not None else None,
        "uptime_seconds": published_uptime(seconds) if seconds is not None else None,
        "total_received": _count(stats.get("total_received")),
        "successful": successful,
        "failed": failed,
        "success_rate": success_rate(stats.get("success_rate"), successful, failed),
        "last_successful": dict(last) if isinstance(last, dict) else None,
    }
    return {key: value for key, value in summary.items() if value is not None}


def rate_detail(summary: dict[str, Any]) -> str:
    """The success rate and its counts in words, e.g. "success rate 70.0% (7 successful, 3 failed)"."""
    counts = (summary.get("successful"), summary.get("failed"))
    words = f"{counts[0]} successful, {counts[1]} failed" if None not in counts else ""
    if "success_rate" in summary:
        return f"success rate {summary['success_rate']:.1f}%" + (f" ({words})" if words else "")
    return words


def service_health(document: Any) -> tuple[str, str]:
    """(health, message) of the webhook service as its own ``status`` reports it."""
    if not isinstance(document, dict):
        return ERROR, f"expected a JSON object, got {type(document).__name__}"
    status = document.get("status")
    if status == HEALTHY:
        # No counts: a healthy check's message stays put, so deliveries do not churn system-status.
        return HEALTHY, "service reports healthy"
    if status == DEGRADED:
        detail = rate_detail(build_summary(document))
        return DEGRADED, "service reports degraded" + (f"; {detail}" if detail else "")
    if status is None:
        return ERROR, "no status in the service's answer"
    return ERROR, f"service reports status {str(status)[:60]!r}"


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

    def __init__(self, sources: Sources, url: str, timeout: float) -> None:
        self.sources = sources
        self.url = url
        self.timeout = timeout

    async def read(self) -> ChannelData:
        """The service's current status; raises ``SourceDown`` while it cannot be read."""
        if not self.url:
            return ChannelData({"status": NOT_CONFIGURED}, {})
        try:
            document = await get_json(self.sources.session(), self.url, self.timeout)
            return build_webhook_status(document)
        except HttpSourceError as exc:
            raise SourceDown(str(exc), unreachable()) from exc
        except ValueError as exc:
            raise SourceDown(f"not a webhook status document: {exc}", unreachable()) from exc


def make_reader(sources: Sources) -> WebhookStatusReader:
    """The webhook-status reader on ``[sources] webhook_url``."""
    timeout = REQUEST_TIMEOUT_SHARE * sources.settings.channel(SPEC.name).timeout
    return WebhookStatusReader(sources, sources.settings.sources.webhook_url, timeout)


SPEC = ChannelSpec(name="webhook-status", title="Webhook service", make_reader=make_reader, interval=5.0)
