"""A stand-in for the ADW webhook service and backend: what the console reads of them.

The real webhook service receives GitHub webhooks and starts ADW runs; the console reads
its `GET /webhook-status` (DESIGN §4), served here exactly as the real one shapes it. The
real backend answers `GET /api/v1/health` and publishes `/openapi.json`; this one app
answers both, so the demo needs one port. The simulator plays the GitHub side through
`DemoDeliveries`, which counts each delivery by the real service's rules.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

RECENT_FAILURES_KEPT = 10
RECENT_FAILURES_SHOWN = 5
ERROR_CHARS = 200
DEGRADED_AT_OR_BELOW = 80.0  # the service is degraded with failures and a rate of at most this

_SERVICE_ROUTES = (
    ("POST", "/gh-webhook", "Receive a GitHub webhook delivery", "webhook"),
    ("GET", "/webhook-status", "Delivery counters and recent failures", "webhook"),
    ("GET", "/ping", "Liveness ping", "webhook"),
    ("GET", "/health", "Run the ADW health check", "webhook"),
)
_DESCRIPTIONS = {
    ("POST", "/gh-webhook"): "Checks the delivery's signature, then starts an ADW workflow when an opened issue "
                             "or a new comment names one (adw_..._iso); bot comments and other events are ignored.",
    ("GET", "/webhook-status"): "Deliveries received, successful and failed since the service started, the "
                                "success rate successful / (successful + failed), the last five failures and the "
                                "last workflow launched.",
    ("GET", "/ping"): "Answers at once; launch scripts wait on it.",
    ("GET", "/health"): "Runs the ADW health check (tools, credentials, ports) and reports its warnings and errors.",
}


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        """Count a delivery that launched the ADW workflow of run `adw_id`."""
        with self._lock:
            self.total_received += 1
            self.successful += 1
            self.last_successful = {"issue": issue, "adw_id": adw_id, "workflow": workflow, "timestamp": _utc_now()}

    def record_failure(self, issue: int, error: str) -> None:
        """Count a delivery whose processing raised `error`."""
        with self._lock:
            self.total_received += 1
            self.failed += 1
            self.recent_failures.append({"issue": issue, "timestamp": _utc_now(), "error": error[:ERROR_CHARS]})

    def record_inconclusive(self) -> None:
        """Count a delivery that started processing and ended early (no workflow found, a lock held)."""
        with self._lock:
            self.total_received += 1

    def success_rate(self) -> float:
        """successful / (successful + failed) in percent; 0.0 while nothing is processed, as the service says."""
        with self._lock:
            return self._rate()

    def status(self) -> dict[str, Any]:
        """The `GET /webhook-status` body, exactly as the real service shapes it."""
        uptime = max(0.0, self._clock() - self._started)
        with self._lock:
            return self._status(uptime)

    def _rate(self) -> float:
        processed = self.successful + self.failed
        return 100.0 * self.successful / processed if processed else 0.0

    def _status(self, uptime: float) -> dict[str, Any]:
        rate = self._rate()
        degraded = self.failed > 0 and rate <= DEGRADED_AT_OR_BELOW
        return {
            "status": "degraded" if degraded else "healthy",
            "uptime": {"seconds": int(uptime), "hours": round(uptime / 3600, 2),
                       "human": f"{int(uptime // 3600)}h {int(uptime % 3600 // 60)}m"},
            "stats": {
                "total_received": self.total_received,
                "successful": self.successful,
                "failed": self.failed,
                "success_rate": f"{rate:.1f}%",
            },
            "recent_failures": list(self.recent_failures)[-RECENT_FAILURES_SHOWN:],
            "last_successful": dict(self.last_successful) if self.last_successful else None,
        }


_PROCESSING_ERRORS = ("Failed to launch workflow: git worktree add exited with status 128",
                      "Error fetching issue: gh api returned HTTP 502",
                      "Error classifying issue: claude CLI timed out after 120s")
_OUTAGE_ERRORS = ("Error fetching issue: gh api returned HTTP 503 Service Unavailable",
                  "Error posting issue comment: gh api returned HTTP 502 Bad Gateway")


class DemoDeliveries:
    """The simulator's webhook deliveries, counted on `WebhookStats` by the real service's rules.

    The simulator reports launches (`record_success`) and deliveries that launched nothing
    (`record_failure`; its reason is not used). Of the latter, most are ones the real
    service ignores and never counts (bot comments, comments without an ADW trigger,
    closed issues, bad signatures), some end early (received, neither successful nor
    failed) and a few fail. Now and then GitHub's API has an outage: every delivery fails
    until the success rate is down to `OUTAGE_ENDS_AT`, so the service's status visibly
    turns "degraded" and, as launches succeed again, back to "healthy". The first outage
    comes within about a minute and a half, so a new viewer sees it soon.
    """

    IGNORED, ENDED_EARLY = 0.6, 0.25  # shares of the deliveries that launch nothing; the rest fail
    FIRST_OUTAGE_AFTER = 12  # deliveries that launch nothing (about one in seven simulator ticks)
    OUTAGE_CHANCE = 0.01  # per such delivery after that: an outage every ten minutes or so
    OUTAGE_ENDS_AT = 79.0

    def __init__(self, stats: WebhookStats, rng: random.Random) -> None:
        self.stats, self._rng = stats, rng
        self.outage = False
        self._until_first_outage = self.FIRST_OUTAGE_AFTER

    def record_success(self, issue: int, adw_id: str, workflow: str) -> None:
        """A delivery that launches run `adw_id`; during an outage the launch fails."""
        if self.outage:
            self._outage_failure(issue)
        else:
            self.stats.record_success(issue, adw_id, workflow)

    def record_failure(self, issue: int, error: str) -> None:
        """A delivery that launches nothing: ignored, ended early or failed, as the service would count it."""
        if self.outage:
            self._outage_failure(issue)
            return
        roll = self._rng.random()  # below IGNORED: ignored, so counted nowhere
        if self.IGNORED <= roll < self.IGNORED + self.ENDED_EARLY:
            self.stats.record_inconclusive()
        elif roll >= self.IGNORED + self.ENDED_EARLY:
            self.stats.record_failure(issue, self._rng.choice(_PROCESSING_ERRORS))
        self._until_first_outage -= 1
        self.outage = self._until_first_outage == 0 or self._rng.random() < self.OUTAGE_CHANCE

    def _outage_failure(self, issue: int) -> None:
        self.stats.record_failure(issue, self._rng.choice(_OUTAGE_ERRORS))
        self.outage = self.stats.success_rate() > self.OUTAGE_ENDS_AT


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
        """An OpenAPI 3 document of the published routes, each with a description."""
        paths: dict[str, dict[str, Any]] = {}
        for method, path, summary, tag in self.routes():
            op_id = f"{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '') or 'root'}"
            description = _DESCRIPTIONS.get((method, path)) or f"Added by the ADW run for “{summary}” ({tag})."
            paths.setdefault(path, {})[method.lower()] = {"summary": summary, "description": description,
                                                          "operationId": op_id, "tags": [tag]}
        info = {"title": "ADW webhook service and backend (demo)", "version": "1.0.0"}
        return {"openapi": "3.1.0", "info": info, "paths": paths}


STATS_KEY = web.AppKey("webhook_stats", WebhookStats)
API_KEY = web.AppKey("api_catalog", ApiCatalog)


async def _webhook_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_KEY].status())


async def _ping(request: web.Request) -> web.Response:
    return web.json_response({"status": "healthy", "service": "adw-webhook-trigger", "timestamp": time.time()})


async def _health(request: web.Request) -> web.Response:
    check = {"success": True, "warnings": [], "errors": [], "details": {}}
    return web.json_response({"status": "healthy", "service": "adw-webhook-trigger", "health_check": check})


async def _backend_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "healthy"})


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[API_KEY].openapi())


def create_webhook_app(stats: WebhookStats, api: ApiCatalog | None = None) -> web.Application:
    """The demo webhook service (and the backend's health endpoint) as an aiohttp application."""
    app = web.Application()
    app[STATS_KEY] = stats
    app.router.add_get("/webhook-status", _webhook_status)
    app.router.add_get("/ping", _ping)
    app.router.add_get("/health", _health)
    app.router.add_get("/api/v1/health", _backend_health)
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
