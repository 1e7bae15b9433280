"""The benchmarks' hooks and tracing still fit the console they measure (they reach into it)."""

import time

from benchmarks.hooks import add_bench_routes
from benchmarks.trace import add_tracing, stages
from monitor.app import create_app
from tests.support import ProtocolClient, connections, poll


async def bench_console(aiohttp_client, make_settings):
    """The console as ``benchmarks.server_entry`` builds it."""
    app = create_app(make_settings())
    add_bench_routes(app)
    add_tracing(app)
    return await aiohttp_client(app)


async def test_the_patch_hook_publishes_through_broker_and_hub(aiohttp_client, make_settings):
    client = await bench_console(aiohttp_client, make_settings)
    live = ProtocolClient(await client.ws_connect("/api/v1/ws/queue"))
    await live.receive()
    await connections(client, "queue", 1)
    answer = await (await client.post("/_bench/patch?channel=queue&marker=m-1&size=1024")).json()
    message = await live.receive()
    assert answer["n"] == 1 and answer["seq"] == message["seq"] == live.seq
    assert message["type"] == "patch" and message["patch"]["summary"]["bench"].startswith("m-1")


async def test_tracing_splits_a_change_into_read_and_publish(aiohttp_client, make_settings, queue_table):
    client = await bench_console(aiohttp_client, make_settings)
    before = time.monotonic()  # the server's clock too: the same process
    await poll(client)  # nothing changed: a read, and nothing published
    queue_table.insert(title="traced")
    await poll(client)
    events = await (await client.get(f"/_bench/trace?since={before}")).json()
    kinds = [event for _, event, channel in events if channel == "queue"]
    assert kinds == ["read_start", "read_end", "read_start", "read_end", "publish", "delivered"]
    split = stages(events, "queue", before)
    assert 0 <= split["publish"] <= split["delivered"]
