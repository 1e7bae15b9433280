"""The shared source resources of one console, and the reader of each channel."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from monitor.channels import (
    adw_monitor,
    planned_features,
    queue,
    routes,
    system_status,
    webhook_status,
    workflow_history,
    workflows,
)
from monitor.channels.base import Reader
from monitor.settings import Settings
from monitor.sources.database import Database, open_database
from monitor.sources.statefiles import StateFiles

RouteList = list[tuple[str, str, str]]  # (method, path, handler name)


def _reader_factories() -> dict[str, Callable[["Sources"], Reader]]:
    return {
        "queue": queue.make_reader,
        "adw-monitor": adw_monitor.make_reader,
        "workflows": workflows.make_reader,
        "workflow-history": workflow_history.make_reader,
        "planned-features": planned_features.make_reader,
        "system-status": system_status.make_reader,
        "routes": routes.make_reader,
        "webhook-status": webhook_status.make_reader,
    }


def query_names() -> tuple[str, ...]:
    """Every query name that ``[queries]`` may override."""
    modules = (queue, adw_monitor, workflow_history, planned_features)
    return tuple(name for module in modules for name in module.DEFAULT_QUERIES)


class Sources:
    """Owns the connections to the monitored system; ``open`` before use, ``close`` after."""

    def __init__(self, settings: Settings, own_routes: Callable[[], RouteList] = list) -> None:
        self.settings = settings
        self.own_routes = own_routes
        self.database: Database = open_database(settings.sources.database, settings.sources.busy_timeout)
        self.http: aiohttp.ClientSession | None = None
        paths = settings.sources
        # One scanner for both state-file channels: a changed file is read once, not once per channel.
        self.state_files = StateFiles(paths.agents_dir, paths.trees_dir, paths.max_file_bytes)
        self.readers: dict[str, Reader] = {}

    async def open(self) -> None:
        """Create the HTTP client session and every channel's reader."""
        # Sources' own timeouts are set per request; the poll timeout bounds them all.
        self.http = aiohttp.ClientSession(raise_for_status=False, trust_env=False)
        self.readers = {name: make(self) for name, make in _reader_factories().items()}

    async def close(self) -> None:
        """Close every reader, then the shared connections."""
        for reader in self.readers.values():
            await reader.close()
        if self.http is not None:
            await self.http.close()
        await self.database.close()
