"""Agent state files (agents/<adw_id>/adw_state.json, completed_phases.json, error.log) and
the trees directory.

One scan, in one worker thread, lists the agents directory and stats each agent's three
files; only a file whose (mtime_ns, size, inode) signature moved is read again, so an
unchanged workspace costs a directory listing and three stats per agent. Writers rewrite
state files in place, so a scan may meet half-written JSON: the agent then keeps its last
good record, marked with ``state_file_error`` until the file parses again (the phase
tracker's file likewise keeps its last good content). The same holds for a file over
``max_file_bytes`` (not read at all), nested deeper than ``MAX_DEPTH`` or holding text no
UTF-8 encoder can write (an unpaired surrogate escape): one run's error, never the
channel's. Of error.log only the end is read (``errorlog``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from monitor.adw import is_adw_id
from monitor.sources.errorlog import last_entry, read_tail

log = structlog.get_logger(__name__)

STATE_FILE = "adw_state.json"
PHASES_FILE = "completed_phases.json"  # the ADWs' phase tracker: {"completed": [...], "current": ...}
ERROR_LOG = "error.log"
ERROR_FIELD = "state_file_error"
MAX_FILE_BYTES = 1 << 20  # the default of [sources] max_file_bytes
# State files are a few levels deep; far deeper content is not a state file, and would
# reach the wire encoder's own limit (255 levels, frame and channel state included).
MAX_DEPTH = 64

Signature = tuple  # (mtime_ns, size, inode), plus a "racy" mark while the mtime may still move


class StateFilesError(Exception):
    """The agents directory itself cannot be listed; the message is fit for an operator."""


@dataclass(frozen=True)
class StateView:
    """What a scan found by adw_id: state records, phase-tracker records, the last entry of
    each non-empty error.log; and the kept worktrees."""

    states: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    phases: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    trees: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _StateEntry:
    signature: Signature
    good: dict[str, Any] | None  # the last content that parsed; None if it never did
    record: dict[str, Any]       # what consumers see: last good content, adw_id, error marker


@dataclass(frozen=True, slots=True)
class _LogEntry:
    signature: Signature
    last: str  # the log's last entry; "" when it has none


@dataclass(frozen=True, slots=True)
class _PhasesEntry:
    signature: Signature
    good: dict[str, Any] | None  # the last content that parsed


@dataclass(slots=True)
class _ScanResult:
    states: dict[str, _StateEntry]
    logs: dict[str, _LogEntry]
    phases: dict[str, _PhasesEntry]
    trees: frozenset[str]
    files_read: int
    changed: bool


class FileTooLarge(Exception):
    """A file over the size bound: not read (the message is fit for an operator)."""


class _FileReads:
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
        self.count += 1
        return read_tail(path)


RACY_WINDOW_NS = 2_000_000_000


def _signature(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:  # absent, vanished mid-scan, or not ours to see: no file as far as we care
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _entry(adw_id: str, signature: Signature, good: dict[str, Any] | None, error: str | None) -> _StateEntry:
    record = {**(good or {}), "adw_id": adw_id}
    if error is not None:
        record[ERROR_FIELD] = error
    return _StateEntry(signature, good, record)


def _read_state(adw_id: str, path: str, signature: Signature, old: _StateEntry | None,
                files: _FileReads) -> _StateEntry | None:
    try:
        raw = files.read(path, signature[1])
    except FileNotFoundError:
        return None
    except FileTooLarge as exc:
        value, error = None, str(exc)
    except OSError as exc:
        value, error = None, f"unreadable: {exc.strerror or exc}"
    else:
        value, error = _parse_state(raw)
    was_bad = old is not None and ERROR_FIELD in old.record
    if (error is not None) != was_bad:
        log.debug("state_file_invalid" if error else "state_file_recovered", adw_id=adw_id, error=error)
    if error is not None:
        return _entry(adw_id, signature, old.good if old is not None else None, error)
    return _entry(adw_id, signature, value, None)


def _parse_state(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
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
    return (value, None) if (problem := _out_of_bounds(value)) is None else (None, f"invalid JSON: {problem}")


def _out_of_bounds(value: Any) -> str | None:
    """Why parsed content cannot be shown (too deep, unencodable text), or None; no recursion."""
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        children = list(node.items()) if isinstance(node, dict) else [(None, v) for v in node]
        for key, child in children:
            if not (_encodable(key) and _encodable(child)):
                return "text with an unpaired surrogate"
            if isinstance(child, (dict, list)):
                pending.append((child, depth + 1))
    return None


def _encodable(value: Any) -> bool:
    """False for text with an unpaired surrogate (JSON's \\ud83d alone): no UTF-8 encoder writes it."""
    if not isinstance(value, str) or value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_log(path: str, signature: Signature, files: _FileReads) -> _LogEntry | None:
    try:
        return _LogEntry(signature, last_entry(files.tail(path).decode("utf-8", "replace")))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _LogEntry(signature, f"(error.log unreadable: {exc.strerror or exc})")


def _read_phases(path: str, signature: Signature, old: _PhasesEntry | None, files: _FileReads) -> _PhasesEntry | None:
    try:
        value, error = _parse_state(files.read(path, signature[1]))
    except FileNotFoundError:
        return None
    except (OSError, FileTooLarge):
        value, error = None, "unreadable"
    if error is not None:  # half-written: keep what it said last
        return _PhasesEntry(signature, old.good if old is not None else None)
    return _PhasesEntry(signature, value)


def _list_dirs(directory: Path) -> list[str]:
    with os.scandir(directory) as entries:
        return [e.name for e in entries if is_adw_id(e.name) and e.is_dir()]


def _list_agents(agents_dir: Path) -> list[str]:
    try:
        return _list_dirs(agents_dir)
    except FileNotFoundError:
        raise StateFilesError(f"agents_dir not found: {agents_dir}") from None
    except NotADirectoryError:
        raise StateFilesError(f"agents_dir is not a directory: {agents_dir}") from None
    except OSError as exc:
        raise StateFilesError(f"agents_dir cannot be listed: {agents_dir}: {exc.strerror or exc}") from None


def _list_trees(trees_dir: Path) -> frozenset[str]:
    try:
        return frozenset(_list_dirs(trees_dir))
    except OSError:  # a system that keeps no worktrees has no trees dir: nothing is kept
        return frozenset()


def _refreshed(path: str, old: Any, read: Callable[[Signature], Any]) -> Any:
    """``old`` while the file's signature holds, else what ``read`` makes of it; None if gone."""
    signature = _signature(path)
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


@dataclass(frozen=True, slots=True)
class _Caches:
    """What the last scan kept, by adw_id; a scan reads these, never changes them."""

    states: Mapping[str, _StateEntry] = field(default_factory=dict)
    logs: Mapping[str, _LogEntry] = field(default_factory=dict)
    phases: Mapping[str, _PhasesEntry] = field(default_factory=dict)


def _scan(agents_dir: Path, trees_dir: Path, old: _Caches, max_file_bytes: int) -> _ScanResult:
    """Blocking: one pass over both directories."""
    files = _FileReads(max_file_bytes)
    found = _ScanResult({}, {}, {}, frozenset(), 0, False)
    for adw_id in _list_agents(agents_dir):
        base = os.path.join(agents_dir, adw_id)
        state_path, log_path, phases_path = (os.path.join(base, name) for name in (STATE_FILE, ERROR_LOG, PHASES_FILE))
        old_state, old_log, old_phases = old.states.get(adw_id), old.logs.get(adw_id), old.phases.get(adw_id)
        entries = (
            (found.states, old_state, _record_of, _refreshed(
                state_path, old_state, lambda sig: _read_state(adw_id, state_path, sig, old_state, files))),
            (found.logs, old_log, _last_of, _refreshed(log_path, old_log, lambda sig: _read_log(log_path, sig, files))),
            (found.phases, old_phases, _good_of, _refreshed(
                phases_path, old_phases, lambda sig: _read_phases(phases_path, sig, old_phases, files))),
        )
        for kept, before, value, entry in entries:
            if entry is not None:
                kept[adw_id] = entry
            found.changed = found.changed or _moved(entry, before, value)
    found.changed = found.changed or any(
        new.keys() != before.keys()
        for new, before in ((found.states, old.states), (found.logs, old.logs), (found.phases, old.phases)))
    found.trees, found.files_read = _list_trees(trees_dir), files.count
    return found


def _moved(new: Any, old: Any, value: Callable[[Any], Any]) -> bool:
    return new is not old and value(new) != value(old)


def _record_of(entry: _StateEntry | None) -> dict[str, Any] | None:
    return entry.record if entry is not None else None


def _last_of(entry: _LogEntry | None) -> str | None:
    return entry.last if entry is not None else None


def _good_of(entry: _PhasesEntry | None) -> dict[str, Any] | None:
    return entry.good if entry is not None else None


class StateFiles:
    """The agents and trees directories of one ADW system, rescanned incrementally.

    ``generation`` moves whenever ``view`` changes, so several readers can each tell
    whether there is anything new for them. ``files_read`` counts every file opened.
    """

    def __init__(self, agents_dir: str | Path, trees_dir: str | Path, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.agents_dir = Path(agents_dir)
        self.trees_dir = Path(trees_dir)
        self.max_file_bytes = max_file_bytes
        self.view = StateView()
        self.generation = 0
        self.files_read = 0
        self._caches = _Caches()
        self._lock = asyncio.Lock()

    async def scan(self) -> bool:
        """Rescan both directories off the event loop; True when ``view`` changed."""
        async with self._lock:
            try:
                found = await asyncio.to_thread(_scan, self.agents_dir, self.trees_dir, self._caches,
                                                self.max_file_bytes)
            except StateFilesError:
                self._forget()
                raise
            self.files_read += found.files_read
            # Signatures are kept even when no content changed, so a touched file is read once.
            self._caches = _Caches(found.states, found.logs, found.phases)
            if not found.changed and found.trees == self.view.trees:
                return False
            # A file that never parsed is not a run (yet): a writer may be creating it.
            self.view = StateView({adw_id: e.record for adw_id, e in found.states.items() if e.good is not None},
                                  {adw_id: e.last for adw_id, e in found.logs.items() if e.last},
                                  {adw_id: e.good for adw_id, e in found.phases.items() if e.good is not None},
                                  found.trees)
            self.generation += 1
            return True

    def _forget(self) -> None:
        # A vanished directory may come back with other files under the same names.
        if self._caches.states or self._caches.logs or self.view.trees:
            log.info("agents_dir_lost", agents_dir=str(self.agents_dir), agents=len(self._caches.states))
        self._caches = _Caches()
        self.view = StateView()
        self.generation += 1


def state_files(sources: Any) -> StateFiles:
    """The console's shared scanner of ``sources`` (one of its own for bare test namespaces)."""
    shared = getattr(sources, "state_files", None)
    if isinstance(shared, StateFiles):
        return shared
    paths = sources.settings.sources
    return StateFiles(paths.agents_dir, paths.trees_dir, paths.max_file_bytes)
