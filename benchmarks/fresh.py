"""Freshness, end to end: a source change (a real commit or file write) to every client's parsed frame.

Each change carries a marker; the driver takes ``time.monotonic()`` when the change is
committed, and every client records when it had received and JSON-decoded the frame
carrying the marker. Per change: the first and the last client; over the series: every
(change, client) pair, the garbage collections the console's trace saw between commit and
last client, and the server's CPU time per change.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.phases import Target, new_marker, percentile
from benchmarks.procs import Child
from benchmarks.trace import gc_pauses, stages

QUANTILES = (50, 95, 99)
QUIET_WAIT = 10.0  # after the last change, how long to wait for the server's CPU to settle


@dataclass
class Series:
    """What a series of changes collected."""

    latencies: list[float] = field(default_factory=list)  # every (change, client) pair
    firsts: list[float] = field(default_factory=list)  # per change: commit → first client
    lasts: list[float] = field(default_factory=list)  # per change: commit → last client
    traced: list[dict] = field(default_factory=list)
    frame_bytes: list[int] = field(default_factory=list)
    missing: int = 0
    bad_json: int = 0


async def server_cpu(target: Target) -> float:
    """The server's CPU seconds so far, less what the benchmark's trace hook cost it (when it can say).

    Workers (which have no trace): the parent's, the workers' and redis-server's together.
    """
    if target.kind in ("baseline", "console-workers2"):
        return target.server.cpu_seconds()
    async with target.http.get(f"{target.control_url}/_bench/cpu") as resp:
        body = await resp.json()
    return body["cpu"] - body["hooks_cpu"]


async def settle(server: Child, limit: float = QUIET_WAIT) -> None:
    """Wait (at most ``limit`` s) until the server used at most one clock tick in half a second."""
    deadline, before = time.monotonic() + limit, server.cpu_seconds()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = server.cpu_seconds()
        if now - before <= 0.011:
            return
        before = now


async def _one_change(target: Target, path: str, change: Callable[[str], None], timeout: float,
                      series: Series) -> None:
    loadgen, marker = target.loadgen, new_marker()
    await loadgen.call("arm", marker=marker, tag="fresh")
    change(marker)
    changed_at = time.monotonic()
    collected = await loadgen.call("collect", timeout=timeout)
    arrivals = collected["arrivals"]
    series.latencies += [arrival - changed_at for arrival in arrivals]
    if arrivals:
        series.firsts.append(min(arrivals) - changed_at)
        series.lasts.append(max(arrivals) - changed_at)
    series.missing += collected["missing"]
    series.bad_json += collected["bad_json"]
    series.frame_bytes.append(collected["frame_bytes"])
    series.traced.append(await _stages(target, path.rsplit("/", 1)[1], changed_at, arrivals))


async def freshness(target: Target, path: str, change: Callable[[str], None], changes: int, clients: int,
                    timeout: float, gap: tuple[float, float], limit: float = 600.0) -> dict:
    """``changes`` changes to ``clients`` clients of ``path``, ``gap`` seconds apart (uniform); ``limit`` s at most."""
    opened = await target.loadgen.call("open", path=path, count=clients, tag="fresh")
    await settle(target.server)
    series, started, cpu_before = Series(), time.monotonic(), await server_cpu(target)
    made = 0
    while made < changes and time.monotonic() - started < limit:
        await _one_change(target, path, change, timeout, series)
        made += 1
        await asyncio.sleep(random.uniform(*gap))
    await settle(target.server)
    cpu = await server_cpu(target) - cpu_before
    result = {"clients": opened["upgraded"], "changes": made, "planned_changes": changes,
              "delivered": len(series.latencies),
              "missing": series.missing, "bad_json": series.bad_json, "snapshot_bytes": opened["first_frame_bytes"],
              "change_frame_bytes": statistics.median(series.frame_bytes), "series_s": time.monotonic() - started,
              "server_cpu_per_change_ms": 1000 * cpu / max(1, made)}
    return result | summarize(series)


def quantiles(values: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 and max of ``values`` (seconds), in milliseconds."""
    if not values:
        return {}
    return {**{f"p{q}": 1000 * percentile(values, q / 100) for q in QUANTILES}, "max": 1000 * max(values)}


def summarize(series: Series) -> dict:
    """Percentiles per client and per change, the collections met, and where the time went."""
    result: dict = {f"{name}_ms": value for name, value in quantiles(series.latencies).items()}
    spans = [last - first for first, last in zip(series.firsts, series.lasts, strict=True)]
    result |= {"first_ms": quantiles(series.firsts), "last_ms": quantiles(series.lasts), "span_ms": quantiles(spans),
               "gc": _gc(series.traced)}
    traced = [stage for stage in series.traced if stage]
    names = sorted({name for stage in traced for name in stage})
    result["stages_ms"] = {n: 1000 * statistics.median(s[n] for s in traced if n in s) for n in names}
    if traced:
        slowest = max(traced, key=lambda stage: stage.get("last_client", 0.0))
        result["slowest_change_ms"] = {name: round(1000 * value, 1) for name, value in slowest.items()}
    return result


def _gc(traced: list[dict]) -> dict:
    """How many changes met a full (generation 2) collection between commit and last client, and how long."""
    if not any("gc" in stage for stage in traced):
        return {}  # no trace: not measured
    full = [stage["gc_full"] for stage in traced if stage.get("gc_full")]
    return {"changes_with_full": len(full), "full_max_ms": 1000 * max(full, default=0.0),
            "full_total_ms": 1000 * sum(full), "all_total_ms": 1000 * sum(s.get("gc", 0.0) for s in traced)}


async def _stages(target: Target, channel: str, changed_at: float, arrivals: list[float]) -> dict[str, float]:
    """Where the time of one change went (console only: the others have no tracing)."""
    if target.kind != "console":
        return {}
    async with target.http.get(f"{target.control_url}/_bench/trace", params={"since": changed_at}) as resp:
        events = await resp.json()
    result = stages(events, channel, changed_at)
    if arrivals:
        result["last_client"] = max(arrivals) - changed_at
        pauses = gc_pauses(events, changed_at, max(arrivals))
        result["gc"], result["gc_full"] = sum(pauses.values()), pauses.get("gen2", 0.0)
    return result
