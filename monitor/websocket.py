"""The WebSocket endpoint of a channel: catch up, register, then keep reading.

The receive loop always runs: pongs and close frames are processed only while someone
reads (the seed's console stopped reading and went stale). It runs once the handler has
returned the upgraded socket, where aiohttp finishes every response (``write_eof``): a
handler that read until the end would hold the coroutines of every middleware for the
life of the connection, ~1.3 KB of each idle socket's ~17. The loop answers protocol
pings itself, one per turn of the event loop, and holds each client that sends data
frames to a token bucket: one client, however fast it sends, never takes the loop from
the others or from the polls. Patches never go out here: they arrive through the hub;
pings and dead peers are the shared heartbeat's (``heartbeat.py``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from monitor import protocol
from monitor.connection import DEAD_PEER, FLOODED, BacklogLimits, Connection
from monitor.cycles import drop_tracebacks
from monitor.hub import Hub
from monitor.keys import BROKER, HEARTBEAT, HUB, SETTINGS
from monitor.params import channel_or_404
from monitor.ratelimit import TokenBucket
from monitor.settings import ServerSettings

log = structlog.get_logger(__name__)


class ChannelSocket(web.WebSocketResponse):
    """A channel's socket, served from ``write_eof``: after the middlewares have returned."""

    __slots__ = ("_session",)

    def __init__(self, session: Callable[[ChannelSocket], Coroutine[Any, Any, None]], **options: Any) -> None:
        super().__init__(**options)
        self._session: Callable[[ChannelSocket], Coroutine[Any, Any, None]] | None = session

    def write_eof(self) -> Coroutine[Any, Any, None]:  # type: ignore[override]  # as aiohttp's own WebSocket says
        """The session, which ends with ``finish``; not a coroutine of its own, so its frame is not kept."""
        session, self._session = self._session, None
        return session(self) if session is not None else super().write_eof()

    async def finish(self) -> None:
        """End the response as aiohttp does: close the socket, if still open."""
        await super().write_eof()


Reply = Callable[[str | bytes], bytes | None]  # a client's data frame -> the answer to send (None: none)


async def channel_socket(request: web.Request) -> web.StreamResponse:
    """Serve ``/api/v1/ws/<channel>``."""
    channel = channel_or_404(request)
    app = request.app

    def catch_up() -> list[bytes]:
        return app[BROKER].catch_up(channel, *protocol.parse_resume(request.query))
    return await serve_socket(request, channel, app[HUB], catch_up, protocol.reply_to)


async def serve_socket(request: web.Request, channel: str, hub: Hub, catch_up: Callable[[], list[bytes]],
                       reply: Reply) -> web.StreamResponse:
    """Upgrade, then run a socket's session: ``catch_up()`` frames first, then every frame ``hub`` delivers."""
    server = request.app[SETTINGS].server  # Host and Origin were checked by headers.host_guard
    session = functools.partial(_serve, request=request, channel=channel, hub=hub, catch_up=catch_up, reply=reply)
    # aiohttp refuses a message of exactly max_msg_size; max_client_frame is the largest accepted.
    # autoping off: the receive loop answers pings itself, yielding between them. No heartbeat:
    # the app's shared one pings every socket.
    ws = ChannelSocket(session, compress=False, max_msg_size=server.max_client_frame + 1, autoping=False)
    if not await _upgrade(ws, request, channel):
        return web.Response(status=499, reason="Client Closed Request")  # never sent: the peer is gone
    return ws  # aiohttp now calls ws.write_eof(): the session


async def _upgrade(ws: web.WebSocketResponse, request: web.Request, channel: str) -> bool:
    """Send the 101 answer; False when the peer left while the request waited (nothing to log but debug)."""
    try:
        await ws.prepare(request)
    except ConnectionResetError as exc:  # aiohttp's ClientConnectionResetError too: a closing transport
        log.debug("ws_gone_before_upgrade", channel=channel, peer=request.remote, error=str(exc))
        return False
    return True


async def _serve(ws: ChannelSocket, request: web.Request, channel: str, hub: Hub,
                 catch_up: Callable[[], list[bytes]], reply: Reply) -> None:
    """Catch the client up, register it, and read until the socket closes."""
    app = request.app
    heartbeat, server = app[HEARTBEAT], app[SETTINGS].server
    connection = Connection(ws, request, channel, backlog_limits(server), on_evict=hub.note_eviction)
    # No await between catching up and registering: no frame can fall between the two.
    hub.catch_up(connection, catch_up())
    del catch_up  # its closure would live as long as the socket: ~200 B each of 10,000
    heartbeat.add(connection)
    log.info("ws_opened", channel=channel, resume=protocol.parse_resume(request.query)[0] is not None,
             peer=request.remote)
    budget: TokenBucket | None = None  # most clients never send a data frame: no bucket until one does
    try:
        async for message in ws:  # the receive loop, inline: one coroutine less held per socket
            connection.awaiting_pong = False  # any frame shows the peer is alive
            if message.type is WSMsgType.PING:
                await _pong(ws, message.data)
            elif message.type in (WSMsgType.TEXT, WSMsgType.BINARY) and not connection.close_reason:
                budget = budget or TokenBucket(server.client_messages_per_second, server.client_message_burst,
                                               time.monotonic())
                _answer(connection, budget, reply, message.data, request.remote)
            elif message.type is WSMsgType.ERROR:
                break
            # Frames a client sent in one burst are all buffered already and would be answered
            # back to back in one step: give the other sockets and the polls a turn after each.
            await asyncio.sleep(0)
    finally:
        heartbeat.discard(connection)
        hub.discard(connection)
        _log_closed(ws, connection, hub)
        # Logged: from here the cycle through the tracebacks would only wait for a full walk of
        # the heap (cycles.py). A session cancelled (aiohttp's handler cancellation) ends here.
        drop_tracebacks(ws.exception())
    try:
        await ws.finish()  # not when cancelled: aiohttp then drops the connection itself
    finally:
        drop_tracebacks(ws.exception())  # what the close left


@functools.lru_cache(maxsize=16)  # settings are frozen: one set of limits per configuration, not per socket
def backlog_limits(server: ServerSettings) -> BacklogLimits:
    """How far one client of ``server`` may fall behind."""
    return BacklogLimits(server.max_backlog_messages, server.max_backlog_bytes, server.close_grace)


def _answer(connection: Connection, budget: TokenBucket, reply: Reply, data: str | bytes, peer: str | None) -> None:
    """Reply to one client message, or refuse a client that sends faster than its bucket allows."""
    if budget.take(time.monotonic()):
        answer = reply(data)
        if answer is not None:
            connection.offer(answer)
    else:
        _refuse_flood(connection, budget, peer)


def _log_closed(ws: web.WebSocketResponse, connection: Connection, hub: Hub) -> None:
    """Count a peer that was cut off, and log how the connection ended."""
    reason = connection.close_reason or _close_reason(ws)
    if reason in (DEAD_PEER, FLOODED):
        hub.count_eviction(reason)
    # A dead peer is cut without a close frame: 1006, whatever aiohttp made of the lost transport.
    code = WSCloseCode.ABNORMAL_CLOSURE if reason == DEAD_PEER else ws.close_code
    log.info("ws_closed", channel=connection.channel, reason=reason, code=code,
             duration_s=round(time.monotonic() - connection.opened_at, 3), messages_sent=connection.messages_sent)


async def _pong(ws: web.WebSocketResponse, data: bytes) -> None:
    """Answer a protocol ping, as aiohttp's autoping would."""
    try:
        await ws.pong(data)
    except ConnectionResetError:
        pass  # the transport is closing: the peer is gone and the next read ends the loop


def _refuse_flood(connection: Connection, budget: TokenBucket, peer: str | None) -> None:
    """One error, then close 1008: logged once, as the connection is refused only once."""
    log.warning("ws_rate_limited", channel=connection.channel, peer=peer,
                per_second=budget.per_second, burst=budget.burst)
    connection.refuse(protocol.RATE_LIMITED, FLOODED, protocol.rate_error(budget.per_second, budget.burst))


def _close_reason(ws: web.WebSocketResponse) -> str:
    return "client_closed" if ws.close_code in (1000, 1001, None) else f"code_{ws.close_code}"
