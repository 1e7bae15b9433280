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
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

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


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebhookStats:
    """Delivery counters of the demo webhook service; the simulator records, the app reports."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = _utc_now) -> None:
        self._clock, self._now = clock, now  # uptime from `clock`; delivery timestamps from `now`
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
            self.last_successful = {"issue": issue, "adw_id": adw_id, "workflow": workflow, "timestamp": self._stamp()}

    def record_failure(self, issue: int, error: str) -> None:
        """Count a delivery whose processing raised `error`."""
        with self._lock:
            self.total_received += 1
            self.failed += 1
            self.recent_failures.append({"issue": issue, "timestamp": self._stamp(),
                                         "error": error[:ERROR_CHARS]})

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

    def _stamp(self) -> str:
        return self._now().astimezone(UTC).isoformat(timespec="seconds")

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


# Why a delivery launched no workflow, counted as the real service (adws/adw_triggers/trigger_webhook.py)
# counts it. "ignored": answered before processing (bad signature, the bot's own comment, no adw_..._iso
# named, an issue closed or reopened), counted nowhere. "ended_early": processing returned without a
# launch (no workflow found, a pre-flight check or another run's lock refused), counted as received only.
# "failed": processing raised; counted failed and listed. Only failures lower the success rate.
DeliveryOutcome = Literal["ignored", "ended_early", "failed"]
DELIVERY_OUTCOMES: dict[str, DeliveryOutcome] = {
    "Invalid webhook signature": "ignored",
    "Comment posted by the ADW bot": "ignored",
    "Comment names no adw_..._iso workflow": "ignored",
    "Issue closed: workflow history updated": "ignored",
    "Issue reopened: workflow history updated": "ignored",
    "No workflow detected in the comment": "ended_early",
    "Could not parse the adw_ workflow command": "ended_early",
    "Workflow extraction failed: claude CLI timed out after 120s": "ended_early",
    "adw_build_iso needs an existing ADW ID": "ended_early",
    "Pre-flight check failed: 15/15 worktrees in use": "ended_early",
    "Issue is already being processed by another ADW workflow": "ended_early",  # e.g. a redelivered trigger
    "Command '['git', 'remote', 'get-url', 'origin']' returned non-zero exit status 128.": "failed",
    "[Errno 2] No such file or directory: 'uv'": "failed",
    "[Errno 28] No space left on device": "failed",
}
# The mix of deliveries that launch nothing: mostly ignored, some ended early, a few failed.
UNLAUNCHED_MIX: dict[DeliveryOutcome, float] = {"ignored": 0.6, "ended_early": 0.25, "failed": 0.15}
_OUTAGE_ERRORS = ("Error fetching issue: gh api returned HTTP 503 Service Unavailable",
                  "Error posting issue comment: gh api returned HTTP 502 Bad Gateway")


def draw_unlaunched_reason(rng: random.Random) -> str:
    """A reason a delivery launched nothing, drawn from the service's usual mix (`UNLAUNCHED_MIX`)."""
    outcome = rng.choices(list(UNLAUNCHED_MIX), weights=list(UNLAUNCHED_MIX.values()))[0]
    return rng.choice([reason for reason, counted in DELIVERY_OUTCOMES.items() if counted == outcome])


class DemoDeliveries:
    """The simulator's webhook deliveries, counted on `WebhookStats` by the real service's rules.

    The simulator reports launches (`record_success`) and deliveries that launched nothing
    (`record_unlaunched`, for a reason in `DELIVERY_OUTCOMES`). Now and then GitHub's API has
    an outage: every delivery the service processes fails (launches too: nothing launches)
    until the success rate is down to `OUTAGE_ENDS_AT`, so the status visibly turns "degraded"
    and back; ignored deliveries stay ignored. The first outage comes within a minute and a half.
    """

    FIRST_OUTAGE_AFTER = 12  # deliveries that launch nothing (about one in seven simulator ticks)
    OUTAGE_CHANCE = 0.01  # per such delivery after that: an outage every ten minutes or so
    OUTAGE_ENDS_AT = 79.0

    def __init__(self, stats: WebhookStats, rng: random.Random) -> None:
        self.stats, self._rng = stats, rng
        self.outage = False
        self.outcomes: Counter[DeliveryOutcome] = Counter()  # how each unlaunched delivery was counted
        self._until_first_outage = self.FIRST_OUTAGE_AFTER

    def record_success(self, issue: int, adw_id: str, workflow: str) -> bool:
        """A delivery that launches run `adw_id`; False when an outage fails it, so nothing launched."""
        if self.outage:
            self._outage_failure(issue)
            return False
        self.stats.record_success(issue, adw_id, workflow)
        return True

    def record_unlaunched(self, issue: int, reason: str) -> None:
        """A delivery that launched nothing for `reason`, a key of `DELIVERY_OUTCOMES`."""
        if reason not in DELIVERY_OUTCOMES:
            raise ValueError(f"unknown delivery outcome {reason!r}: not one of DELIVERY_OUTCOMES")
        self._count(issue, reason, DELIVERY_OUTCOMES[reason])

    def record_failure(self, issue: int, reason: str) -> None:
        """A delivery that launched nothing, for a reason the caller may not have classified.

        A reason in `DELIVERY_OUTCOMES` counts as it says; any other text ("Duplicate delivery
        ignored") is no error the service raised, so it is ignored or ends early, never a failure.
        """
        outcome = DELIVERY_OUTCOMES.get(reason) or self._rng.choices(
            ("ignored", "ended_early"), weights=(UNLAUNCHED_MIX["ignored"], UNLAUNCHED_MIX["ended_early"]))[0]
        self._count(issue, reason, outcome)

    def _count(self, issue: int, reason: str, outcome: DeliveryOutcome) -> None:
        if outcome == "ignored":  # answered before any processing: no counter moves, outage or not
            self.outcomes["ignored"] += 1
        elif self.outage:
            self.outcomes["failed"] += 1
            self._outage_failure(issue)
            return
        elif outcome == "ended_early":
            self.outcomes["ended_early"] += 1
            self.stats.record_inconclusive()
        else:
            self.outcomes["failed"] += 1
            self.stats.record_failure(issue, reason)
        self._until_first_outage -= 1
        self.outage = self.outage or self._until_first_outage == 0 or self._rng.random() < self.OUTAGE_CHANCE

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
