"""The churn soak: WebSocket connect/disconnect cycles across all eight channels against a real console.

    python -m soak.churn [--cycles 10000] [--concurrency 50] [--seed 1]

A console process (``soak.instrumented``: ``monitor serve`` plus a census route)
serves a workspace whose queue changes every 50 ms, so patches flow while clients come
and go. Each cycle opens one channel and leaves in one of six ways: a clean close, a
resume from an earlier client's epoch and seq, a reset (SO_LINGER 0), a bare FIN, a reset
before reading anything, or a reset in the middle of the upgrade request. Afterwards the
registry must be empty and the process must hold no more tasks, connection objects or
file descriptors than before; RSS growth is reported. Prints a JSON report; exits 1 on
a protocol violation or a leak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from monitor.adw import QUEUE_STATUSES
from monitor.channels.registry import CHANNEL_NAMES
from soak.convergence import quiet_logs
from tests.faults.process import ConsoleProcess, write_config
from tests.faults.viewers import Viewer
from tests.faults.workspace import WebhookService, Workspace

MODES = ("leave", "resume", "reset", "hang_up", "reset_unread", "reset_mid_upgrade")
WARM_UP_CYCLES = 400  # first connections allocate what later ones reuse: measure after them
QUIET_SAMPLES = 5


class Churn:
    """Runs cycles against one console and keeps the tallies."""

    def __init__(self, port: int, rng: random.Random) -> None:
        self.port, self.rng = port, rng
        self.modes: Counter = Counter()
        self.violations: list[str] = []
        self.memo: dict[str, tuple[str, int, dict]] = {}  # channel -> a state some client had

    async def run(self, cycles: int, concurrency: int) -> None:
        """``cycles`` cycles, ``concurrency`` at a time."""
        plan = iter([(self.rng.choice(CHANNEL_NAMES), self.rng.choice(MODES)) for _ in range(cycles)])

        async def worker() -> None:
            for channel, mode in plan:
                await self.cycle(channel, mode)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def cycle(self, channel: str, mode: str) -> None:
        """Open ``channel`` and leave in ``mode``."""
        self.modes[mode] += 1
        if mode == "reset_mid_upgrade":
            await reset_mid_upgrade(self.port, channel)
            return
        viewer, query = Viewer(channel), ""
        if mode == "resume" and channel in self.memo:
            viewer.epoch, viewer.seq, viewer.state = self.memo[channel]
            query = viewer.resume_query("good", 0, [])
        if not await viewer.connect(self.port, query):
            self.violations.append(f"{channel}: connection refused")
            return
        if mode == "reset_unread":
            viewer.vanish()
            return
        if await viewer.sync() and viewer.state is not None:
            self.memo[channel] = (viewer.epoch, viewer.seq, viewer.state)
        await leave(viewer, mode)
        self.violations.extend(viewer.violations)


async def leave(viewer: Viewer, mode: str) -> None:
    """Go away cleanly, with a bare FIN, or with a reset."""
    if mode in ("leave", "resume"):
        await viewer.leave()
    elif mode == "hang_up" and viewer.link is not None:
        await viewer.link.close()
        viewer.link = None
    else:
        viewer.vanish()


async def reset_mid_upgrade(port: int, channel: str) -> None:
    """Send half an upgrade request, then reset the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/v1/ws/{channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n".encode())
    await writer.drain()
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def keep_changing(workspace: Workspace, webhook: WebhookService, stop: asyncio.Event) -> int:
    """Change the queue (and the webhook counters) every 50 ms until ``stop``; how many changes."""
    changes, rng = 0, random.Random(0)
    while not stop.is_set():
        rows = workspace.queue_ids()
        if len(rows) > 30:
            workspace.queue.delete(rng.choice(rows))
        elif rows and rng.random() < 0.5:
            workspace.queue.update(rng.choice(rows), status=rng.choice(QUEUE_STATUSES))
        else:
            workspace.queue.insert(rng.choice(QUEUE_STATUSES), f"churn row {changes}")
        webhook.stats.record_success(changes, "a1b2c3d4", "adw_sdlc_complete_iso")
        changes += 1
        await rest(stop, 0.05)
    return changes


async def rest(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def measure(console: ConsoleProcess, http: aiohttp.ClientSession) -> dict:
    """Registry size, census, file descriptors and RSS of the console right now."""
    base = f"http://127.0.0.1:{console.port}"
    async with http.get(f"{base}/healthz") as response:
        health = await response.json()
    async with http.get(f"{base}/_soak/census") as response:
        census = await response.json()
    return {"registered": sum(c["connections"] for c in health["channels"].values()), **census,
            "fds": console.fd_count(), "rss_kib": console.rss_kib()}


async def until_registry_empty(console: ConsoleProcess, http: aiohttp.ClientSession, seconds: float = 30.0) -> dict:
    """Measure until no socket is registered (a reset peer is noticed at once; allow the close grace).

    Then the quietest of a few samples: a scheduled poll in flight is a task that is no leak.
    """
    deadline = time.monotonic() + seconds
    while (figures := await measure(console, http))["registered"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # a soak, not a test: polling the console's own figures is the point
    samples = [figures]
    for _ in range(QUIET_SAMPLES - 1):
        await asyncio.sleep(0.1)
        samples.append(await measure(console, http))
    return min(samples, key=lambda sample: (sample["registered"], sample["tasks"]))


async def soak(cycles: int, concurrency: int, seed: int) -> dict:
    """Run the soak; the report."""
    with tempfile.TemporaryDirectory(prefix="churn-") as scratch:
        workspace, webhook = Workspace(Path(scratch) / "adw"), WebhookService()
        await webhook.up()
        config = write_config(Path(scratch) / "config.toml", workspace, webhook.url,
                              intervals={name: 1.0 for name in CHANNEL_NAMES} | {"queue": 0.2})
        console = ConsoleProcess(config, argv=("-m", "soak.instrumented", "serve"))
        port = await console.start()
        stop = asyncio.Event()
        changer = asyncio.create_task(keep_changing(workspace, webhook, stop))
        try:
            async with aiohttp.ClientSession() as http:
                churn = Churn(port, random.Random(seed))
                await churn.run(WARM_UP_CYCLES, concurrency)
                before = await until_registry_empty(console, http)
                started = time.monotonic()
                churn.modes.clear()
                await churn.run(cycles, concurrency)
                elapsed = time.monotonic() - started
                after = await until_registry_empty(console, http)
        finally:
            stop.set()
            changes = await changer
            status = await console.stop()
            await webhook.down()
    return report(cycles, elapsed, churn, before, after, changes, status, console.log_text())


def report(cycles, elapsed, churn: Churn, before: dict, after: dict, changes: int, status: int, log: str) -> dict:
    """The figures, and whether anything leaked."""
    leaks = {"registered": after["registered"], "connections": after["connections"],
             "websockets": after["websockets"], "tasks": after["tasks"] - before["tasks"],
             "fds": after["fds"] - before["fds"], "threads": after["threads"] - before["threads"]}
    return {"cycles": cycles, "seconds": round(elapsed, 1), "cycles_per_second": round(cycles / elapsed),
            "modes": dict(sorted(churn.modes.items())), "source_changes": changes,
            "violations": churn.violations[:20], "violation_count": len(churn.violations),
            "before": before, "after": after, "leaks": leaks,
            "rss_growth_kib": after["rss_kib"] - before["rss_kib"], "exit_status": status,
            "tracebacks_in_log": log.count("Traceback"), "first_traceback": first_traceback(log),
            "ok": not churn.violations and status == 0 and "Traceback" not in log
            and all(value <= 0 for value in leaks.values())}


def first_traceback(log: str) -> list[str]:
    """The log lines around the first traceback, if any."""
    lines = log.splitlines()
    at = next((i for i, line in enumerate(lines) if "Traceback" in line), None)
    return [] if at is None else [line[:300] for line in lines[max(0, at - 2): at + 25]]


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, soak, print the report; 1 on a violation or a leak."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    quiet_logs()
    figures = asyncio.run(soak(args.cycles, args.concurrency, args.seed))
    print(json.dumps(figures, indent=2))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
