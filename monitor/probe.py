"""One-shot reads of the sources, for ``monitor check`` and ``monitor snapshot``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from monitor.channels.base import SourceDown
from monitor.channels.registry import CHANNEL_NAMES, channel_spec
from monitor.poller import describe_error
from monitor.settings import Settings
from monitor.sources.resources import Sources
from monitor.state import ChannelState
from monitor.urls import list_routes, setup_routes


async def probe_sources(settings: Settings) -> dict[str, str | None]:
    """Read every channel once, concurrently; None for a channel whose sources answered (dashboard order)."""
    async with _opened(settings) as sources:
        outcomes = await asyncio.gather(*(_read(sources, settings, name) for name in CHANNEL_NAMES))
    return {name: problem for name, (_, problem) in zip(CHANNEL_NAMES, outcomes, strict=True)}


async def read_channel(settings: Settings, channel: str) -> tuple[dict[str, Any], str | None]:
    """(state, problem) of one channel read straight from its sources."""
    async with _opened(settings) as sources:
        return await _read(sources, settings, channel)


@asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[Sources]:
    routes = web.Application()  # never started: the routes channel reads its route table
    setup_routes(routes)
    sources = Sources(settings, own_routes=lambda: list_routes(routes))
    await sources.open()
    try:
        yield sources
    finally:
        await sources.close()


async def _read(sources: Sources, settings: Settings, name: str) -> tuple[dict[str, Any], str | None]:
    timeout = settings.channel(name).timeout
    state = ChannelState(name, epoch="snapshot")
    try:
        async with asyncio.timeout(timeout):
            data = await channel_spec(name).make_reader(sources).read()
    except Exception as exc:  # reported to the operator, not raised
        problem = describe_error(exc, timeout)
        state.mark_error(problem, exc.data if isinstance(exc, SourceDown) else None)
        return state.state, problem
    state.accept(data)
    return state.state, None
