"""CORS for the compat prefix: the client's own origins get answers, preflights included; no one else does.

The client runs on its own origin (Vite's dev server, say) and calls the console
cross-origin. Only the listed origins get ``Access-Control-Allow-*``; a state-changing
request that a browser sent from any other foreign origin is refused outright (403),
since the console may hold a sign-in cookie the backend never asked for. Preflights are
answered before authentication: a browser never sends credentials with one.
"""

from __future__ import annotations

import re

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from monitor.compat.surface import surface_for
from monitor.headers import origin_allowed
from monitor.keys import COMPAT, SETTINGS

log = structlog.get_logger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PREFLIGHT_MAX_AGE = "600"  # seconds a browser may reuse a preflight's answer
MAX_REQUESTED_HEADERS = 1024  # characters of Access-Control-Request-Headers echoed back
HEADER_LIST = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+( *, *[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")


def cors_headers(request: web.Request) -> dict[str, str]:
    """The CORS headers for a response to ``request``: none unless its Origin is one of the client's."""
    surface = request.app.get(COMPAT)
    origin = request.headers.get(hdrs.ORIGIN)
    if surface is None or origin is None or not surface.origin_listed(origin):
        return {}
    return {hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin, hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS: "true",
            hdrs.VARY: hdrs.ORIGIN}


def add_cors_headers(headers: CIMultiDict[str], request: web.Request) -> None:
    """Set ``request``'s CORS headers on ``headers`` (a response's, or an HTTP error's).

    ``Origin`` is added to a ``Vary`` already there (a backend's ``Accept-Encoding``, say),
    never put in its place: a cache would otherwise serve one client's encoding to another.
    """
    cors = cors_headers(request)
    vary = cors.pop(hdrs.VARY, None)
    headers.update(cors)
    if vary is None:
        return
    present = headers.getall(hdrs.VARY, [])
    tokens = {token.strip().lower() for value in present for token in value.split(",")}
    if "*" not in tokens and vary.lower() not in tokens:
        headers[hdrs.VARY] = ", ".join([*present, vary])


@web.middleware
async def compat_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights and add CORS headers under the prefix; refuse foreign unsafe requests."""
    if surface_for(request) is None:
        return await handler(request)
    origin, unsafe = request.headers.get(hdrs.ORIGIN), request.method not in SAFE_METHODS
    # A foreign GET passes (without CORS headers, the browser keeps the answer from the page).
    if (origin is not None and (unsafe or request.method == hdrs.METH_OPTIONS)
            and not _origin_accepted(request, origin, exact=unsafe)):
        log.info("compat_cors_refused", origin=origin[:200], method=request.method, peer=request.remote,
                 path=request.path[:200])
        raise web.HTTPForbidden(text=f"origin {origin[:200]} is not in compat.tac_webbuilder.allowed_origins")
    if request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        return _preflight(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        add_cors_headers(exc.headers, request)  # the client can read why (401, 502) instead of a CORS error
        raise
    if not response.prepared:  # a streamed pass-through set its own before sending them
        add_cors_headers(response.headers, request)
    return response


def _origin_accepted(request: web.Request, origin: str, exact: bool) -> bool:
    """One of the client's origins, or one the console itself accepts (its own pages).

    ``exact`` (a state-changing request): the console's own origin only as the page's own
    scheme, host and port, or ``public_host`` without a port. Another port of the same
    name is another application, and to cookies the same site: it must not act through
    the operator's session.
    """
    surface, server = request.app[COMPAT], request.app[SETTINGS].server
    if surface.origin_listed(origin):
        return True
    if not exact:
        return origin_allowed(origin, request.headers.get(hdrs.HOST), server)
    origin = origin.rstrip("/").lower()
    own = {f"{request.scheme}://{request.host}".lower()} | {f"{scheme}://{server.public_host}".lower()
                                                            for scheme in ("http", "https") if server.public_host}
    listed = {allowed.rstrip("/").lower() for allowed in server.allowed_origins}
    return origin in own | listed


def _preflight(request: web.Request) -> web.Response:
    """204 with what the listed origin may send; nothing reaches the backend."""
    headers = cors_headers(request)
    if not headers:  # same-origin, or no Origin at all: nothing to allow
        return web.Response(status=204)
    headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    requested = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
    if len(requested) <= MAX_REQUESTED_HEADERS and HEADER_LIST.fullmatch(requested):
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = requested
    headers[hdrs.ACCESS_CONTROL_MAX_AGE] = PREFLIGHT_MAX_AGE
    return web.Response(status=204, headers=headers)
