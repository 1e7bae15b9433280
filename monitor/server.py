"""Running the console as a process: listen, wait for SIGTERM/SIGINT, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import structlog
from aiohttp import web

from monitor.app import create_app
from monitor.keys import CONNECTIONS, GC
from monitor.limits import budget_for
from monitor.listener import LimitedSite
from monitor.memory import give_back_after_bursts
from monitor.settings import Settings
from monitor.systemd import Notifier

log = structlog.get_logger(__name__)

WORKER_HEADER = "X-Monitor-Worker"  # "<index> <pid>" on every answer of a worker process (monitor.workers)


class Notifies(Protocol):
    """Where readiness and liveness go: systemd's notify socket, or a worker's pipe to its parent."""

    def send(self, *fields: str) -> None:
        """Send ``fields`` (e.g. ``"READY=1"``) as one message."""

    def start_watchdog(self) -> None:
        """Start the liveness pings, if any are expected."""

    async def close(self) -> None:
        """Stop pinging and release the channel."""


async def serve_until_signalled(settings: Settings, app: web.Application | None = None, *,
                                worker: int | None = None, notifier: Notifies | None = None) -> None:
    """Serve ``app`` (default: the console for ``settings``) until SIGTERM or SIGINT.

    ``worker`` is this process's index among sibling workers sharing the port (SO_REUSEPORT);
    None for a lone console. ``notifier`` defaults to systemd's.
    """
    app = app if app is not None else create_app(settings)
    raise_open_file_limit()
    notifier = notifier if notifier is not None else Notifier()
    if worker is not None:
        app.on_response_prepare.append(_worker_header(f"{worker} {os.getpid()}"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    notifier.send("STATUS=starting: first polls")
    try:
        # Runs the first polls, so the first page is complete. What startup built is frozen out of
        # later full collections by the app's garbage collection policy (gcpolicy.py).
        async with serving(settings, app, reuse_port=worker is not None) as runner:
            warn_if_exposed(settings)
            urls = []
            for host, port in _bound_addresses(runner):
                urls.append(f"http://{_url_host(host)}:{port}/")
                log.info("listening", url=urls[-1], host=host, port=port)
            notifier.send("READY=1", f"STATUS=serving {' '.join(urls)}")
            notifier.start_watchdog()
            await stop.wait()
            log.info("shutting_down")
            notifier.send("STOPPING=1", "STATUS=shutting down: closing sockets")
    finally:
        await notifier.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("stopped")


@contextlib.asynccontextmanager
async def serving(settings: Settings, app: web.Application,
                  reuse_port: bool = False) -> AsyncIterator[web.AppRunner]:
    """``app`` listening on ``settings.server`` within its connection budget, until the block ends."""
    budget = budget_for(settings.server)
    app[CONNECTIONS] = budget
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=settings.server.shutdown_timeout,
                           keepalive_timeout=settings.server.keepalive_timeout)
    trimmer: asyncio.Task[None] | None = None
    try:
        await runner.setup()
        # Every connection's transport, once lost, is freed of asyncio's cycle (cycles.py).
        await LimitedSite(runner, budget, settings.server.host, settings.server.port, reuse_port,
                          app[GC].releases.add).start()
        trimmer = asyncio.get_running_loop().create_task(give_back_after_bursts(lambda: budget.admitted))
        yield runner
    finally:
        if trimmer is not None:
            trimmer.cancel()
            await asyncio.gather(trimmer, return_exceptions=True)
        await runner.cleanup()
        budget.flush()


def raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one: every live socket is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            new_soft = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        except (ValueError, OSError) as exc:
            log.warning("open_file_limit_unchanged", soft=soft, hard=hard, error=str(exc))
            return
    log.debug("open_file_limit", limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def warn_if_exposed(settings: Settings) -> None:
    """Say loudly when an unauthenticated console listens beyond loopback."""
    if settings.auth.mode == "none" and settings.server.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("unauthenticated_public_bind", host=settings.server.host,
                    hint="set [auth] mode = token (or basic/proxy) before exposing the console")
        compat = settings.tac_webbuilder
        if compat is not None and compat.backend_url:
            # The pass-through makes a backend that listens on loopback only reachable from outside.
            log.warning("unauthenticated_backend_pass_through", host=settings.server.host, prefix=compat.prefix,
                        hint="everything under the prefix reaches the tac-webbuilder backend, without "
                             "authentication; set [auth] mode before exposing it")


def _worker_header(value: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def add_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[WORKER_HEADER] = value  # which sibling answered: the kernel chose it

    return add_header


def _bound_addresses(runner: web.AppRunner) -> list[tuple[str, int]]:
    return [(addr[0], addr[1]) for addr in runner.addresses if isinstance(addr, tuple)]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
