"""A channel reader over database queries that skips reading while nothing was committed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from monitor.channels.base import ChannelData
from monitor.sources.database import Database, Rows
from monitor.sources.schema import Query


class DatabaseReader:
    """Runs a channel's queries in one read transaction and builds its data from the rows."""

    def __init__(self, db: Database, queries: Mapping[str, Query],
                 build: Callable[[dict[str, Rows]], ChannelData]) -> None:
        self.db = db
        self.queries = dict(queries)
        self.build = build
        self._token: Any = None

    async def read(self) -> ChannelData | None:
        """Fresh data, or None when the database's change token has not moved."""
        last, self._token = self._token, None  # forgotten unless this read succeeds
        token = await self.db.change_token()
        if token is not None and token == last:
            self._token = token
            return None
        data = self.build(await self.db.fetch_many(self.queries))
        self._token = token
        return data
