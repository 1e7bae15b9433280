"""The publishing side of a channel: its current state, epoch and sequence number.

A poll hands over fresh ``summary`` and ``items``; the channel diffs them against what
it last published and, when something changed, emits one ``Update`` carrying the
merge patch. Source health lives in ``meta`` and changes only on a health transition.

This is the source boundary: what passes ``accept`` is what every view shows (pages,
JSON API, sockets, ``monitor snapshot``). Numbers a JSON client cannot hold exactly —
NaN, ±Infinity, integers beyond ±(2**53 - 1) — become their text here (``"NaN"``,
``"Infinity"``, ``"-Infinity"``, ``"18446744073709551616"``), and data that still cannot
be encoded is the channel's error, never a half-published update.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from monitor import patch as merge_patch

MAX_SAFE_INTEGER = 2 ** 53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: larger integers lose digits
UNPUBLISHABLE = "source data cannot be sent to clients"


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
    kind = type(value)
    if kind in _PLAIN:  # most values of a row: no conversion, decided in one lookup
        return value
    if kind is int:
        return value if abs(value) <= MAX_SAFE_INTEGER else str(value)
    if kind is float:  # x - x is 0.0 for every finite x, NaN for NaN and ±Infinity: no call needed
        return value if value - value == 0.0 else number_text(value)
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return _converted(value)


def _converted(value: Any) -> Any:
    """The JSON form of a value that is not a plain str, bool, int, float, dict or list."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):  # PostgreSQL numeric; it may be 'NaN'
        return "NaN" if value.is_nan() else to_json_value(float(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):  # subclasses such as StrEnum: by value
        return str.__str__(value)
    if isinstance(value, int):
        return to_json_value(int(value))
    if isinstance(value, float):
        return to_json_value(float(value))
    # UUIDs, intervals and whatever else a driver returns: their text, the same on every view.
    return str(value)


_PLAIN = frozenset({str, bool})


def number_text(value: float) -> str:
    """NaN and ±Infinity as text, spelled as JavaScript's ``String()`` spells them."""
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def check_encodable(value: Any) -> None:
    """Raise ``ValueError`` naming why when ``value`` cannot go on the wire."""
    try:
        orjson.dumps(value)  # the encoder the broker and the JSON API use
    except TypeError as exc:  # orjson's JSONEncodeError
        raise ValueError(f"{UNPUBLISHABLE}: {exc}") from None


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
        self._held_back = False  # the last read could not be encoded: "unchanged" is still that read

    @property
    def source_health(self) -> str:
        """``ok``, ``error`` or ``pending``."""
        return self.state["meta"]["source"]

    def initial_update(self) -> Update:
        """The whole starting state as the update that opens this epoch."""
        return Update(self.name, self.epoch, self.seq, self.state)

    def accept(self, data: Any | None) -> Update | None:
        """Publish a good read (``data`` None = unchanged); data that cannot be encoded becomes the error."""
        if data is None and self._held_back:
            return None
        new = dict(self.state)
        if self.source_health != "ok":
            new["meta"] = {"source": "ok", "since": utc_now_iso()}
        try:
            update = self._advance(_with_data(new, data))
        except ValueError as exc:
            self._held_back = True
            return self.mark_error(str(exc))
        self._held_back = False
        return update

    def mark_error(self, message: str, data: Any | None = None) -> Update | None:
        """Record that the source failed with ``message``, publishing ``data`` with it when given."""
        meta = self.state["meta"]
        since = meta["since"] if meta["source"] == "error" else utc_now_iso()
        # An exception's text may carry what broke the data (an unpaired surrogate, say).
        message = message.encode("utf-8", "replace").decode("utf-8")
        new = {**self.state, "meta": {"source": "error", "error": message, "since": since}}
        try:
            return self._advance(_with_data(new, data))
        except ValueError as exc:  # the data that came with the error cannot go out: the error can
            return self.mark_error(f"{message}; {exc}") if data is not None else None

    def _advance(self, new: dict[str, Any]) -> Update | None:
        try:
            change = merge_patch.diff(self.state, new)
        except RecursionError:
            raise ValueError(f"{UNPUBLISHABLE}: nested too deeply") from None
        if change is None:
            return None
        # Checked before anything moves: an update the broker cannot encode would leave its
        # replica, ring and cached snapshot behind this state.
        check_encodable([change])  # one level more: the frame that carries it
        # Equal to ``new``, but unchanged records stay the objects already held: the fresh
        # copies die young instead of being promoted, so full collections come less often.
        self.state = merge_patch.apply(self.state, change)
        self.seq += 1
        return Update(self.name, self.epoch, self.seq, change)


def _with_data(state: dict[str, Any], data: Any | None) -> dict[str, Any]:
    """``state`` with ``data``'s summary and items made JSON-shaped; ``ValueError`` when they cannot be."""
    if data is None:
        return state
    try:
        return {**state, "summary": to_json_value(data.summary), "items": to_json_value(data.items)}
    except RecursionError:
        raise ValueError(f"{UNPUBLISHABLE}: nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"{UNPUBLISHABLE}: {exc}") from None
