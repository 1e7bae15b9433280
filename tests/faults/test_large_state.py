"""A channel whose state outgrows the slow-client bound must still reach every client."""

from aiohttp import WSMsgType

from tests.support import poll

BOUND = 65536


async def test_snapshot_larger_than_the_backlog_bound_is_delivered(make_client, queue_table):
    client = await make_client({"server": {"max_backlog_bytes": BOUND}})
    for row in range(8):
        queue_table.insert(title="x" * (BOUND // 6) + str(row))
    await poll(client)
    ws = await client.ws_connect("/api/v1/ws/queue")
    message = await ws.receive(timeout=10)
    await ws.close()
    assert message.type is WSMsgType.TEXT, f"got {message.type!r} {message.data!r}"
