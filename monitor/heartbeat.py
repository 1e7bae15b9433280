"""One heartbeat for every socket: a ping per socket per period, and peers that stop answering cut off.

aiohttp's own heartbeat (``WebSocketResponse(heartbeat=…)``) keeps a timer per socket and
another per ping, and on Python 3.11 starts a task for every ping: at 10k idle sockets a
heap of 20k timers to keep in order, and ~200 Python calls per socket per period (by
cProfile, ping, pong and all) against ~60 with this one. Here one timer ticks about once
a second and visits one slice of the sockets. Each socket gets a ping (a pre-built frame
written straight to its transport) once per period; half a period later, a socket that
has sent nothing since (no pong, no message) is cut as a dead peer. So, as with aiohttp's
heartbeat, a peer silent for 1.5 periods is dropped, and one that answers is never dropped.
"""

from __future__ import annotations

import asyncio

from monitor.connection import DEAD_PEER, Connection

TICK = 1.0  # seconds between visits at most: a shorter period ticks faster


class Heartbeat:
    """Sockets in slots, round robin; each tick pings one slot and checks the one pinged half a period ago."""

    def __init__(self, period: float, tick: float = TICK) -> None:
        halves = max(1, round(period / 2 / tick))
        self._slots: tuple[set[Connection], ...] = tuple(set() for _ in range(2 * halves))
        self.interval = period / len(self._slots)
        self._added = 0
        self._ticks = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, connection: Connection) -> None:
        """Ping ``connection`` from now on; its first ping comes within one period."""
        # Round robin, not by connect time: a burst of connects still spreads its pings evenly.
        slot = self._added % len(self._slots)
        self._added += 1
        connection.heartbeat_slot = slot
        self._slots[slot].add(connection)

    def discard(self, connection: Connection) -> None:
        """Stop pinging ``connection`` (idempotent)."""
        self._slots[connection.heartbeat_slot].discard(connection)

    def start(self) -> None:
        """Start ticking."""
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def stop(self) -> None:
        """Stop ticking; nothing is pinged or cut from now on."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._ticks += 1
        slots = self._slots
        # Every tick is scheduled from the one before: after a stalled loop the pongs that
        # arrived meanwhile are read before the check that needs them.
        for connection in tuple(slots[(self._ticks + len(slots) // 2) % len(slots)]):
            if connection.awaiting_pong:
                connection.drop(DEAD_PEER)
        for connection in slots[self._ticks % len(slots)]:
            connection.ping()
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
