"""Keeping full garbage collections away from deliveries.

A full collection walks every object the process holds. At 10k sockets that is ~800,000
objects, nearly all of them aiohttp's per-connection ones: 300–450 ms in which nothing
is delivered, and one that lands in a poll delays that change for every client. Objects
that have lived a while mostly live on (connections, channel states), so they need not
be walked again and again: every look (each second, five a second while connections
arrive) collects what is not frozen yet and freezes what survives (``gc.freeze``), and
the full collections Python starts by itself walk only what came since. A look collects
the young generations only (about a millisecond), or everything not frozen when
connections closed, so that a closing connection's objects are not frozen as they die.
Frozen objects are still freed by reference counting; what waits is cycles among them. A
closed connection leaves none: ``cycles.py`` cuts the two it used to leave (47 objects
when its peer vanished), so reference counting frees it whole. A maintenance collection
(unfreeze, collect everything, freeze) reclaims the rest once far more closures that may
have left a cycle (``Releases.cyclic``: transports of another event loop, or too slow to
close) have come than connections are open, or an hour after the last one (twice as long
after each that found little, up to a day), after three quiet looks in a row (nothing
delivered, almost no connection opened or closed): the only full walk of the heap, and a
rare one, yet a long one (1.8 s at 10,000 open connections): a change that comes during
it waits.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from monitor.cycles import Releases

if TYPE_CHECKING:
    from monitor.hub import Hub

log = structlog.get_logger(__name__)

CHECK_EVERY = 1.0  # seconds between looks (and freezes)...
ARRIVING_CHECK_EVERY = 0.2  # ...and while connections arrive: a second of a burst is ~60 ms to walk
QUIET = 10  # connections opened or closed since the last look, at most, for a quiet look
CHURN = 1000  # closures that may have left a cycle since the last maintenance that make one due...
CHURN_RATIO = 2.0  # ...and twice as many as are open (each ~0.5-5 KB of garbage, against ~15 KB per open one)
MAINTAIN_EVERY = 3600.0  # seconds after which one is due anyway: other cycles froze meanwhile too...
MAINTAIN_EVERY_MOST = 86400.0  # ...twice as long after one that found little, up to a day
LITTLE = 0.01  # a maintenance found little: fewer objects than this share of those it froze again
QUIET_LOOKS = 3  # quiet looks in a row before a due maintenance runs: a console that just delivered may again
PATIENCE = 60  # looks a due maintenance waits for quiet before it runs anyway
KINDS = ("freeze", "maintenance", "automatic")  # ours every look, ours after churn, Python's own full ones


class GcPolicy:
    """Freezes what is alive every look; collects frozen garbage once churn or time makes it worth a full walk."""

    def __init__(self, hub: Hub, *, churn: int = CHURN, every: float = MAINTAIN_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._hub = hub
        self.churn, self.every, self.base_every = churn, every, every
        self._clock = clock
        self.runs = dict.fromkeys(KINDS, 0)
        self.seconds = dict.fromkeys(KINDS, 0.0)
        self.longest = dict.fromkeys(KINDS, 0.0)
        self.releases = Releases()  # closed connections' transports, freed of their cycle
        self._seen = (0, 0, 0)  # the hub's (opened, closed, frames sent) at the last look
        self._maintained = (0, clock())  # ``releases.cyclic`` at the last maintenance, and when
        self._waited = 0  # looks a due maintenance has waited for quiet
        self._quiet_looks = 0  # quiet looks in a row, up to this one
        self._ours = False  # a collection of ours is running: the callbacks are not for Python's own
        self._started = 0.0  # when the full collection being timed began
        self.arriving = False  # connections opened since the previous look

    async def run(self) -> None:
        """Look until cancelled; then leave the collector as it was."""
        gc.callbacks.append(self.on_collection)
        try:
            while True:
                await asyncio.sleep(ARRIVING_CHECK_EVERY if self.arriving else CHECK_EVERY)
                self.check()
        finally:
            gc.callbacks.remove(self.on_collection)
            gc.unfreeze()  # nothing stays frozen behind the back of whatever runs next in this process

    def check(self) -> str:
        """One look: a maintenance if due after quiet looks in a row (or it waited long enough), else a freeze."""
        hub = self._hub
        self.releases.sweep()
        now = (hub.opened, hub.closed, sum(hub.frames_sent.values()))
        seen, self._seen = self._seen, now
        opened, closed = now[0] - seen[0], now[1] - seen[1]
        self.arriving = opened > 0
        quiet = now[2] == seen[2] and opened + closed <= QUIET
        self._quiet_looks = self._quiet_looks + 1 if quiet else 0
        cyclic_then, since = self._maintained
        cyclic = self.releases.cyclic
        due = cyclic - cyclic_then >= max(self.churn, CHURN_RATIO * (now[0] - now[1])) or \
            self._clock() - since >= self.every
        if due and (self._quiet_looks >= QUIET_LOOKS or self._waited >= PATIENCE):
            self._maintained, self._waited = (cyclic, self._clock()), 0
            return self._collect("maintenance", 2)
        if due:
            self._waited += 1
        return self._collect("freeze", 2 if closed else 1)

    def _collect(self, kind: str, generation: int) -> str:
        """Collect ``generation`` and below (what is not frozen) and freeze what survives."""
        self._ours = True
        started = time.perf_counter()
        try:
            if kind == "maintenance":
                gc.unfreeze()
            collected = gc.collect(generation)
            gc.freeze()
        finally:
            self._ours = False
        seconds = time.perf_counter() - started
        self._count(kind, seconds)
        if kind == "maintenance":  # counting the frozen objects walks them all: only for the rare one
            frozen = gc.get_freeze_count()
            self._space_out(collected, frozen)
            log.info("gc_maintenance", seconds=round(seconds, 4), collected=collected, frozen=frozen,
                     next_in_s=self.every)
        return kind

    def _space_out(self, collected: int, frozen: int) -> None:
        """After a maintenance: the next without churn twice as late if it found little, else at the base interval.

        Each one walks the whole heap (seconds at 10,000 connections) while nothing is
        delivered; with closed connections leaving no cycles (``cycles.py``), what the
        others find is mostly little.
        """
        if collected < LITTLE * frozen:
            self.every = min(2 * self.every, max(MAINTAIN_EVERY_MOST, self.base_every))
        else:
            self.every = self.base_every

    def on_collection(self, phase: str, info: dict[str, Any]) -> None:
        """``gc.callbacks`` hook: time the full collections Python starts by itself."""
        if info["generation"] != 2 or self._ours:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._count("automatic", time.perf_counter() - self._started)

    def _count(self, kind: str, seconds: float) -> None:
        self.runs[kind] += 1
        self.seconds[kind] += seconds
        self.longest[kind] = max(self.longest[kind], seconds)
