"""Listener: accepts client sockets itself under the connection budget, and the aiohttp site that uses it."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from monitor.limits import REFUSALS, ConnectionBudget, GatedConnection, OnLost, address_key

log = structlog.get_logger(__name__)

# The kernel's queue of connections not yet accepted (Linux caps it at net.core.somaxconn).
# aiohttp's 128 overflows under a burst: the kernel then drops the handshake's last ACK, and
# the client hears nothing, not even its 429, until SYN-ACK retransmits get it in (up to ~1 min).
LISTEN_BACKLOG = 1024
ACCEPT_BATCH = 128  # accepts per wake-up, as asyncio's own accept loop
ACCEPT_RETRY = 0.1  # seconds accepting rests after running out of descriptors: short, so /healthz waits little
ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def refuse(conn: socket.socket, answer: bytes) -> None:
    """Answer a refused connection and close it at once: its descriptor is free before the next accept."""
    try:
        conn.setblocking(False)
        conn.send(answer)  # a fresh socket's send buffer is empty: this never blocks
    except OSError:
        pass  # the client is gone already: there is no one to tell
    conn.close()


async def listening_sockets(host: str, port: int, backlog: int, reuse_port: bool = False) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to, as ``loop.create_server`` binds them.

    ``reuse_port`` sets SO_REUSEPORT, so that sibling worker processes listen on the same port
    and the kernel spreads new connections across them; a lone console never sets it, so a
    second console started by mistake fails to bind instead of silently taking half the clients.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, _, _, _, address in dict.fromkeys(infos):
            sock = socket.create_server(address, family=family, backlog=backlog, reuse_port=reuse_port)
            sock.setblocking(False)
            sockets.append(sock)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def reserve_port(host: str, port: int) -> tuple[int, list[socket.socket]]:
    """Bind (never listen) SO_REUSEPORT sockets on every address of ``host``; the port, and the sockets holding it.

    Workers then listen on that port beside them. Port 0 becomes one free port, the same for
    every worker and address. A socket that is bound but not listening is given no connections.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, _, _, _, address in dict.fromkeys(infos):
            # Anyone may join a port held with SO_REUSEPORT, by the same user: first make sure nobody
            # holds it at all (another console's workers would otherwise quietly share our clients).
            with _bound_socket(family, (address[0], port, *address[2:]), reuse_port=False) as probe:
                port = probe.getsockname()[1]  # port 0 is chosen once, by the first address
            sockets.append(_bound_socket(family, (address[0], port, *address[2:]), reuse_port=True))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return port, sockets


def _bound_socket(family: int, address: tuple[Any, ...], reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:  # as socket.create_server does: v4 goes to its own socket
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class Listener:
    """Accepts connections itself: a refused one is answered and closed on the spot, an admitted one goes to aiohttp.

    asyncio's own accept loop gives every accepted socket a task and a transport before
    the protocol can look at it, and reports each failed accept with a traceback. Here a
    refused connection never holds its descriptor past the accept, and failures are counted.
    """

    def __init__(self, sockets: list[socket.socket], budget: ConnectionBudget,
                 make_handler: Callable[[], web.RequestHandler], on_lost: OnLost) -> None:
        self.sockets = sockets
        self._budget = budget
        self._make_handler = make_handler
        self._on_lost = on_lost  # each connection's transport, once lost
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
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
        gate = GatedConnection(self._budget, address, self._make_handler, self._on_lost)
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

    def __init__(self, runner: web.AppRunner, budget: ConnectionBudget, host: str, port: int,
                 reuse_port: bool, on_lost: OnLost) -> None:
        """``on_lost``: handed each connection's transport once the connection is lost."""
        super().__init__(runner, backlog=LISTEN_BACKLOG)
        self.budget = budget
        self._on_lost = on_lost
        self._host = host
        self._port = port
        self._reuse_port = reuse_port  # only for sibling workers on one port (monitor.workers)

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
        sockets = await listening_sockets(self._host, self._port, self._backlog, self._reuse_port)
        listener = Listener(sockets, self.budget, server, self._on_lost)
        # aiohttp keeps the site's server in its private _server and only calls close() and reads
        # .sockets on it: a Listener offers both, though it is no asyncio.AbstractServer.
        self._server = listener  # type: ignore[assignment]
        listener.start()
