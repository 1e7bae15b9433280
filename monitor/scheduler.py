"""APScheduler wiring: one interval job per channel, coalesced, never overlapping."""

from __future__ import annotations

import asyncio
import datetime as dt
import math

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.poller import Poller
from monitor.settings import Settings


def build_scheduler(settings: Settings, pollers: dict[str, Poller]) -> AsyncIOScheduler:
    """A scheduler with one job per poller at its channel's interval (not started)."""
    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    now = dt.datetime.now(dt.UTC)
    for name, poller in pollers.items():
        interval = settings.channel(name).interval
        scheduler.add_job(
            poller.poll,
            "interval",
            seconds=interval,
            id=f"poll:{name}",
            coalesce=True,
            max_instances=1,
            # A late run is still worth doing until the next one is due.
            misfire_grace_time=max(1, math.ceil(interval)),
            next_run_time=now + dt.timedelta(seconds=interval),
        )
    return scheduler


class Polling:
    """The running pollers and their scheduler; ``stop`` is idempotent."""

    def __init__(self, scheduler: AsyncIOScheduler, pollers: dict[str, Poller]) -> None:
        self.scheduler = scheduler
        self.pollers = pollers
        self._stopping = False

    def start(self) -> None:
        """Start the interval jobs."""
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop the jobs and cancel polls in flight."""
        if self._stopping:
            return
        self._stopping = True
        self.scheduler.shutdown(wait=False)
        await asyncio.gather(*(poller.stop() for poller in self.pollers.values()))
