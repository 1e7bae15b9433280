"""``python -m benchmarks.compat``: the compat surface's whole documents beside the native patches, in one run.

For each client count N, three phases, each on a fresh console started on the benchmark
workspace with ``[compat.tac_webbuilder]`` set (``backend_url = ""``):

- ``both``: N native clients on ``/api/v1/ws/queue`` (one load generator process) and N
  compat clients on ``<prefix>/api/v1/ws/queue`` (a second one), connected at once, so
  every change reaches both, as with both clients open in a deployment; the driver arms
  both load generators, commits, and collects from both. This is the measurement.
- ``native`` and ``compat``: the same N of one protocol alone, the same series of changes:
  the reference that shows what the other set of clients cost each (they share the
  server's core, and the load generators share the other one).

Each change is a one-row ``phase_queue`` commit, as ``benchmarks.fresh`` makes them,
carrying a marker. Per change and protocol: the payload each client received, commit →
first and → last client that had received and JSON-decoded it (every client decodes every
frame), and the server's own time for each fan-out.

The committed row is always one of the 100 the compat ``queue_update`` document holds
(the original's ``ORDER BY feature_id, phase_number LIMIT 100``): a change to any other
row leaves the document as it was, and compat clients get nothing.

The server is ``benchmarks.server_entry``'s console (hooks and trace included) started
through this module's ``--serve``, which also times the broker's two listeners: the
native hub's delivery, and the compat fan-out's render and writes, and when the last
client's drain task (a frame above the transport's high-water mark takes one) has handed
its frame to the socket (``GET /_bench/compat``). Results go under
``benchmarks/results/compat-<timestamp>/``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.fresh import quantiles, server_cpu, settle
from benchmarks.hooks import HOOKS_ENV
from benchmarks.loadgen import raise_open_file_limit
from benchmarks.phases import QUEUE_PATH, Target, new_marker
from benchmarks.procs import (
    CLOCK_TICKS,
    Child,
    LoadGenerator,
    cpu_seconds,
    machine_busy_seconds,
    pin,
    start_child,
    wait_until_quiet,
)
from benchmarks.report import machine
from benchmarks.servers import console_config, listening
from benchmarks.trace import gc_pauses, stages
from benchmarks.webhook_stub import WebhookStub
from benchmarks.workspace import Workspace, WorkspaceChanges, create_workspace

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROTOCOLS = ("native", "compat")
# Phases of each client count, each on a fresh console: both sets at once (the measurement),
# then each alone (the reference that shows what the other set cost it).
PHASES = {"both": PROTOCOLS, "native": ("native",), "compat": ("compat",)}
COMPAT_WINDOW = 100  # rows of the compat queue document (monitor.compat.runs.QUEUE_LIMIT)
TIMED = web.AppKey("bench_compat_timed", deque)
KEPT_RECORDS = 5_000


# --- in the server process (``--serve``) ---------------------------------------------------------------


def add_listener_timing(app: web.Application) -> None:
    """Time the broker's native and compat listeners per delivery; serve the records at ``/_bench/compat``."""
    app[TIMED] = deque(maxlen=KEPT_RECORDS)
    app.on_startup.append(_install_listener_timing)
    app.router.add_get("/_bench/compat", serve_listener_timing)


async def _install_listener_timing(app: web.Application) -> None:
    from monitor.broker import InProcessBroker
    from monitor.keys import BROKER, COMPAT, HUB

    broker, hub, fanout, records = app[BROKER], app[HUB], app[COMPAT].fanout, app[TIMED]
    assert isinstance(broker, InProcessBroker), "the listener timing wraps the in-process broker's listeners"
    marks: dict[str, Any] = {}
    waiting: set[asyncio.Task] = set()  # drain watchers, kept alive until done

    def watch_drains(record: dict, side: str, connections: tuple, written_at: float) -> None:
        # Frames above the transport's high-water mark go to a per-client drain task: the
        # last of them to finish is when the server has handed every client its frame.
        drainers = [c._drainer for c in connections if c._drainer is not None]
        record[f"{side}_backlogged"] = len(drainers)
        if not drainers:
            record[f"{side}_drained"] = written_at
            return

        async def drained() -> None:
            await asyncio.wait(drainers)
            record[f"{side}_drained"] = time.monotonic()

        task = asyncio.get_running_loop().create_task(drained())
        waiting.add(task)
        task.add_done_callback(waiting.discard)

    native_deliver, compat_deliver = hub.deliver, fanout.deliver
    render, compat_hub_deliver = fanout.frame, fanout.hub.deliver

    def timed_native(channel: str, frame: bytes) -> None:
        started = time.monotonic()
        native_deliver(channel, frame)
        ended = time.monotonic()
        record = {"channel": channel, "native_start": started, "native_end": ended, "native_n": hub.count(channel),
                  "native_bytes": len(frame)}
        watch_drains(record, "native", hub.connections(channel), ended)
        records.append(record)

    def timed_render(channel: str) -> bytes | None:
        frame = render(channel)
        marks["render_end"] = time.monotonic()
        return frame

    def timed_compat_writes(channel: str, frame: bytes) -> None:
        marks["write_start"] = time.monotonic()
        compat_hub_deliver(channel, frame)
        marks["write_end"] = time.monotonic()
        marks["compat_n"], marks["compat_bytes"] = fanout.hub.count(channel), len(frame)

    def timed_compat(channel: str, patch: bytes) -> None:
        marks.clear()
        started = time.monotonic()
        compat_deliver(channel, patch)
        ended = time.monotonic()
        if records and records[-1]["channel"] == channel and "compat_start" not in records[-1]:
            record = records[-1]  # the native delivery of the same frame, just before
        else:
            record = {"channel": channel}
            records.append(record)
        record |= {"compat_start": started, "compat_end": ended, **marks}
        if "write_end" in marks:
            watch_drains(record, "compat", fanout.hub.connections(channel), marks["write_end"])

    fanout.frame = timed_render  # looked up on the instance: CompatFanout.deliver calls self.frame
    fanout.hub.deliver = timed_compat_writes  # … and self.hub.deliver
    listeners, found = broker._listeners, 0
    for index, listener in enumerate(listeners):  # the broker holds the bound methods themselves
        if listener == native_deliver:
            listeners[index], found = timed_native, found + 1
        elif listener == compat_deliver:
            listeners[index], found = timed_compat, found + 1
    assert found == 2, "the broker no longer lists the hub's and the compat fan-out's deliver"


async def serve_listener_timing(request: web.Request) -> web.Response:
    """The records of deliveries that started after ``since`` (a monotonic time), oldest first."""
    since = float(request.query.get("since", "0"))
    return web.json_response([r for r in request.app[TIMED] if r.get("native_start", r.get("compat_start", 0)) > since])


def serve(config: str) -> int:
    """``benchmarks.server_entry``'s console, plus the listener timing."""
    from benchmarks.hooks import add_bench_routes
    from benchmarks.trace import add_tracing
    from monitor.app import create_app
    from monitor.keys import COMPAT
    from monitor.logs import configure_logging
    from monitor.server import serve_until_signalled
    from monitor.settings import find_config, load_settings

    if os.environ.get(HOOKS_ENV) != "1":
        print(f"benchmarks.compat --serve: set {HOOKS_ENV}=1 to run the console with benchmark hooks", file=sys.stderr)
        return 2
    settings = load_settings(find_config(config))
    raise_open_file_limit()
    configure_logging(settings.log.level, settings.log.format)
    app = create_app(settings)
    if COMPAT not in app:
        print("benchmarks.compat --serve: the config has no [compat.tac_webbuilder]", file=sys.stderr)
        return 2
    add_bench_routes(app)
    add_tracing(app)  # first: its startup wraps broker.deliver, which calls the listeners timed here
    add_listener_timing(app)
    asyncio.run(serve_until_signalled(settings, app))
    return 0


# --- the driver ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Side:
    """One protocol's clients: their load generator, path, and what the series collected."""

    name: str
    path: str
    loadgen: LoadGenerator
    opened: dict = dataclasses.field(default_factory=dict)
    firsts: list[float] = dataclasses.field(default_factory=list)  # per change: commit → first client
    lasts: list[float] = dataclasses.field(default_factory=list)  # per change: commit → last client
    pairs: list[float] = dataclasses.field(default_factory=list)  # every (change, client)
    from_server: list[float] = dataclasses.field(default_factory=list)  # listener start → last client
    frame_bytes: list[int] = dataclasses.field(default_factory=list)
    writes: list[float] = dataclasses.field(default_factory=list)  # the synchronous writes to every socket
    renders: list[float] = dataclasses.field(default_factory=list)  # compat: building + encoding the document
    drained: list[float] = dataclasses.field(default_factory=list)  # listener start → last drain task done
    backlogged: list[int] = dataclasses.field(default_factory=list)
    missing: int = 0
    bad_json: int = 0


def compat_settings(prefix: str) -> tuple[str, ...]:
    """``[compat.tac_webbuilder]`` with no backend (everything but the channel sockets is 404)."""
    return (f'compat.tac_webbuilder.prefix="{prefix}"', 'compat.tac_webbuilder.backend_url=""')


def compat_window(db_path: Path) -> tuple[str, ...]:
    """The queue rows the compat document holds: the original's first 100 by feature, then phase."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT queue_id FROM phase_queue ORDER BY feature_id, phase_number LIMIT ?",
                            (COMPAT_WINDOW,)).fetchall()
    finally:
        conn.close()
    return tuple(row[0] for row in rows)


async def start_server(workspace: Workspace, webhook_url: str, logs: Path, overrides: tuple[str, ...]) -> Child:
    """``python -m benchmarks.compat --serve <generated config>`` with the hooks switched on."""
    config = workspace.root / "config.toml"
    config.write_text(console_config(workspace, webhook_url, overrides))
    return await listening(await start_child("console", ["-m", "benchmarks.compat", "--serve", str(config)],
                                             logs / "console.log", env={HOOKS_ENV: "1"}))


async def one_change(target: Target, sides: list[Side], commit: Callable[[str], None], timeout: float,
                     traced: list[dict]) -> None:
    """Arm both load generators, commit one marked row, collect both; note the server's timings."""
    marker = new_marker()
    for side in sides:
        await side.loadgen.call("arm", marker=marker, tag="fresh")
    commit(marker)
    changed_at = time.monotonic()
    collected = await asyncio.gather(*(side.loadgen.call("collect", timeout=timeout) for side in sides))
    async with target.http.get(f"{target.control_url}/_bench/compat", params={"since": changed_at}) as resp:
        records = [r for r in await resp.json() if r["channel"] == "queue"]
    async with target.http.get(f"{target.control_url}/_bench/trace", params={"since": changed_at}) as resp:
        events = await resp.json()
    record = records[0] if records else {}
    last_arrival = changed_at
    for side, got in zip(sides, collected, strict=True):
        arrivals = got["arrivals"]
        side.missing += got["missing"]
        side.bad_json = got["bad_json"]  # cumulative in the load generator
        side.frame_bytes.append(got["frame_bytes"])
        side.pairs += [arrival - changed_at for arrival in arrivals]
        if not arrivals:
            continue
        last_arrival = max(last_arrival, max(arrivals))
        side.firsts.append(min(arrivals) - changed_at)
        side.lasts.append(max(arrivals) - changed_at)
        start, end = record.get(f"{side.name}_start"), record.get(f"{side.name}_end")
        if start is None or end is None:
            continue
        side.from_server.append(max(arrivals) - start)
        if side.name == "native":
            side.writes.append(end - start)
        elif "write_end" in record:
            side.renders.append(record["render_end"] - start)
            side.writes.append(record["write_end"] - record["write_start"])
        if f"{side.name}_drained" in record:
            side.drained.append(record[f"{side.name}_drained"] - start)
            side.backlogged.append(record[f"{side.name}_backlogged"])
    stage = stages(events, "queue", changed_at)
    stage["gc_full"] = gc_pauses(events, changed_at, last_arrival).get("gen2", 0.0)
    traced.append(stage)


def process_cpu() -> dict[int, tuple[bool, float]]:
    """Every process's CPU seconds so far, and whether it is a kernel thread (ksoftirqd, kworker: parent 2)."""
    seen = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        seen[int(entry.name)] = (fields[1] == "2" or entry.name == "2",
                                 (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return seen


def softirq_seconds() -> float:
    """Seconds all CPUs have spent in interrupts and softirqs (loopback TCP's receive work is there)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (fields[5] + fields[6]) / CLOCK_TICKS


def machine_share(before: dict[int, tuple[bool, float]], ours: set[int], seconds: float) -> dict[str, float]:
    """Other processes' CPU since ``before`` (% of one core), user processes and kernel threads apart."""
    after = process_cpu()
    others = {False: 0.0, True: 0.0}
    for pid, (kernel, cpu) in after.items():
        if pid not in ours:
            others[kernel] += cpu - before.get(pid, (kernel, 0.0))[1]
    return {"other_processes_cpu_pct": 100 * others[False] / seconds,
            "kernel_threads_cpu_pct": 100 * others[True] / seconds}


async def measure_phase(args: argparse.Namespace, clients: int, protocols: tuple[str, ...],
                        changes: WorkspaceChanges, stub: WebhookStub, logs: Path) -> dict:
    """Start a console, connect ``clients`` of each of ``protocols``, make the series of changes, stop everything."""
    busy_before = await wait_until_quiet(15.0, 60.0)
    server = await start_server(changes.workspace, stub.url, logs, compat_settings(args.prefix) + tuple(args.set))
    generators: list[LoadGenerator] = []
    try:
        for name in protocols:
            generators.append(await LoadGenerator.start("127.0.0.1", server.port, logs / f"loadgen-{name}.log"))
        pin(server, 0)
        for generator in generators:
            pin(generator.child, 1)  # both on the core the server does not use
        paths = {"native": QUEUE_PATH, "compat": args.prefix + QUEUE_PATH}
        sides = [Side(name, paths[name], generator) for name, generator in zip(protocols, generators, strict=True)]
        async with aiohttp.ClientSession() as http:
            target = Target("console", server, generators[0], http)
            result = await run_series(args, clients, target, sides, changes)
        result["machine_busy_pct_before"] = busy_before
        return result
    finally:
        for generator in generators:
            await generator.stop()
        await server.stop()


async def run_series(args: argparse.Namespace, clients: int, target: Target, sides: list[Side],
                     changes: WorkspaceChanges) -> dict:
    """Connect every side's clients, then ``args.changes`` commits; per protocol, what arrived and when."""
    for side in sides:
        side.opened = await side.loadgen.call("open", path=side.path, count=clients, tag="fresh")
        print(f"    {side.name}: {side.opened['upgraded']:,} upgraded in {side.opened['ready_s']:.1f} s, "
              f"first frame {side.opened['first_frame_bytes']:,.0f} bytes", flush=True)
    await settle(target.server)
    ours = {os.getpid(), target.server.pid, *(side.loadgen.child.pid for side in sides)}
    loadgen_before = [cpu_seconds(side.loadgen.child.pid) for side in sides]
    processes_before, softirq_before, busy_before = process_cpu(), softirq_seconds(), machine_busy_seconds()
    cpu_before, started, traced, made = await server_cpu(target), time.monotonic(), [], 0
    while made < args.changes and time.monotonic() - started < args.series_limit:
        await one_change(target, sides, changes.commit_queue_row, args.timeout, traced)
        made += 1
        await asyncio.sleep(random.uniform(*args.gap))
    series_s = time.monotonic() - started
    loadgen_cpu = [cpu_seconds(side.loadgen.child.pid) - before for side, before in zip(sides, loadgen_before,
                                                                                         strict=True)]
    machine_during = machine_share(processes_before, ours, series_s) | {
        "softirq_cpu_pct": 100 * (softirq_seconds() - softirq_before) / series_s,
        "machine_busy_pct": 100 * (machine_busy_seconds() - busy_before) / series_s}
    await settle(target.server)
    cpu = await server_cpu(target) - cpu_before
    result: dict = {"clients": clients, "changes": made, "planned_changes": args.changes, "series_s": series_s,
                    "server_cpu_per_change_ms": 1000 * cpu / max(1, made),
                    "publish_ms": quantiles([s["publish"] for s in traced if "publish" in s]),
                    "changes_with_full_gc": sum(1 for s in traced if s.get("gc_full")), **machine_during}
    for side, spent in zip(sides, loadgen_cpu, strict=True):
        everything = await side.loadgen.call("stats")
        stats = everything["by_tag"].get("fresh", {})
        per_client = max(1, stats.get("clients", 0)) * max(1, made)
        result[side.name] = {
            "clients": side.opened["upgraded"], "open_at_end": everything["open"],
            "close_codes": everything["close_codes"],
            "connect_s": side.opened["ready_s"], "first_frame_bytes": side.opened["first_frame_bytes"],
            "change_frame_bytes": statistics.median(side.frame_bytes) if side.frame_bytes else 0,
            "bytes_per_client_per_change": stats.get("after_first", 0) / per_client,
            "frames_per_client_per_change": (stats.get("frames", 0) - stats.get("clients", 0)) / per_client,
            "first_ms": quantiles(side.firsts), "last_ms": quantiles(side.lasts), "pair_ms": quantiles(side.pairs),
            "server_start_to_last_client_ms": quantiles(side.from_server),
            "writes_ms": quantiles(side.writes), "render_ms": quantiles(side.renders),
            "start_to_drained_ms": quantiles(side.drained),
            "backlogged_clients_median": statistics.median(side.backlogged) if side.backlogged else None,
            "loadgen_cpu_per_change_ms": 1000 * spent / max(1, made),
            "delivered": len(side.pairs), "missing": side.missing, "bad_json": side.bad_json}
    return result


async def run(args: argparse.Namespace, out: Path) -> dict:
    """The workspace, the webhook stub, then every client count and phase in turn, a fresh console each."""
    raise_open_file_limit()
    results: dict = {"machine": machine(), "args": {k: v for k, v in vars(args).items() if k != "serve"},
                     "counts": {}}
    stub = WebhookStub()
    await stub.start()
    try:
        with tempfile.TemporaryDirectory(prefix="monitor-bench-compat-") as root:
            workspace = await asyncio.to_thread(create_workspace, Path(root))
            window = compat_window(workspace.db_path)
            changes = WorkspaceChanges(dataclasses.replace(workspace, queue_ids=window))
            for clients in args.clients:
                results["counts"][str(clients)] = {}
                for phase in args.phases:
                    print(f"{clients:,} clients of each protocol, {phase}", flush=True)
                    began = time.monotonic()
                    result = await measure_phase(args, clients, PHASES[phase], changes, stub,
                                                 out / f"clients-{clients}-{phase}")
                    results["counts"][str(clients)][phase] = result
                    print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
                    write_outputs(out, results)
    finally:
        await stub.stop()
    return results


def _pair(stats: dict, *names: str, digits: int = 0) -> str:
    return " / ".join(f"{stats[name]:,.{digits}f}" if name in stats else "–" for name in names)


def _nan(stats: dict, name: str = "p50") -> float:
    return stats.get(name, float("nan"))


def render_markdown(results: dict) -> str:
    """The tables: per client count, phase and protocol; then per phase, the server and the machine."""
    lines = ["| clients | phase | protocol | bytes/change/client | commit → first p50 / p99 (ms) | commit → last"
             " p50 / p99 (ms) | listener start → last client p50 / p99 (ms) | server: writes / handed to every"
             " socket, p50 (ms) |", "|---|---|---|---|---|---|---|---|"]
    for count, phases in results["counts"].items():
        for phase, result in phases.items():
            for name in PHASES[phase]:
                side = result[name]
                server = f"{_nan(side['writes_ms']):.1f}"
                if side["render_ms"]:
                    server = f"{_nan(side['render_ms']):.1f} render + {_nan(side['writes_ms']):.1f} writes"
                server += f" / {_nan(side['start_to_drained_ms']):.1f}"
                lines.append(f"| {int(count):,} | {phase} | {name} | {side['change_frame_bytes']:,.0f} | "
                             f"{_pair(side['first_ms'], 'p50', 'p99')} | {_pair(side['last_ms'], 'p50', 'p99')} | "
                             f"{_pair(side['server_start_to_last_client_ms'], 'p50', 'p99')} | {server} |")
    lines += ["", "| clients | phase | changes | publish after commit p50 (ms) | server CPU per change (ms) | load"
              " generators' CPU per change (ms) | missing | bad JSON | clients through a drain task (median) |"
              " softirq / other processes (% of a core) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for count, phases in results["counts"].items():
        for phase, result in phases.items():
            sides = [result[name] for name in PHASES[phase]]
            per = " / ".join(f"{name} {result[name]['loadgen_cpu_per_change_ms']:.0f}" for name in PHASES[phase])
            drains = " / ".join(f"{name} {result[name]['backlogged_clients_median']}" for name in PHASES[phase])
            lines.append(f"| {int(count):,} | {phase} | {result['changes']} | {_nan(result['publish_ms']):.1f} | "
                         f"{result['server_cpu_per_change_ms']:.0f} | {per} | {sum(s['missing'] for s in sides)} | "
                         f"{sum(s['bad_json'] for s in sides)} | {drains} | {result['softirq_cpu_pct']:.1f} / "
                         f"{result['other_processes_cpu_pct']:.1f} |")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, results: dict) -> None:
    """results.json (everything) and results.md (the tables)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(render_markdown(results))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(","))


def _gap(text: str) -> tuple[float, float]:
    low, high = (float(part) for part in text.split(","))
    return low, high


def _phases(text: str) -> tuple[str, ...]:
    phases = tuple(text.split(","))
    if set(phases) - set(PHASES):
        raise argparse.ArgumentTypeError(f"phases are {','.join(PHASES)}")
    return phases


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="the compat surface's whole documents beside the native patches")
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)  # the server process
    parser.add_argument("--clients", type=_ints, default=(1000, 5000),
                        help="clients of EACH protocol, per count (default 1000,5000; 2 × count sockets)")
    parser.add_argument("--changes", type=int, default=100, help="one-row queue commits per count (default 100)")
    parser.add_argument("--gap", type=_gap, default=(0.2, 0.6), help="seconds between changes, uniform (0.2,0.6)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds one change may take to reach everyone")
    parser.add_argument("--series-limit", type=float, default=300.0, help="seconds one series may take (300)")
    parser.add_argument("--phases", type=_phases, default=tuple(PHASES),
                        help="of both,native,compat: both sets at once, and each alone (default all three)")
    parser.add_argument("--prefix", default="/tac", help="compat.tac_webbuilder.prefix (default /tac)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a console config key (TOML value), e.g. sources.watch_debounce=0.02")
    args = parser.parse_args()
    limit = raise_open_file_limit()
    if args.serve is None and 2 * max(args.clients) + 256 > limit:
        parser.error(f"2 × {max(args.clients):,} clients need more descriptors than RLIMIT_NOFILE ({limit:,}) allows")
    return args


def main() -> None:
    """Serve (``--serve``), or drive the whole run and print the table."""
    args = parse_args()
    if args.serve is not None:
        sys.exit(serve(args.serve))
    out = RESULTS_DIR / time.strftime("compat-%Y%m%d-%H%M%S")
    asyncio.run(run(args, out))
    print((out / "results.md").read_text())
    print(f"written to {out}")


if __name__ == "__main__":
    main()
