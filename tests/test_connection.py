"""One connection on its own: writing at once, backing up, eviction, refusal, a vanished peer.

Real sockets on loopback; the server-side ``Connection`` is reached through the hub once the
client is registered, and frames are offered to it directly, as the hub's fan-out does.
"""

import asyncio
import struct

import orjson
from aiohttp import WSMsgType

from monitor import protocol
from monitor.connection import Connection, text_frame
from monitor.keys import HUB
from tests.support import ProtocolClient, RawWebSocket, connections

QUEUE_WS = "/api/v1/ws/queue"
SMALL_BACKLOG = {"server": {"max_backlog_messages": 4, "max_backlog_bytes": 100_000}}
BOUND = 10.0  # a guard against hanging, never a measurement
MOST_OFFERS = 2_000  # 40 MB of 20 KB frames: far more than any kernel buffers for a peer that stopped reading


def error(text: str) -> bytes:
    """A wire message (an ``error``) carrying ``text``."""
    return protocol.error_frame(text)


def big(index: int) -> bytes:
    """A 20 KB message that says which one it is."""
    return error(f"{index:06d}" + "x" * 20_000)


async def server_side(client) -> Connection:
    """The one queue connection, as the server holds it."""
    await connections(client, "queue", 1)
    (connection,) = client.app[HUB].connections("queue")
    return connection


async def open_client(client) -> tuple[ProtocolClient, Connection]:
    """A queue client past its snapshot, and its server-side connection."""
    live = ProtocolClient(await client.ws_connect(QUEUE_WS))
    await live.receive()
    return live, await server_side(client)


async def open_stalled(client) -> tuple[RawWebSocket, Connection]:
    """A queue peer with a tiny receive buffer that reads nothing until told, and its connection."""
    raw = await RawWebSocket.connect(client.host, client.port, QUEUE_WS, rcvbuf=4096)
    return raw, await server_side(client)


async def next_after_ping(live: ProtocolClient) -> dict:
    """The next message once a ping is sent: the pong, unless something was written before it."""
    await live.ws.send_str('{"type":"ping"}')
    return await live.receive()


def offer_until_backlogged(connection: Connection) -> list[bytes]:
    """Offer big frames, without yielding, until one has to wait in the backlog; the frames offered."""
    offered = []
    for index in range(MOST_OFFERS):
        offered.append(big(index))
        connection.offer(offered[-1])
        if connection.backlog_size:
            return offered
    raise AssertionError(f"{MOST_OFFERS} frames of 20 KB never backed up")


async def text_until_close(raw: RawWebSocket) -> tuple[list[bytes], bytes]:
    """The text payloads a raw peer reads up to the close frame, and the close frame's payload."""
    texts = []
    async with asyncio.timeout(BOUND):
        while True:
            opcode, payload = await raw.read_frame()
            if opcode == 0x8:
                return texts, payload
            if opcode == 0x1:
                texts.append(payload)


def close_payload(close: protocol.Close) -> bytes:
    return struct.pack("!H", close.code) + close.reason


async def test_a_frame_for_a_client_that_keeps_up_is_written_at_once(client):
    live, connection = await open_client(client)
    sent, sent_bytes = connection.messages_sent, connection.bytes_sent
    frame = error("direct")
    connection.offer(frame)
    assert (connection.messages_sent, connection.bytes_sent) == (sent + 1, sent_bytes + len(frame))
    assert connection.backlog_size == 0
    assert await live.receive() == {"type": "error", "error": "direct"}
    assert await next_after_ping(live) == {"type": "pong"}  # exactly that frame, nothing more


async def test_frames_of_every_header_size_arrive_intact_with_or_without_a_prebuilt_wire(client):
    live, connection = await open_client(client)
    # 125/126 bytes cross the header's length forms, 20 KB is written after its header, 65 KB goes
    # through aiohttp's writer (it can never fit under the transport's high-water mark at once).
    payloads = [("x" * size).encode() for size in (1, 125, 126, 20_000, 65_536)]
    for payload in payloads:
        connection.offer(payload)
        connection.offer(payload, text_frame(payload))
    for payload in payloads:
        for _ in range(2):
            message = await live.ws.receive(timeout=BOUND)
            assert message.type is WSMsgType.TEXT and message.data == payload.decode()
    assert await next_after_ping(live) == {"type": "pong"}  # each exactly once


async def test_an_offer_after_eviction_writes_nothing(client):
    live, connection = await open_client(client)
    hub = client.app[HUB]
    connection.evict(protocol.TOO_SLOW, "slow")
    assert connection.close_reason == "slow"
    assert hub.evictions == {"slow": 1} and hub.count("queue") == 0
    sent = connection.messages_sent
    connection.offer(error("too late"))
    connection.offer(error("too late"), text_frame(error("too late")))
    assert connection.messages_sent == sent
    message = await live.ws.receive(timeout=BOUND)  # the close, with no frame before it
    assert message.type is WSMsgType.CLOSE and message.data == 1013
    assert message.extra == protocol.TOO_SLOW.reason.decode()


async def test_an_offer_after_the_client_closed_writes_nothing(client):
    live, connection = await open_client(client)
    await live.ws.close()
    await connections(client, "queue", 0)
    assert connection.ws.closed
    sent, sent_bytes = connection.messages_sent, connection.bytes_sent
    connection.offer(error("nobody there"))
    connection.offer(error("nobody there"), text_frame(error("nobody there")))
    assert (connection.messages_sent, connection.bytes_sent) == (sent, sent_bytes)
    assert connection.backlog_size == 0


async def test_a_peer_that_stops_reading_gets_a_backlog_that_drains_in_order_once_it_reads(make_client):
    client = await make_client(SMALL_BACKLOG)
    raw, connection = await open_stalled(client)
    offered = offer_until_backlogged(connection)
    offered += [big(len(offered)), big(len(offered) + 1)]  # three waiting: under the bound of 4
    for frame in offered[-2:]:
        connection.offer(frame)
    assert connection.backlog_size == 3 and connection.close_reason == ""
    received = []
    async with asyncio.timeout(BOUND):
        while len(received) < 1 + len(offered):  # the snapshot, then every frame offered
            opcode, payload = await raw.read_frame()
            if opcode == 0x1:
                received.append(payload)
    assert received[1:] == offered
    assert connection.backlog_size == 0 and connection.close_reason == ""
    assert client.app[HUB].evictions == {}
    await raw.close()


async def test_a_peer_that_stops_reading_is_cut_off_with_1013_past_the_backlog_bound(make_client):
    client = await make_client(SMALL_BACKLOG)
    hub = client.app[HUB]
    raw, connection = await open_stalled(client)
    offered = offer_until_backlogged(connection)  # one waiting: it starts the drain
    written = offered[:-1]
    for size in (2, 3, 4):  # up to the bound: still served
        offered.append(big(len(offered)))
        connection.offer(offered[-1])
        assert connection.backlog_size == size and connection.close_reason == ""
    connection.offer(big(len(offered)))  # one past the bound
    assert connection.close_reason == "slow" and connection.backlog_size == 0
    assert hub.evictions == {"slow": 1} and hub.count("queue") == 0
    texts, close = await text_until_close(raw)
    assert close == close_payload(protocol.TOO_SLOW)
    assert close[2:] == b"too slow: resume with epoch and seq"
    # What was written before the backlog arrives, in order; nothing from the dropped backlog does.
    assert texts[1:] == written
    await raw.close()


async def test_refuse_sends_the_last_frame_then_closes_1008(client):
    live, connection = await open_client(client)
    last = protocol.rate_error(5, 10)
    connection.refuse(protocol.RATE_LIMITED, "flooded", last)
    assert connection.close_reason == "flooded"
    assert client.app[HUB].evictions == {}  # the caller counts a refusal, not the connection
    connection.offer(error("after the refusal"))
    assert orjson.dumps(await live.receive()) == last
    message = await live.ws.receive(timeout=BOUND)
    assert message.type is WSMsgType.CLOSE and message.data == 1008
    assert message.extra == protocol.RATE_LIMITED.reason.decode()


async def test_offers_to_a_killed_peer_are_harmless(client):
    raw, connection = await open_stalled(client)
    raw.kill()
    connection.offer(error("into the reset"))  # whether or not the server saw the reset yet
    await connections(client, "queue", 0)  # the receive loop ended: the server saw it
    sent, sent_bytes = connection.messages_sent, connection.bytes_sent
    connection.offer(error("long gone"))
    connection.offer(error("long gone"), text_frame(error("long gone")))
    assert (connection.messages_sent, connection.bytes_sent) == (sent, sent_bytes)
    assert connection.backlog_size == 0
