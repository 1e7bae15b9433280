"""From a file event to polls: after a commit is visible, one channel at a time, quickest first.

Two things stand between a change event and a fresh read:

- **A commit is visible after its last file event.** SQLite writes a commit's WAL frames
  (the events) before it syncs them and publishes the new index through shared memory,
  which raises no event. A read started on the events alone can find the old state and
  publish nothing, and no later event comes to make up for it. So after a database event
  one watch checks the database's change token (``PRAGMA data_version``, one statement)
  for a while, and each time it moves, the database channels poll: a burst holding two
  commits, the second synced late, gets a poll for each. Later bursts join the watch
  under way (started afresh), so a busy writer costs one watch, not one per burst.
- **Reads woken together compete.** A commit wakes every database channel; run side by
  side, their reads share one event loop and one interpreter lock, and all of them finish
  late. Run shortest first, one after the other, each finishes as early as it can (the
  mean wait is least); a poll that takes longer than ``turn_limit`` does not hold up the
  rest any longer, so a hanging source cannot stall its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable, Mapping
from typing import Any

from monitor.poller import Poller, quickest_first

TURN_LIMIT = 0.05  # seconds a woken poll may hold up the next one
# Pauses between checks of the change token after a database event (a check is one statement on
# the change-check connection's thread, ~0.3 ms): dense while a commit's sync is likely under
# way, 66.5 ms in all.
VISIBLE_CHECKS = (0.0, 0.0005, 0.0005, 0.0005, 0.0005, 0.001, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032)
TOKEN_LIMIT = 0.25  # seconds one check may take: a hung file system ends the watch (the polls' timeouts report it)

Token = Callable[[], Coroutine[Any, Any, Hashable]]


class Waker:
    """The watcher's trigger: polls the channels a burst of file events affects."""

    def __init__(self, pollers: Mapping[str, Poller], committed: frozenset[str], token: Token,
                 turn_limit: float = TURN_LIMIT, seen: Hashable | None = None) -> None:
        """``seen``: a token already read (a console starts with none: its first check is news)."""
        self.pollers = pollers
        self.committed = committed  # channels a database event wakes: they poll as its commits become visible
        self.token = token  # the database's change token
        self.turn_limit = turn_limit
        self._seen = seen  # the token the watch last found
        self._database_event = False
        self._watching: set[str] = set()  # the database channels the watch under way polls
        self._watch: asyncio.Task[None] | None = None
        self._again = False  # a burst joined the watch: its checks start afresh
        self._check: asyncio.Task[Hashable] | None = None  # a token check still running
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False

    def database_event(self) -> None:
        """Note that the burst being gathered touched the database's files (the watch target's ``moved``)."""
        self._database_event = True

    def __call__(self, channels: frozenset[str]) -> None:
        """Wake ``channels``: those a database event woke as its commits become visible, the rest at once."""
        if self._stopped:
            return
        database = channels & self.committed if self._database_event else frozenset()
        self._database_event = False
        if channels - database:
            self._spawn(self.in_turn(channels - database))
        if database:
            self._watching |= database
            self._again = True
            if self._watch is None:
                self._watch = self._spawn(self._watch_commits())

    async def stop(self) -> None:
        """Cancel the wakes under way (the pollers stop on their own)."""
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def in_turn(self, channels: frozenset[str]) -> None:
        """Poll ``channels`` quickest first, each after the one before ended or ``turn_limit`` passed."""
        for channel in quickest_first(self.pollers, channels):
            task = self.pollers[channel].request_poll()
            if task is not None:
                await asyncio.wait({task}, timeout=self.turn_limit)

    async def _watch_commits(self) -> None:
        """Poll the watched channels each time the token moves; a new burst starts the checks afresh."""
        index, moved = 0, False
        try:
            while index < len(VISIBLE_CHECKS):
                if self._again:  # a burst joined: its commit may still be syncing
                    self._again, index, moved = False, 0, False
                await asyncio.sleep(VISIBLE_CHECKS[index])
                index += 1
                token = await self._read_token()
                if token is None:
                    break
                if token != self._seen:
                    self._seen, moved = token, True
                    self._spawn(self.in_turn(frozenset(self._watching)))  # polls under way coalesce
        finally:
            watching, self._watch, self._watching = frozenset(self._watching), None, set()
            if not moved and not self._stopped:  # nothing committed visibly since the last burst (a
                self._spawn(self.in_turn(watching))  # checkpoint, a failing token): poll anyway, cheaply

    async def _read_token(self) -> Hashable | None:
        """The change token; None when it fails or takes longer than ``TOKEN_LIMIT``.

        A slow check is left to finish rather than cancelled: cancelling it would throw
        away the change-check connection, and every channel would read everything again.
        """
        if self._check is None or self._check.done():
            self._check = self._spawn(self.token())
        done, _ = await asyncio.wait({self._check}, timeout=TOKEN_LIMIT)
        if not done or self._check.cancelled() or self._check.exception() is not None:
            return None  # a failing database: the reads report it
        return self._check.result()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a token check that failed after it was given up: seen, not "never retrieved"
