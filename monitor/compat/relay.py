"""The backend's own WebSockets under the prefix (``/ws/adw-state/{id}``, ``/ws/qc-metrics``), relayed both ways.

The backend's handshake comes first: a backend that refuses, is down or does not
answer gets the client a plain HTTP status (its own, 502 or 504) instead of a socket
that opens and dies. Then every frame goes across as it came, text or binary, and
whichever side closes first has its close code passed on to the other.
"""

from __future__ import annotations

import asyncio

import aiohttp
import structlog
from aiohttp import WSMsgType, hdrs, web

from monitor.compat.proxy import Backend, forward_headers
from monitor.keys import SETTINGS

log = structlog.get_logger(__name__)

MAX_MESSAGE = 4 * 1024 * 1024  # largest relayed message either way, as aiohttp's default
HANDSHAKE_HEADERS = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                     "sec-websocket-protocol", "origin"}


async def relay(request: web.Request, backend: Backend, prefix: str) -> web.StreamResponse:
    """Open the backend's socket, then the client's, and pass frames between them until either closes."""
    url = backend.target(request, prefix).with_scheme("wss" if backend.url.startswith("https") else "ws")
    headers = {name: value for name, value in forward_headers(request).items()
               if name.lower() not in HANDSHAKE_HEADERS}
    protocols = [p.strip() for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(",") if p.strip()]
    session = backend.relay_session
    assert session is not None
    try:
        async with asyncio.timeout(backend.timeout):
            upstream = await session.ws_connect(url, headers=headers, protocols=protocols, autoping=True,
                                                max_msg_size=MAX_MESSAGE, compress=0)
    except aiohttp.WSServerHandshakeError as exc:
        backend.answered()
        status = exc.status if 400 <= exc.status < 600 else 502
        return web.Response(status=status, text=f"the tac-webbuilder backend refused the WebSocket: "
                                                f"{exc.status} {exc.message}")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise backend.failed(url, exc) from None
    backend.answered()
    heartbeat = request.app[SETTINGS].server.heartbeat
    client = web.WebSocketResponse(protocols=(upstream.protocol,) if upstream.protocol else (), heartbeat=heartbeat,
                                   max_msg_size=MAX_MESSAGE)
    try:
        await client.prepare(request)
        backend.relays[client] = upstream
        await _pump_both(client, upstream)
    finally:
        backend.relays.pop(client, None)
        # Done already unless the relay was cut short (the client vanished, the handler was
        # cancelled): the backend still gets the client's close code, or "going away".
        await upstream.close(code=sendable(client.close_code))
    return client


async def _pump_both(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Relay until one side closes; then close the other with its code."""
    to_backend = asyncio.ensure_future(_pump(client, upstream))
    to_client = asyncio.ensure_future(_pump(upstream, client))
    try:
        done, _ = await asyncio.wait((to_backend, to_client), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (to_backend, to_client):
            task.cancel()
        await asyncio.gather(to_backend, to_client, return_exceptions=True)
    source, sink = (client, upstream) if to_backend in done else (upstream, client)
    await sink.close(code=sendable(source.close_code))


def sendable(code: int | None) -> int:
    """``code`` when a close frame may carry it (RFC 6455 §7.4); 1001 (going away) otherwise."""
    if code is not None and (1000 <= code <= 1014 and code not in (1004, 1005, 1006) or 3000 <= code <= 4999):
        return code
    return aiohttp.WSCloseCode.GOING_AWAY


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    """Send every data frame of ``source`` to ``sink`` until ``source`` closes."""
    async for message in source:
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type is WSMsgType.ERROR:
            log.info("compat_relay_error", error=str(source.exception())[:300])
            return
