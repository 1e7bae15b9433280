"""What /healthz and /metrics say about the broker, whichever kind runs."""

from __future__ import annotations

from typing import Any

from monitor.broker import Broker
from monitor.brokers.shared import SharedBroker


def broker_status(broker: Broker, channels: tuple[str, ...]) -> dict[str, Any]:
    """The broker's kind, whether it is connected, the channels this console polls, and the last round trip."""
    if isinstance(broker, SharedBroker):
        return broker.status()
    # Alone in its process: always connected, the poller of every channel, no round trips.
    return {"kind": "in-process", "connected": True, "leader_of": sorted(channels), "rtt_ms": None}
