"""A stand-in for the ADW webhook service: its status endpoint and its OpenAPI document.

The real service is a small web app that receives GitHub webhooks and starts ADW runs;
the console only reads `GET /webhook-status` (DESIGN §4). The simulator plays the GitHub
side by recording deliveries on a `WebhookStats` the caller owns.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

RECENT_FAILURES_KEPT = 10

_SERVICE_ROUTES = (
    ("POST", "/gh-webhook", "Receive a GitHub webhook delivery", "webhook"),
    ("GET", "/health", "Liveness probe", "ops"),
    ("GET", "/webhook-status", "Delivery counters and recent failures", "ops"),
)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _human_duration(seconds: float) -> str:
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


class WebhookStats:
    """Delivery counters of the demo webhook service; the simulator records, the app reports."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()  # the simulator records from a worker thread while the app reads
        self.total_received = 0
        self.successful = 0
        self.failed = 0
        self.recent_failures: deque[dict[str, Any]] = deque(maxlen=RECENT_FAILURES_KEPT)
        self.last_successful: dict[str, Any] | None = None

    def record_success(self, issue: int, adw_id: str, workflow: str) -> None:
        """Count a delivery that started (or advanced) the ADW run `adw_id`."""
        with self._lock:
            self.total_received += 1
            self.successful += 1
            self.last_successful = {"issue": issue, "adw_id": adw_id, "workflow": workflow, "timestamp": _utc_now()}

    def record_failure(self, issue: int, error: str) -> None:
        """Count a delivery the service rejected or could not act on."""
        with self._lock:
            self.total_received += 1
            self.failed += 1
            self.recent_failures.append({"issue": issue, "timestamp": _utc_now(), "error": error})

    def status(self) -> dict[str, Any]:
        """The `GET /webhook-status` body, exactly as DESIGN §4 shapes it."""
        uptime = max(0.0, self._clock() - self._started)
        with self._lock:
            return self._status(uptime)

    def _status(self, uptime: float) -> dict[str, Any]:
        rate = round(100.0 * self.successful / self.total_received, 1) if self.total_received else 0.0
        return {
            "status": "healthy",
            "uptime": {"seconds": int(uptime), "hours": round(uptime / 3600, 2), "human": _human_duration(uptime)},
            "stats": {
                "total_received": self.total_received,
                "successful": self.successful,
                "failed": self.failed,
                "success_rate": rate,
            },
            "recent_failures": list(self.recent_failures),
            "last_successful": dict(self.last_successful) if self.last_successful else None,
        }


class ApiCatalog:
    """Routes the demo service publishes as OpenAPI; ADW runs add, retag and revert endpoints."""

    def __init__(self, max_added: int = 10) -> None:
        self._max_added = max_added
        self._added: list[tuple[str, str, str, str]] = []
        self._lock = threading.Lock()  # the simulator edits from a worker thread while the app reads

    def add_route(self, method: str, path: str, summary: str, tag: str) -> None:
        """Publish or update an operation; the oldest added ones retire past `max_added`."""
        route = (method.upper(), path, summary, tag)
        if any(r[:2] == route[:2] for r in _SERVICE_ROUTES):
            return
        with self._lock:
            known = [r[:2] for r in self._added]
            if route[:2] in known:
                self._added[known.index(route[:2])] = route
            else:
                self._added = [*self._added, route][-self._max_added:]

    def remove_route(self, method: str, path: str) -> None:
        """Withdraw an added operation (a reverted change); service routes stay."""
        with self._lock:
            self._added = [r for r in self._added if r[:2] != (method.upper(), path)]

    def routes(self) -> list[tuple[str, str, str, str]]:
        """Every published (method, path, summary, tag), service routes first."""
        with self._lock:
            return [*_SERVICE_ROUTES, *self._added]

    def openapi(self) -> dict[str, Any]:
        """An OpenAPI 3 document of the published routes."""
        paths: dict[str, dict[str, Any]] = {}
        for method, path, summary, tag in self.routes():
            op_id = f"{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '') or 'root'}"
            paths.setdefault(path, {})[method.lower()] = {"summary": summary, "operationId": op_id, "tags": [tag]}
        return {"openapi": "3.1.0", "info": {"title": "ADW webhook service (demo)", "version": "1.0.0"}, "paths": paths}


STATS_KEY = web.AppKey("webhook_stats", WebhookStats)
API_KEY = web.AppKey("api_catalog", ApiCatalog)


async def _webhook_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_KEY].status())


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[API_KEY].openapi())


def create_webhook_app(stats: WebhookStats, api: ApiCatalog | None = None) -> web.Application:
    """The demo webhook service as an aiohttp application."""
    app = web.Application()
    app[STATS_KEY] = stats
    app.router.add_get("/webhook-status", _webhook_status)
    app.router.add_get("/health", _health)
    if api is not None:
        app[API_KEY] = api
        app.router.add_get("/openapi.json", _openapi)
    return app


async def start_webhook_service(
    stats: WebhookStats, host: str = "127.0.0.1", port: int = 0, *, api: ApiCatalog | None = None
) -> tuple[web.AppRunner, int]:
    """Serve the demo webhook service on host:port (0 = any free port); return runner and port."""
    runner = web.AppRunner(create_webhook_app(stats, api), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]
