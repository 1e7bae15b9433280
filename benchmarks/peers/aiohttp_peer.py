"""``python -m benchmarks.peers.aiohttp_peer --db PATH``: the queue channel served the plain aiohttp way.

``WebSocketResponse(heartbeat=30)``, the snapshot sent at connect, the socket kept in a set
and a read loop until it closes; a change goes out with ``await ws.send_str(frame)`` on
each socket in turn. The control hooks live on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from benchmarks.loadgen import raise_open_file_limit
from benchmarks.peers.common import (
    add_control_routes,
    announce,
    floor_frame,
    parse_args,
    patch_text,
    queue_snapshot,
    start_site,
    until_terminated,
    write_all,
)

SOCKETS = web.AppKey("sockets", set)
SNAPSHOT = web.AppKey("snapshot", str)
HEARTBEAT = web.AppKey("heartbeat", float)
SEQ = web.AppKey("seq", list)


async def queue_socket(request: web.Request) -> web.WebSocketResponse:
    """Upgrade, send the snapshot, read until the peer goes away."""
    ws = web.WebSocketResponse(heartbeat=request.app[HEARTBEAT])
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    try:
        with contextlib.suppress(ConnectionError):
            await ws.send_str(request.app[SNAPSHOT])
        async for _ in ws:
            pass
    finally:
        sockets.discard(ws)
    return ws


def make_app(snapshot: str, heartbeat: float) -> web.Application:
    """The peer's application: the WebSocket route and the control hooks."""
    app = web.Application()
    app[SOCKETS], app[SNAPSHOT], app[HEARTBEAT], app[SEQ] = set(), snapshot, heartbeat, [1]
    app.router.add_get("/api/v1/ws/queue", queue_socket)

    async def patch(marker: str, size: int) -> dict:
        app[SEQ][0] += 1
        frame, targets = patch_text(marker, size, app[SEQ][0]), list(app[SOCKETS])  # untimed
        started = time.monotonic()
        for ws in targets:
            try:
                await ws.send_str(frame)
            except (ConnectionError, RuntimeError):  # closing under us: the loop goes on
                pass
        return {"t0": started, "t1": time.monotonic(), "n": len(targets)}

    async def floor(marker: str, size: int) -> dict:
        transports = [ws._req.transport for ws in app[SOCKETS] if ws._req is not None]
        return write_all([t for t in transports if t is not None], floor_frame(marker, size))

    add_control_routes(app, patch, floor)
    return app


async def serve() -> None:
    """Serve until SIGTERM."""
    args = parse_args("plain aiohttp peer (benchmarks only)")
    runner, port = await start_site(make_app(queue_snapshot(args.db), args.heartbeat))
    announce(port)
    try:
        await until_terminated()
    finally:
        await runner.cleanup()


def main() -> None:
    """Entry point (the default asyncio loop, as the console uses)."""
    raise_open_file_limit()
    asyncio.run(serve())


if __name__ == "__main__":
    main()
