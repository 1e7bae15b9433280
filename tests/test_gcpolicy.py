"""The garbage collection policy: a freeze every look, maintenance after churn, and memory that stays bounded."""

import asyncio
import gc
import weakref

import aiohttp
import pytest

from monitor.app import create_app
from monitor.cycles import Releases, drop_tracebacks
from monitor.gcpolicy import PATIENCE, QUIET_LOOKS, GcPolicy
from monitor.keys import GC, HUB
from monitor.server import serving
from tests.support import RawWebSocket

CLIENTS = 30


class Cycle:
    """An object that refers to itself: only a collection frees it."""

    def __init__(self) -> None:
        self.me = self


def old_cycle() -> weakref.ref:
    """A cycle that is garbage already and has reached the old generation."""
    cycle = Cycle()
    gc.collect(1)  # it survives the young collections: the old generation has it now
    return weakref.ref(cycle)


class Hub:
    """The hub's counters the policy reads: connections opened and closed, frames sent."""

    def __init__(self) -> None:
        self.opened = self.closed = 0
        self.frames_sent = {"queue": 0}


class TransportStandIn:
    """A transport asyncio's selector loop did not make (uvloop's, say): its attributes are unknown."""

    __slots__ = ()


@pytest.fixture(autouse=True)
def unfrozen():
    """Every test leaves the collector as it found it."""
    yield
    gc.unfreeze()


def test_every_look_freezes_what_is_alive():
    policy = GcPolicy(Hub())
    assert policy.check() == "freeze"
    assert gc.get_freeze_count() > 0
    assert policy.check() == "freeze" and policy.runs["freeze"] == 2


def test_a_look_collects_the_young_generations_only_unless_connections_closed():
    hub = Hub()
    policy = GcPolicy(hub)
    frozen = old_cycle()
    policy.check()
    assert frozen() is not None  # left for a maintenance collection
    collected = old_cycle()
    hub.closed += 1  # a closing connection's objects must not be frozen as they die: walk what is not frozen
    policy.check()
    assert collected() is None


def test_churn_brings_a_maintenance_collection_after_quiet_looks_in_a_row():
    hub = Hub()
    policy = GcPolicy(hub, churn=50)
    hub.opened = 100
    policy.check()
    hub.closed = policy.releases.cyclic = 60  # closures that may have left a cycle (cycles.Releases)
    assert policy.check() == "freeze"  # 60, not twice the 40 still open
    hub.closed = policy.releases.cyclic = 80
    assert policy.check() == "freeze"  # enough, but closing fast: not quiet
    assert [policy.check() for _ in range(QUIET_LOOKS - 1)] == ["freeze"] * (QUIET_LOOKS - 1)
    hub.frames_sent["queue"] += 1  # a delivery: quiet starts over
    assert [policy.check() for _ in range(QUIET_LOOKS)] == ["freeze"] * QUIET_LOOKS
    assert policy.check() == "maintenance"
    assert policy.runs["maintenance"] == 1 and policy.check() == "freeze"


def test_closures_that_left_no_cycle_bring_no_maintenance():
    hub = Hub()
    policy = GcPolicy(hub, churn=50)
    hub.opened = hub.closed = 100_000  # a reconnecting wall, every transport released (cycles.py)
    assert [policy.check() for _ in range(PATIENCE + 1)] == ["freeze"] * (PATIENCE + 1)


def test_deliveries_postpone_a_maintenance_until_its_patience_runs_out():
    hub = Hub()
    policy = GcPolicy(hub, churn=50)
    hub.opened = hub.closed = policy.releases.cyclic = 100
    outcomes = []
    for _ in range(PATIENCE + 1):
        hub.frames_sent["queue"] += 1
        outcomes.append(policy.check())
    assert outcomes == ["freeze"] * PATIENCE + ["maintenance"]


def test_a_maintenance_comes_after_its_interval_without_churn():
    policy = GcPolicy(Hub(), every=0.0)
    assert [policy.check() for _ in range(QUIET_LOOKS)] == ["freeze"] * (QUIET_LOOKS - 1) + ["maintenance"]


def test_a_maintenance_that_found_little_spaces_out_the_next():
    now = [0.0]
    policy = GcPolicy(Hub(), every=100.0, clock=lambda: now[0])
    gc.collect()  # nothing left for it to find
    now[0] = 100.0
    assert [policy.check() for _ in range(QUIET_LOOKS)][-1] == "maintenance"
    assert policy.every == 200.0
    now[0] = 299.0
    assert [policy.check() for _ in range(QUIET_LOOKS)] == ["freeze"] * QUIET_LOOKS
    now[0] = 300.0
    assert policy.check() == "maintenance" and policy.every == 400.0


def test_a_maintenance_that_found_much_brings_the_next_back_to_the_base_interval():
    now = [0.0]
    policy = GcPolicy(Hub(), every=100.0, clock=lambda: now[0])
    policy.every = 800.0  # spaced out by earlier maintenances that found little
    garbage = [Cycle() for _ in range(len(gc.get_objects()) // 20)]
    gc.freeze()
    del garbage  # frozen cycles: only a maintenance finds them
    now[0] = 800.0
    assert [policy.check() for _ in range(QUIET_LOOKS)][-1] == "maintenance"
    assert policy.every == 100.0


def test_pythons_own_full_collections_are_timed_and_ours_are_not_counted_twice():
    policy = GcPolicy(Hub(), every=0.0)
    gc.callbacks.append(policy.on_collection)
    try:
        gc.collect()
        assert [policy.check() for _ in range(QUIET_LOOKS)][-1] == "maintenance"  # a full collection too, but ours
    finally:
        gc.callbacks.remove(policy.on_collection)
    assert policy.runs == {"freeze": QUIET_LOOKS - 1, "maintenance": 1, "automatic": 1}
    assert policy.longest["automatic"] > 0


async def released(policy: GcPolicy, count: int) -> None:
    """Look (sweep the closed connections' transports) until ``count`` were released."""
    for _ in range(500):
        policy.releases.sweep()
        if policy.releases.released >= count:
            return
        await asyncio.sleep(0.01)  # asyncio loses a closed transport's connection on a later turn
    raise AssertionError(f"{policy.releases.released} of {count} transports released")


async def freed(refs: list[weakref.ref]) -> None:
    """Wait until the objects of ``refs`` are gone (their sessions end a few turns after the transports)."""
    for _ in range(500):
        if all(ref() is None for ref in refs):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{sum(ref() is not None for ref in refs)} of {len(refs)} objects still alive")


async def test_a_closed_connection_leaves_no_cycle_for_a_full_collection(make_settings):
    settings = make_settings()
    app = create_app(settings)
    # Served as `monitor serve` serves it: aiohttp's test server cancels a handler whose peer left.
    async with serving(settings, app) as runner, aiohttp.ClientSession() as session:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/api/v1/ws/queue"
        hub, policy = app[HUB], app[GC]
        polite = [await session.ws_connect(url) for _ in range(4)]
        raw = [await RawWebSocket.connect("127.0.0.1", port, "/api/v1/ws/queue") for _ in range(12)]
        await hub.wait_until(lambda hub: hub.count("queue") == 16)
        served = hub.connections("queue")
        transports = [weakref.ref(connection.transport) for connection in served]
        sockets = [weakref.ref(connection.ws) for connection in served]
        del served
        gc.collect()
        gc.freeze()  # long-lived, as the policy's looks leave them: only a full walk could free a cycle
        for ws in polite:
            await ws.close()  # the close handshake
        for peer in raw[:4]:
            await peer.close()  # FIN, no close frame
        for peer in raw[4:8]:
            peer.kill()  # RST: aiohttp keeps "Cannot write to closing transport" and its tracebacks
        await hub.wait_until(lambda hub: hub.count("queue") == 4)
        for connection in hub.connections("queue"):
            connection.abort()  # cut by the console (a dead peer, a slow client)
        del connection
        async with aiohttp.ClientSession() as pages:  # a plain HTTP connection, kept alive, then closed
            assert (await pages.get(f"http://127.0.0.1:{port}/healthz")).status == 200
        await hub.wait_until(lambda hub: hub.count("queue") == 0)
        await released(policy, 17)
        await freed(transports + sockets)  # by reference counting alone: their objects are frozen
        assert policy.releases.cyclic == 0 and policy.runs["maintenance"] == 0
        for peer in raw[8:]:
            await peer.close()


def test_a_transport_of_another_kind_counts_as_left_in_a_cycle():
    releases = Releases()
    releases.add(TransportStandIn())
    assert (releases.cyclic, releases.released, releases.pending) == (1, 0, 0)


def test_every_exception_chained_to_the_one_kept_loses_its_traceback():
    try:
        try:
            raise ValueError("cause")
        except ValueError as cause:
            context = KeyError("context")
            try:
                raise context
            except KeyError:
                raise RuntimeError("kept") from cause
    except RuntimeError as kept:
        drop_tracebacks(kept)
        assert [e.__traceback__ for e in (kept, kept.__cause__, kept.__context__)] == [None, None, None]


async def test_metrics_report_full_collections_and_frozen_objects(client):
    text = await (await client.get("/metrics")).text()
    assert 'monitor_gc_full_collections_total{kind="maintenance"} 0.0' in text
    assert "monitor_gc_frozen_objects " in text
    assert 'monitor_gc_closed_connections_total{left="cyclic"} 0.0' in text
    assert 'monitor_gc_longest_full_collection_seconds{kind="automatic"}' in text
