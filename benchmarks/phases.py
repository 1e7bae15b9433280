"""The measurements, each against one running server and the load generator.

Every phase returns plain numbers; ``benchmarks.report`` turns rounds of them into the
table. Freshness (a source change to every client) is in ``benchmarks.fresh``. Times are
``time.monotonic`` readings, which all processes share on Linux.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from dataclasses import dataclass

import aiohttp

from benchmarks.loadgroup import LoadGroup
from benchmarks.procs import Child, cpu_seconds, socket_count
from benchmarks.trace import gc_pauses

QUEUE_PATH = "/api/v1/ws/queue"
SETTLE_SECONDS = 2.0
POLLER_ATTEMPTS = 40  # new connections tried to reach the queue's poller among the workers (each 1 in N)


@dataclass
class Target:
    """One running server under test, and the tools to drive it."""

    kind: str  # "console", "console-workers2", "baseline", "aiohttp" or "websockets"
    server: Child
    loadgen: LoadGroup
    http: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        """The server's HTTP root."""
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def control_url(self) -> str:
        """Where its ``/_bench/...`` hooks are: the same port, or a peer's separate control port."""
        return f"http://127.0.0.1:{self.server.extra.get('control_port', self.server.port)}"


def new_marker() -> str:
    """A string that occurs in nothing but the change it marks."""
    return "bmk" + uuid.uuid4().hex[:13]


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def settled_rss(server: Child, samples: int = 5) -> int:
    """Median RSS (of every process that serves) over ``samples`` readings 0.2 s apart."""
    readings = []
    for _ in range(samples):
        readings.append(server.rss_bytes())
        await asyncio.sleep(0.2)
    return int(statistics.median(readings))


async def memory_and_accept(target: Target, steps: tuple[int, ...], concurrency: int) -> dict:
    """RSS per idle connection at each step (minus RSS at 0), and connection rates on the way."""
    loadgen, server = target.loadgen, target.server
    await loadgen.call("open", path=QUEUE_PATH, count=20, tag="warmup")
    await loadgen.call("reset_all")
    await asyncio.sleep(SETTLE_SECONDS)
    rss_zero = await settled_rss(server)
    result: dict = {"rss_zero_mb": rss_zero / 2**20}
    opened, handshake_s, ready_s, loadgen_cpu = 0, 0.0, 0.0, 0.0
    for step in steps:
        before = loadgen.cpu_seconds()
        answer = await loadgen.call("open", path=QUEUE_PATH, count=step - opened, concurrency=concurrency)
        loadgen_cpu += loadgen.cpu_seconds() - before
        handshake_s += answer["handshake_s"]
        ready_s += answer["ready_s"]
        opened = step
        await asyncio.sleep(SETTLE_SECONDS)
        rss = await settled_rss(server)
        result[f"rss_per_conn_kb_{step}"] = (rss - rss_zero) / answer["open"] / 1024
        result[f"open_{step}"] = answer["open"]
        named = server.named_pids()
        if len(named) > 1:  # where the kernel put them: each process's sockets
            result[f"sockets_by_process_{step}"] = {name: socket_count(pid) for name, pid in named.items()}
        result["snapshot_bytes"] = answer["first_frame_bytes"]
    result["accept_per_s"] = opened / handshake_s
    result["ready_per_s"] = opened / ready_s
    # Near 100: the clients' parsing of the snapshots, not the server, set the pace.
    result["loadgen_cpu_pct_connecting"] = 100 * loadgen_cpu / ready_s
    return result


async def idle_cpu(target: Target, windows: int, window_seconds: float) -> dict:
    """The server's CPU share (percent of one core) in each of ``windows`` windows while its clients sit idle."""
    server, loadgen = target.server, target.loadgen
    readings, loadgen_before = [], loadgen.cpu_seconds()
    each_before = {name: (pid, cpu_seconds(pid)) for name, pid in server.named_pids().items()}
    started, cpu_before = time.monotonic(), server.cpu_seconds()
    window_start, window_cpu = started, cpu_before
    for _ in range(windows):
        await asyncio.sleep(window_seconds)
        now, cpu = time.monotonic(), server.cpu_seconds()
        readings.append(100 * (cpu - window_cpu) / (now - window_start))
        window_start, window_cpu = now, cpu
    elapsed = time.monotonic() - started
    stats = await target.loadgen.call("stats")
    # Workers: which process (parent, each worker, redis-server) the idle CPU went to.
    each = {name: 100 * (cpu_seconds(pid) - before) / elapsed for name, (pid, before) in each_before.items()}
    return {"idle_cpu_pct": 100 * (server.cpu_seconds() - cpu_before) / elapsed, "idle_seconds": elapsed,
            **({"idle_cpu_pct_by_process": each} if len(each) > 1 else {}),
            "idle_windows_pct": readings, "idle_median_pct": statistics.median(readings),
            "idle_min_pct": min(readings), "idle_max_pct": max(readings), "idle_open": stats["open"],
            "idle_loadgen_cpu_pct": 100 * (loadgen.cpu_seconds() - loadgen_before) / elapsed}


async def _call_hook(target: Target, hook: str, marker: str, size: int) -> dict:
    """POST the hook; with workers, on new connections until one lands on the queue's poller (the others: 409)."""
    url, params = f"{target.control_url}/_bench/{hook}", {"marker": marker, "size": size}
    headers = {"Connection": "close"} if target.kind == "console-workers2" else {}
    for _ in range(POLLER_ATTEMPTS):
        async with target.http.post(url, params=params, headers=headers) as resp:
            if resp.status != 409 or not headers:
                resp.raise_for_status()
                return await resp.json()
    raise RuntimeError(f"no worker answered as the queue's poller in {POLLER_ATTEMPTS} connections")


async def _hooked_delivery(target: Target, hook: str, size: int) -> dict:
    marker = new_marker()
    await target.loadgen.call("arm", marker=marker)
    timing = await _call_hook(target, hook, marker, size)
    collected = await target.loadgen.call("collect", timeout=60.0)
    arrivals = collected["arrivals"]
    nan = float("nan")
    result = {"client_s": (max(arrivals) - timing["t0"]) if arrivals else nan,
              "server_s": timing["t1"] - timing["t0"], "missing": collected["missing"], "n": timing["n"],
              "frame_bytes": collected["frame_bytes"], "gc_s": 0.0, "bad_json": collected["bad_json"],
              # From the publish call (diff and encoding included) to the last and the first client:
              # what one process and workers behind Redis can be compared on.
              "published_last_s": (max(arrivals) - timing["tp"]) if arrivals and "tp" in timing else nan,
              "published_first_s": (min(arrivals) - timing["tp"]) if arrivals and "tp" in timing else nan}
    if target.kind == "console-workers2":  # the hook's count is one worker's: the load generator's is all
        result["n"] = len(arrivals) + collected["missing"]
    if target.kind == "console":
        async with target.http.get(f"{target.base_url}/_bench/trace", params={"since": timing["t0"]}) as resp:
            result["gc_s"] = sum(gc_pauses(await resp.json(), timing["t0"], timing["t1"]).values())
    return result


async def _full_collection(target: Target) -> dict:
    if target.kind in ("baseline", "console-workers2"):  # workers: one of them would answer
        return {}
    async with target.http.post(f"{target.control_url}/_bench/gc") as resp:
        timing = await resp.json()
    return {"full_gc_ms": 1000 * timing["seconds"], "gc_objects": timing["objects"]}


async def fanout(target: Target, repetitions: int, size: int = 1024) -> dict:
    """A ~1 KB patch to every client vs a pre-built frame to the same transports, interleaved.

    Workers have no floor (its hook writes to one worker's transports): the patch alone.
    """
    hooks = ["patch"] if target.kind == "console-workers2" else ["floor", "patch"]
    runs: dict[str, list[dict]] = {hook: [] for hook in hooks}
    for _ in range(repetitions):
        order = list(hooks)
        random.shuffle(order)
        for hook in order:
            runs[hook].append(await _hooked_delivery(target, hook, size))
            await asyncio.sleep(0.5)
    result = {"fanout_n": runs["patch"][-1]["n"], "fanout_missing": sum(r["missing"] for r in runs["patch"]),
              "fanout_bad_json": sum(r["bad_json"] for done in runs.values() for r in done),
              **await _full_collection(target), "fanout_frame_bytes": runs["patch"][-1]["frame_bytes"],
              "fanout_runs_ms": {hook: [round(1000 * r["client_s"], 1) for r in done] for hook, done in runs.items()},
              "fanout_gc_ms": {hook: [round(1000 * r["gc_s"], 1) for r in done] for hook, done in runs.items()}}
    result |= _published(runs["patch"])
    if "floor" not in runs:
        return result
    result["floor_frame_bytes"] = runs["floor"][-1]["frame_bytes"]
    for side in ("client", "server"):
        floor = statistics.median(r[f"{side}_s"] for r in runs["floor"])
        patch = statistics.median(r[f"{side}_s"] for r in runs["patch"])
        result |= {f"fanout_floor_{side}_ms": 1000 * floor, f"fanout_patch_{side}_ms": 1000 * patch,
                   f"fanout_ratio_{side}": patch / floor}
    return result


def _published(patches: list[dict]) -> dict:
    """Publish call → last and → first client over the repetitions: p50 / p99 (ms) and every repetition's."""
    result: dict = {}
    for end in ("last", "first"):
        times = [r[f"published_{end}_s"] for r in patches if r[f"published_{end}_s"] == r[f"published_{end}_s"]]
        if times:
            result[f"fanout_published_{end}_ms"] = {"p50": 1000 * percentile(times, 0.5),
                                                    "p99": 1000 * percentile(times, 0.99),
                                                    "runs": [round(1000 * t, 2) for t in times]}
    return result


async def channel_is_wired(target: Target, channel: str) -> bool:
    """True when the console polls ``channel`` (its source state left ``pending``)."""
    if target.kind not in ("console", "console-workers2"):
        return True
    async with target.http.get(f"{target.base_url}/api/v1/{channel}") as resp:
        body = await resp.json()
    return body["data"]["meta"].get("source") != "pending"
