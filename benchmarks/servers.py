"""Starting the servers under test on the same workspace: the console, the seed replica and the two peers."""

from __future__ import annotations

from pathlib import Path

from benchmarks.hooks import HOOKS_ENV
from benchmarks.procs import Child, start_child, wait_listening
from benchmarks.redis_server import start_redis
from benchmarks.workspace import Workspace

HEARTBEAT = 30.0
POLLED_INTERVAL = 2.0  # webhook-status: the seed's 2 s watch interval, to keep runs short


def console_config(workspace: Workspace, webhook_url: str, overrides: tuple[str, ...] = ()) -> str:
    """The console's config.toml for the generated workspace (port 0: any free port).

    ``overrides`` are ``section.key=value`` with a TOML value, e.g. ``sources.watch_debounce=0.02``.
    """
    sections = {
        # The load generator opens thousands of connections from 32 addresses at full speed:
        # capacity is measured here, so the per-address connection rate (a defence) is off.
        "server": {"host": '"127.0.0.1"', "port": "0", "heartbeat": str(HEARTBEAT),
                   "connections_per_second_per_address": "0"},
        "sources": {"database": f'"sqlite:///{workspace.db_path.absolute()}"',
                    "agents_dir": f'"{workspace.agents_dir.absolute()}"',
                    "trees_dir": f'"{workspace.trees_dir.absolute()}"', "webhook_url": f'"{webhook_url}"',
                    "openapi_url": '""', "backend_url": '""'},
        "channels.webhook-status": {"interval": str(POLLED_INTERVAL)},
        "log": {"level": '"info"', "format": '"json"'},
    }
    for override in overrides:
        dotted, value = override.split("=", 1)
        section, key = dotted.rsplit(".", 1)
        sections.setdefault(section, {})[key] = value
    return "\n".join(f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in table.items())
                     for name, table in sections.items())


async def listening(child: Child, ready: str = "listening") -> Child:
    """Wait for the child's announcement; stop it if it never comes."""
    try:
        await wait_listening(child, ready=ready)
    except BaseException:
        await child.stop()
        raise
    return child


async def start_console(workspace: Workspace, webhook_url: str, logs: Path, overrides: tuple[str, ...] = ()) -> Child:
    """``python -m benchmarks.server_entry --config <generated>`` with the hooks switched on."""
    config = workspace.root / "config.toml"
    config.write_text(console_config(workspace, webhook_url, overrides))
    argv = ["-m", "benchmarks.server_entry", "--config", str(config)]
    return await listening(await start_child("console", argv, logs / "console.log", env={HOOKS_ENV: "1"}))


async def start_console_workers(workspace: Workspace, webhook_url: str, logs: Path,
                                overrides: tuple[str, ...] = (), workers: int = 2) -> Child:
    """The console as ``--workers 2`` with ``[broker] url`` on a redis-server of its own (a companion).

    The parent's, the workers' and redis-server's CPU and memory all count as the server's.
    """
    redis = await start_redis(workspace.root / "redis", logs)
    try:
        config = workspace.root / "config-workers.toml"
        broker = (f'broker.url="redis://127.0.0.1:{redis.port}/0"',)
        config.write_text(console_config(workspace, webhook_url, (*broker, *overrides)))
        argv = ["-m", "benchmarks.server_entry", "--config", str(config), "--workers", str(workers)]
        child = await start_child("console-workers", argv, logs / "console-workers.log", env={HOOKS_ENV: "1"})
    except BaseException:
        await redis.stop()
        raise
    child.companions.append(redis)
    return await listening(child, ready="workers_ready")


async def start_baseline(workspace: Workspace, webhook_url: str, logs: Path, overrides: tuple[str, ...] = ()) -> Child:
    """``python -m benchmarks.baseline`` (FastAPI + uvicorn seed replica) with the hooks switched on.

    The replica has no config file: console ``overrides`` do not apply to it.
    """
    argv = ["-m", "benchmarks.baseline", "--db", str(workspace.db_path.absolute()),
            "--agents-dir", str(workspace.agents_dir.absolute()), "--trees-dir", str(workspace.trees_dir.absolute()),
            "--webhook-url", webhook_url, "--heartbeat", str(HEARTBEAT)]
    return await listening(await start_child("baseline", argv, logs / "baseline.log", env={HOOKS_ENV: "1"}))


async def _start_peer(kind: str, workspace: Workspace, logs: Path) -> Child:
    argv = ["-m", f"benchmarks.peers.{kind}_peer", "--db", str(workspace.db_path.absolute()),
            "--heartbeat", str(HEARTBEAT)]
    return await listening(await start_child(kind, argv, logs / f"{kind}.log"))


async def start_aiohttp(workspace: Workspace, webhook_url: str, logs: Path, overrides: tuple[str, ...] = ()) -> Child:
    """``python -m benchmarks.peers.aiohttp_peer``: plain aiohttp serving the queue snapshot and changes."""
    return await _start_peer("aiohttp", workspace, logs)


async def start_websockets(workspace: Workspace, webhook_url: str, logs: Path,
                           overrides: tuple[str, ...] = ()) -> Child:
    """``python -m benchmarks.peers.websockets_peer``: the websockets library serving the same."""
    return await _start_peer("websockets", workspace, logs)


STARTERS = {"console": start_console, "console-workers2": start_console_workers, "baseline": start_baseline,
            "aiohttp": start_aiohttp, "websockets": start_websockets}
# The console itself, as one process or as workers sharing a Redis broker.
CONSOLES = ("console", "console-workers2")
# Servers that read the workspace's sources (and so can be measured for freshness and bytes).
WATCHING = (*CONSOLES, "baseline")
