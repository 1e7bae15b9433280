"""``python -m benchmarks.baseline``: serve the seed replica with uvicorn on a free loopback port.

Logs ``{"event": "listening", "port": N}`` on stderr like the console, so the driver
treats both servers alike. Benchmark hooks are added only with MONITOR_BENCH_HOOKS=1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys

import uvicorn

from benchmarks.baseline.app import create_seed_app
from benchmarks.baseline.hooks import add_bench_routes
from benchmarks.baseline.sources import SeedSources
from benchmarks.hooks import HOOKS_ENV
from benchmarks.loadgen import raise_open_file_limit


def parse_args() -> argparse.Namespace:
    """Command-line arguments of the replica."""
    parser = argparse.ArgumentParser(description="seed-pattern replica (benchmarks only)")
    parser.add_argument("--db", required=True)
    parser.add_argument("--agents-dir", required=True)
    parser.add_argument("--trees-dir", required=True)
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--heartbeat", type=float, default=30.0, help="uvicorn ws_ping_interval")
    return parser.parse_args()


async def serve(args: argparse.Namespace) -> None:
    """Bind 127.0.0.1:0, announce the port, serve until SIGTERM/SIGINT."""
    app = create_seed_app(SeedSources(args.db, args.agents_dir, args.trees_dir, args.webhook_url))
    if os.environ.get(HOOKS_ENV) == "1":
        add_bench_routes(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # uvicorn's defaults (uvloop, httptools, websockets-sansio), with the console's heartbeat.
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws_ping_interval=args.heartbeat,
                            ws_ping_timeout=args.heartbeat / 2, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    print(json.dumps({"event": "listening", "port": sock.getsockname()[1]}), file=sys.stderr, flush=True)
    await serving


def main() -> None:
    """Entry point: uvloop when installed, as uvicorn's default loop choice does."""
    raise_open_file_limit()
    args = parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()
