"""Waiting for a condition on a broker's state: re-checked whenever the broker says it changed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Watchers:
    """Futures waiting for predicates, resolved by ``notify`` once theirs holds."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds (checked now, then at every ``notify``)."""
        if predicate():
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((predicate, future))
        await future

    def notify(self) -> None:
        """Something changed: resolve every waiter whose predicate now holds."""
        for predicate, future in self._waiting:
            if not future.done() and predicate():
                future.set_result(None)
        self._waiting = [w for w in self._waiting if not w[1].done()]
