"""The garbage collection policy: a freeze every look, maintenance after churn, and memory that stays bounded."""

import gc
import weakref

import pytest

from monitor.gcpolicy import PATIENCE, QUIET_LOOKS, GcPolicy
from monitor.keys import HUB
from tests.support import connections

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
    hub.closed += 1  # closing connections leave cycles of their own: walk what is not frozen
    policy.check()
    assert collected() is None


def test_churn_brings_a_maintenance_collection_after_quiet_looks_in_a_row():
    hub = Hub()
    policy = GcPolicy(hub, churn=50)
    hub.opened = 100
    policy.check()
    hub.closed = 60
    assert policy.check() == "freeze"  # 60 closed, not twice the 40 still open
    hub.closed = 80
    assert policy.check() == "freeze"  # enough, but closing fast: not quiet
    assert [policy.check() for _ in range(QUIET_LOOKS - 1)] == ["freeze"] * (QUIET_LOOKS - 1)
    hub.frames_sent["queue"] += 1  # a delivery: quiet starts over
    assert [policy.check() for _ in range(QUIET_LOOKS)] == ["freeze"] * QUIET_LOOKS
    assert policy.check() == "maintenance"
    assert policy.runs["maintenance"] == 1 and policy.check() == "freeze"


def test_deliveries_postpone_a_maintenance_until_its_patience_runs_out():
    hub = Hub()
    policy = GcPolicy(hub, churn=50)
    hub.opened = hub.closed = 100
    outcomes = []
    for _ in range(PATIENCE + 1):
        hub.frames_sent["queue"] += 1
        outcomes.append(policy.check())
    assert outcomes == ["freeze"] * PATIENCE + ["maintenance"]


def test_a_maintenance_comes_after_its_interval_without_churn():
    policy = GcPolicy(Hub(), every=0.0)
    assert [policy.check() for _ in range(QUIET_LOOKS)] == ["freeze"] * (QUIET_LOOKS - 1) + ["maintenance"]


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


async def test_garbage_of_closed_connections_frozen_with_them_is_reclaimed_by_maintenance(client):
    hub = client.app[HUB]
    policy = GcPolicy(hub, churn=CLIENTS)
    sockets = [await client.ws_connect("/api/v1/ws/queue") for _ in range(CLIENTS)]
    await connections(client, "queue", CLIENTS)
    transports = [weakref.ref(connection.transport) for connection in hub.connections("queue")]
    assert policy.check() == "freeze"
    for ws in sockets:
        await ws.close()
    await connections(client, "queue", 0)
    # What Python does by itself cannot reach frozen objects: asyncio's transports (each refers
    # to itself through a bound method) outlive their closed connections.
    gc.collect()
    assert all(ref() is not None for ref in transports)
    assert policy.check() == "freeze"  # connections closing fast: not quiet
    assert [policy.check() for _ in range(QUIET_LOOKS)][-1] == "maintenance"
    assert all(ref() is None for ref in transports) and not gc.garbage


async def test_metrics_report_full_collections_and_frozen_objects(client):
    text = await (await client.get("/metrics")).text()
    assert 'monitor_gc_full_collections_total{kind="maintenance"} 0.0' in text
    assert "monitor_gc_frozen_objects " in text
    assert 'monitor_gc_longest_full_collection_seconds{kind="automatic"}' in text
