"""A lean WebSocket client for load generation: one asyncio Protocol per socket, no task.

It answers pings and close frames, JSON-decodes every text frame it receives (with orjson,
as a browser's ``JSON.parse`` would), counts what it receives, and records when the frame
carrying the pool's armed marker had been received and parsed (``time.monotonic``, which is
system-wide on Linux, so the driver and the servers share the clock). Client frames use an all-zero
mask: legal, and it saves the load generator from XOR-ing payloads.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Protocol

import orjson

HANDSHAKE = ("GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: YmVuY2htYXJrLWNsaWVudA==\r\nSec-WebSocket-Version: 13\r\n\r\n")
ZERO_MASK = b"\x00\x00\x00\x00"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x1, 0x2, 0x8, 0x9
LINGER_RESET = struct.pack("ii", 1, 0)


class PoolEvents(Protocol):
    """What a client reports to its pool."""

    armed: bytes | None
    armed_tag: str

    def on_handshake(self, client: BenchClient, ok: bool) -> None:
        """The upgrade finished (``ok``) or failed."""

    def on_first_frame(self, client: BenchClient) -> None:
        """The first data frame arrived."""

    def on_arrival(self, client: BenchClient) -> None:
        """The frame carrying the armed marker arrived."""

    def on_lost(self, client: BenchClient) -> None:
        """The connection ended."""


class BenchClient(asyncio.Protocol):
    """One WebSocket client connection."""

    __slots__ = ("pool", "tag", "request", "transport", "buffer", "upgraded", "first_frame_size",
                 "arrival", "arrival_frame_size", "frames", "bytes", "bad_json", "close_code", "lost")

    def __init__(self, pool: PoolEvents, host: str, path: str, tag: str = "") -> None:
        self.pool = pool
        self.tag = tag
        self.request = HANDSHAKE.format(path=path, host=host).encode()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded: bool | None = None  # None until the server answered the upgrade
        self.first_frame_size = 0
        self.arrival: float | None = None
        self.arrival_frame_size = 0
        self.frames = 0
        self.bytes = 0
        self.bad_json = 0  # text frames that were not valid JSON
        self.close_code: int | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the upgrade request."""
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        """Report the loss (before the handshake it counts as a failed handshake)."""
        self.lost = True
        if self.upgraded is None:
            self.upgraded = False
            self.pool.on_handshake(self, False)
        self.pool.on_lost(self)

    def data_received(self, data: bytes) -> None:
        """Finish the handshake, then parse every complete frame."""
        self.buffer += data
        if not self.upgraded and not self._take_handshake():
            return
        self._parse_frames()

    def _take_handshake(self) -> bool:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        ok = buffer.startswith(b"HTTP/1.1 101")
        del buffer[:end + 4]
        self.upgraded = ok
        self.pool.on_handshake(self, ok)
        if not ok:
            self.transport.close()
        return ok

    def _parse_frames(self) -> None:
        buffer, pos, size = self.buffer, 0, len(self.buffer)
        while size - pos >= 2:
            length, head = buffer[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2:pos + 10], "big"), 10
            end = pos + head + length
            if end > size:
                break
            self._on_frame(buffer[pos] & 0x0F, pos + head, end)
            pos = end
        if pos == size:
            self.buffer = bytearray()  # drop the capacity a big snapshot left behind
        elif pos:
            del buffer[:pos]

    def _on_frame(self, opcode: int, start: int, end: int) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            self._on_data(opcode, start, end)
        elif opcode == OP_PING:
            payload = bytes(self.buffer[start:end])
            self.transport.write(bytes((0x8A, 0x80 | len(payload))) + ZERO_MASK + payload)
        elif opcode == OP_CLOSE:
            code = bytes(self.buffer[start:start + 2]) if end - start >= 2 else b""
            self.close_code = int.from_bytes(code, "big") if code else 1005
            self.transport.write(bytes((0x88, 0x80 | len(code))) + ZERO_MASK + code)
            self.transport.close()

    def _on_data(self, opcode: int, start: int, end: int) -> None:
        size = end - start
        self.frames += 1
        self.bytes += size
        if opcode == OP_TEXT:
            try:
                orjson.loads(self.buffer[start:end])
            except orjson.JSONDecodeError:
                self.bad_json += 1
        now = time.monotonic()  # received and parsed
        if self.frames == 1:
            self.first_frame_size = size
            self.pool.on_first_frame(self)
        armed = self.pool.armed
        if (armed is not None and self.arrival is None and self.tag == self.pool.armed_tag
                and self.buffer.find(armed, start, end) >= 0):
            self.arrival = now
            self.arrival_frame_size = size
            self.pool.on_arrival(self)

    def reset(self) -> None:
        """Close at once with a TCP reset: no TIME_WAIT is left on either side."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        transport.abort()
