"""From file events to polls: as commits become visible, one channel at a time, quickest first."""

import asyncio

from monitor.broker import InProcessBroker
from monitor.channels.base import ChannelData
from monitor.poller import Poller
from monitor.wake import VISIBLE_CHECKS, Waker


class GatedReader:
    """A real Reader that counts its reads, notes the token reads at each start, and ends each when released."""

    def __init__(self, tokens=None):
        self.tokens = tokens
        self.starts, self.token_reads_at_start = 0, []
        self.started = asyncio.Condition()
        self.release = asyncio.Event()

    async def read(self):
        async with self.started:
            self.starts += 1
            self.token_reads_at_start.append(self.tokens.reads if self.tokens else None)
            self.started.notify_all()
        await self.release.wait()
        return ChannelData({}, {})

    async def wait_starts(self, count):
        async with self.started:
            await self.started.wait_for(lambda: self.starts >= count)

    async def close(self):
        pass


class Tokens:
    """A change token that reads as the next value the test gave (the last one repeats), counting the reads."""

    def __init__(self, *values):
        self.values = list(values)
        self.reads = 0

    async def __call__(self):
        self.reads += 1
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


def pollers_for(*names, typical=(), tokens=None):
    broker = InProcessBroker(names, ring_size=8)
    readers = {name: GatedReader(tokens) for name in names}
    pollers = {name: Poller(name, readers[name], broker, timeout=30.0) for name in names}
    for name, seconds in zip(names, typical, strict=False):
        pollers[name].typical_seconds = seconds
    return pollers, readers


async def test_woken_channels_read_one_after_another_quickest_first():
    pollers, readers = pollers_for("adw-monitor", "queue", typical=(0.02, 0.005))
    waker = Waker(pollers, frozenset(), Tokens(1), turn_limit=60.0)
    waker(frozenset({"adw-monitor", "queue"}))
    await readers["queue"].wait_starts(1)
    await asyncio.sleep(0)  # were both started at once, the second would be under way by now
    assert readers["adw-monitor"].starts == 0
    readers["queue"].release.set()
    await readers["adw-monitor"].wait_starts(1)
    readers["adw-monitor"].release.set()
    await waker.stop()


async def test_a_poll_that_hangs_holds_up_the_next_one_only_briefly():
    pollers, readers = pollers_for("queue", "planned-features", typical=(0.001, 0.002))
    waker = Waker(pollers, frozenset(), Tokens(1), turn_limit=0.01)
    waker(frozenset({"queue", "planned-features"}))
    await readers["planned-features"].wait_starts(1)  # while the queue's read still hangs
    assert readers["queue"].starts == 1 and not readers["queue"].release.is_set()
    for reader in readers.values():
        reader.release.set()
    await waker.stop()


async def test_a_database_event_polls_once_its_commit_is_visible():
    tokens = Tokens("before", "before", "before", "after")
    pollers, readers = pollers_for("queue", tokens=tokens)
    waker = Waker(pollers, frozenset({"queue"}), tokens, seen="before")
    waker.database_event()
    waker(frozenset({"queue"}))
    await readers["queue"].wait_starts(1)
    assert readers["queue"].token_reads_at_start == [4], "polled only once the token had moved"
    readers["queue"].release.set()
    await waker.stop()


async def test_two_commits_in_one_burst_each_get_a_poll():
    tokens = Tokens("first", "first", "second")  # the second commit's sync ends a little later
    pollers, readers = pollers_for("queue", tokens=tokens)
    waker = Waker(pollers, frozenset({"queue"}), tokens, seen="before")
    waker.database_event()
    waker(frozenset({"queue"}))
    await readers["queue"].wait_starts(1)
    readers["queue"].release.set()
    await readers["queue"].wait_starts(2)  # no event comes for the second: the watch saw it
    await waker.stop()


async def test_a_database_event_that_commits_nothing_still_polls():
    tokens = Tokens("same")
    pollers, readers = pollers_for("queue", tokens=tokens)
    waker = Waker(pollers, frozenset({"queue"}), tokens, seen="same")
    waker.database_event()
    waker(frozenset({"queue"}))
    await readers["queue"].wait_starts(1)
    assert readers["queue"].token_reads_at_start == [len(VISIBLE_CHECKS)]
    readers["queue"].release.set()
    await waker.stop()


async def test_only_database_events_consult_the_token():
    tokens = Tokens("same")
    pollers, readers = pollers_for("queue", "workflows", tokens=tokens)
    waker = Waker(pollers, frozenset({"queue"}), tokens)
    waker(frozenset({"workflows"}))  # a state file: no database event in the burst
    await readers["workflows"].wait_starts(1)
    waker.database_event()
    waker(frozenset({"workflows"}))  # a database event, but none of its channels woken
    waker(frozenset({"queue"}))  # the flag was spent by the burst before
    await readers["queue"].wait_starts(1)
    assert tokens.reads == 0
    for reader in readers.values():
        reader.release.set()
    await waker.stop()


async def database_wake_polls(token):
    """A database event with ``token`` as the change token still polls the queue."""
    pollers, readers = pollers_for("queue")
    waker = Waker(pollers, frozenset({"queue"}), token)
    waker.database_event()
    waker(frozenset({"queue"}))
    await readers["queue"].wait_starts(1)
    readers["queue"].release.set()
    await waker.stop()


async def test_a_failing_token_leaves_the_reads_to_report_it():
    async def broken():
        raise OSError("database file not found")

    await database_wake_polls(broken)


async def test_a_token_that_never_answers_holds_the_polls_up_only_briefly():
    never = asyncio.Event()

    async def hung():
        await never.wait()

    await database_wake_polls(hung)
