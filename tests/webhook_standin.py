"""A stand-in for the real ADW webhook service and backend: real HTTP on loopback, answering
with documents shaped as the real ones are (DESIGN §4)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

LAST_SUCCESSFUL = {"issue": 45, "adw_id": "a1b2c3d4", "workflow": "adw_sdlc_iso",
                   "timestamp": "2026-01-05T12:00:00+00:00"}
FAILURES = [
    {"issue": 41, "timestamp": "2026-01-05T10:00:00+00:00", "error": "Failed to launch workflow: worktree exists"},
    {"issue": 44, "timestamp": "2026-01-05T11:30:00+00:00", "error": "Error fetching issue: HTTP 502"},
    {"issue": 47, "timestamp": "2026-01-05T11:45:00+00:00", "error": "Error fetching issue: HTTP 502"},
]
# What the real service sends after 12 deliveries started processing: 7 launched a workflow,
# 3 raised, 2 ended early (no workflow found in the issue), so 12 > 7 + 3. Its rate is
# 7 / (7 + 3) = 70.0 %, sent as a string; with failures and a rate <= 80 it says "degraded".
# Uptime 7384 s = 2 h 3 min 4 s: hours 2.05, human "2h 3m".
DEGRADED_DOCUMENT: dict[str, Any] = {
    "status": "degraded",
    "uptime": {"seconds": 7384, "hours": 2.05, "human": "2h 3m"},
    "stats": {"total_received": 12, "successful": 7, "failed": 3, "success_rate": "70.0%"},
    "recent_failures": FAILURES,
    "last_successful": LAST_SUCCESSFUL,
}
# After 15 more launches: 22 / (22 + 3) = 88.0 % > 80, so "healthy"; 27 = 22 + 3 + 2 received.
HEALTHY_DOCUMENT: dict[str, Any] = {
    **DEGRADED_DOCUMENT, "status": "healthy",
    "stats": {"total_received": 27, "successful": 22, "failed": 3, "success_rate": "88.0%"},
}


class WebhookStandIn:
    """Serves ``GET /webhook-status`` and the backend's ``GET /api/v1/health``; tests change the answers."""

    def __init__(self) -> None:
        self.document: object = DEGRADED_DOCUMENT
        self.status = 200
        self.text: str | None = None  # sent as HTML instead of the document when set
        self.health_status = 200
        self.server = None
        self.url = self.base_url = ""  # the webhook status URL; the backend's base URL

    async def webhook_status(self, request: web.Request) -> web.Response:
        if self.text is not None:
            return web.Response(text=self.text, status=self.status, content_type="text/html")
        return web.json_response(self.document, status=self.status)

    async def backend_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"}, status=self.health_status)

    def app(self) -> web.Application:
        """A fresh application serving this stand-in's answers."""
        app = web.Application()
        app.router.add_get("/webhook-status", self.webhook_status)
        app.router.add_get("/api/v1/health", self.backend_health)
        return app


async def start_standin(aiohttp_server) -> WebhookStandIn:
    """A stand-in served on a free loopback port by pytest-aiohttp's ``aiohttp_server``."""
    standin = WebhookStandIn()
    standin.server = await aiohttp_server(standin.app())
    standin.url = str(standin.server.make_url("/webhook-status"))
    standin.base_url = str(standin.server.make_url("/")).rstrip("/")
    return standin
