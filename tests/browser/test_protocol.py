"""The page's side of the wire protocol: resume from the page, start over after a gap."""

import asyncio
import json
import re
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import expect

from monitor.keys import POLLERS

QUEUE_SOCKET = re.compile(r"/api/v1/ws/queue(\?|$)")


async def test_a_patch_out_of_sequence_makes_the_page_start_over_without_resume(client, queue_table, open_page):
    queue_table.insert(title="before the gap", queue_position=1)
    await client.app[POLLERS]["queue"].poll()
    sockets: asyncio.Queue = asyncio.Queue()

    def pass_through(route) -> None:
        route.connect_to_server()
        sockets.put_nowait(route)

    watched = await open_page(str(client.make_url("/")),
                              before=lambda page: page.route_web_socket(QUEUE_SOCKET, pass_through))
    panel = watched.panel("queue")
    epoch, seq = await panel.get_attribute("data-epoch"), await panel.get_attribute("data-seq")
    first = await asyncio.wait_for(sockets.get(), timeout=10)
    assert parse_qs(urlsplit(first.url).query) == {"epoch": [epoch], "seq": [seq]}  # resumes from the page
    await watched.expect_connection("queue", "live")

    gap = {"type": "patch", "channel": "queue", "epoch": epoch, "seq": int(seq) + 2,
           "patch": {"items": {"ghost": {"title": "never applied"}}}}
    first.send(json.dumps(gap))
    second = await asyncio.wait_for(sockets.get(), timeout=10)
    assert urlsplit(second.url).query == ""  # no resume: the server must send a snapshot
    await watched.expect_connection("queue", "live")
    queue_table.insert(title="after the gap", queue_position=2)
    await client.app[POLLERS]["queue"].poll()
    titles = watched.page.locator("#queue-active [data-rows] > [data-key] [data-field=title]")
    await expect(titles).to_have_text(["before the gap", "after the gap"])
    await expect(watched.page.locator('[data-key="ghost"]')).to_have_count(0)
    assert watched.problems == []


async def test_a_refused_socket_shows_offline_with_the_reason(client, open_page):
    served: list = []

    async def serve_once_then_refuse(route) -> None:
        if served:
            await route.close(code=1008, reason="authentication required")
        else:
            route.connect_to_server()
            served.append(route)

    watched = await open_page(str(client.make_url("/")),
                              before=lambda page: page.route_web_socket(QUEUE_SOCKET, serve_once_then_refuse))
    await watched.expect_connection("queue", "live")
    await served[0].close(code=1008, reason="authentication required")
    await watched.expect_connection("queue", "offline")
    await expect(watched.panel("queue").locator("[data-ago]")).to_contain_text("refused: authentication required")
    await watched.expect_connection("routes", "live")  # only the refused channel is affected
    assert watched.problems == []
