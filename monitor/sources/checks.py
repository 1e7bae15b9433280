"""Health checks: each probes one thing under its own deadline, and all of them run at once.

A probe is a coroutine that returns a short, stable success message or raises:
``CheckFailed`` when its target is unhealthy, ``CheckDegraded`` when the target answers
but reports itself degraded. A passing or degraded check that took longer than its
``degraded_after`` is degraded, and says so. Nothing a probe does can hold up another:
deadlines are per check (``asyncio.timeout``), connection work is asynchronous and the
process scan runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from monitor.redact import redact_url
from monitor.sources.database import Database
from monitor.sources.httpjson import HttpSourceError, describe_client_error, get_json
from monitor.sources.processes import command_lines

log = structlog.get_logger(__name__)

HEALTHY, DEGRADED, ERROR = "healthy", "degraded", "error"

Probe = Callable[[], Awaitable[str]]
# (health, message) of a target, judged from the JSON document it answers with.
Judge = Callable[[Any], tuple[str, str]]
SUCCESS_CODES = range(200, 300)
UP_CODES = range(200, 400)  # a redirect (to a login page, say) still shows the target answers


class CheckFailed(Exception):
    """A probe found its target unhealthy; the message says why."""


class CheckDegraded(Exception):
    """A probe's target answered but reports itself degraded; the message says how."""


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One check to run: what it is called, what it probes and how patient it is."""

    name: str
    kind: str
    target: str
    timeout: float
    degraded_after: float
    probe: Probe


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check run."""

    name: str
    kind: str
    target: str
    status: str
    latency_ms: float
    message: str

    def as_item(self) -> dict[str, Any]:
        """The check as a system-status channel item."""
        return {"name": self.name, "kind": self.kind, "status": self.status,
                "latency_ms": self.latency_ms, "message": self.message, "target": self.target}


async def run_check(spec: CheckSpec) -> CheckResult:
    """Run one check under its own timeout; never raises (except when cancelled)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout):
            message = await spec.probe()
        status = HEALTHY
    except TimeoutError:
        status, message = ERROR, f"timed out after {spec.timeout:g} s"
    except CheckFailed as exc:
        status, message = ERROR, str(exc)
    except CheckDegraded as exc:
        status, message = DEGRADED, str(exc)
    except Exception as exc:  # an unforeseen probe failure is still just this check's result
        status, message = ERROR, str(exc) or type(exc).__name__
        log.warning("check_crashed", check=spec.name, kind=spec.kind, error=message, error_type=type(exc).__name__)
    elapsed = time.perf_counter() - started
    if status != ERROR and elapsed > spec.degraded_after:
        status, message = DEGRADED, f"{message}; slower than {spec.degraded_after:g} s"
    return CheckResult(spec.name, spec.kind, spec.target, status, elapsed * 1000.0, message)


async def run_checks(specs: Sequence[CheckSpec]) -> list[CheckResult]:
    """Run every check concurrently; results in the order of ``specs``."""
    return list(await asyncio.gather(*(run_check(spec) for spec in specs)))


async def probe_event_loop() -> str:
    """Healthy once the event loop comes round to us: the check's latency is the loop's lag."""
    loop = asyncio.get_running_loop()
    turn = loop.create_future()
    loop.call_soon(turn.set_result, None)
    await turn
    return "serving"


async def probe_database(database: Database) -> str:
    """Healthy when the database answers its cheapest query (the change token)."""
    await database.change_token()
    return "reachable"


async def probe_http(http: aiohttp.ClientSession, url: str, accepted: range = UP_CODES) -> str:
    """Healthy when ``GET url`` answers with a code in ``accepted`` (redirects are not followed)."""
    try:
        async with http.get(url, allow_redirects=False) as response:
            status = response.status
    except aiohttp.ClientError as exc:
        raise CheckFailed(describe_client_error(url, exc)) from exc
    if status in accepted:
        return f"HTTP {status}"
    raise CheckFailed(f"HTTP {status} from {redact_url(url)}")


async def probe_reported_health(http: aiohttp.ClientSession, url: str, timeout: float, judge: Judge) -> str:
    """Health as the target reports it: ``judge`` reads the JSON of a 2xx answer to ``GET url``."""
    try:
        document = await get_json(http, url, timeout)
    except HttpSourceError as exc:
        raise CheckFailed(str(exc)) from exc
    status, message = judge(document)
    if status == HEALTHY:
        return message
    raise CheckDegraded(message) if status == DEGRADED else CheckFailed(message)


def parse_host_port(target: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) split into host and port."""
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CheckFailed(f"expected host:port, got {target!r}")
    return host, int(port)


async def probe_tcp(target: str) -> str:
    """Healthy when a TCP connection to ``host:port`` opens; it is closed at once."""
    host, port = parse_host_port(target)
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError as exc:
        raise CheckFailed(f"connection refused to {target}") from exc
    except OSError as exc:
        raise CheckFailed(f"cannot connect to {target}: {exc.strerror or exc}") from exc
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass  # the peer hung up first: the connection did open, which is what we check
    return "connected"


def find_processes(text: str, proc: str = "/proc") -> list[int]:
    """Pids of the processes (other than this one) whose command line contains ``text``."""
    lines = command_lines(Path(proc))
    if lines is None:
        raise CheckFailed(f"process checks need {proc} (Linux)")
    needle = text.encode()
    return [pid for pid, cmdline in lines if needle in cmdline.replace(b"\0", b" ")]


async def probe_process(text: str) -> str:
    """Healthy when some process's command line contains ``text``; scanned off the event loop."""
    pids = await asyncio.to_thread(find_processes, text)
    if not pids:
        raise CheckFailed(f"no process matches {text!r}")
    return "1 process" if len(pids) == 1 else f"{len(pids)} processes"
