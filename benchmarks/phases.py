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

from benchmarks.procs import Child, LoadGenerator, cpu_seconds, rss_bytes
from benchmarks.trace import gc_pauses

QUEUE_PATH = "/api/v1/ws/queue"
SETTLE_SECONDS = 2.0


@dataclass
class Target:
    """One running server under test, and the tools to drive it."""

    kind: str  # "console", "baseline", "aiohttp" or "websockets"
    server: Child
    loadgen: LoadGenerator
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


async def settled_rss(pid: int, samples: int = 5) -> int:
    """Median RSS over ``samples`` readings 0.2 s apart."""
    readings = []
    for _ in range(samples):
        readings.append(rss_bytes(pid))
        await asyncio.sleep(0.2)
    return int(statistics.median(readings))


async def memory_and_accept(target: Target, steps: tuple[int, ...], concurrency: int) -> dict:
    """RSS per idle connection at each step (minus RSS at 0), and connection rates on the way."""
    loadgen, pid = target.loadgen, target.server.pid
    await loadgen.call("open", path=QUEUE_PATH, count=20, tag="warmup")
    await loadgen.call("reset_all")
    await asyncio.sleep(SETTLE_SECONDS)
    rss_zero = await settled_rss(pid)
    result: dict = {"rss_zero_mb": rss_zero / 2**20}
    opened, handshake_s, ready_s, loadgen_cpu = 0, 0.0, 0.0, 0.0
    for step in steps:
        before = cpu_seconds(loadgen.child.pid)
        answer = await loadgen.call("open", path=QUEUE_PATH, count=step - opened, concurrency=concurrency)
        loadgen_cpu += cpu_seconds(loadgen.child.pid) - before
        handshake_s += answer["handshake_s"]
        ready_s += answer["ready_s"]
        opened = step
        await asyncio.sleep(SETTLE_SECONDS)
        rss = await settled_rss(pid)
        result[f"rss_per_conn_kb_{step}"] = (rss - rss_zero) / answer["open"] / 1024
        result[f"open_{step}"] = answer["open"]
        result["snapshot_bytes"] = answer["first_frame_bytes"]
    result["accept_per_s"] = opened / handshake_s
    result["ready_per_s"] = opened / ready_s
    # Near 100: the clients' parsing of the snapshots, not the server, set the pace.
    result["loadgen_cpu_pct_connecting"] = 100 * loadgen_cpu / ready_s
    return result


async def idle_cpu(target: Target, windows: int, window_seconds: float) -> dict:
    """The server's CPU share (percent of one core) in each of ``windows`` windows while its clients sit idle."""
    pid, loadgen_pid = target.server.pid, target.loadgen.child.pid
    readings, loadgen_before = [], cpu_seconds(loadgen_pid)
    started, cpu_before = time.monotonic(), cpu_seconds(pid)
    window_start, window_cpu = started, cpu_before
    for _ in range(windows):
        await asyncio.sleep(window_seconds)
        now, cpu = time.monotonic(), cpu_seconds(pid)
        readings.append(100 * (cpu - window_cpu) / (now - window_start))
        window_start, window_cpu = now, cpu
    elapsed = time.monotonic() - started
    stats = await target.loadgen.call("stats")
    return {"idle_cpu_pct": 100 * (cpu_seconds(pid) - cpu_before) / elapsed, "idle_seconds": elapsed,
            "idle_windows_pct": readings, "idle_median_pct": statistics.median(readings),
            "idle_min_pct": min(readings), "idle_max_pct": max(readings), "idle_open": stats["open"],
            "idle_loadgen_cpu_pct": 100 * (cpu_seconds(loadgen_pid) - loadgen_before) / elapsed}


async def _hooked_delivery(target: Target, hook: str, size: int) -> dict:
    marker = new_marker()
    await target.loadgen.call("arm", marker=marker)
    async with target.http.post(f"{target.control_url}/_bench/{hook}", params={"marker": marker, "size": size}) as resp:
        resp.raise_for_status()
        timing = await resp.json()
    collected = await target.loadgen.call("collect", timeout=60.0)
    arrivals = collected["arrivals"]
    result = {"client_s": (max(arrivals) - timing["t0"]) if arrivals else float("nan"),
              "server_s": timing["t1"] - timing["t0"], "missing": collected["missing"], "n": timing["n"],
              "frame_bytes": collected["frame_bytes"], "gc_s": 0.0, "bad_json": collected["bad_json"]}
    if target.kind == "console":
        async with target.http.get(f"{target.base_url}/_bench/trace", params={"since": timing["t0"]}) as resp:
            result["gc_s"] = sum(gc_pauses(await resp.json(), timing["t0"], timing["t1"]).values())
    return result


async def _full_collection(target: Target) -> dict:
    if target.kind == "baseline":
        return {}
    async with target.http.post(f"{target.control_url}/_bench/gc") as resp:
        timing = await resp.json()
    return {"full_gc_ms": 1000 * timing["seconds"], "gc_objects": timing["objects"]}


async def fanout(target: Target, repetitions: int, size: int = 1024) -> dict:
    """A ~1 KB patch to every client vs a pre-built frame to the same transports, interleaved."""
    runs: dict[str, list[dict]] = {"floor": [], "patch": []}
    for _ in range(repetitions):
        order = ["floor", "patch"]
        random.shuffle(order)
        for hook in order:
            runs[hook].append(await _hooked_delivery(target, hook, size))
            await asyncio.sleep(0.5)
    result = {"fanout_n": runs["patch"][-1]["n"], "fanout_missing": sum(r["missing"] for r in runs["patch"]),
              "fanout_bad_json": sum(r["bad_json"] for done in runs.values() for r in done),
              **await _full_collection(target), "fanout_frame_bytes": runs["patch"][-1]["frame_bytes"],
              "floor_frame_bytes": runs["floor"][-1]["frame_bytes"],
              "fanout_runs_ms": {hook: [round(1000 * r["client_s"], 1) for r in done] for hook, done in runs.items()},
              "fanout_gc_ms": {hook: [round(1000 * r["gc_s"], 1) for r in done] for hook, done in runs.items()}}
    for side in ("client", "server"):
        floor = statistics.median(r[f"{side}_s"] for r in runs["floor"])
        patch = statistics.median(r[f"{side}_s"] for r in runs["patch"])
        result |= {f"fanout_floor_{side}_ms": 1000 * floor, f"fanout_patch_{side}_ms": 1000 * patch,
                   f"fanout_ratio_{side}": patch / floor}
    return result


async def channel_is_wired(target: Target, channel: str) -> bool:
    """True when the console polls ``channel`` (its source state left ``pending``)."""
    if target.kind != "console":
        return True
    async with target.http.get(f"{target.base_url}/api/v1/{channel}") as resp:
        body = await resp.json()
    return body["data"]["meta"].get("source") != "pending"
