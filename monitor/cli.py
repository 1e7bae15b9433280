"""The ``monitor`` command: serve, demo, check, snapshot, alerts test."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from monitor import __version__
from monitor.channels.registry import CHANNEL_NAMES
from monitor.settings import DEFAULTS_LABEL, ConfigError, Settings, find_config, load_settings
from monitor.worker_config import MAX_WORKERS, worker_count

if TYPE_CHECKING:
    from monitor.server import Notifies

EXIT_UNUSABLE = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``monitor`` command."""
    parser = argparse.ArgumentParser(prog="monitor", description="Live ops console for ADW systems.")
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the console")
    serve.add_argument("--config", help="config file (default ./config.toml, then /etc/monitor/config.toml)")
    serve.add_argument("--workers", type=worker_flag, metavar="N",
                       help="worker processes sharing the port, one per core (overrides [server] workers; "
                            "more than 1 needs [broker] url)")
    demo = commands.add_parser("demo", help="create a changing demo workspace and serve the console on it")
    demo.add_argument("--dir", default="demo", help="workspace directory (default ./demo)")
    demo.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080)")
    demo.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    check = commands.add_parser("check", help="validate the config and probe every source once")
    check.add_argument("--config")
    check.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    snapshot = commands.add_parser("snapshot", help="print one channel's current state as JSON")
    snapshot.add_argument("channel", choices=CHANNEL_NAMES, metavar="CHANNEL")
    snapshot.add_argument("--config")
    alerts = commands.add_parser("alerts", help="alert delivery").add_subparsers(dest="alerts_command", required=True)
    alerts_test = alerts.add_parser("test", help="send a test message through every configured notification URL")
    alerts_test.add_argument("--config")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``monitor`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from monitor.demo.run import run_demo

            return run_demo(Path(args.dir), args.host, args.port)
        settings = _settings(args.config)
        workers = worker_count(settings, getattr(args, "workers", None))  # a bad count is a bad config everywhere
        if args.command == "serve":
            return serve(settings, workers)
        log_to_stderr(settings)
        if args.command == "check":
            return asyncio.run(check(settings, as_json=args.json))
        if args.command == "alerts":
            return asyncio.run(test_alerts(settings))
        return asyncio.run(snapshot(settings, args.channel))
    except ConfigError as exc:
        print(f"monitor: bad config: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        return 130


def _settings(explicit: str | None) -> Settings:
    return load_settings(find_config(explicit))


def log_to_stderr(settings: Settings) -> None:
    """Send every log line to stderr at the configured level and format."""
    from monitor.logs import configure_logging

    # Unconfigured structlog writes to stdout; configured before any source is read,
    # stdout carries nothing but the command's report or JSON.
    configure_logging(settings.log.level, settings.log.format)


def one_line(text: str) -> str:
    """``text`` with line breaks escaped, so each report stays one line (a TOML key may hold one)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def worker_flag(text: str) -> int:
    """``--workers``: a whole number from 1 to MAX_WORKERS."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected a number of processes from 1 to {MAX_WORKERS}, got {text!r}")
    return int(text)


def serve(settings: Settings, workers: int = 1) -> int:
    """Run the console (``workers`` processes of it on one port) until SIGINT or SIGTERM; 0 after a clean shutdown."""
    log_to_stderr(settings)
    if workers > 1:
        import monitor.server  # noqa: F401 -- imported once before the forks: shared pages, quicker restarts
        from monitor.workers import supervise

        try:
            return supervise(settings, workers, serve_worker)
        except OSError as exc:
            return cannot_listen(settings, exc)
    return serve_worker(settings)


def serve_worker(settings: Settings, worker: int | None = None, notifier: Notifies | None = None) -> int:
    """One console process: a lone one, or worker ``worker`` of several reporting to ``notifier``."""
    from monitor.server import serve_until_signalled

    try:
        asyncio.run(serve_until_signalled(settings, worker=worker, notifier=notifier))
    except OSError as exc:
        return cannot_listen(settings, exc)
    return 0


def cannot_listen(settings: Settings, exc: OSError) -> int:
    """Say the port cannot be had; the exit status for it."""
    print(f"monitor: cannot listen on {settings.server.host}:{settings.server.port}: {exc.strerror or exc}",
          file=sys.stderr)
    return EXIT_UNUSABLE


async def check(settings: Settings, as_json: bool = False) -> int:
    """Probe every source once and report each channel; 0 when all answer, 2 when any does not."""
    from monitor.probe import probe_sources

    results = await probe_sources(settings)
    print(check_json(settings, results) if as_json else check_table(settings, results))
    return 0 if all(problem is None for problem in results.values()) else EXIT_UNUSABLE


def check_table(settings: Settings, results: dict[str, str | None]) -> str:
    """One ``<channel>  ok`` or ``<channel>  error  <message>`` line per channel, then ``config: <path>``."""
    width = max(len(name) for name in results)
    lines = [f"{name:<{width}}  ok" if problem is None else f"{name:<{width}}  error  {one_line(problem)}"
             for name, problem in results.items()]
    return "\n".join([*lines, f"config: {settings.path}"])


def check_json(settings: Settings, results: dict[str, str | None]) -> str:
    """``{"config", "ok", "channels": {name: {"ok", "error"?}}}``; config is null when no file was read."""
    channels = {name: {"ok": True} if problem is None else {"ok": False, "error": problem}
                for name, problem in results.items()}
    report = {"config": None if settings.path == DEFAULTS_LABEL else settings.path,
              "ok": all(problem is None for problem in results.values()), "channels": channels}
    return orjson.dumps(report).decode()


async def snapshot(settings: Settings, channel: str) -> int:
    """Print ``channel``'s state read straight from the sources."""
    from monitor.probe import read_channel

    state, problem = await read_channel(settings, channel)
    sys.stdout.write(orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
    if problem is not None:
        print(f"monitor: {channel}: {one_line(problem)}", file=sys.stderr)
        return EXIT_UNUSABLE
    return 0


async def test_alerts(settings: Settings) -> int:
    """Send a test message through each notification URL once; one line each; 0 when all arrived, 1 when any did not."""
    from monitor.alerts.notify import Notifier

    urls = list(dict.fromkeys(url for rule in settings.alerts for url in rule.notify))
    if not urls:
        print(f"monitor: no [[alerts]] rule of {settings.path} has a notify URL", file=sys.stderr)
        return 0
    results = await Notifier().test(urls)
    width = max(len(label) for label, _, _ in results)
    for label, delivered, problem in results:
        print(f"{label:<{width}}  " + ("OK" if delivered else f"FAILED: {one_line(problem)}"))
    return 0 if all(delivered for _, delivered, _ in results) else 1
