"""The compat prefix's pass-through to tac-webbuilder's backend: HTTP both ways, WebSockets relayed, CORS.

The backend is ``tests.compat_backend`` in a process of its own on a loopback port; the
console is started with ``[compat.tac_webbuilder]`` pointing at it. What the backend got
is read from its own request log (``/__log``), straight from it, never through the console.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType

from tests.compat_backend import CLOSE_ON_BYE, QC_METRICS, stream_digest

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://client.example:5173"  # the client's own origin (Vite's dev server)
FOREIGN = "http://evil.example"
TOKEN = "a-token-that-is-long-enough"
BIG = 5 * 1024 * 1024


@dataclass
class StandIn:
    """The stand-in backend: its base URL, and a session that reads what it got, straight from it."""

    url: str
    session: aiohttp.ClientSession

    async def requests(self, mark: str) -> list[dict]:
        """The requests it got whose path holds ``mark`` (each test's own), in the order they came."""
        async with self.session.get(self.url + "/__log") as response:
            return [seen for seen in await response.json() if mark in seen["path"]]

    async def closes(self, adw_id: str) -> list[int]:
        """The close codes the peers of ``/api/v1/ws/adw-state/<adw_id>`` sent; waits for the first."""
        async with self.session.get(self.url + "/__closes", params={"id": adw_id},
                                    timeout=aiohttp.ClientTimeout(total=10)) as response:
            return await response.json()


@pytest.fixture(scope="module")
def backend_url():
    """``tests.compat_backend`` in a process of its own on a free loopback port, for the whole module."""
    process = subprocess.Popen([sys.executable, "-m", "tests.compat_backend", "--port", "0", "--watch-stdin"],
                               cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = process.stdout.readline()
        assert line.startswith(b"listening "), f"the stand-in backend did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.stdin.close()  # the stand-in stops at the end of its stdin
        process.stdout.close()
        assert process.wait(timeout=30) == 0


@pytest.fixture
async def backend(backend_url):
    async with aiohttp.ClientSession() as session:
        yield StandIn(backend_url, session)


@pytest.fixture
def mark() -> str:
    """A token for this test's paths: the backend's log is shared by the module."""
    return uuid.uuid4().hex


@pytest.fixture
def make_console(make_client):
    """Start the console with ``[compat.tac_webbuilder]`` for ``backend_url`` (and more overrides)."""

    async def make(backend_url: str, compat: dict | None = None, overrides: dict | None = None):
        section = {"backend_url": backend_url, "allowed_origins": [ORIGIN], **(compat or {})}
        return await make_client({"compat": {"tac_webbuilder": section}, **(overrides or {})})

    return make


@pytest.fixture
async def console(make_console, backend):
    """The console fronting the stand-in backend under /tac."""
    return await make_console(backend.url)


async def raw_get(console, target: str) -> tuple[int, bytes]:
    """GET ``target`` written into the request line exactly as given; the status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", console.port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{console.port}\r\nConnection: close\r\n\r\n"
                     .encode())
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def header_names(described: dict) -> set[str]:
    return {name.lower() for name, _ in described["headers"]}


def header(described: dict, name: str) -> list[str]:
    return [value for key, value in described["headers"] if key.lower() == name.lower()]


# --- HTTP, both ways ------------------------------------------------------------------------------

async def test_large_request_body_arrives_whole(console):
    body = bytes(range(256)) * (BIG // 256)
    async with console.post("/tac/api/v1/echo/upload", data=io.BytesIO(body)) as response:
        assert response.status == 200
        described = await response.json()
    assert described["method"] == "POST" and described["path"] == "/api/v1/echo/upload"
    assert described["body_length"] == BIG and described["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_chunked_request_body_arrives_whole(console):
    digest = hashlib.sha256()

    async def chunks():
        for index in range(80):
            chunk = bytes([index]) * (64 * 1024)
            digest.update(chunk)
            yield chunk

    async with console.put("/tac/api/v1/echo/chunked", data=chunks()) as response:
        described = await response.json()
    assert described["method"] == "PUT" and "transfer-encoding" in header_names(described)
    assert described["body_length"] == 80 * 64 * 1024 and described["body_sha256"] == digest.hexdigest()


async def test_large_response_streams_back_whole(console):
    digest, length = hashlib.sha256(), 0
    async with console.get("/tac/api/v1/stream?chunks=80") as response:
        assert response.status == 200 and response.headers["Content-Type"] == "application/octet-stream"
        async for chunk in response.content.iter_chunked(64 * 1024):
            digest.update(chunk)
            length += len(chunk)
    assert length == 80 * 64 * 1024
    assert digest.hexdigest() == stream_digest(80) == response.headers["X-Body-Sha256"]


async def test_path_and_query_string_pass_as_sent(console):
    async with console.get("/tac/api/v1/echo/items/7?b=2&a=1&a=3&q=hello%20world&empty=") as response:
        described = await response.json()
    assert described["method"] == "GET" and described["body_length"] == 0
    assert described["raw_path"] == "/api/v1/echo/items/7?b=2&a=1&a=3&q=hello%20world&empty="
    assert described["query"] == [["b", "2"], ["a", "1"], ["a", "3"], ["q", "hello world"], ["empty", ""]]


@pytest.mark.parametrize("target", ["/t%61c/api/v1/echo/{mark}?x=%20y", "/%74ac/api/v1/echo/{mark}?x=%20y",
                                    "http://127.0.0.1/tac/api/v1/echo/{mark}?x=%20y"])
async def test_prefix_however_spelled_is_cut_whole(console, backend, mark, target):
    """A percent-encoded prefix or an absolute-form request line still reaches the backend's host, path below."""
    status, body = await raw_get(console, target.format(mark=mark))
    assert status == 200 and json.loads(body)["raw_path"] == f"/api/v1/echo/{mark}?x=%20y"


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "HEAD"])
async def test_method_is_kept(console, backend, mark, method):
    async with console.request(method, f"/tac/api/v1/echo/{mark}") as response:
        assert response.status == 200
    assert [(seen["method"], seen["path"]) for seen in await backend.requests(mark)] == [
        (method, f"/api/v1/echo/{mark}")]


async def test_hop_by_hop_headers_are_dropped(console):
    headers = {"Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1", "Keep-Alive": "timeout=5",
               "TE": "trailers", "Proxy-Authorization": "Basic Zm9vOmJhcg==", "X-Keep-Me": "kept"}
    async with console.get("/tac/api/v1/echo", headers=headers) as response:
        described = await response.json()
    names = header_names(described)
    assert not names & {"x-drop-me", "keep-alive", "te", "proxy-authorization"}
    assert header(described, "X-Keep-Me") == ["kept"]
    assert not [value for value in header(described, "Connection") if "x-drop-me" in value.lower()]


async def test_console_session_cookie_is_stripped_and_others_pass(console):
    cookies = "theme=dark; monitor_session=1234.secret; backend_session=b-123"
    async with console.get("/tac/api/v1/echo", headers={"Cookie": cookies}) as response:
        described = await response.json()
    assert header(described, "Cookie") == ["theme=dark; backend_session=b-123"]


async def test_only_the_console_cookie_means_no_cookie_header(console):
    async with console.get("/tac/api/v1/echo", headers={"Cookie": "monitor_session=1234.secret"}) as response:
        described = await response.json()
    assert "cookie" not in header_names(described)


async def test_forwarded_headers_are_set_by_the_console(console, backend):
    spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    async with console.get("/tac/api/v1/echo", headers=spoofed) as response:
        described = await response.json()
    assert header(described, "X-Forwarded-For") == ["127.0.0.1"]
    assert header(described, "X-Forwarded-Proto") == ["http"]
    assert header(described, "X-Forwarded-Host") == [f"127.0.0.1:{console.port}"]
    assert header(described, "Host") == [backend.url.removeprefix("http://")]


async def test_backend_status_codes_pass(console):
    async with console.post("/tac/api/v1/echo/create?status=201", json={"name": "x"}) as created:
        assert created.status == 201 and (await created.json())["body_length"] == len(b'{"name": "x"}')
    async with console.get("/tac/api/v1/no/such/thing") as missing:
        assert missing.status == 404 and await missing.text() == "404: Not Found"


async def test_set_cookie_kept_and_backend_cors_dropped(console):
    async with console.get("/tac/api/v1/cors") as response:
        assert response.status == 201 and response.headers["X-Backend"] == "compat-standin"
        cookies = response.headers.getall("Set-Cookie")
        # the headers the backend lets a page read stay; what it allows does not
        cors = [name for name in response.headers if name.lower().startswith("access-control-")]
        assert cors == ["Access-Control-Expose-Headers"]
    assert sorted(cookie.split(";")[0] for cookie in cookies) == ["backend_pref=dark", "backend_session=b-123"]


async def test_allowed_origin_gets_its_own_cors_answer(console):
    async with console.get("/tac/api/v1/cors", headers={"Origin": ORIGIN}) as response:
        assert response.status == 201
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN  # the origin, never the backend's "*"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["Access-Control-Expose-Headers"] == "X-Backend"  # the client may read it


async def test_backend_vary_is_kept_beside_the_consoles(console):
    async with console.get("/tac/api/v1/cors", headers={"Origin": ORIGIN}) as response:
        vary = {token.strip().lower() for value in response.headers.getall("Vary") for token in value.split(",")}
    assert vary == {"accept-encoding", "origin"}


async def test_backend_down_is_502_naming_it(make_console, closed_port):
    console = await make_console(f"http://127.0.0.1:{closed_port}")
    async with console.get("/tac/api/v1/echo") as response:
        assert response.status == 502
        text = await response.text()
    assert f"http://127.0.0.1:{closed_port}" in text and "unreachable" in text
    async with console.get("/tac/api/v1/echo", headers={"Origin": ORIGIN}) as response:
        assert response.status == 502 and response.headers["Access-Control-Allow-Origin"] == ORIGIN
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await console.ws_connect("/tac/api/v1/ws/adw-state/a1b2")
    assert refused.value.status == 502


async def test_backend_too_slow_is_504(make_console, backend):
    console = await make_console(backend.url, {"backend_timeout": 0.2})
    async with console.get("/tac/api/v1/slow") as response:
        assert response.status == 504
        assert "did not answer within 0.2 s" in await response.text()


# --- WebSockets relayed ---------------------------------------------------------------------------

async def test_websocket_relays_text_and_binary_and_the_close_code(console):
    ws = await console.ws_connect("/tac/api/v1/ws/adw-state/a1b2")
    await ws.send_str("hello")
    assert await ws.receive_str(timeout=10) == "a1b2:hello"
    await ws.send_bytes(b"\x00\xffbinary")
    assert await ws.receive_bytes(timeout=10) == b"a1b2:\x00\xffbinary"
    await ws.send_str("bye")
    closing = await ws.receive(timeout=10)
    assert closing.type is WSMsgType.CLOSE and closing.data == CLOSE_ON_BYE
    await ws.close()
    assert ws.close_code == CLOSE_ON_BYE


async def test_websocket_close_code_of_the_client_reaches_the_backend(console, backend, mark):
    ws = await console.ws_connect(f"/tac/api/v1/ws/adw-state/{mark}")
    await ws.send_str("hi")
    assert await ws.receive_str(timeout=10) == f"{mark}:hi"
    await ws.close(code=4321)
    assert await backend.closes(mark) == [4321]


async def test_websocket_first_message_from_backend_arrives(console):
    ws = await console.ws_connect("/tac/api/v1/ws/qc-metrics")
    assert json.loads(await ws.receive_str(timeout=10)) == QC_METRICS
    await ws.close()


async def test_refused_websocket_is_its_http_status(console):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await console.ws_connect("/tac/api/v1/ws/refused")
    assert refused.value.status == 403


# --- CORS and origins -----------------------------------------------------------------------------

async def test_preflight_from_allowed_origin_never_reaches_the_backend(console, backend, mark):
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type, x-requested-with"}
    async with console.options(f"/tac/api/v1/echo/{mark}", headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert response.headers["Access-Control-Allow-Headers"] == "content-type, x-requested-with"
        assert int(response.headers["Access-Control-Max-Age"]) > 0
    async with console.options(f"/tac/api/v1/echo/{mark}") as response:  # no preflight: the backend's to answer
        assert response.status == 200
    assert [seen["method"] for seen in await backend.requests(mark)] == ["OPTIONS"]


async def test_preflight_and_unsafe_request_from_foreign_origin_are_403(console, backend, mark):
    preflight = {"Origin": FOREIGN, "Access-Control-Request-Method": "POST"}
    async with console.options(f"/tac/api/v1/echo/{mark}", headers=preflight) as response:
        assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
    for method in ("POST", "PUT", "DELETE"):
        async with console.request(method, f"/tac/api/v1/echo/{mark}", headers={"Origin": FOREIGN}) as response:
            assert response.status == 403
    async with console.get(f"/tac/api/v1/echo/{mark}", headers={"Origin": FOREIGN}) as response:
        assert response.status == 200 and "Access-Control-Allow-Origin" not in response.headers  # unreadable to it
    assert [seen["method"] for seen in await backend.requests(mark)] == ["GET"]


async def test_unsafe_request_from_allowed_origin_passes(console, backend, mark):
    async with console.post(f"/tac/api/v1/echo/{mark}", headers={"Origin": ORIGIN}, data=b"x") as response:
        assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert [seen["method"] for seen in await backend.requests(mark)] == ["POST"]


@pytest.mark.parametrize("path", ["/tac/api/v1/ws/adw-state/a1b2", "/tac/api/v1/ws/queue"])
async def test_websocket_from_foreign_origin_is_403(console, path):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await console.ws_connect(path, origin=FOREIGN)
    assert refused.value.status == 403


async def test_websocket_from_allowed_origin_is_accepted(console):
    relayed = await console.ws_connect("/tac/api/v1/ws/adw-state/a1b2", origin=ORIGIN)
    await relayed.send_str("hi")
    assert await relayed.receive_str(timeout=10) == "a1b2:hi"
    await relayed.close()
    own = await console.ws_connect("/tac/api/v1/ws/queue", origin=ORIGIN)
    assert json.loads(await own.receive_str(timeout=10))["type"] == "queue_update"
    await own.close()


# --- without the section, and with console authentication ------------------------------------------

async def test_no_compat_section_no_prefix(client):
    async with client.get("/tac/api/v1/queue") as response:
        assert response.status == 404
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/tac/api/v1/ws/queue")
    assert refused.value.status == 404


async def test_token_mode_needs_credentials_the_backend_never_sees(make_console, backend, mark):
    console = await make_console(backend.url, overrides={"auth": {"mode": "token", "token": TOKEN}})
    async with console.get(f"/tac/api/v1/echo/{mark}", allow_redirects=False) as response:
        assert response.status == 401 and "Location" not in response.headers
    async with console.post(f"/tac/api/v1/echo/{mark}", headers={"Origin": ORIGIN}, allow_redirects=False) as response:
        assert response.status == 401 and response.headers["Access-Control-Allow-Origin"] == ORIGIN  # readable
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    async with console.options(f"/tac/api/v1/echo/{mark}", headers=preflight) as response:
        assert response.status == 204  # a browser sends no credentials with a preflight
    refused = await console.ws_connect(f"/tac/api/v1/ws/adw-state/{mark}")
    closing = await refused.receive(timeout=10)
    assert closing.type is WSMsgType.CLOSE and closing.data == 1008
    await refused.close()
    assert await backend.requests(mark) == []
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with console.get(f"/tac/api/v1/echo/{mark}", headers=bearer) as response:
        assert response.status == 200
        assert "authorization" not in header_names(await response.json())
    ws = await console.ws_connect(f"/tac/api/v1/ws/adw-state/{mark}", headers=bearer)
    await ws.send_str("hi")
    assert await ws.receive_str(timeout=10) == f"{mark}:hi"
    await ws.close()
    handshake = (await backend.requests(mark))[-1]
    assert handshake["path"] == f"/api/v1/ws/adw-state/{mark}"
    assert "authorization" not in {name.lower() for name, _ in handshake["headers"]}


async def test_shutdown_closes_a_relayed_socket_with_1001_on_both_sides(console, backend, mark):
    ws = await console.ws_connect(f"/tac/api/v1/ws/adw-state/{mark}")
    await ws.send_str("hi")
    assert await ws.receive_str(timeout=10) == f"{mark}:hi"
    await console.app.shutdown()
    msg = await ws.receive(timeout=10)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001
    assert await backend.closes(mark) == [1001]


async def test_a_passed_response_is_served_as_the_consoles_own(console):
    """The console's CSP and headers, not the backend's software; a cookie of the console's name is not set."""
    async with console.get("/tac/api/v1/echo", params={"cookie": "x"}) as response:
        assert response.status == 200
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff" and response.headers["Server"] == "monitor"
        assert response.headers.getall("Set-Cookie")[0].startswith("echo_cookie=x")


async def test_a_backend_cannot_set_the_consoles_cookie():
    from multidict import CIMultiDict, CIMultiDictProxy

    from monitor.compat.proxy import response_headers

    upstream = CIMultiDictProxy(CIMultiDict([("Set-Cookie", "monitor_session=forged; Path=/"),
                                             ("Set-Cookie", "backend_pref=dark; Path=/"), ("Server", "uvicorn")]))
    headers = response_headers(upstream, "/tac/api/v1/x")
    assert headers.getall("Set-Cookie") == ["backend_pref=dark; Path=/"] and "Server" not in headers


async def test_a_slow_upload_is_504_without_marking_the_backend_down(make_console, backend):
    console = await make_console(backend.url, {"backend_timeout": 0.2})
    reader, writer = await asyncio.open_connection("127.0.0.1", console.port)
    writer.write(f"POST /tac/api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1:{console.port}\r\nContent-Length: 1000000\r\n"
                 f"Connection: close\r\n\r\n".encode() + b"x" * 10)  # and then nothing more
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"504"
    assert (await (await console.get("/healthz")).json())["compat"]["backend"] == "up"


async def test_a_state_changing_request_from_another_port_of_the_same_host_is_refused(console):
    host = f"http://127.0.0.1:{console.port}"
    async with console.post("/tac/api/v1/echo", data=b"{}", headers={"Origin": host}) as same:
        assert same.status == 200  # the console's own origin
    async with console.post("/tac/api/v1/echo", data=b"{}", headers={"Origin": "http://127.0.0.1:3000"}) as sibling:
        assert sibling.status == 403  # same site, another application
