"""The routes channel: an OpenAPI document served over real HTTP, or the console's own routes."""

from __future__ import annotations

import pytest
from aiohttp import web

from monitor.broker import InProcessBroker
from monitor.channels.base import ChannelData
from monitor.channels.registry import CHANNEL_NAMES
from monitor.channels.routes import build_routes, make_reader, openapi_records
from monitor.poller import Poller
from monitor.sources.httpjson import HttpSourceError
from monitor.urls import list_routes
from tests.support import poll

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Natural Language SQL Interface", "version": "1.0.0"},
    "paths": {
        "/api/v1/health": {"get": {"summary": "Health", "operationId": "health_api_v1_health_get", "tags": ["system"],
                                   "description": "  Answers while the backend serves requests.\n\n  No checks.  "}},
        "/gh-webhook": {
            "parameters": [{"name": "X-Hub-Signature", "in": "header"}],
            "post": {"summary": "Receive a GitHub webhook delivery", "operationId": "receive_webhook",
                     "tags": ["webhook"]},
        },
        "/items/{id}": {
            "summary": "One item",
            "description": "Items by id.",
            "get": {"operationId": "get_item"},
            "delete": {"summary": "Remove an item", "operationId": "delete_item", "tags": ["items", "admin"],
                       "description": "Removes the item for good."},
        },
    },
}
EXPECTED = ChannelData(
    {"total": 4, "by_method": {"GET": 2, "POST": 1, "DELETE": 1}},
    {
        "GET /api/v1/health": {"method": "GET", "path": "/api/v1/health", "name": "health_api_v1_health_get",
                               "summary": "Health", "tags": ["system"],
                               "description": "Answers while the backend serves requests.\n\n  No checks."},
        "POST /gh-webhook": {"method": "POST", "path": "/gh-webhook", "name": "receive_webhook",
                             "summary": "Receive a GitHub webhook delivery", "tags": ["webhook"]},
        "GET /items/{id}": {"method": "GET", "path": "/items/{id}", "name": "get_item", "summary": "One item",
                            "description": "Items by id.", "tags": []},
        "DELETE /items/{id}": {"method": "DELETE", "path": "/items/{id}", "name": "delete_item",
                               "summary": "Remove an item", "description": "Removes the item for good.",
                               "tags": ["items", "admin"]},
    },
)


class OpenApiService:
    """Serves whatever document (and status) the test sets."""

    def __init__(self) -> None:
        self.document: object = OPENAPI
        self.status = 200

    async def handle(self, request: web.Request) -> web.Response:
        return web.json_response(self.document, status=self.status)


@pytest.fixture
async def openapi_service(aiohttp_server):
    service = OpenApiService()
    app = web.Application()
    app.router.add_get("/openapi.json", service.handle)
    service.url = str((await aiohttp_server(app)).make_url("/openapi.json"))
    return service


def test_items_and_summary_from_openapi_document():
    assert build_routes(openapi_records(OPENAPI)) == EXPECTED


def test_a_document_without_paths_is_refused():
    with pytest.raises(ValueError, match="no paths object"):
        openapi_records({"openapi": "3.1.0"})


async def test_reads_the_document_and_skips_it_while_unchanged(open_sources, openapi_service):
    reader = make_reader(await open_sources({"sources": {"openapi_url": openapi_service.url}}))
    assert await reader.read() == EXPECTED
    assert await reader.read() is None
    paths = {**OPENAPI["paths"], "/metrics": {"get": {"operationId": "metrics"}}}
    openapi_service.document = {**OPENAPI, "paths": paths}
    data = await reader.read()
    assert data.summary == {"total": 5, "by_method": {"GET": 3, "POST": 1, "DELETE": 1}}
    assert data.items["GET /metrics"] == {"method": "GET", "path": "/metrics", "name": "metrics", "tags": []}


async def test_failures_name_the_url(open_sources, openapi_service):
    reader = make_reader(await open_sources({"sources": {"openapi_url": openapi_service.url}}))
    openapi_service.status = 500
    with pytest.raises(HttpSourceError, match=f"^HTTP 500 from {openapi_service.url}$"):
        await reader.read()
    openapi_service.status, openapi_service.document = 200, {"swagger": "broken"}
    with pytest.raises(ValueError, match=f"^{openapi_service.url}: not an OpenAPI document"):
        await reader.read()


async def test_an_unreadable_document_keeps_the_last_routes_with_an_error(open_sources, openapi_service):
    sources = await open_sources({"sources": {"openapi_url": openapi_service.url}})
    broker = InProcessBroker(CHANNEL_NAMES, ring_size=8)
    poller = Poller("routes", make_reader(sources), broker, timeout=2.0)
    await poller.poll()
    openapi_service.status = 503
    await poller.poll()
    state = broker.current("routes").state
    assert state["meta"]["source"] == "error" and state["meta"]["error"] == f"HTTP 503 from {openapi_service.url}"
    assert state["summary"] == EXPECTED.summary and state["items"] == EXPECTED.items


async def test_own_routes_without_the_automatic_head_routes(open_sources):
    async def home(request):
        return web.Response()

    async def create_item(request):
        return web.Response()

    async def show_item(request):
        return web.Response()

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_post("/api/v1/items", create_item)
    app.router.add_get("/api/v1/items/{id}", show_item)
    reader = make_reader(await open_sources({}, own_routes=lambda: list_routes(app)))
    assert await reader.read() == ChannelData(
        {"total": 3, "by_method": {"GET": 2, "POST": 1}},
        {
            "GET /": {"method": "GET", "path": "/", "name": "home", "tags": []},
            "POST /api/v1/items": {"method": "POST", "path": "/api/v1/items", "name": "create_item", "tags": []},
            "GET /api/v1/items/{id}": {"method": "GET", "path": "/api/v1/items/{id}", "name": "show_item",
                                       "tags": []},
        },
    )
    assert await reader.read() is None


async def test_the_panel_shows_descriptions(make_client, openapi_service):
    client = await make_client({"sources": {"openapi_url": openapi_service.url}})
    await poll(client, "routes")
    page = await (await client.get("/routes")).text()
    assert ('<span class="detail" data-field="description" data-clip title="Removes the item for good.">'
            'Removes the item for good.</span>') in page
