"""``python -m benchmarks.server_entry --config PATH [--workers N]``: the console as ``monitor serve`` runs it,
plus the benchmark-only hooks of ``benchmarks.hooks`` and the tracing of ``benchmarks.trace``.

With ``--workers N`` (the config must name a ``[broker] url``) it is ``monitor serve --workers N``:
the same supervisor forks N workers on one port, each with the hooks; the tracing, which
splits the in-process broker's publish, is left out.

Refuses to start unless MONITOR_BENCH_HOOKS=1 (the driver sets it), so the hooks can
never be switched on by accident.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from functools import partial

from benchmarks.hooks import HOOKS_ENV, add_bench_routes
from benchmarks.loadgen import raise_open_file_limit
from benchmarks.trace import add_tracing
from monitor.app import create_app
from monitor.logs import configure_logging
from monitor.server import serve_until_signalled
from monitor.settings import ConfigError, Settings, find_config, load_settings
from monitor.worker_config import worker_count
from monitor.worker_pipe import ReadyPipe
from monitor.workers import supervise


def serve_hooked(settings: Settings, worker: int | None = None, pipe: ReadyPipe | None = None,
                 traced: bool = True) -> int:
    """One console process with the hooks: a lone one, or worker ``worker`` reporting to ``pipe``."""
    app = create_app(settings)
    add_bench_routes(app)
    if traced:
        add_tracing(app)
    asyncio.run(serve_until_signalled(settings, app, worker=worker, notifier=pipe))
    return 0


def main() -> int:
    """Serve the console with the benchmark hooks until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="the console with benchmark hooks (benchmarks only)")
    parser.add_argument("--config", required=True)
    parser.add_argument("--workers", type=int, help="worker processes on one port (needs [broker] url)")
    args = parser.parse_args()
    if os.environ.get(HOOKS_ENV) != "1":
        print(f"benchmarks.server_entry: set {HOOKS_ENV}=1 to run the console with benchmark hooks", file=sys.stderr)
        return 2
    try:
        settings = load_settings(find_config(args.config))
        workers = worker_count(settings, args.workers)
    except ConfigError as exc:
        print(f"benchmarks.server_entry: bad config: {exc}", file=sys.stderr)
        return 2
    raise_open_file_limit()
    configure_logging(settings.log.level, settings.log.format)
    if workers > 1:
        return supervise(settings, workers, partial(serve_hooked, traced=False))
    return serve_hooked(settings)


if __name__ == "__main__":
    sys.exit(main())
