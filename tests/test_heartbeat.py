"""The shared heartbeat: a ping per socket per period, and peers that stop answering cut off."""

import asyncio

from monitor.connection import DEAD_PEER
from monitor.heartbeat import Heartbeat
from monitor.keys import HUB
from tests.support import RawWebSocket, connections

PEERS = 8
OPCODE_TEXT, OPCODE_PING = 0x1, 0x9


class Peer:
    """Stands in for a connection: answers its pings (or not) and records how it was dropped."""

    def __init__(self, everyone: "Peers", answers: bool = True) -> None:
        self.everyone, self.answers = everyone, answers
        self.heartbeat_slot, self.awaiting_pong, self.pings = 0, False, 0
        self.dropped: asyncio.Future = asyncio.get_running_loop().create_future()

    def ping(self) -> None:
        self.pings += 1
        self.awaiting_pong = not self.answers  # an answering peer's pong arrives before the next look
        self.everyone.pinged()

    def drop(self, reason: str) -> None:
        self.dropped.set_result((reason, self.pings))
        self.everyone.heartbeat.discard(self)  # as the socket's handler does once it ends


class Peers:
    """Peers on one heartbeat, which stops itself once every peer has had ``rounds`` pings."""

    def __init__(self, heartbeat: Heartbeat, rounds: int) -> None:
        self.heartbeat, self.left = heartbeat, 0
        self.peers: list[Peer] = []
        self.rounds = rounds
        self.done = asyncio.get_running_loop().create_future()

    def add(self, answers: bool = True) -> Peer:
        peer = Peer(self, answers)
        self.peers.append(peer)
        self.heartbeat.add(peer)  # it uses only what a Peer has
        self.left += self.rounds
        return peer

    def pinged(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.heartbeat.stop()  # right here, in the tick: no later tick can ping anyone again
            self.done.set_result(None)


async def test_every_socket_is_pinged_once_per_period_in_even_shares():
    heartbeat = Heartbeat(period=0.04, tick=0.01)
    everyone = Peers(heartbeat, rounds=2)
    for _ in range(PEERS):
        everyone.add()
    heartbeat.start()
    await everyone.done
    assert [peer.pings for peer in everyone.peers] == [2] * PEERS
    assert not any(peer.dropped.done() for peer in everyone.peers)


async def test_a_peer_that_stops_answering_is_cut_before_its_next_ping():
    heartbeat = Heartbeat(period=0.04, tick=0.01)
    everyone = Peers(heartbeat, rounds=3)
    silent = [everyone.add(answers=index != 3) for index in range(PEERS)][3]
    everyone.left -= 2  # the silent peer is cut after its first ping
    heartbeat.start()
    assert await silent.dropped == (DEAD_PEER, 1)
    await everyone.done
    assert sum(peer.dropped.done() for peer in everyone.peers) == 1


async def test_a_discarded_socket_is_no_longer_pinged():
    heartbeat = Heartbeat(period=0.04, tick=0.01)
    everyone = Peers(heartbeat, rounds=2)
    gone = everyone.add()
    everyone.add()
    heartbeat.discard(gone)
    everyone.left -= 2
    heartbeat.start()
    await everyone.done  # the other peer's second ping: the discarded one's turn came in between
    assert gone.pings == 0


async def test_a_real_peer_that_never_answers_is_cut_without_a_close_frame_and_counted(make_client):
    client = await make_client({"server": {"heartbeat": 0.2}})
    raw = await RawWebSocket.connect(client.host, client.port, "/api/v1/ws/queue")
    assert (await raw.read_frame())[0] == OPCODE_TEXT  # the snapshot
    assert (await raw.read_frame()) == (OPCODE_PING, b"")  # not answered
    await connections(client, "queue", 0)
    assert client.app[HUB].evictions == {DEAD_PEER: 1}
    assert await raw.reader.read() == b""  # the end of the stream: no close frame came first
    await raw.close()
