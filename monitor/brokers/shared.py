"""What the application needs from a broker shared between consoles, beyond ``Broker``.

A protocol, so that the application and /healthz can tell a shared broker without
importing the Redis client: a console without ``[broker] url`` never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from monitor.broker import Broker
from monitor.state import ChannelView


@runtime_checkable
class SharedBroker(Broker, Protocol):
    """A broker whose channels are polled by one console among several (``RedisBroker``)."""

    on_lead: Callable[[str], None]  # called with a channel this console has just become the poller of
    rtt_observers: list[Callable[[float], None]]  # each told every round trip to the shared store, in seconds

    def leads(self, channel: str) -> bool:
        """True while this console is ``channel``'s poller."""

    def authored(self, channel: str) -> ChannelView:
        """The state this console's last read of ``channel`` made."""

    def polled(self, channel: str) -> None:
        """This console's poll of ``channel`` was good (the others show its age)."""

    async def last_polls(self) -> dict[str, float]:
        """Each channel's last good poll by whichever console polls it, as a Unix time (where known)."""

    def status(self) -> dict[str, Any]:
        """The broker's state for /healthz."""

    async def start(self, wait: float) -> None:
        """Connect, load the shared state and start leading, waiting at most ``wait`` seconds."""

    async def close(self, release: bool = True) -> None:
        """Stop; with ``release``, hand this console's channels to another at once."""
