"""Typed keys for everything the application shares (``web.AppKey``, never globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from monitor.broker import InProcessBroker  # noqa: F401 - for the AppKey type names
    from monitor.hub import Hub  # noqa: F401 - for the AppKey type names
    from monitor.metrics import Metrics  # noqa: F401 - for the AppKey type names
    from monitor.poller import Poller  # noqa: F401 - for the AppKey type names
    from monitor.scheduler import Polling  # noqa: F401 - for the AppKey type names
    from monitor.settings import Settings  # noqa: F401 - for the AppKey type names
    from monitor.sources.registry import Sources  # noqa: F401 - for the AppKey type names
    from monitor.watch import Watcher  # noqa: F401 - for the AppKey type names

SETTINGS = web.AppKey("settings", "Settings")
BROKER = web.AppKey("broker", "InProcessBroker")
HUB = web.AppKey("hub", "Hub")
SOURCES = web.AppKey("sources", "Sources")
POLLERS = web.AppKey("pollers", "dict[str, Poller]")
POLLING = web.AppKey("polling", "Polling")
STARTED_AT = web.AppKey("started_at", float)
METRICS = web.AppKey("metrics", "Metrics")
WATCHER = web.AppKey("watcher", "Watcher | None")

if TYPE_CHECKING:
    from monitor.limits import ConnectionBudget  # noqa: F401 - for the AppKey type names

CONNECTIONS = web.AppKey("connections", "ConnectionBudget")

if TYPE_CHECKING:
    from monitor.auth import AuthState  # noqa: F401 - for the AppKey type names

AUTH = web.AppKey("auth", "AuthState")
AUTH_USER = web.RequestKey("auth_user", "str | None")  # who the auth middleware found; None: no valid credentials
