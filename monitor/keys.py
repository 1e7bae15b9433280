"""Typed keys for everything the application shares (``web.AppKey``, never globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from monitor.broker import InProcessBroker
    from monitor.hub import Hub
    from monitor.metrics import Metrics
    from monitor.poller import Poller
    from monitor.scheduler import Polling
    from monitor.settings import Settings
    from monitor.sources.registry import Sources

SETTINGS = web.AppKey("settings", "Settings")
BROKER = web.AppKey("broker", "InProcessBroker")
HUB = web.AppKey("hub", "Hub")
SOURCES = web.AppKey("sources", "Sources")
POLLERS = web.AppKey("pollers", "dict[str, Poller]")
POLLING = web.AppKey("polling", "Polling")
STARTED_AT = web.AppKey("started_at", float)
METRICS = web.AppKey("metrics", "Metrics")
