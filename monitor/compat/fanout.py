"""The compat clients of each channel, and the one whole document each change sends them all.

The original client replaces a channel's state with every message it gets, so each
change is the whole document, never a patch. It is rendered from the broker's state of
the channel once per change, encoded once, and written to every compat client of that
channel through the same connections as the native protocol's (bounded backlog, 1013).
A change that leaves the document as it was (a field the original never showed) sends
nothing.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from monitor.broker import Broker
from monitor.compat.documents import Rendered, render
from monitor.hub import Hub
from monitor.websocket import serve_socket

log = structlog.get_logger(__name__)


class CompatFanout:
    """Compat connections by channel, and each channel's current document."""

    def __init__(self, broker: Broker, channels: tuple[str, ...]) -> None:
        self.broker = broker
        self.hub = Hub(channels)
        self._rendered: dict[str, tuple[tuple[str, int], Rendered]] = {}  # channel -> ((epoch, seq), document)
        self._failed: set[str] = set()  # channels whose state could not be rendered (logged once)

    def frame(self, channel: str) -> bytes | None:
        """The current document of ``channel`` as one message; None until one could be rendered."""
        rendered = self._current(channel)
        return rendered.frame if rendered is not None else None

    def deliver(self, channel: str, _patch: bytes) -> None:
        """A broker listener: render ``channel``'s new document for its compat clients, if it has any."""
        if not self.hub.count(channel):
            return  # rendered on the next connect instead
        before = self._rendered.get(channel)
        rendered = self._current(channel)
        if rendered is not None and (before is None or before[1] is not rendered):
            self.hub.deliver(channel, rendered.frame)

    def _current(self, channel: str) -> Rendered | None:
        """The document for the broker's current state: rendered once per (epoch, seq); the same
        object as before when its content did not change."""
        view = self.broker.current(channel)
        cached = self._rendered.get(channel)
        if cached is not None and cached[0] == (view.epoch, view.seq):
            return cached[1]
        previous = cached[1] if cached is not None else None
        try:
            rendered = render(channel, view.state, previous)
        except Exception:  # a state no builder foresaw: the clients keep the last good document
            if channel not in self._failed:
                self._failed.add(channel)
                log.exception("compat_render_failed", channel=channel, seq=view.seq)
            return previous
        if channel in self._failed:
            self._failed.discard(channel)
            log.info("compat_render_recovered", channel=channel, seq=view.seq)
        self._rendered[channel] = ((view.epoch, view.seq), rendered)
        return rendered

    async def socket(self, request: web.Request, channel: str) -> web.StreamResponse:
        """Serve one compat client of ``channel``: its current document, then every changed one."""
        def catch_up() -> list[bytes]:
            frame = self.frame(channel)
            return [frame] if frame is not None else []
        # The original client never sends; whatever it does send is read (a flood is cut) and dropped.
        return await serve_socket(request, channel, self.hub, catch_up, lambda data: None)
