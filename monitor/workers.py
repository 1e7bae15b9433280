"""All cores of one machine: N worker processes, each a whole console, on one port (SO_REUSEPORT).

The parent binds the port (never listening on it) and forks the workers, which listen on it
beside each other; the kernel spreads new connections across them. The parent forwards
SIGTERM/SIGINT, restarts a worker that dies (with backoff), gives up when one keeps failing
before it is ready, and speaks for them all to systemd: READY=1 once every worker said it is
ready (over a pipe), WATCHDOG=1 while any of them serves. The workers share one broker
(``[broker] url``): without it they would each poll and each resume only their own clients.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from monitor.listener import reserve_port
from monitor.settings import Settings
from monitor.systemd import Notifier
from monitor.worker_config import worker_settings
from monitor.worker_pipe import READY, ReadyPipe, stop_with_parent

log = structlog.get_logger(__name__)

FIRST_BACKOFF = 0.5  # seconds before restarting a worker that died; doubled for each quick death in a row
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # seconds a worker must have lived for its death not to count as one more in a row
START_FAILURE_LIMIT = 3  # deaths in a row before ready, after which the parent gives up
STOP_MARGIN = 5.0  # seconds past shutdown_timeout + close_grace before a stopping worker is killed
FORWARDED = (signal.SIGTERM, signal.SIGINT)
WATCHED = (*FORWARDED, signal.SIGCHLD)
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")  # the parent's alone to use

ServeWorker = Callable[[Settings, int, ReadyPipe], int]  # (settings, index, pipe) -> exit status


@dataclass
class Slot:
    """One worker's place: its process now (pid 0 while none runs) and its record of deaths."""

    index: int
    pid: int = 0
    pipe: int = -1  # the parent's end of the worker's ready pipe
    ready: bool = False
    started: float = 0.0
    heard: float = 0.0  # when the worker last said it is ready or alive
    restart_at: float | None = None
    quick_deaths: int = 0  # in a row, each within STABLE_AFTER of its start
    start_failures: int = 0  # in a row, each before the worker was ready


class Supervisor:
    """The parent of ``count`` workers: starts, restarts and stops them, and speaks for them to systemd."""

    def __init__(self, settings: Settings, count: int, serve_worker: ServeWorker,
                 notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.count = count
        self.slots = [Slot(index) for index in range(count)]
        self._serve_worker = serve_worker
        self._notifier = notifier if notifier is not None else Notifier()
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        self._stop_signal: int | None = None
        self._announced = False
        self._next_ping = 0.0
        self._pid = os.getpid()  # the workers' parent, as they must know it from before the fork

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (0 once every worker stopped) or until a worker keeps failing (its status)."""
        try:
            port, held = reserve_port(self.settings.server.host, self.settings.server.port)
        except OSError:
            self._close()
            raise
        worker_config = worker_settings(self.settings, self.count, port)
        for fd in (self._wake_read, self._wake_write):
            os.set_blocking(fd, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        previous = {signum: signal.signal(signum, _wake_only) for signum in WATCHED}
        signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        log.info("workers_starting", workers=self.count, port=port,
                 max_connections=worker_config.server.max_connections)
        self._notifier.send(f"STATUS=starting {self.count} workers")
        try:
            for slot in self.slots:
                self._start(slot, worker_config, held)
            status = self._supervise(worker_config, held)
            return status if status is not None else self._stop_all()
        finally:
            signal.set_wakeup_fd(-1)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for sock in held:
                sock.close()
            self._close()

    def _close(self) -> None:
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _supervise(self, worker_config: Settings, held: list[socket.socket]) -> int | None:
        """Until a stop signal (None) or a worker failing at start too often (the status to exit with)."""
        while self._stop_signal is None:
            self._wait(self._next_timeout())
            for slot, status in self._reap():
                self._died(slot, status)
                if slot.start_failures >= START_FAILURE_LIMIT:
                    log.error("workers_failing", worker=slot.index, code=status, failures=slot.start_failures,
                              hint="every start of this worker failed before it was ready: see its log lines")
                    self._stop_all()
                    return status if status > 0 else 1
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._start(slot, worker_config, held)
            self._announce_when_ready()
            self._ping_watchdog()
            self._kill_unresponsive()
        return None

    def _start(self, slot: Slot, worker_config: Settings, held: list[socket.socket]) -> None:
        read_end, write_end = os.pipe()
        # Blocked across the fork: a signal for the parent never runs the parent's handler in the child.
        signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
        try:
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                self._become_worker(slot.index, worker_config, write_end, held)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
        os.close(write_end)
        slot.pid, slot.pipe, slot.ready, slot.started, slot.restart_at = pid, read_end, False, time.monotonic(), None
        self._selector.register(read_end, selectors.EVENT_READ, slot)
        log.info("worker_started", worker=slot.index, pid=pid)

    def _become_worker(self, index: int, worker_config: Settings, pipe: int, held: list[socket.socket]) -> None:
        """The child's side of the fork: drop the parent's signals and descriptors, serve, and exit (never return)."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in WATCHED:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
            self._selector.close()
            for fd in (self._wake_read, self._wake_write, *(slot.pipe for slot in self.slots if slot.pipe >= 0)):
                os.close(fd)
            for sock in held:
                sock.close()
            for name in SYSTEMD_VARIABLES:
                os.environ.pop(name, None)
            structlog.contextvars.bind_contextvars(worker=index)
            stop_with_parent(self._pid)
            status = self._serve_worker(worker_config, index, ReadyPipe(pipe, self._notifier.watchdog_interval))
        except BaseException:  # whatever happens, this process must not return into the parent's code
            log.exception("worker_crashed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def _wait(self, timeout: float | None) -> None:
        """Wait for a signal, a worker's readiness or the timeout; note what came."""
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                self._signalled()
                continue
            slot: Slot = key.data
            data = os.read(slot.pipe, 64)
            slot.heard = time.monotonic()
            if READY in data:
                slot.ready = True
                slot.start_failures = 0
                log.info("worker_ready", worker=slot.index, pid=slot.pid)
                self._tell_status()
            elif not data:  # the worker closed its end: it is exiting; its status comes with SIGCHLD
                self._forget_pipe(slot)

    def _signalled(self) -> None:
        try:
            received = os.read(self._wake_read, 512)
        except BlockingIOError:
            return
        for signum in received:
            if signum in FORWARDED and self._stop_signal is None:
                self._stop_signal = signum

    def _forget_pipe(self, slot: Slot) -> None:
        if slot.pipe >= 0:
            self._selector.unregister(slot.pipe)
            os.close(slot.pipe)
            slot.pipe = -1

    def _reap(self) -> list[tuple[Slot, int]]:
        """Every worker that exited since the last call, with its exit status (-N: killed by signal N)."""
        exited = []
        by_pid = {slot.pid: slot for slot in self.slots if slot.pid}
        while by_pid:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            slot = by_pid.pop(pid, None)
            if slot is not None:
                self._forget_pipe(slot)
                exited.append((slot, os.waitstatus_to_exitcode(wait_status)))
        return exited

    def _died(self, slot: Slot, status: int) -> None:
        """Record a worker's unexpected death and schedule its restart with backoff."""
        now = time.monotonic()
        lived = now - slot.started
        slot.quick_deaths = slot.quick_deaths + 1 if lived < STABLE_AFTER else 1
        slot.start_failures += 0 if slot.ready else 1
        delay = min(FIRST_BACKOFF * 2 ** (slot.quick_deaths - 1), MAX_BACKOFF)
        log.warning("worker_exited", worker=slot.index, pid=slot.pid, code=status, signal=_signal_name(status),
                    lived_s=round(lived, 3), ready=slot.ready, restart_in_s=delay)
        slot.pid, slot.ready, slot.restart_at = 0, False, now + delay
        self._tell_status()

    def _announce_when_ready(self) -> None:
        if not self._announced and all(slot.ready for slot in self.slots):
            self._announced = True
            log.info("workers_ready", workers=self.count)
            self._notifier.send("READY=1", f"STATUS=serving with {self.count} workers")

    def _tell_status(self) -> None:
        """After READY=1, systemctl status shows how many workers serve (one may be restarting)."""
        if self._announced:
            ready = sum(slot.ready for slot in self.slots)
            self._notifier.send(f"STATUS=serving with {self.count} workers" if ready == self.count
                                else f"STATUS=serving with {ready} of {self.count} workers; restarting the others")

    def _ping_watchdog(self) -> None:
        interval = self._notifier.watchdog_interval
        now = time.monotonic()
        if interval and now >= self._next_ping and any(slot.ready for slot in self.slots):
            self._notifier.send("WATCHDOG=1")
            self._next_ping = now + interval

    def _kill_unresponsive(self) -> None:
        """SIGKILL a ready worker silent for a whole watchdog period: its loop is stuck, as systemd would judge it."""
        interval = self._notifier.watchdog_interval
        if not interval:
            return
        now = time.monotonic()
        for slot in self.slots:
            if slot.ready and slot.pid and now - slot.heard > 2 * interval:
                log.error("worker_unresponsive", worker=slot.index, pid=slot.pid, silent_s=round(now - slot.heard, 3))
                _signal(slot.pid, signal.SIGKILL)
                slot.heard = now  # once: its death comes with SIGCHLD

    def _next_timeout(self) -> float | None:
        now = time.monotonic()
        deadlines = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
        if self._notifier.watchdog_interval and any(slot.ready for slot in self.slots):
            deadlines.append(self._next_ping)  # the pings' pace is also the pace of the workers' liveness checks
        return max(min(deadlines) - now, 0.0) if deadlines else None

    def _stop_all(self) -> int:
        """SIGTERM every worker, wait for them (killing the late ones); 0 when all stopped cleanly."""
        signum = self._stop_signal or signal.SIGTERM
        log.info("workers_stopping", signal=signal.Signals(signum).name)
        self._notifier.send("STOPPING=1", "STATUS=shutting down: stopping workers")
        for slot in self.slots:
            slot.restart_at = None
            if slot.pid:
                _signal(slot.pid, signal.SIGTERM)
        server = self.settings.server
        deadline = time.monotonic() + server.shutdown_timeout + server.close_grace + STOP_MARGIN
        clean = True
        while any(slot.pid for slot in self.slots) and time.monotonic() < deadline:
            self._wait(max(deadline - time.monotonic(), 0.0))
            for slot, status in self._reap():
                log.info("worker_exited", worker=slot.index, pid=slot.pid, code=status, signal=_signal_name(status))
                clean = clean and status in (0, -signal.SIGTERM)
                slot.pid = 0
        for slot in self.slots:
            if slot.pid:
                log.warning("worker_killed", worker=slot.index, pid=slot.pid,
                            hint="it outlived shutdown_timeout + close_grace")
                _signal(slot.pid, signal.SIGKILL)
                os.waitpid(slot.pid, 0)
                slot.pid, clean = 0, False
        log.info("stopped")
        return 0 if clean else 1


def supervise(settings: Settings, count: int, serve_worker: ServeWorker) -> int:
    """Run ``count`` workers of the console for ``settings`` until SIGTERM/SIGINT; the exit status."""
    return Supervisor(settings, count, serve_worker).run()


def _wake_only(signum: int, frame: object) -> None:
    """A signal's handler in the parent: the wake-up descriptor carries it to the loop."""


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # exited already; reaped on the next SIGCHLD


def _signal_name(status: int) -> str | None:
    return signal.Signals(-status).name if status < 0 else None
