"""The publishing side of a channel: its current state, epoch and sequence number.

A poll hands over fresh ``summary`` and ``items``; the channel diffs them against what
it last published and, when something changed, emits one ``Update`` carrying the
merge patch. Source health lives in ``meta`` and changes only on a health transition.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from dataclasses import dataclass
from typing import Any

from monitor import patch as merge_patch


@dataclass(frozen=True, slots=True)
class Update:
    """One change of one channel: the merge patch that takes state ``seq-1`` to ``seq``."""

    channel: str
    epoch: str
    seq: int
    patch: dict[str, Any]


def new_epoch() -> str:
    """A fresh epoch identifier: sequences restart whenever it changes."""
    return uuid.uuid4().hex[:16]


def utc_now_iso() -> str:
    """The current UTC time as ISO-8601 with seconds precision."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def to_json_value(value: Any) -> Any:
    """Make ``value`` JSON-shaped and drop ``None`` members: absent means null on the wire."""
    if type(value) in _PLAIN:  # most values of a row: no conversion, decided in one lookup
        return value
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


_PLAIN = frozenset({str, int, float, bool})


class ChannelState:
    """Current state of one channel on the publishing side."""

    def __init__(self, name: str, epoch: str) -> None:
        self.name = name
        self.epoch = epoch
        self.seq = 0
        self.state: dict[str, Any] = {
            "summary": {},
            "items": {},
            "meta": {"source": "pending", "since": utc_now_iso()},
        }

    @property
    def source_health(self) -> str:
        """``ok``, ``error`` or ``pending``."""
        return self.state["meta"]["source"]

    def initial_update(self) -> Update:
        """The whole starting state as the update that opens this epoch."""
        return Update(self.name, self.epoch, self.seq, self.state)

    def accept(self, data: Any | None) -> Update | None:
        """Publish a good read (``data`` None = unchanged); None when nothing changed."""
        new = dict(self.state)
        if data is not None:
            new["summary"] = to_json_value(data.summary)
            new["items"] = to_json_value(data.items)
        if self.source_health != "ok":
            new["meta"] = {"source": "ok", "since": utc_now_iso()}
        return self._advance(new)

    def mark_error(self, message: str, data: Any | None = None) -> Update | None:
        """Record that the source failed with ``message``, publishing ``data`` with it when given."""
        meta = self.state["meta"]
        since = meta["since"] if meta["source"] == "error" else utc_now_iso()
        new = {**self.state, "meta": {"source": "error", "error": message, "since": since}}
        if data is not None:
            new["summary"] = to_json_value(data.summary)
            new["items"] = to_json_value(data.items)
        return self._advance(new)

    def _advance(self, new: dict[str, Any]) -> Update | None:
        change = merge_patch.diff(self.state, new)
        if change is None:
            return None
        # Equal to ``new``, but unchanged records stay the objects already held: the fresh
        # copies die young instead of being promoted, so full collections come less often.
        self.state = merge_patch.apply(self.state, change)
        self.seq += 1
        return Update(self.name, self.epoch, self.seq, change)
