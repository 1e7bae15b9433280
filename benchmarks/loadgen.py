"""The load generator: a separate process holding thousands of WebSocket clients.

``python -m benchmarks.loadgen HOST PORT`` reads one JSON command per line on stdin and
answers one JSON line on stdout. Commands: ``open`` (connect N clients to a path),
``arm`` (watch for a marker), ``collect`` (wait for the marker to reach every client),
``stats``, ``reset_all`` and ``quit``. Every client JSON-decodes every text frame it
receives. Clients spread over 127.0.0.x source addresses so ephemeral ports never run short.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time

from benchmarks.wsclient import BenchClient

SOURCE_ADDRESSES = tuple(f"127.0.0.{n}" for n in range(2, 34))
CONNECT_TIMEOUT = 20.0


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class ClientPool:
    """Every client of this process, and the events the measurements wait for."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.clients: list[BenchClient] = []
        self.armed: bytes | None = None
        self.armed_tag = ""
        self.handshakes_ok = self.handshakes_failed = self.first_frames = self.arrivals = self.lost = 0
        self._handshake_waiters: dict[BenchClient, asyncio.Future] = {}
        self._targets: dict[str, tuple[int, asyncio.Future]] = {}

    def on_handshake(self, client: BenchClient, ok: bool) -> None:
        """A client's upgrade finished (or failed)."""
        if ok:
            self.handshakes_ok += 1
        else:
            self.handshakes_failed += 1
        waiter = self._handshake_waiters.pop(client, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ok)

    def on_first_frame(self, client: BenchClient) -> None:
        """A client received its first data frame (the snapshot or initial data)."""
        self.first_frames += 1
        self._check("first_frames", self.first_frames)

    def on_arrival(self, client: BenchClient) -> None:
        """A client received the frame carrying the armed marker."""
        self.arrivals += 1
        self._check("arrivals", self.arrivals)

    def on_lost(self, client: BenchClient) -> None:
        """A client's connection ended."""
        self.lost += 1

    def _check(self, counter: str, value: int) -> None:
        target = self._targets.get(counter)
        if target is not None and value >= target[0] and not target[1].done():
            target[1].set_result(None)

    async def _wait_counter(self, counter: str, target: int, timeout: float) -> None:
        if getattr(self, counter) >= target:
            return
        future = asyncio.get_running_loop().create_future()
        self._targets[counter] = (target, future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            self._targets.pop(counter, None)

    async def open(self, path: str, count: int, concurrency: int = 100, timeout: float = 120.0,
                   tag: str = "") -> dict:
        """Connect ``count`` clients to ``path``; time the handshakes and the first frames."""
        started, base = time.monotonic(), len(self.clients)
        frames_before, ok_before = self.first_frames, self.handshakes_ok
        gate = asyncio.Semaphore(concurrency)
        tasks = [asyncio.ensure_future(self._connect_one(path, base + i, gate, tag)) for i in range(count)]
        await asyncio.wait(tasks, timeout=timeout)
        handshakes_done = time.monotonic()
        await self._wait_counter("first_frames", frames_before + (self.handshakes_ok - ok_before),
                                 max(1.0, timeout - (handshakes_done - started)))
        ready = time.monotonic()
        fresh = [c for c in self.clients[base:] if c.frames]
        return {"requested": count, "upgraded": self.handshakes_ok - ok_before,
                "with_first_frame": len(fresh), "handshake_s": handshakes_done - started,
                "ready_s": ready - started, "open": self.open_count(),
                "first_frame_bytes": statistics.median(c.first_frame_size for c in fresh) if fresh else 0}

    async def _connect_one(self, path: str, index: int, gate: asyncio.Semaphore, tag: str) -> None:
        loop = asyncio.get_running_loop()
        async with gate:
            client = BenchClient(self, self.host, path, tag)
            waiter = loop.create_future()
            self._handshake_waiters[client] = waiter
            source = SOURCE_ADDRESSES[index % len(SOURCE_ADDRESSES)]
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await loop.create_connection(lambda: client, self.host, self.port, local_addr=(source, 0))
                    self.clients.append(client)
                    await waiter
            except (OSError, TimeoutError):
                self._handshake_waiters.pop(client, None)
                self.handshakes_failed += 1

    def open_count(self) -> int:
        """Clients whose connection is upgraded and still up."""
        return sum(1 for c in self.clients if c.upgraded and not c.lost)

    def arm(self, marker: str, tag: str = "") -> dict:
        """Watch the clients tagged ``tag`` for the next frame carrying ``marker``."""
        self.armed, self.armed_tag = marker.encode(), tag
        self.arrivals = 0
        for client in self.clients:
            client.arrival = None
        return {"armed": marker, "open": self.open_count()}

    async def collect(self, timeout: float) -> dict:
        """Wait until every open armed client saw the marker (or ``timeout``); return arrival times."""
        live = [c for c in self.clients if c.upgraded and not c.lost and c.tag == self.armed_tag]
        await self._wait_counter("arrivals", len(live), timeout)
        arrived = [c for c in live if c.arrival is not None]
        self.armed = None
        return {"arrivals": [c.arrival for c in arrived], "missing": len(live) - len(arrived),
                "frame_bytes": statistics.median(c.arrival_frame_size for c in arrived) if arrived else 0,
                "bad_json": sum(c.bad_json for c in live)}

    def stats(self) -> dict:
        """Counters over all clients and by tag, and the close codes seen."""
        codes: dict[str, int] = {}
        by_tag: dict[str, dict[str, int]] = {}
        for client in self.clients:
            if client.close_code is not None:
                codes[str(client.close_code)] = codes.get(str(client.close_code), 0) + 1
            tagged = by_tag.setdefault(client.tag, {"clients": 0, "frames": 0, "bytes": 0, "after_first": 0,
                                                    "bad_json": 0})
            tagged["clients"] += 1
            tagged["frames"] += client.frames
            tagged["bad_json"] += client.bad_json
            tagged["bytes"] += client.bytes
            tagged["after_first"] += client.bytes - client.first_frame_size
        return {"clients": len(self.clients), "open": self.open_count(), "lost": self.lost,
                "handshakes_failed": self.handshakes_failed, "close_codes": codes, "by_tag": by_tag}

    async def reset_all(self) -> dict:
        """Reset every connection and forget the clients."""
        for client in self.clients:
            client.reset()
        count = len(self.clients)
        self.clients = []
        await asyncio.sleep(0.2)  # let the transports finish closing
        return {"reset": count}


async def serve_commands(pool: ClientPool) -> None:
    """Answer commands from stdin until ``quit`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    handlers = {"open": pool.open, "arm": pool.arm, "collect": pool.collect, "stats": pool.stats,
                "reset_all": pool.reset_all}
    while line := await reader.readline():
        command = json.loads(line)
        name = command.pop("command")
        if name == "quit":
            break
        result = handlers[name](**command)
        if asyncio.iscoroutine(result):
            result = await result
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    await pool.reset_all()


def main() -> None:
    """Entry point: ``python -m benchmarks.loadgen HOST PORT``."""
    parser = argparse.ArgumentParser(description="WebSocket load generator (driven over stdin/stdout)")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    raise_open_file_limit()
    try:
        import uvloop  # the load generator should spend as little of the shared CPU as it can
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve_commands(ClientPool(args.host, args.port)))


if __name__ == "__main__":
    main()
