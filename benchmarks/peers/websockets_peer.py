"""``python -m benchmarks.peers.websockets_peer --db PATH``: the queue channel served by the ``websockets`` library.

``websockets.asyncio.server.serve`` with ``ping_interval=30`` (and a 15 s pong timeout, as
aiohttp's heartbeat), the snapshot sent at connect, a read loop until the socket closes; a
change goes out with ``broadcast(server.connections, frame)``. The control hooks are a
small aiohttp app on a second port of the same process (websockets serves only GET).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

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

QUEUE_PATH = "/api/v1/ws/queue"


def make_handler(snapshot: str):
    """The connection handler: snapshot, then read until closed."""

    async def handler(connection: ServerConnection) -> None:
        if connection.request is None or connection.request.path != QUEUE_PATH:
            await connection.close(1008, "unknown path")
            return
        with contextlib.suppress(ConnectionClosed):
            await connection.send(snapshot)
            async for _ in connection:
                pass

    return handler


def control_app(server) -> web.Application:
    """The hooks: ``broadcast()`` of a patch to every open connection, and the floor."""
    app, seq = web.Application(), [1]

    async def patch(marker: str, size: int) -> dict:
        seq[0] += 1
        frame, connections = patch_text(marker, size, seq[0]), server.connections  # untimed
        started = time.monotonic()
        broadcast(connections, frame)
        return {"t0": started, "t1": time.monotonic(), "n": len(connections)}

    async def floor(marker: str, size: int) -> dict:
        transports = [connection.transport for connection in server.connections]
        return write_all(transports, floor_frame(marker, size))

    add_control_routes(app, patch, floor)
    return app


async def run() -> None:
    """Serve the WebSocket port and the control port until SIGTERM."""
    args = parse_args("websockets-library peer (benchmarks only)")
    handler = make_handler(queue_snapshot(args.db))
    async with serve(handler, "127.0.0.1", 0, ping_interval=args.heartbeat, ping_timeout=args.heartbeat / 2,
                     close_timeout=2) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        runner, control_port = await start_site(control_app(server))
        announce(port, control_port)
        try:
            await until_terminated()
        finally:
            await runner.cleanup()


def main() -> None:
    """Entry point (the default asyncio loop, as the console uses)."""
    raise_open_file_limit()
    asyncio.run(run())


if __name__ == "__main__":
    main()
