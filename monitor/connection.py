"""One live WebSocket client: it owns its writer, its backlog and its eviction.

Fan-out calls ``offer`` synchronously. While the client keeps up, the frame is written
straight to the transport (no task, no await): for an uncompressed socket the complete
WebSocket frame, header included, which the hub builds once for all its clients. Once the
transport's buffer backs up, frames wait in a bounded backlog drained by one task through
aiohttp's writer; past the bound the client is closed with 1013 (try again later) and may
resume from its last seq. Once the transport is closing the peer is gone: nothing more is
written (a write would only fail) and the receive loop ends the connection. Pings come
from the shared heartbeat (``heartbeat.py``), which cuts a peer that stopped answering.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import WSMsgType, web

from monitor.protocol import TOO_SLOW, Close

log = structlog.get_logger(__name__)

# Why a connection was cut off, as logs and the monitor_ws_evictions metric name it.
SLOW, DEAD_PEER, FLOODED = "slow", "dead_peer", "rate_limited"
EVICTION_REASONS = (SLOW, DEAD_PEER, FLOODED)
HEADER_ALLOWANCE = 14  # largest WebSocket frame header a server writes
PING_FRAME = b"\x89\x00"  # a final, unmasked PING frame without payload: the same for every socket
SPLIT_ABOVE = 16 * 1024  # larger payloads go out after their header rather than copied behind it


def text_frame_header(size: int) -> bytes:
    """The header of an unmasked, final WebSocket text frame of ``size`` payload bytes."""
    if size < 126:
        return bytes((0x81, size))
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size)
    return struct.pack("!BBQ", 0x81, 127, size)


def text_frame(payload: bytes) -> bytes:
    """``payload`` as a complete server-to-client WebSocket text frame."""
    return text_frame_header(len(payload)) + payload


@dataclass(frozen=True, slots=True)
class BacklogLimits:
    """How far one client may fall behind before it is cut off."""

    messages: int
    bytes: int
    close_grace: float


class Connection:
    """A subscribed WebSocket and everything needed to write to it."""

    __slots__ = (
        "ws", "channel", "limits", "opened_at", "messages_sent", "bytes_sent", "close_reason",
        "awaiting_pong", "heartbeat_slot", "_transport", "_raw", "_low_water", "_high_water",
        "_backlog", "_backlog_bytes", "_drainer", "_closer", "_on_evict",
    )

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, channel: str,
                 limits: BacklogLimits, on_evict: Callable[[Connection, str], None]) -> None:
        self.ws = ws
        self.channel = channel
        self.limits = limits
        self.opened_at = time.monotonic()
        self.messages_sent = 0
        self.bytes_sent = 0
        self.close_reason = ""
        self.awaiting_pong = False  # pinged, and nothing received since (the receive loop clears it)
        self.heartbeat_slot = 0  # which of the heartbeat's slots holds this connection
        self._transport = request.transport
        # A compressing socket needs aiohttp's compressor state for every frame, so only
        # uncompressed sockets may be written behind aiohttp's back.
        self._raw = not ws.compress
        # aiohttp never changes a server transport's limits: read them once, not per frame.
        self._low_water, self._high_water = (
            request.transport.get_write_buffer_limits() if request.transport is not None else (0, 0))
        # Created on the first backed-up frame: an empty deque costs ~700 bytes, and most
        # clients never fall behind.
        self._backlog: deque[bytes] | None = None
        self._backlog_bytes = 0
        self._drainer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._on_evict = on_evict

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's transport (None once the request lost it)."""
        return self._transport

    @property
    def backlog_size(self) -> int:
        """Frames waiting for this client's transport."""
        return len(self._backlog) if self._backlog else 0

    def offer(self, frame: bytes, wire: bytes | None = None) -> None:
        """Hand one encoded frame to this client without waiting for it.

        ``wire`` is the same frame with its WebSocket header, when a fan-out built it once.
        """
        if self.close_reason or self.ws.closed:
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the peer is gone: its receive loop is ending
        # The fan-out case, inline: with 10k clients every extra call per client shows
        # next to the bare transport writes (see BENCHMARKS.md).
        if wire is not None and self._raw and not self._backlog:
            buffered = transport.get_write_buffer_size()
            # A frame larger than the high-water mark (a whole compat document) goes out in one
            # write too when nothing is waiting: the transport sends what the socket takes and
            # keeps the rest, and the next frame finds it backed up. A drain task per client
            # per change would cost several times the write.
            if buffered <= self._low_water and (buffered + len(wire) <= self._high_water or not buffered):
                try:
                    transport.write(wire)
                except (ConnectionError, RuntimeError) as exc:  # the peer went away: the receive loop ends it
                    self._write_failed(exc)
                    return
                self.messages_sent += 1
                self.bytes_sent += len(frame)
                return
        self._offer_slowly(frame, wire)

    def _offer_slowly(self, frame: bytes, wire: bytes | None) -> None:
        if not self._backlog and self._fits_now(len(frame)):
            self._write_now(frame, wire)
            return
        if self._backlog is None:
            self._backlog = deque()
        self._backlog.append(frame)
        self._backlog_bytes += len(frame)
        # The frame that starts the drain is in flight, not waiting: it may exceed the byte
        # bound (a big channel's snapshot). Only frames queued behind it count as lag.
        if self._drainer is None:  # this frame starts the drain: in flight, not waiting
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        elif len(self._backlog) > self.limits.messages or self._backlog_bytes > self.limits.bytes:
            self.evict(TOO_SLOW, SLOW)

    def _fits_now(self, size: int) -> bool:
        # Below the low-water mark the protocol is never paused, and staying under the
        # high-water mark keeps it unpaused, so a write here can never need a drain.
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        buffered = transport.get_write_buffer_size()
        if self._raw and not buffered:
            return True  # a large frame too, as in ``offer``: a raw write never needs a drain
        return buffered <= self._low_water and buffered + size + HEADER_ALLOWANCE <= self._high_water

    def _write_now(self, frame: bytes, wire: bytes | None) -> None:
        transport = self._transport
        assert transport is not None  # only called once _fits_now found it open
        try:
            if not self._raw:
                self._write_through_aiohttp(frame)
            elif wire is not None:
                # A whole frame in one synchronous call never interleaves with aiohttp's
                # own pings, pongs and close frame on the same transport.
                transport.write(wire)
            elif len(frame) > SPLIT_ABOVE:
                transport.write(text_frame_header(len(frame)))
                transport.write(frame)
            else:
                transport.write(text_frame(frame))
        except (ConnectionError, RuntimeError) as exc:  # the peer went away: the receive loop ends it
            self._write_failed(exc)
            return
        self._count(frame)

    def _write_failed(self, exc: Exception) -> None:
        """Stop writing; a reset peer is just gone, anything else is worth a debug line."""
        self._drop_backlog()
        if isinstance(exc, ConnectionResetError):  # aiohttp's "Cannot write to closing transport" too
            return  # its receive loop ends the connection with the real reason
        self.close_reason = self.close_reason or "write_failed"
        log.debug("ws_write_failed", channel=self.channel, error=str(exc))

    def _peer_gone(self) -> bool:
        """The transport is closing or the socket closed: nothing written now would arrive."""
        transport = self._transport
        return transport is None or transport.is_closing() or self.ws.closed

    def _drop_backlog(self) -> None:
        self._backlog = None
        self._backlog_bytes = 0

    def _write_through_aiohttp(self, frame: bytes) -> None:
        coro = self.ws.send_frame(frame, WSMsgType.TEXT)
        try:
            coro.send(None)
        except StopIteration:
            return
        # Unreachable while _fits_now holds; the frame is already in the transport.
        coro.close()

    async def _drain(self) -> None:
        try:
            while self._backlog and not self.close_reason and not self._peer_gone():
                frame = self._backlog.popleft()
                self._backlog_bytes -= len(frame)
                await self.ws.send_frame(frame, WSMsgType.TEXT)
                self._count(frame)
        except (ConnectionError, RuntimeError) as exc:
            self._write_failed(exc)
        finally:
            self._drainer = None
        if self._peer_gone() or not self._backlog:
            # Nothing will ever take it, or it is empty: an empty deque still holds a 64-slot block
            # (~700 bytes), and every client's snapshot goes through here once.
            self._drop_backlog()

    def _count(self, frame: bytes) -> None:
        self.messages_sent += 1
        self.bytes_sent += len(frame)

    def ping(self) -> None:
        """Write a protocol ping; the peer has until the heartbeat's next look at it to answer."""
        transport = self._transport
        if self.close_reason or self.ws.closed or transport is None or transport.is_closing():
            return
        self.awaiting_pong = True
        try:
            # A whole control frame in one write, as the fan-out writes data frames: legal between
            # any two frames, compressed socket or not, and never interleaved with aiohttp's.
            transport.write(PING_FRAME)
        except (ConnectionError, RuntimeError) as exc:
            self._write_failed(exc)

    def drop(self, reason: str) -> None:
        """Cut a peer that is gone: no close handshake (it would not answer); the receive loop reports ``reason``."""
        if self.close_reason:
            return
        self.close_reason = reason
        self._drop_backlog()
        if self._drainer is not None:
            self._drainer.cancel()
        self.abort()

    def evict(self, close: Close, reason: str) -> None:
        """Stop sending, drop the backlog and send ``close``; the socket is cut after the grace."""
        if self._cut(close, reason):
            self._on_evict(self, reason)

    def refuse(self, close: Close, reason: str, last: bytes) -> None:
        """Like ``evict``, with ``last`` sent just before the close frame; the caller logs and counts it.

        Reading stops at once: a flooding peer's next frames stay in its own send buffer
        instead of being parsed and dropped here until the close grace runs out.
        """
        if self._cut(close, reason, last) and self._transport is not None:
            self._transport.pause_reading()

    def _cut(self, close: Close, reason: str, last: bytes | None = None) -> bool:
        if self.close_reason:
            return False
        self.close_reason = reason
        self._drop_backlog()
        if self._drainer is not None:
            self._drainer.cancel()
        self._closer = asyncio.get_running_loop().create_task(self.close(close, last))
        return True

    async def close(self, close: Close, last: bytes | None = None) -> None:
        """Send ``close`` (after ``last``, if any); a peer that doesn't take the close frame in time is cut."""
        try:
            async with asyncio.timeout(self.limits.close_grace):
                if last is not None:
                    await self.ws.send_frame(last, WSMsgType.TEXT)
                    self._count(last)
                await self.ws.close(code=close.code, message=close.reason)
            return
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        self.abort()

    def abort(self) -> None:
        """Cut the socket now: a plain close would wait forever on a peer that stopped reading."""
        if self._transport is not None:
            self._transport.abort()
