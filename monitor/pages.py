"""Server-rendered pages: the dashboard and one page per panel, complete before any script runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import aiohttp_jinja2
from aiohttp import web

from monitor import display
from monitor.channels.names import CHANNEL_NAMES
from monitor.keys import BROKER

STATIC_DIR = Path(__file__).resolve().parent / "static"


def add_page_routes(app: web.Application) -> None:
    """Register the static files and the page routes (``/`` and ``/<channel>``)."""
    aiohttp_jinja2.get_env(app).globals.update(display.template_globals())
    app.router.add_get("/", dashboard)
    app.router.add_static("/static/", STATIC_DIR, name="static")
    app.router.add_get("/{channel}", channel_page)  # last: it matches any single segment


def panel_context(request: web.Request, name: str) -> dict:
    """What one panel's template renders: its channel's state at one (epoch, seq)."""
    epoch, seq, state = request.app[BROKER].current(name)
    return {"name": name, "title": display.PANEL_TITLES[name], "epoch": epoch, "seq": seq,
            "state": state, "template": f"panels/{name}.html"}


def page_context(request: web.Request, channels: tuple[str, ...]) -> dict:
    """The context of a page showing ``channels``."""
    rendered_at = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S UTC")
    return {"panels": [panel_context(request, name) for name in channels],
            "channels": CHANNEL_NAMES, "rendered_at": rendered_at, "single": len(channels) == 1}


async def dashboard(request: web.Request) -> web.Response:
    """``GET /``: all eight panels, rendered from current state."""
    return aiohttp_jinja2.render_template("dashboard.html", request, page_context(request, CHANNEL_NAMES))


async def channel_page(request: web.Request) -> web.Response:
    """``GET /<channel>``: one panel as a full page."""
    channel = request.match_info["channel"]
    if channel not in CHANNEL_NAMES:
        raise web.HTTPNotFound(text=f"unknown page {channel!r}; panels: {', '.join(CHANNEL_NAMES)}")
    return aiohttp_jinja2.render_template("dashboard.html", request, page_context(request, (channel,)))
