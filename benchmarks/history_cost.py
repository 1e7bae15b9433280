"""History-cost benchmark: what the console's own history costs per sampler pass, and on disk.

States: a fresh ``monitor demo`` workspace (its database and state files) and its webhook
stand-in, each channel read once by its real reader and published into a broker, so the
sampler reads demo-sized states: 39 queue rows, ~14 runs, 6 checks, 66 history runs, ...

- CPU per pass: one sampler pass over all 8 channels (read every series from the states,
  update memory, write the points to the file on aiosqlite's thread and commit), as
  process CPU time (both threads) over ``--passes`` passes on a simulated clock, one step
  apart. Also the part on the event loop alone (reading the series, updating memory), and
  one ``recent()`` of every channel (what a dashboard render asks for).
- Bytes on disk: ``--days`` days of passes at the default step (60 s) on a simulated
  clock, the figures moving as the demo's do (``monitor.demo.history_seed``), so hours
  roll up and old points are pruned as in a long run; then the WAL is checkpointed and
  the file measured, per table (SQLite's dbstat), per channel with series and per day.

Run: ``python -m benchmarks.history_cost [--passes 2000] [--days 30]``; prints a markdown
table and writes benchmarks/results/history_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from monitor.channels.base import SourceDown
from monitor.channels.registry import CHANNEL_NAMES, make_readers
from monitor.demo.history_seed import demo_figures
from monitor.demo.run import demo_settings
from monitor.demo.webhook_service import ApiCatalog, WebhookStats, start_webhook_service
from monitor.demo.workspace import create_workspace
from monitor.history.recorder import History
from monitor.history.series import SERIES, sample_channel
from monitor.history.store import FINE_HOURS, HOUR
from monitor.settings import HistorySettings
from monitor.sources.resources import Sources
from monitor.state import ChannelState

START = 1_790_000_000.0 // HOUR * HOUR  # a simulated clock, from an hour's start
STEP = 60.0


class Clock:
    """The simulated time the history reads."""

    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> float:
        return self.at


async def demo_states(root: Path) -> dict[str, dict[str, Any]]:
    """Every channel's state after one read of a fresh demo workspace, as the broker would hold it."""
    ws = await asyncio.to_thread(create_workspace, root, random.Random(1))
    service, port = await start_webhook_service(WebhookStats(), api=ApiCatalog())
    sources = Sources(demo_settings(ws, "127.0.0.1", 0, port))
    await sources.open()
    try:
        states = {}
        for name, reader in make_readers(sources).items():
            state = ChannelState(name, "bench")
            try:
                state.accept(await reader.read())
            except SourceDown as down:
                state.mark_error(str(down), down.data)
            states[name] = state.state
        return states
    finally:
        await sources.close()
        await service.cleanup()


async def cpu_per_pass(states: dict[str, dict[str, Any]], path: Path, passes: int) -> dict[str, float]:
    """Process CPU per full pass, CPU on the loop per pass, and per dashboard's ``recent()`` calls (ms)."""
    clock = Clock()
    history = History(HistorySettings(path=str(path), step=STEP), path, now=clock)
    await history.open()
    try:
        await history.sample(states)  # the series rows exist before the timing, as after the first minute
        started = time.process_time()
        for _ in range(passes):
            clock.at += STEP
            await history.sample(states)
        full = (time.process_time() - started) / passes
        started = time.process_time()
        window = history.window
        for _ in range(passes):
            for channel, state in states.items():
                window.put(channel, window.slot_index(clock.at), sample_channel(channel, state, clock.at))
        on_loop = (time.process_time() - started) / passes
        renders = {}
        for case in ("computed", "cached"):
            started = time.process_time()
            for _ in range(passes):
                if case == "computed":
                    window._recent.clear()  # as after a sampler pass: every channel's series built again
                for channel in CHANNEL_NAMES:
                    history.recent(channel)
            renders[case] = (time.process_time() - started) / passes
    finally:
        await history.close()
    return {"pass_ms": full * 1000, "on_loop_ms": on_loop * 1000,
            "recent_computed_ms": renders["computed"] * 1000, "recent_cached_ms": renders["cached"] * 1000}


def moving(states: dict[str, dict[str, Any]], figures: dict, at: float) -> dict[str, dict[str, Any]]:
    """``states`` with their recorded figures moved to what the demo's would be at ``at``."""
    moved = copy.copy(states)
    queue = moved["queue"] = {**states["queue"], "summary": copy.deepcopy(states["queue"]["summary"])}
    by_status = queue["summary"]["by_status"]
    by_status["running"] = round(figures[("queue", "running")](at, STEP))
    queue["summary"]["total"] = by_status["completed"] + round(figures[("queue", "depth")](at, STEP))
    for channel, name in (("adw-monitor", "running"), ("adw-monitor", "failed")):
        value = round(figures[(channel, name)](at, STEP))
        moved[channel] = {**moved[channel], "summary": {**moved[channel]["summary"], name: value}}
    for channel, name in (("workflow-history", "success_rate"), ("planned-features", "completion_rate"),
                          ("webhook-status", "success_rate")):
        value = round(figures[(channel, name)](at, STEP), 1)
        moved[channel] = {**moved[channel], "summary": {**moved[channel]["summary"], name: value}}
    return moved


async def bytes_on_disk(states: dict[str, dict[str, Any]], path: Path, days: int) -> dict[str, Any]:
    """The file after ``days`` days of passes: its size, by table, per channel with series and per day."""
    clock = Clock()
    history = History(HistorySettings(path=str(path), step=STEP, days=days), path, now=clock)
    figures = demo_figures(random.Random(2), [])
    await history.open()
    started = time.perf_counter()
    try:
        for _ in range(int(days * 86_400 / STEP)):
            await history.sample(moving(states, figures, clock.at))
            clock.at += STEP
        counts = {table: await history.store.count(table) for table in ("fine", "hourly")}
        await history.store.checkpoint()
    finally:
        await history.close()
    elapsed = time.perf_counter() - started
    with sqlite3.connect(path) as conn:
        tables = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY name"))
    conn.close()
    size = path.stat().st_size
    channels = sum(1 for channel in CHANNEL_NAMES if SERIES[channel])
    fine_days = min(days, FINE_HOURS / 24)  # fine points are kept two days, hourly ones ``days``
    return {"days": days, "file_bytes": size, "tables": tables, "points": counts, "channels_with_series": channels,
            "bytes_per_channel_per_day": size / channels / days,
            "fine_bytes_per_channel_per_day": tables.get("fine", 0) / channels / fine_days,
            "hourly_bytes_per_channel_per_day": tables.get("hourly", 0) / channels / days, "wall_seconds": elapsed}


async def run(passes: int, days: int) -> dict[str, Any]:
    """Both measurements, in one temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        states = await demo_states(root / "demo")
        cpu = await cpu_per_pass(states, root / "cpu.sqlite", passes)
        disk = await bytes_on_disk(states, root / "disk.sqlite", days)
    series = {channel: len(sample_channel(channel, state, START)) for channel, state in states.items()}
    return {"passes": passes, "series": series, "cpu": cpu, "disk": disk}


def table(results: dict[str, Any]) -> str:
    """The results as a markdown table."""
    cpu, disk = results["cpu"], results["disk"]
    rows = [
        ("series recorded per pass", sum(results["series"].values())),
        ("CPU per sampler pass, all 8 channels, file write included (ms, both threads)", f"{cpu['pass_ms']:.3f}"),
        ("… of which on the event loop: read the series, update memory (ms)", f"{cpu['on_loop_ms']:.3f}"),
        ("`recent()` of all 8 channels, one dashboard render: the first after a pass / later ones (ms)",
         f"{cpu['recent_computed_ms']:.3f} / {cpu['recent_cached_ms']:.4f}"),
        (f"file after {disk['days']} days at a 60 s step (bytes; fine / hourly points)",
         f"{disk['file_bytes']:,} ({disk['points']['fine']:,} / {disk['points']['hourly']:,})"),
        ("… by table (bytes)", ", ".join(f"{name} {size:,}" for name, size in disk["tables"].items())),
        (f"bytes on disk per channel per day: the file ÷ {disk['channels_with_series']} channels with series ÷ "
         f"{disk['days']} days", f"{disk['bytes_per_channel_per_day']:,.0f}"),
        ("… a day of fine points (kept two days) / of hourly points (kept `days`), per channel (bytes)",
         f"{disk['fine_bytes_per_channel_per_day']:,.0f} / {disk['hourly_bytes_per_channel_per_day']:,.0f}"),
    ]
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    results = asyncio.run(run(args.passes, args.days))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "history_cost.json").write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
