"""The shared source resources of one console, and the reader of each channel."""

from __future__ import annotations

from monitor.channels.base import Reader
from monitor.channels import queue
from monitor.channels.dbreader import DatabaseReader
from monitor.settings import Settings
from monitor.sources.database import Database, open_database


class Sources:
    """Owns the connections to the monitored system; build with ``open``, release with ``close``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database: Database = open_database(settings.sources.database, settings.sources.busy_timeout)
        self.readers: dict[str, Reader] = {
            "queue": DatabaseReader(self.database, queue.DEFAULT_QUERIES, queue.build_queue_channel),
        }

    async def close(self) -> None:
        """Close every reader, then the shared connections."""
        for reader in self.readers.values():
            await reader.close()
        await self.database.close()
