"""One poller per channel: read its sources under a timeout, publish what changed.

A poll never raises: a failure becomes the channel's ``meta`` error (one log line per
health transition) and the other channels never notice. Polls of one channel never
overlap, whether started by the scheduler or by a change event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from monitor.broker import Broker
from monitor.channels.base import ChannelData, Reader, SourceDown
from monitor.state import ChannelView

log = structlog.get_logger(__name__)

SMOOTHING = 0.2  # weight of the newest read in ``typical_seconds``


def describe_error(exc: BaseException, timeout: float) -> str:
    """A short operator-facing description of a failed poll."""
    if isinstance(exc, TimeoutError):
        return f"source did not answer within {timeout:g} s"
    text = str(exc).strip()
    return text if text else type(exc).__name__


def quickest_first(pollers: Mapping[str, Poller], channels: Iterable[str]) -> list[str]:
    """``channels`` that have a poller, those whose reads are typically quickest first.

    A commit wakes every database channel at once and their reads contend for the loop:
    started quickest first, the queue's clients need not wait for adw-monitor's runs.
    """
    return sorted((c for c in channels if c in pollers), key=lambda c: (pollers[c].typical_seconds, c))


class Poller:
    """Polls one channel's reader and hands each read, or its failure, to the broker."""

    def __init__(self, name: str, reader: Reader, broker: Broker, timeout: float,
                 observe: Callable[[str, float, bool], None] | None = None,
                 leads: Callable[[str], bool] | None = None,
                 view: Callable[[str], ChannelView] | None = None) -> None:
        self.name = name
        self.reader = reader
        self.broker = broker
        self.timeout = timeout
        self.observe = observe or (lambda channel, seconds, ok: None)
        # Shared consoles: only the channel's leader polls, and it judges health by what it published.
        self.leads = leads or (lambda channel: True)
        self.view = view or broker.current
        self.last_ok_monotonic: float | None = None
        self.polls = 0
        self.typical_seconds = 0.0  # a read's duration, smoothed: which channels to poll first
        self._lock = asyncio.Lock()
        self._running: asyncio.Task[Any] | None = None
        self._stopped = False
        self._again = False
        self._triggered: set[asyncio.Task[None]] = set()

    async def poll(self) -> None:
        """Read the sources once and publish any change (only while this console leads); never raises."""
        if self._stopped or not self.leads(self.name):
            return
        try:
            await self._poll_serialized()
        except asyncio.CancelledError:
            if not self._stopped:
                raise
            # stop() cancelled us: a poll cut short by shutdown is not an error to report.

    async def _poll_serialized(self) -> None:
        async with self._lock:
            self._running = asyncio.current_task()
            try:
                await self._poll_once()
                # A change signalled while we were reading may have been missed by that read.
                while self._again and not self._stopped:
                    self._again = False
                    await self._poll_once()
            finally:
                self._running = None

    def request_poll(self) -> asyncio.Task[None] | None:
        """Poll as soon as possible (a change was signalled); the new poll's task, None when coalesced with one."""
        if self._stopped:
            return None
        if self._lock.locked():
            self._again = True
            return None
        task = asyncio.get_running_loop().create_task(self.poll())
        self._triggered.add(task)
        task.add_done_callback(self._triggered.discard)
        return task

    async def stop(self) -> None:
        """Refuse further polls and cancel the one in flight."""
        self._stopped = True
        tasks = {t for t in (self._running, *self._triggered) if t is not None and t is not asyncio.current_task()}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout)

    async def _poll_once(self) -> None:
        self.polls += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                data = await self.reader.read()
        except Exception as exc:  # any source failure is the channel's state, not a crash
            self.observe(self.name, time.monotonic() - started, False)
            self._failed(exc, exc.data if isinstance(exc, SourceDown) else None)
            return
        elapsed, was = time.monotonic() - started, self._health()
        self.typical_seconds += SMOOTHING * (elapsed - self.typical_seconds)
        try:
            self.broker.publish(self.name, data)  # data it cannot encode becomes the channel's error
        except Exception as exc:  # a value no conversion foresaw: still not a crash
            self.observe(self.name, elapsed, False)
            self._failed(exc)
            return
        self._accepted(was, elapsed)

    def _health(self) -> str:
        return self.view(self.name).source

    def _accepted(self, was: str, elapsed: float) -> None:
        """Account for a read the channel took: good, or refused as unpublishable."""
        meta = self.view(self.name).state["meta"]
        self.observe(self.name, elapsed, meta["source"] == "ok")
        if meta["source"] != "ok":
            if was != "error":
                log.warning("source_error", channel=self.name, error=meta.get("error"), error_type="unpublishable")
            return
        self.last_ok_monotonic = time.monotonic()
        if was == "error":
            log.info("source_recovered", channel=self.name)

    def _failed(self, exc: Exception, data: ChannelData | None = None) -> None:
        was = self._health()
        message = describe_error(exc, self.timeout)
        self.broker.publish_error(self.name, message, data)
        if was != "error":
            cause = exc.__cause__ if isinstance(exc, SourceDown) and exc.__cause__ is not None else exc
            log.warning("source_error", channel=self.name, error=message, error_type=type(cause).__name__)
