"""The hub on its own: who gets a frame, what is counted, how everyone is closed. Real sockets on loopback."""

import asyncio

import orjson
from aiohttp import WSMsgType

from monitor.keys import HUB
from tests.support import ProtocolClient, connections

PING = {"type": "ping"}


async def open_client(client, channel: str) -> ProtocolClient:
    """A client of ``channel`` past its snapshot."""
    live = ProtocolClient(await client.ws_connect(f"/api/v1/ws/{channel}"))
    await live.receive()
    return live


async def next_after_ping(live: ProtocolClient) -> dict:
    """The next message once a ping is sent: the pong, unless something was delivered before it."""
    await live.ws.send_str(orjson.dumps(PING).decode())
    return await live.receive()


async def test_a_frame_reaches_every_socket_of_its_channel_and_no_other(client):
    on_queue = [await open_client(client, "queue") for _ in range(2)]
    elsewhere = await open_client(client, "workflows")
    await connections(client, "queue", 2)
    await connections(client, "workflows", 1)
    frame = orjson.dumps({"type": "error", "error": "from the hub"})
    client.app[HUB].deliver("queue", frame)
    for live in on_queue:
        assert await live.receive() == {"type": "error", "error": "from the hub"}
    assert await next_after_ping(elsewhere) == {"type": "pong"}


async def test_deliveries_are_counted_per_channel(client):
    await open_client(client, "queue")
    await connections(client, "queue", 1)
    hub = client.app[HUB]
    sent, sent_bytes = hub.frames_sent["queue"], hub.bytes_sent["queue"]
    hub.deliver("queue", b'{"type":"pong"}')
    hub.deliver("workflows", b'{"type":"pong"}')  # nobody there: nothing counted
    assert hub.frames_sent["queue"] == sent + 1 and hub.bytes_sent["queue"] == sent_bytes + 15
    assert hub.frames_sent["workflows"] == 0


async def test_wait_until_wakes_on_registration_and_on_departure(client):
    hub = client.app[HUB]
    arrived = asyncio.ensure_future(hub.wait_until(lambda h: h.count("queue") == 1))
    live = await open_client(client, "queue")
    await arrived
    left = asyncio.ensure_future(hub.wait_until(lambda h: h.count() == 0))
    await live.ws.close()
    await left
    assert hub.count("queue") == 0


async def test_close_all_closes_every_socket_with_1001(client):
    clients = [await open_client(client, name) for name in ("queue", "routes", "routes")]
    await connections(client, "routes", 2)
    await client.app[HUB].close_all(deadline=5.0)
    for live in clients:
        message = await live.ws.receive(timeout=5.0)
        assert message.type is WSMsgType.CLOSE and message.data == 1001
        assert message.extra == "server shutting down"
