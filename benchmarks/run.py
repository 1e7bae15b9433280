"""``python -m benchmarks.run [--quick]``: measure the console and the seed replica, write the table.

Each round starts a fresh server (console, then replica, alternating which goes first)
and a fresh load generator on one generated workspace; every child process is stopped
on the way out, error or not. Results go under ``benchmarks/results/<timestamp>/``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks import phases
from benchmarks.loadgen import raise_open_file_limit
from benchmarks.procs import (
    LoadGenerator,
    cpu_seconds,
    machine_busy_seconds,
    own_cpu_seconds,
    pin,
    wait_until_quiet,
)
from benchmarks.report import machine, render_markdown
from benchmarks.servers import POLLED_INTERVAL, STARTERS
from benchmarks.webhook_stub import WebhookStub
from benchmarks.workspace import WorkspaceChanges, create_workspace

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    rounds: int = 3
    steps: tuple[int, ...] = (1000, 5000, 10000)
    concurrency: int = 100
    idle_seconds: float = 60.0
    fanout_repetitions: int = 9
    fresh_clients: int = 1000
    fresh_changes: int = 20
    polled_interval: float = POLLED_INTERVAL
    servers: tuple[str, ...] = ("console", "baseline")
    # The replica accepts ~50 connections/s and holds ~1 MB per socket: one round of it
    # takes as long as three of the console, so it runs fewer rounds and changes.
    baseline_rounds: int = 1
    baseline_fresh_changes: int = 10
    phases: tuple[str, ...] = ("memory", "idle", "fanout", "fresh")
    quiet_pct: float = 15.0  # other work on the machine, as a share of all cores, that a round waits out
    quiet_patience: float = 60.0
    console_settings: tuple[str, ...] = ()  # section.key=value overrides of the generated config.toml


QUICK = Plan(rounds=1, steps=(500, 1000, 2000), idle_seconds=10.0, fanout_repetitions=7, fresh_clients=200,
             fresh_changes=8, baseline_fresh_changes=5)


@dataclass
class Bench:
    """What a round needs besides its server: the workspace, its changes and the webhook stub."""

    plan: Plan
    changes: WorkspaceChanges
    stub: WebhookStub
    out: Path


async def run_round(bench: Bench, kind: str, index: int) -> dict:
    """Start ``kind``, measure everything the plan asks for, stop every process started."""
    logs = bench.out / f"round-{index}"
    busy_before = await wait_until_quiet(bench.plan.quiet_pct, bench.plan.quiet_patience)
    started, busy_at_start, own_at_start = time.monotonic(), machine_busy_seconds(), own_cpu_seconds()
    server = await STARTERS[kind](bench.changes.workspace, bench.stub.url, logs, bench.plan.console_settings)
    loadgen = None
    try:
        loadgen = await LoadGenerator.start("127.0.0.1", server.port, logs / f"loadgen-{kind}.log")
        pin(server, 0)
        pin(loadgen.child, 1)
        async with aiohttp.ClientSession() as http:
            result = await measure(bench, phases.Target(kind, server, loadgen, http), first_round=index == 1)
        ours = cpu_seconds(server.pid) + cpu_seconds(loadgen.child.pid) + own_cpu_seconds() - own_at_start
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
    if first_round and plan.idle_seconds and "idle" in plan.phases:
        result |= await phases.idle_cpu(target, plan.idle_seconds)
    if "fanout" in plan.phases:
        result |= await phases.fanout(target, plan.fanout_repetitions)
    await target.loadgen.call("reset_all")
    if "fresh" not in plan.phases:
        return result
    result["fresh"] = await measure_freshness(bench, target)
    sqlite = result["fresh"]["sqlite"]
    result["bytes_ratio_pct"] = 100 * sqlite["change_frame_bytes"] / sqlite["snapshot_bytes"]
    result["unrelated_bytes_per_change"] = sqlite.pop("unrelated_bytes_per_change")
    return result


async def measure_freshness(bench: Bench, target: phases.Target) -> dict:
    """SQLite commit, state file rewrite and polled HTTP source, each with its own 1k clients."""
    plan, loadgen, fresh = bench.plan, target.loadgen, {}
    changes = plan.fresh_changes if target.kind == "console" else plan.baseline_fresh_changes
    sentinels = 10
    await loadgen.call("open", path="/api/v1/ws/workflows", count=sentinels, tag="sentinel")
    fresh["sqlite"] = await phases.freshness(target, phases.QUEUE_PATH, bench.changes.commit_queue_row,
                                             changes, plan.fresh_clients, 15.0, (0.2, 0.6))
    stats = await loadgen.call("stats")
    fresh["sqlite"]["unrelated_bytes_per_change"] = stats["by_tag"]["sentinel"]["after_first"] / sentinels / changes
    await loadgen.call("reset_all")
    if await phases.channel_is_wired(target, "workflows"):
        fresh["statefile"] = await phases.freshness(target, "/api/v1/ws/workflows", bench.changes.rewrite_state_file,
                                                    changes, plan.fresh_clients, 15.0, (0.2, 0.6))
        await loadgen.call("reset_all")
    if await phases.channel_is_wired(target, "webhook-status"):
        # The seed sent webhook status only at connect: one change shows that it never arrives.
        fresh["http"] = await phases.freshness(target, "/api/v1/ws/webhook-status", bench.stub.record_failure,
                                               changes if target.kind == "console" else 1, plan.fresh_clients,
                                               plan.polled_interval + 3.0, (0.0, plan.polled_interval))
        await loadgen.call("reset_all")
    return fresh


async def run(plan: Plan, out: Path) -> dict:
    """Every round for every server; returns {server: [round results]}."""
    raise_open_file_limit()
    results: dict[str, list[dict]] = {kind: [] for kind in plan.servers}
    stub = WebhookStub()
    await stub.start()
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-bench-") as root:
            bench = Bench(plan, WorkspaceChanges(create_workspace(Path(root))), stub, out)
            for index in range(1, plan.rounds + 1):
                order = plan.servers if index % 2 else tuple(reversed(plan.servers))
                for kind in (k for k in order if k == "console" or index <= plan.baseline_rounds):
                    started = time.monotonic()
                    results[kind].append(await run_round(bench, kind, index))
                    print(f"round {index} {kind}: {time.monotonic() - started:.0f} s", flush=True)
                    write_outputs(out, results, plan)
    finally:
        await stub.stop()
    return results


def write_outputs(out: Path, results: dict, plan: Plan) -> None:
    """results.json (every round's numbers) and results.md (the table)."""
    host, plan_dict = machine(), dataclasses.asdict(plan)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"machine": host, "plan": plan_dict, "rounds": results}, indent=2))
    (out / "results.md").write_text(render_markdown(results, host, plan_dict))


def main() -> None:
    """Parse the options and run the suite."""
    parser = argparse.ArgumentParser(description="benchmark the console against DESIGN §6 and the seed's pattern")
    parser.add_argument("--quick", action="store_true", help="smaller, shorter run (about 2 minutes)")
    parser.add_argument("--rounds", type=int, help="rounds per server (default: 3, quick: 1)")
    parser.add_argument("--servers", default="console,baseline", help="comma-separated: console,baseline")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle CPU measurement")
    parser.add_argument("--phases", default="memory,idle,fanout,fresh", help="which measurements to run")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a console config key (TOML value), e.g. sources.watch_debounce=0.02")
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    plan = dataclasses.replace(plan, servers=tuple(args.servers.split(",")), phases=tuple(args.phases.split(",")),
                               console_settings=tuple(args.set),
                               rounds=args.rounds or plan.rounds, idle_seconds=0 if args.no_idle else plan.idle_seconds)
    out = RESULTS_DIR / time.strftime("%Y%m%d-%H%M%S")
    asyncio.run(run(plan, out))
    print((out / "results.md").read_text())
    print(f"written to {out}")


if __name__ == "__main__":
    main()
