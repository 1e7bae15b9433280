"""The live hub over real sockets: heartbeats, resume, slow clients, bad input."""

import asyncio
import json

from aiohttp import WSMsgType

from monitor.keys import BROKER, HUB
from tests.support import ProtocolClient, RawWebSocket, connections, poll


async def open_client(client, channel="queue", query=""):
    ws = await client.ws_connect(f"/api/v1/ws/{channel}{query}", autoping=False)
    live = ProtocolClient(ws)
    return live


async def test_silent_client_stays_connected_and_gets_every_patch(make_client, queue_table):
    """The seed's bug: a client that never sends a message must stay live across heartbeats."""
    client = await make_client({"server": {"heartbeat": 0.2}})
    live = await open_client(client)
    await live.receive()
    pings = 0
    for round_no in range(6):
        queue_table.insert(title=f"row {round_no}")
        await poll(client)
        want = live.seq + 1
        while live.seq < want or pings <= round_no:
            msg = await live.ws.receive(timeout=5)
            if msg.type is WSMsgType.PING:
                pings += 1
                await live.ws.pong(msg.data)  # what a browser does by itself; no app message is sent
            else:
                live.apply(json.loads(msg.data))
    assert pings >= 5 and not live.ws.closed
    assert client.app[HUB].count("queue") == 1
    assert live.state == client.app[BROKER].current("queue").state
    assert len(live.state["items"]) == 6


async def test_peer_that_never_answers_pings_is_dropped(make_client):
    client = await make_client({"server": {"heartbeat": 0.2}})
    raw = await RawWebSocket.connect(client.host, client.port, "/api/v1/ws/queue")
    await connections(client, "queue", 1)
    # heartbeat * 1.5 = 0.3 s; the bound below is only a guard against hanging.
    await asyncio.wait_for(connections(client, "queue", 0), timeout=5)
    await raw.close()


async def test_resume_sends_exactly_the_missed_patches(client, queue_table):
    live = await open_client(client)
    await live.receive()
    epoch, seq = live.epoch, live.seq
    await live.ws.close()
    ids = [queue_table.insert(title=f"missed {i}") for i in range(3)]
    await poll(client)
    queue_table.update(ids[0], status="running")
    await poll(client)
    back = await open_client(client, query=f"?epoch={epoch}&seq={seq}")
    back.epoch, back.seq, back.state = epoch, seq, live.state
    first = await back.receive()
    second = await back.receive()
    assert [first["type"], second["type"]] == ["patch", "patch"]
    assert back.state == client.app[BROKER].current("queue").state
    assert back.state["items"][ids[0]]["status"] == "running"


async def test_resume_when_nothing_was_missed_sends_nothing_until_the_next_change(client, queue_table):
    live = await open_client(client)
    await live.receive()
    await live.ws.close()
    back = await open_client(client, query=f"?epoch={live.epoch}&seq={live.seq}")
    back.epoch, back.seq, back.state = live.epoch, live.seq, live.state
    queue_table.insert()
    await poll(client)
    message = await back.receive()
    assert message["type"] == "patch" and message["seq"] == live.seq + 1


async def test_foreign_epoch_gets_a_snapshot(client):
    live = await open_client(client, query="?epoch=deadbeef&seq=3")
    message = await live.receive()
    assert message["type"] == "snapshot" and message["epoch"] != "deadbeef"


async def test_evicted_seq_gets_a_snapshot(make_client, queue_table):
    client = await make_client({"server": {"ring_size": 2}})
    live = await open_client(client)
    await live.receive()
    await live.ws.close()
    for i in range(4):
        queue_table.insert(title=f"r{i}")
        await poll(client)
    back = await open_client(client, query=f"?epoch={live.epoch}&seq={live.seq}")
    message = await back.receive()
    assert message["type"] == "snapshot" and len(message["data"]["items"]) == 4


async def test_malformed_resume_parameters_get_a_snapshot(client):
    for query in ("?epoch=&seq=", "?epoch=ZZZ&seq=1", "?epoch=abc&seq=-1", "?seq=5", "?epoch=abc&seq=1e9"):
        live = await open_client(client, query=query)
        assert (await live.receive())["type"] == "snapshot", query
        await live.ws.close()


async def test_patches_reach_only_their_own_channel(client, queue_table):
    queue = await open_client(client, "queue")
    other = await open_client(client, "workflows")
    await queue.receive()
    await other.receive()
    queue_table.insert()
    await poll(client)
    await queue.receive()
    # Had the patch leaked to the other channel, it would arrive before this pong.
    await other.ws.send_str('{"type":"ping"}')
    assert (await other.receive())["type"] == "pong"


async def test_ping_gets_pong_and_garbage_gets_errors_without_closing(client):
    live = await open_client(client)
    await live.receive()
    await live.ws.send_str('{"type":"ping"}')
    assert await live.receive() == {"type": "pong"}
    for junk in ("not json", "[1,2]", '{"type":"subscribe"}', '"ping"'):
        await live.ws.send_str(junk)
        reply = await live.receive()
        assert reply["type"] == "error" and reply["error"], junk
    await live.ws.send_bytes(b"\x00\xff binary")
    assert (await live.receive())["type"] == "error"
    assert not live.ws.closed and client.app[HUB].count("queue") == 1


async def test_oversize_frame_closes_with_1009(client):
    live = await open_client(client)
    await live.receive()
    await live.ws.send_str("x" * 5000)
    msg = await live.ws.receive(timeout=5)
    assert msg.type is WSMsgType.CLOSE and msg.data == 1009


async def test_unknown_channel_is_404(client):
    response = await client.get("/api/v1/ws/nope", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert response.status == 404
    assert (await client.get("/api/v1/nope")).status == 404
