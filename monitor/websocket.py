"""The WebSocket endpoint of a channel: catch up, register, then keep reading.

The receive loop always runs: pongs and close frames are processed only while someone
reads (the seed's console stopped reading and went stale). It answers protocol pings
itself, one per turn of the event loop, and holds each client to a token bucket of
data frames: one client, however fast it sends, never takes the loop from the others
or from the polls. Patches never go out here: they arrive through the hub.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiohttp import WSMsgType, web

from monitor import protocol
from monitor.connection import DEAD_PEER, FLOODED, BacklogLimits, Connection
from monitor.keys import BROKER, HUB, SETTINGS
from monitor.params import channel_or_404
from monitor.ratelimit import TokenBucket

log = structlog.get_logger(__name__)



async def channel_socket(request: web.Request) -> web.StreamResponse:
    """Serve ``/api/v1/ws/<channel>``."""
    channel = channel_or_404(request)
    server = request.app[SETTINGS].server  # Host and Origin were checked by headers.host_guard
    # aiohttp refuses a message of exactly max_msg_size; max_client_frame is the largest accepted.
    # autoping off: the receive loop answers pings itself, yielding between them.
    ws = web.WebSocketResponse(heartbeat=server.heartbeat, compress=False, max_msg_size=server.max_client_frame + 1,
                               autoping=False)
    if not await _upgrade(ws, request, channel):
        return web.Response(status=499, reason="Client Closed Request")  # never sent: the peer is gone
    hub = request.app[HUB]
    limits = BacklogLimits(server.max_backlog_messages, server.max_backlog_bytes, server.close_grace)
    connection = Connection(ws, request, channel, limits, on_evict=hub.note_eviction)
    epoch, seq = protocol.parse_resume(request.query)
    # No await between catching up and registering: no frame can fall between the two.
    hub.catch_up(connection, request.app[BROKER].catch_up(channel, epoch, seq))
    log.info("ws_opened", channel=channel, resume=epoch is not None, peer=request.remote)
    budget = TokenBucket(server.client_messages_per_second, server.client_message_burst, time.monotonic())
    try:
        await _receive_loop(ws, connection, budget, request.remote)
    finally:
        hub.discard(connection)
        reason = connection.close_reason or _close_reason(ws)
        if reason in (DEAD_PEER, FLOODED):
            hub.count_eviction(reason)
        log.info("ws_closed", channel=channel, reason=reason,
                 code=ws.close_code, duration_s=round(time.monotonic() - connection.opened_at, 3),
                 messages_sent=connection.messages_sent)
    return ws


async def _upgrade(ws: web.WebSocketResponse, request: web.Request, channel: str) -> bool:
    """Send the 101 answer; False when the peer left while the request waited (nothing to log but debug)."""
    try:
        await ws.prepare(request)
    except ConnectionResetError as exc:  # aiohttp's ClientConnectionResetError too: a closing transport
        log.debug("ws_gone_before_upgrade", channel=channel, peer=request.remote, error=str(exc))
        return False
    return True


async def _receive_loop(ws: web.WebSocketResponse, connection: Connection, budget: TokenBucket,
                        peer: str | None) -> None:
    async for message in ws:
        if message.type is WSMsgType.PING:
            await _pong(ws, message.data)
        elif message.type in (WSMsgType.TEXT, WSMsgType.BINARY) and not connection.close_reason:
            if budget.take(time.monotonic()):
                connection.offer(protocol.reply_to(message.data))
            else:
                _refuse_flood(connection, budget, peer)
        elif message.type is WSMsgType.ERROR:
            break
        # Frames a client sent in one burst are all buffered already and would be answered
        # back to back in one step: give the other sockets and the polls a turn after each.
        await asyncio.sleep(0)


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
    if isinstance(ws.exception(), TimeoutError):
        return DEAD_PEER
    return "client_closed" if ws.close_code in (1000, 1001, None) else f"code_{ws.close_code}"
