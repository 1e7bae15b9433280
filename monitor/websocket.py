"""The WebSocket endpoint of a channel: catch up, register, then keep reading.

The receive loop always runs: aiohttp answers pings and processes pongs and close
frames only while someone reads (the seed's console stopped reading and went stale).
Writes never happen here: frames arrive through the hub.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import orjson
import structlog
from aiohttp import WSMsgType, web

from monitor.broker import encode
from monitor.channels.names import CHANNEL_NAMES
from monitor.connection import BacklogLimits, Connection
from monitor.keys import BROKER, HUB, SETTINGS

log = structlog.get_logger(__name__)

PONG = encode({"type": "pong"})
EPOCH_PATTERN = re.compile(r"[0-9a-f]{1,64}")


def parse_resume(query) -> tuple[str | None, int | None]:
    """(epoch, seq) from ``?epoch=&seq=``; anything malformed counts as absent (→ snapshot)."""
    epoch, seq = query.get("epoch"), query.get("seq")
    if epoch is None or not EPOCH_PATTERN.fullmatch(epoch):
        return None, None
    if seq is None or not (seq.isascii() and seq.isdigit()) or len(seq) > 18:
        return None, None
    return epoch, int(seq)


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...]) -> bool:
    """Same host as the page (any scheme: TLS often ends at a proxy), or explicitly allowed."""
    if origin.rstrip("/") in {a.rstrip("/") for a in allowed}:
        return True
    return urlsplit(origin).netloc.lower() == host.lower() != ""


def error_frame(message: str) -> bytes:
    """An ``error`` message for the client."""
    return encode({"type": "error", "error": message})


async def channel_socket(request: web.Request) -> web.StreamResponse:
    """Serve ``/api/v1/ws/<channel>``."""
    channel = request.match_info["channel"]
    if channel not in CHANNEL_NAMES:
        raise web.HTTPNotFound(text=f"unknown channel {channel!r}; channels: {', '.join(CHANNEL_NAMES)}")
    server = request.app[SETTINGS].server
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, request.host, server.allowed_origins):
        log.warning("ws_refused", reason="origin", origin=origin[:200], channel=channel, peer=request.remote)
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    # aiohttp refuses a message of exactly max_msg_size; max_client_frame is the largest accepted.
    ws = web.WebSocketResponse(heartbeat=server.heartbeat, compress=False, max_msg_size=server.max_client_frame + 1)
    await ws.prepare(request)
    hub = request.app[HUB]
    limits = BacklogLimits(server.max_backlog_messages, server.max_backlog_bytes, server.close_grace)
    connection = Connection(ws, request, channel, limits, on_evict=hub.note_eviction)
    epoch, seq = parse_resume(request.query)
    # No await between catching up and registering: no frame can fall between the two.
    hub.catch_up(connection, request.app[BROKER].catch_up(channel, epoch, seq))
    log.info("ws_opened", channel=channel, resume=epoch is not None, peer=request.remote)
    try:
        await _receive_loop(ws, connection)
    finally:
        hub.discard(connection)
        reason = connection.close_reason or _close_reason(ws)
        if reason == "dead_peer":
            hub.count_eviction(reason)
        log.info("ws_closed", channel=channel, reason=reason,
                 code=ws.close_code, duration_s=round(time.monotonic() - connection.opened_at, 3),
                 messages_sent=connection.messages_sent)
    return ws


async def _receive_loop(ws: web.WebSocketResponse, connection: Connection) -> None:
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            connection.offer(_answer(message.data))
        elif message.type is WSMsgType.BINARY:
            connection.offer(error_frame("binary frames are not accepted; send JSON text"))
        elif message.type is WSMsgType.ERROR:
            break


def _answer(text: str) -> bytes:
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return error_frame("not JSON; the only client message is {\"type\":\"ping\"}")
    if isinstance(message, dict) and message.get("type") == "ping":
        return PONG
    return error_frame("unknown message; the only client message is {\"type\":\"ping\"}")


def _close_reason(ws: web.WebSocketResponse) -> str:
    if isinstance(ws.exception(), TimeoutError):
        return "dead_peer"
    return "client_closed" if ws.close_code in (1000, 1001, None) else f"code_{ws.close_code}"
