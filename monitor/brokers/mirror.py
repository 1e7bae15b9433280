"""One channel's state on a console that shares it: moved only by what the shared stream says.

Every console (the poller's too) holds a ``MirrorState`` per channel. It is a
``ChannelState`` (so ``catch_up``, ``view`` and snapshots work exactly as in one process)
whose changes come from outside: a patch frame read from the stream, a whole state loaded
from Redis, or the mark that the broker is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from monitor import patch as merge_patch
from monitor.broker import new_epoch
from monitor.state import ChannelState
from monitor.values import utc_now_iso

BROKER_DOWN = "message broker unreachable: showing the last state received, which may be out of date"


class MirrorState(ChannelState):
    """A channel's state as the shared stream has it, with its ring of recent patch frames."""

    __slots__ = ()

    def follows(self, epoch: str, seq: int) -> bool:
        """True when the patch at (epoch, seq) is the next one this state can apply."""
        return epoch == self.epoch and seq == self.seq + 1

    def has_seen(self, epoch: str, seq: int) -> bool:
        """True when (epoch, seq) is already applied here (the stream repeats what a load brought)."""
        return epoch == self.epoch and seq <= self.seq

    def apply_frame(self, seq: int, frame: bytes) -> None:
        """Apply the patch frame that ``follows`` this state, keeping the frame for resumes."""
        change = orjson.loads(frame)["patch"]
        self.state = merge_patch.apply(self.state, change)
        self.seq = seq
        self.ring.append((seq, frame))
        self._snapshot_frame = None

    def load(self, epoch: str, seq: int, state: dict[str, Any], ring: Iterable[tuple[int, bytes]]) -> bool:
        """Become the shared state at (epoch, seq) with its ring; False when nothing changed."""
        if epoch == self.epoch and seq == self.seq:
            return False
        self.epoch, self.seq, self.state = epoch, seq, state
        self.ring.clear()
        self.ring.extend(ring)
        self._snapshot_frame = None
        return True

    def mark_broker_down(self) -> bytes:
        """Keep the last state, marked out of date, under an epoch of this console alone; its snapshot frame.

        The epoch is new so that no client resumes from this state elsewhere, nor here once the
        shared state is back: whoever saw it gets a snapshot.
        """
        if self.state["meta"].get("error") != BROKER_DOWN:
            self.state = {**self.state, "meta": {"source": "error", "error": BROKER_DOWN, "since": utc_now_iso()}}
        self.epoch = new_epoch()
        self.ring.clear()
        self._snapshot_frame = None
        return self.snapshot_frame()

    @property
    def broker_down(self) -> bool:
        """True while this state is the last one received before the broker became unreachable."""
        error: object = self.state["meta"].get("error")
        return error == BROKER_DOWN
