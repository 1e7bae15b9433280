"""When each channel was last polled well, by whichever console polls it.

A console that follows a channel never polls it, so on its own it could not say in
/healthz how old the channel's last good read is. The poller writes the time of its good
polls to one Redis key per channel (``monitor:<channel>:polled``, a Unix time, at most
once a second: an unchanged read publishes nothing, and this is its only trace), and
any console reads them when asked. Consoles on different machines compare wall clocks
here, so their clocks should be kept in step (NTP), as for the alert times.
"""

from __future__ import annotations

import asyncio
import math
import time

from redis.asyncio import Redis

from monitor.brokers.connection import CONNECTION_ERRORS

WRITE_EVERY = 1.0  # seconds between two writes of one channel's poll time
READ_TIMEOUT = 0.5  # /healthz waits no longer for them: a Redis that hangs leaves the ages unknown


def polled_key(channel: str) -> str:
    """The key of ``channel``'s last good poll time."""
    return f"monitor:{channel}:polled"


class PollTimes:
    """Writes this console's good polls and reads every channel's last one."""

    def __init__(self, client: Redis, channels: tuple[str, ...]) -> None:
        self.client = client
        self.channels = channels
        self._written: dict[str, float] = {}  # monotonic time of the last write, by channel
        self._writes: set[asyncio.Task[None]] = set()

    def note(self, channel: str) -> None:
        """This console just polled ``channel`` well: tell the others (at most once per ``WRITE_EVERY``)."""
        now = time.monotonic()
        if now - self._written.get(channel, -WRITE_EVERY) < WRITE_EVERY:
            return
        self._written[channel] = now
        task = asyncio.get_running_loop().create_task(self._write(channel, time.time()))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def read(self) -> dict[str, float]:
        """Each channel's last good poll (Unix time) that Redis has; empty when Redis is away."""
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                values = await self.client.mget([polled_key(name) for name in self.channels])
        except (*CONNECTION_ERRORS, TimeoutError):
            return {}
        return {name: float(value) for name, value in zip(self.channels, values, strict=True)
                if value is not None and _number(value)}

    async def close(self) -> None:
        """Cancel the writes under way."""
        for task in self._writes:
            task.cancel()
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def _write(self, channel: str, at: float) -> None:
        try:
            await self.client.set(polled_key(channel), repr(at))
        except CONNECTION_ERRORS:
            self._written.pop(channel, None)  # Redis away: the channel shows stale anyway; write at the next poll


def _number(value: bytes | str) -> bool:
    """A finite number: the key is Redis's, and anything may have been written there."""
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False
