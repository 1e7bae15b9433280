"""Typed keys for everything the application shares (``web.AppKey``, never globals).

The types are annotations, read by mypy only: importing the classes here at run time
would make every module that reads a key import the whole application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from monitor.alerts.runtime import Alerting
    from monitor.auth import AuthState
    from monitor.broker import Broker
    from monitor.compat.surface import CompatSurface
    from monitor.gcpolicy import GcPolicy
    from monitor.heartbeat import Heartbeat
    from monitor.history.recorder import History
    from monitor.hub import Hub
    from monitor.limits import ConnectionBudget
    from monitor.metrics import Metrics
    from monitor.poller import Poller
    from monitor.scheduler import Polling
    from monitor.settings import Settings
    from monitor.sources.resources import Sources
    from monitor.watch import Watcher

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
BROKER: web.AppKey[Broker] = web.AppKey("broker")
HUB: web.AppKey[Hub] = web.AppKey("hub")
HEARTBEAT: web.AppKey[Heartbeat] = web.AppKey("heartbeat")
GC: web.AppKey[GcPolicy] = web.AppKey("gc")
SOURCES: web.AppKey[Sources] = web.AppKey("sources")
POLLERS: web.AppKey[dict[str, Poller]] = web.AppKey("pollers")
POLLING: web.AppKey[Polling] = web.AppKey("polling")
STARTED_AT: web.AppKey[float] = web.AppKey("started_at", float)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
WATCHER: web.AppKey[Watcher | None] = web.AppKey("watcher")
CONNECTIONS: web.AppKey[ConnectionBudget] = web.AppKey("connections")
AUTH: web.AppKey[AuthState] = web.AppKey("auth")
HISTORY: web.AppKey[History] = web.AppKey("history")
ALERTS: web.AppKey[Alerting] = web.AppKey("alerts")
COMPAT: web.AppKey[CompatSurface] = web.AppKey("compat")  # only with [compat.tac_webbuilder]
# Who the auth middleware found; None: no valid credentials.
AUTH_USER: web.RequestKey[str | None] = web.RequestKey("auth_user")
