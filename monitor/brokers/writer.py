"""The poller's side of a shared channel: its patch frames written, in order and fenced, to Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from monitor.brokers.leadership import Lease
from monitor.brokers.scripts import REFUSED_FENCE, WRITE, ChannelKeys
from monitor.state import ChannelState

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Write:
    """One frame to write: the channel's state after it, and the lease it is written under."""

    channel: str
    lease: Lease
    epoch: str
    seq: int
    frame: bytes
    state: bytes
    seed: bool = False  # a new epoch's snapshot, not a patch of the state before

    @classmethod
    def after(cls, channel: str, lease: Lease, author: ChannelState, frame: bytes, seed: bool = False) -> Write:
        """The write of ``frame``, which has just brought ``author`` to its (epoch, seq)."""
        return cls(channel, lease, author.epoch, author.seq, frame, orjson.dumps(author.state), seed)


class Writer:
    """Writes queued frames one at a time; a refused or failed write makes the console step down."""

    def __init__(self, client: Redis, keys: dict[str, ChannelKeys], ring_size: int,
                 step_down: Callable[[str, Lease], None]) -> None:
        self._script = client.register_script(WRITE)
        self._keys, self._ring_size, self._step_down = keys, ring_size, step_down
        self._queue: asyncio.Queue[Write] = asyncio.Queue()
        self.refused: dict[str, int] = dict.fromkeys(keys, 0)

    def put(self, write: Write) -> None:
        """Queue ``write`` behind every earlier one."""
        self._queue.put_nowait(write)

    async def write(self, write: Write) -> int:
        """Run the write script now: 1 when written, ``REFUSED_FENCE`` or ``REFUSED_GAP`` when refused."""
        keys = self._keys[write.channel]
        result = await self._script(keys=[keys.leader, keys.fence, keys.state, keys.ring],
                                    args=[write.lease.token, write.lease.fence, write.epoch, write.seq, write.frame,
                                          write.state, self._ring_size, int(write.seed)])
        return int(result)

    async def run(self) -> None:
        """Write queued frames in order, for as long as the console runs."""
        while True:
            write = await self._queue.get()
            try:
                result = await self.write(write)
            except (RedisError, OSError) as exc:
                self._refuse(write, "broker_write_failed", str(exc) or type(exc).__name__)
            else:
                if result < 0:
                    self.refused[write.channel] += 1
                    self._refuse(write, "broker_write_refused", "fence" if result == REFUSED_FENCE else "gap")
            finally:
                self._queue.task_done()

    async def flushed(self) -> None:
        """Return once every write queued so far has been answered."""
        await self._queue.join()

    def _refuse(self, write: Write, event: str, reason: str) -> None:
        log.warning(event, channel=write.channel, seq=write.seq, reason=reason)
        self._step_down(write.channel, write.lease)
