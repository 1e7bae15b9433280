"""Reading one agent's files: the state file, the phase tracker's file and error.log.

Each read is keyed by the file's (mtime_ns, size, inode) signature, so the scanner in
``statefiles`` reads a file again only when it moved. A file that does not parse, is too
big or too deep keeps the run's last good content, marked with ``state_file_error``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog

from monitor.sources.errorlog import last_entry, read_tail

log = structlog.get_logger(__name__)

ERROR_FIELD = "state_file_error"
MAX_FILE_BYTES = 1 << 20  # the default of [sources] max_file_bytes
# State files are a few levels deep; far deeper content is not a state file, and would
# reach the wire encoder's own limit (255 levels, frame and channel state included).
MAX_DEPTH = 64

Stat = tuple[int, int, int]  # (mtime_ns, size, inode)
Signature = Stat | tuple[int, int, int, str]  # a Stat, plus a "racy" mark while the mtime may still move


@dataclass(frozen=True, slots=True)
class StateEntry:
    signature: Signature
    good: dict[str, Any] | None  # the last content that parsed; None if it never did
    record: dict[str, Any]       # what consumers see: last good content, adw_id, error marker


@dataclass(frozen=True, slots=True)
class LogEntry:
    signature: Signature
    last: str  # the log's last entry; "" when it has none


@dataclass(frozen=True, slots=True)
class PhasesEntry:
    signature: Signature
    good: dict[str, Any] | None  # the last content that parsed


class FileTooLarge(Exception):
    """A file over the size bound: not read (the message is fit for an operator)."""


class FileReads:
    """Reads files up to ``limit`` bytes and counts them (tests prove an unchanged rescan reads none)."""

    def __init__(self, limit: int = MAX_FILE_BYTES) -> None:
        self.count = 0
        self.limit = limit

    def read(self, path: str, size: int) -> bytes:
        """The file's content; ``FileTooLarge`` when its stat's ``size`` or its content is over the bound."""
        if size > self.limit:
            raise FileTooLarge(self._too_large(size))
        self.count += 1
        with open(path, "rb") as fh:
            raw = fh.read(self.limit + 1)  # it may have grown since the stat
            if len(raw) > self.limit:
                raise FileTooLarge(self._too_large(os.fstat(fh.fileno()).st_size))
        return raw

    def _too_large(self, size: int) -> str:
        return f"too large: {size} bytes, over [sources] max_file_bytes ({self.limit}); not read"

    def tail(self, path: str) -> bytes:
        """The end of the file (``errorlog.read_tail``), counted as a read."""
        self.count += 1
        return read_tail(path)


RACY_WINDOW_NS = 2_000_000_000


def file_signature(path: str) -> Stat | None:
    """The file's (mtime_ns, size, inode); None when there is no file to read."""
    try:
        st = os.stat(path)
    except OSError:  # absent, vanished mid-scan, or not ours to see: no file as far as we care
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def state_entry(adw_id: str, signature: Signature, good: dict[str, Any] | None, error: str | None) -> StateEntry:
    """The entry for a state file: its last good content as the record, with ``error`` marked if any."""
    record = {**(good or {}), "adw_id": adw_id}
    if error is not None:
        record[ERROR_FIELD] = error
    return StateEntry(signature, good, record)


def read_state(adw_id: str, path: str, signature: Signature, old: StateEntry | None,
                files: FileReads) -> StateEntry | None:
    """A state file read afresh (its last good content kept when it is bad); None once it is gone."""
    value: dict[str, Any] | None
    error: str | None
    try:
        raw = files.read(path, signature[1])
    except FileNotFoundError:
        return None
    except FileTooLarge as exc:
        value, error = None, str(exc)
    except OSError as exc:
        value, error = None, f"unreadable: {exc.strerror or exc}"
    else:
        value, error = parse_state(raw)
    was_bad = old is not None and ERROR_FIELD in old.record
    if (error is not None) != was_bad:
        log.debug("state_file_invalid" if error else "state_file_recovered", adw_id=adw_id, error=error)
    if error is not None:
        return state_entry(adw_id, signature, old.good if old is not None else None, error)
    return state_entry(adw_id, signature, value, None)


def parse_state(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(content, None) for a JSON object within the bounds, else (None, why not)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except UnicodeDecodeError:
        return None, "invalid JSON: not UTF-8 text"
    except RecursionError:
        return None, f"invalid JSON: nested deeper than {MAX_DEPTH} levels"
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        return None, f"invalid JSON: {exc}"
    if not isinstance(value, dict):
        return None, "invalid JSON: not an object"
    return (value, None) if (problem := out_of_bounds(value)) is None else (None, f"invalid JSON: {problem}")


def out_of_bounds(value: Any) -> str | None:
    """Why parsed content cannot be shown (too deep, unencodable text), or None; no recursion."""
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        children = list(node.items()) if isinstance(node, dict) else [(None, v) for v in node]
        for key, child in children:
            if not (encodable(key) and encodable(child)):
                return "text with an unpaired surrogate"
            if isinstance(child, (dict, list)):
                pending.append((child, depth + 1))
    return None


def encodable(value: Any) -> bool:
    """False for text with an unpaired surrogate (JSON's \\ud83d alone): no UTF-8 encoder writes it."""
    if not isinstance(value, str) or value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_log(path: str, signature: Signature, files: FileReads) -> LogEntry | None:
    """error.log's last entry read afresh; None once the file is gone."""
    try:
        return LogEntry(signature, last_entry(files.tail(path).decode("utf-8", "replace")))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return LogEntry(signature, f"(error.log unreadable: {exc.strerror or exc})")


def read_phases(path: str, signature: Signature, old: PhasesEntry | None, files: FileReads) -> PhasesEntry | None:
    """The phase tracker's file read afresh (its last good content kept when it is bad); None once it is gone."""
    try:
        value, error = parse_state(files.read(path, signature[1]))
    except FileNotFoundError:
        return None
    except (OSError, FileTooLarge):
        value, error = None, "unreadable"
    if error is not None:  # half-written: keep what it said last
        return PhasesEntry(signature, old.good if old is not None else None)
    return PhasesEntry(signature, value)


class Signed(Protocol):
    """A kept read of a file, remembered under the file's signature."""

    @property
    def signature(self) -> Signature:
        """The file signature the entry was read under."""


EntryT = TypeVar("EntryT", bound=Signed)


def refreshed(path: str, old: EntryT | None, read: Callable[[Signature], EntryT | None]) -> EntryT | None:
    """``old`` while the file's signature holds, else what ``read`` makes of it; None if gone."""
    signature = file_signature(path)
    if signature is None:
        return None
    if old is not None and old.signature == signature:
        return old
    # A file read within a coarse file-system clock tick of its mtime (ext3, HFS+: 1 s;
    # FAT: 2 s) can be rewritten again, same size, without its mtime moving. Such a read
    # is remembered under a signature no file has, so the next scan reads it again, until
    # a read comes after that tick is surely over (git's "racy" entries, the same idea).
    racy = time.time_ns() - signature[0] < RACY_WINDOW_NS
    return read((*signature, "racy") if racy else signature)
