"""Polling: scheduled at the channel interval, bounded by a timeout, never raising."""

import asyncio

from monitor.broker import InProcessBroker
from monitor.channels.base import ChannelData
from monitor.keys import BROKER
from monitor.poller import Poller, quickest_first
from tests.support import ProtocolClient


class ScriptedReader:
    """A real Reader whose next outcome the test chooses: data, an exception, or a hang."""

    def __init__(self):
        self.outcomes = []
        self.never = asyncio.Event()

    async def read(self):
        outcome = self.outcomes.pop(0)
        if outcome == "hang":
            await self.never.wait()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def close(self):
        pass


def make_poller(reader, timeout=0.05):
    broker = InProcessBroker(("queue",), ring_size=8)
    return Poller("queue", reader, broker, timeout), broker


async def test_failures_become_meta_and_recover():
    reader = ScriptedReader()
    poller, broker = make_poller(reader)
    reader.outcomes = [ChannelData({"total": 1}, {"a": {"x": 1}}), RuntimeError("disk on fire"), "hang",
                       None, ChannelData({"total": 0}, {})]
    await poller.poll()
    assert broker.current("queue").state["meta"]["source"] == "ok"
    await poller.poll()
    meta = broker.current("queue").state["meta"]
    assert meta["source"] == "error" and meta["error"] == "disk on fire"
    await poller.poll()
    meta = broker.current("queue").state["meta"]
    assert meta["error"] == "source did not answer within 0.05 s"
    assert broker.current("queue").state["items"] == {"a": {"x": 1}}, "last good data is kept while in error"
    await poller.poll()
    state = broker.current("queue").state
    assert state["meta"]["source"] == "ok" and "error" not in state["meta"] and state["items"] == {"a": {"x": 1}}
    await poller.poll()
    assert broker.current("queue").state["items"] == {}


async def test_unchanged_and_repeated_errors_publish_nothing():
    reader = ScriptedReader()
    poller, broker = make_poller(reader)
    reader.outcomes = [ChannelData({}, {}), None, None, OSError("gone"), OSError("gone")]
    seqs = []
    for _ in range(5):
        await poller.poll()
        seqs.append(broker.current("queue").seq)
    assert seqs == [1, 1, 1, 2, 2]


async def test_scheduler_polls_at_the_configured_interval(make_client, queue_table):
    client = await make_client({"channels": {"queue": {"interval": 0.05}}})
    live = ProtocolClient(await client.ws_connect("/api/v1/ws/queue"))
    await live.receive()
    row = queue_table.insert(title="picked up by the scheduler")
    while row not in live.state["items"]:
        await live.receive()  # no one polls by hand here: only the scheduler can deliver it
    assert live.state == client.app[BROKER].current("queue").state


async def test_a_change_wakes_the_channels_whose_reads_are_quickest_first():
    slow, quick = ScriptedReader(), ScriptedReader()
    slow.outcomes, quick.outcomes = [ChannelData({}, {})], [ChannelData({}, {})]
    broker = InProcessBroker(("adw-monitor", "queue"), ring_size=8)
    pollers = {"adw-monitor": Poller("adw-monitor", slow, broker, 1.0), "queue": Poller("queue", quick, broker, 1.0)}
    await pollers["queue"].poll()
    pollers["adw-monitor"].typical_seconds = 0.020  # as if its reads took 20 ms
    assert quickest_first(pollers, {"adw-monitor", "queue", "not-a-channel"}) == ["queue", "adw-monitor"]
    assert pollers["queue"].typical_seconds < 0.020
