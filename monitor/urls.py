"""Every route of the console, in one table, in the order they must be matched."""

from __future__ import annotations

from aiohttp import web

from monitor import api, login, pages, websocket
from monitor.alerts import web as alerts_web
from monitor.compat.routes import add_compat_routes
from monitor.history import api as history_api


def setup_routes(app: web.Application) -> None:
    """Register every route of the console, in the order they must be matched."""
    # aiohttp tries routes in the order they were added. Only the page catch-all overlaps the
    # others: /{channel} matches every one-segment path, so any route added after it (/login,
    # /healthz, /metrics...) would be answered as an unknown channel. It stays last.
    app.router.add_get("/api/v1/ws/{channel}", websocket.channel_socket)
    app.router.add_get("/login", login.login_page)
    app.router.add_post("/login", login.login_submit)
    app.router.add_post("/logout", login.logout)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/api/v1/{channel}/history", history_api.channel_history)
    app.router.add_get("/api/v1/alerts", alerts_web.alerts_json)  # before /api/v1/{channel}: not a channel
    app.router.add_get("/api/v1/{channel}", api.channel_json)
    app.router.add_get("/", pages.dashboard)
    app.router.add_get("/alerts", alerts_web.alerts_page)
    app.router.add_static("/static/", pages.STATIC_DIR, name="static")
    add_compat_routes(app)  # <prefix>/...: the prefix itself would otherwise be taken for a channel
    app.router.add_get("/{channel}", pages.channel_page)


def list_routes(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, path, handler name) of every route this console serves."""
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix") or ""
        routes.append((route.method, path, getattr(route.handler, "__name__", "")))
    return routes
