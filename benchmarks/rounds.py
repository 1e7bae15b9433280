"""One round: start a server and the load generator, run the plan's phases, stop both.

Every child process is stopped on the way out, error or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks import phases
from benchmarks.fresh import freshness
from benchmarks.loadgroup import LoadGroup
from benchmarks.plan import Plan
from benchmarks.procs import machine_busy_seconds, own_cpu_seconds, pin, wait_until_quiet
from benchmarks.servers import CONSOLES, STARTERS, WATCHING
from benchmarks.webhook_stub import WebhookStub
from benchmarks.workspace import WorkspaceChanges

SENTINELS = 10  # clients on another channel, counting what a queue change sends them


@dataclass
class Bench:
    """What a round needs besides its server: the workspace, its changes, the webhook stub, where logs go."""

    plan: Plan
    changes: WorkspaceChanges
    stub: WebhookStub
    logs: Path


async def run_round(bench: Bench, kind: str, index: int) -> dict:
    """Start ``kind``, measure everything the plan asks for, stop every process started."""
    logs = bench.logs / f"round-{index}"
    busy_before = await wait_until_quiet(bench.plan.quiet_pct, bench.plan.quiet_patience)
    started, busy_at_start, own_at_start = time.monotonic(), machine_busy_seconds(), own_cpu_seconds()
    server = await STARTERS[kind](bench.changes.workspace, bench.stub.url, logs, bench.plan.console_settings)
    loadgen = None
    try:
        loadgen = await LoadGroup.start(bench.plan.loadgens, "127.0.0.1", server.port, logs, kind)
        pin(server, 0)
        async with aiohttp.ClientSession() as http:
            result = await measure(bench, phases.Target(kind, server, loadgen, http), first_round=index == 1)
        ours = server.cpu_seconds() + loadgen.cpu_seconds() + own_cpu_seconds() - own_at_start
        others = machine_busy_seconds() - busy_at_start - ours
        # Other people's work on the same machine during the round, in % of one core.
        result["background_cpu_pct"] = 100 * others / (time.monotonic() - started)
        result["machine_busy_pct_before"] = busy_before
        return result
    finally:
        if loadgen is not None:
            await loadgen.stop()
        await server.stop()


async def measure(bench: Bench, target: phases.Target, first_round: bool) -> dict:
    """Memory and accept rate, idle CPU, fan-out, then freshness and bytes."""
    plan, result = bench.plan, {}
    if {"memory", "idle", "fanout"} & set(plan.phases):
        result |= await phases.memory_and_accept(target, plan.steps, plan.concurrency)
    if first_round and plan.idle_windows and "idle" in plan.phases:
        result |= await phases.idle_cpu(target, plan.idle_windows, plan.idle_window_seconds)
    if "fanout" in plan.phases:
        result |= await phases.fanout(target, plan.fanout_repetitions)
    await target.loadgen.call("reset_all")
    if "fresh" not in plan.phases or target.kind not in WATCHING:
        return result
    result["fresh"] = await measure_freshness(bench, target)
    first = result["fresh"][f"sqlite_{plan.fresh_clients[0]}"]
    result["bytes_ratio_pct"] = 100 * first["change_frame_bytes"] / first["snapshot_bytes"]
    result["unrelated_bytes_per_change"] = first.pop("unrelated_bytes_per_change")
    return result


def queue_change(bench: Bench) -> Callable[[str], None]:
    """The one-row queue commit, preceded by a commit to another table when the plan asks."""
    changes, plan = bench.changes, bench.plan
    if not plan.unrelated_commits:
        return changes.commit_queue_row

    def after_unrelated(marker: str) -> None:
        changes.commit_other_table(marker + "o")  # not the marker: no client waits for it
        time.sleep(plan.unrelated_lead)
        changes.commit_queue_row(marker)

    return after_unrelated


async def measure_sqlite(bench: Bench, target: phases.Target) -> dict:
    """One-row queue commits at each client count of the plan (the replica: the first only)."""
    plan, loadgen, fresh = bench.plan, target.loadgen, {}
    changes = plan.fresh_changes if target.kind in CONSOLES else plan.baseline_fresh_changes
    counts = plan.fresh_clients if target.kind in CONSOLES else plan.fresh_clients[:1]
    await loadgen.call("open", path="/api/v1/ws/workflows", count=SENTINELS, tag="sentinel")
    for clients in counts:
        result = await freshness(target, phases.QUEUE_PATH, queue_change(bench), changes, clients, 15.0, (0.2, 0.6),
                                 plan.fresh_series_limit)
        fresh[f"sqlite_{clients}"] = result
        if clients == counts[0]:
            stats = await loadgen.call("stats")
            sent = stats["by_tag"]["sentinel"]["after_first"]
            result["unrelated_bytes_per_change"] = sent / SENTINELS / max(1, result["changes"])
        await loadgen.call("reset_all")
    return fresh


async def measure_freshness(bench: Bench, target: phases.Target) -> dict:
    """SQLite commits at each client count; state file rewrite and polled HTTP source at the first."""
    plan, loadgen = bench.plan, target.loadgen
    fresh, clients = await measure_sqlite(bench, target), plan.fresh_clients[0]
    changes = plan.fresh_other_changes if target.kind in CONSOLES else plan.baseline_fresh_changes
    if await phases.channel_is_wired(target, "workflows"):
        rewrite = bench.changes.rewrite_state_file
        fresh[f"statefile_{clients}"] = await freshness(target, "/api/v1/ws/workflows", rewrite, changes, clients,
                                                        15.0, (0.2, 0.6))
        await loadgen.call("reset_all")
    if await phases.channel_is_wired(target, "webhook-status"):
        # The seed sent webhook status only at connect: one change shows that it never arrives.
        fresh[f"http_{clients}"] = await freshness(target, "/api/v1/ws/webhook-status", bench.stub.record_failure,
                                                   changes if target.kind in CONSOLES else 1, clients,
                                                   plan.polled_interval + 3.0, (0.0, plan.polled_interval))
        await loadgen.call("reset_all")
    return fresh
