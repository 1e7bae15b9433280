"""Connection budget: caps on open connections, a header-read timeout, and accept errors counted, not logged each.

Every client connection holds a descriptor from the moment it is accepted, before any
authentication. Without a budget, idle or half-sent connections take every descriptor
the process has, and then the console's own polls fail with "Too many open files".
The console accepts connections itself (``Listener``), so a refused one is closed before
it costs anything more, and wraps aiohttp's handler of an admitted one (``GatedConnection``)
to time its request headers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from monitor.ratelimit import AddressRates
from monitor.settings import ServerSettings

log = structlog.get_logger(__name__)

REPORT_INTERVAL = 10.0  # seconds between summary lines of a repeated event
UNLIMITED_FILES = 1 << 20  # Linux's default fs.nr_open: what "no limit" comes to in practice
TOP_ADDRESSES = 5  # addresses named in a summary line
TRACKED_ADDRESSES = 256  # distinct addresses counted per interval: a summary must stay small under any flood


def refusal(status: str, text: str) -> bytes:
    """A complete HTTP answer that closes the connection; written before any request is read."""
    body = text.encode() + b"\n"
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Retry-After: 10\r\nConnection: close\r\n\r\n").encode() + body


REFUSALS = {
    "rate": refusal("429 Too Many Requests", "connecting too fast from this address"),
    "address": refusal("429 Too Many Requests", "too many connections from this address"),
    "total": refusal("503 Service Unavailable", "too many connections"),
}


@dataclass(frozen=True)
class Caps:
    """How many client connections may be open, in total and from one address."""

    total: int
    per_address: int


def open_file_limit() -> int:
    """The process's soft limit on open descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft


def connection_caps(server: ServerSettings, open_files: int) -> Caps:
    """The caps ``server`` asks for, never reaching into the descriptors kept in reserve."""
    room = open_files - server.fd_reserve
    if room < 1:
        # A limit at or below the reserve is a broken deployment, but clients must still get in.
        room = max(open_files // 2, 1)
    total = min(server.max_connections or room, room)
    per_address = min(server.max_connections_per_address or max(total // 4, 1), total)
    return Caps(total, per_address)


def budget_for(server: ServerSettings) -> ConnectionBudget:
    """The budget ``server`` asks for under this process's open-file limit, its figures logged once."""
    open_files = open_file_limit()
    caps = connection_caps(server, open_files)
    if open_files <= server.fd_reserve or server.max_connections > caps.total:
        log.warning("connection_cap_lowered", asked=server.max_connections, max_connections=caps.total,
                    open_files=open_files, fd_reserve=server.fd_reserve,
                    hint="raise the open-file limit (LimitNOFILE, ulimit -n) or lower server.fd_reserve")
    log.info("connection_limits", max_connections=caps.total, max_per_address=caps.per_address,
             open_files=open_files, fd_reserve=server.fd_reserve, header_timeout=server.header_timeout,
             keepalive_timeout=server.keepalive_timeout)
    rate = server.connections_per_second_per_address
    rates = AddressRates(rate, max(1, int(2 * rate))) if rate else None
    return ConnectionBudget(caps, server.header_timeout, rates=rates)


def address_key(peername: Any) -> str:
    """The client address a per-address cap counts: the IP, and for IPv6 its /64 network."""
    host = peername[0] if isinstance(peername, tuple) and peername else str(peername or "")
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    # One IPv6 host commonly holds a whole /64: counting single addresses would cap nothing.
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


class IntervalLog:
    """One repeated event, logged at its first occurrence and then at most once per interval, with counts."""

    def __init__(self, event: str, interval: float = REPORT_INTERVAL, level: str = "warning", key: str = "addresses",
                 **fields: Any) -> None:
        self.event = event
        self.interval = interval
        self.total = 0
        self._emit = getattr(log, level)
        self._key = key
        self._fields = fields
        self._pending: Counter[str] = Counter()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, detail: str = "") -> None:
        """Count one occurrence; log now only if the event was quiet for a whole interval."""
        self.total += 1
        if self._timer is None:
            self._write(1, Counter({detail: 1}))
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
            return
        if detail in self._pending or len(self._pending) < TRACKED_ADDRESSES:
            self._pending[detail] += 1
        else:
            self._pending[""] += 1  # beyond the tracked set: counted, not named

    def flush(self) -> None:
        """Log what was counted since the last line, if anything, and stop the interval timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._write(sum(self._pending.values()), self._pending)
            self._pending = Counter()

    def _tick(self) -> None:
        self._timer = None
        if self._pending:
            self.flush()
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _write(self, count: int, details: Counter[str]) -> None:
        named = {detail: n for detail, n in details.most_common(TOP_ADDRESSES) if detail}
        self._emit(self.event, **self._fields, count=count, total=self.total, interval_s=self.interval,
                   **{self._key: named})


class ConnectionBudget:
    """Live client connections in total and per address; admits each new one or says why not."""

    def __init__(self, caps: Caps, header_timeout: float, interval: float = REPORT_INTERVAL,
                 rates: AddressRates | None = None) -> None:
        self.caps = caps
        self.header_timeout = header_timeout
        self.rates = rates  # new connections per second from one address; None = unlimited
        self.open = 0
        self.admitted = 0  # ever, for telling a burst of connections from a quiet spell
        self.by_address: Counter[str] = Counter()
        self.refused = {reason: IntervalLog("connections_refused", interval, cap=reason) for reason in REFUSALS}
        self.header_timeouts = IntervalLog("header_timeouts", interval, level="info")
        self.accept_errors = IntervalLog("accept_failed", interval, key="errors")

    def admit(self, address: str) -> str | None:
        """Take a place for a connection from ``address``; None if admitted, else the cap it would exceed."""
        if self.open >= self.caps.total:
            reason = "total"
        elif self.rates is not None and not self.rates.take(address, time.monotonic()):
            reason = "rate"  # refused before any parsing: a connect storm costs an accept and a write
        elif self.by_address[address] >= self.caps.per_address:
            reason = "address"
        else:
            self.open += 1
            self.admitted += 1
            self.by_address[address] += 1
            return None
        self.refused[reason].add(address)
        return reason

    def release(self, address: str) -> None:
        """Give back the place of a closed connection from ``address``."""
        self.open -= 1
        left = self.by_address[address] - 1
        if left:
            self.by_address[address] = left
        else:
            del self.by_address[address]  # the table holds only addresses with open connections

    def snapshot(self) -> dict[str, int]:
        """Counts for health and metrics: open now, the caps, and what was refused, timed out or failed so far."""
        return {"open": self.open, "max": self.caps.total, "max_per_address": self.caps.per_address,
                "addresses": len(self.by_address), "refused": sum(refusals.total for refusals in self.refused.values()),
                "header_timeouts": self.header_timeouts.total, "accept_errors": self.accept_errors.total}

    def flush(self) -> None:
        """Log every count not yet logged (at shutdown)."""
        for refusals in self.refused.values():
            refusals.flush()
        self.header_timeouts.flush()
        self.accept_errors.flush()


OnLost = Callable[[asyncio.BaseTransport], None]  # handed a connection's transport once it is lost


class GatedConnection(asyncio.Protocol):
    """One admitted client connection, served by aiohttp's handler under a header timer.

    Its place in the budget is given back at the end.
    """

    __slots__ = ("_budget", "_address", "_make_handler", "_handler", "_timer", "_held", "_transport", "_on_lost")

    def __init__(self, budget: ConnectionBudget, address: str, make_handler: Callable[[], web.RequestHandler],
                 on_lost: OnLost) -> None:
        """``on_lost``: handed the transport once the connection is lost (``cycles.Releases.add``)."""
        self._budget = budget
        self._address = address
        self._make_handler = make_handler
        self._handler: web.RequestHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._held = True  # the listener took this connection's place in the budget at accept
        self._transport: asyncio.BaseTransport | None = None
        self._on_lost = on_lost

    @property
    def connected(self) -> bool:
        """True once aiohttp's handler has the transport."""
        return self._handler is not None or not self._held

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Hand the connection to aiohttp; its first request's headers are due within header_timeout."""
        self._transport = transport
        self._handler = self._make_handler()
        self._handler.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Feed aiohttp; time a request's headers from its first byte until they are complete."""
        handler = self._handler
        if handler is None:
            return
        # aiohttp's RequestHandler counts the requests it parsed (_request_count) and parks
        # a future (_waiter) while it waits for the next one: the only signs of "headers done"
        # and "between requests". tests/test_limits.py pins both.
        parsed = handler._request_count
        handler.data_received(data)
        if handler._request_count != parsed:
            self._disarm()
        elif self._timer is None and handler._waiter is not None and not handler._waiter.done():
            self._arm()  # bytes of a new request on an idle keep-alive connection

    def eof_received(self) -> None:
        """Pass the client's end of stream to aiohttp."""
        # aiohttp's handler always returns None (the transport then closes itself), so this does too.
        if self._handler is not None:
            self._handler.eof_received()

    def pause_writing(self) -> None:
        """Pass flow control to aiohttp."""
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        """Pass flow control to aiohttp."""
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        """Give the place back and let aiohttp clean up."""
        self._disarm()
        self.release()
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.connection_lost(exc)
        transport, self._transport = self._transport, None
        if transport is not None:
            self._on_lost(transport)

    def release(self) -> None:
        """Give this connection's place back to the budget, once."""
        if self._held:
            self._held = False
            self._budget.release(self._address)

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._budget.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._handler is not None:
            # As nginx's client_header_timeout: the request is unfinished, so no answer, just the close.
            self._budget.header_timeouts.add(self._address)
            self._handler.force_close()
