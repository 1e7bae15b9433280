"""Hostile peers: WebSocket frames built bit by bit, and what the server made of them.

``Frame`` can express what a well-behaved client never sends: reserved bits, unmasked
payloads, lengths that lie, fragmented control frames, continuations out of nowhere.
``outcome`` reads the server's answer to a sequence of them plus a final sentinel ping.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from collections import Counter
from dataclasses import dataclass

from tests.support import RawWebSocket

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
SENTINEL = b"sentinel"  # a protocol ping's payload: its pong says the server read everything before it


@dataclass(frozen=True)
class Frame:
    """One frame as it goes on the wire; ``declared`` overrides the length the header states."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    masked: bool = True
    declared: int | None = None

    def encode(self) -> bytes:
        """The frame's bytes (only as much payload as there is, whatever the header says)."""
        length = len(self.payload) if self.declared is None else self.declared
        first = (0x80 if self.fin else 0) | (self.rsv & 0x7) << 4 | (self.opcode & 0xF)
        mask_bit = 0x80 if self.masked else 0
        if length < 126:
            header = struct.pack("!BB", first, mask_bit | length)
        elif length < 65536:
            header = struct.pack("!BBH", first, mask_bit | 126, length)
        else:
            header = struct.pack("!BBQ", first, mask_bit | 127, length)
        if not self.masked:
            return header + self.payload
        mask = os.urandom(4)
        return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(self.payload))


@dataclass
class Outcome:
    """How the server answered: messages it sent, and the close code if it closed."""

    messages: list[dict]
    close_code: int | None = None
    alive: bool = False  # it answered the sentinel ping, so it was still reading
    dropped: bool = False  # the connection ended without a close frame


async def send_and_observe(link: RawWebSocket, frames: list[Frame]) -> Outcome:
    """Send ``frames`` then a sentinel ping; read until its pong, a close frame, or the end."""
    for frame in frames:
        link.writer.write(frame.encode())
    link.writer.write(Frame(PING, SENTINEL).encode())
    outcome = Outcome(messages=[])
    try:
        async with asyncio.timeout(10):
            await _read_answers(link, outcome)
    except (ConnectionError, asyncio.IncompleteReadError):
        outcome.dropped = True
    return outcome


async def _read_answers(link: RawWebSocket, outcome: Outcome) -> None:
    while True:
        opcode, payload = await link.read_frame()
        if opcode == TEXT:
            outcome.messages.append(json.loads(payload))
        elif opcode == PONG and payload == SENTINEL:  # it answered the last ping: it read everything
            outcome.alive = True
            return
        elif opcode == CLOSE:
            outcome.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            return


def tally(outcomes: list[Outcome]) -> Counter:
    """How many sequences ended in each way, for the report."""
    counts: Counter = Counter()
    for outcome in outcomes:
        counts["alive" if outcome.alive else f"close {outcome.close_code}" if outcome.close_code else "dropped"] += 1
    return counts
