"""The console as a real process: a config for a workspace, start, SIGKILL, SIGTERM, its log and its /proc.

The process's stderr is read all the time (a pipe nobody reads would stall its logging)
and kept, so a test can look for tracebacks afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import deque
from pathlib import Path

from monitor.channels.registry import CHANNEL_NAMES
from tests.faults.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, workspace: Workspace, webhook_url: str, port: int = 0,
                 intervals: dict[str, float] | None = None, extra: str = "") -> Path:
    """A config.toml for ``workspace``; channels poll hourly unless ``intervals`` says otherwise."""
    intervals = intervals or {}
    channels = "".join(f"[channels.{name}]\ninterval = {intervals.get(name, 3600.0)}\n" for name in CHANNEL_NAMES)
    path.write_text(
        f'[server]\nport = {port}\nshutdown_timeout = 5.0\nclose_grace = 1.0\n'
        f'[sources]\ndatabase = "sqlite:///{workspace.db_path}"\nagents_dir = "{workspace.agents}"\n'
        f'trees_dir = "{workspace.trees}"\nwebhook_url = "{webhook_url}"\nopenapi_url = ""\nbackend_url = ""\n'
        'watch = false\n'
        f'[log]\nformat = "json"\n{extra}{channels}')
    return path


class ConsoleProcess:
    """``python -m monitor serve`` on a config; ``port`` once it listens."""

    def __init__(self, config: Path, argv: tuple[str, ...] = ("-m", "monitor", "serve")) -> None:
        self.config = config
        self.argv = argv
        self.process: asyncio.subprocess.Process | None = None
        self.port: int | None = None
        self.lines: deque[str] = deque(maxlen=20_000)
        self._reader: asyncio.Task | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    async def start(self) -> int:
        """Start it and wait for its ``listening`` line; the port it listens on."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, *self.argv, "--config", str(self.config), cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            while self.port is None:
                line = await self.process.stderr.readline()
                assert line, f"the console exited before listening: {list(self.lines)[-20:]}"
                self._keep(line)
        self._reader = asyncio.get_running_loop().create_task(self._read_rest())
        return self.port

    def _keep(self, raw: bytes) -> None:
        line = raw.decode(errors="replace")
        self.lines.append(line)
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "listening":
                self.port = event["port"]

    async def _read_rest(self) -> None:
        while line := await self.process.stderr.readline():
            self._keep(line)

    async def kill(self) -> int:
        """SIGKILL, as the OOM killer or a power cut would; its exit status."""
        self.process.send_signal(signal.SIGKILL)
        return await self._ended()

    async def stop(self) -> int:
        """SIGTERM, as systemd would; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return await self._ended()

    async def _ended(self) -> int:
        status = await asyncio.wait_for(self.process.wait(), timeout=60)
        if self._reader is not None:
            await self._reader
        self.port = None
        return status

    def log_text(self) -> str:
        """Everything it wrote to stderr."""
        return "".join(self.lines)

    def fd_count(self) -> int:
        """Its open file descriptors."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kib(self) -> int:
        """Its resident set size in KiB."""
        with open(f"/proc/{self.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
