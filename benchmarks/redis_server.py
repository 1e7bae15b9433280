"""A redis-server for one round of the ``--workers`` console: a free loopback port, no persistence.

Started and stopped by the driver with the console it serves (a ``Child`` companion), so
its CPU and memory are counted with the console's.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from pathlib import Path

from benchmarks.procs import Child, start_child

START_TIMEOUT = 10.0


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def answers_ping(port: int) -> bool:
    """True when a Redis on ``port`` answers PING (inline command, no client library needed)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def start_redis(root: Path, logs: Path) -> Child:
    """``redis-server`` on a free loopback port with its files under ``root``; returns once it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: apt-get install redis-server")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    argv = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(root), "--save", "", "--appendonly", "no",
            "--logfile", str((logs / "redis-server.log").absolute())]
    child = await start_child("redis-server", argv, logs / "redis-server.stderr", program=binary)
    child.port = port
    deadline = time.monotonic() + START_TIMEOUT
    while not await answers_ping(port):
        if child.process.returncode is not None or time.monotonic() > deadline:
            await child.stop()
            raise RuntimeError(f"redis-server did not start; see {logs / 'redis-server.log'}")
        await asyncio.sleep(0.05)  # a process's start has no event to await
    return child
