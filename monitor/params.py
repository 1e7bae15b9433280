"""What a URL may name: the one check of a ``{channel}`` path segment, shared by pages, API and sockets."""

from __future__ import annotations

from aiohttp import web

from monitor.channels.registry import CHANNEL_NAMES, is_channel


def channel_or_404(request: web.Request) -> str:
    """The ``{channel}`` of the URL, or HTTP 404 naming the known channels."""
    channel = request.match_info["channel"]
    if not is_channel(channel):
        raise web.HTTPNotFound(text=f"unknown channel {channel!r}; channels: {', '.join(CHANNEL_NAMES)}")
    return channel
