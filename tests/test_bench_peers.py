"""The benchmarks' peer servers answer the hooks the phases drive, and the console's CPU hook counts its trace apart."""

import asyncio
import json

import aiohttp
import pytest
from websockets.asyncio import server as websockets_server

from benchmarks.hooks import add_bench_routes
from benchmarks.peers import aiohttp_peer, common, websockets_peer
from benchmarks.trace import add_tracing
from benchmarks.workspace import create_workspace
from monitor.app import create_app


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> str:
    """The peers' first frame, from a generated workspace."""
    return common.queue_snapshot(create_workspace(tmp_path_factory.mktemp("peers")).db_path)


async def _hooked(http, control_url: str, ws, hook: str, marker: str) -> tuple[dict, dict]:
    async with http.post(f"{control_url}/_bench/{hook}", params={"marker": marker, "size": 1024}) as resp:
        timing = await resp.json()
    return timing, json.loads((await ws.receive(timeout=5)).data)


def test_the_snapshot_is_the_queue_in_json(snapshot):
    message = json.loads(snapshot)
    assert message["type"] == "snapshot" and message["channel"] == "queue" and len(message["data"]["items"]) == 500
    assert len(snapshot) > 300_000  # comparable to the console's ~410 KB


async def test_the_aiohttp_peer_sends_snapshot_patch_and_floor(aiohttp_client, snapshot):
    client = await aiohttp_client(aiohttp_peer.make_app(snapshot, 30.0))
    ws = await client.ws_connect("/api/v1/ws/queue")
    assert json.loads((await ws.receive(timeout=5)).data)["type"] == "snapshot"
    url = str(client.make_url("")).rstrip("/")
    timing, patch = await _hooked(client.session, url, ws, "patch", "m-patch")
    assert timing["n"] == 1 and timing["t0"] <= timing["t1"]
    assert patch["type"] == "patch" and patch["patch"]["summary"]["bench"].startswith("m-patch")
    timing, frame = await _hooked(client.session, url, ws, "floor", "m-floor")
    assert timing["n"] == 1 and frame["pad"].startswith("m-floor")
    await ws.close()


async def test_the_websockets_peer_broadcasts_through_its_control_port(aiohttp_client, snapshot):
    handler = websockets_peer.make_handler(snapshot)
    async with websockets_server.serve(handler, "127.0.0.1", 0, ping_interval=30) as server:
        control = await aiohttp_client(websockets_peer.control_app(server))
        port = next(iter(server.sockets)).getsockname()[1]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{port}/api/v1/ws/queue") as ws:
            assert json.loads((await ws.receive(timeout=5)).data)["type"] == "snapshot"
            await asyncio.sleep(0.05)  # the connection counts as open once its handler runs
            url = str(control.make_url("")).rstrip("/")
            timing, patch = await _hooked(http, url, ws, "patch", "m-ws")
            assert timing["n"] == 1 and patch["patch"]["summary"]["bench"].startswith("m-ws")
            timing, frame = await _hooked(http, url, ws, "floor", "m-wsf")
            assert timing["n"] == 1 and frame["pad"].startswith("m-wsf")


async def test_the_console_cpu_hook_counts_the_trace_apart(aiohttp_client, make_settings):
    app = create_app(make_settings())
    add_bench_routes(app)
    add_tracing(app)
    client = await aiohttp_client(app)
    before = await (await client.get("/_bench/cpu")).json()
    await (await client.get("/_bench/trace?since=0")).json()
    after = await (await client.get("/_bench/cpu")).json()
    assert after["cpu"] >= before["cpu"] and after["hooks_cpu"] > before["hooks_cpu"] >= 0
