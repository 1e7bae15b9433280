"""One client's frames against everyone else: a token bucket per connection, and a receive loop that yields."""

import asyncio
import json
import socket

from aiohttp import WSMsgType
from structlog.testing import capture_logs

from monitor.ratelimit import AddressRates, TokenBucket
from tests.faults.hostile import PING, Frame
from tests.support import ProtocolClient, RawWebSocket, connections, poll

# A burst of 5 and one frame back every 10 s: a test's flood stays over the budget however slowly it runs.
FLOOD_LIMITS = {"server": {"client_messages_per_second": 0.1, "client_message_burst": 5}}
PONG_BYTES = 3  # a pong echoing a one-byte ping: two header bytes and the byte


async def open_live(client) -> ProtocolClient:
    """A socket on the queue channel that has taken its snapshot."""
    live = ProtocolClient(await client.ws_connect("/api/v1/ws/queue"))
    assert (await live.receive())["type"] == "snapshot"
    return live


async def until_closed(ws) -> tuple[list[dict], object]:
    """Every text message up to the close, and the close message."""
    replies = []
    while (message := await ws.receive(timeout=10)).type is WSMsgType.TEXT:
        replies.append(json.loads(message.data))
    return replies, message


async def test_the_budget_allows_a_burst_then_the_sustained_rate():
    budget = TokenBucket(per_second=10.0, burst=20, now=0.0)
    assert [budget.take(0.0) for _ in range(21)] == [True] * 20 + [False]
    assert [budget.take(0.1), budget.take(0.1)] == [True, False]  # a tenth of a second earns one frame
    assert [budget.take(100.0) for _ in range(21)] == [True] * 20 + [False]  # idle time saves no more than the burst


async def test_a_flooding_client_gets_one_error_then_1008_and_a_quiet_one_keeps_its_patches(make_client, queue_table):
    client = await make_client(FLOOD_LIMITS)
    quiet, flooder = await open_live(client), await open_live(client)
    with capture_logs() as events:
        for _ in range(50):
            await flooder.ws.send_str('{"type":"ping"}')
        replies, close = await until_closed(flooder.ws)
        await connections(client, "queue", 1)
    assert {reply["type"] for reply in replies[:-1]} == {"pong"} and len(replies) > 5
    assert replies[-1]["type"] == "error" and "rate" in replies[-1]["error"]
    assert (close.type, close.data, close.extra) == (WSMsgType.CLOSE, 1008, "too many client messages")
    assert [(e["channel"], e["peer"]) for e in events if e["event"] == "ws_rate_limited"] == [("queue", "127.0.0.1")]
    queue_table.insert(title="still live")
    await poll(client)
    assert (await quiet.receive())["type"] == "patch"
    metrics = await (await client.get("/metrics")).text()
    assert 'monitor_ws_evictions_total{reason="rate_limited"} 1.0' in metrics


async def test_a_quiet_client_pinging_within_its_budget_stays_open(make_client):
    client = await make_client(FLOOD_LIMITS)
    live = await open_live(client)
    for _ in range(5):
        await live.ws.send_str('{"type":"ping"}')
        assert await live.receive() == {"type": "pong"}
    assert not live.ws.closed


def take_waiting_bytes(sock: socket.socket) -> int:
    """Read whatever the kernel holds for ``sock`` without waiting; how many bytes that was."""
    taken = 0
    while True:
        try:
            chunk = sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return taken
        if not chunk:
            return taken
        taken += len(chunk)


async def answered_per_turn(raw: RawWebSocket, pings: int) -> list[int]:
    """Send ``pings`` protocol pings in one write; the pongs that arrived in each turn of the event loop."""
    loop, done, arrived = asyncio.get_running_loop(), asyncio.get_running_loop().create_future(), []
    raw.writer.transport.pause_reading()  # the probe reads the socket itself, once per turn

    def turn() -> None:
        arrived.append(take_waiting_bytes(raw.sock))
        if sum(arrived) >= pings * PONG_BYTES:
            done.set_result(None)
        else:
            loop.call_soon(turn)

    raw.writer.write(Frame(PING, b"x").encode() * pings)  # the server reads them all at once
    loop.call_soon(turn)
    await asyncio.wait_for(done, timeout=30)
    return [size // PONG_BYTES for size in arrived]


async def test_a_burst_of_pings_is_answered_a_few_per_turn_of_the_event_loop(client):
    """Answering a client's pings back to back would hold the loop: polls and other sockets wait meanwhile."""
    raw = await RawWebSocket.connect(client.host, client.port, "/api/v1/ws/queue")
    await raw.read_frame()  # the snapshot
    assert max(await answered_per_turn(raw, 1000)) <= 50
    await raw.close()


def test_new_connections_per_address_have_their_own_budget_and_memory_stays_bounded():
    rates = AddressRates(per_second=2.0, burst=3)
    assert [rates.take("10.0.0.1", 0.0) for _ in range(4)] == [True, True, True, False]
    assert rates.take("10.0.0.2", 0.0) and rates.take("10.0.0.1", 0.5)  # half a second: one token back
    for n in range(5000):
        rates.take(f"addr-{n}", 100.0 + n)
    assert len(rates) <= 4096
