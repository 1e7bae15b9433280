"""Who polls a channel among the consoles: a Redis lock per channel, with an expiry and a fencing value.

A console takes a free lock with ``ACQUIRE`` (which also increments the channel's fence),
extends it with ``RENEW`` every third of its lifetime while it can, and lets it go with
``RELEASE`` when it stops. Its ``Lease`` (the lock's value and the fence number) goes
with every write it makes to the channel, which the write script checks.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from monitor.brokers.scripts import ACQUIRE, RELEASE, RENEW, ChannelKeys


@dataclass(frozen=True, slots=True)
class Lease:
    """One console's hold on one channel's lock: the lock's value and the fence it was taken with."""

    token: str
    fence: str


class Leadership:
    """Takes, keeps and releases channel locks for one console, timing each round trip."""

    def __init__(self, client: Redis, console_id: str, ttl: float, observe_rtt: Callable[[float], None]) -> None:
        self.console_id = console_id
        self.ttl_ms = max(1, round(ttl * 1000))
        self.observe_rtt = observe_rtt
        self._acquire = client.register_script(ACQUIRE)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    async def acquire(self, keys: ChannelKeys) -> Lease | None:
        """The lease on a free lock, or None while another console holds it."""
        # A nonce per acquisition: a value from before a Redis restart never matches a lock taken after it.
        holder = f"{self.console_id}.{secrets.token_hex(4)}"
        fence = await self._timed(self._acquire(keys=[keys.leader, keys.fence], args=[holder, self.ttl_ms]))
        return Lease(f"{holder}:{fence}", str(fence)) if fence else None

    async def renew(self, keys: ChannelKeys, lease: Lease) -> bool:
        """Extend a held lock by its lifetime; False when it is no longer this lease's."""
        return bool(await self._timed(self._renew(keys=[keys.leader], args=[lease.token, self.ttl_ms])))

    async def release(self, keys: ChannelKeys, lease: Lease) -> None:
        """Let go of a lock that is still this lease's, so another console takes over at once."""
        await self._release(keys=[keys.leader], args=[lease.token])

    async def _timed(self, call: Awaitable[Any]) -> int:
        started = time.perf_counter()
        result = int(await call)
        self.observe_rtt(time.perf_counter() - started)
        return result
