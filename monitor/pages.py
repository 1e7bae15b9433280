"""Server-rendered pages: the dashboard and one page per panel, complete before any script runs."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from monitor.channels.names import CHANNEL_NAMES
from monitor.keys import BROKER


def add_page_routes(app: web.Application) -> None:
    """Register the page routes (``/`` and ``/<channel>``)."""
    app.router.add_get("/", dashboard)
    app.router.add_get("/{channel}", channel_page)


def _page_context(request: web.Request, channels: tuple[str, ...]) -> dict:
    broker = request.app[BROKER]
    panels = []
    for name in channels:
        epoch, seq, state = broker.current(name)
        panels.append({"name": name, "epoch": epoch, "seq": seq, "state": state})
    return {"panels": panels, "channels": CHANNEL_NAMES}


async def dashboard(request: web.Request) -> web.Response:
    """``GET /``: all eight panels, rendered from current state."""
    return aiohttp_jinja2.render_template("dashboard.html", request, _page_context(request, CHANNEL_NAMES))


async def channel_page(request: web.Request) -> web.Response:
    """``GET /<channel>``: one panel as a full page."""
    from monitor.views import channel_or_404

    channel = channel_or_404(request)
    return aiohttp_jinja2.render_template("dashboard.html", request, _page_context(request, (channel,)))
