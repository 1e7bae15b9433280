"""HTTP views: the JSON API, liveness, and the server-rendered pages."""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from monitor import pages
from monitor.channels.names import CHANNEL_NAMES
from monitor.keys import AUTH_USER, BROKER, HUB, METRICS, POLLERS, SETTINGS, STARTED_AT, WATCHER


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
    """Liveness: each channel's source state; seqs, ages, connections and watching only for signed-in callers."""
    app = request.app
    channels = {name: {"source": app[BROKER].current(name)[2]["meta"].get("source")} for name in CHANNEL_NAMES}
    if app[SETTINGS].auth.mode != "none" and request.get(AUTH_USER) is None:
        return json_response({"status": "ok", "channels": channels})
    now = time.monotonic()
    for name, entry in channels.items():
        poller = app[POLLERS].get(name)
        last_ok = poller.last_ok_monotonic if poller else None
        entry.update(seq=app[BROKER].current(name)[1], connections=app[HUB].count(name),
                     last_good_poll_age_s=None if last_ok is None else round(now - last_ok, 3))
    watcher = app[WATCHER]
    watch = {"active": watcher is not None, "directories": watcher.watch_count if watcher else 0}
    return json_response({"status": "ok", "uptime_s": round(time.time() - app[STARTED_AT], 1),
                          "watch": watch, "channels": channels})


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
