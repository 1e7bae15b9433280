"""One-shot reads of the sources, for ``monitor check`` and ``monitor snapshot``."""

from __future__ import annotations

import asyncio

from monitor.channel import ChannelState
from monitor.channels.base import SourceDown
from monitor.channels.names import CHANNEL_NAMES
from monitor.poller import describe_error
from monitor.settings import Settings
from monitor.sources.registry import Sources


async def probe_sources(settings: Settings) -> dict[str, str | None]:
    """Read every channel once, concurrently; None for a channel whose sources answered (dashboard order)."""
    sources = await _open_sources(settings)
    try:
        names = [name for name in CHANNEL_NAMES if name in sources.readers]
        outcomes = await asyncio.gather(*(_read(sources, settings, name) for name in names))
        return {name: problem for name, (_, problem) in zip(names, outcomes)}
    finally:
        await sources.close()


async def read_channel(settings: Settings, channel: str) -> tuple[dict, str | None]:
    """(state, problem) of one channel read straight from its sources."""
    sources = await _open_sources(settings)
    try:
        if channel not in sources.readers:
            return {}, f"channel {channel!r} has no reader yet"
        return await _read(sources, settings, channel)
    finally:
        await sources.close()


async def _open_sources(settings: Settings) -> Sources:
    from monitor.app import create_app, list_routes

    app = create_app(settings)  # never started: only its route table is read
    sources = Sources(settings, own_routes=lambda: list_routes(app))
    await sources.open()
    return sources


async def _read(sources: Sources, settings: Settings, name: str) -> tuple[dict, str | None]:
    timeout = settings.channel(name).timeout
    state = ChannelState(name, epoch="snapshot")
    try:
        async with asyncio.timeout(timeout):
            data = await sources.readers[name].read()
    except Exception as exc:  # reported to the operator, not raised
        problem = describe_error(exc, timeout)
        state.mark_error(problem, exc.data if isinstance(exc, SourceDown) else None)
        return state.state, problem
    state.accept(data)
    return state.state, None
