"""The broker: the seam between the pollers that publish updates and the sockets that read them.

Pollers call ``publish``; sockets only read: ``catch_up`` for what a (re)connecting client
needs, ``listen`` for live frames. ``InProcessBroker`` is the default. A multi-process
deployment replaces it with one backed by Redis (pub/sub for fan-out, a stream for the
ring) without touching pollers or sockets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from monitor import patch as merge_patch
from monitor.channel import Update

Listener = Callable[[str, bytes], None]


class Broker(Protocol):
    """What pollers and sockets need from a broker."""

    def publish(self, update: Update) -> None:
        """Accept one update from the elected poller."""

    def catch_up(self, channel: str, epoch: str | None, seq: int | None) -> list[bytes]:
        """Frames that bring a client at (epoch, seq) to the current state."""

    def listen(self, listener: Listener) -> None:
        """Call ``listener(channel, frame)`` for every live frame."""

    def current(self, channel: str) -> tuple[str, int, dict[str, Any]]:
        """(epoch, seq, state) of ``channel`` as this broker knows it."""


class ChannelReplica:
    """A reader's copy of one channel: state, seq, and a ring of recent encoded patches."""

    __slots__ = ("name", "epoch", "seq", "state", "ring", "_snapshot_frame")

    def __init__(self, name: str, ring_size: int) -> None:
        self.name = name
        self.epoch = ""
        self.seq = 0
        self.state: dict[str, Any] = {"summary": {}, "items": {}, "meta": {"source": "pending"}}
        self.ring: deque[tuple[int, bytes]] = deque(maxlen=ring_size)
        self._snapshot_frame: bytes | None = None

    def apply(self, update: Update) -> bytes | None:
        """Apply an update; return its encoded frame, or None when it restarts the sequence."""
        if update.epoch != self.epoch or update.seq != self.seq + 1:
            # A new epoch (or a gap) cannot be patched over: readers fall back to snapshots.
            self.epoch, self.seq = update.epoch, update.seq
            self.state = merge_patch.apply({}, update.patch)
            self.ring.clear()
            self._snapshot_frame = None
            return None
        self.seq = update.seq
        self.state = merge_patch.apply(self.state, update.patch)
        frame = encode({"type": "patch", "channel": self.name, "epoch": self.epoch, "seq": self.seq, "patch": update.patch})
        self.ring.append((self.seq, frame))
        self._snapshot_frame = None
        return frame

    def snapshot_frame(self) -> bytes:
        """The current state as a snapshot frame, encoded once per change."""
        if self._snapshot_frame is None:
            self._snapshot_frame = encode(
                {"type": "snapshot", "channel": self.name, "epoch": self.epoch, "seq": self.seq, "data": self.state}
            )
        return self._snapshot_frame

    def frames_after(self, epoch: str | None, seq: int | None) -> list[bytes]:
        """Exactly the patches after ``seq`` when still buffered, else one snapshot."""
        if epoch != self.epoch or seq is None or seq > self.seq:
            return [self.snapshot_frame()]
        if seq == self.seq:
            return []
        first = self.ring[0][0] if self.ring else self.seq + 1
        if seq + 1 < first:
            return [self.snapshot_frame()]
        return [frame for s, frame in self.ring if s > seq]


def encode(message: dict[str, Any]) -> bytes:
    """Serialize one wire message (UTF-8 JSON)."""
    return orjson.dumps(message)


class InProcessBroker:
    """Broker for a single process: replicas and listeners live in memory."""

    def __init__(self, channels: tuple[str, ...], ring_size: int) -> None:
        self._replicas = {name: ChannelReplica(name, ring_size) for name in channels}
        self._listeners: list[Listener] = []
        self.published = dict.fromkeys(channels, 0)
        self.catch_ups = {"snapshot": 0, "fallback": 0, "ring": 0, "current": 0}

    def publish(self, update: Update) -> None:
        """Apply the update and hand its frame to every listener, synchronously."""
        replica = self._replicas[update.channel]
        self.published[update.channel] += 1
        frame = replica.apply(update)
        if frame is None:
            frame = replica.snapshot_frame()
        for listener in self._listeners:
            listener(update.channel, frame)

    def catch_up(self, channel: str, epoch: str | None, seq: int | None) -> list[bytes]:
        """Frames that bring a client at (epoch, seq) to the current state (outcomes are counted)."""
        replica = self._replicas[channel]
        frames = replica.frames_after(epoch, seq)
        if epoch is None:
            outcome = "snapshot"
        elif frames and frames[0] is replica.snapshot_frame():
            outcome = "fallback"
        else:
            outcome = "ring" if frames else "current"
        self.catch_ups[outcome] += 1
        return frames

    def listen(self, listener: Listener) -> None:
        """Register a live-frame listener."""
        self._listeners.append(listener)

    def current(self, channel: str) -> tuple[str, int, dict[str, Any]]:
        """(epoch, seq, state) of ``channel``."""
        replica = self._replicas[channel]
        return replica.epoch, replica.seq, replica.state

    def ring_stats(self, channel: str) -> tuple[int, int]:
        """(oldest buffered seq, number of buffered patches) for ``channel``."""
        ring = self._replicas[channel].ring
        return (ring[0][0] if ring else 0), len(ring)
