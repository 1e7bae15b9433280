"""sd_notify: tell systemd when the console is ready, how it is doing, and that it is alive.

Speaks the datagram protocol on ``$NOTIFY_SOCKET`` directly (a few lines; no dependency).
The watchdog ping runs on the event loop, so a blocked loop stops the pings and systemd
restarts the service — exactly the failure the watchdog is for.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        owned = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 2_000_000 if usec.isdigit() and int(usec) > 0 and owned else None
        self._sock: socket.socket | None = None
        self._pinger: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """True when a notify socket was given."""
        return self.address is not None

    def send(self, *fields: str) -> None:
        """Send ``fields`` (e.g. ``"READY=1"``, ``"STATUS=…"``) as one datagram."""
        if self.address is None:
            return
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:  # systemd gone or socket full: never worth crashing the console
            log.warning("sd_notify_failed", error=str(exc))

    def start_watchdog(self) -> None:
        """Ping the watchdog at half its period while the event loop keeps running."""
        if self.watchdog_interval and self._pinger is None:
            self._pinger = asyncio.get_running_loop().create_task(self._ping_forever(self.watchdog_interval))

    async def _ping_forever(self, interval: float) -> None:
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        """Stop the watchdog pings and close the socket."""
        if self._pinger is not None:
            self._pinger.cancel()
            await asyncio.gather(self._pinger, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # abstract namespace
    return value
