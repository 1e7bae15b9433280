"""The hub: the registry of live connections per channel, and the fan-out to them.

A frame from the broker reaches only the sockets of its own channel. Fan-out never
awaits: each connection either writes at once or queues into its own bounded backlog.
The WebSocket frame (header + payload) is built once per delivery, not once per socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from monitor.connection import Connection, text_frame
from monitor.protocol import SHUTDOWN

log = structlog.get_logger(__name__)


class Hub:
    """Live connections, by channel."""

    def __init__(self, channels: tuple[str, ...]) -> None:
        self.channels = channels
        self._by_channel: dict[str, set[Connection]] = {name: set() for name in channels}
        self.frames_sent = dict.fromkeys(channels, 0)
        self.bytes_sent = dict.fromkeys(channels, 0)
        self._watchers: list[tuple[Callable[[Hub], bool], asyncio.Future[None]]] = []
        self.evictions: dict[str, int] = {}
        self.opened = self.closed = 0  # connections ever registered and unregistered (gcpolicy.py reads them)

    def deliver(self, channel: str, frame: bytes) -> None:
        """Offer ``frame`` to every connection of ``channel``."""
        connections = tuple(self._by_channel[channel])
        wire = text_frame(frame) if connections else None
        for connection in connections:
            connection.offer(frame, wire)
        self.frames_sent[channel] += len(connections)
        self.bytes_sent[channel] += len(connections) * len(frame)

    def catch_up(self, connection: Connection, frames: list[bytes]) -> None:
        """Send a (re)connecting client what it missed, then register it: no frame can fall between."""
        for frame in frames:
            connection.offer(frame)
            self.bytes_sent[connection.channel] += len(frame)
        self.frames_sent[connection.channel] += len(frames)
        self.add(connection)

    def add(self, connection: Connection) -> None:
        """Register a connection; it receives every frame delivered from now on."""
        self._by_channel[connection.channel].add(connection)
        self.opened += 1
        self._notify()

    def discard(self, connection: Connection) -> None:
        """Unregister a connection (idempotent)."""
        registered = self._by_channel[connection.channel]
        if connection in registered:
            registered.remove(connection)
            self.closed += 1
        self._notify()

    def note_eviction(self, connection: Connection, reason: str) -> None:
        """Called by a connection that cuts itself off: unregister and count it."""
        self.discard(connection)
        self.count_eviction(reason)
        log.warning("ws_evicted", channel=connection.channel, reason=reason,
                    messages_sent=connection.messages_sent)

    def count_eviction(self, reason: str) -> None:
        """Count one connection cut off for ``reason`` (slow, dead_peer)."""
        self.evictions[reason] = self.evictions.get(reason, 0) + 1

    def count(self, channel: str | None = None) -> int:
        """Live connections on ``channel`` (or on all channels)."""
        if channel is not None:
            return len(self._by_channel[channel])
        return sum(len(conns) for conns in self._by_channel.values())

    def connections(self, channel: str) -> tuple[Connection, ...]:
        """A snapshot of the connections on ``channel``."""
        return tuple(self._by_channel[channel])

    async def wait_until(self, predicate: Callable[[Hub], bool]) -> None:
        """Wait until ``predicate(hub)`` holds; re-checked on every (un)registration."""
        if predicate(self):
            return
        future = asyncio.get_running_loop().create_future()
        self._watchers.append((predicate, future))
        await future

    def _notify(self) -> None:
        if not self._watchers:
            return
        for predicate, future in self._watchers:
            if not future.done() and predicate(self):
                future.set_result(None)
        self._watchers = [w for w in self._watchers if not w[1].done()]

    async def close_all(self, deadline: float) -> None:
        """Close every connection with 1001, concurrently, within ``deadline`` seconds."""
        everyone = [c for conns in self._by_channel.values() for c in conns]
        for connection in everyone:
            connection.close_reason = connection.close_reason or "shutdown"
        if not everyone:
            return
        closers = {asyncio.ensure_future(c.close(SHUTDOWN)): c for c in everyone}
        done, pending = await asyncio.wait(closers, timeout=deadline)
        for task in pending:
            task.cancel()
            closers[task].abort()
        log.info("ws_closed_all", closed=len(done), cut=len(pending))
