"""The broker: the seam between the pollers that publish and the sockets that read.

Pollers hand it data (``publish``) or a failure (``publish_error``); it owns the one
state of each channel in this process, diffs, applies and encodes once, and hands the
frame to every listener. Sockets only read: ``catch_up`` for what a (re)connecting
client needs, ``listen`` for live frames, ``current`` for pages and the JSON API.
Only ``app.py`` constructs ``InProcessBroker`` (and the benchmark hooks, which time its
``apply`` and ``deliver`` halves); everything else holds a ``Broker``, so a multi-process
deployment can implement it over Redis (pub/sub for fan-out, a stream for the ring).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from monitor.channels.base import ChannelData
from monitor.state import ChannelState, ChannelView

log = structlog.get_logger(__name__)

Listener = Callable[[str, bytes], None]
CATCH_UP_OUTCOMES = ("snapshot", "fallback", "ring", "current")  # ChannelState.catch_up says which


class Broker(Protocol):
    """What pollers, sockets, pages and metrics need from a broker."""

    @property
    def published(self) -> Mapping[str, int]:
        """Frames published so far, by channel."""

    @property
    def catch_ups(self) -> Mapping[str, int]:
        """Clients caught up so far, by outcome (``CATCH_UP_OUTCOMES``)."""

    def publish(self, channel: str, data: ChannelData | None) -> None:
        """A good read of ``channel`` (None = unchanged since the last one)."""

    def publish_error(self, channel: str, message: str, data: ChannelData | None = None) -> None:
        """``channel``'s source failed with ``message``; ``data`` is what it shows meanwhile."""

    def catch_up(self, channel: str, epoch: str | None, seq: int | None) -> list[bytes]:
        """Frames that bring a client at (epoch, seq) to the current state."""

    def listen(self, listener: Listener) -> None:
        """Call ``listener(channel, frame)`` for every live frame."""

    def current(self, channel: str) -> ChannelView:
        """``channel``'s state at its (epoch, seq), as this broker knows it."""


def new_epoch() -> str:
    """A fresh epoch identifier: sequences restart whenever it changes."""
    return uuid.uuid4().hex[:16]


class InProcessBroker:
    """Broker for a single process: states and listeners live in memory."""

    def __init__(self, channels: tuple[str, ...], ring_size: int, epoch: str | None = None) -> None:
        self.epoch = epoch or new_epoch()
        self._states = {name: ChannelState(name, self.epoch, ring_size) for name in channels}
        self._listeners: list[Listener] = []
        self.published: dict[str, int] = dict.fromkeys(channels, 0)
        self.catch_ups: dict[str, int] = dict.fromkeys(CATCH_UP_OUTCOMES, 0)

    def publish(self, channel: str, data: ChannelData | None) -> None:
        """Apply a good read and hand its frame, if anything changed, to every listener."""
        self.deliver(channel, self.apply(channel, data))

    def publish_error(self, channel: str, message: str, data: ChannelData | None = None) -> None:
        """Record a failed read and hand the frame, if anything changed, to every listener."""
        self.deliver(channel, self._states[channel].mark_error(message, data))

    def apply(self, channel: str, data: ChannelData | None) -> bytes | None:
        """The first half of ``publish``: change the state, return the frame (None: nothing changed)."""
        return self._states[channel].accept(data)

    def deliver(self, channel: str, frame: bytes | None) -> None:
        """The second half of ``publish``: hand an applied change's frame to every listener."""
        if frame is None:
            return
        self.published[channel] += 1
        for listener in self._listeners:
            try:
                listener(channel, frame)
            except Exception:  # the state has moved on: a failed fan-out is not the source's failure
                log.exception("broker_listener_failed", channel=channel)

    def catch_up(self, channel: str, epoch: str | None, seq: int | None) -> list[bytes]:
        """Frames that bring a client at (epoch, seq) to the current state (outcomes are counted)."""
        # Classified where the frames are chosen: a snapshot is encoded only when one is sent.
        outcome, frames = self._states[channel].catch_up(epoch, seq)
        self.catch_ups[outcome] += 1
        return frames

    def listen(self, listener: Listener) -> None:
        """Register a live-frame listener."""
        self._listeners.append(listener)

    def current(self, channel: str) -> ChannelView:
        """``channel``'s state at its (epoch, seq)."""
        return self._states[channel].view
