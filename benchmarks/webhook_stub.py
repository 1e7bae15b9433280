"""A stand-in webhook service on loopback whose status document the driver changes."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

KEPT_FAILURES = 10


class WebhookStub:
    """Serves ``GET /webhook-status``; ``record_failure`` changes the document."""

    def __init__(self) -> None:
        self.started = time.time()
        self.received = 1200
        self.failures: list[dict] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def document(self) -> dict:
        """The current status document, in the ADW webhook service's format."""
        seconds = int(time.time() - self.started)
        failed = len(self.failures)
        return {
            "status": "healthy",
            "uptime": {"seconds": seconds, "hours": round(seconds / 3600, 2), "human": f"{seconds // 60}m"},
            "stats": {"total_received": self.received, "successful": self.received - failed, "failed": failed,
                      "success_rate": round(100 * (self.received - failed) / self.received, 1)},
            "recent_failures": self.failures[-KEPT_FAILURES:],
            "last_successful": {"issue": 41, "adw_id": "0badc0de", "workflow": "adw_sdlc_iso",
                                "timestamp": "2026-01-01T00:00:00+00:00"},
        }

    def record_failure(self, marker: str) -> None:
        """One more received webhook that failed, with ``marker`` in its error."""
        self.received += 1
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        self.failures.append({"issue": 500 + len(self.failures), "timestamp": stamp, "error": f"failed {marker}"})

    async def start(self) -> str:
        """Listen on 127.0.0.1 (any free port); return the status URL."""
        app = web.Application()
        app.router.add_get("/webhook-status", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/webhook-status"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.Response:
        return web.json_response(self.document())
