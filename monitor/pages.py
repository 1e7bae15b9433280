"""Server-rendered pages: the dashboard and one page per panel, complete before any script runs.

Handlers and their templates only; ``urls.setup_routes`` maps the URLs to them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from monitor import display, sparklines
from monitor.channels.registry import CHANNEL_NAMES, CHANNELS, channel_spec
from monitor.history.series import SERIES, Series
from monitor.keys import ALERTS, BROKER, HISTORY, SETTINGS
from monitor.params import channel_or_404, flag_param

STATIC_DIR = Path(__file__).resolve().parent / "static"


def setup_templates(app: web.Application) -> None:
    """Give ``app`` the page templates, with the helpers they format values with."""
    # templates/ lives at the top of the repository; monitor/templates is a symlink to it, so
    # one loader finds the same files in a checkout, an installed wheel and the .pyz.
    env = aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("monitor", "templates"), autoescape=True)
    env.globals.update(display.template_globals())
    env.globals.update(sparklines.template_globals())


DAILY_DAYS = 30  # a daily series (cost per day) is drawn over a month


async def panel_trends(request: web.Request, name: str) -> dict[str, Series]:
    """The history series one panel draws: its recent slots, and a day a point where a trend is daily."""
    history = request.app[HISTORY]
    trends = dict(history.recent(name))  # recent() is shared by every caller until the next sample
    daily = [spec.name for spec in SERIES.get(name, ()) if spec.daily]
    if daily:
        by_day = await history.by_day(name, DAILY_DAYS)
        trends.update({key: by_day[key] for key in daily if key in by_day})
    return trends


async def panel_context(request: web.Request, name: str, wall: bool = False) -> dict[str, Any]:
    """What one panel's template renders: its channel's state at one (epoch, seq), and its trends."""
    view = request.app[BROKER].current(name)
    return {"name": name, "title": channel_spec(name).title, "epoch": view.epoch, "seq": view.seq,
            "state": view.state, "template": f"panels/{name}.html", "wall": wall,
            "trends": await panel_trends(request, name), "history_step": request.app[HISTORY].step}


async def page_context(request: web.Request, channels: tuple[str, ...]) -> dict[str, Any]:
    """The context of a page showing ``channels``."""
    rendered_at = dt.datetime.now(dt.UTC).strftime("%H:%M:%S UTC")
    wall = flag_param(request, "wall", request.app[SETTINGS].ui.wall)
    return {"panels": [await panel_context(request, name, wall) for name in channels],
            "channels": CHANNELS, "rendered_at": rendered_at, "wall": wall, "single": len(channels) == 1,
            "current": channels[0] if len(channels) == 1 else "",  # the channel whose page this is
            "alert_rules": len(request.app[SETTINGS].alerts), "firing": request.app[ALERTS].engine.firing(),
            # The page calls a socket down longer than a heartbeat stale (live.js), as the server would.
            "heartbeat_ms": round(request.app[SETTINGS].server.heartbeat * 1000),
            "history_step": request.app[HISTORY].step}  # trend.js redraws the trends this often


async def dashboard(request: web.Request) -> web.Response:
    """``GET /``: all eight panels, rendered from current state."""
    return aiohttp_jinja2.render_template("dashboard.html", request, await page_context(request, CHANNEL_NAMES))


async def channel_page(request: web.Request) -> web.Response:
    """``GET /<channel>``: one panel as a full page."""
    channel = channel_or_404(request)  # the page of a channel is named as the channel
    return aiohttp_jinja2.render_template("dashboard.html", request, await page_context(request, (channel,)))
