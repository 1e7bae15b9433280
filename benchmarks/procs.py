"""The processes the driver starts (a server, the load generator) and what /proc says of them.

Every child gets PR_SET_PDEATHSIG, so it dies with the driver even when the driver is
killed outright; ``stop`` ends it by its pid, politely first.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def pin(child: Child, cpu: int) -> None:
    """Keep ``child`` on one CPU (when the machine has it), so server and load generator never share one."""
    if cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(child.pid, {cpu})


def _busy_and_total() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot."""
    return _busy_and_total()[0] / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU seconds this (driver) process has used."""
    times = os.times()
    return times.user + times.system


async def machine_busy_pct(seconds: float = 1.0) -> float:
    """How busy all CPUs together were over ``seconds`` (100 = every core fully busy)."""
    busy0, total0 = _busy_and_total()
    await asyncio.sleep(seconds)
    busy1, total1 = _busy_and_total()
    return 100 * (busy1 - busy0) / max(1, total1 - total0)


async def wait_until_quiet(limit_pct: float, patience: float) -> float:
    """Wait (up to ``patience`` s) for other work on the machine to drop below ``limit_pct``.

    Returns the last reading.
    """
    deadline = time.monotonic() + patience
    busy = await machine_busy_pct()
    while busy > limit_pct and time.monotonic() < deadline:
        busy = await machine_busy_pct(2.0)
    return busy


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (a ``--workers`` parent's workers), from /proc."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def socket_count(pid: int) -> int:
    """Open sockets of ``pid``: its clients, give or take its listening socket and its own connections."""
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if _readlink(fd).startswith("socket:"))


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except FileNotFoundError:  # closed meanwhile
        return ""


@dataclass
class Child:
    """A started child process and where its stderr goes."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    port: int = 0
    extra: dict = field(default_factory=dict)
    companions: list[Child] = field(default_factory=list)  # serve with it (a redis-server), stopped after it

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def pids(self) -> list[int]:
        """Every process that serves: the child, its own children (workers) and its companions."""
        return list(self.named_pids().values())

    def named_pids(self) -> dict[str, int]:
        """``pids`` by role: the child's name, ``child-<n>`` for its children, the companions' names."""
        children = {f"child-{n}": pid for n, pid in enumerate(children_of(self.pid))}
        return {self.name: self.pid, **children, **{c.name: c.pid for c in self.companions}}

    def cpu_seconds(self) -> float:
        """CPU time of every process that serves (a worker restarted meanwhile would be missed)."""
        return sum(cpu_seconds(pid) for pid in self.pids())

    def rss_bytes(self) -> int:
        """Resident memory of every process that serves, summed."""
        return sum(rss_bytes(pid) for pid in self.pids())

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds, then the companions; idempotent."""
        try:
            await self._stop_own(grace)
        finally:
            for companion in self.companions:
                await companion.stop(grace)

    async def _stop_own(self, grace: float) -> None:
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def start_child(name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                      pipes: bool = False, program: str = sys.executable) -> Child:
    """Start ``python argv...`` (or ``program argv...``) from the repository root with stderr to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = await asyncio.create_subprocess_exec(
            program, *argv, cwd=REPO_ROOT, env={**os.environ, **(env or {})},
            stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
            stderr=log, preexec_fn=_die_with_parent, limit=1 << 24)
    return Child(name, process, log_path)


async def wait_listening(child: Child, timeout: float = 60.0, ready: str = "listening") -> int:
    """Wait for the child's ``listening`` JSON log line on stderr (and its ``ready`` one); return its port.

    ``ready="workers_ready"``: a ``--workers`` parent, once every worker listens.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.returncode is not None:
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}; see {child.log_path}")
        seen = set()
        for line in child.log_path.read_text(errors="replace").splitlines():
            if '"listening"' in line or f'"{ready}"' in line:
                event = json.loads(line)
                seen.add(event.get("event"))
                if event.get("event") == "listening" and not child.port:
                    child.port = int(event["port"])
                    child.extra.update(event)  # a peer's separate control_port, say
        if {"listening", ready} <= seen:
            return child.port
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} did not log {ready!r} within {timeout:g} s; see {child.log_path}")


class LoadGenerator:
    """Talks to the load generator process: one JSON command line, one JSON answer line."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, host: str, port: int, log_path: Path) -> LoadGenerator:
        """Start ``python -m benchmarks.loadgen HOST PORT``."""
        child = await start_child("loadgen", ["-m", "benchmarks.loadgen", host, str(port)], log_path, pipes=True)
        return cls(child)

    async def call(self, command: str, answer_within: float = 300.0, **args) -> dict:
        """Send one command and wait (at most ``answer_within`` seconds) for its answer."""
        process = self.child.process
        async with self._lock:
            process.stdin.write((json.dumps({"command": command, **args}) + "\n").encode())
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), answer_within)
        if not line:
            raise RuntimeError(f"load generator exited; see {self.child.log_path}")
        return json.loads(line)

    async def stop(self) -> None:
        """Ask the load generator to quit, then make sure it has."""
        process = self.child.process
        if process.returncode is None and process.stdin is not None:
            try:
                process.stdin.write(b'{"command": "quit"}\n')
                await process.stdin.drain()
                await asyncio.wait_for(process.wait(), 10)
            except (ConnectionError, TimeoutError):
                pass
        await self.child.stop()
