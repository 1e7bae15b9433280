"""Alert delivery: each notification URL has a queue of its own, sent in order and retried with backoff.

``Notifier.send`` only queues, so a poll never waits on a receiver. One worker task per URL
sends its oldest message through Apprise in one of the notifier's threads (Apprise's I/O
blocks) and, when that fails, tries again after ``retry_first`` seconds, doubling up to
``retry_max`` (with jitter), until it is delivered or ``give_up_after`` seconds old: one
URL's messages arrive in order, and a receiver that was down gets them once it is back. A
queue holds at most ``max_queued`` messages; beyond that the oldest is dropped and counted,
so a dead receiver costs bounded memory. URLs carry secrets: logs and stats show them redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor.alerts.services import UNSUPPORTED, check_url, open_service, redact_url, scrub, send

if TYPE_CHECKING:
    from apprise import Apprise

__all__ = ["Message", "Notifier", "NotifierCollector", "check_url", "redact_url"]

log = structlog.get_logger(__name__)
MAX_QUEUED = 1000
SEND_THREADS = 4  # a few receivers stuck in their timeouts must not hold up the others
TEST_TITLE = "monitor: test alert"


@dataclass(frozen=True)
class Message:
    """One alert message, for every notification URL of its rule."""

    title: str
    body: str
    urls: tuple[str, ...] = field(repr=False)  # secrets: a logged message must not show them


@dataclass(frozen=True, eq=False)
class Pending:
    """A message waiting in one URL's queue (compared by identity: the same text may be queued twice)."""

    title: str
    body: str
    queued_at: float


@dataclass(eq=False)
class Receiver:
    """One notification URL: its queue, its Apprise object, and what became of its messages."""

    url: str = field(repr=False)
    label: str
    queue: deque[Pending] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    service: Apprise | None = None
    unsupported: str | None = None
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    expired: int = 0
    refused: int = 0
    failing: bool = False
    last_error: str | None = None
    last_ok: float | None = None
    worker: asyncio.Task[None] | None = None

    def deliver(self, pending: Pending) -> str | None:
        """Send ``pending`` (blocking, in a worker thread): None when delivered, else why not."""
        if self.service is None:
            try:
                self.service, problem = open_service(self.url)
            except Exception as exc:  # Apprise failing to load a plugin is this attempt's failure, not the worker's end
                return scrub(f"cannot load Apprise: {type(exc).__name__}: {exc}", self.url)
            if self.service is None:
                return problem
        return send(self.service, self.url, pending.title, pending.body)

    def remove(self, pending: Pending) -> None:
        """Take ``pending`` off the queue unless a full queue already dropped it meanwhile."""
        if self.queue and self.queue[0] is pending:
            self.queue.popleft()

    def stats(self) -> dict[str, Any]:
        """What became of this URL's messages (no part of the URL)."""
        return {"sent": self.sent, "failed": self.failed, "queued": len(self.queue), "dropped": self.dropped,
                "expired": self.expired, "refused": self.refused, "failing": self.failing,
                "last_error": self.last_error, "last_ok": self.last_ok}


class Notifier:
    """Queues alert messages per notification URL and delivers them in the background."""

    def __init__(self, retry_first: float = 2.0, retry_max: float = 300.0, give_up_after: float = 24 * 3600,
                 now: Callable[[], float] = time.time, max_queued: int = MAX_QUEUED) -> None:
        self.retry_first, self.retry_max, self.give_up_after = retry_first, retry_max, give_up_after
        self.now = now
        self.max_queued = max_queued
        self.receivers: dict[str, Receiver] = {}
        self._random = random.Random()
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = asyncio.Event()
        self._progress = asyncio.Event()

    def send(self, message: Message, queued_at: float | None = None) -> None:
        """Queue ``message`` for each of its URLs and return at once (``queued_at``: when a restart's outbox had it)."""
        pending = Pending(message.title, message.body, self.now() if queued_at is None else queued_at)
        for url in dict.fromkeys(message.urls):
            receiver = self._receiver(url)
            if receiver.unsupported is not None:
                receiver.refused += 1
                log.warning("alert_delivery_failed", url=receiver.label, error=receiver.unsupported, retry_in=None)
                continue
            if len(receiver.queue) >= self.max_queued:
                receiver.queue.popleft()
                receiver.dropped += 1
                log.warning("alert_queue_full", url=receiver.label, dropped=receiver.dropped, limit=self.max_queued)
            receiver.queue.append(pending)
            receiver.wake.set()
            if self._executor is not None and receiver.worker is None:
                self._spawn(receiver)

    async def start(self) -> None:
        """Start delivering: a worker for every URL with messages waiting, and for each new URL as they come."""
        self._executor = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="alert-send")
        self._stopping.clear()
        for receiver in self.receivers.values():
            if receiver.queue and receiver.worker is None:
                self._spawn(receiver)

    async def stop(self, deadline: float) -> None:
        """Give the workers ``deadline`` seconds to deliver what is queued (no more retries), then end them."""
        self._stopping.set()
        workers = [receiver.worker for receiver in self.receivers.values() if receiver.worker is not None]
        for receiver in self.receivers.values():
            receiver.wake.set()
        if workers:
            _, late = await asyncio.wait(workers, timeout=deadline)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        unsent = {receiver.label: len(receiver.queue) for receiver in self.receivers.values() if receiver.queue}
        if unsent:
            log.warning("alert_delivery_unsent", queued=unsent)
        if self._executor is not None:
            # A send stuck in a receiver's timeout must not hold up the shutdown; its thread ends with its socket.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def unsent(self) -> list[tuple[str, Pending]]:
        """Every message still queued, with its URL: what a stopping console keeps for the next run."""
        return [(receiver.url, pending) for receiver in self.receivers.values() for pending in receiver.queue]

    async def drained(self) -> None:
        """Return once every queue is empty: each message delivered, dropped or given up."""
        while any(receiver.queue for receiver in self.receivers.values()):
            self._progress.clear()
            await self._progress.wait()

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per redacted URL: sent, failed attempts, queued, dropped (queue full), expired, refused (unsupported URL),
        failing, last_error, last_ok."""
        return {receiver.label: receiver.stats() for receiver in self.receivers.values()}

    async def test(self, urls: Sequence[str]) -> list[tuple[str, bool, str]]:
        """Send a test message to each URL now, no queue, no retry: (redacted URL, delivered?, why not or "")."""
        body = f"A test message from the monitor on {socket.gethostname()}: its alerts reach this address."
        message = Pending(TEST_TITLE, body, self.now())
        receivers = [Receiver(url, redact_url(url)) for url in urls]
        problems = await asyncio.gather(*(asyncio.to_thread(receiver.deliver, message) for receiver in receivers))
        return [(receiver.label, problem is None, problem or "")
                for receiver, problem in zip(receivers, problems, strict=True)]

    def _receiver(self, url: str) -> Receiver:
        if url not in self.receivers:
            self.receivers[url] = Receiver(url, self._new_label(redact_url(url)))
        return self.receivers[url]

    def _new_label(self, redacted: str) -> str:
        # Two URLs may redact alike (ntfy://***): their stats must stay apart.
        taken = {receiver.label for receiver in self.receivers.values()}
        return next(label for label in (redacted, *(f"{redacted} #{n}" for n in range(2, len(taken) + 3)))
                    if label not in taken)

    def _spawn(self, receiver: Receiver) -> None:
        receiver.worker = asyncio.get_running_loop().create_task(self._work(receiver))
        receiver.worker.add_done_callback(lambda task: self._ended(receiver, task))

    def _ended(self, receiver: Receiver, task: asyncio.Task[None]) -> None:
        receiver.worker = None  # the next message starts another, should this one have died of a bug
        if not task.cancelled() and task.exception() is not None:
            log.error("alert_worker_failed", url=receiver.label, exc_info=task.exception())

    async def _work(self, receiver: Receiver) -> None:
        failures = 0
        while not (self._stopping.is_set() and (failures or not receiver.queue)):
            if not receiver.queue:
                receiver.wake.clear()
                await receiver.wake.wait()
                continue
            pending = receiver.queue[0]
            if self.now() - pending.queued_at > self.give_up_after:
                self._give_up(receiver, pending)
                continue
            assert self._executor is not None  # a worker runs between start() and stop() only
            problem = await asyncio.get_running_loop().run_in_executor(self._executor, receiver.deliver, pending)
            if problem is None:
                self._delivered(receiver, pending, failures + 1)
                failures = 0
            elif receiver.service is None and problem.startswith(UNSUPPORTED):
                self._unsupported(receiver, problem)
            else:
                failures += 1
                await self._retry_later(receiver, problem, failures)

    def _delivered(self, receiver: Receiver, pending: Pending, attempt: int) -> None:
        receiver.remove(pending)
        receiver.sent += 1
        receiver.failing, receiver.last_ok = False, self.now()
        self._progress.set()
        log.info("alert_delivered", url=receiver.label, attempt=attempt, queued=len(receiver.queue))

    async def _retry_later(self, receiver: Receiver, problem: str, attempt: int) -> None:
        receiver.failed += 1
        receiver.failing, receiver.last_error = True, problem
        base = min(self.retry_max, self.retry_first * 2 ** min(attempt - 1, 64))
        retry_in = base / 2 + self._random.uniform(0, base / 2)  # jittered: receivers back at once are not hit at once
        log.warning("alert_delivery_failed", url=receiver.label, attempt=attempt, retry_in=round(retry_in, 3),
                    error=problem, queued=len(receiver.queue))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), retry_in)

    def _give_up(self, receiver: Receiver, pending: Pending) -> None:
        receiver.remove(pending)
        receiver.expired += 1
        self._progress.set()
        log.warning("alert_delivery_abandoned", url=receiver.label, age=round(self.now() - pending.queued_at),
                    error=receiver.last_error)

    def _unsupported(self, receiver: Receiver, problem: str) -> None:
        receiver.failed += 1
        receiver.refused += len(receiver.queue)
        receiver.failing, receiver.unsupported, receiver.last_error = True, problem, problem
        receiver.queue.clear()
        self._progress.set()
        log.warning("alert_delivery_failed", url=receiver.label, attempt=1, retry_in=None, error=problem)


class NotifierCollector:
    """``monitor_alert_*``: deliveries, queue, drops and failing receivers, read when Prometheus scrapes (no URL)."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def collect(self) -> list[Metric]:
        """The notifier's totals over every URL."""
        receivers = list(self.notifier.receivers.values())
        deliveries = CounterMetricFamily("monitor_alert_deliveries", "Alert deliveries: messages delivered, "
                                         "attempts failed", labels=["result"])
        deliveries.add_metric(["delivered"], sum(receiver.sent for receiver in receivers))
        deliveries.add_metric(["failed"], sum(receiver.failed for receiver in receivers))
        lost = CounterMetricFamily("monitor_alert_dropped", "Alert messages never delivered, by why",
                                   labels=["reason"])
        lost.add_metric(["queue_full"], sum(receiver.dropped for receiver in receivers))
        lost.add_metric(["expired"], sum(receiver.expired for receiver in receivers))
        lost.add_metric(["unsupported"], sum(receiver.refused for receiver in receivers))
        queue = GaugeMetricFamily("monitor_alert_queue", "Alert messages waiting for delivery",
                                  value=sum(len(receiver.queue) for receiver in receivers))
        failing = GaugeMetricFamily("monitor_alert_receivers_failing", "Notification URLs whose last attempt failed",
                                    value=sum(receiver.failing for receiver in receivers))
        return [deliveries, lost, queue, failing]
