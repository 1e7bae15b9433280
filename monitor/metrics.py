"""Prometheus metrics, in a registry of this app's own (no process-global state).

Live figures (sockets, frames, patches, evictions) are read from the hub and broker at
scrape time, so the hot path keeps plain integer counters and never touches a lock.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor.broker import CATCH_UP_OUTCOMES, Broker
from monitor.connection import EVICTION_REASONS
from monitor.gcpolicy import KINDS, GcPolicy
from monitor.hub import Hub

AUTH_MODES = ("login", "bearer", "basic")  # where a secret can be guessed: the sign-in form, tokens, passwords
RTT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
POLL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def hub_families(hub: Hub, prefix: str, kind: str) -> list[Metric]:
    """A hub's sockets, frames, bytes by channel and its evictions by reason (``monitor_<prefix>ws_*``)."""
    name = f"monitor_{prefix}ws"
    sockets = GaugeMetricFamily(f"{name}_connections", f"Open {kind}WebSocket connections", labels=["channel"])
    frames = CounterMetricFamily(f"{name}_messages_sent", f"Frames handed to {kind}sockets", labels=["channel"])
    sent = CounterMetricFamily(f"{name}_bytes_sent", f"Bytes of frames handed to {kind}sockets", labels=["channel"])
    for channel in hub.channels:
        sockets.add_metric([channel], hub.count(channel))
        frames.add_metric([channel], hub.frames_sent[channel])
        sent.add_metric([channel], hub.bytes_sent[channel])
    evictions = CounterMetricFamily(f"{name}_evictions", f"{kind}connections cut off".capitalize(), labels=["reason"])
    for reason in EVICTION_REASONS:
        evictions.add_metric([reason], hub.evictions.get(reason, 0))
    return [sockets, frames, sent, evictions]


class LiveCollector:
    """Reads the hub's and broker's counters when Prometheus scrapes."""

    def __init__(self, hub: Hub, broker: Broker) -> None:
        self.hub = hub
        self.broker = broker

    def collect(self) -> Iterator[Metric]:
        """Yield the live metric families."""
        patches = CounterMetricFamily("monitor_patches", "Patches published", labels=["channel"])
        for channel in self.hub.channels:
            patches.add_metric([channel], self.broker.published[channel])
        resumes = CounterMetricFamily("monitor_ws_resumes", "Connections by how they were caught up",
                                      labels=["outcome"])
        for outcome in sorted(CATCH_UP_OUTCOMES):
            resumes.add_metric([outcome], self.broker.catch_ups[outcome])
        yield from (*hub_families(self.hub, "", ""), patches, resumes)


class BrokerCollector:
    """Reads the broker's connection and this console's leaderships when Prometheus scrapes."""

    def __init__(self, channels: tuple[str, ...], status: Callable[[], dict[str, Any]]) -> None:
        self.channels = channels
        self.status = status

    def collect(self) -> Iterator[Metric]:
        """Yield the broker's metric families."""
        status = self.status()
        connected = GaugeMetricFamily("monitor_broker_connected", "1 while the broker is reachable",
                                      value=int(bool(status["connected"])))
        leader = GaugeMetricFamily("monitor_broker_leader", "1 for the channels this console polls",
                                   labels=["channel"])
        for channel in self.channels:
            leader.add_metric([channel], int(channel in status["leader_of"]))
        yield from (connected, leader)


class CompatCollector:
    """Reads the compat surface's hub and backend when Prometheus scrapes (only with the section)."""

    def __init__(self, hub: Hub, backend_down: Callable[[], bool]) -> None:
        self.hub = hub
        self.backend_down = backend_down

    def collect(self) -> Iterator[Metric]:
        """Yield the compat clients, what they were sent, their evictions, and whether the backend answers."""
        backend = GaugeMetricFamily("monitor_compat_backend_up", "1 unless the last request to the backend failed",
                                    value=0 if self.backend_down() else 1)
        yield from (*hub_families(self.hub, "compat_", "compat "), backend)


class GcCollector:
    """Reads the garbage collection policy's counters when Prometheus scrapes."""

    def __init__(self, policy: GcPolicy) -> None:
        self.policy = policy

    def collect(self) -> Iterator[Metric]:
        """Yield the full collections by kind, their time and the longest, and what is frozen."""
        labels = ["kind"]
        runs = CounterMetricFamily("monitor_gc_full_collections", "Full garbage collections", labels=labels)
        spent = CounterMetricFamily("monitor_gc_full_collection_seconds", "Time in full collections", labels=labels)
        longest = GaugeMetricFamily("monitor_gc_longest_full_collection_seconds", "Longest full collection",
                                    labels=labels)
        for kind in KINDS:
            runs.add_metric([kind], self.policy.runs[kind])
            spent.add_metric([kind], self.policy.seconds[kind])
            longest.add_metric([kind], self.policy.longest[kind])
        frozen = GaugeMetricFamily("monitor_gc_frozen_objects", "Objects kept out of full collections",
                                   value=gc.get_freeze_count())
        releases = self.policy.releases
        closed = CounterMetricFamily("monitor_gc_closed_connections",
                                     "Closed connections by what they left: released (no cycle), cyclic (one "
                                     "for a maintenance collection)", labels=["left"])
        closed.add_metric(["released"], releases.released)
        closed.add_metric(["cyclic"], releases.cyclic)
        yield from (runs, spent, longest, frozen, closed)


class TableReadsCollector:
    """Reads the database's whole-table read counts when Prometheus scrapes."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        """Yield the whole-table reads by how much they read (``partial``: only the rows that moved)."""
        reads = CounterMetricFamily("monitor_table_reads", "Whole-table reads (SQLite) by how much they read",
                                    labels=["kind"])
        for kind, count in sorted(self.counts().items()):
            reads.add_metric([kind], count)
        yield reads


class Metrics:
    """This console's metrics: live collectors plus poll timings."""

    def __init__(self, hub: Hub, broker: Broker) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(LiveCollector(hub, broker))
        self.poll_seconds = Histogram("monitor_poll_duration_seconds", "Time one poll took", ["channel"],
                                      buckets=POLL_BUCKETS, registry=self.registry)
        self.poll_errors = Counter("monitor_poll_errors", "Polls that failed", ["channel"], registry=self.registry)
        self.auth_failures = Counter("monitor_auth_failures", "Wrong secrets guessed (sign-in form, Bearer token, "
                                     "Basic password)", ["mode"], registry=self.registry)
        for mode in AUTH_MODES:
            self.auth_failures.labels(mode)  # every series from the start, so a rate() sees the first failure
        self.broker_rtt = Histogram("monitor_broker_rtt_seconds", "Round trips to the shared broker (lock "
                                    "renewals)", buckets=RTT_BUCKETS, registry=self.registry)
        self.banned_addresses = Gauge("monitor_auth_banned_addresses", "Client addresses locked out after failed "
                                      "sign-ins", registry=self.registry)

    def observe_poll(self, channel: str, seconds: float, ok: bool) -> None:
        """Record one poll's duration and outcome."""
        self.poll_seconds.labels(channel).observe(seconds)
        if not ok:
            self.poll_errors.labels(channel).inc()

    def note_auth_failure(self, mode: str) -> None:
        """Count one wrong secret guessed through ``mode`` (login, bearer or basic)."""
        self.auth_failures.labels(mode).inc()

    def watch_lockouts(self, banned: Callable[[], int]) -> None:
        """Report ``banned()`` (addresses locked out now) at every scrape."""
        self.banned_addresses.set_function(banned)

    def watch_compat(self, hub: Hub, backend_down: Callable[[], bool]) -> None:
        """Report the compat surface's clients and backend at every scrape."""
        self.registry.register(CompatCollector(hub, backend_down))

    def watch_broker(self, channels: tuple[str, ...], status: Callable[[], dict[str, Any]]) -> None:
        """Report the broker's connection and leaderships at every scrape."""
        self.registry.register(BrokerCollector(channels, status))

    def watch_gc(self, policy: GcPolicy) -> None:
        """Report ``policy``'s collections at every scrape."""
        self.registry.register(GcCollector(policy))

    def watch_table_reads(self, counts: Callable[[], dict[str, int]]) -> None:
        """Report ``counts()`` (whole-table reads by kind) at every scrape."""
        self.registry.register(TableReadsCollector(counts))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
