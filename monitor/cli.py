"""The ``monitor`` command: serve, demo, check, snapshot."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson

from monitor import __version__
from monitor.channels.names import CHANNEL_NAMES
from monitor.settings import ConfigError, Settings, find_config, load_settings

EXIT_UNUSABLE = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``monitor`` command."""
    parser = argparse.ArgumentParser(prog="monitor", description="Live ops console for ADW systems.")
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the console")
    serve.add_argument("--config", help="config file (default ./config.toml, then /etc/monitor/config.toml)")
    demo = commands.add_parser("demo", help="create a changing demo workspace and serve the console on it")
    demo.add_argument("--dir", default="demo", help="workspace directory (default ./demo)")
    demo.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080)")
    demo.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    check = commands.add_parser("check", help="validate the config and probe every source once")
    check.add_argument("--config")
    snapshot = commands.add_parser("snapshot", help="print one channel's current state as JSON")
    snapshot.add_argument("channel", choices=CHANNEL_NAMES, metavar="CHANNEL")
    snapshot.add_argument("--config")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``monitor`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from monitor.demo.run import run_demo

            return run_demo(Path(args.dir), args.host, args.port)
        settings = _settings(args.config)
        if args.command == "serve":
            return serve(settings)
        if args.command == "check":
            return asyncio.run(check(settings))
        return asyncio.run(snapshot(settings, args.channel))
    except ConfigError as exc:
        print(f"monitor: bad config: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        return 130


def _settings(explicit: str | None) -> Settings:
    return load_settings(find_config(explicit))


def serve(settings: Settings) -> int:
    """Run the console until SIGINT or SIGTERM; 0 after a clean shutdown."""
    from monitor.logs import configure_logging
    from monitor.server import serve_until_signalled

    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(serve_until_signalled(settings))
    except OSError as exc:
        print(f"monitor: cannot listen on {settings.server.host}:{settings.server.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_UNUSABLE
    return 0


async def check(settings: Settings) -> int:
    """Probe every source once; 0 when all answer, 2 when any does not."""
    from monitor.probe import probe_sources

    results = await probe_sources(settings)
    width = max(len(name) for name in results)
    for name, problem in results.items():
        print(f"{name:<{width}}  {'ok' if problem is None else 'FAILED: ' + problem}")
    print(f"config: {settings.path}")
    return 0 if all(problem is None for problem in results.values()) else EXIT_UNUSABLE


async def snapshot(settings: Settings, channel: str) -> int:
    """Print ``channel``'s state read straight from the sources."""
    from monitor.probe import read_channel

    state, problem = await read_channel(settings, channel)
    sys.stdout.write(orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
    if problem is not None:
        print(f"monitor: {channel}: {problem}", file=sys.stderr)
        return EXIT_UNUSABLE
    return 0
