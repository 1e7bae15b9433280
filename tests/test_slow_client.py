"""A client that stops reading is cut off with 1013 without delaying anyone else."""

import asyncio

from monitor.keys import BROKER, HUB
from tests.support import ProtocolClient, RawWebSocket, connections, poll

BIG_TITLE = "x" * 20_000


async def test_stalled_reader_is_evicted_and_can_resume(make_client, queue_table):
    client = await make_client({"server": {"max_backlog_messages": 8, "max_backlog_bytes": 200_000}})
    healthy = [ProtocolClient(await client.ws_connect("/api/v1/ws/queue")) for _ in range(3)]
    for live in healthy:
        await live.receive()
    stalled = await RawWebSocket.connect(client.host, client.port, "/api/v1/ws/queue", rcvbuf=4096)
    await connections(client, "queue", 4)
    hub = client.app[HUB]
    for round_no in range(400):
        if hub.count("queue") == 3:
            break
        queue_table.insert(title=BIG_TITLE + str(round_no))
        await poll(client)
        seq = client.app[BROKER].current("queue").seq
        await asyncio.gather(*(live.until_seq(seq) for live in healthy))
    assert hub.count("queue") == 3, "the stalled client was never evicted"
    assert hub.evictions == {"slow": 1}

    final = client.app[BROKER].current("queue")
    for live in healthy:
        assert live.state == final.state

    messages, code = await stalled.read_until_close()
    await stalled.close()
    assert code == 1013
    last = messages[-1]
    epoch = messages[0]["epoch"]
    resumed = ProtocolClient(await client.ws_connect(f"/api/v1/ws/queue?epoch={epoch}&seq={last['seq']}"))
    resumed.epoch, resumed.seq = epoch, last["seq"]
    resumed.state = _replay(messages)
    await resumed.until_seq(final.seq)
    assert resumed.state == final.state


def _replay(messages):
    replayer = ProtocolClient(ws=None)
    for message in messages:
        replayer.apply(message)
    return replayer.state
