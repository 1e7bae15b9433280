"""Everything under the prefix that the console does not serve itself goes to tac-webbuilder's backend.

Requests and responses are streamed both ways, with their method, status, headers and
bodies as they are, less the hop-by-hop headers (RFC 9110 §7.6.1) and the console's
own credentials. A backend that is down is a clear 502, one that does not answer in
``backend_timeout`` a 504; either is logged once, when it starts, and again when the
backend is back.
"""

from __future__ import annotations

import asyncio

import aiohttp
import structlog
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from monitor.auth import came_over_tls, client_address
from monitor.compat.cors import add_cors_headers
from monitor.headers import add_security_headers
from monitor.keys import SETTINGS
from monitor.redact import redact_url
from monitor.sessions import COOKIE
from monitor.settings import TacWebbuilderSettings

log = structlog.get_logger(__name__)

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "proxy-connection", "host"})
CHUNK = 64 * 1024
# Forwarding headers a client may have made up: the console sets its own.
SET_HERE = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip"})
REQUEST_CONNECTIONS = 256  # connections to the backend at once for HTTP requests; more wait for one
IDLE_BODY_TIMEOUT = 300.0  # seconds a body may stop moving, either way, before the exchange is given up


class Backend:
    """The client's backend: one HTTP session to it, and whether it was last seen up."""

    def __init__(self, settings: TacWebbuilderSettings) -> None:
        self.url = settings.backend_url
        self.timeout = settings.backend_timeout
        self.session: aiohttp.ClientSession | None = None
        self.relay_session: aiohttp.ClientSession | None = None
        self.down = False
        # Relayed sockets, client side to backend side: both are closed on shutdown.
        self.relays: dict[web.WebSocketResponse, aiohttp.ClientWebSocketResponse] = {}

    async def open(self) -> None:
        """Create the session (pooled connections, no cookie jar: cookies belong to the browser)."""
        # Bodies pass through as they came (still compressed); aiohttp adds no headers of its own.
        # Requests and relays pool apart: relayed sockets hold their connection for their life,
        # and must not use up the requests' (each relay is a client connection the console's
        # connection budget admitted). A body that stops moving either way is given up.
        self.session = self._session(REQUEST_CONNECTIONS)
        self.relay_session = self._session(0)

    def _session(self, limit: int) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit), auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=(hdrs.USER_AGENT, hdrs.ACCEPT_ENCODING, hdrs.ACCEPT, hdrs.CONTENT_TYPE),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=IDLE_BODY_TIMEOUT))

    async def close_relays(self, deadline: float) -> None:
        """Close both sides of every relayed socket with 1001 (going away), within ``deadline`` seconds."""
        going_away = aiohttp.WSCloseCode.GOING_AWAY
        closing = [asyncio.ensure_future(ws.close(code=going_away))
                   for pair in self.relays.items() for ws in pair]
        if closing:
            _, late = await asyncio.wait(closing, timeout=deadline)
            for task in late:
                task.cancel()

    async def close(self) -> None:
        """Close the sessions and their pooled connections."""
        for session in (self.session, self.relay_session):
            if session is not None:
                await session.close()

    def target(self, request: web.Request, prefix: str) -> URL:
        """The backend URL for ``request``: its path below the prefix, its query as sent.

        The prefix is cut by segments of the path as sent, not by characters of the request
        line: that may spell the prefix percent-encoded (``/t%61c/...``) or be in absolute
        form (``http://host/tac/...``), and a character count would then leave part of it
        behind, glued to the backend's host and port.
        """
        sent = request.rel_url  # the path and query as sent, without any scheme and host
        segments = sent.raw_path.split("/")[prefix.count("/") + 1:]
        tail = "/" + "/".join(segments) if segments else ""
        query = "?" + sent.raw_query_string if sent.raw_query_string else ""
        return URL(self.url + tail + query, encoded=True)

    def failed(self, url: URL, exc: BaseException, uploading: bool = False) -> web.HTTPException:
        """What the client is told when the backend failed (502, 504 when it timed out); logged once in a row.

        A timeout while the client was still sending a body may be the client's slowness:
        the client gets its 504, the backend is not marked down.
        """
        timed_out = isinstance(exc, TimeoutError)
        message = (f"the tac-webbuilder backend did not answer within {self.timeout:g} s" if timed_out
                   else f"the tac-webbuilder backend at {redact_url(self.url)} is unreachable: "
                        f"{exc or type(exc).__name__}")
        if timed_out and uploading:
            log.info("compat_request_timed_out", path=url.path[:200], seconds=self.timeout)
        elif not self.down:
            self.down = True
            log.warning("compat_backend_down", backend=redact_url(self.url), path=url.path[:200], error=str(exc)[:300],
                        timed_out=timed_out)
        return web.HTTPGatewayTimeout(text=message) if timed_out else web.HTTPBadGateway(text=message)

    def answered(self) -> None:
        """The backend answered: log once that it is back."""
        if self.down:
            self.down = False
            log.info("compat_backend_up", backend=redact_url(self.url))


def hop_by_hop(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """The headers of one hop only: the standard ones and those its ``Connection`` names (lower case)."""
    return HOP_BY_HOP | {token.strip().lower() for token in headers.get(hdrs.CONNECTION, "").split(",")}


def forward_headers(request: web.Request) -> CIMultiDict[str]:
    """The request's headers for the backend: no hop-by-hop ones, no console credentials, X-Forwarded-* set."""
    drop = hop_by_hop(request.headers) | SET_HERE
    if request.app[SETTINGS].auth.mode in ("token", "basic"):
        drop = drop | {"authorization"}  # the console's credential, not the backend's
    headers = CIMultiDict((name, value) for name, value in request.headers.items() if name.lower() not in drop)
    if hdrs.COOKIE in headers:
        cookies = _without_console_cookie(request.headers.getall(hdrs.COOKIE))
        headers.popall(hdrs.COOKIE)
        if cookies:
            headers[hdrs.COOKIE] = cookies
    headers["X-Forwarded-For"] = client_address(request)
    headers["X-Forwarded-Proto"] = "https" if came_over_tls(request) else "http"
    if hdrs.HOST in request.headers:
        headers["X-Forwarded-Host"] = request.headers[hdrs.HOST]
    return headers


def _without_console_cookie(values: list[str]) -> str:
    """The Cookie header without the console's session cookie."""
    kept = []
    for value in values:
        for pair in value.split(";"):
            name = pair.split("=", 1)[0].strip()
            if name and name != COOKIE:
                kept.append(pair.strip())
    return "; ".join(kept)


def response_headers(upstream: CIMultiDictProxy[str], path: str) -> CIMultiDict[str]:
    """The backend's response headers for the client, served as the console's own.

    No hop-by-hop ones, no CORS of the backend's own (the headers it exposes stay), no
    ``Server`` naming its software, no cookie of the console's name; the console's security
    headers on top. The backend's pages are served from the console's origin: its CSP keeps
    their scripts from reaching the console's own API with the operator's session.
    """
    drop = hop_by_hop(upstream) | {"server"}
    headers = CIMultiDict((name, value) for name, value in upstream.items()
                          if name.lower() not in drop and not _sets_console_cookie(name, value)
                          and (not name.lower().startswith("access-control-")
                               or name.lower() == "access-control-expose-headers"))
    add_security_headers(headers, path)
    return headers


def _sets_console_cookie(name: str, value: str) -> bool:
    return name.lower() == "set-cookie" and value.split("=", 1)[0].strip() == COOKIE


async def pass_through(request: web.Request, backend: Backend, prefix: str) -> web.StreamResponse:
    """Send ``request`` to the backend and stream its answer back."""
    url = backend.target(request, prefix)
    session = backend.session
    assert session is not None  # opened by the app's cleanup context before any request
    body = request.content if request.body_exists else None
    try:
        async with asyncio.timeout(backend.timeout):
            upstream = await session.request(request.method, url, headers=forward_headers(request), data=body,
                                             allow_redirects=False)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise backend.failed(url, exc, uploading=body is not None and not body.at_eof()) from None
    backend.answered()
    try:
        return await _stream_back(request, upstream, backend.timeout)
    finally:
        upstream.release()


async def _stream_back(request: web.Request, upstream: aiohttp.ClientResponse,
                       write_timeout: float) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                  headers=response_headers(upstream.headers, request.path))
    add_cors_headers(response.headers, request)
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_chunked(CHUNK):
            try:
                async with asyncio.timeout(write_timeout):  # a client that stops reading lets go of the backend
                    await response.write(chunk)
            except (OSError, TimeoutError) as exc:
                log.info("compat_client_gone", path=request.path[:200], error=str(exc)[:300] or "stopped reading")
                return _cut(request, response)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("compat_backend_cut", path=request.path[:200], error=str(exc)[:300] or type(exc).__name__)
        return _cut(request, response)
    await response.write_eof()
    return response


def _cut(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """End a response whose status went out: cutting the connection tells the client its body is short."""
    if request.transport is not None:
        request.transport.close()
    return response

