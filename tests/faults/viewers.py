"""A browser tab on one channel over a bare socket: applies the stream, resumes, leaves, vanishes.

A viewer checks the protocol as it reads: a patch must follow its own epoch and seq, and
a resume that cannot be served from the ring must be answered with a snapshot. Every
breach is recorded in ``violations`` rather than raised, so a long run can count them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections import Counter, deque
from typing import Any

from monitor import patch as merge_patch
from tests.support import RawWebSocket

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
HANG_GUARD = 10.0  # seconds: only ends a read that would otherwise hang the run
RESUME_MODES = ("good", "rewind", "stale", "foreign", "future", "malformed", "fresh")
MUST_SNAPSHOT = frozenset({"stale", "foreign", "future", "malformed", "fresh"})
MALFORMED = ("?epoch=&seq=", "?epoch=XYZ&seq=1", "?epoch={epoch}&seq=-1", "?epoch={epoch}g&seq={seq}",
             "?epoch={epoch}&seq=1e3", "?seq={seq}", "?epoch={epoch}", "?epoch={epoch}%00&seq={seq}")


class HandshakeRefused(Exception):
    """The server answered the upgrade with something other than 101."""


async def open_socket(host: str, port: int, path: str, rcvbuf: int | None = None,
                      headers: str = "") -> RawWebSocket:
    """A WebSocket on a bare socket; the socket is closed again when the upgrade fails."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2 ** 16)
    except BaseException:
        sock.close()
        raise
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n").encode())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise HandshakeRefused(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    except BaseException:
        writer.transport.abort()
        raise
    return RawWebSocket(reader, writer, sock)


class Viewer:
    """One client of one channel; its state is what a browser would show."""

    def __init__(self, channel: str, rcvbuf: int | None = None) -> None:
        self.channel = channel
        self.rcvbuf = rcvbuf
        self.link: RawWebSocket | None = None
        self.epoch: str | None = None
        self.seq: int | None = None
        self.state: dict[str, Any] | None = None
        self.checkpoints: deque[tuple[str, int, dict[str, Any]]] = deque(maxlen=12)
        self.expect_snapshot = False
        self.violations: list[str] = []
        self.received: Counter[str] = Counter()
        self._leaving = False

    @property
    def connected(self) -> bool:
        """True while the viewer holds a socket."""
        return self.link is not None

    async def connect(self, port: int, query: str = "") -> bool:
        """Open the channel's socket; False when the console is not there to answer."""
        self._leaving = False
        try:
            self.link = await open_socket("127.0.0.1", port, f"/api/v1/ws/{self.channel}{query}", self.rcvbuf)
        except (OSError, asyncio.IncompleteReadError, HandshakeRefused):
            return False
        return True

    def resume_query(self, mode: str, pick: int, past_epochs: list[str]) -> str:
        """The query to reconnect with in ``mode``; a rewind first restores an older checkpoint."""
        if self.epoch is None and mode in ("good", "rewind", "future"):
            mode = "fresh"
        self.expect_snapshot = mode in MUST_SNAPSHOT
        if mode == "good":
            return f"?epoch={self.epoch}&seq={self.seq}"
        if mode == "rewind":
            self.epoch, self.seq, self.state = self.checkpoints[pick % len(self.checkpoints)]
            return f"?epoch={self.epoch}&seq={self.seq}"
        if mode == "stale":
            epoch = past_epochs[pick % len(past_epochs)] if past_epochs else f"{pick:08x}0ff1ce00"
            return f"?epoch={epoch}&seq={self.seq or 0}"
        if mode == "foreign":
            return f"?epoch={pick:06x}beef&seq={self.seq or 0}"
        if mode == "future":
            return f"?epoch={self.epoch}&seq={self.seq + 1_000_000 + pick}"  # beyond any seq the console reached
        if mode == "malformed":
            return MALFORMED[pick % len(MALFORMED)].format(epoch=self.epoch or "", seq=self.seq or 0)
        return ""

    async def read_until(self, epoch: str, seq: int) -> bool:
        """Read until the state is at (epoch, seq); False when the connection ends first."""
        try:
            async with asyncio.timeout(HANG_GUARD):
                while self.link is not None and (self.epoch, self.seq) != (epoch, seq):
                    await self._read_one()
        except TimeoutError:
            self.violations.append(f"{self.channel}: stuck at {self.epoch}/{self.seq}, never got {epoch}/{seq}")
            self.vanish()
        return (self.epoch, self.seq) == (epoch, seq)

    async def read_until_closed(self) -> None:
        """Read (and apply) everything up to the server's close frame, and answer it."""
        try:
            async with asyncio.timeout(HANG_GUARD):
                while self.link is not None:
                    await self._read_one()
        except TimeoutError:
            self.violations.append(f"{self.channel}: the server never closed")
            self.vanish()

    async def sync(self) -> bool:
        """Ping, and apply everything that arrives before the pong; False when the connection ended first."""
        pongs = self.received["pong"]
        self.link.send_frame(TEXT, b'{"type":"ping"}')
        try:
            async with asyncio.timeout(HANG_GUARD):
                while self.link is not None and self.received["pong"] == pongs:
                    await self._read_one()
        except TimeoutError:
            self.violations.append(f"{self.channel}: no pong")
            self.vanish()
        return self.received["pong"] > pongs

    async def leave(self) -> None:
        """Close cleanly: a close frame, then whatever is in flight, then the server's close."""
        if self.link is not None:
            self._leaving = True
            self.link.send_frame(CLOSE, struct.pack("!H", 1000))
            await self.read_until_closed()

    def vanish(self) -> None:
        """Disappear without a close frame (RST)."""
        if self.link is not None:
            link, self.link = self.link, None
            try:
                link.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:  # already reset by the server: nothing left to linger
                pass
            link.writer.transport.abort()

    async def _read_one(self) -> None:
        try:
            opcode, payload = await self.link.read_frame()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.received["reset"] += 1
            self.vanish()
            return
        if opcode == TEXT:
            self.apply(json.loads(payload))
        elif opcode == PING:
            self.link.send_frame(PONG, payload)
        elif opcode == CLOSE:
            self.received[f"close {struct.unpack('!H', payload[:2])[0] if payload else 1005}"] += 1
            if not self._leaving:
                self.link.send_frame(CLOSE, payload[:2])
            link, self.link = self.link, None
            await link.close()

    def _follows(self, patch: dict[str, Any]) -> bool:
        return (patch["epoch"], patch["seq"]) == (self.epoch, (self.seq or 0) + 1)

    def apply(self, message: dict[str, Any]) -> None:
        """Apply one server message, checking it against the protocol."""
        kind = message.get("type")
        self.received[kind] += 1
        if kind == "pong":
            return
        if kind == "snapshot":
            self.epoch, self.seq, self.state = message["epoch"], message["seq"], message["data"]
            self.expect_snapshot = False
        elif kind == "patch" and not self.expect_snapshot and self._follows(message):
            self.seq, self.state = message["seq"], merge_patch.apply(self.state, message["patch"])
        else:
            self.violations.append(f"{self.channel}: {kind} {message.get('epoch')}/{message.get('seq')} "
                                   f"arrived at {self.epoch}/{self.seq} (snapshot due: {self.expect_snapshot})")
            self.epoch = self.seq = self.state = None
            self.vanish()
            return
        self.checkpoints.append((self.epoch, self.seq, self.state))
