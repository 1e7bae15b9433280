"""The connection budget on real loopback sockets: caps per address and in total, header timeout, accept errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import socket

import aiohttp
import structlog

from monitor.app import create_app
from monitor.keys import CONNECTIONS
from monitor.limits import Caps, address_key, connection_caps
from monitor.server import serving
from monitor.settings import ServerSettings

BOUND = 30  # seconds any single wait may take before the test fails instead of hanging


@contextlib.asynccontextmanager
async def console(make_settings, **server):
    """The console served as ``monitor serve`` serves it, on a free loopback port: (app, port)."""
    settings = make_settings({"server": server})
    app = create_app(settings)
    async with serving(settings, app) as runner:
        yield app, runner.addresses[0][1]


async def connect(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection to the console from loopback address ``source``."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def request(reader, writer, path: str = "/healthz", close: bool = False) -> int:
    """One GET on an open connection; its status code, the body read."""
    connection = "close" if close else "keep-alive"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n\r\n".encode())
    async with asyncio.timeout(BOUND):
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(int(re.search(rb"(?i)content-length: *(\d+)", head).group(1)))
    return int(head.split(b" ", 2)[1])


async def answer_and_close(reader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(BOUND):
        return await reader.read()


async def healthz_from(port: int, source: str) -> int:
    """``GET /healthz`` on a new connection from ``source``; its status."""
    reader, writer = await connect(port, source)
    try:
        return await request(reader, writer, close=True)
    finally:
        writer.close()


def close_all(connections) -> None:
    """Close the client side of each connection."""
    for _, writer in connections:
        writer.close()


def test_caps_leave_the_reserve_to_the_console():
    assert connection_caps(ServerSettings(), 20_000) == Caps(19_744, 4_936)
    assert connection_caps(ServerSettings(max_connections=100), 20_000) == Caps(100, 25)
    assert connection_caps(ServerSettings(max_connections=50_000), 20_000) == Caps(19_744, 4_936)
    assert connection_caps(ServerSettings(max_connections_per_address=10_000, fd_reserve=64), 256) == Caps(192, 192)
    assert connection_caps(ServerSettings(), 256) == Caps(128, 32)  # a limit below the reserve still admits


def test_an_ipv6_client_is_counted_by_its_slash_64():
    assert address_key(("2001:db8:1:2:aaaa::1", 5000, 0, 0)) == address_key(("2001:db8:1:2:bbbb::9", 5001, 0, 0))
    assert address_key(("::ffff:127.0.0.2", 5000, 0, 0)) == "127.0.0.2"
    assert address_key(("127.0.0.3", 5000)) == "127.0.0.3"


async def test_a_connection_beyond_the_per_address_cap_is_refused_and_others_still_answer(make_settings):
    async with console(make_settings, max_connections=10, max_connections_per_address=3) as (app, port):
        held = [await connect(port, "127.0.0.2") for _ in range(3)]
        reader, writer = await connect(port, "127.0.0.2")
        assert (await answer_and_close(reader)).startswith(b"HTTP/1.1 429 ")
        writer.close()
        assert await healthz_from(port, "127.0.0.1") == 200
        assert await request(*held[0]) == 200  # the held connections are served
        assert app[CONNECTIONS].snapshot()["refused"] == 1
        close_all(held)


async def test_a_closed_connection_gives_its_place_back(make_settings):
    async with console(make_settings, max_connections=10, max_connections_per_address=2) as (app, port):
        held = [await connect(port, "127.0.0.2") for _ in range(2)]
        assert await request(*held[0], close=True) == 200
        assert await answer_and_close(held[0][0]) == b""  # the server closed it: its place is free
        assert await healthz_from(port, "127.0.0.2") == 200
        assert app[CONNECTIONS].snapshot()["refused"] == 0
        close_all(held)


async def test_a_connection_beyond_the_total_cap_is_refused_with_503(make_settings):
    async with console(make_settings, max_connections=3, max_connections_per_address=2) as (app, port):
        held = [await connect(port, source) for source in ("127.0.0.2", "127.0.0.2", "127.0.0.3")]
        reader, writer = await connect(port, "127.0.0.4")
        assert (await answer_and_close(reader)).startswith(b"HTTP/1.1 503 ")
        writer.close()
        assert app[CONNECTIONS].snapshot()["open"] == 3
        close_all(held)


async def test_refusals_are_logged_once_per_interval_with_a_count(make_settings):
    with structlog.testing.capture_logs() as logs:
        async with console(make_settings, max_connections=10, max_connections_per_address=1,
                           connections_per_second_per_address=0) as (_, port):
            held = await connect(port, "127.0.0.2")
            for _ in range(50):
                reader, writer = await connect(port, "127.0.0.2")
                assert (await answer_and_close(reader)).startswith(b"HTTP/1.1 429 ")
                writer.close()
            close_all([held])
    refused = [event for event in logs if event["event"] == "connections_refused"]
    assert refused[0]["count"] == 1 and refused[0]["addresses"] == {"127.0.0.2": 1}  # the first at once
    assert len(refused) <= 3 and sum(event["count"] for event in refused) == 50  # the rest summed up


async def test_a_half_sent_request_line_is_closed_after_the_header_timeout(make_settings):
    async with console(make_settings, header_timeout=0.3, keepalive_timeout=3600.0) as (app, port):
        reader, writer = await connect(port)
        writer.write(b"GET /healthz HT")
        assert await answer_and_close(reader) == b""
        writer.close()
        assert app[CONNECTIONS].snapshot()["header_timeouts"] == 1


async def test_the_header_timeout_applies_to_each_request_on_a_keep_alive_connection(make_settings):
    async with console(make_settings, header_timeout=0.3, keepalive_timeout=3600.0) as (app, port):
        reader, writer = await connect(port)
        assert await request(reader, writer) == 200
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the next request's headers, unfinished
        assert await answer_and_close(reader) == b""
        writer.close()
        assert app[CONNECTIONS].snapshot()["header_timeouts"] == 1


async def test_idle_keep_alive_connections_and_websockets_outlive_the_header_timeout(make_settings):
    async with console(make_settings, header_timeout=0.3, keepalive_timeout=3600.0) as (app, port):
        idle = await connect(port)
        assert await request(*idle) == 200
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{port}/api/v1/ws/queue") as ws:
            await ws.receive_json(timeout=BOUND)  # the snapshot
            stalled_reader, stalled = await connect(port)
            stalled.write(b"G")
            assert await answer_and_close(stalled_reader) == b""  # a header timeout has passed since both began
            await ws.send_json({"type": "ping"})
            assert (await ws.receive_json(timeout=BOUND))["type"] == "pong"
        assert await request(*idle) == 200
        close_all([idle, (stalled_reader, stalled)])
        assert app[CONNECTIONS].snapshot()["header_timeouts"] == 1


def lowest_free_descriptor() -> int:
    """The number the next open() would get: every number below it is in use."""
    probe = os.dup(0)
    os.close(probe)
    return probe


@contextlib.contextmanager
def no_descriptors_left():
    """While inside, this process can open no descriptor (EMFILE), as under a flood."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free_descriptor(), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_accept_errors_are_counted_not_logged_per_attempt_and_accepting_resumes(make_settings, caplog):
    clients = [socket.socket() for _ in range(20)]  # made beforehand: connecting needs no new descriptor
    loop = asyncio.get_running_loop()
    with structlog.testing.capture_logs() as logs:
        async with console(make_settings) as (app, port):
            for client in clients:
                client.setblocking(False)
            with no_descriptors_left():
                await asyncio.gather(*(loop.sock_connect(client, ("127.0.0.1", port)) for client in clients))
                async with asyncio.timeout(BOUND):
                    while app[CONNECTIONS].snapshot()["accept_errors"] == 0:
                        await asyncio.sleep(0)  # yield until the console's accept has run and failed
            streams = [await asyncio.open_connection(sock=client) for client in clients]
            assert [await request(*stream) for stream in streams] == [200] * len(streams)
            close_all(streams)
            failed = app[CONNECTIONS].snapshot()["accept_errors"]
    lines = [event for event in logs if event["event"] == "accept_failed"]
    assert 1 <= len(lines) <= 3 and sum(event["count"] for event in lines) == failed
    assert lines[0]["errors"] == {"EMFILE": 1}
    assert not [record for record in caplog.records if "accept" in record.getMessage()]


async def test_an_address_opening_connections_too_fast_is_refused_before_parsing(make_settings):
    # A rate this low refills no token within the test: the first four (the burst) pass.
    async with console(make_settings, connections_per_second_per_address=2.0, max_connections_per_address=1000) as (
            app, port):
        statuses = [await healthz_from(port, "127.0.0.7") for _ in range(4)]
        reader, writer = await connect(port, "127.0.0.7")
        answer = await answer_and_close(reader)
        writer.close()
        assert statuses == [200] * 4 and answer.startswith(b"HTTP/1.1 429") and b"too fast" in answer
        assert await healthz_from(port, "127.0.0.8") == 200  # another address has its own budget
        assert app[CONNECTIONS].snapshot()["refused"] == 1
