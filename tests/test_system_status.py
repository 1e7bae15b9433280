"""The system-status channel: real checks against real servers, sockets and processes on loopback."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest
from aiohttp import web

from monitor.broker import InProcessBroker
from monitor.channels.registry import CHANNEL_NAMES
from monitor.channels.system_status import SteadyLatency, build_system_status, make_reader, overall_status
from monitor.poller import Poller
from monitor.sources.checks import CheckResult
from tests.webhook_standin import HEALTHY_DOCUMENT, start_standin


@pytest.fixture
async def web_target(aiohttp_server):
    """An HTTP server with a healthy, a broken, a redirecting and a gated endpoint."""
    gate = asyncio.Event()

    async def ok(request):
        return web.json_response({"status": "healthy"})

    async def broken(request):
        return web.Response(status=500)

    async def redirect(request):
        raise web.HTTPFound("/ok")

    async def gated(request):
        await gate.wait()  # opened by another check's connection
        return web.Response(text="through")

    app = web.Application()
    for path, handler in (("/ok", ok), ("/broken", broken), ("/login", redirect), ("/gated", gated)):
        app.router.add_get(path, handler)
    server = await aiohttp_server(app)
    server.gate = gate
    return server


@pytest.fixture
async def listening_port():
    """A TCP server that accepts and hangs up."""

    async def hang_up(reader, writer):
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def worker_process():
    """A running process whose command line carries a unique marker; yields the marker."""
    marker = f"monitor-test-worker-{uuid.uuid4().hex[:8]}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.read()", marker, stdin=asyncio.subprocess.PIPE)
    yield marker
    process.stdin.close()
    await process.wait()


def without_latency(items):
    return {name: {k: v for k, v in item.items() if k != "latency_ms"} for name, item in items.items()}


def test_summary_and_items_from_results():
    results = [
        CheckResult("console", "console", "event loop", "healthy", 0.1, "serving"),
        CheckResult("database", "database", "sqlite:////db.sqlite", "healthy", 1.5, "reachable"),
        CheckResult("webhook", "http", "http://h/webhook-status", "degraded", 1500.0, "HTTP 200; slower than 1 s"),
        CheckResult("redis", "tcp", "127.0.0.1:6379", "error", 0.3, "connection refused to 127.0.0.1:6379"),
    ]
    data = build_system_status(results)
    assert data.summary == {"overall_status": "error", "healthy": 2, "total": 4, "health_percentage": 50.0}
    assert data.items["webhook"] == {"name": "webhook", "kind": "http", "status": "degraded", "latency_ms": 1500.0,
                                     "message": "HTTP 200; slower than 1 s", "target": "http://h/webhook-status"}
    assert list(data.items) == ["console", "database", "webhook", "redis"]


def test_overall_status_prefers_error_then_degraded():
    assert overall_status(["healthy", "healthy"]) == "healthy"
    assert overall_status(["healthy", "degraded"]) == "degraded"
    assert overall_status(["degraded", "error", "healthy"]) == "error"


def test_latency_is_republished_only_when_it_really_moves():
    steady = SteadyLatency(relative=0.25, absolute_ms=5.0)

    def shown(latency_ms, status="healthy"):
        return steady.publish(CheckResult("api", "http", "u", status, latency_ms, "HTTP 200")).latency_ms

    assert [shown(2.34), shown(4.0), shown(9.0)] == [2.3, 2.3, 9.0]
    assert [shown(100.0), shown(120.0), shown(130.0)] == [100.0, 100.0, 130.0]
    assert shown(131.0, "error") == 131.0  # a new status always carries its fresh latency


async def test_every_kind_of_check(open_sources, web_target, listening_port, closed_port, worker_process, db_path):
    ok_url, broken_url = str(web_target.make_url("/ok")), str(web_target.make_url("/broken"))
    ghost = f"monitor-test-ghost-{uuid.uuid4().hex[:8]}"
    checks = [
        {"name": "api", "kind": "http", "target": ok_url},
        {"name": "api-broken", "kind": "http", "target": broken_url},
        {"name": "login", "kind": "http", "target": str(web_target.make_url("/login"))},
        {"name": "postgres", "kind": "tcp", "target": f"127.0.0.1:{listening_port}"},
        {"name": "redis", "kind": "tcp", "target": f"127.0.0.1:{closed_port}"},
        {"name": "worker", "kind": "process", "target": worker_process},
        {"name": "ghost", "kind": "process", "target": ghost},
        {"name": "slow", "kind": "http", "target": ok_url, "degraded_after": 0.0},
    ]
    sources = await open_sources({"sources": {"webhook_url": ok_url}, "checks": checks})
    data = await make_reader(sources).read()
    assert data.summary == {"overall_status": "error", "healthy": 7, "total": 11, "health_percentage": 63.6}
    assert without_latency(data.items) == {
        "console": {"name": "console", "kind": "console", "status": "healthy", "message": "serving",
                    "target": "event loop"},
        "database": {"name": "database", "kind": "database", "status": "healthy", "message": "reachable",
                     "target": f"sqlite:///{db_path}"},
        "webhook": {"name": "webhook", "kind": "webhook", "status": "healthy", "message": "service reports healthy",
                    "target": ok_url},
        "api": {"name": "api", "kind": "http", "status": "healthy", "message": "HTTP 200", "target": ok_url},
        "api-broken": {"name": "api-broken", "kind": "http", "status": "error",
                       "message": f"HTTP 500 from {broken_url}", "target": broken_url},
        "login": {"name": "login", "kind": "http", "status": "healthy", "message": "HTTP 302",
                  "target": str(web_target.make_url("/login"))},
        "postgres": {"name": "postgres", "kind": "tcp", "status": "healthy", "message": "connected",
                     "target": f"127.0.0.1:{listening_port}"},
        "redis": {"name": "redis", "kind": "tcp", "status": "error",
                  "message": f"connection refused to 127.0.0.1:{closed_port}", "target": f"127.0.0.1:{closed_port}"},
        "worker": {"name": "worker", "kind": "process", "status": "healthy", "message": "1 process",
                   "target": worker_process},
        "ghost": {"name": "ghost", "kind": "process", "status": "error", "message": f"no process matches {ghost!r}",
                  "target": ghost},
        "slow": {"name": "slow", "kind": "http", "status": "degraded", "message": "HTTP 200; slower than 0 s",
                 "target": ok_url},
    }
    assert all(isinstance(item["latency_ms"], float) and item["latency_ms"] >= 0 for item in data.items.values())


async def test_hanging_check_times_out_while_the_others_complete(open_sources, web_target):
    """The gated endpoint answers only once the hanging server has a connection, so the two
    checks can only both finish if they run at the same time."""

    async def hold(reader, writer):
        web_target.gate.set()
        await reader.read()  # until the check gives up and hangs up
        writer.close()

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    silent_url = f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}/"
    checks = [{"name": "gated", "kind": "http", "target": str(web_target.make_url("/gated")), "degraded_after": 60.0},
              {"name": "hanging", "kind": "http", "target": silent_url, "timeout": 0.3}]
    try:
        sources = await open_sources({"sources": {"webhook_url": ""}, "checks": checks})
        data = await make_reader(sources).read()
    finally:
        silent.close()
        await silent.wait_closed()
    statuses = {name: (item["status"], item["message"]) for name, item in data.items.items()}
    assert statuses == {"console": ("healthy", "serving"), "database": ("healthy", "reachable"),
                        "gated": ("healthy", "HTTP 200"), "hanging": ("error", "timed out after 0.3 s")}


async def test_failing_checks_are_data_not_a_channel_error(open_sources, closed_port):
    sources = await open_sources({"sources": {"webhook_url": f"http://127.0.0.1:{closed_port}/webhook-status"}})
    broker = InProcessBroker(CHANNEL_NAMES, ring_size=8)
    await Poller("system-status", make_reader(sources), broker, timeout=2.0).poll()
    state = broker.current("system-status").state
    assert state["meta"]["source"] == "ok"
    assert state["summary"] == {"overall_status": "error", "healthy": 2, "total": 3, "health_percentage": 66.7}
    assert state["items"]["webhook"]["status"] == "error"
    assert state["items"]["webhook"]["message"] == f"connection refused to http://127.0.0.1:{closed_port}/webhook-status"


async def test_configured_check_replaces_the_builtin_of_that_name(open_sources, listening_port):
    check = {"name": "webhook", "kind": "tcp", "target": f"127.0.0.1:{listening_port}"}
    sources = await open_sources({"checks": [check]})
    data = await make_reader(sources).read()
    assert list(data.items) == ["console", "database", "webhook"]
    assert (data.items["webhook"]["kind"], data.items["webhook"]["status"]) == ("tcp", "healthy")


@pytest.fixture
async def standin(aiohttp_server):
    return await start_standin(aiohttp_server)


def statuses(data):
    return {name: (item["status"], item["message"]) for name, item in data.items.items()}


async def test_a_degraded_webhook_service_makes_the_system_degraded(open_sources, standin):
    # The stand-in's document: 7 successful, 3 failed, its rate "70.0%" = 7 / (7 + 3), status "degraded".
    data = await make_reader(await open_sources({"sources": {"webhook_url": standin.url}})).read()
    assert data.items["webhook"]["kind"] == "webhook" and data.items["webhook"]["target"] == standin.url
    assert statuses(data)["webhook"] == (
        "degraded", "service reports degraded; success rate 70.0% (7 successful, 3 failed)")
    # console and database healthy, webhook degraded: 2 of 3 = 66.7 %.
    assert data.summary == {"overall_status": "degraded", "healthy": 2, "total": 3, "health_percentage": 66.7}


async def test_the_service_status_decides_not_the_http_code(open_sources, standin):
    reader = make_reader(await open_sources({"sources": {"webhook_url": standin.url}}))
    standin.document = HEALTHY_DOCUMENT  # 22 / (22 + 3) = 88.0 %: the service says healthy
    assert statuses(await reader.read())["webhook"] == ("healthy", "service reports healthy")
    standin.document = {**HEALTHY_DOCUMENT, "status": "unhealthy"}
    assert statuses(await reader.read())["webhook"] == ("error", "service reports status 'unhealthy'")
    standin.text = "<html>sign in</html>"
    assert statuses(await reader.read())["webhook"] == (
        "error", f"not JSON: {standin.url} sent '<html>sign in</html>'")
    standin.status = 503
    assert statuses(await reader.read())["webhook"] == ("error", f"HTTP 503 from {standin.url}")


async def test_an_unreachable_webhook_service_is_an_error(open_sources, closed_port):
    url = f"http://127.0.0.1:{closed_port}/webhook-status"
    data = await make_reader(await open_sources({"sources": {"webhook_url": url}})).read()
    assert statuses(data)["webhook"] == ("error", f"connection refused to {url}")
    assert data.summary["overall_status"] == "error"


async def test_the_backend_check_reads_its_health_endpoint(open_sources, standin):
    sources = await open_sources({"sources": {"webhook_url": "", "backend_url": standin.base_url + "/"}})
    reader, health_url = make_reader(sources), f"{standin.base_url}/api/v1/health"
    data = await reader.read()
    assert list(data.items) == ["console", "database", "backend"]
    assert (data.items["backend"]["kind"], data.items["backend"]["target"]) == ("backend", health_url)
    assert statuses(data)["backend"] == ("healthy", "HTTP 200")
    standin.health_status = 503
    data = await reader.read()
    assert statuses(data)["backend"] == ("error", f"HTTP 503 from {health_url}")
    assert data.summary["overall_status"] == "error"


async def test_an_unreachable_backend_is_an_error(open_sources, closed_port):
    base = f"http://127.0.0.1:{closed_port}"
    data = await make_reader(await open_sources({"sources": {"webhook_url": "", "backend_url": base}})).read()
    assert statuses(data)["backend"] == ("error", f"connection refused to {base}/api/v1/health")
