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


FLAG_VALUES = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def flag_param(request: web.Request, name: str, default: bool) -> bool:
    """A yes/no query parameter (``?wall=1``), ``default`` when absent; HTTP 400 for any other value."""
    raw = request.query.get(name)
    if raw is None:
        return default
    value = FLAG_VALUES.get(raw.strip().lower())
    if value is None:
        raise web.HTTPBadRequest(text=f"{name}: expected 1 or 0 (true/false, yes/no, on/off), got {raw[:40]!r}")
    return value
