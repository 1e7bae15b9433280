"""Giving memory back to the system after a burst of connections.

A storm of short connections (a reload wave, a scan, an attack) leaves glibc's heap at its
high-water mark long after the connections are gone: freed, but not returned, so a
console that survived the storm keeps its size until restarted. Once connections have
churned and things are quiet again, ``malloc_trim`` hands the free pages back. It runs in
a worker thread, at most once per quiet spell; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

CHECK_EVERY = 5.0   # seconds between looks at the connection counter
CHURN = 1000        # connections admitted since the last trim that make one worth it
QUIET = 50          # at most this many admitted in the last look: the burst is over


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where there is no such function."""
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    return (lambda: function(0)) if function is not None else None


async def give_back_after_bursts(admitted: Callable[[], int], check_every: float = CHECK_EVERY,
                                 trim: Callable[[], object] | None = None) -> None:
    """Run until cancelled: trim once ``CHURN`` connections came and went and the last look was quiet."""
    trim = trim or malloc_trim()
    if trim is None:
        return
    trimmed_at = last = admitted()
    while True:
        await asyncio.sleep(check_every)
        now = admitted()
        if now - trimmed_at >= CHURN and now - last <= QUIET:
            await asyncio.to_thread(trim)
            log.debug("memory_returned", connections_since=now - trimmed_at)
            trimmed_at = now
        last = now
