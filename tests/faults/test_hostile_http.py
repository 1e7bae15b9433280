"""Hostile HTTP: random paths, headers and raw request bytes get a 4xx at worst, never a 5xx or a crash."""

import asyncio
import logging
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from monitor.channels.registry import CHANNEL_NAMES
from monitor.keys import HUB
from tests.faults.witnesses import assert_nothing_unhandled

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = st.characters(blacklist_categories=("Cs",))
PREFIXES = ("/", "/api/v1/", "/api/v1/ws/", "/static/", "/api/", "/login/")
SPECIAL_PATHS = ("/..", "/%2e%2e/%2e%2e/etc/passwd", "/static/../setup.cfg", "/static/%2e%2e/%2e%2e/setup.cfg", "//",
                 "/%00", "/queue%00", "/api/v1/ws/queue%ff", "/" + "a" * 9000, "/api/v1/" + "%25" * 500)
PATHS = st.one_of(
    st.tuples(st.sampled_from(PREFIXES), st.lists(st.text(TEXT, max_size=20), max_size=3)).map(
        lambda parts: parts[0] + "/".join(quote(segment, safe="") for segment in parts[1])),
    st.sampled_from(SPECIAL_PATHS),
    st.sampled_from(CHANNEL_NAMES).flatmap(lambda c: st.sampled_from([f"/{c}", f"/api/v1/{c}", f"/api/v1/ws/{c}"])),
)
HEADER_NAMES = st.sampled_from(["Origin", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                                "Authorization", "Cookie", "X-Request-ID", "X-Forwarded-User", "X-Forwarded-For",
                                "Accept", "Accept-Encoding", "Range", "If-None-Match", "Host", "Content-Type"])
HEADER_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
    st.sampled_from(["websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", "http://evil.example", "Bearer x",
                     "gzip, br", "bytes=0-", "bytes=5-1", "*", ""]),
    st.integers(0, 9000).map(lambda n: "h" * n),
)


async def raw_exchange(host: str, port: int, request: bytes, end_stream: bool = False) -> bytes:
    """Send ``request`` (then end the stream, if asked); everything the server answered until it hung up."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        if end_stream:  # the request may be unfinished: without this the server would wait for the rest
            writer.write_eof()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer; None when the server just hung up."""
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


async def fetch(client, method: str, path: str, headers: dict[str, str]) -> int | None:
    """The status the console answers ``method path`` with, the request sent byte for byte."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {client.host}:{client.port}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]
    answer = await raw_exchange(client.host, client.port, ("\r\n".join(lines) + "\r\n\r\n").encode())
    await client.app[HUB].wait_until(lambda hub: hub.count() == 0)
    return status_of(answer)


def unknown_channel(path: str) -> bool:
    """True for /api/v1/<x> and /api/v1/ws/<x> where x is no channel (and no other route)."""
    for prefix in ("/api/v1/ws/", "/api/v1/"):
        rest = path[len(prefix):]
        if path.startswith(prefix) and rest and "/" not in rest and "?" not in rest:
            return rest not in CHANNEL_NAMES and not (prefix == "/api/v1/" and rest == "ws")
    return False


@FUZZ
@given(path=PATHS, method=st.sampled_from(["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]))
async def test_random_paths_get_no_server_error(client, console_log, loop_errors, caplog, path, method):
    status = await fetch(client, method, path, {})
    event(f"HTTP {status}")
    assert status is not None and status < 500, f"{method} {path[:80]} -> {status}"
    if method == "GET" and unknown_channel(path):
        assert status == 404
    assert_nothing_unhandled(console_log, loop_errors, caplog)


@FUZZ
@given(headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5),
       path=st.sampled_from(["/", "/queue", "/api/v1/queue", "/api/v1/ws/queue", "/healthz", "/metrics", "/login"]))
async def test_random_headers_get_no_server_error(client, console_log, loop_errors, caplog, headers, path):
    status = await fetch(client, "GET", path, headers)
    event(f"HTTP {status}")
    assert status is None or status < 500, f"GET {path} {headers} -> {status}"
    assert_nothing_unhandled(console_log, loop_errors, caplog)


REQUEST_LINES = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda method, target, version: f"{method} {target} {version}".encode(errors="surrogatepass"),
              st.sampled_from(["GET", "POST", "BREW", "G\x00T", ""]), st.text(TEXT, max_size=40),
              st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", "http/1.1", ""])),
)
HEADER_BLOCKS = st.lists(st.one_of(st.binary(max_size=60), st.sampled_from([
    b"Content-Length: 5", b"Content-Length: -1", b"Transfer-Encoding: chunked", b"Content-Length: 99999999999999999999",
    b"Host:", b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13"])), max_size=4)


@FUZZ
@given(line=REQUEST_LINES, headers=HEADER_BLOCKS, body=st.binary(max_size=40))
async def test_raw_request_bytes_get_a_client_error_or_nothing(client, console_log, loop_errors, caplog,
                                                               line, headers, body):
    request = b"\r\n".join([line, *headers]) + b"\r\n\r\n" + body
    answer = await raw_exchange(client.host, client.port, request, end_stream=True)
    status = status_of(answer)
    event(f"HTTP {status}")
    assert status is None or status < 500, answer[:200]
    await client.app[HUB].wait_until(lambda hub: hub.count() == 0)
    assert_nothing_unhandled(console_log, loop_errors, caplog)


async def test_a_malformed_request_is_not_logged_as_an_error(client, caplog):
    answer = await raw_exchange(client.host, client.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 400
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


TOKEN_MODE = {"auth": {"mode": "token", "token": "a-token-that-is-long-enough"}}
LOCKED_AT_ONCE = {"auth": {**TOKEN_MODE["auth"], "lockout_failures": 1}}  # every later guess: 429, unchecked
FORM = b"Content-Type: application/x-www-form-urlencoded"
MALFORMED_CREDENTIALS = {
    "a cookie of 4,301 digits": ("GET", "/api/v1/queue", b"Cookie: monitor_session=" + b"9" * 4301 + b".x", b""),
    "a non-ASCII cookie": ("GET", "/api/v1/queue", "Cookie: monitor_session=1.é".encode(), b""),
    "a cookie of a non-ASCII digit": ("GET", "/queue", "Cookie: monitor_session=².x".encode(), b""),
    "a Bearer token with a non-UTF-8 byte": ("GET", "/api/v1/queue", b"Authorization: Bearer a\xffb", b""),
    "Basic credentials with a non-UTF-8 byte": ("GET", "/metrics", b"Authorization: Basic \xff\xfe", b""),
    "a sign-in form that is not UTF-8": ("POST", "/login", FORM, b"token=\xff\xfe&next=/"),
    "a sign-in form in a bogus charset": ("POST", "/login", FORM + b"; charset=bogus", b"token=x"),
    "a broken multipart sign-in": ("POST", "/login", b"Content-Type: multipart/form-data; boundary=zz",
                                   b"--zz\r\nnonsense"),
    "a multipart sign-in without a boundary": ("POST", "/login", b"Content-Type: multipart/form-data", b"x"),
}


async def exchange_bytes(client, method: str, path: str, header: bytes, body: bytes) -> int | None:
    """The status of ``method path`` carrying one raw ``header`` line and ``body``."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nConnection: close\r\n"
    request = head.encode() + header + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    return status_of(await raw_exchange(client.host, client.port, request))


async def test_malformed_credentials_are_a_plain_401_logged_once_at_debug(make_client, console_log, loop_errors,
                                                                         caplog):
    client = await make_client(TOKEN_MODE)
    for name, (method, path, header, body) in MALFORMED_CREDENTIALS.items():
        before = len(console_log.events())
        assert await exchange_bytes(client, method, path, header, body) == 401, name
        logged = console_log.events()[before:]
        assert [(e["event"], e["level"]) for e in logged] == [("credential_malformed", "debug")], name
    assert_nothing_unhandled(console_log, loop_errors, caplog)


@pytest.fixture
async def token_client(make_client):
    """The console in token mode, locking an address out at its first wrong guess (so no guess is slowed down)."""
    return await make_client(LOCKED_AT_ONCE)


LINE_SAFE = st.binary(max_size=60).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))
CREDENTIALS = st.tuples(st.sampled_from([b"Authorization: ", b"Cookie: "]),
                        st.sampled_from([b"", b"Bearer ", b"bearer  ", b"Basic ", b"monitor_session=",
                                         b"x=1; monitor_session="]),
                        st.one_of(LINE_SAFE, st.text(max_size=40).map(lambda text: text.encode(errors="surrogatepass")),
                                  st.sampled_from([b"9" * 5000, b"1.2.3", b"\xc2\xb2.x", b"Og==", b"b3BzOg=="])))


@FUZZ
@given(credential=CREDENTIALS, path=st.sampled_from(["/", "/api/v1/queue", "/metrics", "/healthz", "/api/v1/ws/queue"]))
async def test_random_credentials_get_no_server_error(token_client, console_log, loop_errors, caplog, credential, path):
    header = b"".join(credential).replace(b"\r", b"").replace(b"\n", b"")
    status = await exchange_bytes(token_client, "GET", path, header, b"")
    event(f"HTTP {status}")
    assert status is None or status < 500, f"{path} {header[:80]!r} -> {status}"
    assert_nothing_unhandled(console_log, loop_errors, caplog)


FORM_TYPES = st.sampled_from([b"", b"Content-Type: application/x-www-form-urlencoded",
                              b"Content-Type: application/x-www-form-urlencoded; charset=latin-1",
                              b"Content-Type: application/x-www-form-urlencoded; charset=", b"Content-Type: text/plain",
                              b"Content-Type: multipart/form-data; boundary=b", b"Content-Type: multipart/form-data"])
FORM_BODIES = st.one_of(st.binary(max_size=80),
                        st.sampled_from([b"token=%ff", b"token=%", b"next=%0a&token=x", b"&" * 50,
                                         b"--b\r\nContent-Disposition: form-data\r\n\r\nx"]))


@FUZZ
@given(content_type=FORM_TYPES, body=FORM_BODIES)
async def test_random_sign_in_forms_get_no_server_error(token_client, console_log, loop_errors, caplog,
                                                        content_type, body):
    status = await exchange_bytes(token_client, "POST", "/login", content_type or b"X-Nothing: 1", body)
    event(f"HTTP {status}")
    assert status in (401, 429), f"{content_type!r} {body[:80]!r} -> {status}"
    assert_nothing_unhandled(console_log, loop_errors, caplog)
