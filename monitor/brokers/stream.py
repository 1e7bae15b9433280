"""Reading a channel's shared state and ring out of Redis, and the entries its stream adds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from monitor.brokers.scripts import ChannelKeys

START = b"0-0"  # a stream position before every entry


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: a frame at (epoch, seq) and where the stream holds it."""

    id: bytes
    epoch: str
    seq: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class Shared:
    """A channel as Redis holds it: the state at (epoch, seq), the ring's patches up to it, the last entry's id."""

    epoch: str
    seq: int
    state: dict[str, Any]
    ring: list[tuple[int, bytes]]
    last_id: bytes


def entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    """An ``Entry`` from a stream reply's id and fields."""
    return Entry(entry_id, fields[b"epoch"].decode(), int(fields[b"seq"]), fields[b"frame"])


async def load(client: Redis, keys: ChannelKeys) -> tuple[Shared | None, bytes]:
    """The channel's shared state with its ring (None before any console published it), and the stream's end."""
    # One transaction: the state and the stream are read at the same instant, as the write script leaves them.
    async with client.pipeline(transaction=True) as pipe:
        pipe.hmget(keys.state, "epoch", "seq", "state")
        pipe.xrange(keys.ring)
        (epoch, seq, state), raw = await pipe.execute()
    entries = [entry(entry_id, fields) for entry_id, fields in raw]
    last_id = entries[-1].id if entries else START
    if epoch is None:
        return None, last_id
    shared_epoch, shared_seq = epoch.decode(), int(seq)
    # Only this epoch's patches up to the state: a seed entry (seq 0) is a snapshot, not a patch.
    ring = [(e.seq, e.frame) for e in entries if e.epoch == shared_epoch and 0 < e.seq <= shared_seq]
    return Shared(shared_epoch, shared_seq, orjson.loads(state), ring, last_id), last_id


async def read(client: Redis, positions: dict[str, bytes], block_ms: int) -> list[tuple[str, list[Entry]]]:
    """Entries after ``positions`` (ring key → last id read), waiting up to ``block_ms`` for one."""
    reply: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None
    # RESP2 (the default): [[stream, [(id, {field: value})]]]; the keys are str, the ids bytes.
    reply = await client.xread(positions, block=block_ms)  # type: ignore[arg-type,assignment]
    return [(name.decode(), [entry(entry_id, fields) for entry_id, fields in entries]) for name, entries in reply or []]
