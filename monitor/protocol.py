"""The wire protocol, in one place: every message the server sends or accepts, every close code.

Server → client: ``snapshot`` (a channel's whole state), ``patch`` (an RFC 7396 merge
patch from ``seq - 1`` to ``seq``), ``pong`` and ``error``. Client → server: only
``{"type": "ping"}``, and the resume position ``?epoch=&seq=`` of the WebSocket URL.
DESIGN.md §3 is the contract; ``tests/test_protocol.py`` checks this module against it
directly. Pure functions and constants: no aiohttp, no I/O.

Not here: WebSocket framing (``connection.text_frame``), and the close codes aiohttp
sends by itself (1009 for a frame over ``max_client_frame``, 1002/1007 for broken frames).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

UNPUBLISHABLE = "source data cannot be sent to clients"
EPOCH_PATTERN = re.compile(r"[0-9a-f]{1,64}")
MAX_SEQ_DIGITS = 18  # below 2**63: a seq any broker can hold, and int() on it stays cheap


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame: its code and the reason text the peer reads."""

    code: int
    reason: bytes


SHUTDOWN = Close(1001, b"server shutting down")
TOO_SLOW = Close(1013, b"too slow: resume with epoch and seq")
RATE_LIMITED = Close(1008, b"too many client messages")
UNAUTHENTICATED = Close(1008, b"authentication required")
CLOSES = (SHUTDOWN, TOO_SLOW, RATE_LIMITED, UNAUTHENTICATED)


def encode(message: dict[str, Any]) -> bytes:
    """Serialize one wire message (UTF-8 JSON)."""
    return orjson.dumps(message)


def snapshot_frame(channel: str, epoch: str, seq: int, data: dict[str, Any]) -> bytes:
    """A ``snapshot`` message: the channel's whole state at (epoch, seq)."""
    return encode({"type": "snapshot", "channel": channel, "epoch": epoch, "seq": seq, "data": data})


def patch_frame(channel: str, epoch: str, seq: int, patch: dict[str, Any]) -> bytes:
    """A ``patch`` message; ``ValueError`` naming why when the patch cannot be encoded."""
    try:
        return encode({"type": "patch", "channel": channel, "epoch": epoch, "seq": seq, "patch": patch})
    except TypeError as exc:  # orjson's JSONEncodeError: a value no conversion foresaw
        raise ValueError(f"{UNPUBLISHABLE}: {exc}") from None


def error_frame(message: str) -> bytes:
    """An ``error`` message for the client."""
    return encode({"type": "error", "error": message})


PONG = encode({"type": "pong"})
NOT_JSON = error_frame("not JSON; the only client message is {\"type\":\"ping\"}")
UNKNOWN_MESSAGE = error_frame("unknown message; the only client message is {\"type\":\"ping\"}")
BINARY_REFUSED = error_frame("binary frames are not accepted; send JSON text")


def rate_error(per_second: float, burst: int) -> bytes:
    """The ``error`` sent just before closing with ``RATE_LIMITED``: the limit the client passed."""
    return error_frame(f"message rate over {per_second:g} a second (bursts of {burst}); closing")


def reply_to(data: str | bytes) -> bytes:
    """The reply to one client data frame: ``str`` for a text frame, ``bytes`` for a binary one."""
    if isinstance(data, bytes):
        return BINARY_REFUSED
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return NOT_JSON
    if isinstance(message, dict) and message.get("type") == "ping":
        return PONG
    return UNKNOWN_MESSAGE


def parse_resume(query: Mapping[str, str]) -> tuple[str | None, int | None]:
    """(epoch, seq) from ``?epoch=&seq=``; anything malformed counts as absent (→ snapshot)."""
    epoch, seq = query.get("epoch"), query.get("seq")
    if epoch is None or not EPOCH_PATTERN.fullmatch(epoch):
        return None, None
    # isascii first: str.isdigit accepts "١٢" and "²", which int() reads or rejects.
    if seq is None or not (seq.isascii() and seq.isdigit()) or len(seq) > MAX_SEQ_DIGITS:
        return None, None
    return epoch, int(seq)
