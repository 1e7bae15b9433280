"""HTTP JSON sources against real servers on loopback: a redirect is the source's error, never followed."""

import re

import pytest
from aiohttp import web

from monitor.channels.base import SourceDown
from monitor.channels.webhook_status import make_reader
from monitor.sources.httpjson import HttpSourceError, get_json


async def redirect_service(aiohttp_server, location: str | None, status: int = 302) -> str:
    """A stand-in service whose ``/webhook-status`` answers ``status`` pointing at ``location``; its URL."""

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={} if location is None else {"Location": location})

    app = web.Application()
    app.router.add_get("/webhook-status", redirect)
    return str((await aiohttp_server(app)).make_url("/webhook-status"))


async def test_a_webhook_service_redirecting_to_the_consoles_healthz_is_an_error_not_ok(
        client, open_sources, aiohttp_server):
    healthz = str(client.make_url("/healthz"))
    url = await redirect_service(aiohttp_server, healthz)
    reader = make_reader(await open_sources({"sources": {"webhook_url": url}}))
    expected = f"HTTP 302 redirect from {url} (Location '{healthz}'); redirects are not followed"
    with pytest.raises(SourceDown, match=f"^{re.escape(expected)}$"):
        await reader.read()


async def test_every_redirect_status_is_named_with_its_location(open_sources, aiohttp_server):
    http = (await open_sources({})).http
    for status in (301, 303, 307, 308):
        url = await redirect_service(aiohttp_server, "/elsewhere", status)
        with pytest.raises(HttpSourceError, match=rf"^HTTP {status} redirect from .* \(Location '/elsewhere'\)"):
            await get_json(http, url, 2.0)


async def test_a_redirect_names_no_password_and_may_have_no_location(open_sources, aiohttp_server):
    http = (await open_sources({})).http
    with pytest.raises(HttpSourceError, match=re.escape("(Location 'http://ops:***@127.0.0.1:9/x')")):
        await get_json(http, await redirect_service(aiohttp_server, "http://ops:hunter2@127.0.0.1:9/x"), 2.0)
    with pytest.raises(HttpSourceError, match=re.escape("(no Location)")):
        await get_json(http, await redirect_service(aiohttp_server, None), 2.0)
