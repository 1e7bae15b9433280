"""How many worker processes ``monitor serve`` runs, and each one's settings (see ``monitor.workers``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from monitor.settings import ConfigError, Settings

MAX_WORKERS = 64


def worker_count(settings: Settings, flag: int | None = None) -> int:
    """Worker processes to run: ``--workers`` over ``[server] workers``; a ConfigError when they lack a broker."""
    count = flag if flag is not None else settings.server.workers
    if count > 1 and not settings.broker.url:
        where = f"--workers {count}" if flag is not None else f"{settings.path}: [server] workers"
        raise ConfigError(f'{where}: {count} worker processes need a shared broker: set [broker] url = "redis://…"')
    return count


def share(total: float, count: int) -> Any:
    """One worker's share of a machine-wide cap (rounded up for whole numbers); 0 (derived per process) stays 0."""
    if not total:
        return total
    return math.ceil(total / count) if isinstance(total, int) else total / count


def worker_settings(settings: Settings, count: int, port: int) -> Settings:
    """A worker's settings: the port the parent holds, and its share of the explicit connection caps."""
    server = settings.server
    return dataclasses.replace(settings, server=dataclasses.replace(
        server, port=port, max_connections=share(server.max_connections, count),
        max_connections_per_address=share(server.max_connections_per_address, count),
        connections_per_second_per_address=share(server.connections_per_second_per_address, count)))
