"""Benchmark-only routes for the seed replica: the same floor and a 1 KB broadcast."""

from __future__ import annotations

import time

import orjson
from fastapi import FastAPI, Request
from starlette.websockets import WebSocket

from benchmarks.hooks import padding, text_frame


def transport_of(websocket: WebSocket):
    """The asyncio transport under a Starlette WebSocket served by uvicorn."""
    send = websocket._send
    for _ in range(8):  # middleware may wrap ``send`` in closures; look through them
        owner = getattr(send, "__self__", None)
        if owner is not None and hasattr(owner, "transport"):
            return owner.transport
        cells = [c.cell_contents for c in (getattr(send, "__closure__", None) or ()) if callable(c.cell_contents)]
        if not cells:
            break
        send = cells[0]
    raise RuntimeError("cannot find the transport of a uvicorn WebSocket")


def add_bench_routes(app: FastAPI) -> None:
    """Register ``POST /_bench/floor`` and ``POST /_bench/patch`` on the replica."""

    @app.post("/_bench/floor")
    async def floor(request: Request) -> dict:
        """A pre-built frame written straight to every socket's transport."""
        marker, size = request.query_params["marker"], int(request.query_params.get("size", "1024"))
        payload = orjson.dumps({"type": "bench", "channel": "queue", "pad": padding(marker, size - 44)})
        frame = text_frame(payload)
        transports = [transport_of(ws) for ws in app.state.manager.active_connections]
        started = time.monotonic()
        for transport in transports:
            transport.write(frame)
        finished = time.monotonic()
        return {"t0": started, "t1": finished, "n": len(transports), "payload_bytes": len(payload)}

    @app.post("/_bench/patch")
    async def broadcast(request: Request) -> dict:
        """A ~1 KB message through the seed's ``ConnectionManager.broadcast``."""
        marker, size = request.query_params["marker"], int(request.query_params.get("size", "1024"))
        manager = app.state.manager
        started = time.monotonic()
        await manager.broadcast({"type": "queue_update", "data": {"bench": padding(marker, size - 40)}})
        finished = time.monotonic()
        return {"t0": started, "t1": finished, "n": len(manager.active_connections), "backlogged": 0}
