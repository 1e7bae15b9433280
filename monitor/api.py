"""The JSON side of HTTP: a channel's state, liveness (``/healthz``) and Prometheus metrics.

Handlers only; ``urls.setup_routes`` maps the URLs to them.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from monitor.brokers.shared import SharedBroker
from monitor.brokers.status import broker_status
from monitor.channels.registry import CHANNEL_NAMES
from monitor.keys import ALERTS, AUTH_USER, BROKER, COMPAT, HUB, METRICS, POLLERS, SETTINGS, STARTED_AT, WATCHER
from monitor.params import channel_or_404


def json_response(payload: Any, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


async def channel_json(request: web.Request) -> web.Response:
    """``GET /api/v1/<channel>``: the channel's current state with its epoch and seq."""
    channel = channel_or_404(request)
    view = request.app[BROKER].current(channel)
    return json_response({"channel": channel, "epoch": view.epoch, "seq": view.seq, "data": view.state})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: each channel's source state; seqs, ages, connections and watching only for signed-in callers."""
    app = request.app
    views = {name: app[BROKER].current(name) for name in CHANNEL_NAMES}
    channels: dict[str, dict[str, Any]] = {name: {"source": view.source} for name, view in views.items()}
    if app[SETTINGS].auth.mode != "none" and request.get(AUTH_USER) is None:
        return json_response({"status": "ok", "channels": channels})
    ages = await poll_ages(app)
    for name, entry in channels.items():
        entry.update(seq=views[name].seq, connections=app[HUB].count(name), last_good_poll_age_s=ages.get(name))
    watcher = app[WATCHER]
    watch = {"active": watcher is not None, "directories": watcher.watch_count if watcher else 0}
    body = {"status": "ok", "uptime_s": round(time.time() - app[STARTED_AT], 1), "watch": watch,
            "broker": broker_status(app[BROKER], CHANNEL_NAMES), "channels": channels}
    if COMPAT in app:
        surface = app[COMPAT]
        body["compat"] = {"prefix": surface.prefix, "connections": surface.fanout.hub.count(),
                          "backend": "down" if surface.backend.down else "up" if surface.backend.url else "none"}
    if app[SETTINGS].alerts:  # each receiver by its redacted address: a notification URL carries secrets
        alerting = app[ALERTS]
        body["alerts"] = {"rules": len(app[SETTINGS].alerts), "firing": len(alerting.engine.firing()),
                          "delivery": alerting.notifier.stats()}
    return json_response(body)


async def poll_ages(app: web.Application) -> dict[str, float]:
    """Seconds since each channel's last good poll: this console's own, or the poller's (shared broker)."""
    now, broker = time.monotonic(), app[BROKER]
    shared = broker if isinstance(broker, SharedBroker) else None
    ages = {name: round(now - poller.last_ok_monotonic, 3) for name, poller in app[POLLERS].items()
            if poller.last_ok_monotonic is not None and (shared is None or shared.leads(name))}
    if shared is not None:
        wall = time.time()
        for name, at in (await shared.last_polls()).items():
            ages.setdefault(name, round(max(0.0, wall - at), 3))
    return ages


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
