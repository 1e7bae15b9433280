"""A stand-in for tac-webbuilder's backend, run as a process of its own: real HTTP and WebSockets on loopback.

``python -m tests.compat_backend --port 0`` prints ``listening <port>`` once it accepts
connections and serves until SIGTERM/SIGINT (with ``--watch-stdin``, also until its stdin
closes: a test's stand-in never outlives the test process). Every request it gets is
logged (``GET /__log`` lists them; ``DELETE /__log`` forgets them), so a test can see what
the console passed on and what it did not; so is every close code a peer of
``/api/v1/ws/adw-state/{id}`` sent (``GET /__closes?id=<id>`` waits for one).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import sys
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

STREAM_CHUNK = 64 * 1024
QC_METRICS = {"type": "qc_metrics_update", "data": {"coverage": 87.5, "tests": 412, "failing": 0}}
CLOSE_ON_BYE = 4000
REQUESTS = web.AppKey("requests", list)
CLOSES = web.AppKey("closes", dict)  # adw-state id -> the close codes its peers sent
CLOSED = web.AppKey("closed", asyncio.Condition)


def stream_chunk(index: int, size: int = STREAM_CHUNK) -> bytes:
    """Chunk ``index`` of ``/stream``: every byte known in advance, no two chunks alike."""
    seed = hashlib.sha256(index.to_bytes(8, "big")).digest()
    return (seed * (size // len(seed) + 1))[:size]


def stream_digest(chunks: int, size: int = STREAM_CHUNK) -> str:
    """The sha256 of the whole body ``/stream?chunks=<chunks>&size=<size>`` sends."""
    digest = hashlib.sha256()
    for index in range(chunks):
        digest.update(stream_chunk(index, size))
    return digest.hexdigest()


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Note every request (its method, path, query and headers) before it is answered."""
    if not request.path.startswith("/__"):
        request.app[REQUESTS].append({"method": request.method, "path": request.path,
                                      "query_string": request.query_string,
                                      "headers": [[name, value] for name, value in request.headers.items()]})
    return await handler(request)


async def request_log(request: web.Request) -> web.Response:
    """``GET /__log``: every request so far; ``DELETE /__log`` forgets them."""
    if request.method == "DELETE":
        request.app[REQUESTS].clear()
        return web.Response(status=204)
    return web.json_response(request.app[REQUESTS])


async def echo(request: web.Request) -> web.Response:
    """Any method on ``/api/v1/echo...``: what arrived, the body read as a stream and hashed.

    ``?status=<code>`` picks the status; ``?cookie=<value>`` sets ``echo_cookie``.
    """
    digest, length = hashlib.sha256(), 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        length += len(chunk)
    described: dict[str, Any] = {
        "method": request.method, "path": request.path, "raw_path": request.raw_path,
        "query": [[name, value] for name, value in request.query.items()], "query_string": request.query_string,
        "headers": [[name, value] for name, value in request.headers.items()],
        "body_length": length, "body_sha256": digest.hexdigest(),
    }
    response = web.json_response(described, status=int(request.query.get("status", "200")))
    if "cookie" in request.query:
        response.set_cookie("echo_cookie", request.query["cookie"], path="/")
    return response


async def stream(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/stream?chunks=N&size=M``: N chunks of M bytes, chunked, no Content-Length."""
    chunks, size = int(request.query.get("chunks", "80")), int(request.query.get("size", str(STREAM_CHUNK)))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                           "X-Body-Sha256": stream_digest(chunks, size)})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for index in range(chunks):
        await response.write(stream_chunk(index, size))
    await response.write_eof()
    return response


async def with_cors(request: web.Request) -> web.Response:
    """``/api/v1/cors``: 201 with the backend's own CORS answer and a cookie of its own."""
    response = web.json_response({"created": True}, status=201, headers={
        "Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "X-Backend",
        "X-Backend": "compat-standin", "Vary": "Accept-Encoding"})
    response.set_cookie("backend_session", "b-123", path="/", httponly=True)
    response.set_cookie("backend_pref", "dark", path="/")
    return response


async def slow(request: web.Request) -> web.Response:
    """``/api/v1/slow``: answers after ``?seconds=`` (an hour by default), or never if the caller leaves first."""
    await asyncio.sleep(float(request.query.get("seconds", "3600")))
    return web.json_response({"slept": True})


async def adw_state(request: web.Request) -> web.WebSocketResponse:
    """``/api/v1/ws/adw-state/{id}``: echoes each message back prefixed with ``<id>:``; "bye" closes with 4000.

    A close from the peer is noted (``/__closes``) before it is answered.
    """
    adw_id = request.match_info["id"]
    ws = web.WebSocketResponse(autoclose=False)
    await ws.prepare(request)
    while True:
        message = await ws.receive()
        if message.type is WSMsgType.TEXT and message.data == "bye":
            await ws.close(code=CLOSE_ON_BYE, message=b"bye")
            break
        if message.type is WSMsgType.TEXT:
            await ws.send_str(f"{adw_id}:{message.data}")
        elif message.type is WSMsgType.BINARY:
            await ws.send_bytes(adw_id.encode() + b":" + message.data)
        elif message.type is WSMsgType.CLOSE:
            async with request.app[CLOSED]:
                request.app[CLOSES].setdefault(adw_id, []).append(message.data)
                request.app[CLOSED].notify_all()
            await ws.close()
            break
        else:  # CLOSING, CLOSED, ERROR: the peer is gone
            break
    return ws


async def closes(request: web.Request) -> web.Response:
    """``GET /__closes?id=<id>``: the close codes the peers of that adw-state socket sent, once there is one."""
    adw_id = request.query["id"]
    async with request.app[CLOSED]:
        await request.app[CLOSED].wait_for(lambda: adw_id in request.app[CLOSES])
        return web.json_response(request.app[CLOSES][adw_id])


async def qc_metrics(request: web.Request) -> web.WebSocketResponse:
    """``/api/v1/ws/qc-metrics``: one JSON message on connect, then stays open until the peer closes."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json(QC_METRICS)
    async for _ in ws:
        pass
    return ws


async def refused_socket(request: web.Request) -> web.Response:
    """``/api/v1/ws/refused``: no WebSocket for anyone."""
    return web.Response(status=403, text="no socket for you")


def make_app() -> web.Application:
    app = web.Application(middlewares=[log_requests], client_max_size=64 * 1024 * 1024)
    app[REQUESTS] = []
    app[CLOSES] = {}
    app[CLOSED] = asyncio.Condition()
    app.router.add_route("*", "/__log", request_log)
    app.router.add_get("/__closes", closes)
    app.router.add_route("*", "/api/v1/echo{tail:.*}", echo)
    app.router.add_get("/api/v1/stream", stream)
    app.router.add_route("*", "/api/v1/cors", with_cors)
    app.router.add_get("/api/v1/slow", slow)
    app.router.add_get("/api/v1/ws/adw-state/{id}", adw_state)
    app.router.add_get("/api/v1/ws/qc-metrics", qc_metrics)
    app.router.add_get("/api/v1/ws/refused", refused_socket)
    return app


async def serve(port: int, watch_stdin: bool) -> None:
    # Handlers are cancelled when their caller hangs up: a /slow the console gave up on ends there.
    runner = web.AppRunner(make_app(), handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"listening {bound}", flush=True)
    loop, stop = asyncio.get_running_loop(), asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if watch_stdin:
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(4096) else None)
    try:
        await stop.wait()
    finally:
        if watch_stdin:
            loop.remove_reader(sys.stdin.fileno())
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="loopback port to listen on (0: any free one)")
    parser.add_argument("--watch-stdin", action="store_true", help="also stop when stdin reaches its end")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.watch_stdin))


if __name__ == "__main__":
    main()
