"""The compat surface's routes and lifecycle: added to a console only when its config has the section."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from monitor.channels.registry import CHANNEL_NAMES, is_channel
from monitor.compat.fanout import CompatFanout
from monitor.compat.proxy import Backend, pass_through
from monitor.compat.relay import relay
from monitor.compat.surface import CompatSurface
from monitor.headers import is_websocket
from monitor.keys import BROKER, COMPAT, METRICS, SETTINGS


def setup_compat(app: web.Application) -> None:
    """Create the surface of ``[compat.tac_webbuilder]``, if configured: its clients, its backend session."""
    settings = app[SETTINGS].tac_webbuilder
    if settings is None:
        return
    fanout, backend = CompatFanout(app[BROKER], CHANNEL_NAMES), Backend(settings)
    app[COMPAT] = CompatSurface(settings, fanout, backend)
    app[BROKER].listen(fanout.deliver)
    app[METRICS].watch_compat(fanout.hub, lambda: backend.down)
    app.cleanup_ctx.append(backend_ctx)


def add_compat_routes(app: web.Application) -> None:
    """The prefix's routes: the eight channel sockets, then everything else to the backend."""
    surface = app.get(COMPAT)
    if surface is None:
        return
    app.router.add_get(surface.prefix + "/api/v1/ws/{channel}", channel_socket)
    app.router.add_route("*", surface.prefix + "{tail:(/.*)?}", to_backend)


async def backend_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the HTTP session to the backend."""
    backend = app[COMPAT].backend
    await backend.open()
    yield
    await backend.close()


async def channel_socket(request: web.Request) -> web.StreamResponse:
    """``<prefix>/api/v1/ws/<channel>``: a channel's original messages; any other socket there is the backend's."""
    channel = request.match_info["channel"]
    if not (is_channel(channel) and is_websocket(request)):
        return await to_backend(request)
    return await request.app[COMPAT].fanout.socket(request, channel)


async def to_backend(request: web.Request) -> web.StreamResponse:
    """Anything else under the prefix: passed to the backend, a WebSocket relayed."""
    surface = request.app[COMPAT]
    if not surface.backend.url:
        raise web.HTTPNotFound(text="not served here: compat.tac_webbuilder.backend_url is empty")
    if is_websocket(request):
        return await relay(request, surface.backend, surface.prefix)
    return await pass_through(request, surface.backend, surface.prefix)
