"""Three console processes sharing one real redis-server, for ``soak.redis_convergence``.

A ``Cluster`` owns a workspace, a Redis server (``tests.redis_server.RedisServer``, used
outside pytest) and N ``monitor serve`` processes whose configs share ``[broker] url``
with a short ``lock_ttl``. It finds the queue's poller through ``/healthz``, kills it with
SIGKILL and times the takeover, and reads each console's state. ``close`` kills whatever
is still running, whatever happened before.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import aiohttp

from tests.faults.process import ConsoleProcess, write_config
from tests.faults.workspace import Workspace
from tests.redis_server import RedisServer

LOCK_TTL = 1.0  # seconds: the bound for a takeover is twice this
QUEUE_INTERVAL = 0.2  # seconds between the queue poller's reads
HARD_WAIT = 15.0  # seconds: only ends a wait that would otherwise hang the run
PROBE_EVERY = 0.02  # seconds between two looks at /healthz while a leader is awaited
CHANNEL = "queue"


class NoLeader(Exception):
    """No console polled the channel within ``HARD_WAIT``."""


class Cluster:
    """A workspace, a Redis and console processes sharing it."""

    def __init__(self, root: Path, count: int, webhook_url: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found; install it (apt-get install redis-server)")
        self.root = root
        self.workspace = Workspace(root / "adw")
        self.redis = RedisServer(binary)
        self.webhook_url = webhook_url
        self.consoles = [ConsoleProcess(root / f"console{i}.toml") for i in range(count)]
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Redis first, then every console (each waits for its ``listening`` line)."""
        await asyncio.to_thread(self.redis.start)
        extra = f'[broker]\nurl = "{self.redis.url}"\nlock_ttl = {LOCK_TTL}\n'
        for console in self.consoles:
            write_config(console.config, self.workspace, self.webhook_url,
                         intervals={CHANNEL: QUEUE_INTERVAL}, extra=extra)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0))
        await asyncio.gather(*(console.start() for console in self.consoles))

    async def close(self) -> None:
        """SIGKILL every console still running, stop Redis, close the HTTP session."""
        for console in self.consoles:
            if console.process is not None and console.process.returncode is None:
                await console.kill()
        if self.http is not None:
            await self.http.close()
        await asyncio.to_thread(self.redis.remove)

    def live(self) -> list[int]:
        """Indexes of the consoles that are running and listening."""
        return [i for i, c in enumerate(self.consoles) if c.port is not None]

    async def _get_json(self, index: int, path: str) -> dict | None:
        """``GET path`` on console ``index`` as JSON, None when it does not answer."""
        try:
            async with self.http.get(f"http://127.0.0.1:{self.consoles[index].port}{path}") as response:
                return await response.json()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def health(self, index: int) -> dict | None:
        """Console ``index``'s /healthz, None when it does not answer."""
        return await self._get_json(index, "/healthz")

    async def leader(self, among: list[int] | None = None) -> int:
        """The console polling the queue (awaited, bounded by ``HARD_WAIT``)."""
        deadline = time.monotonic() + HARD_WAIT
        while time.monotonic() < deadline:
            for index in among if among is not None else self.live():
                health = await self.health(index)
                if health is not None and CHANNEL in health["broker"]["leader_of"]:
                    return index
            await asyncio.sleep(PROBE_EVERY)  # leadership is another process's: only its /healthz tells
        raise NoLeader(f"no console polled {CHANNEL} within {HARD_WAIT} s")

    async def kill_leader(self) -> tuple[int, float]:
        """SIGKILL the queue's poller; (its index, seconds until another console polls)."""
        dead = await self.leader()
        await self.consoles[dead].kill()
        killed_at = time.monotonic()
        await self.leader([i for i in self.live() if i != dead])
        return dead, time.monotonic() - killed_at

    async def restart(self, index: int) -> None:
        """Start console ``index`` again (on a new port)."""
        await self.consoles[index].start()

    async def view(self, index: int) -> dict | None:
        """``GET /api/v1/queue`` on console ``index`` (epoch, seq, data), None when it does not answer."""
        return await self._get_json(index, f"/api/v1/{CHANNEL}")

    def tracebacks(self) -> int:
        """Tracebacks the consoles wrote to their logs (all their runs)."""
        return sum(console.log_text().count("Traceback") for console in self.consoles)
