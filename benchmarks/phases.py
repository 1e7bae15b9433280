"""The measurements, each against one running server and the load generator.

Every phase returns plain numbers; ``benchmarks.report`` turns rounds of them into the
table. Times are ``time.monotonic`` readings, which all processes share on Linux.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from benchmarks.procs import Child, LoadGenerator, cpu_seconds, rss_bytes
from benchmarks.trace import gc_pauses, stages

QUEUE_PATH = "/api/v1/ws/queue"
SETTLE_SECONDS = 2.0


@dataclass
class Target:
    """One running server under test, and the tools to drive it."""

    kind: str  # "console" or "baseline"
    server: Child
    loadgen: LoadGenerator
    http: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        """The server's HTTP root."""
        return f"http://127.0.0.1:{self.server.port}"


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
    opened, handshake_s, ready_s = 0, 0.0, 0.0
    for step in steps:
        answer = await loadgen.call("open", path=QUEUE_PATH, count=step - opened, concurrency=concurrency)
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
    return result


async def idle_cpu(target: Target, seconds: float) -> dict:
    """The server's CPU share (percent of one core) while its connections sit idle."""
    pid, loadgen_pid = target.server.pid, target.loadgen.child.pid
    windows, loadgen_before = [], cpu_seconds(loadgen_pid)
    started, cpu_before = time.monotonic(), cpu_seconds(pid)
    window_start, window_cpu = started, cpu_before
    while time.monotonic() - started < seconds:
        await asyncio.sleep(min(10.0, seconds - (time.monotonic() - started)))
        now, cpu = time.monotonic(), cpu_seconds(pid)
        windows.append(100 * (cpu - window_cpu) / (now - window_start))
        window_start, window_cpu = now, cpu
    elapsed = time.monotonic() - started
    stats = await target.loadgen.call("stats")
    return {"idle_cpu_pct": 100 * (cpu_seconds(pid) - cpu_before) / elapsed, "idle_seconds": elapsed,
            "idle_windows_pct": windows, "idle_open": stats["open"],
            "idle_loadgen_cpu_pct": 100 * (cpu_seconds(loadgen_pid) - loadgen_before) / elapsed}


async def _hooked_delivery(target: Target, hook: str, size: int) -> dict:
    marker = new_marker()
    await target.loadgen.call("arm", marker=marker)
    async with target.http.post(f"{target.base_url}/_bench/{hook}", params={"marker": marker, "size": size}) as resp:
        resp.raise_for_status()
        timing = await resp.json()
    collected = await target.loadgen.call("collect", timeout=60.0)
    arrivals = collected["arrivals"]
    result = {"client_s": (max(arrivals) - timing["t0"]) if arrivals else float("nan"),
              "server_s": timing["t1"] - timing["t0"], "missing": collected["missing"], "n": timing["n"],
              "frame_bytes": collected["frame_bytes"], "gc_s": 0.0}
    if target.kind == "console":
        async with target.http.get(f"{target.base_url}/_bench/trace", params={"since": timing["t0"]}) as resp:
            result["gc_s"] = sum(gc_pauses(await resp.json(), timing["t0"], timing["t1"]).values())
    return result


async def _full_collection(target: Target) -> dict:
    if target.kind != "console":
        return {}
    async with target.http.post(f"{target.base_url}/_bench/gc") as resp:
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


async def freshness(target: Target, path: str, change: Callable[[str], None], changes: int, clients: int,
                    timeout: float, gap: tuple[float, float]) -> dict:
    """Change-to-client latency: each change carries a marker; every client times its arrival."""
    loadgen = target.loadgen
    opened = await loadgen.call("open", path=path, count=clients, tag="fresh")
    latencies, missing, frame_bytes, traced = [], 0, [], []
    for _ in range(changes):
        marker = new_marker()
        await loadgen.call("arm", marker=marker, tag="fresh")
        change(marker)
        changed_at = time.monotonic()
        collected = await loadgen.call("collect", timeout=timeout)
        latencies += [arrival - changed_at for arrival in collected["arrivals"]]
        missing += collected["missing"]
        frame_bytes.append(collected["frame_bytes"])
        traced.append(await _stages(target, path.rsplit("/", 1)[1], changed_at, collected["arrivals"]))
        await asyncio.sleep(random.uniform(*gap))
    result = {"clients": opened["upgraded"], "changes": changes, "delivered": len(latencies), "missing": missing,
              "snapshot_bytes": opened["first_frame_bytes"], "change_frame_bytes": statistics.median(frame_bytes)}
    if latencies:
        result |= {f"p{q}_ms": 1000 * percentile(latencies, q / 100) for q in (50, 95, 99)}
        result["max_ms"] = 1000 * max(latencies)
    names = sorted({name for stage in traced for name in stage})
    result["stages_ms"] = {n: 1000 * statistics.median(s[n] for s in traced if n in s) for n in names}
    slowest = max(traced, key=lambda stage: stage.get("last_client", 0.0))
    result["slowest_change_ms"] = {name: round(1000 * value, 1) for name, value in slowest.items()}
    return result


async def _stages(target: Target, channel: str, changed_at: float, arrivals: list[float]) -> dict[str, float]:
    """Where the time of one change went (console only: the replica has no tracing)."""
    if target.kind != "console":
        return {}
    async with target.http.get(f"{target.base_url}/_bench/trace", params={"since": changed_at}) as resp:
        events = await resp.json()
    result = stages(events, channel, changed_at)
    if arrivals:
        result["last_client"] = max(arrivals) - changed_at
        result["gc"] = sum(gc_pauses(events, changed_at, max(arrivals)).values())
    return result


async def channel_is_wired(target: Target, channel: str) -> bool:
    """True when the console polls ``channel`` (its source state left ``pending``)."""
    if target.kind != "console":
        return True
    async with target.http.get(f"{target.base_url}/api/v1/{channel}") as resp:
        body = await resp.json()
    return body["data"]["meta"].get("source") != "pending"
