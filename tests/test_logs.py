"""The log stream: stdlib records as one JSON line each, and no noise when a peer leaves mid-write."""

import asyncio
import contextlib
import io
import json
import logging
import socket
import struct

import pytest
import structlog
from aiohttp import web

from monitor.app import create_app
from monitor.keys import HUB
from monitor.logs import configure_logging
from tests.support import RawWebSocket, connections


@pytest.fixture
def json_log():
    """The console's log as JSON at debug level in a buffer; the previous configuration restored afterwards."""
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    yield stream
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def events(stream: io.StringIO) -> list[dict]:
    """Every line of the log, each of which must be one JSON object."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_an_aiohttp_error_with_its_traceback_is_one_json_line(aiohttp_client, json_log):
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a handler bug\nover two lines")

    app = web.Application()
    app.router.add_get("/", broken)
    assert (await (await aiohttp_client(app)).get("/")).status == 500
    [event] = events(json_log)
    assert (event["logger"], event["level"]) == ("aiohttp.server", "error")
    assert event["event"].startswith("Error handling request")
    assert "Traceback" in event["exception"] and "RuntimeError: a handler bug" in event["exception"]


async def test_an_asyncio_error_with_its_traceback_is_one_json_line(json_log):
    try:
        raise ValueError("never retrieved")
    except ValueError as exc:
        error = exc
    # What asyncio writes for a failed task nobody awaited: a two-line message and the traceback.
    asyncio.get_running_loop().default_exception_handler(
        {"message": "Task exception was never retrieved", "exception": error, "future": "<Task finished>"})
    [event] = events(json_log)
    assert (event["logger"], event["level"]) == ("asyncio", "error")
    assert event["event"] == "Task exception was never retrieved\nfuture: '<Task finished>'"
    assert "ValueError: never retrieved" in event["exception"]


async def test_a_peer_gone_before_the_upgrade_is_no_error(make_settings, aiohttp_client, json_log, caplog):
    handled = asyncio.Event()

    @web.middleware
    async def peer_leaves_meanwhile(request: web.Request, handler):
        """The request waits (as behind a slow middleware) until its peer has reset the connection."""
        with contextlib.suppress(ConnectionResetError):
            await request.content.read()  # an upgrade request's body ends only with the connection
        try:
            return await handler(request)
        finally:
            handled.set()

    app = create_app(make_settings())
    app.middlewares.append(peer_leaves_meanwhile)
    client = await aiohttp_client(app)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET /api/v1/ws/queue HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    await writer.drain()
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    await asyncio.wait_for(handled.wait(), timeout=10)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    gone = [e for e in events(json_log) if e.get("peer") == "127.0.0.1" or e.get("logger", "").startswith("aiohttp")]
    assert [(e["event"], e["level"]) for e in gone] == [("ws_gone_before_upgrade", "debug")]


async def test_a_frame_for_a_peer_that_is_leaving_is_dropped_without_a_write(client, json_log):
    raw = await RawWebSocket.connect(client.host, client.port, "/api/v1/ws/queue")
    await raw.read_frame()  # the snapshot
    [connection] = client.app[HUB].connections("queue")
    connection.transport.abort()  # what asyncio does on reading the peer's reset: the transport is closing
    connection.offer(b'{"type":"pong"}')
    assert connection.backlog_size == 0
    await connections(client, "queue", 0)
    assert [e["event"] for e in events(json_log) if e["event"] == "ws_write_failed"] == []
    assert [e["reason"] for e in events(json_log) if e["event"] == "ws_closed"] != ["write_failed"]
    await raw.close()
