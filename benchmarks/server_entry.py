"""``python -m benchmarks.server_entry --config PATH``: the console as ``monitor serve`` runs it,
plus the benchmark-only hooks of ``benchmarks.hooks`` and the tracing of ``benchmarks.trace``.

Refuses to start unless MONITOR_BENCH_HOOKS=1 (the driver sets it), so the hooks can
never be switched on by accident.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from benchmarks.hooks import HOOKS_ENV, add_bench_routes
from benchmarks.loadgen import raise_open_file_limit
from benchmarks.trace import add_tracing
from monitor.app import create_app
from monitor.logs import configure_logging
from monitor.server import serve_until_signalled
from monitor.settings import ConfigError, find_config, load_settings


def main() -> int:
    """Serve the console with the benchmark hooks until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description="the console with benchmark hooks (benchmarks only)")
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    if os.environ.get(HOOKS_ENV) != "1":
        print(f"benchmarks.server_entry: set {HOOKS_ENV}=1 to run the console with benchmark hooks", file=sys.stderr)
        return 2
    try:
        settings = load_settings(find_config(args.config))
    except ConfigError as exc:
        print(f"benchmarks.server_entry: bad config: {exc}", file=sys.stderr)
        return 2
    raise_open_file_limit()
    configure_logging(settings.log.level, settings.log.format)
    app = create_app(settings)
    add_bench_routes(app)
    add_tracing(app)
    asyncio.run(serve_until_signalled(settings, app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
