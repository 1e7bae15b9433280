"""One live WebSocket client: it owns its writer, its backlog and its eviction.

Fan-out calls ``offer`` synchronously. While the client keeps up, the frame is written
straight to the transport (no task, no await). Once the transport's buffer backs up,
frames wait in a bounded backlog drained by one task; past the bound the client is
closed with 1013 (try again later) and may resume from its last seq.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

log = structlog.get_logger(__name__)

HEADER_ALLOWANCE = 14  # largest WebSocket frame header a server writes


@dataclass(frozen=True, slots=True)
class BacklogLimits:
    """How far one client may fall behind before it is cut off."""

    messages: int
    bytes: int
    close_grace: float


class Connection:
    """A subscribed WebSocket and everything needed to write to it."""

    __slots__ = (
        "ws", "channel", "limits", "opened_at", "messages_sent", "bytes_sent",
        "close_reason", "_transport", "_backlog", "_backlog_bytes", "_drainer", "_closer", "_on_evict",
    )

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, channel: str,
                 limits: BacklogLimits, on_evict) -> None:
        self.ws = ws
        self.channel = channel
        self.limits = limits
        self.opened_at = time.monotonic()
        self.messages_sent = 0
        self.bytes_sent = 0
        self.close_reason = ""
        self._transport = request.transport
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._drainer: asyncio.Task | None = None
        self._closer: asyncio.Task | None = None
        self._on_evict = on_evict

    @property
    def backlog_size(self) -> int:
        """Frames waiting for this client's transport."""
        return len(self._backlog)

    def offer(self, frame: bytes) -> None:
        """Hand one encoded frame to this client without waiting for it."""
        if self.close_reason or self.ws.closed:
            return
        if not self._backlog and self._fits_now(len(frame)):
            self._write_now(frame)
            return
        self._backlog.append(frame)
        self._backlog_bytes += len(frame)
        if len(self._backlog) > self.limits.messages or self._backlog_bytes > self.limits.bytes:
            self.evict(WSCloseCode.TRY_AGAIN_LATER, "slow")
        elif self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    def _fits_now(self, size: int) -> bool:
        # Below the low-water mark the protocol is never paused, and staying under the
        # high-water mark keeps it unpaused, so aiohttp's send_frame cannot suspend.
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        low, high = transport.get_write_buffer_limits()
        buffered = transport.get_write_buffer_size()
        return buffered <= low and buffered + size + HEADER_ALLOWANCE <= high

    def _write_now(self, frame: bytes) -> None:
        coro = self.ws.send_frame(frame, WSMsgType.TEXT)
        try:
            coro.send(None)
        except StopIteration:
            self._count(frame)
            return
        except Exception as exc:  # the peer went away mid-write: the receive loop ends it
            self.close_reason = self.close_reason or "write_failed"
            log.debug("ws_write_failed", channel=self.channel, error=str(exc))
            return
        # Unreachable while _fits_now holds; the frame is already in the transport.
        coro.close()
        self._count(frame)

    async def _drain(self) -> None:
        try:
            while self._backlog and not self.close_reason:
                frame = self._backlog.popleft()
                self._backlog_bytes -= len(frame)
                await self.ws.send_frame(frame, WSMsgType.TEXT)
                self._count(frame)
        except (ConnectionError, RuntimeError) as exc:
            self.close_reason = self.close_reason or "write_failed"
            log.debug("ws_write_failed", channel=self.channel, error=str(exc))
        finally:
            self._drainer = None

    def _count(self, frame: bytes) -> None:
        self.messages_sent += 1
        self.bytes_sent += len(frame)

    def evict(self, code: int, reason: str) -> None:
        """Stop sending, drop the backlog and close with ``code``; the socket is cut after the grace."""
        if self.close_reason:
            return
        self.close_reason = reason
        self._backlog.clear()
        self._backlog_bytes = 0
        if self._drainer is not None:
            self._drainer.cancel()
        self._on_evict(self, reason)
        self._closer = asyncio.get_running_loop().create_task(self.close(code))

    async def close(self, code: int) -> None:
        """Close with ``code``; a peer that doesn't take the close frame in time is cut."""
        try:
            async with asyncio.timeout(self.limits.close_grace):
                await self.ws.close(code=code, message=_CLOSE_TEXT.get(code, b""))
            return
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        self.abort()

    def abort(self) -> None:
        """Cut the socket now: a plain close would wait forever on a peer that stopped reading."""
        if self._transport is not None:
            self._transport.abort()


_CLOSE_TEXT = {
    WSCloseCode.TRY_AGAIN_LATER: b"too slow: resume with epoch and seq",
    WSCloseCode.GOING_AWAY: b"server shutting down",
    WSCloseCode.POLICY_VIOLATION: b"refused",
}
