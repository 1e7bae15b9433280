"""The shared source resources of one console: database, HTTP session, state files, own routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp

from monitor.sources.database import Database, open_database
from monitor.sources.statefiles import StateFiles

if TYPE_CHECKING:  # a runtime import would be a cycle: settings → channels → sources
    from monitor.settings import Settings

RouteList = list[tuple[str, str, str]]  # (method, path, handler name)


class Sources:
    """Owns the connections to the monitored system; ``open`` before use, ``close`` after."""

    def __init__(self, settings: Settings, own_routes: Callable[[], RouteList] = list) -> None:
        self.settings = settings
        self.own_routes = own_routes
        self.database: Database = open_database(settings.sources.database, settings.sources.busy_timeout,
                                                 settings.sources.full_read_interval)
        self.http: aiohttp.ClientSession | None = None
        paths = settings.sources
        # One scanner for both state-file channels: a changed file is read once, not once per channel.
        self.state_files = StateFiles(paths.agents_dir, paths.trees_dir, paths.max_file_bytes)

    async def open(self) -> None:
        """Create the HTTP client session (once: opening again keeps it)."""
        if self.http is None:
            # Sources' own timeouts are set per request; the poll timeout bounds them all.
            self.http = aiohttp.ClientSession(raise_for_status=False, trust_env=False)

    def session(self) -> aiohttp.ClientSession:
        """The shared HTTP client session; RuntimeError before ``open`` and after ``close``."""
        if self.http is None:
            raise RuntimeError("the sources are not open: no HTTP session")
        return self.http

    async def close(self) -> None:
        """Close the shared connections."""
        http, self.http = self.http, None
        if http is not None:
            await http.close()
        await self.database.close()
