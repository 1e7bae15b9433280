"""From file events to polls: after the commit is visible, one channel at a time, quickest first."""

import asyncio

from monitor.broker import InProcessBroker
from monitor.channels.base import ChannelData
from monitor.poller import Poller
from monitor.wake import VISIBLE_CHECKS, Waker


class GatedReader:
    """A real Reader that says when a read starts and ends it when the test releases it."""

    def __init__(self):
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self):
        self.started.set()
        await self.release.wait()
        return ChannelData({}, {})

    async def close(self):
        pass


class Tokens:
    """A change token that reads as the next value the test gave, and counts the reads."""

    def __init__(self, *values):
        self.values = list(values)
        self.reads = 0

    async def __call__(self):
        self.reads += 1
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


def pollers_for(*names, typical=()):
    broker = InProcessBroker(names, ring_size=8)
    readers = {name: GatedReader() for name in names}
    pollers = {name: Poller(name, readers[name], broker, timeout=30.0) for name in names}
    for name, seconds in zip(names, typical, strict=False):
        pollers[name].typical_seconds = seconds
    return pollers, readers


async def test_woken_channels_read_one_after_another_quickest_first():
    pollers, readers = pollers_for("adw-monitor", "queue", typical=(0.02, 0.005))
    waker = Waker(pollers, frozenset(), Tokens(1), turn_limit=60.0)
    waker(frozenset({"adw-monitor", "queue"}))
    await readers["queue"].started.wait()
    await asyncio.sleep(0)  # were both started at once, the second would be under way by now
    assert not readers["adw-monitor"].started.is_set()
    readers["queue"].release.set()
    await readers["adw-monitor"].started.wait()
    readers["adw-monitor"].release.set()
    await waker.stop()


async def test_a_poll_that_hangs_holds_up_the_next_one_only_briefly():
    pollers, readers = pollers_for("queue", "planned-features", typical=(0.001, 0.002))
    waker = Waker(pollers, frozenset(), Tokens(1), turn_limit=0.01)
    waker(frozenset({"queue", "planned-features"}))
    await readers["planned-features"].started.wait()  # while the queue's read still hangs
    assert readers["queue"].started.is_set() and not readers["queue"].release.is_set()
    for reader in readers.values():
        reader.release.set()
    await waker.stop()


async def test_a_database_event_waits_until_its_commit_is_visible():
    pollers, readers = pollers_for("queue")
    tokens = Tokens("before", "before", "before", "after")
    waker = Waker(pollers, frozenset({"queue"}), tokens)
    assert await waker.visible()  # the first token read is news
    waker.database_event()
    waker(frozenset({"queue"}))
    await readers["queue"].started.wait()
    assert tokens.reads == 4, "polled only once the token had moved"
    readers["queue"].release.set()
    await waker.stop()


async def test_a_database_event_that_commits_nothing_still_polls():
    pollers, readers = pollers_for("queue")
    tokens = Tokens("same")
    waker = Waker(pollers, frozenset({"queue"}), tokens)
    assert await waker.visible()
    waker.database_event()
    waker(frozenset({"queue"}))
    await readers["queue"].started.wait()
    assert tokens.reads == 1 + len(VISIBLE_CHECKS)
    readers["queue"].release.set()
    await waker.stop()


async def test_only_database_events_consult_the_token():
    pollers, readers = pollers_for("queue", "workflows")
    tokens = Tokens("same")
    waker = Waker(pollers, frozenset({"queue"}), tokens)
    waker(frozenset({"workflows"}))  # a state file: no database event in the burst
    await readers["workflows"].started.wait()
    waker.database_event()
    waker(frozenset({"workflows"}))  # a database event, but none of its channels woken
    waker(frozenset({"queue"}))  # the flag was spent by the burst before
    await readers["queue"].started.wait()
    assert tokens.reads == 0
    for reader in readers.values():
        reader.release.set()
    await waker.stop()


async def test_a_failing_token_leaves_the_reads_to_report_it():
    pollers, readers = pollers_for("queue")

    async def broken():
        raise OSError("database file not found")

    waker = Waker(pollers, frozenset({"queue"}), broken)
    waker.database_event()
    waker(frozenset({"queue"}))
    await readers["queue"].started.wait()
    readers["queue"].release.set()
    await waker.stop()


async def test_a_token_that_never_answers_holds_the_polls_up_only_briefly():
    pollers, readers = pollers_for("queue")
    never = asyncio.Event()

    async def hung():
        await never.wait()

    waker = Waker(pollers, frozenset({"queue"}), hung)
    waker.database_event()
    waker(frozenset({"queue"}))
    await readers["queue"].started.wait()
    readers["queue"].release.set()
    await waker.stop()
