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
import errno
import ipaddress
import resource
import socket
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
LISTEN_BACKLOG = 128  # the kernel's queue of connections not yet accepted (aiohttp's default)
ACCEPT_BATCH = 128  # accepts per wake-up, as asyncio's own accept loop
ACCEPT_RETRY = 0.1  # seconds accepting rests after running out of descriptors: short, so /healthz waits little
ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
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
        self._emit(self.event, **self._fields, count=count, total=self.total, interval_s=self.interval, **{self._key: named})


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


class GatedConnection(asyncio.Protocol):
    """One admitted client connection, served by aiohttp's handler under a header timer; its place given back at the end."""

    __slots__ = ("_budget", "_address", "_make_handler", "_handler", "_timer", "_held")

    def __init__(self, budget: ConnectionBudget, address: str, make_handler: Callable[[], web.RequestHandler]) -> None:
        self._budget = budget
        self._address = address
        self._make_handler = make_handler
        self._handler: web.RequestHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._held = True  # the listener took this connection's place in the budget at accept

    @property
    def connected(self) -> bool:
        """True once aiohttp's handler has the transport."""
        return self._handler is not None or not self._held

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Hand the connection to aiohttp; its first request's headers are due within header_timeout."""
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

    def eof_received(self) -> bool | None:
        """Pass the client's end of stream to aiohttp."""
        return self._handler.eof_received() if self._handler is not None else None

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


def refuse(conn: socket.socket, answer: bytes) -> None:
    """Answer a refused connection and close it at once: its descriptor is free before the next accept."""
    try:
        conn.setblocking(False)
        conn.send(answer)  # a fresh socket's send buffer is empty: this never blocks
    except OSError:
        pass  # the client is gone already: there is no one to tell
    conn.close()


async def listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to, as ``loop.create_server`` binds them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, _, _, _, address in dict.fromkeys(infos):
            sock = socket.create_server(address, family=family, backlog=backlog)
            sock.setblocking(False)
            sockets.append(sock)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """Accepts connections itself: a refused one is answered and closed on the spot, an admitted one goes to aiohttp.

    asyncio's own accept loop gives every accepted socket a task and a transport before
    the protocol can look at it, and reports each failed accept with a traceback. Here a
    refused connection never holds its descriptor past the accept, and failures are counted.
    """

    def __init__(self, sockets: list[socket.socket], budget: ConnectionBudget,
                 make_handler: Callable[[], web.RequestHandler]) -> None:
        self.sockets = sockets
        self._budget = budget
        self._make_handler = make_handler
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task] = set()
        self._retries: dict[int, asyncio.TimerHandle] = {}

    def start(self) -> None:
        """Start accepting on every socket."""
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        """Stop accepting and close the listening sockets; open connections are aiohttp's to close."""
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self._failed(sock, exc)
                return
            address = address_key(peer)
            reason = self._budget.admit(address)
            if reason is None:
                task = self._loop.create_task(self._serve(conn, address))
                self._tasks.add(task)  # a strong reference until the transport exists
                task.add_done_callback(self._tasks.discard)
            else:
                refuse(conn, REFUSALS[reason])

    async def _serve(self, conn: socket.socket, address: str) -> None:
        gate = GatedConnection(self._budget, address, self._make_handler)
        try:
            await self._loop.connect_accepted_socket(lambda: gate, conn)
        except OSError as exc:
            if not gate.connected:  # else the transport closes it and connection_lost gives the place back
                gate.release()
                conn.close()
            log.debug("connection_setup_failed", address=address, error=str(exc))

    def _failed(self, sock: socket.socket, exc: OSError) -> None:
        self._budget.accept_errors.add(errno.errorcode.get(exc.errno or 0, str(exc.errno)))
        if exc.errno in ACCEPT_ERRNOS:
            # Linux keeps reporting the socket readable while connections wait: rest instead of spinning.
            self._loop.remove_reader(sock.fileno())
            self._retries[sock.fileno()] = self._loop.call_later(ACCEPT_RETRY, self._resume, sock)

    def _resume(self, sock: socket.socket) -> None:
        self._retries.pop(sock.fileno(), None)
        self._loop.add_reader(sock.fileno(), self._accept, sock)


class LimitedSite(web.BaseSite):
    """A TCP site whose connections go through a ``Listener`` under the budget, not straight to aiohttp."""

    def __init__(self, runner: web.AppRunner, budget: ConnectionBudget, host: str, port: int) -> None:
        super().__init__(runner, backlog=LISTEN_BACKLOG)
        self.budget = budget
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        """The site's URL."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Bind, listen and start accepting."""
        await super().start()  # registers the site with the runner, which lists its addresses
        server = self._runner.server
        assert server is not None, "runner.setup() first"
        listener = Listener(await listening_sockets(self._host, self._port, self._backlog), self.budget, server)
        self._server = listener
        listener.start()
