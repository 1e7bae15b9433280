"""What every HTTP exchange is checked for and carries: the Host allow-list, WebSocket
origins, a strict CSP with no inline script or style, and no server software version.

A page on an attacker's site can re-point its own name at 127.0.0.1 (DNS rebinding) and
then read this console as "same-origin"; its requests still carry the attacker's name in
``Host``. So only the names of ``server.allowed_hosts`` are answered (421 otherwise), and a
WebSocket's ``Origin`` must name one of them too (or be listed in ``server.allowed_origins``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import MutableMapping
from urllib.parse import urlsplit

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from monitor.compat.surface import surface_for
from monitor.keys import SETTINGS
from monitor.settings import ServerSettings

log = structlog.get_logger(__name__)

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def add_security_headers(headers: MutableMapping[str, str], path: str) -> None:
    """Set the security headers; static files are revalidated so an upgrade is seen at once."""
    headers.update(SECURITY_HEADERS)
    if path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-cache")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add the security headers to responses and to HTTP errors alike."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        add_security_headers(exc.headers, request.path)
        raise
    if not response.prepared:  # a WebSocket has sent its headers already
        add_security_headers(response.headers, request.path)
    return response


def normal_host(name: str) -> str:
    """``name`` as compared: lower case, no trailing dot, an IP address in its canonical form."""
    name = name.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


@functools.lru_cache(maxsize=16)  # settings are frozen: one set per configuration, not per request
def allowed_hosts(server: ServerSettings) -> frozenset[str]:
    """The Host names answered: ``allowed_hosts``, or by default the bound address and loopback; and public_host."""
    names = server.allowed_hosts or (server.host, *LOOPBACK_NAMES)
    return frozenset(normal_host(name) for name in (*names, server.public_host) if name)


def host_name(value: str) -> str | None:
    """The name in a Host header (brackets and port removed), or None when the value is malformed."""
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and port[1:].isdigit())):
            return None
    elif value.count(":") > 1:
        name = value  # an IPv6 address without brackets: no port to strip
    else:
        name, colon, port = value.partition(":")
        if colon and not (port.isascii() and port.isdigit()):
            return None
    return normal_host(name)


def origin_allowed(origin: str, host: str | None, server: ServerSettings) -> bool:
    """True for an Origin listed in ``allowed_origins``, naming ``public_host``, or the page's own
    host and port (``host``: the request's Host, already checked against the allow-list).

    The port matters: another web application on the same machine is another origin (and,
    to cookies, the same site), so it must not open the console's sockets.
    """
    if origin.rstrip("/") in {allowed.rstrip("/") for allowed in server.allowed_origins}:
        return True
    try:
        parts = urlsplit(origin)
        name, _ = parts.hostname, parts.port  # .port raises for a port that is no number
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or name is None:
        return False
    if server.public_host and normal_host(name) == normal_host(server.public_host):
        return True  # behind a proxy that rewrites Host, the page's origin is the public name
    return host is not None and parts.netloc.lower() == host.lower()


@web.middleware
async def host_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """421 for a Host not in the allow-list; 403 for a WebSocket opened from a foreign origin."""
    server = request.app[SETTINGS].server
    hosts = allowed_hosts(server)
    host = request.headers.get(hdrs.HOST)  # no Host at all (HTTP/1.0) cannot come from a rebound name
    if host is not None and host_name(host) not in hosts:
        # Debug: anyone can send these in bulk; the 421 text tells an operator what to configure.
        log.debug("host_refused", host=host[:200], peer=request.remote, path=request.path[:200])
        raise web.HTTPMisdirectedRequest(text="this console does not answer to that host name; "
                                              "list it in server.allowed_hosts or server.public_host")
    origin = request.headers.get(hdrs.ORIGIN)
    upgrade = is_websocket(request)
    if (upgrade and origin is not None and not origin_allowed(origin, host, server)
            and not _compat_origin(request, origin)):
        log.info("ws_refused", reason="origin", origin=origin[:200], peer=request.remote, path=request.path[:200])
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    return await handler(request)


def _compat_origin(request: web.Request, origin: str) -> bool:
    """True for a socket under the compat prefix opened from one of the client's own origins."""
    surface = surface_for(request)
    return surface is not None and surface.origin_listed(origin)


def is_websocket(request: web.Request) -> bool:
    """True for a request asking to upgrade to a WebSocket."""
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
