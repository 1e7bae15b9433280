"""The abuse soak: a healthy viewer measures while hostile clients do their worst, on loopback.

    python -m soak.abuse [--seconds 300] [--seed 1]

A console process serves a workspace whose queue changes every 200 ms (each new row's
title carries the moment it was committed). For ``--seconds`` a mix of abusers runs from
127.0.0.2 … 127.0.0.5, each bounded in count and rate:

- connect storms: WebSocket upgrades opened and dropped in bursts;
- ping floods: clients sending ``{"type":"ping"}`` as fast as the socket takes them;
- half-open and slow clients: half-sent requests that stall (slowloris), and WebSocket
  clients that never read;
- junk: random bytes, malformed request lines, oversized headers.

Meanwhile one healthy viewer (127.0.0.1) watches the queue and records how long each new
row took from commit to its patch, whether its channel ever reported a source error, and
a prober times ``/healthz`` ten times a second. Afterwards the console must be back at its
baseline (descriptors and RSS within 10 %), the baseline being the console at its normal
work: the healthy viewer, the prober and the changes running for 120 s before any abuse.
Prints a JSON report; exits 1 when a false source error was seen, ``/healthz`` p99 was
100 ms or more, or the console did not come back to its baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from monitor.channels.registry import CHANNEL_NAMES
from soak.churn import rest
from soak.convergence import quiet_logs
from tests.faults.process import ConsoleProcess, write_config
from tests.faults.workspace import WebhookService, Workspace

ABUSERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
ROW_PREFIX = "abuse row @"
# Seconds of normal work before the baseline: long enough for the queue's ring of recent
# patches (server.ring_size = 512, one change per 200 ms) to fill, so it is steady state.
WARM_UP = 120.0


def percentile(values: list[float], fraction: float) -> float | None:
    """The value below which ``fraction`` of ``values`` lie (nearest rank); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


async def keep_committing(workspace: Workspace, stop: asyncio.Event) -> int:
    """A queue row every 200 ms, titled with its commit moment; old rows deleted. How many."""
    count = 0
    while not stop.is_set():
        ids = workspace.queue_ids()
        if len(ids) > 40:
            workspace.queue.delete(ids[0])
        workspace.queue.insert("queued", f"{ROW_PREFIX}{time.monotonic():.6f}")
        count += 1
        await rest(stop, 0.2)
    return count


class HealthyViewer:
    """A well-behaved client of the queue channel and a /healthz prober."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.lags_ms: list[float] = []
        self.healthz_ms: list[float] = []
        self.source_errors: list[str] = []
        self.disconnects = 0

    async def watch(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Follow the queue until ``stop``, reconnecting if dropped (which counts against it)."""
        while not stop.is_set():
            try:
                async with http.ws_connect(f"{self.base.replace('http', 'ws')}/api/v1/ws/queue") as ws:
                    await self._read(ws, stop)
            except aiohttp.ClientError:
                pass
            if not stop.is_set():
                self.disconnects += 1

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                message = await ws.receive(timeout=1.0)
            except TimeoutError:
                continue
            if message.type is not aiohttp.WSMsgType.TEXT:
                return
            self._note(json.loads(message.data), time.monotonic())

    def _note(self, message: dict, now: float) -> None:
        body = message.get("patch") or message.get("data") or {}
        meta = body.get("meta") or {}
        if meta.get("source") == "error":
            self.source_errors.append(str(meta.get("error")))
        if message.get("type") != "patch":
            return
        for item in (body.get("items") or {}).values():
            title = item.get("title") if isinstance(item, dict) else None
            if isinstance(title, str) and title.startswith(ROW_PREFIX):
                self.lags_ms.append((now - float(title[len(ROW_PREFIX):])) * 1000)

    async def probe(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Time ``GET /healthz`` ten times a second; any other channel in error is noted too."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with http.get(f"{self.base}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as response:
                    health = await response.json()
                self.healthz_ms.append((time.monotonic() - started) * 1000)
                for name, channel in health.get("channels", {}).items():
                    if channel.get("source") == "error" and name in ("queue", "workflows", "adw-monitor"):
                        self.source_errors.append(f"{name} (healthz)")
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.healthz_ms.append(5000.0)
                self.source_errors.append(f"healthz failed: {type(exc).__name__}")
            await asyncio.sleep(0.1)  # the probe's own pace, not synchronisation


class Abusers:
    """The hostile mix, each kind bounded; tallies what it did."""

    def __init__(self, port: int, rng: random.Random) -> None:
        self.port, self.rng = port, rng
        self.done: Counter[str] = Counter()

    async def _open(self, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0)), 5.0)
        except (OSError, TimeoutError):
            self.done["connect_failed"] += 1
            return None

    def _upgrade(self, channel: str) -> bytes:
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        return (f"GET /api/v1/ws/{channel} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()

    async def storm(self, stop: asyncio.Event) -> None:
        """Bursts of 100 upgrades from one address, dropped at once, twice a second."""
        while not stop.is_set():
            async def one() -> None:
                link = await self._open(ABUSERS[0])
                if link:
                    link[1].write(self._upgrade(self.rng.choice(CHANNEL_NAMES)))
                    link[1].transport.abort()
                    self.done["storm"] += 1
            await asyncio.gather(*(one() for _ in range(100)))
            await asyncio.sleep(0.5)

    async def ping_flood(self, stop: asyncio.Event) -> None:
        """Ten clients sending masked ping frames as fast as they can; reconnect when closed."""
        frame = masked_text(b'{"type":"ping"}')

        async def flooder() -> None:
            while not stop.is_set():
                link = await self._open(ABUSERS[1])
                if not link:
                    await asyncio.sleep(0.5)
                    continue
                reader, writer = link
                writer.write(self._upgrade("queue"))
                try:
                    while not stop.is_set() and not writer.is_closing():
                        writer.write(frame * 50)
                        await writer.drain()
                        self.done["ping_frames"] += 50
                except (ConnectionError, OSError):
                    self.done["ping_flooder_closed"] += 1
                writer.transport.abort()
        await asyncio.gather(*(flooder() for _ in range(10)))

    async def slow_clients(self, stop: asyncio.Event) -> None:
        """300 half-sent requests and 50 WebSocket clients that never read, kept open, renewed when cut."""
        async def slowloris() -> None:
            while not stop.is_set():
                link = await self._open(ABUSERS[2])
                if not link:
                    await asyncio.sleep(1.0)
                    continue
                link[1].write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                self.done["slowloris"] += 1
                try:
                    await asyncio.wait_for(link[0].read(), 30.0)  # until the server cuts it
                except (TimeoutError, ConnectionError, OSError):
                    pass
                link[1].transport.abort()

        async def never_reads() -> None:
            link = await self._open(ABUSERS[2])
            if link:
                link[1].write(self._upgrade("queue"))
                self.done["never_reads"] += 1
                await stop.wait()
                link[1].transport.abort()
        await asyncio.gather(*(slowloris() for _ in range(300)), *(never_reads() for _ in range(50)))

    async def junk(self, stop: asyncio.Event) -> None:
        """Fifty junk requests a second: random bytes, broken request lines, oversized headers."""
        payloads = (lambda: os.urandom(self.rng.randrange(1, 4096)), lambda: b"GET /\x00 HTTP/9.9\r\n\r\n",
                    lambda: b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
                    lambda: b"POST /login HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nabc")
        while not stop.is_set():
            link = await self._open(ABUSERS[3])
            if link:
                link[1].write(self.rng.choice(payloads)())
                try:
                    await asyncio.wait_for(link[0].read(1024), 2.0)
                except (TimeoutError, ConnectionError, OSError):
                    pass
                link[1].transport.abort()
                self.done["junk"] += 1
            await asyncio.sleep(0.02)


def masked_text(payload: bytes) -> bytes:
    """One masked text frame (clients must mask), payload under 126 bytes."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def baseline(console: ConsoleProcess) -> dict:
    """Descriptors and RSS after the console has settled."""
    # A soak's settle time: in-flight closes and polls end, and the console's check for a
    # quiet spell after a burst (every 5 s) has returned freed memory.
    await asyncio.sleep(12.0)
    return {"fds": console.fd_count(), "rss_kib": console.rss_kib()}


async def soak(seconds: float, seed: int) -> dict:
    """Run the soak; the report."""
    with tempfile.TemporaryDirectory(prefix="abuse-") as scratch:
        workspace, webhook = Workspace(Path(scratch) / "adw"), WebhookService()
        await webhook.up()
        config = write_config(Path(scratch) / "config.toml", workspace, webhook.url,
                              intervals={name: 2.0 for name in CHANNEL_NAMES})
        console = ConsoleProcess(config)
        port = await console.start()
        base, stop, settle = f"http://127.0.0.1:{port}", asyncio.Event(), asyncio.Event()
        viewer, abusers = HealthyViewer(base), Abusers(port, random.Random(seed))
        try:
            async with aiohttp.ClientSession() as http:
                commits = asyncio.create_task(keep_committing(workspace, settle))
                healthy = [asyncio.create_task(viewer.watch(http, settle)),
                           asyncio.create_task(viewer.probe(http, settle))]
                # The baseline is the console at its normal work: a viewer, a prober, changes flowing.
                await asyncio.sleep(WARM_UP)
                before = await baseline(console)
                hostile = [asyncio.create_task(run(stop)) for run in
                           (abusers.storm, abusers.ping_flood, abusers.slow_clients, abusers.junk)]
                await asyncio.sleep(seconds)
                stop.set()
                await asyncio.wait(hostile, timeout=60)
                after = await baseline(console)
                settle.set()
                await asyncio.gather(*healthy, return_exceptions=True)
                count = await commits
        finally:
            status = await console.stop()
            await webhook.down()
    return report(seconds, viewer, abusers, count, before, after, status, console.log_text())


def report(seconds, viewer: HealthyViewer, abusers: Abusers, commits: int, before: dict, after: dict,
           status: int, log: str) -> dict:
    """The figures, and whether the console held."""
    healthz_p99 = percentile(viewer.healthz_ms, 0.99)
    back = all(abs(after[k] - before[k]) <= 0.1 * before[k] for k in ("fds", "rss_kib"))
    return {
        "seconds": seconds, "abuse": dict(sorted(abusers.done.items())), "commits": commits,
        "freshness_ms": {"n": len(viewer.lags_ms), "p50": percentile(viewer.lags_ms, 0.5),
                         "p99": percentile(viewer.lags_ms, 0.99), "max": percentile(viewer.lags_ms, 1.0)},
        "healthz_ms": {"n": len(viewer.healthz_ms), "p50": percentile(viewer.healthz_ms, 0.5), "p99": healthz_p99},
        "false_source_errors": viewer.source_errors[:20], "healthy_viewer_disconnects": viewer.disconnects,
        "before": before, "after": after, "log_lines": log.count("\n"), "tracebacks_in_log": log.count("Traceback"),
        "exit_status": status,
        "ok": not viewer.source_errors and healthz_p99 is not None and healthz_p99 < 100 and back and status == 0,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, soak, print the report; 1 when the console did not hold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    quiet_logs()
    figures = asyncio.run(soak(args.seconds, args.seed))
    print(json.dumps(figures, indent=2))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
