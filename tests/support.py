"""Test helpers: a queue table writer, a protocol-checking client, a raw WebSocket peer, a state-file writer."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sqlite3
import struct
import uuid
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType

from monitor import patch as merge_patch
from monitor.keys import HUB, POLLERS


class QueueTable:
    """Writes phase_queue rows the way the ADW system would (its own connection, commits)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _run(self, sql: str, params: tuple = ()) -> None:
        with sqlite3.connect(self.db_path) as conn:
            conn.execute(sql, params)
        conn.close()

    def insert(self, status: str = "queued", title: str = "a phase", **columns: Any) -> str:
        queue_id = columns.pop("queue_id", None) or str(uuid.uuid4())
        row = {"queue_id": queue_id, "status": status, "phase_data": json.dumps({"title": title}), **columns}
        names = ", ".join(row)
        self._run(f"INSERT INTO phase_queue ({names}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        return queue_id

    def update(self, queue_id: str, **columns: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in columns)
        self._run(f"UPDATE phase_queue SET {sets} WHERE queue_id = ?", (*columns.values(), queue_id))

    def delete(self, queue_id: str) -> None:
        self._run("DELETE FROM phase_queue WHERE queue_id = ?", (queue_id,))

    def set_paused(self, paused: bool) -> None:
        self._run("UPDATE queue_config SET config_value = ? WHERE config_key = 'queue_paused'",
                  ("true" if paused else "false",))


class ProtocolClient:
    """Applies snapshots and patches like a browser would, and checks seq continuity."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.epoch: str | None = None
        self.seq: int | None = None
        self.state: dict[str, Any] | None = None
        self.received: list[dict[str, Any]] = []

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        """Next data message (snapshot/patch/pong/error), applied to the local state."""
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is not WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {msg.type!r} {msg.data!r}")
        message = json.loads(msg.data)
        self.received.append(message)
        self.apply(message)
        return message

    def apply(self, message: dict[str, Any]) -> None:
        if message["type"] == "snapshot":
            self.epoch, self.seq, self.state = message["epoch"], message["seq"], message["data"]
        elif message["type"] == "patch":
            assert message["epoch"] == self.epoch, "patch from another epoch"
            assert message["seq"] == self.seq + 1, f"gap or duplicate: have {self.seq}, got {message['seq']}"
            self.seq = message["seq"]
            self.state = merge_patch.apply(self.state, message["patch"])

    async def until_seq(self, seq: int, timeout: float = 10.0) -> None:
        """Receive until the local state is at ``seq``."""
        while self.seq is None or self.seq < seq:
            await self.receive(timeout)


class RawWebSocket:
    """A bare-socket WebSocket peer that can stop reading, send anything, or vanish."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sock: socket.socket) -> None:
        self.reader, self.writer, self.sock = reader, writer, sock

    @classmethod
    async def connect(cls, host: str, port: int, path: str, rcvbuf: int | None = None) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2 ** 16)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer, sock)

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        mask = os.urandom(4)
        first = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(n)

    async def read_until_close(self) -> tuple[list[dict[str, Any]], int]:
        """All text messages up to the close frame, and the close code."""
        messages = []
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x1:
                messages.append(json.loads(payload))
            elif opcode == 0x8:
                return messages, struct.unpack("!H", payload[:2])[0]

    async def close(self) -> None:
        """Close the socket without a WebSocket close handshake."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass

    def kill(self) -> None:
        """Vanish without a close frame (RST)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


async def poll(client, channel: str = "queue") -> None:
    """Run one poll of ``channel`` now."""
    await client.app[POLLERS][channel].poll()


async def connections(client, channel: str, count: int) -> None:
    """Wait until ``channel`` has exactly ``count`` registered connections."""
    await client.app[HUB].wait_until(lambda hub: hub.count(channel) == count)


def write_state(agents: Path, adw_id: str, content: dict[str, Any] | str) -> None:
    """Rewrite a state file in place, as ADW writers do (``content``: a dict or raw text)."""
    path = agents / adw_id / "adw_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


class Triggers:
    """Collects the channels a file watcher asks to poll, a batch at a time."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[frozenset[str]] = asyncio.Queue()

    def __call__(self, channels: frozenset[str]) -> None:
        self.queue.put_nowait(channels)

    async def batch(self) -> set[str]:
        """The channels of the next firing: the first one awaited, then those queued after it."""
        channels = set(await self.queue.get())
        while not self.queue.empty():
            channels |= self.queue.get_nowait()
        return channels


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, tables merged key by key."""
    result = dict(base)
    for key, value in extra.items():
        both_tables = isinstance(value, dict) and isinstance(result.get(key), dict)
        result[key] = merged(result[key], value) if both_tables else value
    return result
