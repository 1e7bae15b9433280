"""The webhook-status channel against a real HTTP service on loopback."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import web

from monitor.channels.base import ChannelData, SourceDown
from monitor.channels.webhook_status import build_webhook_status, make_reader, published_uptime
from monitor.keys import BROKER
from tests.support import poll

LAST_SUCCESSFUL = {"issue": 45, "adw_id": "a1b2c3d4", "workflow": "adw_sdlc_iso",
                   "timestamp": "2026-01-05T12:00:00+00:00"}
DOCUMENT = {
    "status": "healthy",
    "uptime": {"seconds": 7384, "hours": 2.05, "human": "2h 3m 4s"},
    "stats": {"total_received": 40, "successful": 37, "failed": 3, "success_rate": 92.5},
    "recent_failures": [
        {"issue": 41, "timestamp": "2026-01-05T10:00:00+00:00", "error": "no ADW trigger in comment"},
        {"issue": 44, "timestamp": "2026-01-05T11:30:00+00:00", "error": "rate limited"},
    ],
    "last_successful": LAST_SUCCESSFUL,
}
EXPECTED_SUMMARY = {"status": "healthy", "uptime_seconds": 7380, "total_received": 40, "successful": 37,
                    "failed": 3, "success_rate": 92.5, "last_successful": LAST_SUCCESSFUL}
EXPECTED_ITEMS = {
    "41@2026-01-05T10:00:00+00:00": {"issue": 41, "timestamp": "2026-01-05T10:00:00+00:00",
                                     "error": "no ADW trigger in comment"},
    "44@2026-01-05T11:30:00+00:00": {"issue": 44, "timestamp": "2026-01-05T11:30:00+00:00",
                                     "error": "rate limited"},
}


class StatusService:
    """What the stand-in webhook service answers; tests change it between polls."""

    def __init__(self) -> None:
        self.document: object = DOCUMENT
        self.status = 200
        self.text: str | None = None

    async def handle(self, request: web.Request) -> web.Response:
        if self.text is not None:
            return web.Response(text=self.text, status=self.status, content_type="text/html")
        return web.json_response(self.document, status=self.status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/webhook-status", self.handle)
        return app


@pytest.fixture
async def service(aiohttp_server):
    fake = StatusService()
    fake.server = await aiohttp_server(fake.app())
    fake.url = str(fake.server.make_url("/webhook-status"))
    return fake


@pytest.fixture
async def silent_url():
    """A server that accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and hangs up
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/webhook-status"
    server.close()
    await server.wait_closed()


@pytest.fixture
def webhook_reader(open_sources):
    """Opens Sources for a webhook URL and returns the channel's reader on them."""

    async def make(url: str, timeout: float = 2.0):
        return make_reader(await open_sources({"sources": {"webhook_url": url},
                                               "channels": {"webhook-status": {"timeout": timeout}}}))

    return make


def test_summary_and_items_from_document():
    assert build_webhook_status(DOCUMENT) == ChannelData(EXPECTED_SUMMARY, EXPECTED_ITEMS)


def test_rate_computed_when_absent_and_null_last_success_left_out():
    document = {"status": "degraded", "uptime": {"seconds": 42.9},
                "stats": {"total_received": 3, "successful": 2, "failed": 1},
                "recent_failures": [], "last_successful": None}
    assert build_webhook_status(document) == ChannelData(
        {"status": "degraded", "uptime_seconds": 42, "total_received": 3, "successful": 2, "failed": 1,
         "success_rate": 66.7}, {})


def test_failures_in_the_same_second_keep_distinct_keys():
    first = {"issue": 7, "timestamp": "2026-01-05T10:00:00+00:00", "error": "bad signature"}
    second = {"issue": 7, "timestamp": "2026-01-05T10:00:00+00:00", "error": "no ADW trigger"}
    items = build_webhook_status({"recent_failures": [first, second, dict(first)]}).items
    assert len(items) == 2 and items["7@2026-01-05T10:00:00+00:00"] == first
    [(later_key, later)] = [(k, v) for k, v in items.items() if v == second]
    assert later_key.startswith("7@2026-01-05T10:00:00+00:00~")


def test_uptime_is_published_in_seconds_then_whole_minutes():
    assert [published_uptime(s) for s in (0, 59.9, 60, 119, 7384)] == [0, 59, 60, 60, 7380]


async def test_reader_reads_the_service(service, webhook_reader):
    reader = await webhook_reader(service.url)
    assert await reader.read() == ChannelData(EXPECTED_SUMMARY, EXPECTED_ITEMS)


async def test_refused_connection_is_unreachable(webhook_reader, closed_port):
    url = f"http://127.0.0.1:{closed_port}/webhook-status"
    reader = await webhook_reader(url)
    with pytest.raises(SourceDown) as down:
        await reader.read()
    assert str(down.value) == f"connection refused to {url}"
    assert down.value.data == ChannelData({"status": "unreachable"}, {})


async def test_credentials_never_reach_the_message(webhook_reader, closed_port):
    reader = await webhook_reader(f"http://ops:s3cret@127.0.0.1:{closed_port}/webhook-status")
    with pytest.raises(SourceDown, match=re.escape(f"connection refused to http://ops:***@127.0.0.1:{closed_port}/")):
        await reader.read()


async def test_server_error_and_non_json_are_unreachable(service, webhook_reader):
    reader = await webhook_reader(service.url)
    service.status = 500
    with pytest.raises(SourceDown, match=f"^HTTP 500 from {service.url}$"):
        await reader.read()
    service.status, service.text = 200, "<html>login</html>"
    with pytest.raises(SourceDown, match="^not JSON: .* sent '<html>login</html>'$") as down:
        await reader.read()
    assert down.value.data.summary == {"status": "unreachable"}


async def test_silent_service_times_out(webhook_reader, silent_url):
    reader = await webhook_reader(silent_url, timeout=0.25)  # the request gets 0.8 of it
    with pytest.raises(SourceDown, match=f"^timed out after 0.2 s waiting for {silent_url}$"):
        await reader.read()


def webhook_state(client):
    return client.app[BROKER].current("webhook-status")[2]


async def test_unreachable_while_down_then_recovers(make_client, service, aiohttp_server):
    client = await make_client({"sources": {"webhook_url": service.url}})
    await poll(client, "webhook-status")
    assert webhook_state(client)["summary"] == EXPECTED_SUMMARY
    port = service.server.port
    await service.server.close()
    await poll(client, "webhook-status")
    state = webhook_state(client)
    assert state["summary"] == {"status": "unreachable"} and state["items"] == {}
    assert state["meta"]["source"] == "error"
    assert state["meta"]["error"] == f"connection refused to {service.url}"
    await aiohttp_server(service.app(), port=port)
    await poll(client, "webhook-status")
    state = webhook_state(client)
    assert state["summary"] == EXPECTED_SUMMARY and state["items"] == EXPECTED_ITEMS
    assert state["meta"]["source"] == "ok" and "error" not in state["meta"]
