"""A worker's ties to its parent (``monitor.workers``): a byte when it is ready and at each watchdog period; its end."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal

import structlog

log = structlog.get_logger(__name__)

READY = b"R"
ALIVE = b"W"
PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies (linux/prctl.h)


class ReadyPipe:
    """A worker's ``Notifies``: the parent alone speaks to systemd, for every worker, from what comes down this pipe.

    Each write is one byte into a pipe the parent keeps empty.
    """

    def __init__(self, fd: int, ping_interval: float | None = None) -> None:
        self._fd = fd
        os.set_blocking(fd, False)  # a full pipe (a parent not reading) costs a warning, never a stalled loop
        self._ping_interval = ping_interval  # systemd's watchdog period / 2; None: nobody watches
        self._pinger: asyncio.Task[None] | None = None

    def send(self, *fields: str) -> None:
        """Tell the parent this worker is ready, when ``fields`` say so (other messages are systemd's only)."""
        if "READY=1" in fields:
            self._write(READY)

    def start_watchdog(self) -> None:
        """Tell the parent this worker is alive at each watchdog period while its event loop runs."""
        if self._ping_interval and self._pinger is None:
            self._pinger = asyncio.get_running_loop().create_task(self._ping_forever(self._ping_interval))

    async def _ping_forever(self, interval: float) -> None:
        while True:
            self._write(ALIVE)
            await asyncio.sleep(interval)

    def _write(self, message: bytes) -> None:
        if self._fd < 0:
            return
        try:
            os.write(self._fd, message)
        except OSError as exc:  # the parent is gone: the kernel stops this worker too (PR_SET_PDEATHSIG)
            log.warning("worker_pipe_failed", error=str(exc))

    async def close(self) -> None:
        """Stop pinging and close the pipe; the parent reads its end of file."""
        if self._pinger is not None:
            self._pinger.cancel()
            await asyncio.gather(self._pinger, return_exceptions=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def stop_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the parent dies (Linux), so no worker outlives it unseen."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError) as exc:
        log.warning("worker_orphan_guard_unavailable", error=str(exc))
    if os.getppid() != parent:  # the parent died before the guard was set: nobody would send it
        os.kill(os.getpid(), signal.SIGTERM)
