"""Honesty across failures: a restarted console, a silently dead link."""

import re

from aiohttp import web
from playwright.async_api import expect

from monitor.app import create_app
from monitor.channels.registry import CHANNEL_NAMES
from monitor.keys import BROKER
from tests.browser.support import SilentRelay, free_port

# While the console is down, Chromium itself logs each refused WebSocket attempt, and each
# refused fetch of a panel's trends (trend.js), as an error.
REFUSED_WHILE_DOWN = re.compile(r"console: WebSocket connection to "
                                r"'ws://127\.0\.0\.1:\d+/api/v1/ws/[a-z-]+(\?[^']*)?' failed"
                                r"|console: Failed to load resource: net::ERR_CONNECTION_REFUSED$")


async def start_console(settings) -> web.AppRunner:
    """Serve the console on ``settings.server.port`` the way ``monitor serve`` does."""
    runner = web.AppRunner(create_app(settings), shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, settings.server.host, settings.server.port).start()
    return runner


def queue_titles(watched):
    return watched.page.locator("#queue-active [data-rows] > [data-key] [data-field=title]")


async def test_restarted_console_brings_the_page_back_to_what_a_fresh_load_shows(make_settings, queue_table, open_page):
    settings = make_settings({"server": {"port": free_port()}})
    leaving = queue_table.insert(title="leaves while down", queue_position=1)
    changing = queue_table.insert(title="changes while down", queue_position=2)
    runner = await start_console(settings)
    url = f"http://127.0.0.1:{settings.server.port}/"
    watched = await open_page(url)
    await watched.expect_connection("queue", "live")
    await runner.cleanup()
    await watched.expect_connection("queue", "reconnecting")

    queue_table.delete(leaving)
    queue_table.update(changing, status="ready", priority=30)  # more urgent than the default 50
    queue_table.insert(title="arrives while down", queue_position=3)
    runner = await start_console(settings)
    try:
        for channel in CHANNEL_NAMES:
            view = runner.app[BROKER].current(channel)
            await expect(watched.panel(channel)).to_have_attribute("data-epoch", view.epoch, timeout=40_000)
            await expect(watched.panel(channel)).to_have_attribute("data-seq", str(view.seq))
            await watched.expect_connection(channel, "live")
        await expect(queue_titles(watched)).to_have_text(["changes while down", "arrives while down"])
        fresh = await open_page(url, javascript=False)
        assert await watched.contents() == await fresh.contents()
    finally:
        await runner.cleanup()
    assert [problem for problem in watched.problems if not REFUSED_WHILE_DOWN.match(problem)] == []
    assert fresh.problems == []


async def test_a_silently_dead_link_is_noticed_within_a_minute(client, open_page):
    relay = SilentRelay(client.port)
    await relay.start()
    try:
        watched = await open_page(f"http://127.0.0.1:{relay.port}/", before=lambda page: page.clock.install())
        await watched.expect_connection("queue", "live")
        relay.go_silent()
        await watched.page.clock.run_for(20_000)
        await watched.expect_connection("queue", "live")  # quiet is not dead: no ping is due yet
        await watched.page.clock.run_for(40_000)
        await watched.expect_connection("queue", "reconnecting")
        await expect(watched.panel("queue").locator("[data-ago]")).to_contain_text("updated 1 min ago")
        assert watched.problems == []
    finally:
        await relay.close()


async def test_a_dead_console_is_loud_within_a_heartbeat(make_settings, open_page):
    """Down longer than a heartbeat: a banner, every panel dimmed and greyed; after the retry budget, "offline"."""
    settings = make_settings({"server": {"port": free_port(), "heartbeat": 1.0}})
    runner = await start_console(settings)
    watched = await open_page(f"http://127.0.0.1:{settings.server.port}/", before=lambda page: page.clock.install())
    banner = watched.page.locator("[data-offline-banner]")
    for channel in CHANNEL_NAMES:
        await watched.expect_connection(channel, "live")
    await expect(banner).to_be_hidden()
    await runner.cleanup()
    await watched.expect_connection("queue", "reconnecting")
    await watched.page.clock.run_for(2_500)  # heartbeat + 1.5 s
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Connection to the console lost at")
    for channel in CHANNEL_NAMES:
        panel = watched.panel(channel)
        await expect(panel).to_have_attribute("data-stale", "")
        assert "grayscale(1)" in await panel.evaluate("element => getComputedStyle(element).filter")
    await watched.page.clock.run_for(60_000)
    await expect(banner).to_contain_text("Offline since")
    await expect(watched.panel("queue").locator("[data-connection]")).to_have_text("offline")
    assert [problem for problem in watched.problems if not REFUSED_WHILE_DOWN.match(problem)] == []


async def test_a_live_socket_to_a_failed_source_says_error_and_unknown(client, open_page):
    """The test settings point webhook-status at a closed port: live socket, failed source."""
    watched = await open_page(f"http://127.0.0.1:{client.port}/")
    await watched.expect_connection("queue", "live")
    await watched.expect_connection("webhook-status", "live")  # the socket is live ...
    pill = watched.panel("webhook-status").locator("[data-connection]")
    await expect(pill).to_have_text("error")  # ... but what it shows is the source's error
    await expect(pill).to_have_attribute("data-shown", "error")
    await expect(watched.panel("queue").locator("[data-connection]")).to_have_text("live")
    rows = watched.panel("webhook-status").locator(".rows").first
    assert await rows.evaluate("element => getComputedStyle(element, '::after').content") == '"unknown"'
    assert watched.problems == []
