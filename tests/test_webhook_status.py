"""The webhook-status channel against a real HTTP service on loopback."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from monitor.channels.base import ChannelData, SourceDown
from monitor.channels.webhook_status import (
    build_summary,
    build_webhook_status,
    make_reader,
    parse_rate,
    published_uptime,
    service_health,
)
from monitor.demo.webhook_service import DemoDeliveries, WebhookStats, start_webhook_service
from monitor.keys import BROKER
from tests.support import poll
from tests.webhook_standin import DEGRADED_DOCUMENT, FAILURES, LAST_SUCCESSFUL, start_standin

# From the stand-in's degraded document (tests/webhook_standin.py): the service's own rate
# "70.0%" = 7 / (7 + 3); dividing by total_received would give 7 / 12 = 58.3. Uptime 7384 s
# is published in whole minutes: 7384 - 7384 % 60 = 7380.
EXPECTED_SUMMARY = {"status": "degraded", "uptime_seconds": 7380, "total_received": 12, "successful": 7,
                    "failed": 3, "success_rate": 70.0, "last_successful": LAST_SUCCESSFUL}
EXPECTED_ITEMS = {f"{failure['issue']}@{failure['timestamp']}": failure for failure in FAILURES}


@pytest.fixture
async def service(aiohttp_server):
    return await start_standin(aiohttp_server)


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


def test_summary_and_items_from_the_real_document():
    assert build_webhook_status(DEGRADED_DOCUMENT) == ChannelData(EXPECTED_SUMMARY, EXPECTED_ITEMS)


def test_the_rate_as_the_service_sends_it():
    given = ("91.7%", " 91.7 % ", "0.0%", 91.66, 100, "n/a", "", "nan%", "250%", True, None)
    assert [parse_rate(v) for v in given] == [91.7, 91.7, 0.0, 91.7, 100.0, None, None, None, None, None, None]


def test_the_services_own_rate_wins_over_the_counts():
    stats = {"total_received": 12, "successful": 7, "failed": 3, "success_rate": "50.0%"}
    assert build_summary({"stats": stats})["success_rate"] == 50.0


def test_rate_computed_from_successful_and_failed_when_absent_or_garbage():
    # 2 / (2 + 1) = 66.7, though 5 were received: 2 deliveries ended neither way.
    for given in ({}, {"success_rate": "n/a"}, {"success_rate": [91.7]}):
        document = {"status": "degraded", "uptime": {"seconds": 42.9}, "recent_failures": [], "last_successful": None,
                    "stats": {"total_received": 5, "successful": 2, "failed": 1, **given}}
        assert build_webhook_status(document) == ChannelData(
            {"status": "degraded", "uptime_seconds": 42, "total_received": 5, "successful": 2, "failed": 1,
             "success_rate": 66.7}, {})


def test_no_rate_while_nothing_is_processed():
    # The real service sends "0.0%" then; 0 / (0 + 0) has no value, so the field is left out.
    for given in ({}, {"success_rate": "0.0%"}):
        stats = {"total_received": 4, "successful": 0, "failed": 0, **given}
        assert "success_rate" not in build_summary({"status": "healthy", "stats": stats})


def test_health_as_the_service_reports_it():
    assert service_health(DEGRADED_DOCUMENT) == (
        "degraded", "service reports degraded; success rate 70.0% (7 successful, 3 failed)")
    assert service_health({**DEGRADED_DOCUMENT, "stats": {}}) == ("degraded", "service reports degraded")
    assert service_health({**DEGRADED_DOCUMENT, "status": "healthy"}) == ("healthy", "service reports healthy")
    assert service_health({"status": "starting"}) == ("error", "service reports status 'starting'")
    assert service_health({"stats": {}}) == ("error", "no status in the service's answer")
    assert service_health(["healthy"]) == ("error", "expected a JSON object, got list")


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
    return client.app[BROKER].current("webhook-status").state


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


async def test_panel_defines_the_rate_and_shows_no_uptime_while_unreachable(client):
    await poll(client, "webhook-status")  # the test settings' webhook_url refuses connections
    page = await (await client.get("/webhook-status")).text()
    assert 'title="successful ÷ (successful + failed)' in page
    banner = page[page.index('<p class="banner service">'):]
    banner = banner[:banner.index("</p>")]
    assert ">unreachable<" in banner and " up" not in banner


async def test_reads_the_demo_service_as_the_real_one(webhook_reader):
    stats = WebhookStats()
    for n in range(7):
        stats.record_success(100 + n, "abcd1234", "adw_sdlc_iso")
    for n in range(6):
        stats.record_failure(200 + n, f"error {n}")
    stats.record_inconclusive()  # no workflow found in the issue: received, neither successful nor failed
    runner, port = await start_webhook_service(stats)
    try:
        data = await (await webhook_reader(f"http://127.0.0.1:{port}/webhook-status")).read()
    finally:
        await runner.cleanup()
    # 7 + 6 + 1 = 14 received; 7 / (7 + 6) = 53.8 % <= 80 with failures: degraded; the last 5 failures.
    assert {k: v for k, v in data.summary.items() if k not in ("uptime_seconds", "last_successful")} == {
        "status": "degraded", "total_received": 14, "successful": 7, "failed": 6, "success_rate": 53.8}
    assert sorted(item["error"] for item in data.items.values()) == [f"error {n}" for n in range(1, 6)]


def test_demo_deliveries_count_only_what_the_real_service_counts():
    stats = WebhookStats()
    deliveries, seen = DemoDeliveries(stats, random.Random(4)), set()
    for n in range(500):  # about the simulator's mix: four launches to one delivery that launches nothing
        for _ in range(4):
            deliveries.record_success(n, "abcd1234", "adw_sdlc_iso")
        deliveries.record_failure(n, "Duplicate delivery ignored")
        seen.add(stats.status()["status"])
    counts = stats.status()["stats"]
    assert seen == {"healthy", "degraded"}
    assert counts["successful"] + counts["failed"] < counts["total_received"] < 2500  # ended early; ignored
    assert all(failure["error"] != "Duplicate delivery ignored" for failure in stats.recent_failures)
