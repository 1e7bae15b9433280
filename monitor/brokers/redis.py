"""The broker shared by many consoles through Redis: one poller per channel, every console a mirror.

The console that holds a channel's lock (``leadership.py``) is its poller: its ``publish``
diffs a read against its *author* state and writes the patch frame, under its lease, to the
channel's stream and state key in one script (``scripts.WRITE``). Every console, the poller
included, reads the streams (XREAD BLOCK: one ordered log that is also the resume ring, and
a reader that hiccups carries on from the last id it read, where pub/sub would drop what
was sent meanwhile), applies each patch to its ``MirrorState`` and hands the frame to its
own listeners. So every console's clients see the same (epoch, seq) sequence, and a client
may resume on any console: each mirror's ring is loaded from the stream.

A new poller continues the epoch it finds in the state key (clients keep their place and
get no snapshot); only when Redis holds no state (first start, or Redis restarted empty)
does it seed a new epoch. When Redis is unreachable every console keeps its last states,
marked out of date under an epoch of its own, reconnects with capped, jittered backoff, and
then reloads the shared state (its clients get a snapshot).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from monitor import protocol
from monitor.broker import CATCH_UP_OUTCOMES, Listener, new_epoch
from monitor.brokers import stream
from monitor.brokers.connection import CONNECTION_ERRORS, backoff_delay, connect
from monitor.brokers.leadership import Leadership, Lease
from monitor.brokers.mirror import MirrorState
from monitor.brokers.polls import PollTimes
from monitor.brokers.scripts import ChannelKeys
from monitor.brokers.watchers import Watchers
from monitor.brokers.writer import Write, Writer
from monitor.channels.base import ChannelData
from monitor.state import ChannelState, ChannelView

log = structlog.get_logger(__name__)

READ_BLOCK_MS = 1000  # how long one XREAD waits for an entry before asking again


class RedisBroker:
    """Broker for consoles that share channels through one Redis (see the module docstring)."""

    def __init__(self, channels: tuple[str, ...], ring_size: int, url: str, lock_ttl: float,
                 console_id: str | None = None) -> None:
        self.console_id = console_id or uuid.uuid4().hex[:12]
        self.ring_size, self.lock_ttl = ring_size, lock_ttl
        self._keys = {name: ChannelKeys.of(name) for name in channels}
        local_epoch = new_epoch()
        self._mirrors = {name: MirrorState(name, local_epoch, ring_size) for name in channels}
        self._authors: dict[str, tuple[ChannelState, Lease]] = {}
        self._listeners: list[Listener] = []
        self.published: dict[str, int] = dict.fromkeys(channels, 0)
        self.catch_ups: dict[str, int] = dict.fromkeys(CATCH_UP_OUTCOMES, 0)
        self.connected = False
        self.last_rtt: float | None = None
        self.on_lead: Callable[[str], None] = lambda channel: None  # the poller of a channel just taken
        self.rtt_observers: list[Callable[[float], None]] = []
        self.synced = asyncio.Event()  # set by each successful load of every channel
        self._client = connect(url, max(1.0, lock_ttl))
        self._reader = connect(url, max(1.0, lock_ttl) + READ_BLOCK_MS / 1000)
        self._leadership = Leadership(self._client, self.console_id, lock_ttl, self._observe_rtt)
        self._writer = Writer(self._client, self._keys, ring_size, self._step_down)
        self._polls = PollTimes(self._client, channels)
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers = Watchers()
        self._closed = False
        self._released: list[tuple[str, Lease]] = []  # leases stepped down from, to hand back

    # -- the Broker protocol -------------------------------------------------------------

    def publish(self, channel: str, data: ChannelData | None) -> None:
        """A good read by this channel's poller: diff it and queue the patch for the shared stream."""
        held = self._authors.get(channel)
        if held is not None:  # else the lock was lost while this read ran: the new poller reads for itself
            self._queue(channel, held, held[0].accept(data))

    def publish_error(self, channel: str, message: str, data: ChannelData | None = None) -> None:
        """A failed read by this channel's poller: queue the error's patch for the shared stream."""
        held = self._authors.get(channel)
        if held is not None:
            self._queue(channel, held, held[0].mark_error(message, data))

    def catch_up(self, channel: str, epoch: str | None, seq: int | None) -> list[bytes]:
        """Frames that bring a client at (epoch, seq) to this console's state (its ring is the stream's)."""
        outcome, frames = self._mirrors[channel].catch_up(epoch, seq)
        self.catch_ups[outcome] += 1
        return frames

    def listen(self, listener: Listener) -> None:
        """Register a live-frame listener."""
        self._listeners.append(listener)

    def current(self, channel: str) -> ChannelView:
        """``channel``'s state as this console's clients have it."""
        return self._mirrors[channel].view

    # -- leadership, as the pollers and /healthz see it ----------------------------------------

    def leads(self, channel: str) -> bool:
        """True while this console is ``channel``'s poller."""
        return channel in self._authors

    def authored(self, channel: str) -> ChannelView:
        """The state this console's last read of ``channel`` made (ahead of the mirror by the writes in flight)."""
        held = self._authors.get(channel)
        return held[0].view if held is not None else self.current(channel)

    def polled(self, channel: str) -> None:
        """This console's poll of ``channel`` was good: let every console tell its age (``polls.py``)."""
        if channel in self._authors:
            self._polls.note(channel)

    async def last_polls(self) -> dict[str, float]:
        """Each channel's last good poll by whichever console polls it, as a Unix time (when Redis says)."""
        return await self._polls.read()

    def lease(self, channel: str) -> Lease | None:
        """This console's lease on ``channel``'s lock, None unless it is the poller."""
        held = self._authors.get(channel)
        return held[1] if held is not None else None

    @property
    def writer(self) -> Writer:
        """What writes this console's frames to Redis."""
        return self._writer

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked on every change of connection, leadership or state."""
        await self._watchers.wait_until(predicate)

    def status(self) -> dict[str, Any]:
        """The broker's state for /healthz."""
        return {"kind": "redis", "connected": self.connected, "console": self.console_id,
                "leader_of": sorted(self._authors),
                "rtt_ms": None if self.last_rtt is None else round(self.last_rtt * 1000, 3),
                "refused_writes": sum(self._writer.refused.values())}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, wait: float) -> None:
        """Start following the shared streams; within ``wait`` s, load them and take the free channels."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_forever()), loop.create_task(self._writer.run())]
        try:
            async with asyncio.timeout(wait):
                await self.synced.wait()
                await self._lead_round()  # before the first polls: this console polls what it can take
        except TimeoutError:  # Redis away: serve what we have (marked out of date) and keep trying
            log.warning("broker_unreachable_at_start", console=self.console_id)
        self._tasks.append(loop.create_task(self._lead_forever()))

    async def close(self, release: bool = True) -> None:
        """Stop every task; with ``release``, hand the locks back so another console polls at once."""
        if self._closed:
            return
        self._closed = True
        self._watchers.notify()
        await self._stop_tasks()
        await self._polls.close()
        leases, self._authors = dict(self._authors), {}
        if release and self.connected:
            for channel, (_, lease) in leases.items():
                try:
                    await self._leadership.release(self._keys[channel], lease)
                except CONNECTION_ERRORS:
                    break
        await self._client.aclose()
        await self._reader.aclose()

    async def _stop_tasks(self) -> None:
        pending = {task for task in self._tasks if not task.done()}
        # redis-py may turn a cancellation that lands mid-command into an error the loops survive:
        # they stop at their next turn (``_closed``), and whatever still waits is cancelled again.
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)

    # -- following the shared streams (every console) ------------------------------------------

    async def _read_forever(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                positions = {self._keys[name].ring: await self._reload(name) for name in self._mirrors}
                self._now_connected()
                attempt = 0
                while not self._closed:
                    await self._follow(positions)
            except CONNECTION_ERRORS as exc:
                self._lost(exc)
                await asyncio.sleep(backoff_delay(attempt))  # a reconnection's pace, not an awaited event
                attempt += 1

    async def _reload(self, channel: str) -> bytes:
        """Load ``channel``'s shared state into its mirror (a snapshot to listeners if it moved); the stream's end."""
        shared, last_id = await stream.load(self._reader, self._keys[channel])
        mirror = self._mirrors[channel]
        if shared is not None and mirror.load(shared.epoch, shared.seq, shared.state, shared.ring):
            self._deliver(channel, mirror.snapshot_frame())
        return last_id

    async def _follow(self, positions: dict[str, bytes]) -> None:
        channel_of = {keys.ring: name for name, keys in self._keys.items()}
        for ring_key, entries in await stream.read(self._reader, positions, READ_BLOCK_MS):
            channel, mirror = channel_of[ring_key], self._mirrors[channel_of[ring_key]]
            for entry in entries:
                positions[ring_key] = entry.id
                if mirror.follows(entry.epoch, entry.seq):
                    mirror.apply_frame(entry.seq, entry.frame)
                    self._deliver(channel, entry.frame)
                elif not mirror.has_seen(entry.epoch, entry.seq):
                    # A new epoch or a gap (the cap trimmed what we had not read): the state key is the truth.
                    positions[ring_key] = await self._reload(channel)
                    break

    def _deliver(self, channel: str, frame: bytes) -> None:
        self.published[channel] += 1
        for listener in self._listeners:
            try:
                listener(channel, frame)
            except Exception:  # the state has moved on: a failed fan-out is not the broker's failure
                log.exception("broker_listener_failed", channel=channel)
        self._watchers.notify()

    def _now_connected(self) -> None:
        self.synced.set()
        if not self.connected:
            self.connected = True
            log.info("broker_connected", console=self.console_id, leader_of=sorted(self._authors))
            self._watchers.notify()

    def _lost(self, exc: BaseException) -> None:
        """Redis is unreachable: stop polling, keep every state, marked out of date, and tell the clients."""
        if self._closed:  # the connections were closed on purpose
            return
        # Locks that may have outlived the connection are handed back once Redis answers again.
        self._released += [(channel, lease) for channel, (_, lease) in self._authors.items()]
        self._authors.clear()
        self.synced.clear()
        if self.connected or not any(m.broker_down for m in self._mirrors.values()):
            log.warning("broker_down", console=self.console_id, error=str(exc) or type(exc).__name__)
        self.connected = False
        for name, mirror in self._mirrors.items():
            if not mirror.broker_down:
                self._deliver(name, mirror.mark_broker_down())
        self._watchers.notify()

    # -- leading: taking, keeping and losing channels' locks -------------------------------------

    async def _lead_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.lock_ttl / 3)  # the renewal period: a clock, not an event
            await self.wait_until(lambda: self.connected or self._closed)
            if not self._closed:
                await self._lead_round()

    async def _lead_round(self) -> None:
        """Hand back the locks stepped down from, renew the held ones and try to take the free ones."""
        try:
            while self._released:
                channel, lease = self._released.pop()
                await self._leadership.release(self._keys[channel], lease)
            for channel in self._mirrors:
                await self._keep_or_take(channel)
        except CONNECTION_ERRORS as exc:  # the reader notices too, and reconnects
            self._authors.clear()
            self._watchers.notify()
            log.warning("broker_leadership_failed", console=self.console_id, error=str(exc))

    async def _keep_or_take(self, channel: str) -> None:
        keys, held = self._keys[channel], self._authors.get(channel)
        if held is not None:
            if not await self._leadership.renew(keys, held[1]):
                self._step_down(channel, held[1])
                log.warning("broker_leadership_lost", channel=channel, console=self.console_id)
            return
        lease = await self._leadership.acquire(keys)
        if lease is None:
            return
        shared, _ = await stream.load(self._client, keys)
        if shared is not None:  # continue the epoch: clients everywhere keep their place
            author = ChannelState(channel, shared.epoch)
            author.seq, author.state = shared.seq, shared.state
        else:  # nothing shared (first start, or Redis restarted empty): a new epoch, seeded with a snapshot
            author = ChannelState(channel, new_epoch())
            seed = protocol.snapshot_frame(channel, author.epoch, author.seq, author.state)
            if await self._writer.write(Write.after(channel, lease, author, seed, seed=True)) < 0:
                return
        self._authors[channel] = (author, lease)
        log.info("broker_leader", channel=channel, console=self.console_id, epoch=author.epoch, seq=author.seq)
        self._watchers.notify()
        self.on_lead(channel)

    def _step_down(self, channel: str, lease: Lease) -> None:
        held = self._authors.get(channel)
        if held is not None and held[1] == lease:
            del self._authors[channel]
            self._released.append((channel, lease))  # a lock still ours would keep every console waiting
            self._watchers.notify()

    def _queue(self, channel: str, held: tuple[ChannelState, Lease], frame: bytes | None) -> None:
        if frame is not None:
            self._writer.put(Write.after(channel, held[1], held[0], frame))

    def _observe_rtt(self, seconds: float) -> None:
        self.last_rtt = seconds
        for observe in self.rtt_observers:
            observe(seconds)

    async def flushed(self) -> None:
        """Return once every write queued so far has been answered."""
        await self._writer.flushed()
