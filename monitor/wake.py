"""From a file event to polls: after the commit is visible, one channel at a time, quickest first.

Two things stand between a change event and a fresh read:

- **A commit is visible after its last file event.** SQLite writes a commit's WAL frames
  (the events) before it syncs them and publishes the new index through shared memory,
  which raises no event. A read started on the events alone can find the old state and
  publish nothing, and no later event comes to make up for it. So a database event is
  followed by checks of the database's own change token (``PRAGMA data_version``, one
  statement) until it moves, and only then are the channels polled: the debounce can be
  short without reads that come too early.
- **Reads woken together compete.** A commit wakes every database channel; run side by
  side, their reads share one event loop and one interpreter lock, and all of them finish
  late. Run shortest first, one after the other, each finishes as early as it can (the
  mean wait is least); a poll that takes longer than ``TURN_LIMIT`` does not hold up the
  rest any longer, so a hanging source cannot stall its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping

import structlog

from monitor.poller import Poller, quickest_first

log = structlog.get_logger(__name__)

TURN_LIMIT = 0.05  # seconds a woken poll may hold up the next one
# Pauses between checks of the change token after a database event (a check is one statement on the
# change-check connection's thread, ~0.3 ms): dense while a commit's sync is likely under way,
# ~70 ms in all, then poll anyway.
VISIBLE_CHECKS = (0.0, 0.0005, 0.0005, 0.0005, 0.0005, 0.001, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032)

VISIBLE_LIMIT = 0.25  # seconds a wake waits for the token in all, however slowly it answers

Token = Callable[[], Awaitable[Hashable]]


class Waker:
    """The watcher's trigger: polls the channels a burst of file events affects."""

    def __init__(self, pollers: Mapping[str, Poller], committed: frozenset[str], token: Token,
                 turn_limit: float = TURN_LIMIT) -> None:
        self.pollers = pollers
        self.turn_limit = turn_limit
        self.committed = committed  # channels a database event wakes: they wait for the commit
        self.token = token  # the database's change token
        self._seen: Hashable | None = None  # the token the last database wake found
        self._database_event = False
        self._tasks: set[asyncio.Task[None]] = set()

    def database_event(self) -> None:
        """Note that the burst being gathered touched the database's files (the watch target's ``moved``)."""
        self._database_event = True

    def __call__(self, channels: frozenset[str]) -> None:
        """Wake ``channels``: those a database event woke once its commit is visible."""
        wait, self._database_event = self._database_event, False
        task = asyncio.get_running_loop().create_task(self._wake(channels, wait))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Cancel the wakes under way (the pollers stop on their own)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wake(self, channels: frozenset[str], wait: bool) -> None:
        if wait and channels & self.committed:
            try:
                async with asyncio.timeout(VISIBLE_LIMIT):  # a hung file system: the polls' own timeouts report it
                    await self.visible()
            except TimeoutError:
                pass
        await self.in_turn(channels)

    async def visible(self) -> bool:
        """Wait until the change token differs from the last one seen (at most ~64 ms); whether it did."""
        for pause in VISIBLE_CHECKS:
            await asyncio.sleep(pause)
            try:
                token = await self.token()
            except Exception:  # noqa: BLE001 - the channels' own reads report a failing database
                return False
            if token != self._seen:
                self._seen = token
                return True
        return False  # an event that committed nothing (a checkpoint, a read): the polls find that cheaply

    async def in_turn(self, channels: frozenset[str]) -> None:
        """Poll ``channels`` quickest first, each after the one before ended or ``turn_limit`` passed."""
        for channel in quickest_first(self.pollers, channels):
            task = self.pollers[channel].request_poll()
            if task is not None:
                await asyncio.wait({task}, timeout=self.turn_limit)
