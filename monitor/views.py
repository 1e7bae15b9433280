"""HTTP views: the JSON API, liveness, and the server-rendered pages."""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from monitor import pages
from monitor.channels.names import CHANNEL_NAMES
from monitor.keys import BROKER, HUB, METRICS, POLLERS, STARTED_AT, WATCHER


def add_routes(app: web.Application) -> None:
    """Register the HTTP routes of the console."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/{channel}", channel_json)
    pages.add_page_routes(app)  # last: /{channel} would shadow anything after it


def channel_or_404(request: web.Request) -> str:
    """The ``{channel}`` of the URL, or HTTP 404 naming the known channels."""
    channel = request.match_info["channel"]
    if channel not in CHANNEL_NAMES:
        raise web.HTTPNotFound(text=f"unknown channel {channel!r}; channels: {', '.join(CHANNEL_NAMES)}")
    return channel


def json_response(payload, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def channel_json(request: web.Request) -> web.Response:
    """``GET /api/v1/<channel>``: the channel's current state with its epoch and seq."""
    channel = channel_or_404(request)
    epoch, seq, state = request.app[BROKER].current(channel)
    return json_response({"channel": channel, "epoch": epoch, "seq": seq, "data": state})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: answers while the event loop runs; reports each channel's source state."""
    now = time.monotonic()
    channels = {}
    for name in CHANNEL_NAMES:
        _, seq, state = request.app[BROKER].current(name)
        poller = request.app[POLLERS].get(name)
        last_ok = poller.last_ok_monotonic if poller else None
        channels[name] = {
            "source": state["meta"].get("source"),
            "seq": seq,
            "last_good_poll_age_s": None if last_ok is None else round(now - last_ok, 3),
            "connections": request.app[HUB].count(name),
        }
    watcher = request.app[WATCHER]
    watch = {"active": watcher is not None, "directories": watcher.watch_count if watcher else 0}
    return json_response({"status": "ok", "uptime_s": round(time.time() - request.app[STARTED_AT], 1),
                          "watch": watch, "channels": channels})


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
