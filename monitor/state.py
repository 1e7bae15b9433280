"""One channel's state in this process: what it shows, its (epoch, seq), and its recent frames.

The broker owns one per channel. A poll hands over fresh data; the state diffs it against
what it last published and, when something changed, applies the merge patch once,
encodes its frame once, and keeps that frame in a ring for clients that resume. Source
health lives in ``meta`` and changes only on a health transition.

This is the source boundary: what passes ``accept`` is what every view shows (pages,
JSON API, sockets, ``monitor snapshot``). Data that cannot be encoded is the channel's
error, never a half-published change.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from monitor import patch as merge_patch
from monitor import protocol
from monitor.channels.base import ChannelData
from monitor.values import to_json_value, utc_now_iso


@dataclass(frozen=True, slots=True)
class ChannelView:
    """A channel as one reader sees it: its state at (epoch, seq)."""

    epoch: str
    seq: int
    state: dict[str, Any]

    @property
    def source(self) -> str:
        """The source's health: ``ok``, ``error`` or ``pending``."""
        source: str = self.state["meta"]["source"]
        return source


class ChannelState:
    """The current state of one channel, its sequence, and a ring of its recent patch frames."""

    __slots__ = ("name", "epoch", "seq", "state", "ring", "_snapshot_frame", "_held_back", "_published")

    def __init__(self, name: str, epoch: str, ring_size: int = 0) -> None:
        self.name = name
        self.epoch = epoch
        self.seq = 0
        self.state: dict[str, Any] = {"summary": {}, "items": {},
                                      "meta": {"source": "pending", "since": utc_now_iso()}}
        # ring_size 0 (a one-shot read): nothing kept, every resume is a snapshot.
        self.ring: deque[tuple[int, bytes]] = deque(maxlen=ring_size)
        self._snapshot_frame: bytes | None = None
        self._held_back = False  # the last read could not be encoded: "unchanged" is still that read
        # key -> (the item object a reader handed over, the JSON record published for it). Readers
        # hand back the same object for an unchanged item (they never change one once handed
        # over): it then needs no conversion, and the diff skips it by identity.
        self._published: dict[str, tuple[Any, Any]] = {}

    @property
    def view(self) -> ChannelView:
        """The state at its (epoch, seq)."""
        return ChannelView(self.epoch, self.seq, self.state)

    def accept(self, data: ChannelData | None) -> bytes | None:
        """Publish a good read (``data`` None = unchanged); return the patch frame, None when nothing changed.

        Data that cannot be encoded becomes the channel's error.
        """
        if data is None and self._held_back:
            return None
        new = dict(self.state)
        if self.state["meta"]["source"] != "ok":
            new["meta"] = {"source": "ok", "since": utc_now_iso()}
        try:
            frame = self._advance(self._with_data(new, data))
        except ValueError as exc:
            self._held_back = True
            return self.mark_error(str(exc))
        self._held_back = False
        self._remember(data)
        return frame

    def mark_error(self, message: str, data: ChannelData | None = None) -> bytes | None:
        """Record that the source failed with ``message``, publishing ``data`` with it when given."""
        meta = self.state["meta"]
        since = meta["since"] if meta["source"] == "error" else utc_now_iso()
        # An exception's text may carry what broke the data (an unpaired surrogate, say).
        message = message.encode("utf-8", "replace").decode("utf-8")
        new = {**self.state, "meta": {"source": "error", "error": message, "since": since}}
        try:
            frame = self._advance(self._with_data(new, data))
        except ValueError as exc:  # the data that came with the error cannot go out: the error can
            return self.mark_error(f"{message}; {exc}") if data is not None else None
        self._remember(data)
        return frame

    def snapshot_frame(self) -> bytes:
        """The current state as a snapshot frame, encoded once per change."""
        if self._snapshot_frame is None:
            self._snapshot_frame = protocol.snapshot_frame(self.name, self.epoch, self.seq, self.state)
        return self._snapshot_frame

    def catch_up(self, epoch: str | None, seq: int | None) -> tuple[str, list[bytes]]:
        """How a client at (epoch, seq) is brought up to date (an outcome of ``CATCH_UP_OUTCOMES``), and the frames."""
        if epoch is None:
            return "snapshot", [self.snapshot_frame()]
        if epoch != self.epoch or seq is None or seq > self.seq:
            return "fallback", [self.snapshot_frame()]
        if seq == self.seq:
            return "current", []
        first = self.ring[0][0] if self.ring else self.seq + 1
        if seq + 1 < first:  # the ring no longer holds the patch right after seq
            return "fallback", [self.snapshot_frame()]
        return "ring", [frame for s, frame in self.ring if s > seq]

    def _with_data(self, state: dict[str, Any], data: ChannelData | None) -> dict[str, Any]:
        """``state`` with ``data``'s summary and items made JSON-shaped; ``ValueError`` when they cannot be."""
        if data is None:
            return state
        try:
            return {**state, "summary": to_json_value(data.summary), "items": self._json_items(data.items)}
        except RecursionError:
            raise ValueError(f"{protocol.UNPUBLISHABLE}: nested too deeply") from None
        except ValueError as exc:
            raise ValueError(f"{protocol.UNPUBLISHABLE}: {exc}") from None

    def _json_items(self, items: dict[str, Any]) -> dict[str, Any]:
        """``to_json_value(items)``, reusing the published record of every item handed over before."""
        published, converted = self._published, {}
        for key, item in items.items():
            if item is None:
                continue  # as to_json_value: absent means null
            name = str(key)
            seen = published.get(name)
            converted[name] = seen[1] if seen is not None and seen[0] is item else to_json_value(item)
        return converted

    def _remember(self, data: ChannelData | None) -> None:
        """After a publish of ``data``: each item object with the record the state now holds for it."""
        if data is None:
            return
        held = self.state["items"]
        self._published = {str(key): (item, held[str(key)]) for key, item in data.items.items()
                           if item is not None and str(key) in held}

    def _advance(self, new: dict[str, Any]) -> bytes | None:
        try:
            change = merge_patch.diff(self.state, new)
        except RecursionError:
            raise ValueError(f"{protocol.UNPUBLISHABLE}: nested too deeply") from None
        if change is None:
            return None
        # Encoded before anything moves: a change that cannot go out leaves the state as it was.
        frame = protocol.patch_frame(self.name, self.epoch, self.seq + 1, change)
        # Equal to ``new``, but unchanged records stay the objects already held: the fresh
        # copies die young instead of being promoted, so full collections come less often.
        self.state = merge_patch.apply(self.state, change)
        self.seq += 1
        self.ring.append((self.seq, frame))
        self._snapshot_frame = None
        return frame
